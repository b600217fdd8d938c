/*
 * smarty-gateway: the per-image answer cache, the pure part (keys, split,
 * entries, answers built from them, meta subset).  See smarty_cache.h.
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "smarty_cache.h"


/* a growable string; oom set once an allocation failed */

typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
    int      oom;
} smarty_buf_t;


typedef struct {
    const char  *s;
    size_t       len;
    size_t       idx;
} smarty_name_t;


/* a cursor on an object's members or an array's elements */

typedef struct {
    const char  *p;
    const char  *end;
    char         close;
} smarty_scan_t;


/* an image's element of a list, in the text: [el, nv) name [nve, ele) */

typedef struct {
    const char  *el;            /* NULL: the list does not name the image */
    const char  *nv;
    const char  *nve;
    const char  *ele;
} smarty_span_t;


static void smarty_buf_add(smarty_buf_t *b, const char *s, size_t n);
static void smarty_buf_char(smarty_buf_t *b, char c);
static void smarty_buf_string(smarty_buf_t *b, const char *s, size_t n);
static void smarty_buf_real(smarty_buf_t *b, double d);
static void smarty_buf_json(smarty_buf_t *b, json_t *v);
static void smarty_buf_member(smarty_buf_t *b, const char *key, json_t *v,
    int first);
static char *smarty_buf_finish(smarty_buf_t *b, size_t *len);
static const char *smarty_scan_ws(const char *p, const char *end);
static const char *smarty_scan_string(const char *p, const char *end);
static const char *smarty_scan_value(const char *p, const char *end);
static int smarty_scan_open(smarty_scan_t *sc, const char *p,
    const char *end);
static int smarty_scan_next(smarty_scan_t *sc, const char **k,
    const char **v, const char **ve);
static int smarty_scan_member(const char *obj, const char *end, size_t idx,
    const char **v, const char **ve);
static int smarty_scan_same(const char *k, const char *end, const char *key);
static long smarty_member_index(json_t *obj, const char *key);
static int smarty_name_cmp(const void *a, const void *b);
static long smarty_name_find(const smarty_name_t *sorted, size_t n,
    const char *s, size_t len);
static int smarty_is_list(json_t *v);
static int smarty_split_fail(smarty_answer_t *out, char *err, size_t errlen,
    const char *fmt, ...);
static char *smarty_dec(char *p, size_t v);
static char *smarty_entry_make(const smarty_span_t *sp, size_t nl,
    char *const *keys, const size_t *klen, size_t *len);
static int smarty_entry_dec(const char **pp, const char *end, size_t *v);
static long smarty_plan_key(const smarty_answer_plan_t *plan,
    const char *key, size_t len);


/* --- keys ---------------------------------------------------------------- */

int
smarty_cache_params_id(const char *method_path, const char *params,
    size_t params_len, const char *args, size_t args_len,
    char out[SMARTY_PARAMS_ID_LEN + 1], void *md, const void *sha256)
{
    int             rc;
    size_t          i;
    unsigned int    mdlen;
    EVP_MD_CTX     *ctx;
    const EVP_MD   *alg;
    unsigned char   digest[EVP_MAX_MD_SIZE];

    static const char  hex[] = "0123456789abcdef";

    out[0] = '\0';

    ctx = md ? md : EVP_MD_CTX_new();
    alg = sha256 ? sha256 : EVP_sha256();

    if (ctx == NULL) {
        return -1;
    }

    rc = EVP_DigestInit_ex(ctx, alg, NULL)
         && EVP_DigestUpdate(ctx, method_path, strlen(method_path))
         && EVP_DigestUpdate(ctx, "\n", 1)
         && (params_len == 0 || EVP_DigestUpdate(ctx, params, params_len))
         && (args_len == 0 || (EVP_DigestUpdate(ctx, "\n", 1)
                               && EVP_DigestUpdate(ctx, args, args_len)))
         && EVP_DigestFinal_ex(ctx, digest, &mdlen);

    if (md == NULL) {
        EVP_MD_CTX_free(ctx);
    }

    if (!rc || mdlen * 2 < SMARTY_PARAMS_ID_LEN) {
        return -1;
    }

    for (i = 0; i < SMARTY_PARAMS_ID_LEN / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }

    out[SMARTY_PARAMS_ID_LEN] = '\0';

    return 0;
}


size_t
smarty_cache_base(const char *prefix, size_t prefix_len, int space,
    char *out, size_t size)
{
    char    tag[6], *p;
    size_t  tlen, n;

    if (prefix_len == 0) {
        prefix = "";
    }

    if (space < -1 || space > 9
        || memchr(prefix, '{', prefix_len) != NULL
        || memchr(prefix, '}', prefix_len) != NULL)
    {
        return 0;
    }

    if (space < 0) {
        memcpy(tag, "{d}", 3);
        tlen = 3;

    } else {
        memcpy(tag, "{s0}", 4);
        tag[2] = (char) ('0' + space);
        tlen = 4;
    }

    n = prefix_len + tlen;

    if (size == 0) {
        return n;
    }

    /* what fits, NUL-terminated, as snprintf */

    p = out;

    if (prefix_len) {
        memcpy(p, prefix, prefix_len < size - 1 ? prefix_len : size - 1);
    }

    if (prefix_len < size - 1) {
        memcpy(p + prefix_len, tag,
               tlen < size - 1 - prefix_len ? tlen : size - 1 - prefix_len);
    }

    p[n < size - 1 ? n : size - 1] = '\0';

    return n;
}


size_t
smarty_cache_gen_key(const char *base, size_t base_len, char *out,
    size_t size)
{
    int  n;

    if (base_len == 0) {
        base = "";
    }

    n = snprintf(out, size, "%.*s:gen", (int) base_len, base);

    return n < 0 ? 0 : (size_t) n;
}


static size_t
smarty_cache_image_key(const char *base, size_t base_len, const char *kind,
    const char *params_id, const char *sha256hex, char *out, size_t size)
{
    int      rc;
    char    *p;
    size_t   klen, ilen, hlen, n;

    /* at most the id's and the digest's lengths: neither need end in NUL */

    klen = strlen(kind);
    ilen = strnlen(params_id, SMARTY_PARAMS_ID_LEN);
    hlen = strnlen(sha256hex, 64);
    n = base_len + 1 + klen + 1 + ilen + 1 + hlen;

    if (n >= size) {
        /* measured, or cut as snprintf cuts */
        rc = snprintf(out, size, "%.*s:%s:%.*s:%.*s", (int) base_len,
                      base_len ? base : "", kind, (int) ilen, params_id,
                      (int) hlen, sha256hex);

        return rc < 0 ? 0 : (size_t) rc;
    }

    p = out;

    if (base_len) {
        memcpy(p, base, base_len);
        p += base_len;
    }

    *p++ = ':';
    memcpy(p, kind, klen);
    p += klen;
    *p++ = ':';
    memcpy(p, params_id, ilen);
    p += ilen;
    *p++ = ':';
    memcpy(p, sha256hex, hlen);
    p[hlen] = '\0';

    return n;
}


size_t
smarty_cache_entry_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size)
{
    return smarty_cache_image_key(base, base_len, "e2", params_id, sha256hex,
                                  out, size);
}


size_t
smarty_cache_lock_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size)
{
    return smarty_cache_image_key(base, base_len, "lock", params_id,
                                  sha256hex, out, size);
}


/* --- a compact JSON writer that keeps reals short ------------------------ */

static void
smarty_buf_add(smarty_buf_t *b, const char *s, size_t n)
{
    char    *p;
    size_t   cap;

    if (b->oom) {
        return;
    }

    if (n >= b->cap - b->len || b->p == NULL) {
        cap = b->cap ? b->cap : 256;

        while (cap - b->len <= n) {
            if (cap > ((size_t) -1) / 2) {
                b->oom = 1;
                return;
            }

            cap *= 2;
        }

        p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }

        b->p = p;
        b->cap = cap;
    }

    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}


static void
smarty_buf_char(smarty_buf_t *b, char c)
{
    smarty_buf_add(b, &c, 1);
}


static void
smarty_buf_string(smarty_buf_t *b, const char *s, size_t n)
{
    char           esc[8];
    size_t         i, run;
    unsigned char  c;

    smarty_buf_char(b, '"');

    run = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        smarty_buf_add(b, s + run, i - run);
        run = i + 1;

        switch (c) {
        case '"':  smarty_buf_add(b, "\\\"", 2); break;
        case '\\': smarty_buf_add(b, "\\\\", 2); break;
        case '\b': smarty_buf_add(b, "\\b", 2); break;
        case '\f': smarty_buf_add(b, "\\f", 2); break;
        case '\n': smarty_buf_add(b, "\\n", 2); break;
        case '\r': smarty_buf_add(b, "\\r", 2); break;
        case '\t': smarty_buf_add(b, "\\t", 2); break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04X", c);
            smarty_buf_add(b, esc, 6);
        }
    }

    smarty_buf_add(b, s + run, n - run);
    smarty_buf_char(b, '"');
}


/*
 * The shortest "%.*g" that reads back as d, but in fixed notation up to
 * 17 integer digits (1000.0, not 1e3), then jansson's touches: ".0" when
 * it would read as an integer, no '+' nor leading zeros in the exponent.
 */

static void
smarty_buf_real(smarty_buf_t *b, double d)
{
    int     prec, exp;
    char    buf[64], *e, *p, *q;

    if (!isfinite(d)) {
        b->oom = 1;                 /* jansson never holds one: refuse */
        return;
    }

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);

        if (strtod(buf, NULL) == d) {
            break;
        }
    }

    snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
    e = strchr(buf, 'e');
    exp = e ? atoi(e + 1) : 0;

    if (exp >= 0 && exp < 17 && exp + 1 > prec) {
        prec = exp + 1;
    }

    snprintf(buf, sizeof(buf), "%.*g", prec, d);

    e = strchr(buf, 'e');

    if (e == NULL) {
        if (strchr(buf, '.') == NULL) {
            strcat(buf, ".0");
        }

    } else {
        p = e + 1;
        q = p;

        if (*q == '+') {
            q++;

        } else if (*q == '-') {
            p++;
            q++;
        }

        while (*q == '0' && q[1] != '\0') {
            q++;
        }

        memmove(p, q, strlen(q) + 1);
    }

    smarty_buf_add(b, buf, strlen(buf));
}


static void
smarty_buf_member(smarty_buf_t *b, const char *key, json_t *v, int first)
{
    if (!first) {
        smarty_buf_char(b, ',');
    }

    smarty_buf_string(b, key, strlen(key));
    smarty_buf_char(b, ':');
    smarty_buf_json(b, v);
}


/* recursion depth is bounded by jansson's parser (2048 levels) */

static void
smarty_buf_json(smarty_buf_t *b, json_t *v)
{
    int          first;
    char         num[32];
    size_t       i;
    json_t      *x;
    const char  *key;

    switch (json_typeof(v)) {

    case JSON_OBJECT:
        smarty_buf_char(b, '{');
        first = 1;

        json_object_foreach(v, key, x) {
            smarty_buf_member(b, key, x, first);
            first = 0;
        }

        smarty_buf_char(b, '}');
        break;

    case JSON_ARRAY:
        smarty_buf_char(b, '[');

        json_array_foreach(v, i, x) {
            if (i > 0) {
                smarty_buf_char(b, ',');
            }

            smarty_buf_json(b, x);
        }

        smarty_buf_char(b, ']');
        break;

    case JSON_STRING:
        smarty_buf_string(b, json_string_value(v), json_string_length(v));
        break;

    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        smarty_buf_add(b, num, strlen(num));
        break;

    case JSON_REAL:
        smarty_buf_real(b, json_real_value(v));
        break;

    case JSON_TRUE:
        smarty_buf_add(b, "true", 4);
        break;

    case JSON_FALSE:
        smarty_buf_add(b, "false", 5);
        break;

    default:
        smarty_buf_add(b, "null", 4);
        break;
    }
}


static char *
smarty_buf_finish(smarty_buf_t *b, size_t *len)
{
    if (b->oom || b->p == NULL) {
        free(b->p);
        b->p = NULL;

        if (len) {
            *len = 0;
        }

        return NULL;
    }

    if (len) {
        *len = b->len;
    }

    return b->p;
}


/* --- where values are in JSON text ---------------------------------------- */

/*
 * The text was accepted by jansson first (one valid JSON value): these
 * only find where its members and elements lie, and give up (NULL, -1)
 * on anything they do not expect rather than read past the end.
 */

static const char *
smarty_scan_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/* p at '"': past the closing '"' */

static const char *
smarty_scan_string(const char *p, const char *end)
{
    if (p >= end || *p != '"') {
        return NULL;
    }

    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }

        if (*p == '"') {
            return p + 1;
        }
    }

    return NULL;
}


/* p at a value's first byte: past its last */

static const char *
smarty_scan_value(const char *p, const char *end)
{
    size_t       depth;
    const char  *start;

    if (p >= end) {
        return NULL;
    }

    if (*p == '"') {
        return smarty_scan_string(p, end);
    }

    if (*p == '{' || *p == '[') {
        depth = 0;

        while (p < end) {
            switch (*p) {

            case '"':
                p = smarty_scan_string(p, end);
                if (p == NULL) {
                    return NULL;
                }

                continue;

            case '{':
            case '[':
                depth++;
                break;

            case '}':
            case ']':
                if (depth == 0) {
                    return NULL;
                }

                if (--depth == 0) {
                    return p + 1;
                }

                break;
            }

            p++;
        }

        return NULL;
    }

    /* a number, true, false, null */

    start = p;

    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' '
           && *p != '\t' && *p != '\n' && *p != '\r')
    {
        p++;
    }

    return p > start ? p : NULL;
}


static int
smarty_scan_open(smarty_scan_t *sc, const char *p, const char *end)
{
    if (p >= end || (*p != '{' && *p != '[')) {
        return -1;
    }

    sc->close = (*p == '{') ? '}' : ']';
    sc->p = smarty_scan_ws(p + 1, end);
    sc->end = end;

    return 0;
}


/*
 * The next member (key NULL: element) of the object (array): the value's
 * bytes [*v, *ve), the key's at *k (its opening quote).  Returns 1, 0
 * when there is none left, -1.
 */

static int
smarty_scan_next(smarty_scan_t *sc, const char **k, const char **v,
    const char **ve)
{
    const char  *p, *end;

    p = sc->p;
    end = sc->end;

    if (p >= end) {
        return -1;
    }

    if (*p == sc->close) {
        return 0;
    }

    if (k != NULL) {
        *k = p;

        p = smarty_scan_string(p, end);
        if (p == NULL) {
            return -1;
        }

        p = smarty_scan_ws(p, end);
        if (p >= end || *p != ':') {
            return -1;
        }

        p = smarty_scan_ws(p + 1, end);
    }

    *v = p;

    p = smarty_scan_value(p, end);
    if (p == NULL) {
        return -1;
    }

    *ve = p;
    p = smarty_scan_ws(p, end);

    if (p < end && *p == ',') {
        p = smarty_scan_ws(p + 1, end);

    } else if (p >= end || *p != sc->close) {
        return -1;
    }

    sc->p = p;

    return 1;
}


/* the value of an object's member number idx (0 first) */

static int
smarty_scan_member(const char *obj, const char *end, size_t idx,
    const char **v, const char **ve)
{
    size_t          i;
    const char     *k;
    smarty_scan_t   sc;

    if (smarty_scan_open(&sc, obj, end) != 0 || sc.close != '}') {
        return -1;
    }

    for (i = 0; i <= idx; i++) {
        if (smarty_scan_next(&sc, &k, v, ve) != 1) {
            return -1;
        }
    }

    return 0;
}


/*
 * The key at k (its opening quote) is key, as far as can be told without
 * decoding it: with a backslash in it, it is taken to be.
 */

static int
smarty_scan_same(const char *k, const char *end, const char *key)
{
    size_t       len;
    const char  *ke;

    ke = smarty_scan_string(k, end);
    if (ke == NULL) {
        return 0;
    }

    len = ke - k - 2;

    if (memchr(k + 1, '\\', len) != NULL) {
        return 1;
    }

    return strlen(key) == len && memcmp(k + 1, key, len) == 0;
}


/* the place of key among obj's members, in jansson's (the text's) order */

static long
smarty_member_index(json_t *obj, const char *key)
{
    long         i;
    json_t      *x;
    const char  *k;

    i = 0;

    json_object_foreach(obj, k, x) {
        if (strcmp(k, key) == 0) {
            return i;
        }

        i++;
    }

    return -1;
}


/* --- JSON strings as this core writes them ------------------------------- */

/* jansson's escapes: '"', '\\', the control characters; nothing else */

size_t
smarty_json_string_len(const char *s, size_t len)
{
    size_t         i, n;
    unsigned char  c;

    n = len + 2;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        switch (c) {
        case '"': case '\\': case '\b': case '\f': case '\n': case '\r':
        case '\t':
            n += 1;
            break;
        default:
            n += 5;
        }
    }

    return n;
}


char *
smarty_json_string(char *out, const char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    static const char  hex[] = "0123456789ABCDEF";

    *out++ = '"';

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char) c;
            continue;
        }

        *out++ = '\\';

        switch (c) {
        case '"':  *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 0x0f];
        }
    }

    *out++ = '"';

    return out;
}


/* --- splitting an answer ------------------------------------------------- */

static int
smarty_name_cmp(const void *a, const void *b)
{
    int                   rc;
    const smarty_name_t  *x = a, *y = b;

    rc = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (rc != 0) {
        return rc;
    }

    return x->len < y->len ? -1 : (x->len > y->len);
}


static long
smarty_name_find(const smarty_name_t *sorted, size_t n, const char *s,
    size_t len)
{
    smarty_name_t   key;
    smarty_name_t  *hit;

    key.s = s;
    key.len = len;
    key.idx = 0;

    hit = bsearch(&key, sorted, n, sizeof(smarty_name_t), smarty_name_cmp);

    return hit ? (long) hit->idx : -1;
}


/* an array whose elements are all objects (or none) */

static int
smarty_is_list(json_t *v)
{
    size_t   i;
    json_t  *x;

    if (!json_is_array(v)) {
        return 0;
    }

    json_array_foreach(v, i, x) {
        if (!json_is_object(x)) {
            return 0;
        }
    }

    return 1;
}


static int
smarty_split_fail(smarty_answer_t *out, char *err, size_t errlen,
    const char *fmt, ...)
{
    int      status;
    va_list  args;

    if (err != NULL && errlen > 0) {
        va_start(args, fmt);
        vsnprintf(err, errlen, fmt, args);
        va_end(args);
    }

    status = out->status;
    smarty_answer_free(out);
    out->status = status;

    return -1;
}


static char *
smarty_dec(char *p, size_t v)
{
    char    buf[24];
    size_t  n;

    n = 0;

    do {
        buf[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    while (n) {
        *p++ = buf[--n];
    }

    return p;
}


/* the entry of image i from its spans in the nl lists (keys: canonical) */

static char *
smarty_entry_make(const smarty_span_t *sp, size_t nl, char *const *keys,
    const size_t *klen, size_t *len)
{
    char    *v, *p;
    size_t   j, cnt, size;

    cnt = 0;
    size = sizeof("v2 ") + 24 + 1;

    for (j = 0; j < nl; j++) {
        if (sp[j].el == NULL) {
            continue;
        }

        cnt++;
        size += 3 * 24 + klen[j] + (sp[j].nv - sp[j].el)
                + (sp[j].ele - sp[j].nve);
    }

    *len = 0;

    if (cnt == 0) {
        return NULL;
    }

    v = malloc(size);
    if (v == NULL) {
        return NULL;
    }

    p = memcpy(v, "v2 ", 3);
    p = smarty_dec(p + 3, cnt);

    for (j = 0; j < nl; j++) {
        if (sp[j].el == NULL) {
            continue;
        }

        *p++ = ' ';
        p = smarty_dec(p, klen[j]);
        *p++ = ' ';
        p = smarty_dec(p, sp[j].nv - sp[j].el);
        *p++ = ' ';
        p = smarty_dec(p, sp[j].ele - sp[j].nve);
    }

    *p++ = '\n';

    for (j = 0; j < nl; j++) {
        if (sp[j].el == NULL) {
            continue;
        }

        p = memcpy(p, keys[j], klen[j]);
        p += klen[j];
        memcpy(p, sp[j].el, sp[j].nv - sp[j].el);
        p += sp[j].nv - sp[j].el;
        memcpy(p, sp[j].nve, sp[j].ele - sp[j].nve);
        p += sp[j].ele - sp[j].nve;
    }

    *p = '\0';
    *len = p - v;

    return v;
}


int
smarty_answer_split(const char *json, size_t len, const char *const *names,
    size_t n, int cache_status1, smarty_answer_t *out, char *err,
    size_t errlen)
{
    int             rc;
    long            idx, at;
    size_t          i, j, cnt, nl, li;
    json_t         *root, *v, *body, *list, *el, *st, *nm;
    const char     *key, *end, *k, *b, *be, *e, *ee, *nv, *nve;
    json_int_t      s;
    json_error_t    je;
    smarty_scan_t   bs, as;
    smarty_name_t  *sorted;
    smarty_span_t  *spans;
    unsigned       *seen;
    char           *keys[SMARTY_ENTRY_LISTS_MAX];
    size_t          klen[SMARTY_ENTRY_LISTS_MAX];

    memset(out, 0, sizeof(*out));
    out->status = -1;

    sorted = NULL;
    seen = NULL;
    spans = NULL;
    root = NULL;
    nl = 0;

    if (json == NULL) {
        return smarty_split_fail(out, err, errlen, "the answer is empty");
    }

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        return smarty_split_fail(out, err, errlen,
                                 "the answer is not JSON: %s at %d",
                                 je.text, je.position);
    }

    if (!json_is_object(root)) {
        rc = smarty_split_fail(out, err, errlen,
                               "the answer is not a JSON object");
        goto done;
    }

    v = json_object_get(root, "status");
    if (json_is_integer(v) && json_integer_value(v) >= 0
        && json_integer_value(v) <= 999)
    {
        out->status = (int) json_integer_value(v);
    }

    if (out->status != 200) {
        rc = smarty_split_fail(out, err, errlen,
                               "the answer's status is not 200");
        goto done;
    }

    body = json_object_get(root, "body");
    if (!json_is_object(body)) {
        rc = smarty_split_fail(out, err, errlen,
                               "the answer's body is not an object");
        goto done;
    }

    v = json_object_get(body, "aliases_changed");
    out->aliases_changed = (v != NULL && !json_is_false(v));

    json_object_foreach(body, key, list) {
        if (strcmp(key, "aliases_changed") != 0 && smarty_is_list(list)) {
            if (nl == SMARTY_ENTRY_LISTS_MAX) {
                rc = smarty_split_fail(out, err, errlen,
                                       "the answer's body holds more than "
                                       "%d lists", SMARTY_ENTRY_LISTS_MAX);
                goto done;
            }

            klen[nl] = smarty_json_string_len(key, strlen(key));
            keys[nl] = malloc(klen[nl]);

            if (keys[nl] == NULL) {
                rc = smarty_split_fail(out, err, errlen, "out of memory");
                goto done;
            }

            smarty_json_string(keys[nl++], key, strlen(key));
        }
    }

    cnt = n ? n : 1;

    out->values = calloc(cnt, sizeof(char *));
    out->lens = calloc(cnt, sizeof(size_t));
    out->cacheable = calloc(cnt, sizeof(int));
    sorted = calloc(cnt, sizeof(smarty_name_t));
    seen = calloc(cnt, sizeof(unsigned));
    spans = calloc(cnt * (nl ? nl : 1), sizeof(smarty_span_t));

    if (out->values == NULL || out->lens == NULL || out->cacheable == NULL
        || sorted == NULL || seen == NULL || spans == NULL)
    {
        rc = smarty_split_fail(out, err, errlen, "out of memory");
        goto done;
    }

    out->n = n;

    for (i = 0; i < n; i++) {
        if (names[i] == NULL) {
            rc = smarty_split_fail(out, err, errlen, "name %zu is NULL", i);
            goto done;
        }

        sorted[i].s = names[i];
        sorted[i].len = strlen(names[i]);
        sorted[i].idx = i;
        out->cacheable[i] = 1;
    }

    qsort(sorted, n, sizeof(smarty_name_t), smarty_name_cmp);

    for (i = 1; i < n; i++) {
        if (smarty_name_cmp(&sorted[i - 1], &sorted[i]) == 0) {
            rc = smarty_split_fail(out, err, errlen,
                                   "the image name \"%s\" is given twice",
                                   sorted[i].s);
            goto done;
        }
    }

    /* body in the text: the member at body's place among root's */

    end = json + len;
    at = smarty_member_index(root, "body");

    if (smarty_scan_member(smarty_scan_ws(json, end), end, at, &b, &be) != 0
        || smarty_scan_open(&bs, b, be) != 0)
    {
        rc = smarty_split_fail(out, err, errlen, "body not found");
        goto done;
    }

    li = 0;

    json_object_foreach(body, key, list) {

        /* the text's members in jansson's order, one for one */

        if (smarty_scan_next(&bs, &k, &b, &be) != 1
            || !smarty_scan_same(k, be, key))
        {
            rc = smarty_split_fail(out, err, errlen, "body.%.64s not found",
                                   key);
            goto done;
        }

        if (strcmp(key, "aliases_changed") == 0 || !smarty_is_list(list)) {
            continue;
        }

        memset(seen, 0, cnt * sizeof(unsigned));

        if (smarty_scan_open(&as, b, be) != 0) {
            rc = smarty_split_fail(out, err, errlen,
                                   "body.%.64s is not a list", key);
            goto done;
        }

        json_array_foreach(list, i, el) {
            if (smarty_scan_next(&as, NULL, &e, &ee) != 1) {
                rc = smarty_split_fail(out, err, errlen,
                                       "body.%.64s[%zu] not found", key, i);
                goto done;
            }

            nm = json_object_get(el, "name");

            if (!json_is_string(nm)) {
                rc = smarty_split_fail(out, err, errlen,
                                       "body.%.64s[%zu] has no string name",
                                       key, i);
                goto done;
            }

            idx = smarty_name_find(sorted, n, json_string_value(nm),
                                   json_string_length(nm));
            if (idx < 0) {
                rc = smarty_split_fail(out, err, errlen,
                                       "body.%.64s[%zu] names an image "
                                       "not asked for", key, i);
                goto done;
            }

            if (seen[idx]++ > 0) {
                out->cacheable[idx] = 0;
                continue;
            }

            st = json_object_get(el, "status");
            s = json_is_integer(st) ? json_integer_value(st) : -1;

            if (!(s == 0 || (s == 1 && cache_status1))) {
                out->cacheable[idx] = 0;
            }

            /* the element's bytes, cut around its name's string */

            at = smarty_member_index(el, "name");

            if (smarty_scan_member(e, ee, at, &nv, &nve) != 0
                || *nv != '"')
            {
                rc = smarty_split_fail(out, err, errlen,
                                       "body.%.64s[%zu]: the name not found",
                                       key, i);
                goto done;
            }

            spans[idx * nl + li].el = e;
            spans[idx * nl + li].nv = nv;
            spans[idx * nl + li].nve = nve;
            spans[idx * nl + li].ele = ee;
        }

        for (j = 0; j < n; j++) {
            if (seen[j] == 0) {
                out->cacheable[j] = 0;
            }
        }

        li++;
    }

    for (i = 0; i < n; i++) {
        out->values[i] = smarty_entry_make(&spans[i * nl], nl, keys, klen,
                                           &out->lens[i]);

        if (out->values[i] == NULL) {
            out->cacheable[i] = 0;

            for (j = 0; j < nl; j++) {
                if (spans[i * nl + j].el != NULL) {
                    rc = smarty_split_fail(out, err, errlen,
                                           "out of memory");
                    goto done;
                }
            }
        }
    }

    rc = 0;

done:

    for (j = 0; j < nl; j++) {
        free(keys[j]);
    }

    free(sorted);
    free(seen);
    free(spans);
    json_decref(root);

    return rc;
}


void
smarty_answer_free(smarty_answer_t *a)
{
    size_t  i;

    if (a->values != NULL) {
        for (i = 0; i < a->n; i++) {
            free(a->values[i]);
        }
    }

    free(a->values);
    free(a->lens);
    free(a->cacheable);

    memset(a, 0, sizeof(*a));
    a->status = -1;
}


/* --- entries ------------------------------------------------------------- */

/* a decimal at *pp, at most 10 digits, no sign nor leading zero */

static int
smarty_entry_dec(const char **pp, const char *end, size_t *v)
{
    size_t       n;
    const char  *p;

    p = *pp;
    n = 0;

    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end
                                             && p[1] >= '0' && p[1] <= '9'))
    {
        return -1;
    }

    while (p < end && *p >= '0' && *p <= '9') {
        if (p - *pp == 10) {
            return -1;
        }

        n = n * 10 + (size_t) (*p++ - '0');
    }

    *pp = p;
    *v = n;

    return 0;
}


int
smarty_entry_parse(const char *v, size_t len, smarty_entry_list_t *lists,
    size_t max)
{
    size_t       i, j, nl, rest, l[SMARTY_ENTRY_LISTS_MAX][3];
    const char  *p, *end;

    if (v == NULL || len < 3 || memcmp(v, "v2 ", 3) != 0) {
        return -1;
    }

    p = v + 3;
    end = v + len;

    if (smarty_entry_dec(&p, end, &nl) != 0 || nl == 0
        || nl > SMARTY_ENTRY_LISTS_MAX)
    {
        return -1;
    }

    for (i = 0; i < nl; i++) {
        for (j = 0; j < 3; j++) {
            if (p >= end || *p++ != ' '
                || smarty_entry_dec(&p, end, &l[i][j]) != 0)
            {
                return -1;
            }
        }
    }

    if (p >= end || *p++ != '\n') {
        return -1;
    }

    /* the bytes: exactly the lengths' sum; a key is a JSON string */

    for (i = 0; i < nl; i++) {
        rest = end - p;

        if (l[i][0] < 2 || l[i][0] > rest || l[i][1] > rest - l[i][0]
            || l[i][2] > rest - l[i][0] - l[i][1]
            || p[0] != '"' || p[l[i][0] - 1] != '"')
        {
            return -1;
        }

        if (i < max) {
            lists[i].key = p;
            lists[i].key_len = l[i][0];
            lists[i].pre = p + l[i][0];
            lists[i].pre_len = l[i][1];
            lists[i].post = p + l[i][0] + l[i][1];
            lists[i].post_len = l[i][2];
        }

        p += l[i][0] + l[i][1] + l[i][2];
    }

    return p == end ? (int) nl : -1;
}


/* --- building an answer -------------------------------------------------- */

#define SMARTY_HEAD       "{\"status\":200,\"body\":{"
#define SMARTY_TAIL       "},\"htmlencoded\":false,\"last_modified\":0}"
#define SMARTY_ALIASES_T  "\"aliases_changed\":true"
#define SMARTY_ALIASES_F  "\"aliases_changed\":false"


static long
smarty_plan_key(const smarty_answer_plan_t *plan, const char *key,
    size_t len)
{
    size_t  k;

    for (k = 0; k < plan->nkeys; k++) {
        if (plan->key_len[k] == len && memcmp(plan->key[k], key, len) == 0) {
            return (long) k;
        }
    }

    return -1;
}


int
smarty_answer_plan(smarty_answer_plan_t *plan, const char *const *names,
    const char *const *values, const size_t *lens, size_t n,
    int aliases_changed)
{
    int                  nl;
    long                 k;
    size_t               i, j, m, len, nlen, cnt[SMARTY_ANSWER_KEYS_MAX];
    smarty_entry_list_t  l[SMARTY_ENTRY_LISTS_MAX];

    plan->nkeys = 0;
    plan->len = 0;
    len = sizeof(SMARTY_HEAD) - 1 + sizeof(SMARTY_TAIL) - 1;

    for (i = 0; i < n; i++) {
        if (values[i] == NULL) {
            continue;
        }

        nl = smarty_entry_parse(values[i], lens[i], l,
                                SMARTY_ENTRY_LISTS_MAX);
        if (nl < 0 || names[i] == NULL) {
            return -1;
        }

        nlen = smarty_json_string_len(names[i], strlen(names[i]));

        for (j = 0; j < (size_t) nl; j++) {
            for (m = 0; m < j; m++) {
                if (l[m].key_len == l[j].key_len
                    && memcmp(l[m].key, l[j].key, l[j].key_len) == 0)
                {
                    return -1;          /* one image twice in a list */
                }
            }

            k = smarty_plan_key(plan, l[j].key, l[j].key_len);

            if (k < 0) {
                if (plan->nkeys == SMARTY_ANSWER_KEYS_MAX) {
                    return -1;
                }

                k = (long) plan->nkeys++;
                plan->key[k] = l[j].key;
                plan->key_len[k] = l[j].key_len;
                cnt[k] = 0;

                /* "key":[...], and a comma before every list but one */
                len += l[j].key_len + 3 + (k > 0);
            }

            /* a comma before every element but one */
            len += (cnt[k]++ > 0) + l[j].pre_len + nlen + l[j].post_len;
        }
    }

    if (aliases_changed >= 0) {
        len += (plan->nkeys > 0) + (aliases_changed > 0
                                    ? sizeof(SMARTY_ALIASES_T) - 1
                                    : sizeof(SMARTY_ALIASES_F) - 1);
    }

    plan->len = len;

    return 0;
}


char *
smarty_answer_write(const smarty_answer_plan_t *plan, char *out,
    const char *const *names, const char *const *values, const size_t *lens,
    size_t n, int aliases_changed)
{
    int                  nl, first;
    size_t               i, j, k;
    char                *p;
    smarty_entry_list_t  l[SMARTY_ENTRY_LISTS_MAX];

    p = out;

    memcpy(p, SMARTY_HEAD, sizeof(SMARTY_HEAD) - 1);
    p += sizeof(SMARTY_HEAD) - 1;

    for (k = 0; k < plan->nkeys; k++) {
        if (k > 0) {
            *p++ = ',';
        }

        memcpy(p, plan->key[k], plan->key_len[k]);
        p += plan->key_len[k];
        *p++ = ':';
        *p++ = '[';

        first = 1;

        for (i = 0; i < n; i++) {
            if (values[i] == NULL) {
                continue;
            }

            nl = smarty_entry_parse(values[i], lens[i], l,
                                    SMARTY_ENTRY_LISTS_MAX);
            if (nl < 0) {
                continue;               /* not after a plan of 0 */
            }

            for (j = 0; j < (size_t) nl; j++) {
                if (l[j].key_len == plan->key_len[k]
                    && memcmp(l[j].key, plan->key[k], l[j].key_len) == 0)
                {
                    break;
                }
            }

            if (j == (size_t) nl) {
                continue;
            }

            if (!first) {
                *p++ = ',';
            }

            first = 0;

            memcpy(p, l[j].pre, l[j].pre_len);
            p += l[j].pre_len;
            p = smarty_json_string(p, names[i], strlen(names[i]));
            memcpy(p, l[j].post, l[j].post_len);
            p += l[j].post_len;
        }

        *p++ = ']';
    }

    if (aliases_changed >= 0) {
        if (plan->nkeys > 0) {
            *p++ = ',';
        }

        if (aliases_changed > 0) {
            memcpy(p, SMARTY_ALIASES_T, sizeof(SMARTY_ALIASES_T) - 1);
            p += sizeof(SMARTY_ALIASES_T) - 1;

        } else {
            memcpy(p, SMARTY_ALIASES_F, sizeof(SMARTY_ALIASES_F) - 1);
            p += sizeof(SMARTY_ALIASES_F) - 1;
        }
    }

    memcpy(p, SMARTY_TAIL, sizeof(SMARTY_TAIL) - 1);

    return p + sizeof(SMARTY_TAIL) - 1;
}


/* --- meta for the images the cache did not answer ------------------------ */

char *
smarty_cache_meta_subset(const char *json, size_t len, const char *const *keep,
    size_t nkeep, size_t *out_len)
{
    char          *res;
    size_t         i, j, nlen;
    json_t        *root, *images, *kept, *x, *nm;
    const char    *s;
    smarty_buf_t   b;

    if (out_len) {
        *out_len = 0;
    }

    if (json == NULL) {
        return NULL;
    }

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    images = json_object_get(root, "images");

    if (!json_is_object(root) || !json_is_array(images)) {
        json_decref(root);
        return NULL;
    }

    kept = json_array();
    if (kept == NULL) {
        json_decref(root);
        return NULL;
    }

    json_array_foreach(images, i, x) {
        nm = json_object_get(x, "name");
        if (!json_is_string(nm)) {
            continue;
        }

        s = json_string_value(nm);
        nlen = json_string_length(nm);

        for (j = 0; j < nkeep; j++) {
            if (keep[j] != NULL && strlen(keep[j]) == nlen
                && memcmp(keep[j], s, nlen) == 0)
            {
                break;
            }
        }

        if (j < nkeep && json_array_append(kept, x) != 0) {
            json_decref(kept);
            json_decref(root);
            return NULL;
        }
    }

    /* json_object_set keeps the member's place */

    if (json_object_set_new(root, "images", kept) != 0) {
        json_decref(root);
        return NULL;
    }

    memset(&b, 0, sizeof(smarty_buf_t));
    smarty_buf_json(&b, root);
    res = smarty_buf_finish(&b, out_len);

    json_decref(root);

    return res;
}
