/*
 * smarty-emulator: what the API methods (persons.c, detect.c) share of a
 * call: meta.images checked, the image part an entry names, an image's
 * error object.
 */

#include "emu.h"


json_t *
emu_image_error(const char *name, int status, const char *error)
{
    return json_pack("{s:s,s:i,s:s}", "name", name ? name : "",
                     "status", status, "error", error);
}


/*
 * meta.images: a non-empty array of objects with a string "name" (and, when
 * person_id is set, an integer "person_id" >= 1), at most --max-images.
 */
json_t *
emu_meta_images(emu_call_t *call, int person_id)
{
    json_t  *images, *entry, *pid;
    size_t   i;

    images = json_object_get(call->meta, "images");

    if (!json_is_array(images) || json_array_size(images) == 0) {
        emu_err_set(&call->err, 400, "bad_images",
                    "meta.images must be a non-empty array of objects with "
                    "a string \"name\"");
        return NULL;
    }

    if (json_array_size(images) > (size_t) emu_conf.max_images) {
        emu_err_set(&call->err, 413, "too_many_images",
                    "meta.images has %zu entries, at most %ld are allowed",
                    json_array_size(images), emu_conf.max_images);
        return NULL;
    }

    json_array_foreach(images, i, entry) {
        if (!json_is_string(json_object_get(entry, "name"))) {
            emu_err_set(&call->err, 400, "bad_images",
                        "meta.images[%zu] has no string \"name\"", i);
            return NULL;
        }

        if (!person_id) {
            continue;
        }

        pid = json_object_get(entry, "person_id");

        if (!json_is_integer(pid) || json_integer_value(pid) < 1) {
            emu_err_set(&call->err, 400, "bad_person_id",
                        "meta.images[%zu].person_id must be a positive "
                        "integer", i);
            return NULL;
        }
    }

    return images;
}


/*
 * The image part an entry of meta.images names, ready for the method; or
 * NULL with *answer set to the image's error object (status 2 for an
 * injected temporary error, 1 for a missing part or an unknown type).
 */
const emu_part_t *
emu_image_begin(emu_call_t *call, json_t *entry, json_t **answer)
{
    const char        *name;
    const emu_part_t  *part;

    name = json_string_value(json_object_get(entry, "name"));
    call->images++;
    *answer = NULL;

    if (emu_chance(call->temp_error)) {
        emu_stats_fault("temp_error");
        *answer = emu_image_error(name, 2, EMU_TEMP_ERROR);
        return NULL;
    }

    part = emu_parts_find(call->parts, name);

    if (part == NULL) {
        *answer = emu_image_error(name, 1,
                                  "the request has no image of this name");
        return NULL;
    }

    if (emu_image_type(part->data, part->len) == NULL) {
        *answer = emu_image_error(name, 1, EMU_UNKNOWN_TYPE);
        return NULL;
    }

    return part;
}
