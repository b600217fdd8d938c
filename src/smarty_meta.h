/*
 * smarty-gateway: the API's methods and validation of the "meta" part.
 *
 * Pure C (jansson for JSON), no nginx types.  Everything the gateway
 * checks before a request may reach the upstream lives here, so it is
 * unit-tested and fuzzed outside nginx.
 */

#ifndef SMARTY_META_H
#define SMARTY_META_H

#include <stddef.h>
#include <stdint.h>

#include "smarty_errors.h"


typedef enum {
    SMARTY_M_PERSONS_SET = 0,
    SMARTY_M_PERSONS_RECOGNIZE,
    SMARTY_M_PERSONS_DELETE,
    SMARTY_M_PERSONS_TRUNCATE,
    SMARTY_M_OBJECTS_DETECT,
    SMARTY_M_DOCS_DETECT,
    SMARTY_M_DOCS_RECOGNIZE,
    SMARTY_M_TEXT_RECOGNIZE,
    SMARTY_M_ADULT_DETECT,
    SMARTY_M_COUNT
} smarty_method_e;


typedef struct {
    smarty_method_e  id;
    const char      *path;          /* "persons/recognize" */
    unsigned         persons:1;     /* meta.space required */
    unsigned         images:1;      /* takes image parts */
    unsigned         person_id:1;   /* meta.images[].person_id required */
    unsigned         mutates:1;     /* may change what recognize answers */
} smarty_method_t;


/* the method for "group/method" (no leading slash), or NULL */
const smarty_method_t *smarty_method_find(const char *path, size_t len);
const smarty_method_t *smarty_method_get(smarty_method_e id);


/*
 * A client's rights, as the clients file's "methods" names them: one bit
 * per method (its id), and the rights that are not methods after them.
 *
 *   "persons/enroll"   recognize with create_new or update_embedding: a
 *                      recognize that changes the space (persons/set
 *                      grants it too)
 */
#define SMARTY_RIGHT_ENROLL   SMARTY_M_COUNT
#define SMARTY_RIGHT_COUNT    (SMARTY_M_COUNT + 1)
#define SMARTY_RIGHTS_ALL     ((1u << SMARTY_RIGHT_COUNT) - 1)

/* the bit of a right named len bytes at name, or -1 */
int smarty_right_find(const char *name, size_t len);

/* the name of right bit, or NULL */
const char *smarty_right_name(int bit);


typedef struct {
    const char  *name;
    size_t       len;
} smarty_part_name_t;


typedef struct {
    char        *name;          /* NUL-terminated copy */
    size_t       name_len;
    int64_t      person_id;
    int          has_person_id;
    long         part;          /* index into the parts given to validate,
                                   -1 when the method takes no images */
} smarty_meta_image_t;


typedef struct {
    int                   space;       /* 0..9, or -1 (stateless methods) */
    int                   create_new;  /* recognize only; default 0 */
    int                   update_embedding;  /* recognize only; default 0 */
    int                   foreign;     /* a member the gateway does not
                                          know: its effect on the answer
                                          is unknown, so it is not cached */
    size_t                nimages;
    smarty_meta_image_t  *images;      /* in meta order */
    char                 *params;      /* normalised parameters that change
                                          the answer, for cache keys:
                                          e.g. "mode=object,scene" (sorted,
                                          unique); "" when none */
    size_t                params_len;
} smarty_meta_t;


typedef struct {
    smarty_err_e  code;
    char          message[256];   /* a sentence naming the culprit */
} smarty_meta_error_t;


/*
 * Validate meta (len bytes of JSON) for method m, against the names of the
 * image parts of the body (every part but "meta", in body order).
 *
 * Rules:
 *  - meta is a JSON object (SMARTY_E_BAD_META);
 *  - persons methods: "space" is a string of exactly one digit
 *    (SMARTY_E_BAD_SPACE);
 *  - methods taking images: "images" is a non-empty array of objects each
 *    with a string "name" (SMARTY_E_BAD_IMAGES); each name unique
 *    (SMARTY_E_DUPLICATE_IMAGE) and matching exactly one part
 *    (SMARTY_E_UNKNOWN_IMAGE); every part named (SMARTY_E_UNREFERENCED_IMAGE);
 *    at most max_images entries (SMARTY_E_TOO_MANY_IMAGES);
 *  - persons/set and persons/delete: every entry has an integer
 *    "person_id" >= 1 (SMARTY_E_BAD_PERSON_ID);
 *  - persons/delete: "images" as above; image parts are not needed, but
 *    a part may come for an entry (some SDKs send one per name): a part
 *    that names no entry is SMARTY_E_UNEXPECTED_IMAGE; persons/truncate:
 *    no parts, "images" ignored;
 *  - persons/recognize: "create_new", if present, is a boolean
 *    (SMARTY_E_BAD_CREATE_NEW); "update_embedding", if present, a boolean
 *    and "searcher", if present, an integer >= 0 (SMARTY_E_BAD_META);
 *    params is "" or, with a searcher other than 0, "searcher=<n>";
 *  - objects/detect: "mode", if present, is a non-empty array of strings
 *    from object, scene, car_number, multiobject, pedestrian
 *    (SMARTY_E_BAD_MODE); params is "mode=" + the sorted unique set
 *    (default when absent: "mode=object").  Other detectors: params is
 *    the canonical compact JSON of meta minus "images" (sorted keys);
 *  - foreign is set when meta, or an entry of meta.images, has a member
 *    that the method's rules above do not name (the other detectors: an
 *    entry of meta.images only): the gateway cannot tell whether it
 *    changes the answer.
 *
 * Returns 0 and fills out (free with smarty_meta_free) or -1 and fills err.
 */
int smarty_meta_validate(const smarty_method_t *m, const char *json,
    size_t len, const smarty_part_name_t *parts, size_t nparts,
    size_t max_images, smarty_meta_t *out, smarty_meta_error_t *err);

void smarty_meta_free(smarty_meta_t *meta);

/*
 * Whether the call changes what a later recognize of the space answers:
 * set, delete, truncate, and recognize with create_new or
 * update_embedding.
 */
int smarty_meta_writes(const smarty_method_t *m, const smarty_meta_t *meta);

#endif /* SMARTY_META_H */
