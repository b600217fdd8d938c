/*
 * smarty-gateway: libFuzzer target for the per-image answer cache core.
 *
 * The input is an upstream answer.  When smarty_answer_split() takes it,
 * every entry must parse (smarty_entry_parse), and the entries, built
 * under other names in reverse order (smarty_answer_plan, _write), must
 * make valid JSON of exactly the planned length that splits again into
 * the same entries (the same lists, byte for byte, maybe in another
 * order).  The input is also fed as meta to
 * smarty_cache_meta_subset() (valid JSON out) and, cut at NUL bytes, as
 * stored (possibly corrupt) entries to the builder: a plan refuses them
 * or writes exactly what it planned.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "smarty_cache.h"


#define NNAMES  6


static const char *const  up_names[NNAMES] = {
    "file_0", "file_1", "file_2", "file_3", "a", "b"
};

static const char *const  cl_names[NNAMES] = {
    "x5", "x\"4", "x/3", "x\\2", "x\n1", "\xc3\xa9"
};


static json_t *
must_parse(const char *s, size_t len)
{
    json_t  *j;

    j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL) {
        fprintf(stderr, "not valid JSON (%zu bytes): %.*s\n", len, (int) len,
                s);
        abort();
    }

    return j;
}


/* the answer of the entries under names, of exactly the planned length */

static char *
build(const char *const *names, const char *const *values,
    const size_t *lens, size_t n, int aliases, size_t *len)
{
    char                  *s, *end;
    smarty_answer_plan_t   plan;

    if (smarty_answer_plan(&plan, names, values, lens, n, aliases) != 0) {
        return NULL;
    }

    s = malloc(plan.len ? plan.len : 1);
    if (s == NULL) {
        abort();
    }

    end = smarty_answer_write(&plan, s, names, values, lens, n, aliases);
    if ((size_t) (end - s) != plan.len) {
        fprintf(stderr, "wrote %zu bytes, planned %zu\n",
                (size_t) (end - s), plan.len);
        abort();
    }

    *len = plan.len;

    return s;
}


/*
 * Two entries hold the same lists, byte for byte (their order may differ:
 * a built answer's lists come in the order the entries first name them)
 */

static int
same_lists(const char *x, const char *y, size_t len)
{
    int                  nx, ny, i, j;
    smarty_entry_list_t  lx[SMARTY_ENTRY_LISTS_MAX];
    smarty_entry_list_t  ly[SMARTY_ENTRY_LISTS_MAX];

    nx = smarty_entry_parse(x, len, lx, SMARTY_ENTRY_LISTS_MAX);
    ny = smarty_entry_parse(y, len, ly, SMARTY_ENTRY_LISTS_MAX);

    if (nx < 1 || nx != ny) {
        return 0;
    }

    for (i = 0; i < nx; i++) {
        for (j = 0; j < ny; j++) {
            if (lx[i].key_len == ly[j].key_len
                && lx[i].pre_len == ly[j].pre_len
                && lx[i].post_len == ly[j].post_len
                && memcmp(lx[i].key, ly[j].key, lx[i].key_len) == 0
                && memcmp(lx[i].pre, ly[j].pre, lx[i].pre_len) == 0
                && memcmp(lx[i].post, ly[j].post, lx[i].post_len) == 0)
            {
                break;
            }
        }

        if (j == ny) {
            return 0;
        }
    }

    return 1;
}


static void
check_split_build(const char *data, size_t size, int status1)
{
    int                  rc;
    char                *built;
    size_t               i, j, len, lens[NNAMES];
    const char          *values[NNAMES];
    smarty_answer_t      a, b;
    smarty_entry_list_t  l[SMARTY_ENTRY_LISTS_MAX];

    rc = smarty_answer_split(data, size, up_names, NNAMES, status1, &a,
                             NULL, 0);
    if (rc != 0) {
        smarty_answer_free(&a);
        return;
    }

    for (i = 0; i < NNAMES; i++) {
        if (a.values[i] == NULL) {
            if (a.cacheable[i] || a.lens[i] != 0) {
                abort();
            }

            continue;
        }

        /* NUL-terminated, and maybe holding NULs: jansson takes one after
         * a number, and the upstream's bytes are kept */

        if (a.values[i][a.lens[i]] != '\0'
            || smarty_entry_parse(a.values[i], a.lens[i], l,
                                  SMARTY_ENTRY_LISTS_MAX) < 1)
        {
            fprintf(stderr, "not an entry: %s\n", a.values[i]);
            abort();
        }
    }

    /* the client's names, in reverse order */

    for (i = 0; i < NNAMES; i++) {
        values[i] = a.values[NNAMES - 1 - i];
        lens[i] = a.lens[NNAMES - 1 - i];
    }

    built = build(cl_names, values, lens, NNAMES, a.aliases_changed, &len);
    if (built == NULL) {
        fprintf(stderr, "split entries not built\n");
        abort();
    }

    json_decref(must_parse(built, len));

    rc = smarty_answer_split(built, len, cl_names, NNAMES, status1, &b,
                             NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "the built answer does not split: %.*s\n", (int) len,
                built);
        abort();
    }

    if (b.aliases_changed != a.aliases_changed) {
        abort();
    }

    for (i = 0; i < NNAMES; i++) {
        j = NNAMES - 1 - i;

        if ((a.values[i] == NULL) != (b.values[j] == NULL)
            || a.lens[i] != b.lens[j]
            || (a.values[i] && !same_lists(a.values[i], b.values[j],
                                           a.lens[i])))
        {
            fprintf(stderr, "entry %zu changed:\n%s\n%s\n", i,
                    a.values[i] ? a.values[i] : "(null)",
                    b.values[j] ? b.values[j] : "(null)");
            abort();
        }
    }

    smarty_answer_free(&b);
    free(built);
    smarty_answer_free(&a);
}


static void
check_subset(const char *data, size_t size)
{
    char    *s;
    size_t   len;

    s = smarty_cache_meta_subset(data, size, up_names, 3, &len);
    if (s != NULL) {
        json_decref(must_parse(s, len));
        free(s);
    }
}


/* the input cut at NUL bytes: up to NNAMES stored entries */

static void
check_stored(const char *data, size_t size)
{
    char        *s;
    size_t       n, len, lens[NNAMES];
    const char  *p, *end, *z, *values[NNAMES];

    n = 0;
    p = data;
    end = data + size;

    while (n < NNAMES && p <= end) {
        z = memchr(p, '\0', end - p);
        if (z == NULL) {
            z = end;
        }

        values[n] = (z > p) ? p : NULL;
        lens[n++] = z - p;
        p = z + 1;
    }

    s = build(cl_names, values, lens, n, (int) (size % 3) - 1, &len);
    free(s);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_split_build((const char *) data, size, size & 1);
    check_subset((const char *) data, size);
    check_stored((const char *) data, size);

    return 0;
}
