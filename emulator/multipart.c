/*
 * smarty-emulator: multipart/form-data over a whole body in memory.
 *
 * Binary safe and linear in the body size: delimiters are found with
 * memmem() (glibc's is linear), part headers are bounded.  Part data is not
 * copied: parts point into the body.  A part without a form-data name is
 * skipped, as Go's multipart form reader (the real API's) skips it.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"


#define EMU_MP_BOUNDARY_MAX  70
#define EMU_MP_NAME_MAX      4096    /* a part's name, or its filename */
#define EMU_MP_HEADERS_MAX   32768   /* both, quoted, fit */


static int
emu_mp_ws(int ch)
{
    return ch == ' ' || ch == '\t';
}


/*
 * The value of parameter "name" in a header value such as
 * form-data; name="file_0"; filename="a.jpg" (the first item is skipped).
 * Returns a malloc()ed copy, "" for an empty value, or NULL when absent.
 */
static char *
emu_mp_param(const char *s, size_t n, const char *name)
{
    size_t   i, ks, ke, vs, ve, k;
    char    *v;
    int      quoted;

    /* skip the first item */
    for (i = 0; i < n && s[i] != ';'; i++) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\') {
                    i++;
                }
            }
        }
    }

    while (i < n) {
        while (i < n && (s[i] == ';' || emu_mp_ws(s[i]))) {
            i++;
        }

        ks = i;
        while (i < n && s[i] != '=' && s[i] != ';') {
            i++;
        }

        ke = i;
        while (ke > ks && emu_mp_ws(s[ke - 1])) {
            ke--;
        }

        if (i >= n || s[i] == ';') {
            continue;
        }

        i++;    /* '=' */
        while (i < n && emu_mp_ws(s[i])) {
            i++;
        }

        quoted = (i < n && s[i] == '"');

        if (quoted) {
            vs = ++i;
            while (i < n && s[i] != '"') {
                if (s[i] == '\\') {
                    i++;
                }
                i++;
            }
            ve = i < n ? i : n;
            i++;

        } else {
            vs = i;
            while (i < n && s[i] != ';') {
                i++;
            }
            ve = i;
            while (ve > vs && emu_mp_ws(s[ve - 1])) {
                ve--;
            }
        }

        if (ke - ks != strlen(name) || strncasecmp(s + ks, name, ke - ks)) {
            continue;
        }

        v = malloc(ve - vs + 1);
        if (v == NULL) {
            return NULL;
        }

        for (k = 0; vs < ve; vs++) {
            if (quoted && s[vs] == '\\' && vs + 1 < ve) {
                vs++;
            }
            v[k++] = s[vs];
        }

        v[k] = '\0';
        return v;
    }

    return NULL;
}


/* the disposition's first item is "form-data" (any case) */
static int
emu_mp_form_data(const char *v, size_t n)
{
    size_t  k;

    for (k = 0; k < n && v[k] != ';'; k++) { /* void */ }

    while (k && emu_mp_ws(v[k - 1])) {
        k--;
    }

    return k == sizeof("form-data") - 1
           && strncasecmp(v, "form-data", k) == 0;
}


/*
 * The part's headers.  As with Go's Header.Get(), the first
 * Content-Disposition counts; the part gets a name only from a form-data
 * disposition.
 */
static int
emu_mp_headers(const unsigned char *h, size_t n, emu_part_t *part,
    emu_err_t *err)
{
    const char  *line, *colon, *value, *end, *s, *what;
    size_t       len, vlen;
    int          disposition;

    s = (const char *) h;
    end = s + n;
    disposition = 0;

    while (s < end) {
        line = s;
        s = memmem(line, end - line, "\r\n", 2);
        len = (s ? s : end) - line;
        s = s ? s + 2 : end;

        if (len == 0) {
            continue;
        }

        colon = memchr(line, ':', len);
        if (colon == NULL || colon == line) {
            emu_err_set(err, 400, "bad_part_headers",
                        "a multipart part has a malformed header line");
            return -1;
        }

        value = colon + 1;
        vlen = line + len - value;
        while (vlen && emu_mp_ws(*value)) {
            value++;
            vlen--;
        }
        while (vlen && emu_mp_ws(value[vlen - 1])) {
            vlen--;
        }

        if ((size_t) (colon - line) == sizeof("Content-Disposition") - 1
            && strncasecmp(line, "Content-Disposition", colon - line) == 0)
        {
            if (disposition++ || !emu_mp_form_data(value, vlen)) {
                continue;
            }

            part->name = emu_mp_param(value, vlen, "name");
            part->filename = emu_mp_param(value, vlen, "filename");

            if (part->name && strlen(part->name) > EMU_MP_NAME_MAX) {
                what = "name";

            } else if (part->filename
                       && strlen(part->filename) > EMU_MP_NAME_MAX)
            {
                what = "filename";

            } else {
                continue;
            }

            emu_err_set(err, 400, "bad_part_headers",
                        "a multipart part's %s is too long: at most %d "
                        "bytes are allowed", what, EMU_MP_NAME_MAX);
            return -1;

        } else if ((size_t) (colon - line) == sizeof("Content-Type") - 1
                   && strncasecmp(line, "Content-Type", colon - line) == 0)
        {
            free(part->content_type);
            part->content_type = strndup(value, vlen);
        }
    }

    return 0;
}


static int
emu_mp_boundary(const char *ctype, char *b, size_t *blen, emu_err_t *err)
{
    const char  *s;
    char        *v;
    size_t       n;

    if (ctype == NULL) {
        emu_err_set(err, 400, "bad_content_type",
                    "the request body must be multipart/form-data");
        return -1;
    }

    s = ctype;
    while (emu_mp_ws(*s)) {
        s++;
    }

    n = sizeof("multipart/form-data") - 1;

    if (strncasecmp(s, "multipart/form-data", n) != 0
        || (s[n] != '\0' && s[n] != ';' && !emu_mp_ws(s[n])))
    {
        emu_err_set(err, 400, "bad_content_type",
                    "the request body must be multipart/form-data");
        return -1;
    }

    v = emu_mp_param(s, strlen(s), "boundary");

    if (v == NULL || v[0] == '\0' || strlen(v) > EMU_MP_BOUNDARY_MAX) {
        free(v);
        emu_err_set(err, 400, "bad_boundary",
                    "the multipart boundary is missing or malformed");
        return -1;
    }

    b[0] = '-';
    b[1] = '-';
    n = strlen(v);
    memcpy(b + 2, v, n);
    *blen = n + 2;
    free(v);

    return 0;
}


static emu_part_t *
emu_mp_add(emu_parts_t *parts)
{
    emu_part_t  *p;
    size_t       n;

    if (parts->nparts == parts->nalloc) {
        n = parts->nalloc ? 2 * parts->nalloc : 8;
        p = realloc(parts->parts, n * sizeof(emu_part_t));
        if (p == NULL) {
            return NULL;
        }

        parts->parts = p;
        parts->nalloc = n;
    }

    p = &parts->parts[parts->nparts++];
    memset(p, 0, sizeof(emu_part_t));

    return p;
}


/* forgets the last part: it has no name */
static void
emu_mp_drop(emu_parts_t *parts)
{
    emu_part_t  *p;

    p = &parts->parts[--parts->nparts];

    free(p->name);
    free(p->filename);
    free(p->content_type);
}


int
emu_multipart_parse(const char *ctype, const unsigned char *body,
    size_t len, emu_parts_t *out, emu_err_t *err)
{
    char                  delim[EMU_MP_BOUNDARY_MAX + 5];
    size_t                dlen, pos, p, hlen;
    const unsigned char  *hend, *next;
    emu_part_t           *part;

    memset(out, 0, sizeof(emu_parts_t));

    if (emu_mp_boundary(ctype, delim + 2, &dlen, err) != 0) {
        return -1;
    }

    /* delim is "\r\n--boundary"; the first delimiter may lack the CRLF */
    delim[0] = '\r';
    delim[1] = '\n';

    if (len >= dlen && memcmp(body, delim + 2, dlen) == 0) {
        pos = 0;

    } else {
        next = memmem(body, len, delim, dlen + 2);
        if (next == NULL) {
            emu_err_set(err, 400, "bad_multipart",
                        "the body has no multipart delimiter");
            return -1;
        }

        pos = next - body + 2;
    }

    for ( ;; ) {
        p = pos + dlen;

        if (p + 2 <= len && body[p] == '-' && body[p + 1] == '-') {
            return 0;
        }

        while (p < len && emu_mp_ws(body[p])) {
            p++;
        }

        if (p + 2 > len || body[p] != '\r' || body[p + 1] != '\n') {
            emu_err_set(err, 400, "bad_multipart",
                        "a multipart delimiter is malformed or the body "
                        "is truncated");
            goto failed;
        }

        p += 2;

        part = emu_mp_add(out);
        if (part == NULL) {
            emu_err_set(err, 500, "internal_error", "out of memory");
            goto failed;
        }

        if (p + 2 <= len && body[p] == '\r' && body[p + 1] == '\n') {
            hend = body + p;
            hlen = 0;

        } else {
            hlen = len - p < EMU_MP_HEADERS_MAX ? len - p
                                                : EMU_MP_HEADERS_MAX;
            hend = memmem(body + p, hlen, "\r\n\r\n", 4);
            if (hend == NULL) {
                emu_err_set(err, 400, "bad_part_headers",
                            "the headers of a multipart part are "
                            "unterminated or too long");
                goto failed;
            }

            hlen = hend - (body + p);
            hend += 2;
        }

        if (emu_mp_headers(body + p, hlen, part, err) != 0) {
            goto failed;
        }

        p = hend + 2 - body;

        next = memmem(body + p, len - p, delim, dlen + 2);
        if (next == NULL) {
            emu_err_set(err, 400, "bad_multipart",
                        "the body ends before the closing multipart "
                        "delimiter");
            goto failed;
        }

        part->data = body + p;
        part->len = next - (body + p);

        if (part->name == NULL || part->name[0] == '\0') {
            emu_mp_drop(out);
        }

        pos = next - body + 2;
    }

failed:

    emu_parts_free(out);
    return -1;
}


void
emu_parts_free(emu_parts_t *parts)
{
    size_t  i;

    for (i = 0; i < parts->nparts; i++) {
        free(parts->parts[i].name);
        free(parts->parts[i].filename);
        free(parts->parts[i].content_type);
    }

    free(parts->parts);
    memset(parts, 0, sizeof(emu_parts_t));
}


/* the first part of that name */
const emu_part_t *
emu_parts_find(const emu_parts_t *parts, const char *name)
{
    size_t  i;

    for (i = 0; i < parts->nparts; i++) {
        if (strcmp(parts->parts[i].name, name) == 0) {
            return &parts->parts[i];
        }
    }

    return NULL;
}
