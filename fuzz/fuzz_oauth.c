/*
 * smarty-gateway: libFuzzer target for the upstream token's core: the
 * token endpoint's answers and the unseal of a value read from Redis.
 *
 * The first byte picks an HTTP status; the rest is the answer.  Checked:
 * a token is only ever one the gateway can send; a refusal's cause never
 * holds the secrets given; an unseal of anything but a seal fails.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_oauth.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


static smarty_oauth_result_t  res;


int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    char               plain[256];
    long               status;
    size_t             len;
    unsigned char      key[SMARTY_OAUTH_KEY_LEN];
    smarty_oauth_rc_e  rc;
    static const long  statuses[] = { 200, 201, 400, 401, 403, 429, 503 };

    if (size == 0) {
        return 0;
    }

    status = statuses[in[0] % (sizeof(statuses) / sizeof(statuses[0]))];

    rc = smarty_oauth_answer(status, (const char *) in + 1, size - 1,
                             "s3cret", "rtok", &res);

    if (rc == SMARTY_OAUTH_OK) {
        fz_assert(status >= 200 && status <= 299);
        fz_assert(smarty_oauth_token_ok(res.access, res.access_len));
        fz_assert(strlen(res.access) == res.access_len);
        fz_assert(res.refresh_len == 0
                  || smarty_oauth_token_ok(res.refresh, res.refresh_len));
        fz_assert(res.expires_in > 0);

    } else {
        fz_assert(strstr(res.error, "s3cret") == NULL);
        fz_assert(strstr(res.error, "rtok") == NULL);
        fz_assert(strlen(res.error) < SMARTY_OAUTH_ERROR_MAX);
    }

    memset(key, 7, sizeof(key));

    fz_assert(smarty_oauth_unseal(key, (const char *) in, size, plain,
                                  sizeof(plain), &len) != 0);

    return 0;
}
