/*
 * smarty-gateway: unit tests of the query-string core (TAP): pairs, names
 * decoded as an upstream decodes them, credentials in any spelling, and
 * their redaction from log text.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_args.h"
#include "tap.h"


static void
test_pairs(void)
{
    size_t        pos;
    smarty_arg_t  a;
    const char   *q = "&a=1&&b&c=&=d&";
    size_t        len = strlen(q);

    pos = 0;

    ok(smarty_args_next(q, len, &pos, &a), "first pair");
    is_mem(a.name, a.name_len, "a", 1, "name a");
    is_mem(a.value, a.value_len, "1", 1, "value 1");
    is_mem(a.pair, a.pair_len, "a=1", 3, "pair a=1");

    ok(smarty_args_next(q, len, &pos, &a), "empty pairs skipped");
    is_mem(a.name, a.name_len, "b", 1, "name b");
    ok(a.value == NULL, "b has no '='");

    ok(smarty_args_next(q, len, &pos, &a), "c=");
    ok(a.value != NULL && a.value_len == 0, "c has an empty value");

    ok(smarty_args_next(q, len, &pos, &a), "=d");
    is_int((int) a.name_len, 0, "an empty name");
    is_mem(a.value, a.value_len, "d", 1, "value d");

    ok(!smarty_args_next(q, len, &pos, &a), "the end");
    ok(!smarty_args_next(q, len, &pos, &a), "still the end");

    pos = 0;
    ok(!smarty_args_next("", 0, &pos, &a), "an empty query");
}


static void
test_unescape(void)
{
    char    out[64];
    size_t  n;

    n = smarty_args_unescape("oauth%5Ftoken", 13, out);
    is_mem(out, n, "oauth_token", 11, "%%5F");

    n = smarty_args_unescape("a%5fb+c", 7, out);
    is_mem(out, n, "a_b c", 5, "lower-case hex, '+' as a space");

    n = smarty_args_unescape("%zz%4", 5, out);
    is_mem(out, n, "%zz%4", 5, "bad escapes stay");

    n = smarty_args_unescape("%25%35%46", 9, out);
    is_mem(out, n, "%5F", 3, "decoded once, not twice");

    n = smarty_args_unescape("%00", 3, out);
    ok(n == 1 && out[0] == '\0', "a NUL byte");
}


static void
test_names(void)
{
    static const char  *tokens[] = {
        "oauth_token", "OAUTH_TOKEN", "oauth%5Ftoken", "oauth%5ftoken",
        "%6Fauth_token", "Oauth%5FToken", "%6f%61%75%74%68%5f%74%6f%6b%65%6e"
    };
    static const char  *others[] = {
        "oauth_tokens", "oauth+token", "oauth%255Ftoken", "xoauth_token",
        "oauth_token%00", "", "oauth%5"
    };

    size_t  i;

    for (i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        ok(smarty_args_credential(tokens[i], strlen(tokens[i])),
           "\"%s\" is a credential", tokens[i]);
    }

    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        ok(!smarty_args_credential(others[i], strlen(others[i])),
           "\"%s\" is not", others[i]);
    }

    ok(smarty_args_credential("oauth%5Fprovider", 16),
       "oauth%%5Fprovider is a credential");
    ok(smarty_args_name_is("oauth%5Ftoken", 13, "oauth_token", 0),
       "decoded, exact");
    ok(!smarty_args_name_is("OAUTH_TOKEN", 11, "oauth_token", 0),
       "exact compares case");
}


static void
redacts(const char *in, const char *want)
{
    char    buf[512];
    size_t  n;

    n = strlen(in);
    memcpy(buf, in, n);
    n = smarty_args_redact(buf, n);

    is_mem(buf, n, want, strlen(want), "redact: %s", in);
}


static void
test_redact(void)
{
    redacts("oauth_token=secret", "oauth_token=***");
    redacts("a=1&oauth_token=secret&b=2", "a=1&oauth_token=***&b=2");
    redacts("a=1&oauth%5Ftoken=secret", "a=1&oauth%5Ftoken=***");
    redacts("OAUTH_TOKEN=secret", "OAUTH_TOKEN=***");
    redacts("request: \"POST /api/v1/x?oauth%5ftoken=sgw_k HTTP/1.1\", "
            "host: \"h\"",
            "request: \"POST /api/v1/x?oauth%5ftoken=*** HTTP/1.1\", "
            "host: \"h\"");
    redacts("oauth_token=ab&x=1", "oauth_token=**&x=1");
    redacts("oauth_token=&x=1", "oauth_token=&x=1");
    redacts("oauth_token=a=b=c&x", "oauth_token=***&x");
    redacts("oauth_token=1&oauth_token=22222", "oauth_token=*&oauth_token=***");
    redacts("my_oauth_token=secret", "my_oauth_token=secret");
    redacts("oauth_provider=mcs", "oauth_provider=mcs");
    redacts("/x/oauth_token=k1234", "/x/oauth_token=***");
    redacts("=", "=");
    redacts("", "");

    /* the token endpoint's secrets, should a client put them in a URI */
    redacts("grant_type=refresh_token&refresh_token=sgrt1.x.y&client_id=a",
            "grant_type=refresh_token&refresh_token=***&client_id=a");
    redacts("client_id=demo&Client%5FSecret=sgw_k",
            "client_id=demo&Client%5FSecret=***");
    redacts("access_token=sgat1.x.y", "access_token=***");
    redacts("client_id=demo", "client_id=demo");
}


int
main(void)
{
    test_pairs();
    test_unescape();
    test_names();
    test_redact();

    return done_testing();
}
