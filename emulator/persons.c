/*
 * smarty-emulator: persons/set, recognize, delete and truncate.
 *
 * Each of the ten spaces maps identities to person ids (a chained hash
 * table), with the number of updates of each identity's embedding.  The
 * faces of a call's images are found first; then one mutex, which guards
 * all spaces, is held from the call's first image to its last, so calls
 * are atomic with respect to each other.
 */

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"


typedef struct emu_link_s  emu_link_t;

struct emu_link_s {
    emu_link_t     *next;
    json_int_t      person;
    unsigned long   updates;    /* of the embedding (update_embedding) */
    char            id[];
};


typedef struct {
    emu_link_t  **buckets;
    size_t        nbuckets;
    size_t        count;
    json_int_t    max_person;     /* -1: to be recomputed */
} emu_space_t;


static pthread_mutex_t  emu_persons_lock = PTHREAD_MUTEX_INITIALIZER;
static emu_space_t      emu_spaces[EMU_SPACES];


static uint64_t
emu_hash(const char *s)
{
    uint64_t  h;

    h = 0xcbf29ce484222325ULL;

    while (*s) {
        h ^= (unsigned char) *s++;
        h *= 0x100000001b3ULL;
    }

    return h;
}


static void
emu_space_clear(emu_space_t *sp)
{
    size_t       i;
    emu_link_t  *l, *next;

    for (i = 0; i < sp->nbuckets; i++) {
        for (l = sp->buckets[i]; l; l = next) {
            next = l->next;
            free(l);
        }
    }

    free(sp->buckets);
    sp->buckets = NULL;
    sp->nbuckets = 0;
    sp->count = 0;
    sp->max_person = 0;
}


void
emu_persons_init(void)
{
    int  i;

    for (i = 0; i < EMU_SPACES; i++) {
        memset(&emu_spaces[i], 0, sizeof(emu_space_t));
    }
}


void
emu_persons_reset(void)
{
    int  i;

    pthread_mutex_lock(&emu_persons_lock);

    for (i = 0; i < EMU_SPACES; i++) {
        emu_space_clear(&emu_spaces[i]);
    }

    pthread_mutex_unlock(&emu_persons_lock);
}


static emu_link_t *
emu_space_find(emu_space_t *sp, const char *id)
{
    emu_link_t  *l;

    if (sp->nbuckets == 0) {
        return NULL;
    }

    for (l = sp->buckets[emu_hash(id) % sp->nbuckets]; l; l = l->next) {
        if (strcmp(l->id, id) == 0) {
            return l;
        }
    }

    return NULL;
}


static int
emu_space_grow(emu_space_t *sp)
{
    size_t        n, i, k;
    emu_link_t  **b, *l, *next;

    n = sp->nbuckets ? 2 * sp->nbuckets : 64;

    b = calloc(n, sizeof(emu_link_t *));
    if (b == NULL) {
        return -1;
    }

    for (i = 0; i < sp->nbuckets; i++) {
        for (l = sp->buckets[i]; l; l = next) {
            next = l->next;
            k = emu_hash(l->id) % n;
            l->next = b[k];
            b[k] = l;
        }
    }

    free(sp->buckets);
    sp->buckets = b;
    sp->nbuckets = n;

    return 0;
}


static int
emu_space_link(emu_space_t *sp, const char *id, json_int_t person)
{
    emu_link_t  *l;
    size_t       k, n;

    l = emu_space_find(sp, id);

    if (l == NULL) {
        if (sp->count >= 2 * sp->nbuckets && emu_space_grow(sp) != 0) {
            return -1;
        }

        n = strlen(id);
        l = malloc(sizeof(emu_link_t) + n + 1);
        if (l == NULL) {
            return -1;
        }

        memcpy(l->id, id, n + 1);
        l->updates = 0;
        k = emu_hash(id) % sp->nbuckets;
        l->next = sp->buckets[k];
        sp->buckets[k] = l;
        sp->count++;

    } else if (l->person == sp->max_person && person < l->person) {
        sp->max_person = -1;
    }

    l->person = person;

    if (sp->max_person >= 0 && person > sp->max_person) {
        sp->max_person = person;
    }

    return 0;
}


/* unlinks every identity of that person; returns how many */
static size_t
emu_space_unlink(emu_space_t *sp, json_int_t person)
{
    size_t        i, n;
    emu_link_t  **pl, *l;

    n = 0;

    for (i = 0; i < sp->nbuckets; i++) {
        pl = &sp->buckets[i];

        while ((l = *pl) != NULL) {
            if (l->person == person) {
                *pl = l->next;
                free(l);
                sp->count--;
                n++;

            } else {
                pl = &l->next;
            }
        }
    }

    if (n && person == sp->max_person) {
        sp->max_person = -1;
    }

    return n;
}


static json_int_t
emu_space_max(emu_space_t *sp)
{
    size_t       i;
    emu_link_t  *l;

    if (sp->max_person >= 0) {
        return sp->max_person;
    }

    sp->max_person = 0;

    for (i = 0; i < sp->nbuckets; i++) {
        for (l = sp->buckets[i]; l; l = l->next) {
            if (l->person > sp->max_person) {
                sp->max_person = l->person;
            }
        }
    }

    return sp->max_person;
}


/* meta.space: a string of one digit */
static emu_space_t *
emu_meta_space(emu_call_t *call)
{
    json_t      *s;
    const char  *v;

    s = json_object_get(call->meta, "space");
    v = json_is_string(s) ? json_string_value(s) : NULL;

    if (v == NULL || json_string_length(s) != 1 || v[0] < '0' || v[0] > '9') {
        emu_err_set(&call->err, 400, "bad_space",
                    "meta.space must be a string holding one digit, "
                    "\"0\" to \"9\"");
        return NULL;
    }

    return &emu_spaces[v[0] - '0'];
}


static const char *
emu_entry_name(json_t *entry)
{
    return json_string_value(json_object_get(entry, "name"));
}


/* what each image shows, found before the lock is taken */
typedef struct {
    json_t      *answer;     /* the image's error object, or NULL */
    emu_face_t  *faces;
    size_t       nfaces;
} emu_seen_t;


static emu_seen_t *
emu_look(emu_call_t *call, json_t *images)
{
    json_t            *entry;
    emu_seen_t        *seen;
    const emu_part_t  *part;
    size_t             i;

    seen = calloc(json_array_size(images), sizeof(emu_seen_t));
    if (seen == NULL) {
        emu_err_set(&call->err, 500, "internal_error", "out of memory");
        return NULL;
    }

    json_array_foreach(images, i, entry) {
        part = emu_image_begin(call, entry, &seen[i].answer);

        if (part != NULL) {
            seen[i].nfaces = emu_faces_find(part->data, part->len,
                                            &seen[i].faces);
        }
    }

    return seen;
}


static void
emu_seen_free(emu_seen_t *seen, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        free(seen[i].faces);
    }

    free(seen);
}


json_t *
emu_persons_set(emu_call_t *call)
{
    json_t       *images, *entry, *objects, *obj;
    emu_space_t  *sp;
    emu_seen_t   *seen;
    emu_face_t   *faces;
    size_t        i, k, best;
    uint64_t      area, a;
    json_int_t    person;
    const char   *name;

    sp = emu_meta_space(call);
    if (sp == NULL) {
        return NULL;
    }

    images = emu_meta_images(call, 1);
    if (images == NULL) {
        return NULL;
    }

    seen = emu_look(call, images);
    if (seen == NULL) {
        return NULL;
    }

    objects = json_array();

    pthread_mutex_lock(&emu_persons_lock);

    json_array_foreach(images, i, entry) {
        name = emu_entry_name(entry);
        faces = seen[i].faces;
        obj = seen[i].answer;

        if (obj != NULL) {
            /* the image's error */

        } else if (seen[i].nfaces == 0) {
            obj = emu_image_error(name, 1, "no face found");

        } else {
            best = 0;
            area = 0;

            for (k = 0; k < seen[i].nfaces; k++) {
                a = (uint64_t) (faces[k].box[2] - faces[k].box[0])
                    * (faces[k].box[3] - faces[k].box[1]);
                if (a > area) {
                    area = a;
                    best = k;
                }
            }

            person = json_integer_value(json_object_get(entry, "person_id"));

            if (emu_space_link(sp, faces[best].id, person) != 0) {
                obj = emu_image_error(name, 2, "out of memory, retry later");

            } else {
                obj = json_pack("{s:s,s:i}", "name", name, "status", 0);
            }
        }

        json_array_append_new(objects, obj);
    }

    pthread_mutex_unlock(&emu_persons_lock);

    emu_seen_free(seen, json_array_size(images));

    return json_pack("{s:o}", "objects", objects);
}


/* what a recognize asks for, besides its images */
typedef struct {
    emu_space_t  *space;
    int           create_new;
    int           searcher;
    int           update_embedding;
} emu_recognize_t;


/*
 * The similarity of a tagged face whose embedding has been updated: each
 * update takes it halfway from where it was to 1.
 */
static double
emu_similarity_updated(double sim, unsigned long updates)
{
    if (updates == 0) {
        return sim;
    }

    return emu_round4(sim + (1 - sim) * (1 - pow(0.5, (double) updates)));
}


static json_t *
emu_person_json(const emu_recognize_t *rc, const emu_face_t *f)
{
    emu_space_t  *sp;
    emu_link_t   *l;
    json_t       *j;
    json_int_t    person;
    double        confidence, sim_match, sim_none, awesomeness, sim;
    char          tag[32];
    const char   *sex, *emotion;
    int           age;

    emu_face_scores(f, &confidence, &sim_match, &sim_none, &awesomeness);

    sp = rc->space;
    l = emu_space_find(sp, f->id);
    person = 0;
    sim = sim_none;

    if (l != NULL) {
        /* known before this face: the call may update its embedding */
        l->updates += rc->update_embedding;
        person = l->person;
        sim = emu_similarity_updated(sim_match, l->updates);

    } else if (rc->create_new) {
        person = emu_space_max(sp) + 1;

        if (emu_space_link(sp, f->id, person) == 0) {
            sim = sim_match;

        } else {
            person = 0;
        }
    }

    if (person) {
        snprintf(tag, sizeof(tag), "person%lld", (long long) person);

    } else {
        strcpy(tag, "undefined");
    }

    j = json_pack("{s:s,s:[i,i,i,i],s:f,s:f,s:f}",
                  "tag", tag,
                  "coord", (json_int_t) f->box[0], (json_int_t) f->box[1],
                  (json_int_t) f->box[2], (json_int_t) f->box[3],
                  "confidence", confidence,
                  "similarity", sim,
                  "awesomeness", awesomeness);

    if (j != NULL && rc->searcher) {
        emu_face_attributes(f, &sex, &age, &emotion);
        json_object_set_new(j, "sex", json_string(sex));
        json_object_set_new(j, "age", json_integer(age));
        json_object_set_new(j, "emotion", json_string(emotion));
    }

    return j;
}


json_t *
emu_persons_recognize(emu_call_t *call)
{
    json_t           *images, *entry, *objects, *obj, *persons;
    json_t           *cn, *se, *ue;
    emu_seen_t       *seen;
    size_t            i, k;
    emu_recognize_t   rc;

    rc.space = emu_meta_space(call);
    if (rc.space == NULL) {
        return NULL;
    }

    cn = json_object_get(call->meta, "create_new");
    if (cn != NULL && !json_is_boolean(cn)) {
        emu_err_set(&call->err, 400, "bad_create_new",
                    "meta.create_new must be a boolean");
        return NULL;
    }

    rc.create_new = json_is_true(cn);

    /* the second recognition model: sex, age and emotion of every face */
    se = json_object_get(call->meta, "searcher");

    if (se != NULL
        && (!json_is_integer(se)
            || (json_integer_value(se) != 0 && json_integer_value(se) != 1)))
    {
        emu_err_set(&call->err, 400, "bad_meta",
                    "meta.searcher must be the integer 0 or 1");
        return NULL;
    }

    rc.searcher = (json_integer_value(se) == 1);

    /* known faces update their person's embedding: similarity rises */
    ue = json_object_get(call->meta, "update_embedding");

    if (ue != NULL && !json_is_boolean(ue)) {
        emu_err_set(&call->err, 400, "bad_meta",
                    "meta.update_embedding must be a boolean");
        return NULL;
    }

    rc.update_embedding = json_is_true(ue);

    images = emu_meta_images(call, 0);
    if (images == NULL) {
        return NULL;
    }

    seen = emu_look(call, images);
    if (seen == NULL) {
        return NULL;
    }

    objects = json_array();

    pthread_mutex_lock(&emu_persons_lock);

    json_array_foreach(images, i, entry) {
        obj = seen[i].answer;

        if (obj == NULL) {
            persons = json_array();

            for (k = 0; k < seen[i].nfaces; k++) {
                json_array_append_new(persons,
                                      emu_person_json(&rc,
                                                      &seen[i].faces[k]));
            }

            obj = json_pack("{s:s,s:i,s:o}", "name", emu_entry_name(entry),
                            "status", 0, "persons", persons);
        }

        json_array_append_new(objects, obj);
    }

    pthread_mutex_unlock(&emu_persons_lock);

    emu_seen_free(seen, json_array_size(images));

    return json_pack("{s:o,s:b}", "objects", objects,
                     "aliases_changed", emu_chance(call->aliases_changed));
}


json_t *
emu_persons_delete(emu_call_t *call)
{
    json_t       *images, *entry, *objects, *obj;
    emu_space_t  *sp;
    size_t        i;
    json_int_t    person;
    const char   *name;

    sp = emu_meta_space(call);
    if (sp == NULL) {
        return NULL;
    }

    images = emu_meta_images(call, 1);
    if (images == NULL) {
        return NULL;
    }

    objects = json_array();

    pthread_mutex_lock(&emu_persons_lock);

    json_array_foreach(images, i, entry) {
        name = emu_entry_name(entry);
        person = json_integer_value(json_object_get(entry, "person_id"));

        if (emu_chance(call->temp_error)) {
            obj = emu_image_error(name, 2, EMU_TEMP_ERROR);

        } else if (emu_space_unlink(sp, person) == 0) {
            obj = emu_image_error(name, 1, "person not found");

        } else {
            obj = json_pack("{s:s,s:i}", "name", name, "status", 0);
        }

        json_array_append_new(objects, obj);
    }

    pthread_mutex_unlock(&emu_persons_lock);

    return json_pack("{s:o}", "objects", objects);
}


json_t *
emu_persons_truncate(emu_call_t *call)
{
    emu_space_t  *sp;

    sp = emu_meta_space(call);
    if (sp == NULL) {
        return NULL;
    }

    pthread_mutex_lock(&emu_persons_lock);
    emu_space_clear(sp);
    pthread_mutex_unlock(&emu_persons_lock);

    return json_object();
}
