/*
 * smarty-gateway: libFuzzer target for the per-image answer cache core.
 *
 * The input is an upstream answer.  When smarty_answer_split() takes it,
 * the values are rebuilt under other names in reverse order with
 * smarty_answer_build(); the result must be valid JSON that splits again
 * into the same values (as JSON: the list order may differ).  The input
 * is also fed as meta to smarty_cache_meta_subset() and, cut at newlines, as
 * stored (possibly corrupt) values to smarty_answer_build(): whatever
 * they produce must be valid JSON.
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
    "x5", "x4", "x3", "x2", "x1", "x0"
};


static json_t *
must_parse(const char *s, size_t len)
{
    json_t  *j;

    j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || strlen(s) != len) {
        fprintf(stderr, "not valid JSON (%zu bytes): %s\n", len, s);
        abort();
    }

    return j;
}


static void
check_split_build(const char *data, size_t size, int status1)
{
    int               rc;
    char             *built;
    size_t            i, len;
    json_t           *x, *y;
    const char       *values[NNAMES];
    smarty_answer_t   a, b;

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

        if (strlen(a.values[i]) != a.lens[i]) {
            abort();
        }

        json_decref(must_parse(a.values[i], a.lens[i]));
    }

    /* the client's names, in reverse order */

    for (i = 0; i < NNAMES; i++) {
        values[i] = a.values[NNAMES - 1 - i];
    }

    built = smarty_answer_build(cl_names, values, NNAMES,
                                a.aliases_changed, &len);
    if (built == NULL) {
        fprintf(stderr, "split values not rebuilt\n");
        abort();
    }

    json_decref(must_parse(built, len));

    rc = smarty_answer_split(built, len, cl_names, NNAMES, status1, &b,
                             NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "the rebuilt answer does not split: %s\n", built);
        abort();
    }

    if (b.aliases_changed != a.aliases_changed) {
        abort();
    }

    for (i = 0; i < NNAMES; i++) {
        if ((a.values[i] == NULL) != (b.values[NNAMES - 1 - i] == NULL)) {
            fprintf(stderr, "value %zu lost or invented\n", i);
            abort();
        }

        if (a.values[i] == NULL) {
            continue;
        }

        x = must_parse(a.values[i], a.lens[i]);
        y = must_parse(b.values[NNAMES - 1 - i], b.lens[NNAMES - 1 - i]);

        if (!json_equal(x, y)) {
            fprintf(stderr, "value %zu changed:\n%s\n%s\n", i, a.values[i],
                    b.values[NNAMES - 1 - i]);
            abort();
        }

        json_decref(x);
        json_decref(y);
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


/* the input cut at newlines: up to NNAMES stored values */

static void
check_stored(const char *data, size_t size)
{
    char        *copy, *p, *nl, *s;
    size_t       n, len;
    const char  *values[NNAMES];

    copy = malloc(size + 1);
    if (copy == NULL) {
        return;
    }

    memcpy(copy, data, size);
    copy[size] = '\0';

    n = 0;
    p = copy;

    while (n < NNAMES && p != NULL) {
        nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl++ = '\0';
        }

        values[n++] = *p ? p : NULL;
        p = nl;
    }

    s = smarty_answer_build(cl_names, values, n, (int) (size % 3) - 1, &len);
    if (s != NULL) {
        json_decref(must_parse(s, len));
        free(s);
    }

    free(copy);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_split_build((const char *) data, size, size & 1);
    check_subset((const char *) data, size);
    check_stored((const char *) data, size);

    return 0;
}
