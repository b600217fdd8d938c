/*
 * smarty-gateway: libFuzzer target for the query-string core.
 *
 * The input is any text.  Checked: the pairs cover the input without
 * overlap; a decoded name is never longer than the raw one; redaction
 * never grows the text and is idempotent.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_args.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    char          *text, *again, *dec;
    size_t         pos, last, n, m;
    smarty_arg_t   a;

    /* exact-size copies, so that ASan sees any overread or overflow */
    text = malloc(size ? size : 1);
    memcpy(text, in, size);

    pos = 0;
    last = 0;

    while (smarty_args_next(text, size, &pos, &a)) {
        fz_assert(a.pair >= text + last);
        fz_assert(a.pair + a.pair_len <= text + size);
        fz_assert(a.name == a.pair);
        fz_assert(a.name_len <= a.pair_len);
        fz_assert(memchr(a.pair, '&', a.pair_len) == NULL);
        fz_assert(a.pair_len > 0);

        dec = malloc(a.name_len ? a.name_len : 1);
        n = smarty_args_unescape(a.name, a.name_len, dec);
        fz_assert(n <= a.name_len);
        free(dec);

        (void) smarty_args_credential(a.name, a.name_len);
        last = pos;
    }

    fz_assert(pos == size);

    n = smarty_args_redact(text, size);
    fz_assert(n <= size);

    again = malloc(n ? n : 1);
    memcpy(again, text, n);
    m = smarty_args_redact(again, n);
    fz_assert(m == n && memcmp(again, text, n) == 0);

    free(again);
    free(text);

    return 0;
}
