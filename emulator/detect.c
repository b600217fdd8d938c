/*
 * smarty-emulator: the stateless detectors.  Every answer depends only on
 * the image bytes (their SHA-256) and meta: objects/detect answers one list
 * per meta.mode ("<mode>_labels"), the others a generic "objects" list.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"


typedef struct {
    const char  *eng;
    const char  *rus;
} emu_label_t;


static const emu_label_t  emu_object_labels[] = {
    { "Person", "Человек" }, { "Car", "Автомобиль" }, { "Dog", "Собака" },
    { "Cat", "Кошка" }, { "Chair", "Стул" }, { "Table", "Стол" },
    { "Bottle", "Бутылка" }, { "Laptop", "Ноутбук" }, { "Cup", "Чашка" },
    { "Bicycle", "Велосипед" }, { "Tree", "Дерево" }, { "Book", "Книга" },
    { NULL, NULL }
};

static const emu_label_t  emu_scene_labels[] = {
    { "Beach", "Пляж" }, { "Office", "Офис" }, { "Street", "Улица" },
    { "Kitchen", "Кухня" }, { "Forest", "Лес" }, { "Mountains", "Горы" },
    { "Living room", "Гостиная" }, { "Restaurant", "Ресторан" },
    { "Park", "Парк" }, { "Stadium", "Стадион" },
    { NULL, NULL }
};

static const emu_label_t  emu_pedestrian_labels[] = {
    { "Pedestrian", "Пешеход" },
    { NULL, NULL }
};

static const emu_label_t  emu_doc_labels[] = {
    { "Passport", "Паспорт" },
    { "Driver license", "Водительское удостоверение" },
    { "SNILS", "СНИЛС" }, { "INN", "ИНН" },
    { "Bank card", "Банковская карта" },
    { NULL, NULL }
};

static const emu_label_t  emu_field_labels[] = {
    { "Surname", "Фамилия" }, { "Name", "Имя" },
    { "Patronymic", "Отчество" }, { "Date of birth", "Дата рождения" },
    { "Number", "Номер" },
    { NULL, NULL }
};

static const emu_label_t  emu_adult_labels[] = {
    { "Safe", "Безопасно" }, { "Adult", "Для взрослых" },
    { NULL, NULL }
};

static const char  *emu_words[] = {
    "lorem", "ipsum", "dolor", "sit", "amet", "smarty", "vision", "cloud",
    "photo", "text", "emulator", "gateway", "face", "person", "scene",
    "street"
};

static const char  *emu_modes[] = {
    "object", "scene", "car_number", "multiobject", "pedestrian", NULL
};


/* the digest of (image digest, salt, n): independent bytes per item */
static void
emu_item_digest(const unsigned char img[32], const char *salt, size_t n,
    unsigned char d[32])
{
    char  buf[160];
    char  hex[65];
    int   len;

    emu_hex(img, 32, hex);
    len = snprintf(buf, sizeof(buf), "%s/%s/%zu", hex, salt, n);
    emu_sha256(buf, len, d);
}


static size_t
emu_nlabels(const emu_label_t *l)
{
    size_t  n;

    for (n = 0; l[n].eng; n++) { /* void */ }

    return n;
}


static json_t *
emu_coord(const unsigned char *d)
{
    json_int_t  l, t;

    l = (((json_int_t) d[0] << 8) | d[1]) % 800;
    t = (((json_int_t) d[2] << 8) | d[3]) % 600;

    return json_pack("[I,I,I,I]", l, t, l + 20 + d[4] % 300,
                     t + 20 + d[5] % 300);
}


static json_t *
emu_label(const emu_label_t *vocab, const unsigned char *d, int coord)
{
    const emu_label_t  *l;
    json_t             *j;

    l = &vocab[d[10] % emu_nlabels(vocab)];
    j = json_pack("{s:s,s:s,s:f}", "eng", l->eng, "rus", l->rus,
                  "prob", emu_frac(d + 8, 0.5, 0.99));

    if (coord) {
        json_object_set_new(j, "coord", emu_coord(d));
    }

    return j;
}


static json_t *
emu_car_number(const unsigned char *d)
{
    static const char  *lat = "ABEKMHOPCTYX";
    static const char  *cyr[] = { "А", "В", "Е", "К", "М", "Н", "О", "Р",
                                  "С", "Т", "У", "Х" };
    char                eng[16], rus[32];
    int                 a, b, c;

    a = d[11] % 12;
    b = d[12] % 12;
    c = d[13] % 12;

    snprintf(eng, sizeof(eng), "%c%03u%c%c%02u", lat[a], d[14] % 1000u,
             lat[b], lat[c], 10 + d[15] % 90u);
    snprintf(rus, sizeof(rus), "%s%03u%s%s%02u", cyr[a], d[14] % 1000u,
             cyr[b], cyr[c], 10 + d[15] % 90u);

    return json_pack("{s:s,s:s,s:f,s:o}", "eng", eng, "rus", rus,
                     "prob", emu_frac(d + 8, 0.6, 0.99),
                     "coord", emu_coord(d));
}


static json_t *
emu_mode_labels(const char *mode, const emu_part_t *part,
    const unsigned char img[32])
{
    json_t         *labels;
    unsigned char   d[32];
    emu_face_t     *faces;
    size_t          i, n, nf;
    double          conf, sm, sn, aw;

    labels = json_array();
    emu_item_digest(img, mode, 0, d);

    if (strcmp(mode, "object") == 0) {
        /* a Person for every face, then 0..2 other things */
        nf = emu_faces_find(part->data, part->len, &faces);

        for (i = 0; i < nf; i++) {
            emu_face_scores(&faces[i], &conf, &sm, &sn, &aw);
            json_array_append_new(labels,
                json_pack("{s:s,s:s,s:f,s:[I,I,I,I]}", "eng", "Person",
                          "rus", "Человек", "prob", conf,
                          "coord", (json_int_t) faces[i].box[0],
                          (json_int_t) faces[i].box[1],
                          (json_int_t) faces[i].box[2],
                          (json_int_t) faces[i].box[3]));
        }

        free(faces);
        n = d[0] % 3;

        for (i = 0; i < n; i++) {
            emu_item_digest(img, mode, i + 1, d);
            json_array_append_new(labels, emu_label(emu_object_labels, d, 1));
        }

    } else if (strcmp(mode, "scene") == 0) {
        n = 1 + d[0] % 3;
        for (i = 0; i < n; i++) {
            emu_item_digest(img, mode, i + 1, d);
            json_array_append_new(labels, emu_label(emu_scene_labels, d, 0));
        }

    } else if (strcmp(mode, "car_number") == 0) {
        n = d[0] % 2;
        for (i = 0; i < n; i++) {
            emu_item_digest(img, mode, i + 1, d);
            json_array_append_new(labels, emu_car_number(d));
        }

    } else if (strcmp(mode, "multiobject") == 0) {
        n = 1 + d[0] % 4;
        for (i = 0; i < n; i++) {
            emu_item_digest(img, mode, i + 1, d);
            json_array_append_new(labels, emu_label(emu_object_labels, d, 1));
        }

    } else {
        n = d[0] % 4;
        for (i = 0; i < n; i++) {
            emu_item_digest(img, mode, i + 1, d);
            json_array_append_new(labels,
                                  emu_label(emu_pedestrian_labels, d, 1));
        }
    }

    return labels;
}


json_t *
emu_objects_detect(emu_call_t *call)
{
    json_t            *modes, *mode, *images, *entry, *obj, *body, *list;
    const emu_part_t  *part;
    const char        *m;
    char               key[64];
    unsigned char      img[32];
    size_t             i, k, j;

    modes = json_object_get(call->meta, "mode");

    if (modes != NULL) {
        if (!json_is_array(modes) || json_array_size(modes) == 0) {
            goto bad_mode;
        }

        json_array_foreach(modes, i, mode) {
            m = json_string_value(mode);
            for (k = 0; m && emu_modes[k]; k++) {
                if (strcmp(emu_modes[k], m) == 0) {
                    break;
                }
            }

            if (m == NULL || emu_modes[k] == NULL) {
                goto bad_mode;
            }
        }

        json_incref(modes);

    } else {
        modes = json_pack("[s]", "object");
    }

    images = emu_meta_images(call, 0);
    if (images == NULL) {
        json_decref(modes);
        return NULL;
    }

    body = json_object();

    json_array_foreach(modes, k, mode) {
        snprintf(key, sizeof(key), "%s_labels", json_string_value(mode));
        json_object_set_new(body, key, json_array());
    }

    json_array_foreach(images, i, entry) {
        part = emu_image_begin(call, entry, &obj);

        if (part != NULL) {
            emu_sha256(part->data, part->len, img);
        }

        json_array_foreach(modes, k, mode) {
            m = json_string_value(mode);

            /* a mode named twice answers once */
            for (j = 0; j < k; j++) {
                if (strcmp(json_string_value(json_array_get(modes, j)), m)
                    == 0)
                {
                    break;
                }
            }

            if (j < k) {
                continue;
            }

            snprintf(key, sizeof(key), "%s_labels", m);
            list = json_object_get(body, key);

            if (part == NULL) {
                json_array_append(list, obj);
                continue;
            }

            json_array_append_new(list,
                json_pack("{s:s,s:i,s:o}", "name",
                          json_string_value(json_object_get(entry, "name")),
                          "status", 0,
                          "labels", emu_mode_labels(m, part, img)));
        }

        json_decref(obj);
    }

    json_decref(modes);

    return body;

bad_mode:

    emu_err_set(&call->err, 400, "bad_mode",
                "meta.mode must be a non-empty array of object, scene, "
                "car_number, multiobject, pedestrian");
    return NULL;
}


typedef json_t *(*emu_detect_pt)(const emu_part_t *part,
    const unsigned char img[32]);


static json_t *
emu_detect_each(emu_call_t *call, const char *salt, emu_detect_pt detect)
{
    json_t            *images, *entry, *objects, *obj, *more;
    const emu_part_t  *part;
    unsigned char      img[32];
    size_t             i;

    images = emu_meta_images(call, 0);
    if (images == NULL) {
        return NULL;
    }

    objects = json_array();

    json_array_foreach(images, i, entry) {
        part = emu_image_begin(call, entry, &obj);

        if (part != NULL) {
            emu_sha256(part->data, part->len, img);
            emu_item_digest(img, salt, 0, img);

            obj = json_pack("{s:s,s:i}", "name",
                            json_string_value(json_object_get(entry, "name")),
                            "status", 0);
            more = detect(part, img);
            json_object_update(obj, more);
            json_decref(more);
        }

        json_array_append_new(objects, obj);
    }

    return json_pack("{s:o}", "objects", objects);
}


static json_t *
emu_docs_detect_one(const emu_part_t *part, const unsigned char img[32])
{
    json_t         *docs;
    unsigned char   d[32];

    docs = json_array();

    if (img[0] % 3) {
        emu_item_digest(img, "doc", 1, d);
        json_array_append_new(docs, emu_label(emu_doc_labels, d, 1));
    }

    return json_pack("{s:o}", "docs", docs);
}


static json_t *
emu_docs_recognize_one(const emu_part_t *part, const unsigned char img[32])
{
    json_t         *fields, *f;
    unsigned char   d[32];
    size_t          i, n;

    fields = json_array();
    n = 1 + img[0] % 4;

    for (i = 0; i < n; i++) {
        emu_item_digest(img, "field", i + 1, d);
        f = emu_label(emu_field_labels, d, 1);
        json_object_set_new(f, "text",
                            json_string(emu_words[d[20] % 16]));
        json_array_append_new(fields, f);
    }

    emu_item_digest(img, "doc", 0, d);

    return json_pack("{s:o,s:o}", "doc", emu_label(emu_doc_labels, d, 0),
                     "fields", fields);
}


static json_t *
emu_text_recognize_one(const emu_part_t *part, const unsigned char img[32])
{
    char    text[256];
    size_t  i, n, len;

    n = 1 + img[0] % 8;
    len = 0;
    text[0] = '\0';

    for (i = 0; i < n; i++) {
        len += snprintf(text + len, sizeof(text) - len, "%s%s",
                        i ? " " : "", emu_words[img[1 + i] % 16]);
    }

    return json_pack("{s:s,s:f}", "text", text,
                     "prob", emu_frac(img + 10, 0.6, 0.99));
}


static json_t *
emu_adult_detect_one(const emu_part_t *part, const unsigned char img[32])
{
    double  safe;

    safe = emu_frac(img, 0.7, 0.99);

    return json_pack("{s:[{s:s,s:s,s:f},{s:s,s:s,s:f}]}", "labels",
                     "eng", emu_adult_labels[0].eng,
                     "rus", emu_adult_labels[0].rus, "prob", safe,
                     "eng", emu_adult_labels[1].eng,
                     "rus", emu_adult_labels[1].rus,
                     "prob", emu_round4(1 - safe));
}


json_t *
emu_docs_detect(emu_call_t *call)
{
    return emu_detect_each(call, "docs/detect", emu_docs_detect_one);
}


json_t *
emu_docs_recognize(emu_call_t *call)
{
    return emu_detect_each(call, "docs/recognize", emu_docs_recognize_one);
}


json_t *
emu_text_recognize(emu_call_t *call)
{
    return emu_detect_each(call, "text/recognize", emu_text_recognize_one);
}


json_t *
emu_adult_detect(emu_call_t *call)
{
    return emu_detect_each(call, "adult/detect", emu_adult_detect_one);
}
