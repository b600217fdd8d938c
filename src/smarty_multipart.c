/*
 * smarty-gateway: streaming multipart/form-data parser (RFC 7578, RFC 2046).
 *
 * The body arrives in slices of any size; a delimiter may be split across
 * any number of them.  Every byte is looked at once: the delimiter
 * "CRLF--boundary" is matched with a partial-match counter that survives
 * between feeds, and the bytes of a partial match that fails are handed to
 * the caller as data (from the pattern itself when they arrived in an
 * earlier slice).
 *
 * Why a plain counter is enough (no KMP table): the pattern begins with CR
 * and CR is not a boundary character (smarty_mp_init() refuses boundaries
 * outside RFC 2046 bchars), so no proper suffix of a partial match can be
 * the beginning of another match.  After a mismatch only the current byte
 * can start a new match; boundaries such as "----aaaa" or "aaab" need no
 * special care.
 *
 * Decisions:
 *  - the preamble (before the first delimiter) and the epilogue (after the
 *    closing delimiter) are ignored; the first delimiter may be at offset 0
 *    without the leading CRLF;
 *  - a delimiter is followed by "--" (closing: SMARTY_MP_DONE at once, the
 *    rest is epilogue) or by transport padding (SP, HT) and CRLF; anything
 *    else, e.g. "--boundaryX", is SMARTY_MP_ERR_SYNTAX, never data;
 *  - line ends are CRLF only, for the delimiter line and the header lines:
 *    a bare LF or CR is an error (ERR_SYNTAX on the delimiter line,
 *    ERR_HEADERS in headers).  The gateway forwards the body unchanged, so
 *    it must not read a body differently from a strict upstream;
 *  - header lines: a token name, ':', a value without control characters
 *    (HT and 8-bit bytes are fine); folded lines, two Content-Disposition
 *    or two Content-Type headers, a parameter given twice, an unterminated
 *    quoted string are ERR_HEADERS.  Other headers are ignored; the header
 *    block (lines and their CRLFs, not the empty line) is at most
 *    SMARTY_MP_HEADERS_MAX bytes;
 *  - a part whose Content-Disposition is missing, not form-data (any
 *    case), or without a non-empty "name" is skipped: no callback sees it
 *    (nskipped counts it), as Go's form reader, which the API uses, skips
 *    it.  Parameter values are a quoted string (backslash escapes the next
 *    byte, as in RFC 7230 quoted-pair) or a run of bytes up to ';', space,
 *    tab or '"'.  A name longer than SMARTY_MP_NAME_MAX is ERR_NAME_LONG;
 *    a longer filename or Content-Type is truncated (at a UTF-8 character
 *    boundary), they mean nothing to the API.
 */

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "smarty_multipart.h"


/* smarty_mp_headers(): a nameless part, to skip */
#define SMARTY_MP_SKIP  2


enum {
    SMARTY_MP_S_PREAMBLE = 0,   /* looking for the first delimiter */
    SMARTY_MP_S_DELIM,          /* just after "--boundary" */
    SMARTY_MP_S_CLOSE,          /* after "--boundary-" */
    SMARTY_MP_S_PAD,            /* transport padding after the delimiter */
    SMARTY_MP_S_DELIM_LF,       /* after the delimiter line's CR */
    SMARTY_MP_S_HEADER,         /* in the part's header lines */
    SMARTY_MP_S_HEADER_LF,      /* after a header line's CR */
    SMARTY_MP_S_DATA,           /* in the part's data */
    SMARTY_MP_S_DONE            /* the closing delimiter was seen */
};


static int smarty_mp_bchar(int c);
static int smarty_mp_tchar(int c);
static void smarty_mp_part_reset(smarty_mp_part_t *part);
static int smarty_mp_scan(smarty_mp_t *mp, const unsigned char *p,
    size_t len, size_t *pos);
static int smarty_mp_data(smarty_mp_t *mp, const unsigned char *p,
    size_t len);
static int smarty_mp_header_byte(smarty_mp_t *mp, int c, uint64_t at);
static int smarty_mp_headers(smarty_mp_t *mp);
static int smarty_mp_disposition(smarty_mp_t *mp, const unsigned char *p,
    const unsigned char *end);
static int smarty_mp_value(const unsigned char **pp, const unsigned char *end,
    char *out, size_t cap, size_t *total);
static size_t smarty_mp_utf8_cut(const char *s, size_t len, size_t max);


/* RFC 2046 bchars, space included (but not as the last character) */

static int
smarty_mp_bchar(int c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z'))
    {
        return 1;
    }

    return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}


/* RFC 7230 tchar */

static int
smarty_mp_tchar(int c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


static int
smarty_mp_ws(int c)
{
    return c == ' ' || c == '\t';
}


/*
 * The next parameter of a header value: *( OWS ";" OWS [ name OWS "=" OWS
 * value ] ) OWS.  Returns 1 with *name, *nlen set and *pp at the value, 0
 * at the end, -1 on a syntax error.
 */

static int
smarty_mp_param(const unsigned char **pp, const unsigned char *end,
    const unsigned char **name, size_t *nlen)
{
    const unsigned char  *p;

    p = *pp;

    for ( ;; ) {
        while (p < end && smarty_mp_ws(*p)) {
            p++;
        }

        if (p == end) {
            *pp = p;
            return 0;
        }

        if (*p != ';') {
            return -1;
        }

        p++;

        while (p < end && smarty_mp_ws(*p)) {
            p++;
        }

        if (p < end && *p != ';') {
            break;
        }
    }

    *name = p;
    while (p < end && smarty_mp_tchar(*p)) {
        p++;
    }

    *nlen = p - *name;

    while (p < end && smarty_mp_ws(*p)) {
        p++;
    }

    if (*nlen == 0 || p == end || *p != '=') {
        return -1;
    }

    p++;

    while (p < end && smarty_mp_ws(*p)) {
        p++;
    }

    *pp = p;

    return 1;
}


int
smarty_mp_boundary(const char *ctype, size_t len, char *out, size_t *out_len)
{
    int                   rc, found;
    size_t                n, total;
    const unsigned char  *p, *end, *s, *name;
    char                  value[SMARTY_MP_BOUNDARY_MAX + 2];

    p = (const unsigned char *) ctype;
    end = p + len;

    *out_len = 0;
    out[0] = '\0';

    while (p < end && smarty_mp_ws(*p)) {
        p++;
    }

    /* the media type: "multipart" "/" "form-data", any case */

    s = p;
    while (p < end && smarty_mp_tchar(*p)) {
        p++;
    }

    if (p - s != 9 || strncasecmp((const char *) s, "multipart", 9) != 0
        || p == end || *p != '/')
    {
        return SMARTY_MP_ERR_TYPE;
    }

    s = ++p;
    while (p < end && smarty_mp_tchar(*p)) {
        p++;
    }

    if (p - s != 9 || strncasecmp((const char *) s, "form-data", 9) != 0) {
        return SMARTY_MP_ERR_TYPE;
    }

    /* parameters: *( OWS ";" OWS [ name OWS "=" OWS value ] ) OWS */

    found = 0;

    for ( ;; ) {
        rc = smarty_mp_param(&p, end, &name, &n);

        if (rc == 0) {
            break;
        }

        if (rc < 0) {
            return SMARTY_MP_ERR_BOUNDARY;
        }

        if (smarty_mp_value(&p, end, value, sizeof(value), &total) != 0) {
            return SMARTY_MP_ERR_BOUNDARY;
        }

        if (n != 8 || strncasecmp((const char *) name, "boundary", 8) != 0) {
            continue;
        }

        if (found) {
            return SMARTY_MP_ERR_BOUNDARY;   /* two boundaries: ambiguous */
        }

        found = 1;

        if (total == 0 || total > SMARTY_MP_BOUNDARY_MAX
            || value[total - 1] == ' ')
        {
            return SMARTY_MP_ERR_BOUNDARY;
        }

        for (n = 0; n < total; n++) {
            if (!smarty_mp_bchar((unsigned char) value[n])) {
                return SMARTY_MP_ERR_BOUNDARY;
            }
        }

        memcpy(out, value, total);
        out[total] = '\0';
        *out_len = total;
    }

    return found ? 0 : SMARTY_MP_ERR_BOUNDARY;
}


void
smarty_mp_init(smarty_mp_t *mp, const char *boundary, size_t len,
    const smarty_mp_callbacks_t *cb, void *ud)
{
    size_t  i;

    /* all but the header buffer and the part's strings (kilobytes) */

    memset(mp, 0, offsetof(smarty_mp_t, hbuf));
    memset(&mp->nparts, 0,
           sizeof(smarty_mp_t) - offsetof(smarty_mp_t, nparts));
    mp->hlen = 0;
    smarty_mp_part_reset(&mp->part);

    mp->cb = cb;
    mp->ud = ud;

    if (len == 0 || len > SMARTY_MP_BOUNDARY_MAX
        || boundary[len - 1] == ' ')
    {
        mp->error = SMARTY_MP_ERR_BOUNDARY;
        return;
    }

    for (i = 0; i < len; i++) {
        if (!smarty_mp_bchar((unsigned char) boundary[i])) {
            mp->error = SMARTY_MP_ERR_BOUNDARY;
            return;
        }
    }

    mp->delim[0] = '\r';
    mp->delim[1] = '\n';
    mp->delim[2] = '-';
    mp->delim[3] = '-';
    memcpy(mp->delim + 4, boundary, len);
    mp->delim_len = len + 4;

    /*
     * The first delimiter may be at offset 0 without its CRLF: start as if
     * a CRLF had been matched just before the body.
     */
    mp->state = SMARTY_MP_S_PREAMBLE;
    mp->match = 2;
}


/* a part as new: its lengths and flags, its strings empty */

static void
smarty_mp_part_reset(smarty_mp_part_t *part)
{
    part->name[0] = '\0';
    part->name_len = 0;
    part->filename[0] = '\0';
    part->filename_len = 0;
    part->has_filename = 0;
    part->content_type[0] = '\0';
    part->content_type_len = 0;
    part->start = 0;
    part->data_start = 0;
    part->data_end = 0;
}


static int
smarty_mp_fail(smarty_mp_t *mp, int rc)
{
    mp->error = rc;
    return rc;
}


int
smarty_mp_feed(smarty_mp_t *mp, const unsigned char *p, size_t len)
{
    int       rc, c;
    size_t    i;
    uint64_t  base;

    if (mp->error) {
        return mp->error;
    }

    if (mp->state == SMARTY_MP_S_DONE) {
        return SMARTY_MP_DONE;
    }

    base = mp->offset;
    i = 0;

    while (i < len) {

        switch (mp->state) {

        case SMARTY_MP_S_PREAMBLE:
        case SMARTY_MP_S_DATA:
            rc = smarty_mp_scan(mp, p, len, &i);
            if (rc < 0) {
                return smarty_mp_fail(mp, rc);
            }

            continue;

        case SMARTY_MP_S_DELIM:
            c = p[i];

            if (c == '-') {
                mp->state = SMARTY_MP_S_CLOSE;

            } else if (smarty_mp_ws(c)) {
                mp->state = SMARTY_MP_S_PAD;

            } else if (c == '\r') {
                mp->state = SMARTY_MP_S_DELIM_LF;

            } else {
                return smarty_mp_fail(mp, SMARTY_MP_ERR_SYNTAX);
            }

            break;

        case SMARTY_MP_S_CLOSE:
            if (p[i] != '-') {
                return smarty_mp_fail(mp, SMARTY_MP_ERR_SYNTAX);
            }

            mp->state = SMARTY_MP_S_DONE;
            mp->offset = base + i + 1;

            return SMARTY_MP_DONE;

        case SMARTY_MP_S_PAD:
            c = p[i];

            if (c == '\r') {
                mp->state = SMARTY_MP_S_DELIM_LF;

            } else if (!smarty_mp_ws(c)) {
                return smarty_mp_fail(mp, SMARTY_MP_ERR_SYNTAX);
            }

            break;

        case SMARTY_MP_S_DELIM_LF:
            if (p[i] != '\n') {
                return smarty_mp_fail(mp, SMARTY_MP_ERR_SYNTAX);
            }

            /* a new part: its header lines begin at the next byte */

            smarty_mp_part_reset(&mp->part);
            mp->part.start = base + i + 1;
            mp->hlen = 0;
            mp->state = SMARTY_MP_S_HEADER;
            break;

        case SMARTY_MP_S_HEADER:
        case SMARTY_MP_S_HEADER_LF:
            rc = smarty_mp_header_byte(mp, p[i], base + i);
            if (rc < 0) {
                return smarty_mp_fail(mp, rc);
            }

            break;

        default:  /* SMARTY_MP_S_DONE: not reached */
            return SMARTY_MP_DONE;
        }

        i++;
    }

    mp->offset = base + len;

    return SMARTY_MP_OK;
}


/*
 * Preamble or part data: look for the delimiter from p[*pos].  Returns at
 * the end of the buffer (the partial match, if any, is kept in mp->match)
 * or just after a complete delimiter (state SMARTY_MP_S_DELIM, *pos set).
 *
 * Data bytes are handed on in runs.  The bytes of a partial match that
 * began in an earlier feed ("carry") are no longer in any buffer: when such
 * a match fails they are emitted from the pattern, which they equal.
 */

static int
smarty_mp_scan(smarty_mp_t *mp, const unsigned char *p, size_t len,
    size_t *pos)
{
    int                   rc, data;
    size_t                i, m, carry, dstart, end;
    const unsigned char  *d, *q;

    d = mp->delim;
    data = (mp->state == SMARTY_MP_S_DATA && !mp->skip);

    i = *pos;
    m = mp->match;
    carry = m;          /* any match in progress began before p[*pos] */
    dstart = i;

    while (i < len) {

        if (m == 0) {
            q = memchr(p + i, '\r', len - i);
            if (q == NULL) {
                i = len;
                break;
            }

            i = q - p + 1;
            m = 1;
            continue;
        }

        if (p[i] != d[m]) {

            /* the partial match is data; only p[i] may begin a new one */

            if (carry) {
                if (data) {
                    rc = smarty_mp_data(mp, d, carry);
                    if (rc < 0) {
                        return rc;
                    }
                }

                carry = 0;
            }

            m = 0;

            if (p[i] == '\r') {
                m = 1;
            }

            i++;
            continue;
        }

        m++;
        i++;

        if (m < mp->delim_len) {
            continue;
        }

        /* a complete delimiter ends at p[i - 1]; carried bytes are its own */

        if (data) {
            end = i - (m - carry);

            if (end > dstart) {
                rc = smarty_mp_data(mp, p + dstart, end - dstart);
                if (rc < 0) {
                    return rc;
                }
            }

            mp->part.data_end = mp->offset + i - m;

            if (mp->cb && mp->cb->part_end) {
                rc = mp->cb->part_end(mp->ud, &mp->part);
                if (rc < 0) {
                    return rc;
                }
            }
        }

        mp->match = 0;
        mp->state = SMARTY_MP_S_DELIM;
        *pos = i;

        return SMARTY_MP_OK;
    }

    /* the end of the buffer: what precedes a partial match is data */

    if (data) {
        end = len - (m - carry);

        if (end > dstart) {
            rc = smarty_mp_data(mp, p + dstart, end - dstart);
            if (rc < 0) {
                return rc;
            }
        }
    }

    mp->match = m;
    *pos = len;

    return SMARTY_MP_OK;
}


static int
smarty_mp_data(smarty_mp_t *mp, const unsigned char *p, size_t len)
{
    if (mp->cb == NULL || mp->cb->part_data == NULL) {
        return SMARTY_MP_OK;
    }

    return mp->cb->part_data(mp->ud, &mp->part, p, len);
}


/* one byte of a part's header block at absolute offset "at" */

static int
smarty_mp_header_byte(smarty_mp_t *mp, int c, uint64_t at)
{
    int  rc;

    if (mp->state == SMARTY_MP_S_HEADER) {

        if (c == '\r') {
            mp->state = SMARTY_MP_S_HEADER_LF;
            return SMARTY_MP_OK;
        }

        if (c == '\n' || mp->hlen >= SMARTY_MP_HEADERS_MAX) {
            return SMARTY_MP_ERR_HEADERS;
        }

        mp->hbuf[mp->hlen++] = (unsigned char) c;

        return SMARTY_MP_OK;
    }

    /* SMARTY_MP_S_HEADER_LF */

    if (c != '\n') {
        return SMARTY_MP_ERR_HEADERS;
    }

    /* lines are kept with their CRLF, so an empty line follows an LF */

    if (mp->hlen > 0 && mp->hbuf[mp->hlen - 1] != '\n') {
        if (mp->hlen + 2 > SMARTY_MP_HEADERS_MAX) {
            return SMARTY_MP_ERR_HEADERS;
        }

        mp->hbuf[mp->hlen++] = '\r';
        mp->hbuf[mp->hlen++] = '\n';
        mp->state = SMARTY_MP_S_HEADER;

        return SMARTY_MP_OK;
    }

    /* the empty line: the data begins at the next byte */

    rc = smarty_mp_headers(mp);
    mp->skip = (rc == SMARTY_MP_SKIP);

    if (rc < 0) {
        return rc;
    }

    mp->part.data_start = at + 1;
    mp->part.data_end = at + 1;
    mp->state = SMARTY_MP_S_DATA;
    mp->match = 0;

    if (mp->skip) {
        mp->nskipped++;
        return SMARTY_MP_OK;
    }

    mp->nparts++;

    if (mp->cb && mp->cb->part_begin) {
        rc = mp->cb->part_begin(mp->ud, &mp->part);
        if (rc < 0) {
            return rc;
        }
    }

    return SMARTY_MP_OK;
}


/* the header block in hbuf: lines, each ending with CRLF */

static int
smarty_mp_headers(smarty_mp_t *mp)
{
    int                   rc, seen_cd, seen_ct, skip;
    size_t                n, vlen;
    const unsigned char  *h, *end, *line, *eol, *colon, *v;

    h = mp->hbuf;
    end = h + mp->hlen;
    seen_cd = 0;
    seen_ct = 0;
    skip = 0;

    while (h < end) {
        line = h;
        eol = memchr(line, '\r', end - line);   /* always followed by LF */
        h = eol + 2;

        colon = line;
        while (colon < eol && smarty_mp_tchar(*colon)) {
            colon++;
        }

        /* no name, a folded line, space before ':' or no ':' at all */

        if (colon == line || colon == eol || *colon != ':') {
            return SMARTY_MP_ERR_HEADERS;
        }

        for (v = colon + 1; v < eol; v++) {
            if ((*v < 0x20 && *v != '\t') || *v == 0x7f) {
                return SMARTY_MP_ERR_HEADERS;
            }
        }

        v = colon + 1;
        while (v < eol && smarty_mp_ws(*v)) {
            v++;
        }

        while (eol > v && smarty_mp_ws(eol[-1])) {
            eol--;
        }

        n = colon - line;

        if (n == 19
            && strncasecmp((const char *) line, "Content-Disposition", 19)
               == 0)
        {
            if (seen_cd) {
                return SMARTY_MP_ERR_HEADERS;
            }

            seen_cd = 1;

            rc = smarty_mp_disposition(mp, v, eol);
            if (rc < 0) {
                return rc;
            }

            skip = (rc == SMARTY_MP_SKIP);

        } else if (n == 12
                   && strncasecmp((const char *) line, "Content-Type", 12)
                      == 0)
        {
            if (seen_ct) {
                return SMARTY_MP_ERR_HEADERS;
            }

            seen_ct = 1;

            vlen = smarty_mp_utf8_cut((const char *) v, eol - v,
                                      SMARTY_MP_CTYPE_MAX);
            memcpy(mp->part.content_type, v, vlen);
            mp->part.content_type[vlen] = '\0';
            mp->part.content_type_len = vlen;
        }
    }

    if (!seen_cd || skip || mp->part.name_len == 0) {
        return SMARTY_MP_SKIP;
    }

    return SMARTY_MP_OK;
}


/* form-data; name="..."; filename="..." (trimmed, no control characters) */

static int
smarty_mp_disposition(smarty_mp_t *mp, const unsigned char *p,
    const unsigned char *end)
{
    int                   rc, form, seen_name, seen_filename;
    size_t                n, total, cut;
    const unsigned char  *s;
    smarty_mp_part_t     *part;

    part = &mp->part;

    s = p;
    while (p < end && smarty_mp_tchar(*p)) {
        p++;
    }

    if (p == s) {
        return SMARTY_MP_ERR_HEADERS;
    }

    form = (p - s == 9 && strncasecmp((const char *) s, "form-data", 9) == 0);

    seen_name = 0;
    seen_filename = 0;

    for ( ;; ) {
        rc = smarty_mp_param(&p, end, &s, &n);

        if (rc == 0) {
            break;
        }

        if (rc < 0) {
            return SMARTY_MP_ERR_HEADERS;
        }

        if (n == 4 && strncasecmp((const char *) s, "name", 4) == 0) {
            if (seen_name) {
                return SMARTY_MP_ERR_HEADERS;
            }

            seen_name = 1;

            if (smarty_mp_value(&p, end, part->name, SMARTY_MP_NAME_MAX + 1,
                                &total)
                != 0)
            {
                return SMARTY_MP_ERR_HEADERS;
            }

            if (total > SMARTY_MP_NAME_MAX) {
                return SMARTY_MP_ERR_NAME_LONG;
            }

            part->name[total] = '\0';
            part->name_len = total;

        } else if (n == 8
                   && strncasecmp((const char *) s, "filename", 8) == 0)
        {
            if (seen_filename) {
                return SMARTY_MP_ERR_HEADERS;
            }

            seen_filename = 1;

            if (smarty_mp_value(&p, end, part->filename,
                                SMARTY_MP_FILENAME_MAX + 1, &total)
                != 0)
            {
                return SMARTY_MP_ERR_HEADERS;
            }

            cut = total;

            if (total > SMARTY_MP_FILENAME_MAX) {
                cut = smarty_mp_utf8_cut(part->filename,
                                         SMARTY_MP_FILENAME_MAX + 1,
                                         SMARTY_MP_FILENAME_MAX);
            }

            part->filename[cut] = '\0';
            part->filename_len = cut;
            part->has_filename = 1;

        } else if (smarty_mp_value(&p, end, NULL, 0, &total) != 0) {
            return SMARTY_MP_ERR_HEADERS;
        }
    }

    if (!form) {
        return SMARTY_MP_SKIP;
    }

    return SMARTY_MP_OK;
}


/*
 * A parameter value at *pp: a quoted string (unescaped) or a run of bytes
 * up to ';', space, tab or '"'.  Up to cap bytes go to out (may be NULL);
 * *total is the value's whole length.  Returns -1 for an unterminated
 * quoted string or a stray '"'.
 */

static int
smarty_mp_value(const unsigned char **pp, const unsigned char *end,
    char *out, size_t cap, size_t *total)
{
    size_t                n;
    const unsigned char  *p;

    p = *pp;
    n = 0;

    if (p < end && *p == '"') {
        p++;

        for ( ;; ) {
            if (p == end) {
                return -1;
            }

            if (*p == '"') {
                p++;
                break;
            }

            if (*p == '\\' && p + 1 < end) {
                p++;
            }

            if (n < cap) {
                out[n] = (char) *p;
            }

            n++;
            p++;
        }

    } else {
        while (p < end && *p != ';' && *p != '"' && !smarty_mp_ws(*p)) {
            if (n < cap) {
                out[n] = (char) *p;
            }

            n++;
            p++;
        }

        if (p < end && *p == '"') {
            return -1;
        }
    }

    *pp = p;
    *total = n;

    return 0;
}


/*
 * The length of the first at most max bytes of s (len bytes) that does not
 * end inside a UTF-8 sequence, when s must be cut.
 */

static size_t
smarty_mp_utf8_cut(const char *s, size_t len, size_t max)
{
    size_t  n;

    if (len <= max) {
        return len;
    }

    n = max;

    /* s[n] is the first byte cut off: back off while it continues one */

    while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
        n--;
    }

    return n;
}


int
smarty_mp_finish(smarty_mp_t *mp)
{
    if (mp->error) {
        return mp->error;
    }

    if (mp->state == SMARTY_MP_S_DONE) {
        return SMARTY_MP_DONE;
    }

    mp->error = SMARTY_MP_ERR_TRUNCATED;

    return SMARTY_MP_ERR_TRUNCATED;
}


const char *
smarty_mp_strerror(int rc)
{
    switch (rc) {

    case SMARTY_MP_OK:
        return "ok";

    case SMARTY_MP_DONE:
        return "complete";

    case SMARTY_MP_ERR_BOUNDARY:
        return "the multipart boundary is missing or malformed";

    case SMARTY_MP_ERR_SYNTAX:
        return "a multipart delimiter line is malformed";

    case SMARTY_MP_ERR_HEADERS:
        return "a multipart part has malformed or oversized headers";

    case SMARTY_MP_ERR_NAME_LONG:
        return "a multipart part's name is longer than 4096 bytes";

    case SMARTY_MP_ERR_TRUNCATED:
        return "the multipart body ends before its closing delimiter";

    case SMARTY_MP_ERR_TYPE:
        return "the Content-Type is not multipart/form-data";

    case SMARTY_MP_ERR_STOPPED:
        return "the multipart parser was stopped";

    default:
        return "the multipart parse was stopped by its caller";
    }
}
