/*
 * smarty-gateway: the per-image answer cache, the pure part.
 *
 * Pure C (jansson for JSON, OpenSSL for SHA-256), no nginx types.  The
 * module talks to Redis (src/lua/cache_get.lua, cache_put.lua); this core
 * builds the keys, splits an upstream answer into one value per image,
 * rebuilds an answer from such values and rewrites meta for the images
 * that must still go upstream.
 *
 * Keys (the Lua scripts assemble the last one):
 *
 *   base         <prefix>{s<space>}     persons methods (space "0".."9")
 *                <prefix>{d}            stateless detectors
 *   generation   <base>:gen
 *   entry        <base>:g<generation>:<params id>:<image SHA-256, hex>
 *
 * The {...} hash tag keeps every key one script touches in one Redis
 * Cluster slot.
 *
 * A per-image value is a compact JSON object mapping each per-image list
 * of the answer's body to this image's element of it, without its "name":
 *
 *   {"objects":{"status":0,"persons":[...]}}
 *   {"object_labels":{"status":0,"labels":[...]},"scene_labels":{...}}
 *
 * so it is independent of the part name the client chose.
 *
 * Numbers: JSON is parsed by jansson and written back by this core's own
 * compact writer (not json_dumps), which prints every real in the
 * shortest form that reads back as the same double ("0.9912" stays
 * "0.9912"; json_dumps would print 0.99119999999999997).  Integers,
 * strings and structure are kept; the text may still differ from the
 * upstream's where the value does not: "1.50" becomes 1.5, "1E3"
 * becomes 1000.0, "\u0041" becomes "A", whitespace disappears.  A cached
 * answer is therefore equal to the upstream's as JSON values (every
 * number reads back to the same double or integer), not byte for byte.
 * Reals are written with snprintf/strtod: the C numeric locale is assumed
 * (nginx never calls setlocale).
 */

#ifndef SMARTY_CACHE_H
#define SMARTY_CACHE_H

#include <stddef.h>


#define SMARTY_PARAMS_ID_LEN  16        /* hex characters */


/*
 * The parameters' id: the first 16 hex characters (lowercase) of
 * SHA-256(method_path "\n" params), or of SHA-256(method_path "\n"
 * params "\n" args) when args_len is not 0, written to out
 * NUL-terminated.
 *
 * method_path is "persons/recognize" etc.; params is smarty_meta_t.params
 * (params_len bytes, NULL allowed when params_len is 0): "" for
 * persons/recognize without searcher, "mode=object,scene" for
 * objects/detect, the canonical JSON of meta for the other detectors;
 * args are the query parameters forwarded upstream, as forwarded (NULL
 * allowed when args_len is 0).  Everything that reaches the upstream and
 * may change its answer is in the key; nothing else is.
 *
 * Returns 0, or -1 if OpenSSL fails (out is then "").
 */
int smarty_cache_params_id(const char *method_path, const char *params,
    size_t params_len, const char *args, size_t args_len,
    char out[SMARTY_PARAMS_ID_LEN + 1]);


/*
 * The key base: "<prefix>{s<space>}" for space 0..9, "<prefix>{d}" for
 * space -1 (stateless methods), prefix being prefix_len bytes.
 *
 * Like snprintf: returns the base's length, and writes it NUL-terminated
 * to out when it fits in size bytes (out may be NULL when size is 0, to
 * measure).  Returns 0 (writing nothing) when space is out of range or
 * the prefix holds '{' or '}', which would change the hash tag.
 */
size_t smarty_cache_base(const char *prefix, size_t prefix_len, int space,
    char *out, size_t size);


/*
 * The generation key "<base>:gen", snprintf-like as smarty_cache_base
 * (never 0).
 */
size_t smarty_cache_gen_key(const char *base, size_t base_len, char *out,
    size_t size);


/*
 * An entry's key "<base>:e:<params_id>:<sha256hex>" and its coalescing
 * lock's "<base>:lock:<params_id>:<sha256hex>", declared in the KEYS of
 * src/lua/cache_get.lua and cache_put.lua; snprintf-like as
 * smarty_cache_base; params_id is SMARTY_PARAMS_ID_LEN characters and
 * sha256hex 64, NUL-terminated or not.  The generation is not in the key:
 * it is in the entry's value (docs/cache.md, "Keys").
 */
size_t smarty_cache_entry_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size);
size_t smarty_cache_lock_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size);


typedef struct {
    size_t   n;                 /* the names given to smarty_answer_split */
    char   **values;            /* n values, malloc'ed, NUL-terminated;
                                   NULL: the image is in no per-image list */
    size_t  *lens;              /* their lengths (0 when NULL) */
    int     *cacheable;         /* n flags: 1 to store values[i] */
    int      aliases_changed;   /* body.aliases_changed present, not false */
    int      status;            /* the envelope's status, -1 if none */
} smarty_answer_t;


/*
 * Split an upstream answer (len bytes of JSON) into one value per image.
 *
 * names are the n image part names as sent upstream (NUL-terminated,
 * unique), in request order; out->values[i] is the value for names[i].
 *
 * The answer must be the envelope {"status":200,"body":{...},...} (other
 * envelope members are ignored, duplicate keys anywhere are rejected).
 * Every member of body that is an array whose elements are all objects
 * (an empty array included) is a per-image list: each of its elements
 * must have a string "name" that is one of names.  Other body members
 * (arrays holding anything but objects included) are not per image and
 * are dropped from the values; "aliases_changed" is only read, into
 * out->aliases_changed.
 *
 * values[i] holds, in the order the lists appear in body, each list's key
 * mapped to the element named names[i] with its "name" member removed;
 * NULL when no list names the image.  If a list names an image twice the
 * first element is kept.
 *
 * cacheable[i] is 1 when every per-image list holds exactly one element
 * for the image and each has an integer "status" 0 (or 1, when
 * cache_status1 is set); an element with status 2, another status, a
 * missing "status", a missing or repeated element makes it 0.
 *
 * out->aliases_changed is 1 when body has "aliases_changed" and it is not
 * false (any other value counts as a change, to be safe).
 *
 * Returns 0, or -1 with a sentence in err (errlen bytes, may be NULL/0)
 * when the answer is not JSON, the envelope or its status 200 is missing,
 * body is not an object, a list element has no string name or a name not
 * in names, names holds a duplicate, or memory runs out.  On -1 out holds
 * nothing to free but out->status (the envelope's integer status, if
 * any, so a 5xx can be told from garbage); smarty_answer_free() is safe
 * on it either way.
 */
int smarty_answer_split(const char *json, size_t len,
    const char *const *names, size_t n, int cache_status1,
    smarty_answer_t *out, char *err, size_t errlen);

void smarty_answer_free(smarty_answer_t *a);


/*
 * Rebuild an answer from n per-image values (as smarty_answer_split
 * makes them, from Redis or from a fresh split, mixed freely):
 *
 *   {"status":200,"body":{<key>:[<element>,...],...[,"aliases_changed":b]},
 *    "htmlencoded":false,"last_modified":0}
 *
 * One list per key, keys in the order they first appear in values[0..n);
 * a list holds, in the names' order, for every image whose value has the
 * key, its element with "name":names[i] inserted as the first member.
 * values[i] NULL leaves image i out of every list (as when the upstream
 * did not answer it).
 *
 * aliases_changed < 0 omits the member (detectors), 0 writes false
 * (persons/recognize answers always carry it), > 0 writes true.
 *
 * Every value must be a JSON object whose members are objects without a
 * "name" member, and no key may be "aliases_changed": anything else (a
 * corrupt or foreign Redis entry) makes the result NULL, as does running
 * out of memory.  The result is malloc'ed, NUL-terminated, always valid
 * JSON; its length goes to *len (len may be NULL).
 */
char *smarty_answer_build(const char *const *names,
    const char *const *values, size_t n, int aliases_changed, size_t *len);


/*
 * The client's meta (len bytes of JSON) with "images" reduced to the
 * entries whose string "name" is one of the nkeep names in keep, in the
 * original order; every other member unchanged and in place.  Used on a
 * partial hit, to send upstream only the images the cache did not answer.
 *
 * Returns the compact JSON (malloc'ed, NUL-terminated, length in
 * *out_len, which may be NULL), or NULL if meta is not a JSON object
 * (duplicate keys rejected, as smarty_meta_validate does), has no
 * "images" array, or memory runs out.
 */
char *smarty_cache_meta_subset(const char *json, size_t len,
    const char *const *keep, size_t nkeep, size_t *out_len);

#endif /* SMARTY_CACHE_H */
