/*
 * smarty-gateway: libFuzzer target for the streaming multipart parser.
 *
 * Input: byte 0 picks the boundary (one of a fixed set, or the next
 * byte0 % 72 bytes of the input, valid or not); byte 1 seeds the sizes of
 * the pieces; the rest is the body.  The body is parsed in one piece, in
 * the seeded pieces and byte by byte: the three runs must agree on every
 * callback, offset and data byte.  Checked on every run: offsets are
 * monotone, data_end >= data_start, the data pieces of a part concatenate
 * to exactly body[data_start, data_end), that range is followed by the
 * delimiter "\r\n--boundary" and holds none, part names are non-empty C
 * strings.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_multipart.h"


#define FZ_EV_MAX  65536


typedef struct {
    const uint8_t  *body;
    size_t          len;
    const uint8_t  *delim;        /* "\r\n--boundary" */
    size_t          delim_len;

    char            ev[FZ_EV_MAX];
    size_t          evlen;
    uint8_t        *data;         /* all data, as delivered */
    size_t          dlen;
    size_t          part_dstart;
    int             in_part;
    uint64_t        last_end;
    int             stop_at;      /* the begin/end call that stops, or -1 */
    int             calls;
} fz_rec_t;


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


static void
fz_ev(fz_rec_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fz_ev(fz_rec_t *r, const char *fmt, ...)
{
    va_list  args;
    int      n;

    va_start(args, fmt);
    n = vsnprintf(r->ev + r->evlen, sizeof(r->ev) - r->evlen, fmt, args);
    va_end(args);

    if (n > 0) {
        r->evlen += n;
    }

    if (r->evlen >= sizeof(r->ev)) {
        r->evlen = sizeof(r->ev) - 1;
    }
}


static int
fz_stop(fz_rec_t *r)
{
    return r->calls++ == r->stop_at ? -77 : 0;
}


static int
fz_begin(void *ud, smarty_mp_part_t *part)
{
    fz_rec_t  *r = ud;

    fz_assert(!r->in_part);
    fz_assert(part->start >= r->last_end);
    fz_assert(part->start >= r->delim_len);
    fz_assert(memcmp(r->body + part->start - 2, "\r\n", 2) == 0);
    fz_assert(part->data_start >= part->start + 2);
    fz_assert(part->data_start <= r->len);
    fz_assert(memcmp(r->body + part->data_start - 2, "\r\n", 2) == 0);
    fz_assert(part->name_len > 0 && part->name_len <= SMARTY_MP_NAME_MAX);
    fz_assert(part->name_len == strlen(part->name));
    fz_assert(part->filename_len == strlen(part->filename));
    fz_assert(part->filename_len <= SMARTY_MP_FILENAME_MAX);
    fz_assert(part->has_filename || part->filename_len == 0);
    fz_assert(part->content_type_len == strlen(part->content_type));
    fz_assert(part->content_type_len <= SMARTY_MP_CTYPE_MAX);
    fz_assert(part->data_start - part->start <= SMARTY_MP_HEADERS_MAX + 2);

    r->in_part = 1;
    r->part_dstart = r->dlen;

    fz_ev(r, "B%s|%d%s|%s|%llu|%llu\n", part->name, part->has_filename,
          part->filename, part->content_type,
          (unsigned long long) part->start,
          (unsigned long long) part->data_start);

    return fz_stop(r);
}


static int
fz_data(void *ud, smarty_mp_part_t *part, const unsigned char *p, size_t len)
{
    fz_rec_t  *r = ud;

    fz_assert(r->in_part);
    fz_assert(len > 0);
    fz_assert(r->dlen + len <= r->len);

    memcpy(r->data + r->dlen, p, len);
    r->dlen += len;

    /* everything delivered so far is in place in the body */
    fz_assert(part->data_start + (r->dlen - r->part_dstart) <= r->len);
    fz_assert(memcmp(r->body + part->data_start, r->data + r->part_dstart,
                     r->dlen - r->part_dstart) == 0);

    return 0;    /* pieces differ between runs: never stop here */
}


static int
fz_end(void *ud, smarty_mp_part_t *part)
{
    fz_rec_t  *r = ud;
    size_t     n;

    fz_assert(r->in_part);
    fz_assert(part->data_end >= part->data_start);

    n = r->dlen - r->part_dstart;

    fz_assert(part->data_end - part->data_start == n);
    fz_assert(part->data_end + r->delim_len <= r->len);
    fz_assert(memcmp(r->body + part->data_start, r->data + r->part_dstart, n)
              == 0);
    fz_assert(memcmp(r->body + part->data_end, r->delim, r->delim_len) == 0);

    /* the first delimiter after the data is the one that ends it */
    fz_assert(memmem(r->body + part->data_start, n + r->delim_len - 1,
                     r->delim, r->delim_len) == NULL);

    r->in_part = 0;
    r->last_end = part->data_end;

    fz_ev(r, "E%llu|%zu\n", (unsigned long long) part->data_end, n);

    return fz_stop(r);
}


static const smarty_mp_callbacks_t  fz_cb = { fz_begin, fz_data, fz_end };


static int
fz_run(fz_rec_t *r, const char *b, size_t blen, const uint8_t *body,
    size_t len, unsigned seed, int mode)
{
    int           rc;
    size_t        off, n;
    smarty_mp_t  *mp;

    mp = malloc(sizeof(smarty_mp_t));
    smarty_mp_init(mp, b, blen, &fz_cb, r);

    rc = SMARTY_MP_OK;
    off = 0;

    while (off < len && rc == SMARTY_MP_OK) {
        if (mode == 0) {
            n = len - off;

        } else if (mode == 1) {
            n = 1;

        } else {
            seed = seed * 1103515245 + 12345;
            n = 1 + (seed >> 16) % ((seed & 1) ? 5 : 97);
        }

        if (n > len - off) {
            n = len - off;
        }

        rc = smarty_mp_feed(mp, body + off, n);
        off += n;

        fz_assert(rc == SMARTY_MP_OK || rc == SMARTY_MP_DONE || rc < 0);
    }

    if (rc == SMARTY_MP_OK) {
        rc = smarty_mp_finish(mp);
        fz_assert(rc == SMARTY_MP_DONE || rc < 0);
    }

    /* sticky */
    fz_assert(smarty_mp_feed(mp, (const unsigned char *) "x", 1) == rc);
    fz_assert(smarty_mp_finish(mp) == rc);

    if (rc == SMARTY_MP_DONE) {
        fz_assert(!r->in_part);
    }

    free(mp);

    return rc;
}


static const char  *fz_bounds[] = {
    "b", "XyZ", "aaab", "----aaaa", "-", "a b", "'()+_,-./:=?",
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",
};

#define FZ_NBOUNDS  (sizeof(fz_bounds) / sizeof(fz_bounds[0]))


int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    int           rc[3], i;
    char          b[80];
    size_t        blen, len;
    uint8_t       delim[80];
    unsigned      seed;
    fz_rec_t     *r[3];
    const uint8_t *body;

    if (size < 2) {
        return 0;
    }

    if (in[0] < FZ_NBOUNDS * 16) {
        snprintf(b, sizeof(b), "%s", fz_bounds[in[0] % FZ_NBOUNDS]);
        blen = strlen(b);
        body = in + 2;

    } else {
        blen = in[0] % 72;
        if (blen > size - 2) {
            blen = size - 2;
        }
        memcpy(b, in + 2, blen);
        body = in + 2 + blen;
    }

    seed = in[1];
    len = size - (body - in);

    delim[0] = '\r';
    delim[1] = '\n';
    delim[2] = '-';
    delim[3] = '-';
    memcpy(delim + 4, b, blen);

    for (i = 0; i < 3; i++) {
        r[i] = calloc(1, sizeof(fz_rec_t));
        r[i]->data = malloc(len + 1);
        r[i]->body = body;
        r[i]->len = len;
        r[i]->delim = delim;
        r[i]->delim_len = blen + 4;
        /* seeds with the top bit set stop at some callback */
        r[i]->stop_at = (seed & 0x80) ? (int) (seed & 0x0f) : -1;

        rc[i] = fz_run(r[i], b, blen, body, len, seed, i);
    }

    for (i = 1; i < 3; i++) {
        fz_assert(rc[i] == rc[0]);
        fz_assert(r[i]->evlen == r[0]->evlen);
        fz_assert(memcmp(r[i]->ev, r[0]->ev, r[0]->evlen) == 0);
        fz_assert(r[i]->dlen == r[0]->dlen);
        fz_assert(memcmp(r[i]->data, r[0]->data, r[0]->dlen) == 0);
    }

    if (r[0]->stop_at >= 0 && r[0]->calls > r[0]->stop_at) {
        fz_assert(rc[0] == -77);
    }

    for (i = 0; i < 3; i++) {
        free(r[i]->data);
        free(r[i]);
    }

    return 0;
}
