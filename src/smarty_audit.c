/*
 * smarty-gateway: the audit record's JSON and the audit view's filters
 * (see smarty_audit.h, docs/audit.md).
 */

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "smarty_audit.h"


typedef struct {
    char      *out;
    size_t     size;
    size_t     len;        /* what the whole text needs */
} smarty_audit_out_t;


static void smarty_audit_put(smarty_audit_out_t *o, const char *s,
    size_t len);
static void smarty_audit_str(smarty_audit_out_t *o, const char *s,
    size_t len);
static void smarty_audit_cstr(smarty_audit_out_t *o, const char *name,
    const char *s);
static void smarty_audit_int(smarty_audit_out_t *o, const char *name,
    int64_t v, int known);
static void smarty_audit_bool(smarty_audit_out_t *o, const char *name,
    int v, int known);
static void smarty_audit_time(smarty_audit_out_t *o, int64_t ms);
static void smarty_audit_num(smarty_audit_out_t *o, int64_t v);
static void smarty_audit_digits(char *p, unsigned v, size_t n);
static int smarty_audit_has_sha256(json_t *rec,
    const unsigned char *sha256);
static int smarty_audit_has_person(json_t *rec, int64_t id);


size_t
smarty_audit_json(const smarty_audit_record_t *rec, char *out, size_t size)
{
    char                 hex[2 * SMARTY_AUDIT_SHA256_LEN];
    size_t               i, j, n;
    const smarty_meta_t *m;
    smarty_audit_out_t   o;
    const unsigned char *h;
    static const char    digits[] = "0123456789abcdef";

    o.out = out;
    o.size = size;
    o.len = 0;

    m = rec->meta;

    smarty_audit_put(&o, "{\"time\":\"", 9);
    smarty_audit_time(&o, rec->time_ms);
    smarty_audit_put(&o, "\",\"id\":", 7);
    smarty_audit_str(&o, rec->id, rec->id_len);
    smarty_audit_put(&o, ",\"instance\":", 12);
    smarty_audit_str(&o, rec->instance, rec->instance_len);
    smarty_audit_put(&o, ",\"client\":", 10);
    smarty_audit_str(&o, rec->client, rec->client_len);
    smarty_audit_cstr(&o, "method", rec->method);

    if (m != NULL && m->space >= 0) {
        smarty_audit_put(&o, ",\"space\":\"", 10);
        smarty_audit_put(&o, &digits[m->space % 10], 1);
        smarty_audit_put(&o, "\"", 1);

    } else {
        smarty_audit_put(&o, ",\"space\":null", 13);
    }

    smarty_audit_int(&o, "images", (int64_t) rec->nimages, 1);

    smarty_audit_put(&o, ",\"sha256\":[", 11);

    for (i = 0; i < rec->nimages; i++) {
        h = rec->sha256 + i * rec->sha256_stride;

        for (j = 0; j < SMARTY_AUDIT_SHA256_LEN; j++) {
            hex[2 * j] = digits[h[j] >> 4];
            hex[2 * j + 1] = digits[h[j] & 0x0f];
        }

        smarty_audit_put(&o, i ? ",\"" : "\"", i ? 2 : 1);
        smarty_audit_put(&o, hex, sizeof(hex));
        smarty_audit_put(&o, "\"", 1);
    }

    smarty_audit_put(&o, "],\"person_ids\":[", 16);

    n = 0;

    for (i = 0; m != NULL && i < m->nimages; i++) {
        if (m->images[i].has_person_id) {
            if (n++) {
                smarty_audit_put(&o, ",", 1);
            }

            smarty_audit_num(&o, m->images[i].person_id);
        }
    }

    smarty_audit_put(&o, "]", 1);

    /* create_new and update_embedding mean something for recognize only */
    n = (m != NULL && rec->method != NULL
         && strcmp(rec->method, "persons/recognize") == 0);

    smarty_audit_bool(&o, "create_new", n ? m->create_new : 0, (int) n);
    smarty_audit_bool(&o, "update_embedding",
                      n ? m->update_embedding : 0, (int) n);

    smarty_audit_cstr(&o, "cache", rec->cache);
    smarty_audit_int(&o, "cache_hits", (int64_t) rec->cache_hits,
                     rec->cache != NULL);
    smarty_audit_cstr(&o, "quota", rec->quota);
    smarty_audit_cstr(&o, "quota_limit", rec->quota_limit);
    smarty_audit_int(&o, "quota_remaining", rec->quota_remaining,
                     rec->quota_remaining >= 0);
    smarty_audit_int(&o, "upstream_status", rec->upstream_status,
                     rec->upstream_status > 0);
    smarty_audit_int(&o, "upstream_ms", rec->upstream_ms,
                     rec->upstream_ms >= 0);
    smarty_audit_int(&o, "status", rec->status, rec->status > 0);
    smarty_audit_cstr(&o, "error", rec->error);
    smarty_audit_int(&o, "bytes_in", (int64_t) rec->bytes_in, 1);
    smarty_audit_int(&o, "bytes_out", (int64_t) rec->bytes_out, 1);
    smarty_audit_int(&o, "duration_ms", rec->duration_ms,
                     rec->duration_ms >= 0);
    smarty_audit_put(&o, "}", 1);

    if (size) {
        out[o.len < size ? o.len : size - 1] = '\0';
    }

    return o.len;
}


/* --- writing ------------------------------------------------------------- */


static void
smarty_audit_put(smarty_audit_out_t *o, const char *s, size_t len)
{
    size_t  n;

    if (o->len + 1 < o->size) {
        n = o->size - 1 - o->len;
        memcpy(o->out + o->len, s, len < n ? len : n);
    }

    o->len += len;
}


/* a JSON string, or null; control characters and bytes above 0x7f as
 * \u00XX, so that any bytes make valid JSON */

static void
smarty_audit_str(smarty_audit_out_t *o, const char *s, size_t len)
{
    char                  esc[6];
    size_t                i, start;
    unsigned char         c;
    static const char     digits[] = "0123456789abcdef";

    if (s == NULL) {
        smarty_audit_put(o, "null", 4);
        return;
    }

    smarty_audit_put(o, "\"", 1);

    start = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            continue;
        }

        smarty_audit_put(o, s + start, i - start);
        start = i + 1;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            smarty_audit_put(o, esc, 2);
            continue;
        }

        memcpy(esc, "\\u00", 4);
        esc[4] = digits[c >> 4];
        esc[5] = digits[c & 0x0f];
        smarty_audit_put(o, esc, 6);
    }

    smarty_audit_put(o, s + start, len - start);
    smarty_audit_put(o, "\"", 1);
}


static void
smarty_audit_cstr(smarty_audit_out_t *o, const char *name, const char *s)
{
    smarty_audit_put(o, ",\"", 2);
    smarty_audit_put(o, name, strlen(name));
    smarty_audit_put(o, "\":", 2);
    smarty_audit_str(o, s, s ? strlen(s) : 0);
}


static void
smarty_audit_int(smarty_audit_out_t *o, const char *name, int64_t v,
    int known)
{
    smarty_audit_put(o, ",\"", 2);
    smarty_audit_put(o, name, strlen(name));
    smarty_audit_put(o, "\":", 2);

    if (!known) {
        smarty_audit_put(o, "null", 4);
        return;
    }

    smarty_audit_num(o, v);
}


/* a decimal integer (no printf: a record is made for every request) */

static void
smarty_audit_num(smarty_audit_out_t *o, int64_t v)
{
    char      buf[24], *p;
    uint64_t  u;

    p = buf + sizeof(buf);
    u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        *--p = '-';
    }

    smarty_audit_put(o, p, (size_t) (buf + sizeof(buf) - p));
}


static void
smarty_audit_bool(smarty_audit_out_t *o, const char *name, int v,
    int known)
{
    smarty_audit_put(o, ",\"", 2);
    smarty_audit_put(o, name, strlen(name));
    smarty_audit_put(o, "\":", 2);

    if (!known) {
        smarty_audit_put(o, "null", 4);
        return;
    }

    smarty_audit_put(o, v ? "true" : "false", v ? 4 : 5);
}


/* 2024-05-01T12:00:00.123Z */

static void
smarty_audit_time(smarty_audit_out_t *o, int64_t ms)
{
    char     buf[sizeof("2024-05-01T12:00:00.123Z")];
    int64_t  days, secs, z, era, doe, yoe, y, doy, mp, d, m;

    if (ms < 0) {
        ms = 0;
    }

    days = ms / 86400000;
    secs = (ms / 1000) % 86400;

    /* the civil date of a day count (no libc: gmtime_r takes a lock) */

    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    if (y > 9999) {
        y = 9999;
    }

    memcpy(buf, "0000-00-00T00:00:00.000Z", sizeof(buf));
    smarty_audit_digits(buf, (unsigned) y, 4);
    smarty_audit_digits(buf + 5, (unsigned) m, 2);
    smarty_audit_digits(buf + 8, (unsigned) d, 2);
    smarty_audit_digits(buf + 11, (unsigned) (secs / 3600), 2);
    smarty_audit_digits(buf + 14, (unsigned) (secs / 60 % 60), 2);
    smarty_audit_digits(buf + 17, (unsigned) (secs % 60), 2);
    smarty_audit_digits(buf + 20, (unsigned) (ms % 1000), 3);

    smarty_audit_put(o, buf, sizeof(buf) - 1);
}


/* v in n digits, zeros first */

static void
smarty_audit_digits(char *p, unsigned v, size_t n)
{
    while (n--) {
        p[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


/* --- the view's filters -------------------------------------------------- */


int
smarty_audit_match(const char *json, size_t len,
    const smarty_audit_filter_t *f)
{
    int           rc;
    json_t       *rec, *v;
    const char   *s;
    json_int_t    status;

    rec = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);

    if (rec == NULL || !json_is_object(rec)
        || !json_is_string(json_object_get(rec, "time")))
    {
        json_decref(rec);
        return -1;
    }

    rc = 0;

    if (f->client != NULL) {
        v = json_object_get(rec, "client");
        s = json_string_value(v);

        if (s == NULL || json_string_length(v) != f->client_len
            || memcmp(s, f->client, f->client_len) != 0)
        {
            goto done;
        }
    }

    if (f->method != NULL) {
        v = json_object_get(rec, "method");
        s = json_string_value(v);

        if (s == NULL || json_string_length(v) != f->method_len
            || memcmp(s, f->method, f->method_len) != 0)
        {
            goto done;
        }
    }

    if (f->space >= 0) {
        v = json_object_get(rec, "space");
        s = json_string_value(v);

        if (s == NULL || json_string_length(v) != 1
            || s[0] != '0' + f->space)
        {
            goto done;
        }
    }

    if (f->status_min > 0) {
        v = json_object_get(rec, "status");

        if (!json_is_integer(v)) {
            goto done;
        }

        status = json_integer_value(v);

        if (status < f->status_min || status > f->status_max) {
            goto done;
        }
    }

    if (f->has_sha256 && !smarty_audit_has_sha256(rec, f->sha256)) {
        goto done;
    }

    if (f->person_id > 0 && !smarty_audit_has_person(rec, f->person_id)) {
        goto done;
    }

    rc = 1;

done:

    json_decref(rec);

    return rc;
}


static int
smarty_audit_has_sha256(json_t *rec, const unsigned char *sha256)
{
    size_t          i;
    json_t         *list, *v;
    unsigned char   h[SMARTY_AUDIT_SHA256_LEN];

    list = json_object_get(rec, "sha256");

    json_array_foreach(list, i, v) {
        if (json_is_string(v)
            && smarty_audit_hex(json_string_value(v), json_string_length(v),
                                h) == 0
            && memcmp(h, sha256, SMARTY_AUDIT_SHA256_LEN) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static int
smarty_audit_has_person(json_t *rec, int64_t id)
{
    size_t   i;
    json_t  *list, *v;

    list = json_object_get(rec, "person_ids");

    json_array_foreach(list, i, v) {
        if (json_is_integer(v) && json_integer_value(v) == id) {
            return 1;
        }
    }

    return 0;
}


int
smarty_audit_status_range(const char *s, size_t len, int *min, int *max)
{
    int     n;
    size_t  i;

    if (len != 3 || s[0] < '1' || s[0] > '5') {
        return -1;
    }

    if ((s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X')) {
        *min = (s[0] - '0') * 100;
        *max = *min + 99;
        return 0;
    }

    n = 0;

    for (i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        n = n * 10 + (s[i] - '0');
    }

    *min = n;
    *max = n;

    return 0;
}


int
smarty_audit_hex(const char *s, size_t len,
    unsigned char out[SMARTY_AUDIT_SHA256_LEN])
{
    int     d[2];
    size_t  i, k;
    char    c;

    if (len != 2 * SMARTY_AUDIT_SHA256_LEN) {
        return -1;
    }

    for (i = 0; i < SMARTY_AUDIT_SHA256_LEN; i++) {
        for (k = 0; k < 2; k++) {
            c = s[2 * i + k];

            if (c >= '0' && c <= '9') {
                d[k] = c - '0';

            } else if (c >= 'a' && c <= 'f') {
                d[k] = c - 'a' + 10;

            } else if (c >= 'A' && c <= 'F') {
                d[k] = c - 'A' + 10;

            } else {
                return -1;
            }
        }

        out[i] = (unsigned char) (d[0] << 4 | d[1]);
    }

    return 0;
}
