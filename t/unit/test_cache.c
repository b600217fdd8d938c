/*
 * smarty-gateway: unit tests of the per-image answer cache core (TAP):
 * keys, splitting answers into per-image values, rebuilding answers from
 * them (full and merged partial hits), meta for the missing images.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "smarty_cache.h"
#include "tap.h"


#define ENV_HEAD  "{\"status\":200,\"body\":{"
#define ENV_TAIL  "},\"htmlencoded\":false,\"last_modified\":0}"


/* got and want parse and are equal as JSON (diagnostics when not) */

static int
json_same(const char *got, const char *want, const char *what)
{
    int       pass;
    json_t   *g, *w;

    g = got ? json_loads(got, JSON_REJECT_DUPLICATES, NULL) : NULL;
    w = json_loads(want, 0, NULL);

    pass = (g != NULL && w != NULL && json_equal(g, w));

    ok(pass, "%s", what);

    if (!pass) {
        diag("  got:  %s", got ? got : "(null)");
        diag("  want: %s", want);
    }

    json_decref(g);
    json_decref(w);

    return pass;
}


static int
split(const char *json, const char *const *names, size_t n, int status1,
    smarty_answer_t *a, char *err, size_t errlen)
{
    return smarty_answer_split(json, strlen(json), names, n, status1, a, err,
                               errlen);
}


/* an entry of one list, as the split makes it */

static char *
entry1(const char *key, const char *pre, const char *post)
{
    static char  buf[4][1024];
    static int   k;

    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "v2 1 %zu %zu %zu\n%s%s%s",
             strlen(key), strlen(pre), strlen(post), key, pre, post);

    return buf[k];
}


/* an entry of two lists */

static char *
entry2(const char *k1, const char *p1, const char *s1, const char *k2,
    const char *p2, const char *s2)
{
    static char  buf[1024];

    snprintf(buf, sizeof(buf), "v2 2 %zu %zu %zu %zu %zu %zu\n%s%s%s%s%s%s",
             strlen(k1), strlen(p1), strlen(s1), strlen(k2), strlen(p2),
             strlen(s2), k1, p1, s1, k2, p2, s2);

    return buf;
}


/* an answer from entries (plan and write), malloc'ed; NULL: refused */

static char *
build(const char *const *names, const char *const *values, size_t n,
    int aliases, size_t *len)
{
    int                    rc;
    char                  *s, *end;
    size_t                 i, lens[128];
    smarty_answer_plan_t   plan;

    for (i = 0; i < n; i++) {
        lens[i] = values[i] ? strlen(values[i]) : 0;
    }

    if (len) {
        *len = 0;
    }

    rc = smarty_answer_plan(&plan, names, values, lens, n, aliases);
    if (rc != 0) {
        return NULL;
    }

    s = malloc(plan.len + 1);
    end = smarty_answer_write(&plan, s, names, values, lens, n, aliases);

    if ((size_t) (end - s) != plan.len) {
        diag("  wrote %zu bytes, planned %zu", (size_t) (end - s), plan.len);
        free(s);
        return NULL;
    }

    *end = '\0';

    if (len) {
        *len = plan.len;
    }

    return s;
}


/* --- keys ---------------------------------------------------------------- */

static void
test_keys(void)
{
    int     rc;
    char    id[SMARTY_PARAMS_ID_LEN + 1], id2[SMARTY_PARAMS_ID_LEN + 1];
    char    buf[64];
    size_t  n, i;

    rc = smarty_cache_params_id("persons/recognize", "", 0, NULL, 0, id,
                                NULL, NULL);
    is_int(rc, 0, "params_id: persons/recognize");
    is_str(id, "fa509f0688665bf5", "params_id: SHA-256 of path \"\\n\"");

    rc = smarty_cache_params_id("persons/recognize", NULL, 0, NULL, 0, id2,
                                NULL, NULL);
    is_str(id2, id, "params_id: NULL params of length 0 = \"\"");

    smarty_cache_params_id("objects/detect", "mode=object,scene", 17, NULL, 0,
                           id, NULL, NULL);
    is_str(id, "0f761be3ea16bbaa", "params_id: objects/detect with modes");

    smarty_cache_params_id("objects/detect", "mode=object,scene", 17, NULL, 0,
                           id2, NULL, NULL);
    is_str(id2, id, "params_id: deterministic");

    smarty_cache_params_id("objects/detect", "mode=object,scene!!", 17, NULL,
                           0, id2, NULL, NULL);
    is_str(id2, id, "params_id: only params_len bytes count");

    smarty_cache_params_id("objects/detect", "mode=object", 11, NULL, 0, id2,
                           NULL, NULL);
    ok(strcmp(id, id2) != 0, "params_id: other params, other id");

    smarty_cache_params_id("docs/detect", "mode=object,scene", 17, NULL, 0,
                           id2, NULL, NULL);
    ok(strcmp(id, id2) != 0, "params_id: other method, other id");

    smarty_cache_params_id("objects/detect", "mode=object,scene", 17,
                           "lang=en", 7, id2, NULL, NULL);
    ok(strcmp(id, id2) != 0, "params_id: forwarded query parameters count");

    smarty_cache_params_id("objects/detect", "mode=object,scene", 17,
                           "lang=en!!", 7, buf, NULL, NULL);
    is_str(buf, id2, "params_id: only args_len bytes count");

    for (i = 0; id[i]; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a'
                                                  && id[i] <= 'f')))
        {
            break;
        }
    }

    is_int(i, 16, "params_id: 16 lowercase hex digits");

    {
        EVP_MD_CTX    *md;
        const EVP_MD  *sha;

        md = EVP_MD_CTX_new();
        sha = EVP_sha256();

        smarty_cache_params_id("objects/detect", "mode=object,scene", 17,
                               NULL, 0, id2, md, sha);
        is_str(id2, id, "params_id: the caller's context and algorithm");
        smarty_cache_params_id("objects/detect", "mode=object,scene", 17,
                               NULL, 0, id2, md, sha);
        is_str(id2, id, "params_id: the context again");

        EVP_MD_CTX_free(md);
    }

    n = smarty_cache_base("smarty:", 7, 1, buf, sizeof(buf));
    is_str(buf, "smarty:{s1}", "base: space 1");
    is_int(n, 11, "base: its length");

    n = smarty_cache_base("smarty:", 7, 0, buf, sizeof(buf));
    is_str(buf, "smarty:{s0}", "base: space 0");

    n = smarty_cache_base("smarty:", 7, 9, buf, sizeof(buf));
    is_str(buf, "smarty:{s9}", "base: space 9");

    n = smarty_cache_base("smarty:", 7, -1, buf, sizeof(buf));
    is_str(buf, "smarty:{d}", "base: stateless");
    is_int(n, 10, "base: stateless length");

    n = smarty_cache_base("smarty:xyz", 7, 3, buf, sizeof(buf));
    is_str(buf, "smarty:{s3}", "base: prefix_len bytes of the prefix");

    n = smarty_cache_base("", 0, 2, buf, sizeof(buf));
    is_str(buf, "{s2}", "base: empty prefix");

    n = smarty_cache_base(NULL, 0, -1, buf, sizeof(buf));
    is_str(buf, "{d}", "base: NULL prefix of length 0");

    strcpy(buf, "untouched");
    is_int(smarty_cache_base("smarty:", 7, 10, buf, sizeof(buf)), 0,
           "base: space 10 refused");
    is_int(smarty_cache_base("smarty:", 7, -2, buf, sizeof(buf)), 0,
           "base: space -2 refused");
    is_int(smarty_cache_base("a{b", 3, 1, buf, sizeof(buf)), 0,
           "base: prefix with { refused");
    is_int(smarty_cache_base("a}b", 3, 1, buf, sizeof(buf)), 0,
           "base: prefix with } refused");
    is_str(buf, "untouched", "base: nothing written when refused");

    is_int(smarty_cache_base("smarty:", 7, 1, NULL, 0), 11,
           "base: measures with NULL, 0");

    n = smarty_cache_base("smarty:", 7, 1, buf, 5);
    is_int(n, 11, "base: truncated still returns the full length");
    is_str(buf, "smar", "base: truncated and NUL-terminated");

    n = smarty_cache_gen_key("smarty:{s1}", 11, buf, sizeof(buf));
    is_str(buf, "smarty:{s1}:gen", "gen key");
    is_int(n, 15, "gen key length");

    is_int(smarty_cache_gen_key("smarty:{d}", 10, NULL, 0), 14,
           "gen key: measures");

    n = smarty_cache_entry_key("smarty:{s1}", 11, "fa509f0688665bf5",
                               "00ff", buf, sizeof(buf));
    is_str(buf, "smarty:{s1}:e2:fa509f0688665bf5:00ff",
           "entry key (format 2), declared in cache_get.lua's KEYS");
    is_int(n, strlen(buf), "entry key length");

    n = smarty_cache_lock_key("smarty:{s1}", 11, "fa509f0688665bf5",
                              "00ff", buf, sizeof(buf));
    is_str(buf, "smarty:{s1}:lock:fa509f0688665bf5:00ff", "lock key");
    is_int(n, strlen(buf), "lock key length");
}


/* --- split: persons/recognize -------------------------------------------- */

static const char  *recognize_answer =
    ENV_HEAD
    "\"objects\":["
      "{\"status\":0,\"name\":\"file_1\",\"persons\":["
        "{\"tag\":\"person1\",\"coord\":[10,20,110,140],"
        "\"confidence\":0.9912,\"similarity\":0.8,\"awesomeness\":0.45},"
        "{\"tag\":\"undefined\",\"coord\":[200,20,300,140],"
        "\"confidence\":0.99,\"similarity\":0.1,\"awesomeness\":0.5,"
        "\"aliases\":[\"person7\"]}]},"
      "{\"name\":\"file_0\",\"status\":0,\"persons\":[]},"
      "{\"name\":\"file_2\",\"status\":1,"
        "\"error\":\"The memory contains data of an unknown image type\"},"
      "{\"name\":\"file_3\",\"status\":2,\"error\":\"try later\"},"
      "{\"name\":\"file_5\"}"
    "],\"aliases_changed\":false" ENV_TAIL;


static void
test_split_recognize(void)
{
    int              rc;
    char             err[256];
    smarty_answer_t  a;

    static const char *const  names[] = {
        "file_0", "file_1", "file_2", "file_3", "file_4", "file_5"
    };

    err[0] = '\0';
    rc = split(recognize_answer, names, 6, 0, &a, err, sizeof(err));
    is_int(rc, 0, "recognize: splits");
    if (rc != 0) {
        diag("  %s", err);
        return;
    }

    is_int(a.n, 6, "recognize: n");
    is_int(a.status, 200, "recognize: status");
    is_int(a.aliases_changed, 0, "recognize: aliases_changed false");

    is_str(a.values[0], entry1("\"objects\"", "{\"name\":",
                               ",\"status\":0,\"persons\":[]}"),
           "recognize: image 0, cut around its name");
    is_int(a.lens[0], strlen(a.values[0]), "recognize: lens[0]");

    is_str(a.values[1],
           entry1("\"objects\"", "{\"status\":0,\"name\":",
                  ",\"persons\":["
                  "{\"tag\":\"person1\",\"coord\":[10,20,110,140],"
                  "\"confidence\":0.9912,\"similarity\":0.8,"
                  "\"awesomeness\":0.45},"
                  "{\"tag\":\"undefined\",\"coord\":[200,20,300,140],"
                  "\"confidence\":0.99,\"similarity\":0.1,"
                  "\"awesomeness\":0.5,\"aliases\":[\"person7\"]}]}"),
           "recognize: image 1, name not first, the upstream's bytes");

    is_str(a.values[2],
           entry1("\"objects\"", "{\"name\":", ",\"status\":1,\"error\":"
                  "\"The memory contains data of an unknown image type\"}"),
           "recognize: image 2 (status 1)");
    is_str(a.values[3],
           entry1("\"objects\"", "{\"name\":",
                  ",\"status\":2,\"error\":\"try later\"}"),
           "recognize: image 3 (status 2)");
    ok(a.values[4] == NULL, "recognize: image 4 missing: NULL");
    is_int(a.lens[4], 0, "recognize: missing image length 0");
    is_str(a.values[5], entry1("\"objects\"", "{\"name\":", "}"),
           "recognize: element with only a name");

    is_int(a.cacheable[0], 1, "recognize: status 0 cacheable");
    is_int(a.cacheable[1], 1, "recognize: status 0 with persons cacheable");
    is_int(a.cacheable[2], 0, "recognize: status 1 not cacheable");
    is_int(a.cacheable[3], 0, "recognize: status 2 not cacheable");
    is_int(a.cacheable[4], 0, "recognize: missing not cacheable");
    is_int(a.cacheable[5], 0, "recognize: no status not cacheable");

    smarty_answer_free(&a);
    ok(a.values == NULL && a.n == 0, "recognize: free clears");
    smarty_answer_free(&a);
    ok(1, "recognize: free twice is safe");

    rc = split(recognize_answer, names, 6, 1, &a, err, sizeof(err));
    is_int(rc, 0, "recognize, cache_status1: splits");
    is_int(a.cacheable[0], 1, "cache_status1: status 0 cacheable");
    is_int(a.cacheable[2], 1, "cache_status1: status 1 cacheable");
    is_int(a.cacheable[3], 0, "cache_status1: status 2 never");
    is_int(a.cacheable[4], 0, "cache_status1: missing never");
    smarty_answer_free(&a);

    rc = split(ENV_HEAD "\"objects\":["
               "{\"name\":\"a\",\"status\":0,\"persons\":[1]},"
               "{\"name\":\"b\",\"status\":0},"
               "{\"name\":\"a\",\"status\":0,\"persons\":[2]}],"
               "\"aliases_changed\":true" ENV_TAIL,
               names, 0, 0, &a, err, sizeof(err));
    is_int(rc, -1, "names not asked for: refused");

    {
        static const char *const  ab[] = { "a", "b" };

        rc = split(ENV_HEAD "\"objects\":["
                   "{\"name\":\"a\",\"status\":0,\"persons\":[1]},"
                   "{\"name\":\"b\",\"status\":0},"
                   "{\"name\":\"a\",\"status\":0,\"persons\":[2]}],"
                   "\"aliases_changed\":true" ENV_TAIL,
                   ab, 2, 0, &a, err, sizeof(err));
        is_int(rc, 0, "duplicate element: splits");
        is_int(a.cacheable[0], 0, "duplicate element: not cacheable");
        is_int(a.cacheable[1], 1, "duplicate element: the other is");
        is_str(a.values[0], entry1("\"objects\"", "{\"name\":",
                                   ",\"status\":0,\"persons\":[1]}"),
               "duplicate element: the first is kept");
        is_int(a.aliases_changed, 1, "aliases_changed true");
        smarty_answer_free(&a);

        rc = split(ENV_HEAD "\"objects\":[{\"name\":\"a\",\"status\":0}],"
                   "\"aliases_changed\":null" ENV_TAIL,
                   ab, 2, 0, &a, err, sizeof(err));
        is_int(a.aliases_changed, 1, "aliases_changed null counts as true");
        is_int(a.cacheable[1], 0, "image missing from the only list");
        smarty_answer_free(&a);

        rc = split(ENV_HEAD "\"objects\":[{\"name\":\"a\",\"status\":0}]"
                   ENV_TAIL, ab, 2, 0, &a, err, sizeof(err));
        is_int(a.aliases_changed, 0, "aliases_changed absent: 0");
        smarty_answer_free(&a);

        rc = split(ENV_HEAD "\"objects\":["
                   "{\"name\":\"a\",\"status\":0.0},"
                   "{\"name\":\"b\",\"status\":\"0\"}]" ENV_TAIL,
                   ab, 2, 1, &a, err, sizeof(err));
        is_int(rc, 0, "non-integer statuses: splits");
        ok(a.cacheable[0] == 0 && a.cacheable[1] == 0,
           "non-integer statuses: not cacheable");
        smarty_answer_free(&a);

        rc = split("{\"status\":200,\"body\":{}}", ab, 2, 0, &a, err,
                   sizeof(err));
        is_int(rc, 0, "empty body (truncate): splits");
        ok(a.values[0] == NULL && a.values[1] == NULL
           && !a.cacheable[0] && !a.cacheable[1],
           "empty body: nothing per image");
        smarty_answer_free(&a);
    }
}


/* --- split: objects/detect, two lists ------------------------------------ */

static void
test_split_detect(void)
{
    int              rc;
    char             err[256];
    smarty_answer_t  a;

    static const char *const  names[] = { "x", "y", "z" };

    rc = split(ENV_HEAD
               "\"object_labels\":["
                 "{\"name\":\"x\",\"status\":0,\"labels\":"
                   "[{\"eng\":\"Cat\",\"prob\":0.75,\"coord\":[1,2,3,4]}]},"
                 "{\"name\":\"y\",\"status\":0,\"labels\":[]},"
                 "{\"name\":\"z\",\"status\":0,\"labels\":[]}],"
               "\"note\":\"not per image\","
               "\"numbers\":[1,2,3],"
               "\"mixed\":[{\"name\":\"x\"},1],"
               "\"scene_labels\":["
                 "{\"name\":\"y\",\"status\":2,\"error\":\"later\"},"
                 "{\"name\":\"x\",\"status\":0,\"labels\":"
                   "[{\"eng\":\"Room\",\"prob\":0.5}]}]"
               ENV_TAIL, names, 3, 0, &a, err, sizeof(err));
    is_int(rc, 0, "detect: splits");
    if (rc != 0) {
        diag("  %s", err);
        return;
    }

    is_str(a.values[0],
           entry2("\"object_labels\"", "{\"name\":", ",\"status\":0,"
                  "\"labels\":[{\"eng\":\"Cat\",\"prob\":0.75,"
                  "\"coord\":[1,2,3,4]}]}",
                  "\"scene_labels\"", "{\"name\":", ",\"status\":0,"
                  "\"labels\":[{\"eng\":\"Room\",\"prob\":0.5}]}"),
           "detect: both lists, in body order");
    is_int(a.cacheable[0], 1, "detect: in both lists, status 0: cacheable");
    is_str(a.values[1],
           entry2("\"object_labels\"", "{\"name\":",
                  ",\"status\":0,\"labels\":[]}",
                  "\"scene_labels\"", "{\"name\":",
                  ",\"status\":2,\"error\":\"later\"}"),
           "detect: y");
    is_int(a.cacheable[1], 0, "detect: status 2 in one list: not cacheable");
    is_str(a.values[2], entry1("\"object_labels\"", "{\"name\":",
                               ",\"status\":0,\"labels\":[]}"),
           "detect: z only in one list");
    is_int(a.cacheable[2], 0, "detect: missing from one list: not cacheable");
    is_int(a.aliases_changed, 0, "detect: no aliases_changed");
    smarty_answer_free(&a);

    rc = split(ENV_HEAD "\"object_labels\":["
               "{\"name\":\"x\",\"status\":0},{\"name\":\"y\",\"status\":0},"
               "{\"name\":\"z\",\"status\":0}],\"scene_labels\":[]" ENV_TAIL,
               names, 3, 0, &a, err, sizeof(err));
    is_int(rc, 0, "detect: empty list splits");
    ok(!a.cacheable[0] && !a.cacheable[1] && !a.cacheable[2],
       "detect: an empty list makes nothing cacheable");
    is_str(a.values[0], entry1("\"object_labels\"", "{\"name\":",
                               ",\"status\":0}"),
           "detect: the value has the non-empty list");
    smarty_answer_free(&a);
}


/* --- split: malformed answers -------------------------------------------- */

static void
test_split_malformed(void)
{
    int              rc;
    char             err[256];
    size_t           i;
    smarty_answer_t  a;

    static const char *const  names[] = { "a", "b" };
    static const char *const  dup[] = { "a", "b", "a" };

    static const struct {
        const char  *json;
        const char  *what;
        int          status;
    } bad[] = {
        { "", "empty", -1 },
        { "not json", "not JSON", -1 },
        { ENV_HEAD "\"objects\":[" , "truncated", -1 },
        { "[]", "an array", -1 },
        { "200", "a number", -1 },
        { "{\"body\":{}}", "no status", -1 },
        { "{\"status\":\"200\",\"body\":{}}", "status a string", -1 },
        { "{\"status\":500,\"body\":{\"error\":\"x\",\"code\":\"y\"}}",
          "status 500", 500 },
        { "{\"status\":429,\"body\":{}}", "status 429", 429 },
        { "{\"status\":200}", "no body", 200 },
        { "{\"status\":200,\"body\":[]}", "body an array", 200 },
        { "{\"status\":200,\"body\":null}", "body null", 200 },
        { ENV_HEAD "\"objects\":[{\"status\":0}]" ENV_TAIL,
          "element without name", 200 },
        { ENV_HEAD "\"objects\":[{\"name\":1,\"status\":0}]" ENV_TAIL,
          "name not a string", 200 },
        { ENV_HEAD "\"objects\":[{\"name\":null}]" ENV_TAIL,
          "name null", 200 },
        { ENV_HEAD "\"objects\":[{\"name\":\"c\",\"status\":0}]" ENV_TAIL,
          "name not asked for", 200 },
        { ENV_HEAD "\"objects\":[{\"name\":\"a\\u0000\",\"status\":0}]"
          ENV_TAIL, "name with NUL", -1 },
        { ENV_HEAD "\"objects\":[{\"name\":\"A\",\"status\":0}]" ENV_TAIL,
          "name in another case", 200 },
        { ENV_HEAD "\"objects\":[{\"name\":\"a\",\"name\":\"b\"}]" ENV_TAIL,
          "duplicate member", -1 },
        { "{\"status\":200,\"status\":200,\"body\":{}}",
          "duplicate status", -1 },
        { ENV_HEAD "\"objects\":[]}} trailing", "trailing garbage", -1 },
        { "{\"status\":200,\"body\":{\"x\":\"\xff\"}}", "invalid UTF-8", -1 },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        memset(&a, 0x5a, sizeof(a));
        rc = split(bad[i].json, names, 2, 0, &a, err, sizeof(err));
        ok(rc == -1 && err[0] != '\0' && a.values == NULL && a.n == 0,
           "malformed: %s refused (%s)", bad[i].what, err);
        is_int(a.status, bad[i].status, "malformed: %s status", bad[i].what);
        smarty_answer_free(&a);
    }

    rc = split(ENV_HEAD "\"objects\":[]" ENV_TAIL, dup, 3, 0, &a, err,
               sizeof(err));
    is_int(rc, -1, "malformed: duplicate names given (%s)", err);

    rc = smarty_answer_split(NULL, 0, names, 2, 0, &a, NULL, 0);
    is_int(rc, -1, "malformed: NULL answer, NULL err");

    rc = smarty_answer_split("{\"status\":200,\"body\":{}}xyz", 24, names, 2,
                             0, &a, err, 1);
    is_int(rc, 0, "only len bytes are read");
    smarty_answer_free(&a);

    {
        char    *deep;
        size_t   depth = 3000, n;

        deep = malloc(2 * depth + 100);
        n = sprintf(deep, ENV_HEAD "\"objects\":[{\"name\":\"a\",\"x\":");

        for (i = 0; i < depth; i++) {
            deep[n++] = '[';
        }

        for (i = 0; i < depth; i++) {
            deep[n++] = ']';
        }

        n += sprintf(deep + n, "}]" ENV_TAIL);

        rc = smarty_answer_split(deep, n, names, 2, 0, &a, err, sizeof(err));
        is_int(rc, -1, "too deep: refused by the parser (%s)", err);
        smarty_answer_free(&a);

        free(deep);
    }
}


/* --- the upstream's bytes survive ----------------------------------------- */

static void
test_bytes(void)
{
    int              rc;
    char             err[256], json[512], want[512], *got;
    size_t           i, len;
    smarty_answer_t  a;

    static const char *const  names[] = { "a" };
    static const char *const  other[] = { "img/7" };

    /* whatever the element holds is sent back as it came */

    static const char  *vals[] = {
        "0.9912", "0.99", "1.50", "-0.0", "1E3", "1e-5", "0.30000000000000004",
        "1.7976931348623157e308", "9223372036854775807", "42",
        "\"\\u0041\\n\\t\\\"\\\\\\/\\u0001\\u001f\"",
        "\"\xd0\x9e\xd1\x88\\u0438\xd0\xb1\xd0\xba\xd0\xb0 \\u2028\"",
        "\"\\ud83d\\ude00\"", "[true,false,null,{},[]]",
        "{ \"name\" : \"not the image's\" }",
    };

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        snprintf(json, sizeof(json), ENV_HEAD "\"objects\":[{\"name\":\"a\","
                 "\"status\":0,\"v\": %s }]" ENV_TAIL, vals[i]);

        rc = split(json, names, 1, 0, &a, err, sizeof(err));
        snprintf(want, sizeof(want), ",\"status\":0,\"v\": %s }", vals[i]);
        is_str(rc == 0 ? a.values[0] : err,
               entry1("\"objects\"", "{\"name\":", want), "value %s kept",
               vals[i]);

        got = rc == 0 ? build(names, (const char *const *) a.values, 1, -1,
                              &len)
                      : NULL;
        is_str(got, json, "... and the built answer is the upstream's");
        free(got);

        smarty_answer_free(&a);
    }

    /* white space, a name not first, a nested "name", escapes */

    {
        static const char  *up =
            "{ \"status\" : 200 , \"body\" : {\n"
            "  \"obj\\u0065cts\" : [\n"
            "    { \"persons\" : [ { \"name\" : \"a\" } ] ,\n"
            "      \"name\" : \"a\\\"b\" , \"status\" : 0 } ] ,\n"
            "  \"aliases_changed\" : false } }";
        static const char *const  up_names[] = { "a\"b" };

        rc = split(up, up_names, 1, 0, &a, err, sizeof(err));
        is_int(rc, 0, "pretty: splits (%s)", rc ? err : "");

        if (rc == 0) {
            is_str(a.values[0],
                   entry1("\"objects\"",
                          "{ \"persons\" : [ { \"name\" : \"a\" } ] ,\n"
                          "      \"name\" : ", " , \"status\" : 0 }"),
                   "pretty: the element's own bytes, the top name cut, "
                   "the key as this core writes it");

            got = build(other, (const char *const *) a.values, 1, 0, &len);
            is_str(got, ENV_HEAD "\"objects\":["
                   "{ \"persons\" : [ { \"name\" : \"a\" } ] ,\n"
                   "      \"name\" : \"img/7\" , \"status\" : 0 }],"
                   "\"aliases_changed\":false" ENV_TAIL,
                   "pretty: built under another name");
            json_same(got, ENV_HEAD "\"objects\":[{\"persons\":"
                      "[{\"name\":\"a\"}],\"name\":\"img/7\",\"status\":0}],"
                      "\"aliases_changed\":false" ENV_TAIL,
                      "pretty: valid JSON, the same values");
            free(got);
        }

        smarty_answer_free(&a);
    }

    /* names are escaped as jansson escapes them */

    {
        static const char *const  odd[] = { "we\"ird\\\n\x01/\x7f\xc3\xa9" };
        const char *const         values[] = {
            entry1("\"objects\"", "{\"name\":", ",\"status\":0}")
        };
        json_t                   *j;

        got = build(odd, values, 1, 0, &len);
        is_str(got, ENV_HEAD "\"objects\":[{\"name\":\"we\\\"ird\\\\\\n"
               "\\u0001/\x7f\xc3\xa9\",\"status\":0}],"
               "\"aliases_changed\":false" ENV_TAIL, "names escaped");

        j = json_string(odd[0]);
        {
            char  *d, buf[64];

            d = json_dumps(j, JSON_ENCODE_ANY);
            *smarty_json_string(buf, odd[0], strlen(odd[0])) = '\0';
            is_str(buf, d, "... as json_dumps does");
            free(d);
        }
        json_decref(j);
        free(got);

        is_int(smarty_json_string_len(odd[0], strlen(odd[0])),
               strlen("\"we\\\"ird\\\\\\n\\u0001/\x7f\xc3\xa9\""),
               "smarty_json_string_len");
    }
}


/* --- entries ------------------------------------------------------------- */

static void
test_entries(void)
{
    int                  n;
    size_t               i;
    smarty_entry_list_t  l[2];
    const char          *e;

    e = entry1("\"objects\"", "{\"name\":", ",\"status\":0}");
    n = smarty_entry_parse(e, strlen(e), l, 2);
    is_int(n, 1, "entry: one list");
    ok(n == 1 && l[0].key_len == 9 && memcmp(l[0].key, "\"objects\"", 9) == 0
       && l[0].pre_len == 8 && memcmp(l[0].pre, "{\"name\":", 8) == 0
       && l[0].post_len == 12 && memcmp(l[0].post, ",\"status\":0}", 12) == 0,
       "entry: key, pre, post");

    e = entry2("\"a\"", "{\"name\":", "}", "\"b\"", "[", "]");
    is_int(smarty_entry_parse(e, strlen(e), l, 2), 2, "entry: two lists");
    is_int(smarty_entry_parse(e, strlen(e), l, 1), 2,
           "entry: counted beyond max");
    ok(l[0].key_len == 3 && l[0].key[1] == 'a', "entry: the first filled");

    is_int(smarty_entry_parse("v2 1 2 0 0\n\"\"", 13, l, 1), 1,
           "entry: empty pre and post");

    {
        static const struct {
            const char  *v;
            const char  *what;
        } bad[] = {
            { "", "empty" },
            { "{\"objects\":{\"status\":0}}", "format 1 (JSON)" },
            { "v1 1 9 8 1\n\"objects\"{\"name\":}", "another version" },
            { "v2 0\n", "no list" },
            { "v2 17 1 1 1\n", "too many lists" },
            { "v2 1 9 8 1\"objects\"{\"name\":}", "no LF" },
            { "v2 1 9 8 1\n\"objects\"{\"name\":", "cut" },
            { "v2 1 9 8 1\n\"objects\"{\"name\":}}", "a byte too many" },
            { "v2 1 09 8 1\n\"objects\"{\"name\":}", "a leading zero" },
            { "v2 1 +9 8 1\n\"objects\"{\"name\":}", "a sign" },
            { "v2 1 99999999999 8 1\n\"objects\"{\"name\":}", "11 digits" },
            { "v2 1 9 8\n\"objects\"{\"name\":", "two lengths" },
            { "v2 1  9 8 1\n\"objects\"{\"name\":}", "two spaces" },
            { "v2 1 1 0 0\n\"", "a key of one byte" },
            { "v2 1 9 8 1\nxobjects\"{\"name\":}", "a key without quotes" },
            { "v2 1 4294967297 0 0\n\"\"", "a length over the value" },
            { "v2 2 9 8 1\n\"objects\"{\"name\":}", "a list missing" },
        };

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            is_int(smarty_entry_parse(bad[i].v, strlen(bad[i].v), l, 2), -1,
                   "entry: %s refused", bad[i].what);
        }

        ok(smarty_entry_parse(NULL, 0, l, 2) == -1, "entry: NULL refused");
    }
}


/* --- build --------------------------------------------------------------- */

static void
test_build(void)
{
    int              rc;
    char            *s, err[256];
    size_t           len;
    smarty_answer_t  a;

    static const char *const  up[] = {
        "file_0", "file_1", "file_2", "file_3", "file_4", "file_5"
    };

    rc = split(recognize_answer, up, 6, 0, &a, err, sizeof(err));
    is_int(rc, 0, "build: split the recognize answer");

    {
        /* the same images under other names, in another order */

        const char *const  names[] = { "b", "c", "a", "d" };
        const char *const  values[] = {
            a.values[1], a.values[3], a.values[0], a.values[4]
        };

        s = build(names, values, 4, 0, &len);
        is_str(s,
            "{\"status\":200,\"body\":{\"objects\":["
              "{\"status\":0,\"name\":\"b\",\"persons\":["
                "{\"tag\":\"person1\",\"coord\":[10,20,110,140],"
                "\"confidence\":0.9912,\"similarity\":0.8,"
                "\"awesomeness\":0.45},"
                "{\"tag\":\"undefined\",\"coord\":[200,20,300,140],"
                "\"confidence\":0.99,\"similarity\":0.1,\"awesomeness\":0.5,"
                "\"aliases\":[\"person7\"]}]},"
              "{\"name\":\"c\",\"status\":2,\"error\":\"try later\"},"
              "{\"name\":\"a\",\"status\":0,\"persons\":[]}],"
            "\"aliases_changed\":false},"
            "\"htmlencoded\":false,\"last_modified\":0}",
            "build: other names, other order, the name where it was");
        is_int(s ? strlen(s) : 0, len, "build: len");
        free(s);
    }

    {
        const char *const  names[] = { "p", "q" };
        const char *const  values[] = { a.values[0], a.values[2] };

        s = build(names, values, 2, 0, &len);
        is_str(s,
               ENV_HEAD "\"objects\":["
               "{\"name\":\"p\",\"status\":0,\"persons\":[]},"
               "{\"name\":\"q\",\"status\":1,\"error\":"
               "\"The memory contains data of an unknown image type\"}],"
               "\"aliases_changed\":false" ENV_TAIL,
               "build: exact text");
        free(s);

        s = build(names, values, 2, 1, NULL);
        ok(s && strstr(s, "\"aliases_changed\":true}") != NULL,
           "build: aliases_changed true");
        free(s);

        s = build(names, values, 2, -1, NULL);
        is_str(s, ENV_HEAD "\"objects\":["
               "{\"name\":\"p\",\"status\":0,\"persons\":[]},"
               "{\"name\":\"q\",\"status\":1,\"error\":"
               "\"The memory contains data of an unknown image type\"}]"
               ENV_TAIL, "build: aliases_changed omitted");
        free(s);
    }

    smarty_answer_free(&a);

    /* detect: list keys in first-seen order, images missing from some */

    {
        const char *const  names[] = { "n1", "n2", "n3", "n4" };
        char               v2[256], v3[256];
        const char        *values[4];

        snprintf(v2, sizeof(v2), "%s",
                 entry1("\"scene_labels\"", "{\"name\":",
                        ",\"status\":0,\"labels\":[]}"));
        snprintf(v3, sizeof(v3), "%s",
                 entry2("\"object_labels\"", "{\"name\":",
                        ",\"status\":0,\"labels\":[{\"p\":0.5}]}",
                        "\"scene_labels\"", "{\"status\":0,\"name\":",
                        ",\"labels\":[1]}"));
        values[0] = NULL;
        values[1] = v2;
        values[2] = v3;
        values[3] = NULL;

        s = build(names, values, 4, -1, &len);
        is_str(s,
               ENV_HEAD "\"scene_labels\":["
               "{\"name\":\"n2\",\"status\":0,\"labels\":[]},"
               "{\"status\":0,\"name\":\"n3\",\"labels\":[1]}],"
               "\"object_labels\":["
               "{\"name\":\"n3\",\"status\":0,\"labels\":[{\"p\":0.5}]}]"
               ENV_TAIL, "build: detect lists, NULL left out");
        free(s);
    }

    s = build(NULL, NULL, 0, 0, &len);
    is_str(s, ENV_HEAD "\"aliases_changed\":false" ENV_TAIL,
           "build: no images");
    free(s);

    s = build(NULL, NULL, 0, -1, &len);
    is_str(s, ENV_HEAD ENV_TAIL, "build: no images, no aliases");
    free(s);

    /* stored values that are not entries of format 2 */

    {
        size_t              i;
        const char *const   names[] = { "a", "b" };
        const char         *good;
        static const char  *bad[] = {
            "",
            "{\"objects\":{\"status\":0}}",
            "v2 1 9 8 1\n\"objects\"{\"name\":",
            "v3 1 9 8 1\n\"objects\"{\"name\":}",
            "v2 2 3 1 1 3 1 1\n\"a\"{}\"a\"{}",
        };

        good = entry1("\"objects\"", "{\"name\":", ",\"status\":0}");

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *const  values[] = { good, bad[i] };

            len = 99;
            s = build(names, values, 2, 0, &len);
            ok(s == NULL && len == 0, "build: bad stored value %zu refused",
               i);
            free(s);
        }

        /* 17 keys in all */

        {
            char               v[17][64];
            const char        *values[17];
            const char        *nm[17];

            for (i = 0; i < 17; i++) {
                snprintf(v[i], sizeof(v[i]), "v2 1 5 1 1\n\"k%02zu\"[]", i);
                values[i] = v[i];
                nm[i] = "x";
            }

            s = build(nm, values, 16, -1, &len);
            ok(s != NULL, "build: 16 keys");
            free(s);
            s = build(nm, values, 17, -1, &len);
            ok(s == NULL, "build: 17 keys refused");
            free(s);
        }
    }

    {
        const char *const  names[] = { "a", NULL };
        const char        *values[2];

        values[0] = entry1("\"objects\"", "{\"name\":", ",\"status\":0}");
        values[1] = entry1("\"objects\"", "{\"name\":", ",\"status\":0}");

        s = build(names, values, 2, 0, &len);
        ok(s == NULL, "build: a value without a name refused");
        free(s);
    }
}


/* --- meta subset --------------------------------------------------------- */

static void
test_subset(void)
{
    char    *s;
    size_t   len;

    static const char  *odd =
        " {\"mode\":[\"scene\",\"object\"],"
        "\"images\":[1,{\"name\":2},{\"name\":\"b\"},"
        "{\"name\":\"a\"}], \"t\":1e-5 } ";

    static const char  *meta =
        "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
        "{\"name\":\"b\",\"x\":0.1},{\"name\":\"c\"}],\"create_new\":false}";

    {
        const char *const  keep[] = { "c", "a" };

        s = smarty_cache_meta_subset(meta, strlen(meta), keep, 2, &len);
        is_str(s, "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
               "{\"name\":\"c\"}],\"create_new\":false}",
               "subset: a and c, in meta order, members in place");
        is_int(len, s ? strlen(s) : 1, "subset: len");
        free(s);
    }

    {
        const char *const  keep[] = { "b" };

        s = smarty_cache_meta_subset(meta, strlen(meta), keep, 1, NULL);
        is_str(s, "{\"space\":\"1\",\"images\":[{\"name\":\"b\",\"x\":0.1}],"
               "\"create_new\":false}",
               "subset: b, its members and real kept");
        free(s);

        s = smarty_cache_meta_subset(odd, strlen(odd), keep, 1, &len);
        is_str(s, "{\"mode\":[\"scene\",\"object\"],\"images\":"
               "[{\"name\":\"b\"}],\"t\":1e-5}",
               "subset: odd entries dropped, compact");
        free(s);
    }

    s = smarty_cache_meta_subset(meta, strlen(meta), NULL, 0, NULL);
    is_str(s, "{\"space\":\"1\",\"images\":[],\"create_new\":false}",
           "subset: keep nothing");
    free(s);

    {
        size_t              i;
        const char *const   keep[] = { "a" };
        static const char  *bad[] = {
            "", "[]", "nope", "{\"space\":\"1\"}", "{\"images\":{}}",
            "{\"images\":[],\"images\":[]}", "{\"images\":[]",
        };

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            len = 7;
            s = smarty_cache_meta_subset(bad[i], strlen(bad[i]), keep, 1, &len);
            ok(s == NULL && len == 0, "subset: '%s' refused", bad[i]);
            free(s);
        }

        s = smarty_cache_meta_subset(NULL, 0, keep, 1, NULL);
        ok(s == NULL, "subset: NULL refused");
    }
}


/* --- 100 images, full and partial hits ----------------------------------- */

static char *
make_answer(const char *const *names, const size_t *idx, size_t n,
    const char *prefix)
{
    char    *s, *p;
    size_t   i, size;

    size = 256 + n * 512;
    s = malloc(size);
    p = s;

    p += sprintf(p, "%s" ENV_HEAD "\"objects\":[", prefix);

    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s{\"name\":\"%s\",\"status\":%d,\"persons\":["
                     "{\"tag\":\"person%zu\",\"coord\":[%zu,1,%zu,9],"
                     "\"confidence\":0.%zu1,\"similarity\":%zu.5}]}",
                     i ? "," : "", names[idx[i]],
                     idx[i] % 17 == 5 ? 1 : 0, idx[i], idx[i], idx[i] + 40,
                     idx[i] * 97 % 1000, idx[i] % 3);
    }

    sprintf(p, "],\"aliases_changed\":false" ENV_TAIL);

    return s;
}


static void
test_stress(void)
{
    int               rc, good;
    char             *full, *part, *s, *want, err[256];
    char              up[100][16], cl[100][16];
    const char       *upn[100], *cln[100], *miss[100], *values[100];
    size_t            i, k, nmiss, idx[100], midx[100];
    smarty_answer_t   a, b;

    for (i = 0; i < 100; i++) {
        snprintf(up[i], sizeof(up[i]), "file_%zu", i);
        snprintf(cl[i], sizeof(cl[i]), "img-%zu", 99 - i);
        upn[i] = up[i];
        cln[i] = cl[i];
        idx[i] = i;
    }

    /* the upstream answers all 100 */

    full = make_answer(upn, idx, 100, "");
    rc = split(full, upn, 100, 0, &a, err, sizeof(err));
    is_int(rc, 0, "stress: 100 images split");

    good = 1;
    for (i = 0; i < 100 && rc == 0; i++) {
        if (a.values[i] == NULL || a.cacheable[i] != (i % 17 != 5)) {
            good = 0;
        }
    }

    ok(good, "stress: every value there, cacheable unless status 1");

    /* a full hit: rebuilt under the client's names, equal to the answer */

    want = make_answer(cln, idx, 100, "");
    s = build(cln, (const char *const *) a.values, 100, 0, NULL);
    json_same(s, want, "stress: full hit under other names");
    is_str(s, want, "stress: full hit, byte for byte");
    free(s);
    free(want);

    /* a partial hit: every third image cached, the rest fresh */

    nmiss = 0;
    for (i = 0; i < 100; i++) {
        if (i % 3 != 0) {
            midx[nmiss] = i;
            miss[nmiss++] = upn[i];
        }
    }

    /* the upstream answers the missing ones in its own order */

    for (i = 0; i < nmiss / 2; i++) {
        k = midx[i];
        midx[i] = midx[nmiss - 1 - i];
        midx[nmiss - 1 - i] = k;
    }

    part = make_answer(upn, midx, nmiss, "");
    err[0] = '\0';
    rc = split(part, miss, nmiss, 0, &b, err, sizeof(err));
    is_int(rc, 0, "stress: the partial answer splits (%s)", err);

    for (i = 0, k = 0; i < 100 && rc == 0; i++) {
        if (i % 3 == 0) {
            values[i] = a.values[i];

        } else {
            values[i] = b.values[k++];
        }
    }

    if (rc == 0) {
        want = make_answer(cln, idx, 100, "");
        s = build(cln, values, 100, 0, NULL);
        is_str(s, want, "stress: merged partial hit equals the full answer");
        free(s);
        free(want);
    }

    smarty_answer_free(&a);
    smarty_answer_free(&b);
    free(full);
    free(part);

    /* meta for the missing ones */

    {
        char     *meta, *p, *sub;
        json_t   *j, *x;
        size_t    n;

        meta = malloc(100 * 32 + 64);
        p = meta + sprintf(meta, "{\"space\":\"3\",\"images\":[");

        for (i = 0; i < 100; i++) {
            p += sprintf(p, "%s{\"name\":\"%s\"}", i ? "," : "", upn[i]);
        }

        sprintf(p, "]}");

        sub = smarty_cache_meta_subset(meta, strlen(meta), miss, nmiss, NULL);
        j = sub ? json_loads(sub, 0, NULL) : NULL;
        n = json_array_size(json_object_get(j, "images"));
        is_int(n, nmiss, "stress: meta subset keeps the missing ones");

        good = (j != NULL);
        for (i = 0, k = 0; i < 100 && j; i++) {
            if (i % 3 == 0) {
                continue;
            }

            x = json_array_get(json_object_get(j, "images"), k++);
            if (x == NULL || strcmp(json_string_value(json_object_get(x,
                                    "name")), upn[i]) != 0)
            {
                good = 0;
            }
        }

        ok(good, "stress: meta subset in meta order");

        json_decref(j);
        free(sub);
        free(meta);
    }
}


int
main(void)
{
    test_keys();
    test_split_recognize();
    test_split_detect();
    test_split_malformed();
    test_bytes();
    test_entries();
    test_build();
    test_subset();
    test_stress();

    return done_testing();
}
