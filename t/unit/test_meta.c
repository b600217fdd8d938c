/*
 * smarty-gateway: unit tests of the method table and meta validation (TAP).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_meta.h"
#include "tap.h"
#include "message.h"


#define MAX_PARTS  64

#define REC  "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\"}]}"


/* a message must be a sentence: valid UTF-8, no control characters */

static int
valid_message(const char *s)
{
    return *s != '\0' && strlen(s) <= 255 && smarty_test_utf8_text(s);
}


/* "a,b,c" into part names (an empty string: no parts) */

static size_t
split_parts(const char *csv, char *buf, size_t size, smarty_part_name_t *parts)
{
    char    *p, *comma;
    size_t   n;

    if (csv == NULL || *csv == '\0') {
        return 0;
    }

    snprintf(buf, size, "%s", csv);
    n = 0;

    for (p = buf; p && n < MAX_PARTS; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        if (comma) {
            *comma = '\0';
        }

        parts[n].name = p;
        parts[n].len = strlen(p);
        n++;
    }

    return n;
}


static int  messages_bad;

/*
 * Validate json for the method at path against parts; check the outcome
 * (code, and a part of the message when want_msg is not NULL).  On
 * success out is left filled for the caller (who frees it).
 */

static int
check_len(const char *path, const char *json, size_t len, const char *csv,
    size_t max, smarty_err_e want, const char *want_msg, smarty_meta_t *out,
    const char *desc)
{
    int                     rc, pass;
    char                    buf[4096];
    size_t                  nparts;
    smarty_meta_t           local;
    smarty_part_name_t      parts[MAX_PARTS];
    smarty_meta_error_t     err;
    const smarty_method_t  *m;

    m = smarty_method_find(path, strlen(path));
    nparts = split_parts(csv, buf, sizeof(buf), parts);

    if (out == NULL) {
        out = &local;
    }

    memset(&err, 0x55, sizeof(err));
    rc = smarty_meta_validate(m, json, len, parts, nparts, max, out, &err);

    if (want == SMARTY_OK) {
        pass = ok(rc == 0 && err.code == SMARTY_OK, "%s: %s", path, desc);

        if (!pass) {
            diag("  code %s: %s", smarty_err_info(err.code)->code,
                 err.message);
        }

        if (out == &local && rc == 0) {
            smarty_meta_free(out);
        }

        return pass;
    }

    pass = (rc == -1 && err.code == want);

    if (pass && want_msg && strstr(err.message, want_msg) == NULL) {
        pass = 0;
    }

    ok(pass, "%s: %s -> %s", path, desc, smarty_err_info(want)->code);

    if (!pass) {
        diag("  rc %d, code %s, message: %s", rc,
             rc == 0 ? "ok" : smarty_err_info(err.code)->code,
             rc == 0 ? "" : err.message);

        if (want_msg) {
            diag("  wanted in the message: %s", want_msg);
        }

        if (rc == 0) {
            smarty_meta_free(out);
        }
    }

    if (rc == -1) {
        if (!valid_message(err.message)) {
            messages_bad++;
            diag("  not a valid message: %s", err.message);
        }

        if (out->images != NULL || out->params != NULL || out->nimages) {
            messages_bad++;
            diag("  out is not empty after a failure");
        }
    }

    return pass;
}


static int
check(const char *path, const char *json, const char *csv, size_t max,
    smarty_err_e want, const char *want_msg, const char *desc)
{
    return check_len(path, json, strlen(json), csv, max, want, want_msg, NULL,
                     desc);
}


static int
check_out(const char *path, const char *json, const char *csv, size_t max,
    smarty_meta_t *out, const char *desc)
{
    return check_len(path, json, strlen(json), csv, max, SMARTY_OK, NULL, out,
                     desc);
}


/* -------------------------------------------------------------------------- */

static void
test_methods(void)
{
    int                     i;
    const smarty_method_t  *m;

    static const struct {
        const char       *path;
        smarty_method_e   id;
        unsigned          persons, images, person_id, mutates;
    } want[] = {
        { "persons/set", SMARTY_M_PERSONS_SET, 1, 1, 1, 1 },
        { "persons/recognize", SMARTY_M_PERSONS_RECOGNIZE, 1, 1, 0, 0 },
        { "persons/delete", SMARTY_M_PERSONS_DELETE, 1, 0, 1, 1 },
        { "persons/truncate", SMARTY_M_PERSONS_TRUNCATE, 1, 0, 0, 1 },
        { "objects/detect", SMARTY_M_OBJECTS_DETECT, 0, 1, 0, 0 },
        { "docs/detect", SMARTY_M_DOCS_DETECT, 0, 1, 0, 0 },
        { "docs/recognize", SMARTY_M_DOCS_RECOGNIZE, 0, 1, 0, 0 },
        { "text/recognize", SMARTY_M_TEXT_RECOGNIZE, 0, 1, 0, 0 },
        { "adult/detect", SMARTY_M_ADULT_DETECT, 0, 1, 0, 0 },
    };

    is_int(sizeof(want) / sizeof(want[0]), SMARTY_M_COUNT,
           "every method is in the table");

    for (i = 0; i < SMARTY_M_COUNT; i++) {
        m = smarty_method_find(want[i].path, strlen(want[i].path));

        ok(m != NULL && m->id == want[i].id
           && strcmp(m->path, want[i].path) == 0
           && m->persons == want[i].persons && m->images == want[i].images
           && m->person_id == want[i].person_id
           && m->mutates == want[i].mutates,
           "%s: found, with its flags", want[i].path);

        ok(smarty_method_get(want[i].id) == m, "%s: smarty_method_get",
           want[i].path);
    }

    ok(smarty_method_get(SMARTY_M_COUNT) == NULL
       && smarty_method_get((smarty_method_e) -1) == NULL,
       "smarty_method_get of an unknown id is NULL");

    ok(smarty_method_find("persons/unknown", 15) == NULL
       && smarty_method_find("persons", 7) == NULL
       && smarty_method_find("", 0) == NULL
       && smarty_method_find("/persons/set", 12) == NULL
       && smarty_method_find("persons/set/", 12) == NULL
       && smarty_method_find("PERSONS/SET", 11) == NULL
       && smarty_method_find("persons/se", 10) == NULL
       && smarty_method_find("persons/set\0", 12) == NULL,
       "unknown paths are NULL (exact, case-sensitive)");

    m = smarty_method_find("persons/setx", 11);
    ok(m != NULL && m->id == SMARTY_M_PERSONS_SET,
       "only len bytes of the path count");
}


static void
test_bad_meta(void)
{
    int   i;
    char *deep;

    check("persons/recognize", "{\"space\":", "file_0", 100,
          SMARTY_E_BAD_META, "meta is not a valid JSON object",
          "truncated JSON");
    check("persons/recognize", "", "file_0", 100, SMARTY_E_BAD_META, NULL,
          "empty meta");
    check("persons/recognize", "   ", "file_0", 100, SMARTY_E_BAD_META, NULL,
          "blank meta");
    check("persons/recognize", "[1,2]", "file_0", 100, SMARTY_E_BAD_META,
          "not an array", "an array");
    check("persons/recognize", "\"space\"", "file_0", 100,
          SMARTY_E_BAD_META, "not a string", "a string");
    check("persons/recognize", "1", "file_0", 100, SMARTY_E_BAD_META,
          "not an integer", "a number");
    check("persons/recognize", "null", "file_0", 100, SMARTY_E_BAD_META,
          "not null", "null");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\"}]} x", "file_0",
          100, SMARTY_E_BAD_META, NULL, "trailing garbage");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\"}]}{}", "file_0",
          100, SMARTY_E_BAD_META, NULL, "two objects");
    check("persons/recognize",
          "{\"space\":\"1\",\"space\":\"2\",\"images\":"
          "[{\"name\":\"file_0\"}]}",
          "file_0", 100, SMARTY_E_BAD_META, "duplicate", "a duplicate key");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\",\"name\":\"x\"}]}",
          "file_0", 100, SMARTY_E_BAD_META, NULL,
          "a duplicate key in an images entry");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"file_\\u0000\"}]}",
          "file_0", 100, SMARTY_E_BAD_META, NULL, "a \\u0000 in a string");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"\xff\xfe\"}]}", "file_0",
          100, SMARTY_E_BAD_META, NULL, "invalid UTF-8");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"\xc0\xaf\"}]}", "file_0",
          100, SMARTY_E_BAD_META, NULL, "overlong UTF-8");
    check("persons/recognize",
          "{'space':'1','images':[{'name':'file_0'}]}", "file_0", 100,
          SMARTY_E_BAD_META, NULL, "single quotes");
    check("persons/recognize",
          "{space:\"1\",images:[{name:\"file_0\"}]}", "file_0", 100,
          SMARTY_E_BAD_META, NULL, "unquoted keys (as the API's examples)");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\"}],\"n\":"
          "99999999999999999999999}", "file_0", 100, SMARTY_E_BAD_META,
          NULL, "an integer too big");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\"}],}", "file_0",
          100, SMARTY_E_BAD_META, NULL, "a trailing comma");

    check_len("persons/recognize", REC "\0", strlen(REC) + 1,
              "file_0", 100, SMARTY_E_BAD_META, NULL, NULL,
              "a NUL byte after the object");
    check_len("persons/recognize", REC "garbage", strlen(REC),
              "file_0", 100, SMARTY_OK, NULL, NULL,
              "only len bytes of meta count");
    check("persons/recognize",
          " \r\n\t{\"space\":\"1\",\"images\":[{\"name\":\"file_0\"}]} \r\n\t",
          "file_0", 100, SMARTY_OK, NULL, "whitespace around the object");

    deep = malloc(200001);
    for (i = 0; i < 100000; i++) {
        deep[i] = '[';
        deep[200000 - 1 - i] = ']';
    }
    deep[200000] = '\0';
    check("docs/detect", deep, "file_0", 100, SMARTY_E_BAD_META, NULL,
          "100000 nested arrays");
    free(deep);

    /* the message echoes at most ~64 bytes of input, as valid UTF-8 */
    {
        char                 json[1024];
        size_t               n;
        smarty_meta_t        out;
        smarty_meta_error_t  err;

        n = snprintf(json, sizeof(json), "{\"space\":\"1\",\"images\":");
        memset(json + n, 'x', 500);
        n += 500;
        memcpy(json + n, "\xe2\x82\xac\xff}", 5);
        n += 5;

        smarty_meta_validate(smarty_method_get(SMARTY_M_PERSONS_RECOGNIZE),
                             json, n, NULL, 0, 100, &out, &err);
        ok(err.code == SMARTY_E_BAD_META && valid_message(err.message)
           && strlen(err.message) < 200,
           "a long invalid token: a short, valid message (%s)", err.message);

        n = snprintf(json, sizeof(json), "{\"space\":\"1\",\"a\":\"\xe2\x82");
        smarty_meta_validate(smarty_method_get(SMARTY_M_PERSONS_RECOGNIZE),
                             json, n, NULL, 0, 100, &out, &err);
        ok(err.code == SMARTY_E_BAD_META && valid_message(err.message),
           "invalid UTF-8 in the input: a valid message (%s)", err.message);
    }

    check_len("persons/recognize", NULL, 0, "file_0", 100, SMARTY_E_BAD_META,
              NULL, NULL, "no meta at all (NULL)");
}


static void
test_space(void)
{
    size_t         i;
    smarty_meta_t  out;
    char           json[256], desc[64];

    static const char  *bad[] = {
        "\"10\"", "\"\"", "\"a\"", "\"1x\"", "\" 1\"", "\"-1\"",
        "\"\xd9\xa3\"", "1", "1.0", "null", "true", "[\"1\"]", "{}",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"space\":%s,\"images\":[{\"name\":\"file_0\"}]}", bad[i]);
        snprintf(desc, sizeof(desc), "space %s", bad[i]);
        check("persons/recognize", json, "file_0", 100, SMARTY_E_BAD_SPACE,
              "meta.space", desc);
    }

    check("persons/recognize", "{\"images\":[{\"name\":\"file_0\"}]}",
          "file_0", 100, SMARTY_E_BAD_SPACE, "meta.space is missing",
          "no space");
    check("persons/set", "{\"space\":\"12\"}", "file_0", 100,
          SMARTY_E_BAD_SPACE, "meta.space \"12\" is not one digit",
          "space \"12\", named in the message");
    check("persons/delete", "{\"space\":3}", "", 100, SMARTY_E_BAD_SPACE,
          "not an integer", "a number, typed in the message");
    check("persons/truncate", "{}", "", 100, SMARTY_E_BAD_SPACE, NULL,
          "truncate needs a space too");

    for (i = 0; i <= 9; i++) {
        snprintf(json, sizeof(json),
                 "{\"space\":\"%zu\",\"images\":[{\"name\":\"file_0\"}]}", i);
        snprintf(desc, sizeof(desc), "space \"%zu\"", i);
        if (check_out("persons/recognize", json, "file_0", 100, &out, desc)) {
            is_int(out.space, (long long) i, "space %zu is %zu", i, i);
            smarty_meta_free(&out);
        }
    }

    /* stateless methods ignore a "space" key */

    if (check_out("objects/detect",
                  "{\"space\":42,\"images\":[{\"name\":\"file_0\"}]}",
                  "file_0", 100, &out, "a bad space key is ignored"))
    {
        is_int(out.space, -1, "objects/detect: space is -1");
        smarty_meta_free(&out);
    }

    if (check_out("docs/detect", "{\"images\":[{\"name\":\"file_0\"}]}",
                  "file_0", 100, &out, "no space"))
    {
        is_int(out.space, -1, "docs/detect: space is -1");
        smarty_meta_free(&out);
    }
}


static void
test_create_new(void)
{
    smarty_meta_t  out;

    static const char  *bad[] = { "\"yes\"", "1", "0", "null", "\"true\"",
                                  "[]" };
    size_t              i;
    char                json[256], desc[64];

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"space\":\"1\",\"create_new\":%s,"
                 "\"images\":[{\"name\":\"file_0\"}]}", bad[i]);
        snprintf(desc, sizeof(desc), "create_new %s", bad[i]);
        check("persons/recognize", json, "file_0", 100,
              SMARTY_E_BAD_CREATE_NEW, "meta.create_new", desc);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\",\"create_new\":true,"
                  "\"images\":[{\"name\":\"file_0\"}]}", "file_0", 100, &out,
                  "create_new true"))
    {
        ok(out.create_new == 1 && out.params != NULL
           && strcmp(out.params, "") == 0 && out.params_len == 0,
           "create_new true: create_new 1, params \"\"");
        smarty_meta_free(&out);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\",\"create_new\":false,"
                  "\"images\":[{\"name\":\"file_0\"}]}", "file_0", 100, &out,
                  "create_new false"))
    {
        is_int(out.create_new, 0, "create_new false: 0");
        smarty_meta_free(&out);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\","
                  "\"images\":[{\"name\":\"file_0\"}]}", "file_0", 100, &out,
                  "no create_new"))
    {
        is_int(out.create_new, 0, "no create_new: 0");
        smarty_meta_free(&out);
    }

    check("persons/set", "{\"space\":\"1\",\"create_new\":\"yes\",\"images\":"
          "[{\"name\":\"file_0\",\"person_id\":1}]}", "file_0", 100,
          SMARTY_OK, NULL, "create_new is only looked at by recognize");
}


static void
test_mode(void)
{
    smarty_meta_t  out;

    static const struct {
        const char  *mode;
        const char  *params;
    } good[] = {
        { NULL, "mode=object" },
        { "[\"object\"]", "mode=object" },
        { "[\"scene\",\"object\",\"scene\"]", "mode=object,scene" },
        { "[\"pedestrian\",\"multiobject\",\"car_number\",\"scene\","
          "\"object\"]",
          "mode=car_number,multiobject,object,pedestrian,scene" },
        { "[\"car_number\"]", "mode=car_number" },
    };

    static const char  *bad[] = {
        "[]", "\"object\"", "[1]", "[\"unicorn\"]", "[\"object\",\"unicorn\"]",
        "[\"Object\"]", "[\"object \"]", "[null]", "{}", "null",
        "[[\"object\"]]", "[\"objectscene\"]",
    };

    size_t  i;
    char    json[256], desc[128];

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (good[i].mode) {
            snprintf(json, sizeof(json), "{\"mode\":%s,\"images\":"
                     "[{\"name\":\"file_0\"}],\"other\":1}", good[i].mode);

        } else {
            snprintf(json, sizeof(json),
                     "{\"images\":[{\"name\":\"file_0\"}],\"other\":1}");
        }

        snprintf(desc, sizeof(desc), "mode %s", good[i].mode ? good[i].mode
                                                             : "absent");

        if (check_out("objects/detect", json, "file_0", 100, &out, desc)) {
            is_str(out.params, good[i].params, "mode %s: params",
                   good[i].mode ? good[i].mode : "absent");
            is_int(out.params_len, strlen(good[i].params),
                   "mode %s: params_len",
                   good[i].mode ? good[i].mode : "absent");
            smarty_meta_free(&out);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"mode\":%s,\"images\":"
                 "[{\"name\":\"file_0\"}]}", bad[i]);
        snprintf(desc, sizeof(desc), "mode %s", bad[i]);
        check("objects/detect", json, "file_0", 100, SMARTY_E_BAD_MODE,
              "meta.mode", desc);
    }

    check("objects/detect", "{\"mode\":[\"object\",\"unicorn\"],\"images\":"
          "[{\"name\":\"file_0\"}]}", "file_0", 100, SMARTY_E_BAD_MODE,
          "meta.mode[1] \"unicorn\" is not one of", "the bad mode is named");

    /* only objects/detect looks at mode */
    if (check_out("docs/detect", "{\"mode\":\"unicorn\",\"images\":"
                  "[{\"name\":\"file_0\"}]}", "file_0", 100, &out,
                  "mode is a plain parameter of docs/detect"))
    {
        is_str(out.params, "{\"mode\":\"unicorn\"}",
               "docs/detect: params is meta without images");
        smarty_meta_free(&out);
    }

    check("persons/recognize", "{\"space\":\"1\",\"mode\":7,\"images\":"
          "[{\"name\":\"file_0\"}]}", "file_0", 100, SMARTY_OK, NULL,
          "recognize ignores mode");
}


static void
test_images(void)
{
    size_t  i;
    char    json[256], desc[128];

    static const struct {
        const char  *images;
        const char  *msg;
    } bad[] = {
        { NULL, "meta.images is missing" },
        { "\"file_0\"", "not a string" },
        { "{}", "not an object" },
        { "null", "not null" },
        { "[]", "meta.images is empty" },
        { "[1]", "meta.images[0] must be an object" },
        { "[\"file_0\"]", "meta.images[0] must be an object" },
        { "[{}]", "meta.images[0].name is missing" },
        { "[{\"name\":\"file_0\"},{\"file\":\"x\"}]",
          "meta.images[1].name is missing" },
        { "[{\"name\":1}]", "meta.images[0].name must be a string" },
        { "[{\"name\":null}]", "meta.images[0].name must be a string" },
        { "[{\"name\":[\"file_0\"]}]", "not an array" },
        { "[{\"name\":\"file_0\"},[]]", "meta.images[1] must be an object" },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bad[i].images) {
            snprintf(json, sizeof(json), "{\"space\":\"1\",\"images\":%s}",
                     bad[i].images);

        } else {
            snprintf(json, sizeof(json), "{\"space\":\"1\"}");
        }

        snprintf(desc, sizeof(desc), "images %s",
                 bad[i].images ? bad[i].images : "absent");
        check("persons/recognize", json, "file_0", 100, SMARTY_E_BAD_IMAGES,
              bad[i].msg, desc);
    }

    check("objects/detect", "{}", "file_0", 100, SMARTY_E_BAD_IMAGES,
          "objects/detect needs", "a detector needs images too");
    check("persons/set", "{\"space\":\"1\",\"images\":[]}", "", 100,
          SMARTY_E_BAD_IMAGES, NULL, "set with no images at all");
    check("persons/delete", "{\"space\":\"1\"}", "", 100, SMARTY_E_BAD_IMAGES,
          NULL, "delete needs images entries");
    check("persons/delete", "{\"space\":\"1\",\"images\":[]}", "", 100,
          SMARTY_E_BAD_IMAGES, NULL, "delete with an empty images");
}


static void
test_limits(void)
{
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"c\"}]}", "a,b,c", 3, SMARTY_OK, NULL,
          "exactly the limit");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"}]}", "a,b,c,d", 3,
          SMARTY_E_TOO_MANY_IMAGES, "4 entries, more than the limit of 3",
          "one entry over the limit");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"c\"}]}", "a,b,c,d", 3,
          SMARTY_E_TOO_MANY_IMAGES, "4 image parts",
          "one part over the limit");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"}]}", "", 3,
          SMARTY_E_TOO_MANY_IMAGES, NULL,
          "over the limit before unknown names");
    check("persons/set", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"}]}", "a,b,c,d", 3,
          SMARTY_E_TOO_MANY_IMAGES, NULL,
          "over the limit before person_id");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"c\"},7]}", "a,b,c", 3,
          SMARTY_E_BAD_IMAGES, NULL, "the shape of images before the limit");
    check("persons/delete", "{\"space\":\"1\",\"images\":[{\"name\":\"a\","
          "\"person_id\":1}]}", "a,b", 1, SMARTY_E_TOO_MANY_IMAGES, NULL,
          "delete: parts over the limit before unexpected_image");
    check("persons/truncate", "{\"space\":\"1\"}", "a,b", 1,
          SMARTY_E_TOO_MANY_IMAGES, NULL,
          "truncate: parts over the limit before unexpected_image");
    check("persons/truncate", "{\"space\":\"1\"}", "", 0, SMARTY_OK, NULL,
          "truncate with no parts is within any limit");
}


static void
test_person_id(void)
{
    size_t         i;
    char           json[256], desc[128];
    smarty_meta_t  out;

    static const char  *bad[] = {
        "\"1\"", "1.5", "1.0", "0", "-3", "null", "true", "1e3", "[1]", "{}",
        "-9223372036854775808",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"space\":\"1\",\"images\":"
                 "[{\"name\":\"file_0\",\"person_id\":%s}]}", bad[i]);
        snprintf(desc, sizeof(desc), "person_id %s", bad[i]);
        check("persons/set", json, "file_0", 100, SMARTY_E_BAD_PERSON_ID,
              "meta.images[0].person_id", desc);
        check("persons/delete", json, "", 100, SMARTY_E_BAD_PERSON_ID,
              "meta.images[0].person_id", desc);
    }

    check("persons/set", "{\"space\":\"1\",\"images\":[{\"name\":\"file_0\","
          "\"person_id\":1},{\"name\":\"file_1\"}]}", "file_0,file_1", 100,
          SMARTY_E_BAD_PERSON_ID, "meta.images[1].person_id is missing",
          "a missing person_id, named");
    check("persons/set", "{\"space\":\"1\",\"images\":[{\"name\":\"x\","
          "\"person_id\":0}]}", "file_0", 100, SMARTY_E_BAD_PERSON_ID,
          "person_id 0 is not a positive integer",
          "person_id before the names");
    check("persons/delete", "{\"space\":\"1\",\"images\":[{\"name\":\"x\","
          "\"person_id\":\"1\"}]}", "file_0", 100, SMARTY_E_BAD_PERSON_ID,
          NULL, "delete: person_id before unexpected_image");

    if (check_out("persons/set", "{\"space\":\"7\",\"images\":[{\"name\":"
                  "\"file_0\",\"person_id\":9007199254740993},{\"name\":"
                  "\"file_1\",\"person_id\":1}]}", "file_1,file_0", 100, &out,
                  "set with two images"))
    {
        ok(out.space == 7 && out.nimages == 2
           && out.images[0].person_id == 9007199254740993LL
           && out.images[0].has_person_id && out.images[1].person_id == 1
           && out.images[1].has_person_id,
           "set: space 7, person ids (a big one kept exactly)");
        ok(strcmp(out.images[0].name, "file_0") == 0
           && out.images[0].name_len == 6 && out.images[0].part == 1
           && strcmp(out.images[1].name, "file_1") == 0
           && out.images[1].part == 0,
           "set: names in meta order, each with its part's index");
        is_str(out.params, "", "set: params \"\"");
        smarty_meta_free(&out);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\",\"images\":"
                  "[{\"name\":\"file_0\",\"person_id\":\"x\"}]}", "file_0",
                  100, &out, "recognize ignores person_id"))
    {
        ok(out.images[0].has_person_id == 0 && out.images[0].part == 0,
           "recognize: no person_id");
        smarty_meta_free(&out);
    }
}


static void
test_names(void)
{
    smarty_meta_t  out;
    char           json[1024], name[400];

    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"b\"},{\"name\":\"a\"}]}", "a,b", 100,
          SMARTY_E_DUPLICATE_IMAGE,
          "meta.images[2].name \"a\" repeats meta.images[0].name",
          "a name twice");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"b\"},"
          "{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"a\"},"
          "{\"name\":\"b\"}]}", "a,b", 100, SMARTY_E_DUPLICATE_IMAGE,
          "meta.images[2].name \"b\" repeats meta.images[0].name",
          "the first repeat in meta order is named");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"c\"}]}", "a", 100, SMARTY_E_UNKNOWN_IMAGE,
          "meta.images[1].name \"c\" matches no part", "an unknown name");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"c\"},"
          "{\"name\":\"c\"}]}", "a", 100, SMARTY_E_DUPLICATE_IMAGE, NULL,
          "duplicates before unknown names");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"a\"}]}", "a,b,c", 100,
          SMARTY_E_UNREFERENCED_IMAGE,
          "the image part \"b\" is not named", "an unreferenced part");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"c\"}]}", "a,b", 100,
          SMARTY_E_UNKNOWN_IMAGE, NULL,
          "unknown names before unreferenced parts");
    check("persons/recognize",
          "{\"space\":\"1\",\"images\":[{\"name\":\"a\"}]}", "a,a", 100,
          SMARTY_E_DUPLICATE_PART, "matches two parts",
          "a name matching two parts");
    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"File_0\"}]}", "file_0", 100, SMARTY_E_UNKNOWN_IMAGE,
          NULL, "names are case-sensitive");
    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"file_0\"}]}", "file_00", 100, SMARTY_E_UNKNOWN_IMAGE,
          NULL, "a prefix is not a match");
    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"file_00\"}]}", "file_0", 100, SMARTY_E_UNKNOWN_IMAGE,
          NULL, "a longer name is not a match");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":\"\"}]}",
          "file_0", 100, SMARTY_E_UNKNOWN_IMAGE, "\"\" matches no part",
          "an empty name matches no part");
    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"\\u0066ile\"}]}", "file", 100, SMARTY_OK, NULL,
          "a JSON escape in a name");
    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"\\u0444\\u043e\\u0442\\u043e\"}]}",
          "\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe", 100, SMARTY_OK, NULL,
          "a UTF-8 name");
    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"file_0\"}]}", "", 100, SMARTY_E_UNKNOWN_IMAGE, NULL,
          "no parts at all");
    check("objects/detect", "{\"images\":[{\"name\":\"b\"},{\"name\":\"a\"}]}",
          "a,b", 100, SMARTY_OK, NULL, "a detector, names in another order");

    /* a long name is cut in the message; a UTF-8 character is not split */

    memset(name, 'x', 300);
    name[300] = '\0';
    snprintf(json, sizeof(json), "{\"space\":\"1\",\"images\":[{\"name\":"
             "\"%s\"}]}", name);
    check("persons/recognize", json, "file_0", 100, SMARTY_E_UNKNOWN_IMAGE,
          "xxx...\" matches no part", "a 300-byte unknown name, cut");

    memset(name, 'x', 63);
    strcpy(name + 63, "\\u00e9\\u00e9");
    snprintf(json, sizeof(json), "{\"space\":\"1\",\"images\":[{\"name\":"
             "\"%s\"}]}", name);
    check("persons/recognize", json, "file_0", 100, SMARTY_E_UNKNOWN_IMAGE,
          "xxx...\"", "a UTF-8 character at the cut is left out whole");

    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"a\\\"b\\\\c\\u0001\"}]}", "file_0", 100,
          SMARTY_E_UNKNOWN_IMAGE, "\"a\\\"b\\\\c\\x01\" matches no part",
          "quotes, backslashes and control characters are escaped");

    check("persons/recognize", "{\"space\":\"1\",\"images\":"
          "[{\"name\":\"a\"}]}", "a,\xff\xfe\x01z\xc3\xa9", 100,
          SMARTY_E_UNREFERENCED_IMAGE, "\"\\xff\\xfe\\x01z\xc3\xa9\"",
          "bytes of a part name that are not UTF-8 are escaped");

    /* many images: sorted matching */
    {
        size_t          i, n;
        char           *big, *csv;
        size_t          bl, cl;
        smarty_meta_t   o;

        n = 60;
        big = malloc(n * 40 + 100);
        csv = malloc(n * 10 + 10);
        bl = sprintf(big, "{\"space\":\"1\",\"images\":[");
        cl = 0;

        for (i = 0; i < n; i++) {
            bl += sprintf(big + bl, "%s{\"name\":\"img%zu\"}", i ? "," : "",
                          (i * 37) % n);
            cl += sprintf(csv + cl, "%simg%zu", i ? "," : "", i);
        }

        sprintf(big + bl, "]}");

        if (check_out("persons/recognize", big, csv, 100, &o,
                      "60 images, shuffled"))
        {
            int  good = 1;

            for (i = 0; i < n; i++) {
                if (o.images[i].part != (long) ((i * 37) % n)) {
                    good = 0;
                }
            }

            ok(good, "each entry has its part's index");
            smarty_meta_free(&o);
        }

        free(big);
        free(csv);
    }

    (void) out;
}


static void
test_recognize_options(void)
{
    smarty_meta_t          out;
    const smarty_method_t  *rec;

    rec = smarty_method_find("persons/recognize", 17);

    if (check_out("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
                  "\"a\"}],\"update_embedding\":true}", "a", 100, &out,
                  "update_embedding true"))
    {
        ok(out.update_embedding && !out.create_new && !out.foreign,
           "update_embedding is read, known");
        ok(smarty_meta_writes(rec, &out), "update_embedding writes");
        smarty_meta_free(&out);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
                  "\"a\"}],\"update_embedding\":false,\"create_new\":false}",
                  "a", 100, &out, "update_embedding false"))
    {
        ok(!smarty_meta_writes(rec, &out), "a plain recognize reads");
        is_str(out.params, "", "no searcher: params \"\"");
        smarty_meta_free(&out);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
                  "\"a\"}],\"create_new\":true}", "a", 100, &out,
                  "create_new true"))
    {
        ok(smarty_meta_writes(rec, &out), "create_new writes");
        smarty_meta_free(&out);
    }

    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\"}],\"update_embedding\":1}", "a", 100, SMARTY_E_BAD_META,
          "meta.update_embedding must be true or false, not an integer",
          "update_embedding 1");

    if (check_out("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
                  "\"a\"}],\"searcher\":1}", "a", 100, &out, "searcher 1"))
    {
        is_str(out.params, "searcher=1", "searcher 1: params");
        ok(!out.foreign, "searcher is known");
        smarty_meta_free(&out);
    }

    if (check_out("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
                  "\"a\"}],\"searcher\":0}", "a", 100, &out, "searcher 0"))
    {
        is_str(out.params, "", "searcher 0 is the default: params \"\"");
        smarty_meta_free(&out);
    }

    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\"}],\"searcher\":\"1\"}", "a", 100, SMARTY_E_BAD_META,
          "meta.searcher must be an integer of 0 or more, not a string",
          "searcher \"1\"");
    check("persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\"}],\"searcher\":-1}", "a", 100, SMARTY_E_BAD_META,
          "not a negative one", "searcher -1");

    ok(!smarty_meta_writes(smarty_method_find("objects/detect", 14), &out),
       "a detector writes nothing");
    ok(smarty_meta_writes(smarty_method_find("persons/truncate", 16), &out),
       "truncate writes");
}


static void
test_foreign(void)
{
    size_t          i;
    smarty_meta_t   out;

    static const struct {
        const char  *path;
        const char  *json;
        const char  *csv;
        int          foreign;
    } cases[] = {
        { "persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\"}]}", "a", 0 },
        { "persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\"}],\"searcherx\":1}", "a", 1 },
        { "persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\",\"crop\":[1,2]}]}", "a", 1 },
        { "persons/recognize", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\",\"person_id\":3}]}", "a", 1 },
        { "persons/set", "{\"space\":\"1\",\"images\":[{\"name\":"
          "\"a\",\"person_id\":3}]}", "a", 0 },
        { "objects/detect", "{\"mode\":[\"scene\"],\"images\":[{\"name\":"
          "\"a\"}]}", "a", 0 },
        { "objects/detect", "{\"threshold\":0.5,\"images\":[{\"name\":"
          "\"a\"}]}", "a", 1 },
        { "docs/detect", "{\"threshold\":0.5,\"images\":[{\"name\":"
          "\"a\"}]}", "a", 0 },
        { "docs/detect", "{\"images\":[{\"name\":\"a\",\"page\":2}]}", "a",
          1 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (check_out(cases[i].path, cases[i].json, cases[i].csv, 100, &out,
                      "foreign members"))
        {
            is_int(out.foreign, cases[i].foreign, "%s %s: foreign %d",
                   cases[i].path, cases[i].json, cases[i].foreign);
            smarty_meta_free(&out);
        }
    }
}


static void
test_rights(void)
{
    int  i;

    for (i = 0; i < SMARTY_M_COUNT; i++) {
        is_int(smarty_right_find(smarty_method_get(i)->path,
                                 strlen(smarty_method_get(i)->path)), i,
               "right: %s is its method's bit", smarty_method_get(i)->path);
    }

    is_int(smarty_right_find("persons/enroll", 14), SMARTY_RIGHT_ENROLL,
           "right: persons/enroll");
    is_str(smarty_right_name(SMARTY_RIGHT_ENROLL), "persons/enroll",
           "right: its name");
    is_int(smarty_right_find("persons/enrol", 13), -1, "right: unknown");
    ok(smarty_right_name(SMARTY_RIGHT_COUNT) == NULL, "right: no more");
}


static void
test_delete_truncate(void)
{
    smarty_meta_t  out;

    if (check_out("persons/delete", "{\"space\":\"2\",\"images\":[{\"name\":"
                  "\"x\",\"person_id\":5},{\"name\":\"y\",\"person_id\":6}]}",
                  "", 100, &out, "delete"))
    {
        ok(out.space == 2 && out.nimages == 2 && out.images[0].part == -1
           && out.images[1].part == -1 && out.images[0].person_id == 5
           && out.images[1].person_id == 6
           && strcmp(out.images[1].name, "y") == 0,
           "delete: space, person ids, names, part -1");
        is_str(out.params, "", "delete: params \"\"");
        smarty_meta_free(&out);
    }

    check("persons/delete", "{\"space\":\"2\",\"images\":[{\"name\":"
          "\"x\",\"person_id\":5}]}", "file_0", 100,
          SMARTY_E_UNEXPECTED_IMAGE,
          "persons/delete takes no image parts but one per entry of "
          "meta.images, and the part \"file_0\" names none",
          "delete with a part that names no entry");

    /* a Go SDK sends a part for every name of meta.images */

    if (check_out("persons/delete", "{\"space\":\"2\",\"images\":[{\"name\":"
                  "\"x\",\"person_id\":5},{\"name\":\"y\",\"person_id\":6}]}",
                  "y,x", 100, &out, "delete with a part per entry"))
    {
        ok(out.nimages == 2 && out.images[0].part == 1
           && out.images[1].part == 0,
           "delete: each entry has its part");
        smarty_meta_free(&out);
    }

    if (check_out("persons/delete", "{\"space\":\"2\",\"images\":[{\"name\":"
                  "\"x\",\"person_id\":5},{\"name\":\"y\",\"person_id\":6}]}",
                  "y", 100, &out, "delete with a part for some entries"))
    {
        ok(out.images[0].part == -1 && out.images[1].part == 0,
           "delete: an entry without its part");
        smarty_meta_free(&out);
    }

    check("persons/truncate", "{\"space\":\"3\"}", "file_0", 100,
          SMARTY_E_UNEXPECTED_IMAGE, NULL, "truncate with an image part");
    check("persons/delete", "{\"space\":\"2\",\"images\":[{\"name\":"
          "\"x\",\"person_id\":5},{\"name\":\"x\",\"person_id\":6}]}", "",
          100, SMARTY_E_DUPLICATE_IMAGE, NULL, "delete names a label twice");

    if (check_out("persons/truncate", "{\"space\":\"3\"}", "", 100, &out,
                  "truncate"))
    {
        ok(out.space == 3 && out.nimages == 0 && out.images == NULL
           && strcmp(out.params, "") == 0,
           "truncate: space 3, no images, params \"\"");
        smarty_meta_free(&out);
    }

    check("persons/truncate", "{\"space\":\"3\",\"images\":\"whatever\"}", "",
          100, SMARTY_OK, NULL, "truncate ignores images");
    check("persons/truncate", "{\"space\":\"3\",\"images\":[{\"name\":"
          "\"file_0\"}]}", "", 100, SMARTY_OK, NULL,
          "truncate ignores images entries");
    check("persons/truncate", "{\"space\":\"3\"}", "file_0", 100,
          SMARTY_E_UNEXPECTED_IMAGE, "persons/truncate takes no image parts",
          "truncate with an image part");
}


static void
test_params(void)
{
    smarty_meta_t  out;

    static const struct {
        const char  *path;
        const char  *json;
        const char  *params;
    } cases[] = {
        { "docs/detect", "{\"images\":[{\"name\":\"a\"}]}", "" },
        { "docs/recognize", "{\"images\":[{\"name\":\"a\"}],\"lang\":\"en\"}",
          "{\"lang\":\"en\"}" },
        { "text/recognize", "{\"z\":1,\"images\":[{\"name\":\"a\"}],"
          "\"a\":{\"y\":[1,2.5,null],\"b\":true}}",
          "{\"a\":{\"b\":true,\"y\":[1,2.5,null]},\"z\":1}" },
        { "adult/detect", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"}]}",
          "{\"space\":\"1\"}" },
        { "adult/detect", "{\"t\":\"\\u00e9\xc3\xa9\",\"images\":"
          "[{\"name\":\"a\"}]}", "{\"t\":\"\\u00E9\\u00E9\"}" },
        { "objects/detect", "{\"lang\":\"en\",\"mode\":[\"scene\"],"
          "\"images\":[{\"name\":\"a\"}]}", "mode=scene" },
        { "persons/recognize", "{\"space\":\"1\",\"x\":1,\"images\":"
          "[{\"name\":\"a\"}]}", "" },
    };

    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (check_out(cases[i].path, cases[i].json, "a", 100, &out,
                      "params"))
        {
            is_str(out.params, cases[i].params, "%s: params of %s",
                   cases[i].path, cases[i].json);
            is_int(out.params_len, strlen(cases[i].params),
                   "%s: params_len", cases[i].path);
            ok(out.nimages == 1 && out.images[0].part == 0,
               "%s: the image", cases[i].path);
            smarty_meta_free(&out);
        }
    }
}


/* the order of the checks: the first rule broken is the one reported */

static void
test_order(void)
{
    check("persons/recognize", "[]", "", 0, SMARTY_E_BAD_META, NULL,
          "meta before everything");
    check("persons/recognize", "{\"space\":1,\"create_new\":1}", "", 100,
          SMARTY_E_BAD_SPACE, NULL, "space before create_new");
    check("persons/recognize", "{\"space\":\"1\",\"create_new\":1}", "a,b",
          100, SMARTY_E_BAD_CREATE_NEW, NULL, "create_new before images");
    check("objects/detect", "{\"mode\":[]}", "", 100, SMARTY_E_BAD_MODE, NULL,
          "mode before images");
    check("persons/set", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},1]}",
          "b", 100, SMARTY_E_BAD_IMAGES, NULL,
          "the images' shape before person_id");
    check("persons/set", "{\"space\":\"1\",\"images\":[{\"name\":\"a\"},"
          "{\"name\":\"a\"}]}", "b", 100, SMARTY_E_BAD_PERSON_ID, NULL,
          "person_id before the names");
}


int
main(void)
{
    test_methods();
    test_bad_meta();
    test_space();
    test_create_new();
    test_recognize_options();
    test_foreign();
    test_rights();
    test_mode();
    test_images();
    test_limits();
    test_person_id();
    test_names();
    test_delete_truncate();
    test_params();
    test_order();

    is_int(messages_bad, 0, "every failure left out empty and had a valid "
           "message");

    return done_testing();
}
