/*
 * smarty-gateway: unit tests of the streaming multipart parser (TAP).
 *
 * Every valid body is parsed in one piece, at every split point in two
 * pieces, byte by byte and in random pieces; every run must give the same
 * callbacks, offsets and data, and every part's data must equal the body
 * bytes at [data_start, data_end).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_multipart.h"
#include "tap.h"


#define REC_EV_MAX    32768

/* a test case's result: the part is skipped, the body parses */
#define SKIPPED       100
#define REC_DATA_MAX  (1024 * 1024)


typedef struct {
    char                  ev[REC_EV_MAX];   /* the events, as text */
    size_t                evlen;
    unsigned char        *data;             /* all parts' data, in order */
    size_t                dlen;
    size_t                part_dstart;      /* dlen at part_begin */

    const unsigned char  *body;
    size_t                body_len;

    int                   in_part;
    int                   nparts;
    uint64_t              last_end;
    int                   violations;
    char                  why[256];         /* the first violation */

    int                   stop_kind;        /* 1 begin, 2 data, 3 end */
    int                   stop_part;
    int                   stop_rc;
    int                   calls_after_stop;
    int                   stopped;
} rec_t;


static void
rec_violation(rec_t *r, const char *why)
{
    if (r->violations++ == 0) {
        snprintf(r->why, sizeof(r->why), "%s (part %d)", why, r->nparts);
    }
}


static void
rec_ev(rec_t *r, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    r->evlen += vsnprintf(r->ev + r->evlen, sizeof(r->ev) - r->evlen, fmt,
                          args);
    va_end(args);

    if (r->evlen >= sizeof(r->ev)) {
        r->evlen = sizeof(r->ev) - 1;
    }
}


static int
rec_begin(void *ud, smarty_mp_part_t *part)
{
    rec_t  *r = ud;

    if (r->stopped) {
        r->calls_after_stop++;
    }

    if (r->in_part) {
        rec_violation(r, "part_begin inside a part");
    }

    if (part->start < r->last_end || part->data_start < part->start) {
        rec_violation(r, "offsets not monotone at part_begin");
    }

    if (part->name_len != strlen(part->name)
        || part->filename_len != strlen(part->filename)
        || part->content_type_len != strlen(part->content_type))
    {
        rec_violation(r, "a length does not match its string");
    }

    r->in_part = 1;
    r->part_dstart = r->dlen;

    rec_ev(r, "begin[%s|%d:%s|%s|%llu|%llu]\n", part->name,
           part->has_filename, part->filename, part->content_type,
           (unsigned long long) part->start,
           (unsigned long long) part->data_start);

    if (r->stop_kind == 1 && r->stop_part == r->nparts) {
        r->stopped = 1;
        return r->stop_rc;
    }

    return SMARTY_MP_OK;
}


static int
rec_data(void *ud, smarty_mp_part_t *part, const unsigned char *p,
    size_t len)
{
    rec_t  *r = ud;

    if (r->stopped) {
        r->calls_after_stop++;
    }

    if (!r->in_part) {
        rec_violation(r, "part_data outside a part");
    }

    if (len == 0) {
        rec_violation(r, "an empty part_data");
    }

    if (r->dlen + len > REC_DATA_MAX) {
        rec_violation(r, "too much data");
        return -99;
    }

    memcpy(r->data + r->dlen, p, len);
    r->dlen += len;

    if (r->stop_kind == 2 && r->stop_part == r->nparts) {
        r->stopped = 1;
        return r->stop_rc;
    }

    return SMARTY_MP_OK;
}


static int
rec_end(void *ud, smarty_mp_part_t *part)
{
    rec_t   *r = ud;
    size_t   n;

    if (r->stopped) {
        r->calls_after_stop++;
    }

    if (!r->in_part) {
        rec_violation(r, "part_end outside a part");
    }

    n = r->dlen - r->part_dstart;

    if (part->data_end < part->data_start
        || part->data_end - part->data_start != n)
    {
        rec_violation(r, "data_end - data_start is not the data's length");

    } else if (part->data_end > r->body_len
               || memcmp(r->body + part->data_start,
                         r->data + r->part_dstart, n) != 0)
    {
        rec_violation(r, "the data is not body[data_start, data_end)");
    }

    rec_ev(r, "end[%llu|%zu]\n", (unsigned long long) part->data_end, n);

    r->in_part = 0;
    r->last_end = part->data_end;

    if (r->stop_kind == 3 && r->stop_part == r->nparts) {
        r->stopped = 1;
        r->nparts++;
        return r->stop_rc;
    }

    r->nparts++;

    return SMARTY_MP_OK;
}


static const smarty_mp_callbacks_t  rec_cb = {
    rec_begin, rec_data, rec_end
};


static rec_t *
rec_new(const void *body, size_t len)
{
    rec_t  *r;

    r = calloc(1, sizeof(rec_t));
    r->data = malloc(REC_DATA_MAX);
    r->body = body;
    r->body_len = len;

    return r;
}


static void
rec_free(rec_t *r)
{
    free(r->data);
    free(r);
}


static uint64_t  rnd_state = 88172645463325252ULL;

static uint64_t
rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}


/*
 * Parse body in pieces: sizes[] (0-terminated, the last size repeats) or
 * NULL for one piece.  Feeding stops at the first result that is not OK,
 * as the module does; then finish() unless DONE.  The final result.
 */

static int
parse(rec_t *r, const char *boundary, const void *body, size_t len,
    const size_t *sizes)
{
    int                   rc;
    size_t                off, n, k;
    smarty_mp_t          *mp;
    const unsigned char  *p;

    mp = malloc(sizeof(smarty_mp_t));
    smarty_mp_init(mp, boundary, strlen(boundary), &rec_cb, r);

    p = body;
    off = 0;
    k = 0;
    rc = SMARTY_MP_OK;

    while (off < len && rc == SMARTY_MP_OK) {
        n = len - off;

        if (sizes) {
            if (sizes[k] != 0 && sizes[k] < n) {
                n = sizes[k];
            }

            if (sizes[k + 1] != 0) {
                k++;
            }
        }

        rc = smarty_mp_feed(mp, p + off, n);
        off += n;
    }

    if (rc == SMARTY_MP_OK) {
        rc = smarty_mp_finish(mp);
    }

    free(mp);

    return rc;
}


static int
parse_one(rec_t *r, const char *boundary, const void *body, size_t len)
{
    return parse(r, boundary, body, len, NULL);
}


/* -------------------------------------------------------------------------- */

static void
test_simple(void)
{
    static const char  body[] =
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"meta\"\r\n"
        "Content-Type: application/json\r\n"
        "\r\n"
        "{\"space\":\"1\"}\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"file_0\"; "
        "filename=\"a.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n"
        "\r\n"
        "\xff\xd8\xff\xe0JPEG\r\n"
        "--XyZ--\r\n";

    int          rc;
    rec_t       *r;
    const char  *m0, *m1, *d1, *e1;
    char         want[512];

    r = rec_new(body, sizeof(body) - 1);
    rc = parse_one(r, "XyZ", body, sizeof(body) - 1);

    is_int(rc, SMARTY_MP_DONE, "simple: DONE");
    is_int(r->nparts, 2, "simple: two parts");
    ok(r->violations == 0, "simple: invariants hold %s", r->why);

    m0 = strstr(body, "Content-Disposition");
    m1 = strstr(body, "{\"space");
    d1 = strstr(m1, "Content-Disposition");
    e1 = strstr(body, "\xff\xd8");

    snprintf(want, sizeof(want),
             "begin[meta|0:|application/json|%d|%d]\n"
             "end[%d|13]\n"
             "begin[file_0|1:a.jpg|image/jpeg|%d|%d]\n"
             "end[%d|8]\n",
             (int) (m0 - body), (int) (m1 - body), (int) (m1 - body) + 13,
             (int) (d1 - body), (int) (e1 - body), (int) (e1 - body) + 8);

    is_str(r->ev, want, "simple: names, filename, types and offsets");
    is_mem(r->data, r->dlen, "{\"space\":\"1\"}\xff\xd8\xff\xe0JPEG", 21,
           "simple: the data of both parts, without the CRLF before "
           "delimiters");

    rec_free(r);
}


/* a body with one part named "a" holding data, between pre and post */

static size_t
one_part(char *out, size_t size, const char *boundary, const char *pre,
    const char *headers, const void *data, size_t dlen, const char *post)
{
    size_t  n;

    n = snprintf(out, size, "%s--%s\r\n%s\r\n", pre, boundary, headers);
    memcpy(out + n, data, dlen);
    n += dlen;
    n += snprintf(out + n, size - n, "\r\n--%s--%s", boundary, post);

    return n;
}


static void
expect_one(const char *what, const char *boundary, const char *body,
    size_t len, int want_rc, const char *want_name, const void *want_data,
    size_t want_dlen)
{
    int     rc;
    rec_t  *r;

    r = rec_new(body, len);
    rc = parse_one(r, boundary, body, len);

    is_int(rc, want_rc, "%s: result %s", what, smarty_mp_strerror(want_rc));

    if (want_rc == SMARTY_MP_DONE) {
        ok(r->nparts == 1 && r->violations == 0,
           "%s: one part, invariants hold %s", what, r->why);

        if (want_name) {
            ok(strstr(r->ev, want_name) != NULL, "%s: the part's name", what);
        }

        is_mem(r->data, r->dlen, want_data, want_dlen, "%s: the data", what);
    }

    rec_free(r);
}


/* the one part of body is skipped: the body parses, no callback sees it */

static void
expect_skipped(const char *what, const char *body, size_t len)
{
    int           rc;
    smarty_mp_t  *mp;

    static const smarty_mp_callbacks_t  none = { NULL, NULL, NULL };

    mp = malloc(sizeof(smarty_mp_t));
    smarty_mp_init(mp, "b", 1, &none, NULL);

    rc = smarty_mp_feed(mp, (const unsigned char *) body, len);
    if (rc == SMARTY_MP_OK) {
        rc = smarty_mp_finish(mp);
    }

    ok(rc == SMARTY_MP_DONE && mp->nparts == 0 && mp->nskipped == 1,
       "%s: skipped (rc %d, %u parts, %u skipped)", what, rc, mp->nparts,
       mp->nskipped);

    free(mp);
}


static void
test_framing(void)
{
    char    body[4096];
    size_t  n;

    n = one_part(body, sizeof(body), "b",
                 "this is the preamble\r\n-b\r\n--\r\n--c\r\n",
                 "Content-Disposition: form-data; name=\"a\"\r\n", "xy", 2,
                 "\r\nthis is the epilogue\r\n--b\r\nmore\r\n");
    expect_one("preamble (with delimiter-like lines) and epilogue",
               "b", body, n, SMARTY_MP_DONE, "[a|", "xy", 2);

    n = one_part(body, sizeof(body), "b", "\r\n",
                 "Content-Disposition: form-data; name=a\r\n", "xy", 2, "");
    expect_one("a CRLF preamble, token name, no CRLF after the close", "b",
               body, n, SMARTY_MP_DONE, "[a|", "xy", 2);

    n = snprintf(body, sizeof(body),
                 "--b \t \r\nContent-Disposition: form-data; name=a\r\n\r\n"
                 "xy\r\n--b\t\r\nContent-Disposition: form-data; name=c\r\n"
                 "\r\nz\r\n--b--  \r\n");
    {
        int     rc;
        rec_t  *r;

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        is_int(rc, SMARTY_MP_DONE, "transport padding after delimiters");
        is_mem(r->data, r->dlen, "xyz", 3, "padding: the data");
        is_int(r->nparts, 2, "padding: two parts");
        rec_free(r);
    }

    n = snprintf(body, sizeof(body),
                 "content-disposition: FORM-DATA; NAME=\"a\"; FileName=f\r\n"
                 "CONTENT-TYPE:image/png  \r\n");
    n = one_part(body + 512, sizeof(body) - 512, "b", "", body, "x", 1, "");
    expect_one("lower- and upper-case header and parameter names", "b",
               body + 512, n, SMARTY_MP_DONE, "[a|1:f|image/png|", "x", 1);

    n = one_part(body, sizeof(body), "b", "",
                 "Content-Disposition: form-data; name=\"a\"; "
                 "filename=\"\"\r\n",
                 "x", 1, "");
    expect_one("empty filename", "b", body, n, SMARTY_MP_DONE, "[a|1:|", "x",
               1);

    n = one_part(body, sizeof(body), "b", "",
                 "Content-Disposition: form-data; name=\"a\"\r\n", "", 0, "");
    expect_one("empty data", "b", body, n, SMARTY_MP_DONE, "[a|0:|", "", 0);

    n = one_part(body, sizeof(body), "b", "",
                 "Content-Disposition:form-data;name=\"a\\\"b\\\\c\";"
                 "filename = \"x\\\"y\" ; foo=bar;;\r\n", "1", 1, "");
    expect_one("escaped quotes and backslashes, odd spacing", "b", body, n,
               SMARTY_MP_DONE, "[a\"b\\c|1:x\"y|", "1", 1);

    n = one_part(body, sizeof(body), "b", "",
                 "X-Other: whatever; name=\"zzz\"\r\n"
                 "Content-Disposition: form-data; name=\"a\"\r\n"
                 "Content-Transfer-Encoding: binary\r\n", "1", 1, "");
    expect_one("other headers are ignored", "b", body, n, SMARTY_MP_DONE,
               "[a|", "1", 1);

    n = snprintf(body, sizeof(body), "--b--\r\n");
    {
        int     rc;
        rec_t  *r;

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        ok(rc == SMARTY_MP_DONE && r->nparts == 0, "no parts: no callbacks");
        rec_free(r);
    }

    n = snprintf(body, sizeof(body), "x--b\r\nContent-Disposition: "
                 "form-data; name=a\r\n\r\nq\r\n--b-");
    expect_one("a delimiter not at offset 0 needs its CRLF", "b", body, n,
               SMARTY_MP_ERR_TRUNCATED, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "x--b\r\nContent-Disposition: "
                 "form-data; name=a\r\n\r\nq\r\n--b--");
    {
        int     rc;
        rec_t  *r;

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        ok(rc == SMARTY_MP_DONE && r->nparts == 0,
           "a preamble then the closing delimiter: DONE, no parts");
        rec_free(r);
    }

    n = snprintf(body, sizeof(body), "no delimiter at all");
    expect_one("no delimiter at all", "b", body, n, SMARTY_MP_ERR_TRUNCATED,
               NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--bX\r\n");
    expect_one("--boundaryX is a syntax error", "b", body, n,
               SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data;"
                 " name=a\r\n\r\nx\r\n--bc\r\n");
    expect_one("a longer boundary in the data is a syntax error", "b", body,
               n, SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "preamble\r\n--bb\r\n--b\r\n");
    expect_one("--boundaryX in the preamble is a syntax error too", "b",
               body, n, SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b-x");
    expect_one("--boundary-x is a syntax error", "b", body, n,
               SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b  x\r\n");
    expect_one("padding then junk is a syntax error", "b", body, n,
               SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b\rx");
    expect_one("CR without LF after a delimiter", "b", body, n,
               SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);
}


/* CRLF only: a bare LF is never a line end (see smarty_multipart.c) */

static void
test_line_ends(void)
{
    char    body[1024];
    size_t  n;

    n = snprintf(body, sizeof(body), "--b\nContent-Disposition: form-data; "
                 "name=a\n\nx\n--b--\n");
    expect_one("LF-only body: the delimiter line needs CRLF", "b", body, n,
               SMARTY_MP_ERR_SYNTAX, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data; "
                 "name=a\n\r\nx\r\n--b--\r\n");
    expect_one("a header line ending in a bare LF", "b", body, n,
               SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data; "
                 "name=a\r\n\n\r\nx\r\n--b--\r\n");
    expect_one("a bare LF as the empty line", "b", body, n,
               SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);

    n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data; "
                 "name=a\rX: y\r\n\r\nx\r\n--b--\r\n");
    expect_one("a bare CR in a header line", "b", body, n,
               SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);

    n = one_part(body, sizeof(body), "b", "",
                 "Content-Disposition: form-data; name=a\r\n",
                 "1\n--b\r\r\n-b\n\r--b", 15, "");
    expect_one("LF--boundary and other near CRLFs in data are data", "b",
               body, n, SMARTY_MP_DONE, "[a|", "1\n--b\r\r\n-b\n\r--b", 15);

    n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data; "
                 "name=a\r\n\r\nx\n--b--\n");
    expect_one("data ending in LF--boundary--: no closing delimiter", "b",
               body, n, SMARTY_MP_ERR_TRUNCATED, NULL, NULL, 0);
}


static void
test_headers(void)
{
    char    body[40000], h[20000];
    size_t  n, k;

    static const struct {
        const char  *what;
        const char  *headers;
        int          rc;
    } cases[] = {
        { "no headers at all", "", SKIPPED },
        { "no Content-Disposition", "Content-Type: image/jpeg\r\n",
          SKIPPED },
        { "form-data without a name", "Content-Disposition: form-data\r\n",
          SKIPPED },
        { "only a filename",
          "Content-Disposition: form-data; filename=\"a\"\r\n",
          SKIPPED },
        { "an empty name", "Content-Disposition: form-data; name=\"\"\r\n",
          SKIPPED },
        { "an empty token name", "Content-Disposition: form-data; name=\r\n",
          SKIPPED },
        { "not form-data", "Content-Disposition: attachment; name=\"a\"\r\n",
          SKIPPED },
        { "name*= is not name",
          "Content-Disposition: form-data; name*=utf-8''a\r\n",
          SKIPPED },
        { "an empty Content-Disposition", "Content-Disposition:\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a header without a colon", "Content-Disposition form-data\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a header without a name", ": x\r\n", SMARTY_MP_ERR_HEADERS },
        { "space before the colon",
          "Content-Disposition : form-data; name=a\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a folded line",
          "Content-Disposition: form-data;\r\n name=a\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "two Content-Disposition headers",
          "Content-Disposition: form-data; name=a\r\n"
          "Content-Disposition: form-data; name=b\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "two Content-Type headers",
          "Content-Disposition: form-data; name=a\r\n"
          "Content-Type: a/b\r\nContent-Type: c/d\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "name given twice",
          "Content-Disposition: form-data; name=a; name=b\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "filename given twice",
          "Content-Disposition: form-data; name=a; filename=x; "
          "filename=y\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "an unterminated quoted name",
          "Content-Disposition: form-data; name=\"a\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a stray quote in a token",
          "Content-Disposition: form-data; name=a\"b\"\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a parameter without =",
          "Content-Disposition: form-data; name\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "junk after a quoted value",
          "Content-Disposition: form-data; name=\"a\" b\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a space inside a token value",
          "Content-Disposition: form-data; name=a b\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "a control character in a value",
          "Content-Disposition: form-data; name=\"a\x01\"\r\n",
          SMARTY_MP_ERR_HEADERS },
        { "DEL in another header", "Content-Disposition: form-data; name=a\r\n"
          "X-A: \x7f\r\n", SMARTY_MP_ERR_HEADERS },
        { "a non-token header name",
          "Content-Disposition: form-data; name=a\r\nX(y): z\r\n",
          SMARTY_MP_ERR_HEADERS },
    };

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        n = one_part(body, sizeof(body), "b", "", cases[k].headers, "x", 1,
                     "");

        if (cases[k].rc != SKIPPED) {
            expect_one(cases[k].what, "b", body, n, cases[k].rc, NULL, NULL,
                       0);
            continue;
        }

        expect_skipped(cases[k].what, body, n);
    }

    /* a nameless part between two named ones, as smarty.php sends it */

    n = snprintf(body, sizeof(body),
                 "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1"
                 "\r\n--b\r\nContent-Disposition: form-data; name=\"\"; "
                 "filename=\"\"\r\nContent-Type: application/octet-stream"
                 "\r\n\r\nplaceholder\r\n--b\r\nContent-Disposition: "
                 "form-data; name=c\r\n\r\n2\r\n--b--\r\n");
    {
        int     rc;
        rec_t  *r;

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        is_int(rc, SMARTY_MP_DONE, "a nameless part between two: parsed");
        is_int(r->nparts, 2, "the nameless part is skipped");
        is_mem(r->data, r->dlen, "12", 2, "none of its data is handed on");
        ok(r->violations == 0, "invariants hold %s", r->why);
        rec_free(r);
    }

    /* a NUL in a header line */
    {
        static const char  nul[] = "--b\r\nContent-Disposition: form-data; "
                                   "name=\"a\0b\"\r\n\r\nx\r\n--b--";

        expect_one("a NUL in a header value", "b", nul, sizeof(nul) - 1,
                   SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);
    }

    /* name: SMARTY_MP_NAME_MAX (4096) bytes are fine, one more is not */

    memset(h, 0, sizeof(h));
    k = snprintf(h, sizeof(h), "Content-Disposition: form-data; name=\"");
    memset(h + k, 'n', SMARTY_MP_NAME_MAX);
    strcpy(h + k + SMARTY_MP_NAME_MAX, "\"\r\n");
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("a 4096-byte name", "b", body, n, SMARTY_MP_DONE, "[nnnnnnn",
               "x", 1);

    memset(h + k, 'n', SMARTY_MP_NAME_MAX + 1);
    strcpy(h + k + SMARTY_MP_NAME_MAX + 1, "\"\r\n");
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("a 4097-byte name", "b", body, n, SMARTY_MP_ERR_NAME_LONG,
               NULL, NULL, 0);
    ok(strstr(smarty_mp_strerror(SMARTY_MP_ERR_NAME_LONG), "4096") != NULL,
       "the error names the limit");

    /* a PHP client's part name: the photo's path */

    k = snprintf(h, sizeof(h), "Content-Disposition: form-data; "
                 "name=\"/var/www/uploads/2026/11/28/");
    memset(h + k, 'p', 900);
    strcpy(h + k + 900, ".jpg\"; filename=\"photo.jpg\"\r\n");
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("a 1 KB path as the name", "b", body, n, SMARTY_MP_DONE,
               "[/var/www/uploads/2026/11/28/ppp", "x", 1);

    /* a long filename is cut at a UTF-8 character boundary */
    {
        int     rc;
        rec_t  *r;
        char    want[300];

        k = snprintf(h, sizeof(h),
                     "Content-Disposition: form-data; name=a; filename=\"");
        memset(h + k, 'f', 255);
        memcpy(h + k + 255, "\xc3\xa9\xc3\xa9\"\r\n", 7);
        h[k + 262] = '\0';
        n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        want[0] = ':';
        memset(want + 1, 'f', 255);
        snprintf(want + 256, sizeof(want) - 256, "|");
        is_int(rc, SMARTY_MP_DONE, "a 259-byte filename is accepted");
        ok(strstr(r->ev, want) != NULL,
           "and cut to 255 bytes, before a split UTF-8 character");
        rec_free(r);

        memset(h + k, 'f', 256);
        memcpy(h + k + 256, "\xc3\xa9\"\r\n", 5);
        h[k + 261] = '\0';
        n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        want[0] = ':';
        memset(want + 1, 'f', 256);
        snprintf(want + 257, sizeof(want) - 257, "|");
        ok(rc == SMARTY_MP_DONE && strstr(r->ev, want) != NULL,
           "a 258-byte filename is cut to 256 bytes");
        rec_free(r);
    }

    /* headers: SMARTY_MP_HEADERS_MAX bytes (lines with CRLFs) fit */

    k = snprintf(h, sizeof(h), "Content-Disposition: form-data; name=a\r\n"
                 "X-Pad: ");
    memset(h + k, 'p', SMARTY_MP_HEADERS_MAX - k - 2);
    strcpy(h + SMARTY_MP_HEADERS_MAX - 2, "\r\n");
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("headers of exactly SMARTY_MP_HEADERS_MAX bytes", "b", body, n,
               SMARTY_MP_DONE, "[a|", "x", 1);

    memset(h + k, 'p', SMARTY_MP_HEADERS_MAX - k - 1);
    strcpy(h + SMARTY_MP_HEADERS_MAX - 1, "\r\n");
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("headers one byte over SMARTY_MP_HEADERS_MAX", "b", body, n,
               SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);

    memset(h + k, 'p', sizeof(h) - k - 3);
    strcpy(h + sizeof(h) - 3, "\r\n");
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("one very long header line", "b", body, n,
               SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);

    /* many short lines over the limit */
    k = snprintf(h, sizeof(h), "Content-Disposition: form-data; name=a\r\n");
    while (k + 6 < sizeof(h)) {
        k += snprintf(h + k, sizeof(h) - k, "X: y\r\n");
    }
    n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");
    expect_one("many header lines over the limit", "b", body, n,
               SMARTY_MP_ERR_HEADERS, NULL, NULL, 0);

    /* Content-Type: kept trimmed, cut at SMARTY_MP_CTYPE_MAX */
    {
        int     rc;
        rec_t  *r;

        k = snprintf(h, sizeof(h), "Content-Disposition: form-data; name=a\r\n"
                     "Content-Type: ");
        memset(h + k, 't', 200);
        strcpy(h + k + 200, "\r\n");
        n = one_part(body, sizeof(body), "b", "", h, "x", 1, "");

        r = rec_new(body, n);
        rc = parse_one(r, "b", body, n);
        ok(rc == SMARTY_MP_DONE && r->violations == 0
           && strstr(r->ev, "|0:|tttt") != NULL,
           "a long Content-Type is cut %s", r->why);
        rec_free(r);
    }
}


/* boundaries whose prefixes repeat, near misses in the data */

static void
test_near_misses(void)
{
    char           body[4096];
    unsigned char  data[1024];
    size_t         n, dl, i;

    static const char  *bounds[] = {
        "aaab", "----aaaa", "-", "--", "ab", "a-a-a-b", "x", "= ?",
    };

    for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        dl = snprintf((char *) data, sizeof(data),
                      "aaaa\r\n--aaa\r\n--aaaab\r\n-----aaaa\r\n------aaa"
                      "\r\n--\r\n-\r\r\n--a-a-a-a-b\r\n--x%s\r\n--= ?!"
                      "\r\n--a\r\n--ab-\r\n--%.*s",
                      "y", (int) strlen(bounds[i]) - 1, bounds[i]);

        /* the data must not hold a real delimiter */
        if (strstr((char *) data, "\r\n--") != NULL) {
            char   d[80];
            char  *s;

            snprintf(d, sizeof(d), "\r\n--%s", bounds[i]);

            for (s = strstr((char *) data, d); s; s = strstr(s, d)) {
                /* remove the last byte of every real delimiter */
                memmove(s + strlen(d) - 1, s + strlen(d),
                        dl - (s + strlen(d) - (char *) data) + 1);
                dl--;
            }
        }

        n = one_part(body, sizeof(body), bounds[i], "aaab\r\n--aaa\r\n",
                     "Content-Disposition: form-data; name=a\r\n", data, dl,
                     "");
        {
            char  what[128];

            snprintf(what, sizeof(what), "near misses, boundary \"%s\"",
                     bounds[i]);
            expect_one(what, bounds[i], body, n, SMARTY_MP_DONE, "[a|", data,
                       dl);
        }
    }

    /* binary data: NUL, CR, LF, 0xff, "\r\n-" at the very end */

    for (i = 0; i < 256; i++) {
        data[i] = (unsigned char) i;
    }
    memcpy(data + 256, "\r\n\0\r\n-\0\r\n--\r\n-", 14);
    dl = 270;

    n = one_part(body, sizeof(body), "bin", "", "Content-Disposition: "
                 "form-data; name=\"bin\"\r\n", data, dl, "");
    expect_one("binary data with NUL, CR, LF and 8-bit bytes", "bin", body,
               n, SMARTY_MP_DONE, "[bin|", data, dl);

    n = one_part(body, sizeof(body), "b", "", "Content-Disposition: "
                 "form-data; name=\"a\"\r\n", "\r\n\r\n", 4, "");
    expect_one("data that is only CRLFs", "b", body, n, SMARTY_MP_DONE,
               "[a|", "\r\n\r\n", 4);

    n = one_part(body, sizeof(body), "b", "", "Content-Disposition: "
                 "form-data; name=\"a\"\r\n", "\r", 1, "");
    expect_one("data that is one CR", "b", body, n, SMARTY_MP_DONE,
               "[a|", "\r", 1);
}


/* -------------------------------------------------------------------------- */

/* the valid bodies every split is tried on */

typedef struct {
    const char  *boundary;
    char        *body;
    size_t       len;
    size_t       close_end;     /* offset just after the closing "--b--" */
} sample_t;


#define NSAMPLES  8

static sample_t  samples[NSAMPLES];


static void
sample_make(sample_t *s, const char *boundary, const char *pre, int nparts,
    const void *data, size_t dlen, const char *post)
{
    int     i;
    char   *p;
    size_t  size;

    size = strlen(pre) + nparts * (dlen + 200) + strlen(post) + 200;
    s->body = malloc(size);
    s->boundary = boundary;
    p = s->body;

    p += sprintf(p, "%s", pre);

    for (i = 0; i < nparts; i++) {
        p += sprintf(p, "--%s%s\r\nContent-Disposition: form-data; "
                     "name=\"p%d\"%s\r\n\r\n", boundary,
                     i == 1 ? " \t" : "", i, i == 2 ? "; filename=\"\"" : "");
        memcpy(p, data, dlen - (i % 3));
        p += dlen - (i % 3);
        p += sprintf(p, "\r\n");
    }

    p += sprintf(p, "--%s--", boundary);
    s->close_end = p - s->body;
    p += sprintf(p, "%s", post);

    s->len = p - s->body;
}


static void
samples_make(void)
{
    int            i;
    unsigned char  bin[3000];

    for (i = 0; i < (int) sizeof(bin); i++) {
        bin[i] = (unsigned char) (rnd() >> 24);

        /* plenty of near misses */
        if (i % 97 == 0 && i + 10 < (int) sizeof(bin)) {
            memcpy(bin + i, "\r\n--aa\r\n-", 9);
            i += 8;
        }
    }

    /* no real delimiter by chance */
    while (memmem(bin, sizeof(bin), "\r\n--aaa", 7) != NULL) {
        ((unsigned char *) memmem(bin, sizeof(bin), "\r\n--aaa", 7))[6] = 'b';
    }

    sample_make(&samples[0], "XyZ", "", 2, "hello", 5, "\r\n");
    sample_make(&samples[1], "aaab", "preamble \r\n--aaa\r\n", 3,
                "aaaa\r\n--aaa\r\naaab", 17, "\r\nepilogue\r\n--aaab\r\n");
    sample_make(&samples[2], "----aaaa", "\r\n", 3,
                "\r\n-----aaa\r\n------aaa\r\n--", 25, "");
    sample_make(&samples[3], "-", "", 4, "\r\n-\r\n\r\n\r-\r\n", 11, "\r\n");
    sample_make(&samples[4], "aaa", "", 3, bin, sizeof(bin), "\r\n");
    sample_make(&samples[5], "a b", "-a b\r\n", 2, "--a b", 5, "");
    sample_make(&samples[6], "b", "", 1, "\r", 1, "");
    sample_make(&samples[7], "e", "", 5, "\r\n-\r\n--\r\n--f\r\n-e", 16,
                "junk");
}


/* the reference run (one piece) against one with pieces */

static int
same_run(sample_t *s, rec_t *ref, int ref_rc, const size_t *sizes,
    char *why, size_t wsize)
{
    int     rc, same;
    rec_t  *r;

    why[0] = '\0';

    r = rec_new(s->body, s->len);
    rc = parse(r, s->boundary, s->body, s->len, sizes);

    same = (rc == ref_rc && r->evlen == ref->evlen
            && memcmp(r->ev, ref->ev, r->evlen) == 0
            && r->dlen == ref->dlen
            && memcmp(r->data, ref->data, r->dlen) == 0
            && r->violations == 0);

    if (!same) {
        snprintf(why, wsize, "rc %d/%d, events %s, data %s, %s", rc, ref_rc,
                 r->evlen == ref->evlen
                 && memcmp(r->ev, ref->ev, r->evlen) == 0 ? "same" : "differ",
                 r->dlen == ref->dlen
                 && memcmp(r->data, ref->data, r->dlen) == 0 ? "same"
                                                             : "differ",
                 r->violations ? r->why : "no violation");
    }

    rec_free(r);

    return same;
}


static void
test_splits(void)
{
    int       i, rc, good, seed;
    char      why[512];
    rec_t    *ref;
    size_t    k, n, sizes[4096];
    sample_t *s;

    for (i = 0; i < NSAMPLES; i++) {
        s = &samples[i];

        ref = rec_new(s->body, s->len);
        rc = parse_one(ref, s->boundary, s->body, s->len);

        ok(rc == SMARTY_MP_DONE && ref->violations == 0 && ref->nparts > 0,
           "sample %d (boundary \"%s\", %zu bytes): DONE, %d parts %s", i,
           s->boundary, s->len, ref->nparts, ref->why);

        /* two pieces, at every split point */

        good = 1;

        for (k = 1; k < s->len && good; k++) {
            sizes[0] = k;
            sizes[1] = s->len;
            sizes[2] = 0;

            if (!same_run(s, ref, rc, sizes, why, sizeof(why))) {
                good = 0;
                diag("split at %zu: %s", k, why);
            }
        }

        ok(good, "sample %d: the same at every split point", i);

        /* three pieces around every position of the first delimiters */

        good = 1;

        for (k = 1; k + 1 < s->len && k < 200 && good; k++) {
            for (n = 1; n < 12 && k + n < s->len && good; n++) {
                sizes[0] = k;
                sizes[1] = n;
                sizes[2] = s->len;
                sizes[3] = 0;

                if (!same_run(s, ref, rc, sizes, why, sizeof(why))) {
                    good = 0;
                    diag("pieces %zu, %zu, rest: %s", k, n, why);
                }
            }
        }

        ok(good, "sample %d: the same in three pieces", i);

        /* byte by byte */

        sizes[0] = 1;
        sizes[1] = 0;
        ok(same_run(s, ref, rc, sizes, why, sizeof(why)),
           "sample %d: the same byte by byte %s", i, why);

        /* random pieces */

        good = 1;

        for (seed = 0; seed < 50 && good; seed++) {
            for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]) - 1; k++) {
                sizes[k] = 1 + rnd() % (seed % 5 == 0 ? 3 : 40);
            }

            sizes[k] = 0;

            if (!same_run(s, ref, rc, sizes, why, sizeof(why))) {
                good = 0;
                diag("random pieces, seed %d: %s", seed, why);
            }
        }

        ok(good, "sample %d: the same in random pieces", i);

        rec_free(ref);
    }
}


/* every prefix of a valid body: never DONE before the closing delimiter */

static void
test_truncated(void)
{
    int       i, rc, good;
    rec_t    *ref, *r;
    size_t    k;
    sample_t *s;

    for (i = 0; i < NSAMPLES; i++) {
        s = &samples[i];

        ref = rec_new(s->body, s->len);
        parse_one(ref, s->boundary, s->body, s->len);

        good = 1;

        for (k = 0; k <= s->len && good; k++) {
            r = rec_new(s->body, k);
            rc = parse_one(r, s->boundary, s->body, k);

            if (k < s->close_end) {
                if (rc >= 0) {
                    diag("prefix of %zu bytes: %d", k, rc);
                    good = 0;
                }

            } else if (rc != SMARTY_MP_DONE) {
                diag("prefix of %zu bytes (complete): %d", k, rc);
                good = 0;
            }

            /* what was said must be the beginning of the whole story */

            if (r->evlen > ref->evlen || r->dlen > ref->dlen
                || memcmp(r->ev, ref->ev, r->evlen) != 0
                || memcmp(r->data, ref->data, r->dlen) != 0
                || r->violations)
            {
                diag("prefix of %zu bytes: events or data are not a prefix",
                     k);
                good = 0;
            }

            rec_free(r);
        }

        ok(good, "sample %d: every prefix is TRUNCATED or an error, "
           "DONE from the closing delimiter on", i);

        rec_free(ref);
    }
}


/* -------------------------------------------------------------------------- */

static void
test_stop(void)
{
    int           kind, rc, rc2;
    rec_t        *r;
    smarty_mp_t  *mp;
    sample_t     *s;

    static const char  *names[] = { "", "part_begin", "part_data",
                                    "part_end" };

    s = &samples[0];

    for (kind = 1; kind <= 3; kind++) {
        r = rec_new(s->body, s->len);
        r->stop_kind = kind;
        r->stop_part = 1;
        r->stop_rc = -42;

        mp = malloc(sizeof(smarty_mp_t));
        smarty_mp_init(mp, s->boundary, strlen(s->boundary), &rec_cb, r);

        rc = smarty_mp_feed(mp, (unsigned char *) s->body, s->len);
        is_int(rc, -42, "%s returning -42 stops the parse with -42",
               names[kind]);

        rc = smarty_mp_feed(mp, (unsigned char *) "more", 4);
        rc2 = smarty_mp_finish(mp);
        ok(rc == -42 && rc2 == -42 && r->calls_after_stop == 0,
           "%s: the stop is sticky (feed %d, finish %d), no more callbacks",
           names[kind], rc, rc2);

        free(mp);
        rec_free(r);
    }

    /* errors are sticky too; DONE stays DONE, the epilogue is ignored */

    mp = malloc(sizeof(smarty_mp_t));

    smarty_mp_init(mp, "b", 1, NULL, NULL);
    rc = smarty_mp_feed(mp, (unsigned char *) "--bX", 4);
    rc2 = smarty_mp_feed(mp, (unsigned char *) "\r\n", 2);
    ok(rc == SMARTY_MP_ERR_SYNTAX && rc2 == SMARTY_MP_ERR_SYNTAX
       && smarty_mp_finish(mp) == SMARTY_MP_ERR_SYNTAX,
       "an error is sticky across feed and finish");

    smarty_mp_init(mp, "b", 1, NULL, NULL);
    rc = smarty_mp_feed(mp, (unsigned char *) "--b--", 5);
    rc2 = smarty_mp_feed(mp, (unsigned char *) "\x01garbage\r\n--b\r\n", 15);
    ok(rc == SMARTY_MP_DONE && rc2 == SMARTY_MP_DONE
       && smarty_mp_finish(mp) == SMARTY_MP_DONE,
       "after DONE, feeds (the epilogue) and finish answer DONE");

    smarty_mp_init(mp, "b", 1, NULL, NULL);
    rc = smarty_mp_feed(mp, (unsigned char *) "--b", 3);
    rc2 = smarty_mp_finish(mp);
    ok(rc == SMARTY_MP_OK && rc2 == SMARTY_MP_ERR_TRUNCATED
       && smarty_mp_feed(mp, (unsigned char *) "--", 2)
          == SMARTY_MP_ERR_TRUNCATED,
       "finish before the end: TRUNCATED, and it sticks");

    smarty_mp_init(mp, "b", 1, NULL, NULL);
    ok(smarty_mp_feed(mp, (unsigned char *) "", 0) == SMARTY_MP_OK
       && smarty_mp_finish(mp) == SMARTY_MP_ERR_TRUNCATED,
       "an empty body is TRUNCATED");

    smarty_mp_init(mp, "", 0, NULL, NULL);
    is_int(smarty_mp_feed(mp, (unsigned char *) "--\r\n", 4),
           SMARTY_MP_ERR_BOUNDARY, "init with an empty boundary: feed "
           "answers ERR_BOUNDARY");

    smarty_mp_init(mp, "a\rb", 3, NULL, NULL);
    is_int(smarty_mp_finish(mp), SMARTY_MP_ERR_BOUNDARY,
           "init with a CR in the boundary: ERR_BOUNDARY");

    smarty_mp_init(mp, "ab ", 3, NULL, NULL);
    is_int(smarty_mp_finish(mp), SMARTY_MP_ERR_BOUNDARY,
           "init with a trailing space: ERR_BOUNDARY");

    {
        char  b71[72];

        memset(b71, 'b', 71);
        smarty_mp_init(mp, b71, 71, NULL, NULL);
        is_int(smarty_mp_finish(mp), SMARTY_MP_ERR_BOUNDARY,
               "init with a 71-byte boundary: ERR_BOUNDARY");
    }

    free(mp);

    ok(strlen(smarty_mp_strerror(SMARTY_MP_ERR_TRUNCATED)) > 0
       && strlen(smarty_mp_strerror(-100)) > 0
       && strlen(smarty_mp_strerror(SMARTY_MP_ERR_STOPPED)) > 0
       && strstr(smarty_mp_strerror(SMARTY_MP_ERR_TYPE), "Content-Type"),
       "smarty_mp_strerror has a sentence for every code");
}


/* the module keeps offsets: a 70-byte boundary, parts far into a body */

static void
test_long(void)
{
    int            rc;
    char           b70[71];
    rec_t         *r;
    size_t         n, dl;
    unsigned char *data;
    char          *body;
    size_t         sizes[3];
    char           why[256];
    sample_t       s;

    memset(b70, 'Z', 70);
    b70[0] = '\'';
    b70[69] = '?';
    b70[70] = '\0';

    dl = 300000;
    data = malloc(dl);
    for (n = 0; n < dl; n++) {
        data[n] = (unsigned char) (rnd() >> 30);
        if (n % 1000 == 0 && n + 80 < dl) {
            memcpy(data + n, "\r\n--", 4);
            memcpy(data + n + 4, b70, 69);
            data[n + 73] = 'x';
            n += 73;
        }
    }

    body = malloc(dl + 1000);
    n = one_part(body, dl + 1000, b70, "", "Content-Disposition: form-data; "
                 "name=\"big\"\r\n", data, dl, "\r\n");

    r = rec_new(body, n);
    rc = parse_one(r, b70, body, n);
    if (!ok(rc == SMARTY_MP_DONE && r->violations == 0 && r->dlen == dl
            && memcmp(r->data, data, dl) == 0,
            "a 70-byte boundary, 300 KB of data full of near misses %s",
            r->why))
    {
        diag("rc %d, %zu bytes of data", rc, r->dlen);
    }

    s.boundary = b70;
    s.body = body;
    s.len = n;

    sizes[0] = 65536;
    sizes[1] = 0;
    ok(same_run(&s, r, rc, sizes, why, sizeof(why)),
       "the same in 64 KB pieces %s", why);

    sizes[0] = 7;
    ok(same_run(&s, r, rc, sizes, why, sizeof(why)),
       "the same in 7-byte pieces %s", why);

    rec_free(r);
    free(body);
    free(data);
}


/* -------------------------------------------------------------------------- */

static void
test_boundary(void)
{
    int     rc;
    char    out[SMARTY_MP_BOUNDARY_MAX + 1], ct[256], b[201];
    size_t  k, len;

    static const struct {
        const char  *ctype;
        int          rc;
        const char  *boundary;
    } cases[] = {
        { "multipart/form-data; boundary=abc", 0, "abc" },
        { "Multipart/Form-Data;boundary=abc", 0, "abc" },
        { "MULTIPART/FORM-DATA; BOUNDARY=abc", 0, "abc" },
        { "  multipart/form-data ;  charset=utf-8 ; Boundary = \"a b c\" ",
          0, "a b c" },
        { "multipart/form-data; charset=\"utf;8\"; boundary=\"x\"", 0, "x" },
        { "multipart/form-data; boundary=\"----WebKitFormBoundary7MA4YWx\"",
          0, "----WebKitFormBoundary7MA4YWx" },
        { "multipart/form-data; boundary=----=_Part_0_12.34", 0,
          "----=_Part_0_12.34" },
        { "multipart/form-data; boundary=\"'()+_,-./:=?x\"", 0,
          "'()+_,-./:=?x" },
        { "multipart/form-data; boundary=\"a\\bc\"", 0, "abc" },
        { "multipart/form-data; boundary=abc;", 0, "abc" },
        { "multipart/form-data;;boundary=abc", 0, "abc" },
        { "multipart/form-data\t;\tboundary=abc\t", 0, "abc" },
        { "multipart/form-data; boundary=abc; charset=utf-8", 0, "abc" },

        { "multipart/form-data", SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data;", SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; charset=utf-8", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=", SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; boundary=\"\"", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=a@b", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=\"a;b\"", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=\"a\\\"b\"", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=\"abc \"", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=\"abc", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=abc def", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=\"abc\"def",
          SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; boundary=a\"bc\"", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data boundary=abc", SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; boundary", SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; =abc", SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; boundary=a; boundary=a",
          SMARTY_MP_ERR_BOUNDARY, NULL },
        { "multipart/form-data; boundary=\"a\x01\"", SMARTY_MP_ERR_BOUNDARY,
          NULL },
        { "multipart/form-data; boundary=\"\xc3\xa9\"",
          SMARTY_MP_ERR_BOUNDARY, NULL },

        { "application/json", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart/mixed; boundary=abc", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart/form-datax; boundary=abc", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart/ form-data; boundary=abc", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart /form-data; boundary=abc", SMARTY_MP_ERR_TYPE, NULL },
        { "form-data; boundary=abc", SMARTY_MP_ERR_TYPE, NULL },
        { "text/plain", SMARTY_MP_ERR_TYPE, NULL },
        { "", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart/", SMARTY_MP_ERR_TYPE, NULL },
        { "multipart/form-data\x01; boundary=abc", SMARTY_MP_ERR_BOUNDARY,
          NULL },
    };

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        len = 99;
        rc = smarty_mp_boundary(cases[k].ctype, strlen(cases[k].ctype), out,
                                &len);

        if (cases[k].boundary) {
            ok(rc == 0 && len == strlen(cases[k].boundary)
               && strcmp(out, cases[k].boundary) == 0,
               "boundary of '%s' is '%s' (rc %d, got '%s')", cases[k].ctype,
               cases[k].boundary, rc, rc == 0 ? out : "");

        } else {
            is_int(rc, cases[k].rc, "boundary of '%s': %s", cases[k].ctype,
                   cases[k].rc == SMARTY_MP_ERR_TYPE
                   ? "not multipart/form-data" : "ERR_BOUNDARY");
        }
    }

    /* 70 is the limit, 71 is over it */

    memset(b, 'x', sizeof(b) - 1);
    b[200] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%.70s", b);
    rc = smarty_mp_boundary(ct, strlen(ct), out, &len);
    ok(rc == 0 && len == 70 && out[70] == '\0', "a 70-byte boundary");

    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=\"%.71s\"", b);
    rc = smarty_mp_boundary(ct, strlen(ct), out, &len);
    is_int(rc, SMARTY_MP_ERR_BOUNDARY, "a 71-byte boundary");

    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%.200s", b);
    rc = smarty_mp_boundary(ct, strlen(ct), out, &len);
    is_int(rc, SMARTY_MP_ERR_BOUNDARY, "an 80-byte boundary");

    /* not NUL-terminated: only len bytes count */

    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=abcdef");
    rc = smarty_mp_boundary(ct, strlen(ct) - 3, out, &len);
    ok(rc == 0 && len == 3 && strcmp(out, "abc") == 0,
       "only len bytes of the value are read");

    rc = smarty_mp_boundary(ct, 19, out, &len);
    is_int(rc, SMARTY_MP_ERR_BOUNDARY,
           "multipart/form-data cut before its parameters: no boundary");
}


int
main(void)
{
    samples_make();

    test_simple();
    test_framing();
    test_line_ends();
    test_headers();
    test_near_misses();
    test_splits();
    test_truncated();
    test_stop();
    test_long();
    test_boundary();

    return done_testing();
}
