/*
 * smarty-gateway: streaming multipart/form-data parser.
 *
 * Pure C, no nginx types: the module feeds it the request body one buffer at
 * a time (memory buffers or chunks read from a temp file) and it calls back
 * for every part.  Nothing is copied but the part headers (bounded).
 *
 * Offsets are absolute byte offsets from the start of the body, so that a
 * caller can later reference a part's bytes where they already are (to
 * rebuild a body from a subset of parts without copying the data).
 */

#ifndef SMARTY_MULTIPART_H
#define SMARTY_MULTIPART_H

#include <stddef.h>
#include <stdint.h>


#define SMARTY_MP_BOUNDARY_MAX     70      /* RFC 2046 */
#define SMARTY_MP_HEADERS_MAX      16384   /* all header lines of one part */
#define SMARTY_MP_NAME_MAX         4096    /* PHP clients send file paths */
#define SMARTY_MP_FILENAME_MAX     256
#define SMARTY_MP_CTYPE_MAX        128


/* return codes; callbacks return SMARTY_MP_OK or any negative value to stop
 * the parser (that value is then returned by smarty_mp_feed) */
#define SMARTY_MP_OK                0
#define SMARTY_MP_DONE              1   /* closing delimiter seen */
#define SMARTY_MP_ERR_BOUNDARY     -1   /* bad/missing boundary parameter */
#define SMARTY_MP_ERR_SYNTAX       -2   /* malformed delimiter / framing */
#define SMARTY_MP_ERR_HEADERS      -3   /* malformed or oversized headers */
#define SMARTY_MP_ERR_NAME_LONG    -4   /* a part name longer than
                                           SMARTY_MP_NAME_MAX */
#define SMARTY_MP_ERR_TRUNCATED    -5   /* the body ended before the close */
#define SMARTY_MP_ERR_TYPE         -7   /* Content-Type is not
                                           multipart/form-data */
#define SMARTY_MP_ERR_STOPPED      -6   /* feed after an error or after DONE
                                           with non-whitespace epilogue is
                                           ignored; this is never returned
                                           for trailing epilogue bytes */


typedef struct {
    char        name[SMARTY_MP_NAME_MAX + 1];
    size_t      name_len;
    char        filename[SMARTY_MP_FILENAME_MAX + 1];
    size_t      filename_len;
    int         has_filename;
    char        content_type[SMARTY_MP_CTYPE_MAX + 1];
    size_t      content_type_len;

    uint64_t    start;       /* offset of the first byte of the part's
                                header lines (just after the delimiter
                                line's CRLF) */
    uint64_t    data_start;  /* offset of the first data byte */
    uint64_t    data_end;    /* offset one past the last data byte (set
                                when part_end is called) */
} smarty_mp_part_t;


typedef struct {
    /* the part's headers were parsed; part->data_end is not yet known */
    int  (*part_begin)(void *ud, smarty_mp_part_t *part);
    /* a piece of the part's data; pieces arrive in order */
    int  (*part_data)(void *ud, smarty_mp_part_t *part, const unsigned char *p,
                      size_t len);
    /* the part's data is complete; part->data_end is set */
    int  (*part_end)(void *ud, smarty_mp_part_t *part);
} smarty_mp_callbacks_t;


typedef struct {
    /* all state is inline: no allocation */
    unsigned char          delim[SMARTY_MP_BOUNDARY_MAX + 4]; /* CRLF--b */
    size_t                 delim_len;

    const smarty_mp_callbacks_t  *cb;
    void                  *ud;

    int                    state;
    size_t                 match;        /* bytes of delim matched so far */
    uint64_t               offset;       /* bytes consumed so far */
    uint64_t               delim_offset; /* where a pending delim match began */

    unsigned char          hbuf[SMARTY_MP_HEADERS_MAX];
    size_t                 hlen;

    smarty_mp_part_t       part;
    unsigned               nparts;       /* named parts */
    unsigned               nskipped;     /* nameless parts, skipped */
    int                    skip;         /* in a nameless part */
    int                    error;
} smarty_mp_t;


/*
 * Extract the boundary from a Content-Type header value.  Accepts
 * "multipart/form-data" in any case, parameters in any order and case,
 * quoted or token boundary, optional whitespace.  Copies the boundary into
 * out (at least SMARTY_MP_BOUNDARY_MAX + 1 bytes), NUL-terminated.
 *
 * Returns 0 on success; SMARTY_MP_ERR_TYPE if the type is not
 * multipart/form-data;
 * SMARTY_MP_ERR_BOUNDARY if the boundary is missing or malformed (empty,
 * longer than 70, characters outside RFC 2046 bchars, trailing space).
 */
int smarty_mp_boundary(const char *ctype, size_t len, char *out,
    size_t *out_len);

void smarty_mp_init(smarty_mp_t *mp, const char *boundary, size_t len,
    const smarty_mp_callbacks_t *cb, void *ud);

/*
 * Feed the next len bytes of the body.  Returns SMARTY_MP_OK while more is
 * expected, SMARTY_MP_DONE once the closing delimiter has been seen (bytes
 * after it, the epilogue, are ignored), or a negative error code (sticky:
 * later calls return it again).
 */
int smarty_mp_feed(smarty_mp_t *mp, const unsigned char *p, size_t len);

/* end of body: SMARTY_MP_DONE if complete, else an error code */
int smarty_mp_finish(smarty_mp_t *mp);

const char *smarty_mp_strerror(int rc);

#endif /* SMARTY_MULTIPART_H */
