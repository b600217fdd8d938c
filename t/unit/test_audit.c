/*
 * smarty-gateway: unit tests of the audit record (TAP): its JSON is valid
 * and complete whatever it holds, truncation, and the audit view's
 * filters.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "smarty_audit.h"
#include "tap.h"


static json_t *
parse(const smarty_audit_record_t *rec, char **text)
{
    char    *buf;
    size_t   n;

    n = smarty_audit_json(rec, NULL, 0);
    buf = malloc(n + 1);
    (void) smarty_audit_json(rec, buf, n + 1);
    *text = buf;

    return json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
}


static void
test_full(void)
{
    char                   *text;
    json_t                 *j;
    unsigned char           sha[2][40];
    smarty_meta_t           meta;
    smarty_meta_image_t     img[2];
    smarty_audit_record_t   rec;

    memset(&rec, 0, sizeof(rec));
    memset(&meta, 0, sizeof(meta));
    memset(img, 0, sizeof(img));
    memset(sha[0], 0xab, sizeof(sha[0]));
    memset(sha[1], 0x01, sizeof(sha[1]));

    img[0].person_id = 7;
    img[0].has_person_id = 1;
    img[1].person_id = 12;
    img[1].has_person_id = 1;
    meta.space = 1;
    meta.nimages = 2;
    meta.images = img;

    rec.time_ms = 1714564800123LL;
    rec.id = "0123456789abcdef0123456789abcdef";
    rec.id_len = 32;
    rec.instance = "gw\"a\\\n\x01\xc3";
    rec.instance_len = strlen(rec.instance);
    rec.client = "billing";
    rec.client_len = 7;
    rec.method = "persons/set";
    rec.meta = &meta;
    rec.nimages = 2;
    rec.sha256 = sha[0];
    rec.sha256_stride = sizeof(sha[0]);
    rec.cache = "BYPASS";
    rec.quota = "PASS";
    rec.quota_limit = "client_images_minute";
    rec.quota_remaining = 998;
    rec.upstream_status = 200;
    rec.upstream_ms = 12;
    rec.status = 200;
    rec.bytes_in = 12345;
    rec.bytes_out = 678;
    rec.duration_ms = 15;

    j = parse(&rec, &text);
    ok(j != NULL, "a full record is valid JSON");
    if (j == NULL) {
        diag("%s", text);
        free(text);
        return;
    }

    ok(strchr(text, '\n') == NULL, "on one line");
    is_str(json_string_value(json_object_get(j, "time")),
           "2024-05-01T12:00:00.123Z", "time, UTC, milliseconds");
    is_str(json_string_value(json_object_get(j, "instance")),
           "gw\"a\\\n\x01\xc3\x83", "odd bytes escaped (0xc3 as U+00C3)");
    is_str(json_string_value(json_object_get(j, "space")), "1", "space");
    is_int((int) json_integer_value(json_object_get(j, "images")), 2,
           "images");
    is_str(json_string_value(json_array_get(json_object_get(j, "sha256"),
                                            0)),
           "abababababababababababababababababababababababababababababababab",
           "first SHA-256");
    is_str(json_string_value(json_array_get(json_object_get(j, "sha256"),
                                            1)),
           "0101010101010101010101010101010101010101010101010101010101010101",
           "second SHA-256 (stride)");
    is_int((int) json_integer_value(json_array_get(
                                json_object_get(j, "person_ids"), 1)), 12,
           "person ids");
    ok(json_is_null(json_object_get(j, "create_new")),
       "create_new is null for set");
    is_str(json_string_value(json_object_get(j, "quota_limit")),
           "client_images_minute", "quota limit");
    is_int((int) json_integer_value(json_object_get(j, "quota_remaining")),
           998, "quota remaining");
    ok(json_is_null(json_object_get(j, "error")), "no error: null");
    is_int((int) json_integer_value(json_object_get(j, "cache_hits")), 0,
           "cache hits 0 with a cache status");
    is_int((int) json_object_size(j), 23, "23 members");

    json_decref(j);
    free(text);
}


static void
test_empty(void)
{
    char                   *text, small[16];
    size_t                  n;
    json_t                 *j;
    smarty_meta_t           meta;
    smarty_audit_record_t   rec;

    memset(&rec, 0, sizeof(rec));
    rec.quota_remaining = -1;
    rec.upstream_ms = -1;
    rec.duration_ms = 0;
    rec.status = 401;
    rec.error = "missing_key";

    j = parse(&rec, &text);
    ok(j != NULL, "a record of nothing known is valid JSON");
    ok(json_is_null(json_object_get(j, "client")), "client null");
    ok(json_is_null(json_object_get(j, "method")), "method null");
    ok(json_is_null(json_object_get(j, "space")), "space null");
    ok(json_is_null(json_object_get(j, "cache_hits")), "cache hits null");
    ok(json_is_null(json_object_get(j, "upstream_ms")), "upstream null");
    is_int((int) json_array_size(json_object_get(j, "sha256")), 0,
           "no SHA-256");
    is_str(json_string_value(json_object_get(j, "error")), "missing_key",
           "error");
    is_int((int) json_object_size(j), 23, "still 23 members");
    json_decref(j);

    n = smarty_audit_json(&rec, small, sizeof(small));
    is_int((int) n, (int) strlen(text), "truncated: the length needed");
    is_int((int) strlen(small), (int) sizeof(small) - 1,
           "truncated: NUL-terminated within the size");
    free(text);

    /* a recognize: create_new and update_embedding are booleans */
    memset(&meta, 0, sizeof(meta));
    meta.space = 3;
    meta.create_new = 1;
    rec.method = "persons/recognize";
    rec.meta = &meta;

    j = parse(&rec, &text);
    ok(json_is_true(json_object_get(j, "create_new")), "create_new true");
    ok(json_is_false(json_object_get(j, "update_embedding")),
       "update_embedding false");
    json_decref(j);
    free(text);
}


/* the record's time against gmtime_r, over four centuries of days */

static void
test_time(void)
{
    char                    buf[512], want[96];
    int                     good;
    time_t                  t;
    int64_t                 ms;
    struct tm               tm;
    smarty_audit_record_t   rec;

    memset(&rec, 0, sizeof(rec));
    good = 1;

    for (ms = 0; ms < 146097LL * 86400000 * 1 + 86400000; ms += 86399877) {
        rec.time_ms = ms;
        (void) smarty_audit_json(&rec, buf, sizeof(buf));

        t = (time_t) (ms / 1000);
        gmtime_r(&t, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int) (ms % 1000));

        if (strncmp(buf + 9, want, strlen(want)) != 0) {
            diag("%lld: %.24s, not %s", (long long) ms, buf + 9, want);
            good = 0;
            break;
        }
    }

    ok(good, "the time is gmtime_r's, from 1970 over 400 years");
}


static void
test_filter(void)
{
    const char             *r1, *r2;
    smarty_audit_filter_t   f;
    int                     lo, hi;

    r1 = "{\"time\":\"t\",\"client\":\"billing\",\"method\":"
         "\"persons/set\",\"space\":\"1\",\"sha256\":[\"" 
         "abababababababababababababababababababababababababababababababab"
         "\"],\"person_ids\":[7,12],\"status\":200}";
    r2 = "{\"time\":\"t\",\"client\":null,\"method\":null,\"space\":null,"
         "\"sha256\":[],\"person_ids\":[],\"status\":401}";

    memset(&f, 0, sizeof(f));
    f.space = -1;

    is_int(smarty_audit_match(r1, strlen(r1), &f), 1, "no filter: match");
    is_int(smarty_audit_match("[1]", 3, &f), -1, "not a record");
    is_int(smarty_audit_match("{\"time\":", 8, &f), -1, "broken JSON");

    f.client = "billing";
    f.client_len = 7;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 1, "client matches");
    is_int(smarty_audit_match(r2, strlen(r2), &f), 0, "null client: no");
    f.client_len = 4;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 0, "a prefix is not it");
    f.client = NULL;

    f.space = 1;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 1, "space 1");
    f.space = 2;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 0, "not space 2");
    f.space = -1;

    f.person_id = 12;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 1, "person 12");
    f.person_id = 1;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 0, "not person 1");
    f.person_id = 0;

    f.has_sha256 = 1;
    memset(f.sha256, 0xab, sizeof(f.sha256));
    is_int(smarty_audit_match(r1, strlen(r1), &f), 1, "image digest");
    f.sha256[31] = 0;
    is_int(smarty_audit_match(r1, strlen(r1), &f), 0, "another digest");
    f.has_sha256 = 0;

    ok(smarty_audit_status_range("4xx", 3, &lo, &hi) == 0 && lo == 400
       && hi == 499, "4xx");
    ok(smarty_audit_status_range("429", 3, &lo, &hi) == 0 && lo == 429
       && hi == 429, "429");
    is_int(smarty_audit_status_range("42", 2, &lo, &hi), -1, "42: no");
    is_int(smarty_audit_status_range("6xx", 3, &lo, &hi), -1, "6xx: no");
    is_int(smarty_audit_status_range("4x9", 3, &lo, &hi), -1, "4x9: no");

    f.status_min = 400;
    f.status_max = 499;
    is_int(smarty_audit_match(r2, strlen(r2), &f), 1, "401 is 4xx");
    is_int(smarty_audit_match(r1, strlen(r1), &f), 0, "200 is not");

    f.method = "persons/set";
    f.method_len = 11;
    is_int(smarty_audit_match(r2, strlen(r2), &f), 0, "null method: no");
}


int
main(void)
{
    test_full();
    test_empty();
    test_time();
    test_filter();

    return done_testing();
}
