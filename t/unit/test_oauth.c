/*
 * smarty-gateway: unit tests of the upstream token's core (TAP): the
 * endpoint's request body, its answers and refusals (secrets masked), the
 * refresh-ahead and backoff arithmetic, the seal of tokens kept in Redis.
 * The call itself (libcurl) is tested against the emulator in t/41-oauth.t.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "smarty_oauth.h"
#include "tap.h"


static smarty_oauth_result_t  res;


static void
test_body(void)
{
    char        *b;
    json_t      *o;
    const char  *s;

    b = smarty_oauth_body("proj\"1", "s3cr\\et", NULL);
    o = json_loads(b, 0, NULL);
    ok(json_is_object(o), "client credentials: a JSON object");
    is_str(json_string_value(json_object_get(o, "client_id")), "proj\"1",
           "client_id escaped and kept");
    is_str(json_string_value(json_object_get(o, "client_secret")),
           "s3cr\\et", "client_secret escaped and kept");
    is_str(json_string_value(json_object_get(o, "grant_type")),
           "client_credentials", "grant_type client_credentials");
    ok(json_object_get(o, "refresh_token") == NULL, "no refresh_token");
    json_decref(o);
    free(b);

    b = smarty_oauth_body("proj", "secret", "r-1");
    o = json_loads(b, 0, NULL);
    s = json_string_value(json_object_get(o, "grant_type"));
    is_str(s, "refresh_token", "refresh: grant_type refresh_token");
    is_str(json_string_value(json_object_get(o, "refresh_token")), "r-1",
           "refresh: the refresh token");
    ok(json_object_get(o, "client_secret") == NULL,
       "refresh: the secret is not sent");
    json_decref(o);
    free(b);
}


#define ANSWER(status, text, secret, refresh)                              \
    smarty_oauth_answer(status, text, strlen(text), secret, refresh, &res)

static void
test_answer(void)
{
    smarty_oauth_rc_e  rc;

    rc = ANSWER(200, "{\"access_token\":\"a1\",\"refresh_token\":\"r1\","
                "\"expires_in\":3600}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_OK, "a token");
    is_str(res.access, "a1", "access token");
    is_int((int) res.access_len, 2, "access length");
    is_str(res.refresh, "r1", "refresh token");
    is_int((int) res.expires_in, 3600, "expires_in");

    rc = ANSWER(200, "{\"status\":200,\"body\":{\"access_token\":\"a2\","
                "\"expires_in\":\"60\"}}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_OK, "a token in the API's envelope");
    is_str(res.access, "a2", "its access token");
    is_int((int) res.refresh_len, 0, "no refresh token");
    is_int((int) res.expires_in, 60, "expires_in as a string");

    rc = ANSWER(200, "{\"access_token\":\"a3\"}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_OK, "no expires_in");
    is_int((int) res.expires_in, SMARTY_OAUTH_DEFAULT_LIFE,
           "the API's hour when the answer gives no lifetime");

    rc = ANSWER(200, "{\"access_token\":\"a b\"}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_BAD_ANSWER, "a token with a space: refused");

    rc = ANSWER(200, "{\"access_token\":\"\"}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_BAD_ANSWER, "an empty token: refused");

    rc = ANSWER(200, "{\"access_token\":\"a\",\"expires_in\":0}", "S3-xyz",
                NULL);
    is_int(rc, SMARTY_OAUTH_BAD_ANSWER, "expires_in 0: refused");

    rc = ANSWER(200, "{\"access_token\":\"a\",\"expires_in\":-5}", "S3-xyz",
                NULL);
    is_int(rc, SMARTY_OAUTH_BAD_ANSWER, "a negative expires_in: refused");

    rc = ANSWER(200, "<html>", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_BAD_ANSWER, "not JSON");
    ok(strstr(res.error, "HTTP 200") != NULL, "the cause: %s", res.error);

    rc = ANSWER(200, "{\"access_token\":\"a\",\"access_token\":\"b\"}",
                "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_BAD_ANSWER, "a token given twice: refused");

    rc = ANSWER(200, "{\"access_token\":\"a\",\"refresh_token\":\"r\\u0001\"}",
                "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_OK, "an unusable refresh token is dropped");
    is_int((int) res.refresh_len, 0, "... and not kept");

    rc = ANSWER(401, "{\"status\":401,\"body\":{\"error\":\"unknown "
                "client_id or wrong client_secret\",\"code\":"
                "\"invalid_client\"}}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_REFUSED, "401: refused");
    is_str(res.error, "HTTP 401 invalid_client: unknown client_id or wrong "
           "client_secret", "the cause from the envelope");

    rc = ANSWER(400, "{\"error\":\"invalid_grant\",\"error_description\":"
                "\"refresh token r-77 expired\"}", "S3-xyz", "r-77");
    is_int(rc, SMARTY_OAUTH_REFUSED, "400: refused");
    is_str(res.error, "HTTP 400 invalid_grant: refresh token **** expired",
           "RFC 6749's shape, the refresh token masked");

    rc = ANSWER(401, "{\"error\":\"bad\",\"error_description\":"
                "\"secret hunter2 is wrong\"}", "hunter2", NULL);
    ok(strstr(res.error, "hunter2") == NULL, "the secret masked: %s",
       res.error);

    rc = ANSWER(503, "", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_UNAVAILABLE, "503: try later");
    is_str(res.error, "HTTP 503", "the cause of a bare 503");

    rc = ANSWER(429, "{\"status\":429,\"body\":{\"error\":\"too many\","
                "\"code\":\"too_many_tokens\"}}", "S3-xyz", NULL);
    is_int(rc, SMARTY_OAUTH_UNAVAILABLE, "429: try later");
    is_str(res.error, "HTTP 429 too_many_tokens: too many", "its cause");
}


static void
test_token_ok(void)
{
    char  big[SMARTY_OAUTH_TOKEN_MAX + 2];

    ok(smarty_oauth_token_ok("abc-._~+/=", 10), "printable: usable");
    ok(!smarty_oauth_token_ok("", 0), "empty: not");
    ok(!smarty_oauth_token_ok("a\nb", 3), "a newline: not");
    ok(!smarty_oauth_token_ok("a\x80", 2), "a high byte: not");

    memset(big, 'a', sizeof(big));
    ok(smarty_oauth_token_ok(big, SMARTY_OAUTH_TOKEN_MAX), "at the limit");
    ok(!smarty_oauth_token_ok(big, SMARTY_OAUTH_TOKEN_MAX + 1),
       "over the limit");
}


static void
test_schedule(void)
{
    int64_t   ms, lo, hi;
    unsigned  n;
    uint32_t  rnd;

    is_int((int) smarty_oauth_ahead_ms(3600000), 60000,
           "an hour: a minute ahead");
    is_int((int) smarty_oauth_ahead_ms(3000), 150, "3 s: 150 ms ahead");
    is_int((int) smarty_oauth_ahead_ms(0), 0, "no lifetime: none");

    is_int((int) smarty_oauth_backoff_ms(1, 0, 30000), 500,
           "first failure, rnd 0: 500 ms");
    is_int((int) smarty_oauth_backoff_ms(1, 1023, 30000), 250,
           "first failure, top rnd: half of it");
    is_int((int) smarty_oauth_backoff_ms(3, 0, 30000), 2000,
           "third failure: 2 s");
    is_int((int) smarty_oauth_backoff_ms(40, 0, 30000), 30000,
           "many failures: the cap");
    is_int((int) smarty_oauth_backoff_ms(40, 0, 5000), 5000,
           "a lower cap");

    lo = 1 << 30;
    hi = 0;

    for (n = 1; n < 12; n++) {
        for (rnd = 0; rnd < 5000; rnd += 7) {
            ms = smarty_oauth_backoff_ms(n, rnd * 2654435761u, 30000);
            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
        }
    }

    ok(lo >= 250 && hi <= 30000, "always within [250 ms, cap]: %lld..%lld",
       (long long) lo, (long long) hi);
}


static void
test_seal(void)
{
    char           id[SMARTY_OAUTH_ID_LEN + 1], sealed[512], plain[128];
    size_t         len, slen;
    unsigned char  key[SMARTY_OAUTH_KEY_LEN], other[SMARTY_OAUTH_KEY_LEN];
    const char    *text = "access-1\nrefresh-1";

    smarty_oauth_id("abc", 3, id);
    is_str(id, "ba7816bf8f01cfea", "the id: SHA-256's first hex digits");

    smarty_oauth_seal_key("proj", "secret", key);
    smarty_oauth_seal_key("proj", "secret2", other);
    ok(memcmp(key, other, sizeof(key)) != 0, "another secret, another key");

    slen = smarty_oauth_seal_len(strlen(text));
    ok(smarty_oauth_seal(key, text, strlen(text), sealed, sizeof(sealed))
       == 0, "sealed");
    is_int((int) strlen(sealed), (int) slen, "its length");
    ok(strstr(sealed, "access") == NULL, "the token not in the clear");

    ok(smarty_oauth_unseal(key, sealed, slen, plain, sizeof(plain), &len)
       == 0, "unsealed");
    is_mem(plain, len, text, strlen(text), "the same text back");

    ok(smarty_oauth_unseal(other, sealed, slen, plain, sizeof(plain), &len)
       != 0, "another key: refused");

    sealed[40] = sealed[40] == 'a' ? 'b' : 'a';
    ok(smarty_oauth_unseal(key, sealed, slen, plain, sizeof(plain), &len)
       != 0, "a changed byte: refused");

    ok(smarty_oauth_unseal(key, "zz", 2, plain, sizeof(plain), &len) != 0,
       "too short: refused");
    ok(smarty_oauth_unseal(key, sealed, slen - 1, plain, sizeof(plain),
                           &len) != 0, "an odd length: refused");
    ok(smarty_oauth_unseal(key, sealed, slen, plain, 4, &len) != 0,
       "no room: refused");
    ok(smarty_oauth_seal(key, text, strlen(text), sealed, 10) != 0,
       "no room to seal: refused");
}


int
main(void)
{
    test_body();
    test_answer();
    test_token_ok();
    test_schedule();
    test_seal();

    return done_testing();
}
