/*
 * smarty-gateway: libFuzzer target for the audit view's filters, which
 * read whatever the audit stream holds.
 *
 * The input's first byte picks the filters, the rest is the stream
 * entry's text.  Checked: a verdict is -1, 0 or 1; no filter never
 * refuses a record; a record that passes every filter passes each alone.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_audit.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    int                     all, any, one;
    char                   *text;
    size_t                  len;
    unsigned                pick, bit;
    smarty_audit_filter_t   f, g;

    if (size < 1) {
        return 0;
    }

    pick = in[0];
    len = size - 1;

    /* exact-size copy, so that ASan sees any overread */
    text = malloc(len ? len : 1);
    memcpy(text, in + 1, len);

    memset(&f, 0, sizeof(f));
    f.space = -1;

    any = smarty_audit_match(text, len, &f);
    fz_assert(any == -1 || any == 1);

    if (pick & 1) {
        f.client = "billing";
        f.client_len = 7;
    }

    if (pick & 2) {
        f.method = "persons/set";
        f.method_len = 11;
    }

    if (pick & 4) {
        f.space = (int) (pick >> 5) % 10;
    }

    if (pick & 8) {
        f.has_sha256 = 1;
        memset(f.sha256, 0xab, sizeof(f.sha256));
    }

    if (pick & 16) {
        f.person_id = 7;
        f.status_min = 400;
        f.status_max = 499;
    }

    all = smarty_audit_match(text, len, &f);
    fz_assert(all >= -1 && all <= 1);
    fz_assert(all == -1 || any == 1);

    if (all == 1) {
        for (bit = 1; bit < 32; bit <<= 1) {
            memset(&g, 0, sizeof(g));
            g.space = -1;

            if (bit == 1) {
                g.client = f.client;
                g.client_len = f.client_len;
            } else if (bit == 2) {
                g.method = f.method;
                g.method_len = f.method_len;
            } else if (bit == 4) {
                g.space = f.space;
            } else if (bit == 8) {
                g.has_sha256 = f.has_sha256;
                memcpy(g.sha256, f.sha256, sizeof(g.sha256));
            } else {
                g.person_id = f.person_id;
                g.status_min = f.status_min;
                g.status_max = f.status_max;
            }

            one = smarty_audit_match(text, len, &g);
            fz_assert(one == 1);
        }
    }

    free(text);

    return 0;
}
