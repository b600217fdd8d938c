/*
 * smarty-gateway: the per-image answer cache, the pure part.
 *
 * Pure C (jansson for JSON, OpenSSL for SHA-256), no nginx types.  The
 * module talks to Redis (src/lua/cache_get.lua, cache_put.lua); this core
 * builds the keys, splits an upstream answer into one entry per image,
 * builds an answer from entries and rewrites meta for the images that
 * must still go upstream.
 *
 * Keys:
 *
 *   base         <prefix>{s<space>}     persons methods (space "0".."9")
 *                <prefix>{d}            stateless detectors
 *   generation   <base>:gen
 *   entry        <base>:e2:<params id>:<image SHA-256, hex>
 *   lock         <base>:lock:<params id>:<image SHA-256, hex>
 *
 * The {...} hash tag keeps every key one script touches in one Redis
 * Cluster slot.
 *
 * An image's entry (format 2, what follows "<generation> <node> " in
 * Redis: docs/cache.md) holds its answer as it is sent: for each per-image
 * list of the upstream's answer, the list's key and the image's element
 * of it, the upstream's own bytes, cut where the element's "name" string
 * was, so that any part name can be put back there:
 *
 *   v2 <lists> <k> <p> <s> [<k> <p> <s> ...] LF <key><pre><post>[...]
 *
 * <lists> (1 to SMARTY_ENTRY_LISTS_MAX) and each list's <k>, <p>, <s>
 * (the lengths of its key, a JSON string, and of the element's bytes
 * before and after the name's string) in decimal, then the bytes, list
 * after list.  For {"name":"file_0","status":0,"persons":[]} in
 * "objects":
 *
 *   v2 1 9 8 25 LF "objects"{"name":,"status":0,"persons":[]}
 *
 * An answer is built from entries by concatenating bytes (no JSON parse,
 * no number printed, no allocation: smarty_answer_plan(),
 * smarty_answer_write()); only splitting the upstream's answer parses
 * JSON (jansson).  A hit therefore answers the upstream's bytes: the
 * same bytes for every image, the envelope and the separators written by
 * this core, the name escaped as jansson escapes it.
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
 * md is a digest context to use (EVP_MD_CTX *, reset here) and sha256
 * the algorithm (const EVP_MD *), so that a caller that hashes often
 * fetches and allocates them once; NULL for either: this call's own.
 *
 * Returns 0, or -1 if OpenSSL fails (out is then "").
 */
int smarty_cache_params_id(const char *method_path, const char *params,
    size_t params_len, const char *args, size_t args_len,
    char out[SMARTY_PARAMS_ID_LEN + 1], void *md, const void *sha256);


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
 * An entry's key "<base>:e2:<params_id>:<sha256hex>" and its coalescing
 * lock's "<base>:lock:<params_id>:<sha256hex>", declared in the KEYS of
 * src/lua/cache_get.lua and cache_put.lua; snprintf-like as
 * smarty_cache_base; params_id is SMARTY_PARAMS_ID_LEN characters and
 * sha256hex 64, NUL-terminated or not.  The generation is not in the key:
 * it is in the entry's value (docs/cache.md, "Keys").  "e2": entries of
 * format 2; those of format 1 ("<base>:e:...", JSON) are never read, so
 * an instance of either format never reads the other's.
 */
size_t smarty_cache_entry_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size);
size_t smarty_cache_lock_key(const char *base, size_t base_len,
    const char *params_id, const char *sha256hex, char *out, size_t size);


#define SMARTY_ENTRY_LISTS_MAX  16      /* per-image lists in an entry */
#define SMARTY_ANSWER_KEYS_MAX  16      /* lists in an answer */


typedef struct {
    size_t   n;                 /* the names given to smarty_answer_split */
    char   **values;            /* n entries (format 2), malloc'ed,
                                   NUL-terminated but binary (the
                                   upstream's bytes may hold a NUL that
                                   jansson took): use lens; NULL: the
                                   image is in no per-image list */
    size_t  *lens;              /* their lengths (0 when NULL) */
    int     *cacheable;         /* n flags: 1 to store values[i] */
    int      aliases_changed;   /* body.aliases_changed present, not false */
    int      status;            /* the envelope's status, -1 if none */
} smarty_answer_t;


/*
 * Split an upstream answer (len bytes of JSON) into one entry per image.
 *
 * names are the n image part names as sent upstream (NUL-terminated,
 * unique), in request order; out->values[i] is the entry for names[i].
 *
 * The answer must be the envelope {"status":200,"body":{...},...} (other
 * envelope members are ignored, duplicate keys anywhere are rejected).
 * Every member of body that is an array whose elements are all objects
 * (an empty array included) is a per-image list: each of its elements
 * must have a string "name" that is one of names.  Other body members
 * (arrays holding anything but objects included) are not per image and
 * are dropped from the entries; "aliases_changed" is only read, into
 * out->aliases_changed.
 *
 * values[i] holds, in the order the lists appear in body, each list's key
 * (as this core escapes it) with the upstream's bytes of the element
 * named names[i], cut around its "name" string; NULL when no list names
 * the image.  If a list names an image twice the first element is kept.
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
 * body is not an object or holds more than SMARTY_ENTRY_LISTS_MAX lists,
 * a list element has no string name or a name not in names, names holds
 * a duplicate, or memory runs out.  On -1 out holds nothing to free but
 * out->status (the envelope's integer status, if any, so a 5xx can be
 * told from garbage); smarty_answer_free() is safe on it either way.
 */
int smarty_answer_split(const char *json, size_t len,
    const char *const *names, size_t n, int cache_status1,
    smarty_answer_t *out, char *err, size_t errlen);

void smarty_answer_free(smarty_answer_t *a);


/* one list of an entry: the key (a JSON string) and the element's bytes
 * around its name */

typedef struct {
    const char  *key;
    size_t       key_len;
    const char  *pre;
    size_t       pre_len;
    const char  *post;
    size_t       post_len;
} smarty_entry_list_t;


/*
 * An entry's lists (len bytes at v, as smarty_answer_split makes them and
 * Redis gives them back): returns how many it holds (1 to
 * SMARTY_ENTRY_LISTS_MAX) and describes the first max of them in lists
 * (pointers into v), or -1 when v is not an entry of format 2 (another
 * format, corrupt, cut): the framing is checked, not the JSON.
 */
int smarty_entry_parse(const char *v, size_t len, smarty_entry_list_t *lists,
    size_t max);


/*
 * Building an answer from n entries (stored or freshly split, mixed
 * freely), in two steps: smarty_answer_plan() checks them and measures,
 * smarty_answer_write() writes exactly plan->len bytes:
 *
 *   {"status":200,"body":{<key>:[<element>,...],...[,"aliases_changed":b]},
 *    "htmlencoded":false,"last_modified":0}
 *
 * One list per key, keys in the order they first appear in the entries;
 * a list holds, in the names' order, for every image whose entry has the
 * key, its element with names[i] (NUL-terminated, escaped here) where the
 * upstream's name was.  values[i] NULL leaves image i out of every list
 * (as when the upstream did not answer it).
 *
 * aliases_changed < 0 omits the member (detectors), 0 writes false
 * (persons/recognize answers always carry it), > 0 writes true.
 *
 * The plan is -1 when an entry does not parse (smarty_entry_parse), a
 * name is NULL where its value is not, or the entries hold more than
 * SMARTY_ANSWER_KEYS_MAX keys in all; writing with the same arguments
 * after a plan of 0 cannot fail.
 */

typedef struct {
    size_t       len;                   /* the answer's length */
    size_t       nkeys;
    const char  *key[SMARTY_ANSWER_KEYS_MAX];
    size_t       key_len[SMARTY_ANSWER_KEYS_MAX];
} smarty_answer_plan_t;

int smarty_answer_plan(smarty_answer_plan_t *plan, const char *const *names,
    const char *const *values, const size_t *lens, size_t n,
    int aliases_changed);

char *smarty_answer_write(const smarty_answer_plan_t *plan, char *out,
    const char *const *names, const char *const *values, const size_t *lens,
    size_t n, int aliases_changed);


/* a string's length as a JSON string, quotes included, and writing it */
size_t smarty_json_string_len(const char *s, size_t len);
char *smarty_json_string(char *out, const char *s, size_t len);


/*
 * The client's meta (len bytes of JSON) with "images" reduced to the
 * entries whose string "name" is one of the nkeep names in keep, in the
 * original order; every other member unchanged and in place.  Used on a
 * partial hit, to send upstream only the images the cache did not answer.
 *
 * The meta is parsed by jansson and written back by this core's own
 * compact writer, which prints every real in the shortest form that reads
 * back as the same double ("0.9912" stays "0.9912"; json_dumps would
 * print 0.99119999999999997): the same JSON values, not the same bytes
 * ("1.50" becomes 1.5, "\u0041" becomes "A", white space goes).  Reals
 * are written with snprintf/strtod: the C numeric locale is assumed
 * (nginx never calls setlocale).
 *
 * Returns the compact JSON (malloc'ed, NUL-terminated, length in
 * *out_len, which may be NULL), or NULL if meta is not a JSON object
 * (duplicate keys rejected, as smarty_meta_validate does), has no
 * "images" array, or memory runs out.
 */
char *smarty_cache_meta_subset(const char *json, size_t len,
    const char *const *keep, size_t nkeep, size_t *out_len);

#endif /* SMARTY_CACHE_H */
