/*
 * smarty: a set of strings (open addressing, FNV-1a), the keys of the
 * batch commands' items: no duplicates, and what --resume finds done.
 */

#include <stdlib.h>
#include <string.h>

#include "smarty_batch.h"


static size_t
smarty_hash(const char *s)
{
    size_t  h;

    /* FNV-1a */
    h = (size_t) 14695981039346656037ULL;

    while (*s) {
        h ^= (unsigned char) *s++;
        h *= (size_t) 1099511628211ULL;
    }

    return h;
}


/* 1: added, 0: there already, -1: no memory */

int
smarty_set_add(smarty_set_t *s, const char *key)
{
    char   **slots, *copy;
    size_t   i, j, size;

    if (smarty_set_has(s, key)) {
        return 0;
    }

    if ((s->n + 1) * 2 > s->size) {
        size = s->size ? s->size * 2 : 1024;

        slots = calloc(size, sizeof(char *));
        if (slots == NULL) {
            return -1;
        }

        for (i = 0; i < s->size; i++) {
            if (s->slots[i] == NULL) {
                continue;
            }

            for (j = smarty_hash(s->slots[i]) & (size - 1);
                 slots[j] != NULL;
                 j = (j + 1) & (size - 1))
            {
                /* void */
            }

            slots[j] = s->slots[i];
        }

        free(s->slots);
        s->slots = slots;
        s->size = size;
    }

    copy = strdup(key);
    if (copy == NULL) {
        return -1;
    }

    for (j = smarty_hash(key) & (s->size - 1);
         s->slots[j] != NULL;
         j = (j + 1) & (s->size - 1))
    {
        /* void */
    }

    s->slots[j] = copy;
    s->n++;

    return 1;
}


int
smarty_set_has(smarty_set_t *s, const char *key)
{
    size_t  j;

    if (s->size == 0) {
        return 0;
    }

    for (j = smarty_hash(key) & (s->size - 1);
         s->slots[j] != NULL;
         j = (j + 1) & (s->size - 1))
    {
        if (strcmp(s->slots[j], key) == 0) {
            return 1;
        }
    }

    return 0;
}


void
smarty_set_free(smarty_set_t *s)
{
    size_t  i;

    for (i = 0; i < s->size; i++) {
        free(s->slots[i]);
    }

    free(s->slots);
    s->slots = NULL;
    s->size = 0;
    s->n = 0;
}
