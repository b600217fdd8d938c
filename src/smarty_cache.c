/*
 * smarty-gateway: the per-image answer cache, the pure part (keys, split,
 * build, meta subset).  See smarty_cache.h.
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


static void smarty_buf_add(smarty_buf_t *b, const char *s, size_t n);
static void smarty_buf_char(smarty_buf_t *b, char c);
static void smarty_buf_string(smarty_buf_t *b, const char *s, size_t n);
static void smarty_buf_real(smarty_buf_t *b, double d);
static void smarty_buf_json(smarty_buf_t *b, json_t *v);
static void smarty_buf_member(smarty_buf_t *b, const char *key, json_t *v,
    int first);
static char *smarty_buf_finish(smarty_buf_t *b, size_t *len);
static int smarty_name_cmp(const void *a, const void *b);
static long smarty_name_find(const smarty_name_t *sorted, size_t n,
    const char *s, size_t len);
static int smarty_is_list(json_t *v);
static int smarty_split_fail(smarty_answer_t *out, char *err, size_t errlen,
    const char *fmt, ...);


/* --- keys ---------------------------------------------------------------- */

int
smarty_cache_params_id(const char *method_path, const char *params,
    size_t params_len, const char *args, size_t args_len,
    char out[SMARTY_PARAMS_ID_LEN + 1])
{
    int           rc;
    size_t        i;
    unsigned int  mdlen;
    EVP_MD_CTX   *ctx;
    unsigned char md[EVP_MAX_MD_SIZE];

    static const char  hex[] = "0123456789abcdef";

    out[0] = '\0';

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)
         && EVP_DigestUpdate(ctx, method_path, strlen(method_path))
         && EVP_DigestUpdate(ctx, "\n", 1)
         && (params_len == 0 || EVP_DigestUpdate(ctx, params, params_len))
         && (args_len == 0 || (EVP_DigestUpdate(ctx, "\n", 1)
                               && EVP_DigestUpdate(ctx, args, args_len)))
         && EVP_DigestFinal_ex(ctx, md, &mdlen);

    EVP_MD_CTX_free(ctx);

    if (!rc || mdlen * 2 < SMARTY_PARAMS_ID_LEN) {
        return -1;
    }

    for (i = 0; i < SMARTY_PARAMS_ID_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }

    out[SMARTY_PARAMS_ID_LEN] = '\0';

    return 0;
}


size_t
smarty_cache_base(const char *prefix, size_t prefix_len, int space,
    char *out, size_t size)
{
    int  n;

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
        n = snprintf(out, size, "%.*s{d}", (int) prefix_len, prefix);

    } else {
        n = snprintf(out, size, "%.*s{s%d}", (int) prefix_len, prefix, space);
    }

    return n < 0 ? 0 : (size_t) n;
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
    int  n;

    if (base_len == 0) {
        base = "";
    }

    /* at most the id's and the digest's lengths: neither need end in NUL */
    n = snprintf(out, size, "%.*s:%s:%.*s:%.64s", (int) base_len, base, kind,
                 SMARTY_PARAMS_ID_LEN, params_id, sha256hex);

    return n < 0 ? 0 : (size_t) n;
}


size_t
smarty_cache_entry_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size)
{
    return smarty_cache_image_key(base, base_len, "e", params_id, sha256hex,
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


int
smarty_answer_split(const char *json, size_t len, const char *const *names,
    size_t n, int cache_status1, smarty_answer_t *out, char *err,
    size_t errlen)
{
    int             rc, first;
    long            idx;
    size_t          i, j, cnt;
    json_t         *root, *v, *body, *list, *el, *st, *nm, *x;
    const char     *key, *mkey;
    json_int_t      s;
    json_error_t    je;
    smarty_buf_t   *bufs;
    smarty_name_t  *sorted;
    unsigned       *seen;

    memset(out, 0, sizeof(*out));
    out->status = -1;

    bufs = NULL;
    sorted = NULL;
    seen = NULL;
    root = NULL;

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

    cnt = n ? n : 1;

    out->values = calloc(cnt, sizeof(char *));
    out->lens = calloc(cnt, sizeof(size_t));
    out->cacheable = calloc(cnt, sizeof(int));
    bufs = calloc(cnt, sizeof(smarty_buf_t));
    sorted = calloc(cnt, sizeof(smarty_name_t));
    seen = calloc(cnt, sizeof(unsigned));

    if (out->values == NULL || out->lens == NULL || out->cacheable == NULL
        || bufs == NULL || sorted == NULL || seen == NULL)
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

    json_object_foreach(body, key, list) {

        if (strcmp(key, "aliases_changed") == 0 || !smarty_is_list(list)) {
            continue;
        }

        memset(seen, 0, cnt * sizeof(unsigned));

        json_array_foreach(list, i, el) {
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

            smarty_buf_char(&bufs[idx], bufs[idx].len ? ',' : '{');
            smarty_buf_string(&bufs[idx], key, strlen(key));
            smarty_buf_add(&bufs[idx], ":{", 2);

            first = 1;

            json_object_foreach(el, mkey, x) {
                if (strcmp(mkey, "name") == 0) {
                    continue;
                }

                smarty_buf_member(&bufs[idx], mkey, x, first);
                first = 0;
            }

            smarty_buf_char(&bufs[idx], '}');
        }

        for (j = 0; j < n; j++) {
            if (seen[j] == 0) {
                out->cacheable[j] = 0;
            }
        }
    }

    for (i = 0; i < n; i++) {
        if (bufs[i].len == 0) {
            out->cacheable[i] = 0;
            continue;
        }

        smarty_buf_char(&bufs[i], '}');

        out->values[i] = smarty_buf_finish(&bufs[i], &out->lens[i]);
        bufs[i].p = NULL;

        if (out->values[i] == NULL) {
            rc = smarty_split_fail(out, err, errlen, "out of memory");
            goto done;
        }
    }

    rc = 0;

done:

    if (bufs != NULL) {
        for (i = 0; i < cnt; i++) {
            free(bufs[i].p);
        }
    }

    free(bufs);
    free(sorted);
    free(seen);
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


/* --- rebuilding an answer ------------------------------------------------ */

char *
smarty_answer_build(const char *const *names, const char *const *values,
    size_t n, int aliases_changed, size_t *len)
{
    int            first;
    char          *res;
    size_t         i, k, nkeys, cnt;
    json_t       **parsed, *el, *x;
    const char    *key, *mkey;
    const char   **keys;
    smarty_buf_t   b;

    if (len) {
        *len = 0;
    }

    cnt = n ? n : 1;
    res = NULL;
    nkeys = 0;
    memset(&b, 0, sizeof(smarty_buf_t));

    parsed = calloc(cnt, sizeof(json_t *));
    keys = NULL;

    if (parsed == NULL) {
        return NULL;
    }

    /* validate every value, collect the list keys in first-seen order */

    for (i = 0; i < n; i++) {
        if (values[i] == NULL) {
            continue;
        }

        if (names[i] == NULL) {
            goto done;
        }

        parsed[i] = json_loads(values[i], JSON_REJECT_DUPLICATES, NULL);

        if (!json_is_object(parsed[i])) {
            goto done;
        }

        json_object_foreach(parsed[i], key, el) {
            if (!json_is_object(el)
                || json_object_get(el, "name") != NULL
                || strcmp(key, "aliases_changed") == 0)
            {
                goto done;
            }

            for (k = 0; k < nkeys; k++) {
                if (strcmp(keys[k], key) == 0) {
                    break;
                }
            }

            if (k < nkeys) {
                continue;
            }

            if (nkeys % 8 == 0) {
                const char  **nk;

                nk = realloc(keys, (nkeys + 8) * sizeof(const char *));
                if (nk == NULL) {
                    goto done;
                }

                keys = nk;
            }

            keys[nkeys++] = key;
        }
    }

    smarty_buf_add(&b, "{\"status\":200,\"body\":{", 22);

    for (k = 0; k < nkeys; k++) {
        if (k > 0) {
            smarty_buf_char(&b, ',');
        }

        smarty_buf_string(&b, keys[k], strlen(keys[k]));
        smarty_buf_add(&b, ":[", 2);

        first = 1;

        for (i = 0; i < n; i++) {
            if (parsed[i] == NULL) {
                continue;
            }

            el = json_object_get(parsed[i], keys[k]);
            if (el == NULL) {
                continue;
            }

            if (!first) {
                smarty_buf_char(&b, ',');
            }

            smarty_buf_add(&b, "{\"name\":", 8);
            smarty_buf_string(&b, names[i], strlen(names[i]));

            json_object_foreach(el, mkey, x) {
                smarty_buf_member(&b, mkey, x, 0);
            }

            smarty_buf_char(&b, '}');
            first = 0;
        }

        smarty_buf_char(&b, ']');
    }

    if (aliases_changed >= 0) {
        if (nkeys > 0) {
            smarty_buf_char(&b, ',');
        }

        if (aliases_changed > 0) {
            smarty_buf_add(&b, "\"aliases_changed\":true", 22);

        } else {
            smarty_buf_add(&b, "\"aliases_changed\":false", 23);
        }
    }

    smarty_buf_add(&b, "},\"htmlencoded\":false,\"last_modified\":0}", 40);

    res = smarty_buf_finish(&b, len);
    b.p = NULL;

done:

    free(b.p);
    free(keys);

    for (i = 0; i < n; i++) {
        json_decref(parsed[i]);
    }

    free(parsed);

    return res;
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
