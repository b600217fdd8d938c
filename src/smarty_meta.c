/*
 * smarty-gateway: the API's methods and validation of the "meta" part.
 *
 * The checks run in a fixed order, and the first that fails is the answer:
 * meta is one JSON object -> space -> create_new / mode -> the shape of
 * meta.images -> the image limit -> person_id -> the names against the
 * parts.
 *
 * Error messages name the culprit; client input in them (strings of meta,
 * part names, jansson's "near '...'") goes through smarty_meta_quote():
 * at most SMARTY_META_ECHO_MAX bytes, whole UTF-8 characters only, control
 * characters, quotes, backslashes and invalid bytes escaped.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "smarty_meta.h"


#define SMARTY_META_ECHO_MAX   64
#define SMARTY_META_QUOTE_SIZE (SMARTY_META_ECHO_MAX + 8)

#define SMARTY_META_MODES                                                     \
    "object, scene, car_number, multiobject, pedestrian"


static const smarty_method_t  smarty_methods[SMARTY_M_COUNT] = {
    /* id, path, persons, images, person_id, mutates */
    { SMARTY_M_PERSONS_SET, "persons/set", 1, 1, 1, 1 },
    { SMARTY_M_PERSONS_RECOGNIZE, "persons/recognize", 1, 1, 0, 0 },
    { SMARTY_M_PERSONS_DELETE, "persons/delete", 1, 0, 1, 1 },
    { SMARTY_M_PERSONS_TRUNCATE, "persons/truncate", 1, 0, 0, 1 },
    { SMARTY_M_OBJECTS_DETECT, "objects/detect", 0, 1, 0, 0 },
    { SMARTY_M_DOCS_DETECT, "docs/detect", 0, 1, 0, 0 },
    { SMARTY_M_DOCS_RECOGNIZE, "docs/recognize", 0, 1, 0, 0 },
    { SMARTY_M_TEXT_RECOGNIZE, "text/recognize", 0, 1, 0, 0 },
    { SMARTY_M_ADULT_DETECT, "adult/detect", 0, 1, 0, 0 },
};


/* objects/detect modes, in the (sorted) order of params */

static const char  *smarty_modes[] = {
    "car_number", "multiobject", "object", "pedestrian", "scene"
};

#define SMARTY_NMODES  (sizeof(smarty_modes) / sizeof(smarty_modes[0]))


/* a name and where it came from, for sorting */

typedef struct {
    const char  *name;
    size_t       len;
    size_t       idx;
} smarty_meta_key_t;


static int smarty_meta_fail(smarty_meta_error_t *err, smarty_err_e code,
    const char *fmt, ...);
static const char *smarty_meta_quote(char *buf, size_t size, const char *s,
    size_t len);
static const char *smarty_meta_echo(char *buf, size_t size, const char *s,
    size_t len, int quotes);
static size_t smarty_meta_utf8(const unsigned char *p, size_t len);
static const char *smarty_meta_type(const json_t *v);
static int smarty_meta_space(json_t *root, smarty_meta_t *out,
    smarty_meta_error_t *err);
static int smarty_meta_recognize(json_t *root, smarty_meta_t *out,
    smarty_meta_error_t *err);
static int smarty_meta_mode(json_t *root, smarty_meta_t *out,
    smarty_meta_error_t *err);
static void smarty_meta_foreign(const smarty_method_t *m, json_t *root,
    json_t *images, smarty_meta_t *out);
static int smarty_meta_shape(json_t *images, smarty_meta_error_t *err);
static int smarty_meta_images(const smarty_method_t *m, json_t *images,
    smarty_meta_t *out, smarty_meta_error_t *err);
static int smarty_meta_names(const smarty_method_t *m,
    const smarty_part_name_t *parts, size_t nparts, smarty_meta_t *out,
    smarty_meta_error_t *err);
static int smarty_meta_params(json_t *root, smarty_meta_t *out,
    smarty_meta_error_t *err);
static int smarty_meta_key_cmp(const void *a, const void *b);
static smarty_meta_key_t *smarty_meta_key_find(smarty_meta_key_t *keys,
    size_t n, const char *name, size_t len);


const smarty_method_t *
smarty_method_find(const char *path, size_t len)
{
    size_t  i;

    if (path == NULL) {
        return NULL;
    }

    for (i = 0; i < SMARTY_M_COUNT; i++) {
        if (strlen(smarty_methods[i].path) == len
            && memcmp(smarty_methods[i].path, path, len) == 0)
        {
            return &smarty_methods[i];
        }
    }

    return NULL;
}


int
smarty_right_find(const char *name, size_t len)
{
    const smarty_method_t  *m;

    m = smarty_method_find(name, len);
    if (m != NULL) {
        return m->id;
    }

    if (len == sizeof("persons/enroll") - 1
        && memcmp(name, "persons/enroll", len) == 0)
    {
        return SMARTY_RIGHT_ENROLL;
    }

    return -1;
}


const char *
smarty_right_name(int bit)
{
    if (bit >= 0 && bit < SMARTY_M_COUNT) {
        return smarty_methods[bit].path;
    }

    return bit == SMARTY_RIGHT_ENROLL ? "persons/enroll" : NULL;
}


int
smarty_meta_writes(const smarty_method_t *m, const smarty_meta_t *meta)
{
    return m->mutates
           || (m->id == SMARTY_M_PERSONS_RECOGNIZE
               && (meta->create_new || meta->update_embedding));
}


const smarty_method_t *
smarty_method_get(smarty_method_e id)
{
    if ((unsigned) id >= SMARTY_M_COUNT) {
        return NULL;
    }

    return &smarty_methods[id];
}


int
smarty_meta_validate(const smarty_method_t *m, const char *json,
    size_t len, const smarty_part_name_t *parts, size_t nparts,
    size_t max_images, smarty_meta_t *out, smarty_meta_error_t *err)
{
    char          q[SMARTY_META_QUOTE_SIZE];
    json_t       *root, *images;
    json_error_t  jerr;

    memset(out, 0, sizeof(smarty_meta_t));
    out->space = -1;

    err->code = SMARTY_OK;
    err->message[0] = '\0';

    if (m == NULL) {
        return smarty_meta_fail(err, SMARTY_E_UNKNOWN_ENDPOINT,
                                "no such API method");
    }

    /* meta is one JSON object: no duplicate keys, nothing after it */

    root = json_loadb(json ? json : "", json ? len : 0,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);

    if (root == NULL) {
        return smarty_meta_fail(err, SMARTY_E_BAD_META,
                                "meta is not a valid JSON object: %s (line "
                                "%d, column %d)",
                                smarty_meta_echo(q, sizeof(q), jerr.text,
                                                 strlen(jerr.text), 0),
                                jerr.line, jerr.column);
    }

    if (!json_is_object(root)) {
        smarty_meta_fail(err, SMARTY_E_BAD_META,
                         "meta must be a JSON object, not %s",
                         smarty_meta_type(root));
        goto failed;
    }

    if (m->persons && smarty_meta_space(root, out, err) != 0) {
        goto failed;
    }

    if (m->id == SMARTY_M_PERSONS_RECOGNIZE
        && smarty_meta_recognize(root, out, err) != 0)
    {
        goto failed;
    }

    if (m->id == SMARTY_M_OBJECTS_DETECT
        && smarty_meta_mode(root, out, err) != 0)
    {
        goto failed;
    }

    /* images: required by the methods that take images or person ids */

    images = NULL;

    if (m->images || m->person_id) {
        images = json_object_get(root, "images");

        if (images == NULL) {
            smarty_meta_fail(err, SMARTY_E_BAD_IMAGES,
                             "meta.images is missing: %s needs an array of "
                             "objects with a string \"name\"", m->path);
            goto failed;
        }

        if (!json_is_array(images)) {
            smarty_meta_fail(err, SMARTY_E_BAD_IMAGES,
                             "meta.images must be an array of objects with "
                             "a string \"name\", not %s",
                             smarty_meta_type(images));
            goto failed;
        }

        if (json_array_size(images) == 0) {
            smarty_meta_fail(err, SMARTY_E_BAD_IMAGES,
                             "meta.images is empty: %s needs at least one "
                             "image", m->path);
            goto failed;
        }

        if (smarty_meta_shape(images, err) != 0) {
            goto failed;
        }
    }

    if (images != NULL && json_array_size(images) > max_images) {
        smarty_meta_fail(err, SMARTY_E_TOO_MANY_IMAGES,
                         "meta.images has %zu entries, more than the limit "
                         "of %zu images", json_array_size(images),
                         max_images);
        goto failed;
    }

    if (nparts > max_images) {
        smarty_meta_fail(err, SMARTY_E_TOO_MANY_IMAGES,
                         "the body has %zu image parts, more than the limit "
                         "of %zu images", nparts, max_images);
        goto failed;
    }

    if (images != NULL && smarty_meta_images(m, images, out, err) != 0) {
        goto failed;
    }

    if (smarty_meta_names(m, parts, nparts, out, err) != 0) {
        goto failed;
    }

    smarty_meta_foreign(m, root, images, out);

    /* the parameters that change the answer */

    if (out->params == NULL) {
        if (!m->persons && m->id != SMARTY_M_OBJECTS_DETECT) {
            if (smarty_meta_params(root, out, err) != 0) {
                goto failed;
            }

        } else {
            out->params = strdup("");
            if (out->params == NULL) {
                smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
                goto failed;
            }
        }
    }

    out->params_len = strlen(out->params);

    json_decref(root);

    return 0;

failed:

    json_decref(root);
    smarty_meta_free(out);
    out->space = -1;

    return -1;
}


void
smarty_meta_free(smarty_meta_t *meta)
{
    size_t  i;

    if (meta->images) {
        for (i = 0; i < meta->nimages; i++) {
            free(meta->images[i].name);
        }

        free(meta->images);
    }

    free(meta->params);

    memset(meta, 0, sizeof(smarty_meta_t));
}


/* persons methods: "space" is a string of exactly one digit */

static int
smarty_meta_space(json_t *root, smarty_meta_t *out, smarty_meta_error_t *err)
{
    char         q[SMARTY_META_QUOTE_SIZE];
    json_t      *v;
    const char  *s;

    v = json_object_get(root, "space");

    if (v == NULL) {
        return smarty_meta_fail(err, SMARTY_E_BAD_SPACE,
                                "meta.space is missing: it must be a string "
                                "holding one digit, \"0\" to \"9\"");
    }

    if (!json_is_string(v)) {
        return smarty_meta_fail(err, SMARTY_E_BAD_SPACE,
                                "meta.space must be a string holding one "
                                "digit, \"0\" to \"9\", not %s",
                                smarty_meta_type(v));
    }

    s = json_string_value(v);

    if (json_string_length(v) != 1 || s[0] < '0' || s[0] > '9') {
        return smarty_meta_fail(err, SMARTY_E_BAD_SPACE,
                                "meta.space \"%s\" is not one digit, \"0\" "
                                "to \"9\"",
                                smarty_meta_quote(q, sizeof(q), s,
                                                  json_string_length(v)));
    }

    out->space = s[0] - '0';

    return 0;
}


/* persons/recognize: create_new, update_embedding, searcher */

static int
smarty_meta_recognize(json_t *root, smarty_meta_t *out,
    smarty_meta_error_t *err)
{
    json_t      *v;
    json_int_t   searcher;

    v = json_object_get(root, "create_new");

    if (v != NULL) {
        if (!json_is_boolean(v)) {
            return smarty_meta_fail(err, SMARTY_E_BAD_CREATE_NEW,
                                    "meta.create_new must be true or false, "
                                    "not %s", smarty_meta_type(v));
        }

        out->create_new = json_is_true(v);
    }

    v = json_object_get(root, "update_embedding");

    if (v != NULL) {
        if (!json_is_boolean(v)) {
            return smarty_meta_fail(err, SMARTY_E_BAD_META,
                                    "meta.update_embedding must be true or "
                                    "false, not %s", smarty_meta_type(v));
        }

        out->update_embedding = json_is_true(v);
    }

    v = json_object_get(root, "searcher");
    searcher = 0;

    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return smarty_meta_fail(err, SMARTY_E_BAD_META,
                                    "meta.searcher must be an integer of 0 "
                                    "or more, not %s",
                                    json_is_integer(v) ? "a negative one"
                                                       : smarty_meta_type(v));
        }

        searcher = json_integer_value(v);
    }

    /* searcher 0 is the default model: the same answer as no searcher */

    out->params = malloc(sizeof("searcher=") + 20);
    if (out->params == NULL) {
        return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
    }

    if (searcher) {
        sprintf(out->params, "searcher=%lld", (long long) searcher);

    } else {
        out->params[0] = '\0';
    }

    return 0;
}


/*
 * A member the method's rules do not name: the gateway cannot tell what it
 * does to the answer.  The other detectors key on all of meta but images.
 */

static void
smarty_meta_foreign(const smarty_method_t *m, json_t *root, json_t *images,
    smarty_meta_t *out)
{
    size_t       i, k;
    json_t      *entry, *v;
    const char  *key;

    static const char  *known[][6] = {
        /* SMARTY_M_PERSONS_SET */
        { "space", "images", NULL },
        /* SMARTY_M_PERSONS_RECOGNIZE */
        { "space", "images", "create_new", "update_embedding", "searcher",
          NULL },
        /* SMARTY_M_PERSONS_DELETE */
        { "space", "images", NULL },
        /* SMARTY_M_PERSONS_TRUNCATE */
        { "space", "images", NULL },
        /* SMARTY_M_OBJECTS_DETECT */
        { "mode", "images", NULL }
    };

    if (m->id <= SMARTY_M_OBJECTS_DETECT) {
        json_object_foreach(root, key, v) {
            for (k = 0; known[m->id][k]; k++) {
                if (strcmp(key, known[m->id][k]) == 0) {
                    break;
                }
            }

            if (known[m->id][k] == NULL) {
                out->foreign = 1;
                return;
            }
        }
    }

    if (images == NULL) {
        return;
    }

    json_array_foreach(images, i, entry) {
        json_object_foreach(entry, key, v) {
            if (strcmp(key, "name") != 0
                && !(m->person_id && strcmp(key, "person_id") == 0))
            {
                out->foreign = 1;
                return;
            }
        }
    }
}


/* objects/detect: "mode" is a non-empty array of known modes */

static int
smarty_meta_mode(json_t *root, smarty_meta_t *out, smarty_meta_error_t *err)
{
    char         q[SMARTY_META_QUOTE_SIZE], *p;
    int          seen[SMARTY_NMODES];
    size_t       i, k, n;
    json_t      *v, *mode;
    const char  *s;

    memset(seen, 0, sizeof(seen));

    v = json_object_get(root, "mode");

    if (v == NULL) {
        seen[2] = 1;                            /* "object" */

    } else if (!json_is_array(v)) {
        return smarty_meta_fail(err, SMARTY_E_BAD_MODE,
                                "meta.mode must be a non-empty array of "
                                SMARTY_META_MODES ", not %s",
                                smarty_meta_type(v));

    } else if (json_array_size(v) == 0) {
        return smarty_meta_fail(err, SMARTY_E_BAD_MODE,
                                "meta.mode is empty: it must name at least "
                                "one of " SMARTY_META_MODES);
    }

    json_array_foreach(v, i, mode) {
        if (!json_is_string(mode)) {
            return smarty_meta_fail(err, SMARTY_E_BAD_MODE,
                                    "meta.mode[%zu] must be a string, not "
                                    "%s", i, smarty_meta_type(mode));
        }

        s = json_string_value(mode);
        n = json_string_length(mode);

        for (k = 0; k < SMARTY_NMODES; k++) {
            if (strlen(smarty_modes[k]) == n
                && memcmp(smarty_modes[k], s, n) == 0)
            {
                break;
            }
        }

        if (k == SMARTY_NMODES) {
            return smarty_meta_fail(err, SMARTY_E_BAD_MODE,
                                    "meta.mode[%zu] \"%s\" is not one of "
                                    SMARTY_META_MODES, i,
                                    smarty_meta_quote(q, sizeof(q), s, n));
        }

        seen[k] = 1;
    }

    /* "mode=" and the sorted unique set */

    out->params = malloc(sizeof("mode=" SMARTY_META_MODES));
    if (out->params == NULL) {
        return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
    }

    p = out->params;
    p += sprintf(p, "mode=");

    for (k = 0; k < SMARTY_NMODES; k++) {
        if (seen[k]) {
            p += sprintf(p, "%s%s", p[-1] == '=' ? "" : ",", smarty_modes[k]);
        }
    }

    return 0;
}


/* the entries of meta.images (a non-empty array): objects with a name */

static int
smarty_meta_shape(json_t *images, smarty_meta_error_t *err)
{
    size_t   i;
    json_t  *entry, *name;

    json_array_foreach(images, i, entry) {
        if (!json_is_object(entry)) {
            return smarty_meta_fail(err, SMARTY_E_BAD_IMAGES,
                                    "meta.images[%zu] must be an object with "
                                    "a string \"name\", not %s", i,
                                    smarty_meta_type(entry));
        }

        name = json_object_get(entry, "name");

        if (name == NULL) {
            return smarty_meta_fail(err, SMARTY_E_BAD_IMAGES,
                                    "meta.images[%zu].name is missing", i);
        }

        if (!json_is_string(name)) {
            return smarty_meta_fail(err, SMARTY_E_BAD_IMAGES,
                                    "meta.images[%zu].name must be a string, "
                                    "not %s", i, smarty_meta_type(name));
        }
    }

    return 0;
}


/* person_id where the method needs it; fills out->images */

static int
smarty_meta_images(const smarty_method_t *m, json_t *images,
    smarty_meta_t *out, smarty_meta_error_t *err)
{
    size_t                i, n;
    json_t               *entry, *name, *pid;
    json_int_t            id;
    smarty_meta_image_t  *img;

    n = json_array_size(images);

    if (m->person_id) {
        json_array_foreach(images, i, entry) {
            pid = json_object_get(entry, "person_id");

            if (pid == NULL) {
                return smarty_meta_fail(err, SMARTY_E_BAD_PERSON_ID,
                                        "meta.images[%zu].person_id is "
                                        "missing: %s needs a positive "
                                        "integer", i, m->path);
            }

            if (!json_is_integer(pid)) {
                return smarty_meta_fail(err, SMARTY_E_BAD_PERSON_ID,
                                        "meta.images[%zu].person_id must be "
                                        "a positive integer, not %s", i,
                                        smarty_meta_type(pid));
            }

            id = json_integer_value(pid);

            if (id < 1) {
                return smarty_meta_fail(err, SMARTY_E_BAD_PERSON_ID,
                                        "meta.images[%zu].person_id %lld is "
                                        "not a positive integer", i,
                                        (long long) id);
            }
        }
    }

    out->images = calloc(n, sizeof(smarty_meta_image_t));
    if (out->images == NULL) {
        return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
    }

    json_array_foreach(images, i, entry) {
        img = &out->images[i];
        name = json_object_get(entry, "name");

        img->name_len = json_string_length(name);
        img->name = malloc(img->name_len + 1);
        if (img->name == NULL) {
            return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
        }

        /* counted so that smarty_meta_free() frees what exists */
        out->nimages = i + 1;

        memcpy(img->name, json_string_value(name), img->name_len);
        img->name[img->name_len] = '\0';
        img->part = -1;

        if (m->person_id) {
            img->person_id = json_integer_value(json_object_get(entry,
                                                                "person_id"));
            img->has_person_id = 1;
        }
    }

    return 0;
}


/*
 * The names of meta.images against the image parts: each name once, each
 * naming exactly one part, each part named.  Sorted copies keep this
 * O(n log n) (smarty_max_images may be 10000); the culprit reported is the
 * first in meta (or body) order all the same.
 */

static int
smarty_meta_names(const smarty_method_t *m, const smarty_part_name_t *parts,
    size_t nparts, smarty_meta_t *out, smarty_meta_error_t *err)
{
    int                 rc;
    char                q[SMARTY_META_QUOTE_SIZE];
    size_t              i, j, start, dup, first, n;
    smarty_meta_key_t  *ek, *pk, *k;

    if (!m->images && !m->person_id && nparts > 0) {
        return smarty_meta_fail(err, SMARTY_E_UNEXPECTED_IMAGE,
                                "%s takes no image parts, but the body has "
                                "the part \"%s\"", m->path,
                                smarty_meta_quote(q, sizeof(q), parts[0].name,
                                                  parts[0].len));
    }

    n = out->nimages;

    if (n == 0 && nparts == 0) {
        return 0;
    }

    ek = malloc((n + nparts) * sizeof(smarty_meta_key_t));
    if (ek == NULL) {
        return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
    }

    pk = ek + n;
    rc = -1;

    for (i = 0; i < n; i++) {
        ek[i].name = out->images[i].name;
        ek[i].len = out->images[i].name_len;
        ek[i].idx = i;
    }

    for (i = 0; i < nparts; i++) {
        pk[i].name = parts[i].name;
        pk[i].len = parts[i].len;
        pk[i].idx = i;
    }

    qsort(ek, n, sizeof(smarty_meta_key_t), smarty_meta_key_cmp);
    qsort(pk, nparts, sizeof(smarty_meta_key_t), smarty_meta_key_cmp);

    /* each name once: the repeat that comes first in meta */

    dup = n;
    first = 0;

    for (start = 0, i = 1; i < n; i++) {
        if (ek[i].len != ek[start].len
            || memcmp(ek[i].name, ek[start].name, ek[i].len) != 0)
        {
            start = i;
            continue;
        }

        if (ek[i].idx < dup) {
            dup = ek[i].idx;
            first = ek[start].idx;
        }
    }

    if (dup < n) {
        smarty_meta_fail(err, SMARTY_E_DUPLICATE_IMAGE,
                         "meta.images[%zu].name \"%s\" repeats "
                         "meta.images[%zu].name", dup,
                         smarty_meta_quote(q, sizeof(q),
                                           out->images[dup].name,
                                           out->images[dup].name_len),
                         first);
        goto done;
    }

    if (!m->images) {
        /* delete: a part may come for an entry, never for anything else */

        for (i = 0; i < nparts; i++) {
            k = smarty_meta_key_find(ek, n, parts[i].name, parts[i].len);

            if (k == NULL) {
                smarty_meta_fail(err, SMARTY_E_UNEXPECTED_IMAGE,
                                 "%s takes no image parts but one per entry "
                                 "of meta.images, and the part \"%s\" names "
                                 "none", m->path,
                                 smarty_meta_quote(q, sizeof(q),
                                                   parts[i].name,
                                                   parts[i].len));
                goto done;
            }

            if (out->images[k->idx].part != -1) {
                smarty_meta_fail(err, SMARTY_E_DUPLICATE_PART,
                                 "meta.images[%zu].name \"%s\" matches two "
                                 "parts", k->idx,
                                 smarty_meta_quote(q, sizeof(q),
                                                   parts[i].name,
                                                   parts[i].len));
                goto done;
            }

            out->images[k->idx].part = (long) i;
        }

        rc = 0;
        goto done;
    }

    /* each name matches exactly one part */

    for (i = 0; i < n; i++) {
        k = smarty_meta_key_find(pk, nparts, out->images[i].name,
                                 out->images[i].name_len);

        if (k == NULL) {
            smarty_meta_fail(err, SMARTY_E_UNKNOWN_IMAGE,
                             "meta.images[%zu].name \"%s\" matches no part",
                             i, smarty_meta_quote(q, sizeof(q),
                                                  out->images[i].name,
                                                  out->images[i].name_len));
            goto done;
        }

        j = k - pk;

        if (j + 1 < nparts && pk[j + 1].len == k->len
            && memcmp(pk[j + 1].name, k->name, k->len) == 0)
        {
            smarty_meta_fail(err, SMARTY_E_DUPLICATE_PART,
                             "meta.images[%zu].name \"%s\" matches two "
                             "parts", i,
                             smarty_meta_quote(q, sizeof(q),
                                               out->images[i].name,
                                               out->images[i].name_len));
            goto done;
        }

        out->images[i].part = (long) k->idx;
    }

    /* each part is named */

    for (i = 0; i < nparts; i++) {
        if (smarty_meta_key_find(ek, n, parts[i].name, parts[i].len)
            == NULL)
        {
            smarty_meta_fail(err, SMARTY_E_UNREFERENCED_IMAGE,
                             "the image part \"%s\" is not named in "
                             "meta.images",
                             smarty_meta_quote(q, sizeof(q), parts[i].name,
                                               parts[i].len));
            goto done;
        }
    }

    rc = 0;

done:

    free(ek);

    return rc;
}


/* other detectors: the canonical compact JSON of meta minus "images" */

static int
smarty_meta_params(json_t *root, smarty_meta_t *out, smarty_meta_error_t *err)
{
    json_t  *copy;

    copy = json_copy(root);         /* shallow: "images" is not touched */
    if (copy == NULL) {
        return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
    }

    json_object_del(copy, "images");

    if (json_object_size(copy) == 0) {
        out->params = strdup("");

    } else {
        out->params = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS
                                       | JSON_ENSURE_ASCII);
    }

    json_decref(copy);

    if (out->params == NULL) {
        return smarty_meta_fail(err, SMARTY_E_INTERNAL, "out of memory");
    }

    return 0;
}


static int
smarty_meta_key_cmp(const void *a, const void *b)
{
    int                       rc;
    const smarty_meta_key_t  *x = a, *y = b;

    rc = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

    if (rc != 0) {
        return rc;
    }

    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }

    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}


/* the first key of that name in keys sorted by smarty_meta_key_cmp */

static smarty_meta_key_t *
smarty_meta_key_find(smarty_meta_key_t *keys, size_t n, const char *name,
    size_t len)
{
    int     rc;
    size_t  lo, hi, mid;

    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        rc = memcmp(keys[mid].name, name,
                    keys[mid].len < len ? keys[mid].len : len);

        if (rc == 0 && keys[mid].len != len) {
            rc = keys[mid].len < len ? -1 : 1;
        }

        if (rc < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (lo < n && keys[lo].len == len
        && memcmp(keys[lo].name, name, len) == 0)
    {
        return &keys[lo];
    }

    return NULL;
}


static const char *
smarty_meta_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a fractional number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}


static int
smarty_meta_fail(smarty_meta_error_t *err, smarty_err_e code,
    const char *fmt, ...)
{
    int      n;
    va_list  args;

    err->code = code;

    va_start(args, fmt);
    n = vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    /* cut off: do not end inside a UTF-8 character */

    if (n >= (int) sizeof(err->message)) {
        n = sizeof(err->message) - 1;

        while (n > 0 && ((unsigned char) err->message[n] & 0xc0) == 0x80) {
            n--;
        }

        err->message[n] = '\0';
    }

    return -1;
}


/*
 * Client input for a message: at most SMARTY_META_ECHO_MAX bytes out, whole
 * valid UTF-8 characters passed on, '"' and '\' escaped with a backslash
 * (when quotes: the text goes between quotes), control characters and
 * invalid bytes as \xNN, "..." when cut.
 */

static const char *
smarty_meta_quote(char *buf, size_t size, const char *s, size_t len)
{
    return smarty_meta_echo(buf, size, s, len, 1);
}


static const char *
smarty_meta_echo(char *buf, size_t size, const char *s, size_t len,
    int quotes)
{
    size_t                i, o, n, max;
    const unsigned char  *p;

    p = (const unsigned char *) s;
    max = size - 4 < SMARTY_META_ECHO_MAX ? size - 4 : SMARTY_META_ECHO_MAX;
    o = 0;

    for (i = 0; i < len; i += n) {
        n = smarty_meta_utf8(p + i, len - i);

        if (n > 1 || (p[i] >= 0x20 && p[i] < 0x7f)) {
            if (quotes && n == 1 && (p[i] == '"' || p[i] == '\\')) {
                if (o + 2 > max) {
                    break;
                }

                buf[o++] = '\\';
                buf[o++] = (char) p[i];
                continue;
            }

            if (o + n > max) {
                break;
            }

            memcpy(buf + o, p + i, n);
            o += n;
            continue;
        }

        /* a control character or a byte that is not UTF-8 */

        if (o + 4 > max) {
            break;
        }

        o += snprintf(buf + o, size - o, "\\x%02x", p[i]);
        n = 1;
    }

    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }

    buf[o] = '\0';

    return buf;
}


/* the length of the valid UTF-8 character at p (1 for an invalid byte) */

static size_t
smarty_meta_utf8(const unsigned char *p, size_t len)
{
    size_t         n, i;
    unsigned char  lo, hi;

    if (p[0] < 0x80) {
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;

        if (p[0] == 0xe0) {
            lo = 0xa0;                  /* no overlong forms */

        } else if (p[0] == 0xed) {
            hi = 0x9f;                  /* no surrogates */
        }

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;

        if (p[0] == 0xf0) {
            lo = 0x90;

        } else if (p[0] == 0xf4) {
            hi = 0x8f;                  /* not above U+10FFFF */
        }

    } else {
        return 1;
    }

    if (len < n || p[1] < lo || p[1] > hi) {
        return 1;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 1;
        }
    }

    return n;
}
