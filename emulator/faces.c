/*
 * smarty-emulator: what an image shows.
 *
 *  - the type: JPEG, PNG, GIF, BMP or WebP by signature, else unknown;
 *  - the faces: every "face=<id>@<l>,<t>,<r>,<b>" in the bytes, in order;
 *    an image without any has 0 to 3 faces derived from its SHA-256, of
 *    identities "#<sha256>/<n>" that no other bytes share;
 *  - the scores: derived from identity and box;
 *  - the attributes of the second model (sex, age, emotion): derived from
 *    the identity alone.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"


const char *
emu_image_type(const unsigned char *p, size_t len)
{
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) {
        return "jpeg";
    }

    if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) {
        return "png";
    }

    if (len >= 4 && memcmp(p, "GIF8", 4) == 0) {
        return "gif";
    }

    if (len >= 2 && p[0] == 'B' && p[1] == 'M') {
        return "bmp";
    }

    if (len >= 12 && memcmp(p, "RIFF", 4) == 0
        && memcmp(p + 8, "WEBP", 4) == 0)
    {
        return "webp";
    }

    return NULL;
}


static int
emu_id_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}


/* a non-negative integer of at most 9 digits at *p, then sep (or any
 * byte when sep is 0) */
static int
emu_number(const unsigned char **p, const unsigned char *end, int sep,
    uint32_t *v)
{
    const unsigned char  *s;
    uint32_t              n;

    s = *p;
    n = 0;

    while (s < end && *s >= '0' && *s <= '9' && s - *p < 10) {
        n = n * 10 + (*s - '0');
        s++;
    }

    if (s == *p || s - *p > 9) {
        return -1;
    }

    if (sep) {
        if (s >= end || *s != sep) {
            return -1;
        }
        s++;
    }

    *p = s;
    *v = n;

    return 0;
}


/* one annotation at p (just after "face="), or -1 */
static int
emu_annotation(const unsigned char *p, const unsigned char *end,
    emu_face_t *f)
{
    const unsigned char  *s;
    size_t                n;

    s = p;
    while (s < end && emu_id_char(*s) && s - p <= EMU_ID_MAX) {
        s++;
    }

    n = s - p;

    if (n == 0 || n > EMU_ID_MAX || s >= end || *s != '@') {
        return -1;
    }

    s++;

    if (emu_number(&s, end, ',', &f->box[0]) != 0
        || emu_number(&s, end, ',', &f->box[1]) != 0
        || emu_number(&s, end, ',', &f->box[2]) != 0
        || emu_number(&s, end, 0, &f->box[3]) != 0)
    {
        return -1;
    }

    if (f->box[0] >= f->box[2] || f->box[1] >= f->box[3]) {
        return -1;
    }

    memcpy(f->id, p, n);
    f->id[n] = '\0';
    f->annotated = 1;

    return 0;
}


static int
emu_faces_push(emu_face_t **faces, size_t *n, size_t *alloc,
    const emu_face_t *f)
{
    emu_face_t  *a;
    size_t       na;

    if (*n == *alloc) {
        na = *alloc ? 2 * *alloc : 8;
        a = realloc(*faces, na * sizeof(emu_face_t));
        if (a == NULL) {
            return -1;
        }

        *faces = a;
        *alloc = na;
    }

    (*faces)[(*n)++] = *f;

    return 0;
}


/*
 * The faces of an image, in the order of the bytes; *faces is malloc()ed
 * (or NULL when there are none).  Linear: every "face=" is found by memmem()
 * from just after the previous one, and an annotation is at most some 110
 * bytes long.
 */
size_t
emu_faces_find(const unsigned char *p, size_t len, emu_face_t **faces)
{
    const unsigned char  *s, *end, *m;
    unsigned char         d[32];
    char                  hex[65];
    size_t                n, alloc, i, k;
    emu_face_t            f;

    *faces = NULL;
    n = 0;
    alloc = 0;
    s = p;
    end = p + len;

    while (s < end) {
        m = memmem(s, end - s, "face=", 5);
        if (m == NULL) {
            break;
        }

        memset(&f, 0, sizeof(emu_face_t));

        if (emu_annotation(m + 5, end, &f) == 0) {
            if (emu_faces_push(faces, &n, &alloc, &f) != 0) {
                break;
            }
        }

        s = m + 1;
    }

    if (n) {
        return n;
    }

    /* no annotation: 0..3 faces from the SHA-256 of the bytes */

    emu_sha256(p, len, d);
    emu_hex(d, 32, hex);

    for (i = 0; i < (size_t) (d[0] % 4); i++) {
        k = 1 + 6 * i;

        memset(&f, 0, sizeof(emu_face_t));
        snprintf(f.id, sizeof(f.id), "#%s/%zu", hex, i);

        f.box[0] = (((uint32_t) d[k] << 8) | d[k + 1]) % 1000;
        f.box[1] = (((uint32_t) d[k + 2] << 8) | d[k + 3]) % 1000;
        f.box[2] = f.box[0] + 24 + d[k + 4] % 200;
        f.box[3] = f.box[1] + 24 + d[k + 5] % 200;

        if (emu_faces_push(faces, &n, &alloc, &f) != 0) {
            break;
        }
    }

    return n;
}


/*
 * Scores from identity and box: confidence (above 0.99 for annotated
 * faces), similarity to a matched person, similarity to the best candidate
 * of an unknown face, and awesomeness.
 */
void
emu_face_scores(const emu_face_t *f, double *confidence,
    double *similarity_match, double *similarity_none, double *awesomeness)
{
    char           buf[EMU_ID_MAX + 8 + 64];
    unsigned char  d[32];
    int            n;

    n = snprintf(buf, sizeof(buf), "%s@%u,%u,%u,%u", f->id, f->box[0],
                 f->box[1], f->box[2], f->box[3]);

    emu_sha256(buf, n, d);

    *confidence = f->annotated ? emu_frac(d, 0.9901, 0.9999)
                               : emu_frac(d, 0.9, 0.9899);
    *similarity_match = emu_frac(d + 2, 0.8, 0.9899);
    *similarity_none = emu_frac(d + 4, 0.05, 0.45);
    *awesomeness = emu_frac(d + 6, 0.3, 0.9899);
}


/*
 * The attributes of the second recognition model ("searcher": 1), from the
 * SHA-256 of the identity alone: a person has one sex, age and emotion in
 * every photo.
 */
void
emu_face_attributes(const emu_face_t *f, const char **sex, int *age,
    const char **emotion)
{
    static const char  *emotions[] = { "Neutral", "Happiness", "Sadness",
                                       "Surprise", "Anger", "Fear",
                                       "Disgust" };
    char                buf[sizeof(f->id) + 16];
    unsigned char       d[32];
    int                 n;

    n = snprintf(buf, sizeof(buf), "searcher/%s", f->id);

    emu_sha256(buf, n, d);

    *sex = (d[0] & 1) ? "female" : "male";
    *age = 1 + (int) ((((unsigned) d[1] << 8) | d[2]) % 90);
    *emotion = emotions[d[3] % (sizeof(emotions) / sizeof(emotions[0]))];
}
