/*
 * smarty-gateway: libFuzzer target for the client tokens' verifier.
 *
 * The input is any text, as a client would present it.  Checked: parsing
 * never reads past the input; a text that parses has exactly one spelling
 * (the token made again from what was parsed signs the same text); the
 * mac check never says good for a text that was not made with its key.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_client_token.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    char            *text, again[SMARTY_CT_MAX_LEN + 1];
    size_t           n;
    smarty_ct_t      t;
    unsigned char    key[SMARTY_CT_KEY_MIN], hash[SMARTY_CT_HASH_LEN];

    /* an exact-size copy, so that ASan sees any overread */
    text = malloc(size ? size : 1);
    memcpy(text, in, size);

    memset(key, 'k', sizeof(key));
    memset(hash, 'h', sizeof(hash));

    if (smarty_ct_parse(text, size, &t) == SMARTY_CT_OK) {
        fz_assert(size <= SMARTY_CT_MAX_LEN);
        fz_assert(t.kind == smarty_ct_kind(text, size));
        fz_assert(t.name_len >= 1 && t.name_len <= SMARTY_CT_NAME_MAX);
        fz_assert(t.signed_text == text);
        fz_assert(t.signed_len < size);

        n = smarty_ct_make(t.kind, t.name, t.name_len, hash, t.issued,
                           t.expires, t.nonce, key, sizeof(key), again,
                           sizeof(again));
        fz_assert(n == size);
        fz_assert(memcmp(again, text, t.signed_len + 1) == 0);

        /* a token the fuzzer wrote is good only if its mac is ours */
        if (smarty_ct_verify(&t, key, sizeof(key), hash, 0)
            != SMARTY_CT_BAD_MAC)
        {
            fz_assert(memcmp(again, text, size) == 0);
        }
    }

    free(text);

    return 0;
}
