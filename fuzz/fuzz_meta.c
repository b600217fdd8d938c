/*
 * smarty-gateway: libFuzzer target for meta validation.
 *
 * Input: byte 0 picks the method (and, in its high bits, the image limit),
 * byte 1 the subset of a fixed set of part names; the rest is meta.
 * Checked: no crash or leak; on success out is consistent (names are
 * NUL-terminated copies, every image part named exactly once, indexes in
 * range, space in range, params a string); on failure a known code, a
 * non-empty valid UTF-8 message without control characters, out empty.
 * Validation is deterministic: a second run gives the same answer.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_meta.h"
#include "../t/unit/message.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


static const smarty_part_name_t  fz_names[] = {
    { "file_0", 6 }, { "file_1", 6 }, { "a", 1 }, { "file_10", 7 },
    { "\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe", 8 }, { "\xff\xfe\x01", 3 },
    { "a\"b\\c", 5 }, { "file_0", 6 },
};




int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    int                     rc, rc2, seen[8];
    size_t                  i, nparts, max;
    smarty_meta_t           out, out2;
    smarty_part_name_t      parts[8];
    smarty_meta_error_t     err, err2;
    const smarty_method_t  *m;

    if (size < 2) {
        return 0;
    }

    m = smarty_method_get((smarty_method_e) (in[0] % SMARTY_M_COUNT));
    fz_assert(m != NULL);
    fz_assert(smarty_method_find(m->path, strlen(m->path)) == m);

    max = (in[0] / SMARTY_M_COUNT) % 9;      /* 0..8 */
    if (max == 0) {
        max = 100;
    }

    nparts = 0;
    for (i = 0; i < 8; i++) {
        if (in[1] & (1u << i)) {
            parts[nparts++] = fz_names[i];
        }
    }

    rc = smarty_meta_validate(m, (const char *) in + 2, size - 2, parts,
                              nparts, max, &out, &err);

    if (rc == 0) {
        fz_assert(err.code == SMARTY_OK);
        fz_assert(out.params != NULL);
        fz_assert(out.params_len == strlen(out.params));
        fz_assert(m->persons ? out.space >= 0 && out.space <= 9
                             : out.space == -1);
        fz_assert(out.create_new == 0 || out.create_new == 1);
        fz_assert(out.nimages <= max);
        fz_assert(nparts <= max);
        fz_assert((out.nimages == 0) == (out.images == NULL));
        fz_assert(m->images || m->person_id || nparts == 0);
        fz_assert(out.update_embedding == 0 || out.update_embedding == 1);
        fz_assert(out.foreign == 0 || out.foreign == 1);
        fz_assert((m->images || m->person_id) ? out.nimages > 0
                                              : out.nimages == 0);

        memset(seen, 0, sizeof(seen));

        for (i = 0; i < out.nimages; i++) {
            fz_assert(out.images[i].name != NULL);
            fz_assert(out.images[i].name[out.images[i].name_len] == '\0');
            fz_assert(strlen(out.images[i].name) == out.images[i].name_len);
            fz_assert(out.images[i].has_person_id == (int) m->person_id);
            fz_assert(!m->person_id || out.images[i].person_id >= 1);

            if (m->images) {
                fz_assert(out.images[i].part >= 0
                          && (size_t) out.images[i].part < nparts);
                fz_assert(parts[out.images[i].part].len
                          == out.images[i].name_len);
                fz_assert(memcmp(parts[out.images[i].part].name,
                                 out.images[i].name,
                                 out.images[i].name_len) == 0);
                seen[out.images[i].part]++;

            } else if (out.images[i].part != -1) {
                /* delete: a part may come for an entry */
                fz_assert((size_t) out.images[i].part < nparts);
                fz_assert(parts[out.images[i].part].len
                          == out.images[i].name_len);
                fz_assert(memcmp(parts[out.images[i].part].name,
                                 out.images[i].name,
                                 out.images[i].name_len) == 0);
                seen[out.images[i].part]++;
            }
        }

        for (i = 0; i < nparts; i++) {
            fz_assert(seen[i] == 1);
        }

        if (m->id == SMARTY_M_OBJECTS_DETECT) {
            fz_assert(strncmp(out.params, "mode=", 5) == 0);
        }

    } else {
        fz_assert(rc == -1);
        fz_assert(err.code > SMARTY_OK && err.code < SMARTY_E_LAST);
        fz_assert(err.message[0] != '\0');
        fz_assert(strlen(err.message) < sizeof(err.message));
        fz_assert(smarty_test_utf8_text(err.message));
        fz_assert(out.images == NULL && out.params == NULL
                  && out.nimages == 0);
    }

    rc2 = smarty_meta_validate(m, (const char *) in + 2, size - 2, parts,
                               nparts, max, &out2, &err2);
    fz_assert(rc2 == rc);

    if (rc == 0) {
        fz_assert(out2.nimages == out.nimages);
        fz_assert(strcmp(out2.params, out.params) == 0);
        smarty_meta_free(&out2);
        smarty_meta_free(&out);
        fz_assert(out.images == NULL && out.params == NULL);

    } else {
        fz_assert(err2.code == err.code);
        fz_assert(strcmp(err2.message, err.message) == 0);
    }

    return 0;
}
