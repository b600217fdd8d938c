/*
 * smarty-gateway: unit tests of the client tokens' core (TAP): a known
 * token (computed apart, with Python's hmac), round trips, every way a
 * token must fail (a byte changed, another signing key, the client's key
 * changed, expiry, the other kind, non-canonical spellings, lengths).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "smarty_client_token.h"
#include "tap.h"


/* key "k" x 32, client "billing" whose key is "sgw_secret", nonce 0..15,
 * issued 1700000000, expires 1700003600 */
#define KNOWN                                                                 \
    "sgat1.AQAAAABlU_EAAAAAAGVT_xAAAQIDBAUGBwgJCgsMDQ4PB2JpbGxpbmc"            \
    ".HwWmyplS8aKLJuCAH7llV5Ji_bqMH2vST8K2NCV18Gw"


static unsigned char  key[32];
static unsigned char  key2[32];
static unsigned char  hash[SMARTY_CT_HASH_LEN];
static unsigned char  hash2[SMARTY_CT_HASH_LEN];
static unsigned char  nonce[SMARTY_CT_NONCE_LEN];


static void
setup(void)
{
    int  i;

    memset(key, 'k', sizeof(key));
    memset(key2, 'K', sizeof(key2));
    SHA256((const unsigned char *) "sgw_secret", 10, hash);
    SHA256((const unsigned char *) "sgw_other", 9, hash2);

    for (i = 0; i < SMARTY_CT_NONCE_LEN; i++) {
        nonce[i] = (unsigned char) i;
    }
}


static void
test_known(void)
{
    char         out[SMARTY_CT_MAX_LEN + 1];
    size_t       n;
    smarty_ct_t  t;

    n = smarty_ct_make(SMARTY_CT_ACCESS, "billing", 7, hash, 1700000000,
                       1700003600, nonce, key, sizeof(key), out,
                       sizeof(out));
    is_mem(out, n, KNOWN, sizeof(KNOWN) - 1, "the known access token");
    is_int(out[n], 0, "NUL-terminated");

    is_int(smarty_ct_parse(KNOWN, sizeof(KNOWN) - 1, &t), SMARTY_CT_OK,
           "it parses");
    is_int(t.kind, SMARTY_CT_ACCESS, "an access token");
    is_int((long long) t.issued, 1700000000, "issued");
    is_int((long long) t.expires, 1700003600, "expires");
    is_mem(t.name, t.name_len, "billing", 7, "its client");
    is_mem(t.nonce, sizeof(t.nonce), nonce, sizeof(nonce), "its nonce");
    is_int((long long) t.signed_len, strchr(KNOWN + 6, '.') - KNOWN,
           "the mac covers the prefix and the payload");

    is_int(smarty_ct_verify(&t, key, sizeof(key), hash, 1700000000),
           SMARTY_CT_OK, "good when issued");
    is_int(smarty_ct_verify(&t, key, sizeof(key), hash, 1700003599),
           SMARTY_CT_OK, "good a second before it expires");
    is_int(smarty_ct_verify(&t, key, sizeof(key), hash, 1700003600),
           SMARTY_CT_EXPIRED, "expired at its expiry");
    is_int(smarty_ct_verify(&t, key2, sizeof(key2), hash, 1700000000),
           SMARTY_CT_BAD_MAC, "another signing key");
    is_int(smarty_ct_verify(&t, key, 31, hash, 1700000000),
           SMARTY_CT_BAD_MAC, "a shorter signing key");
    is_int(smarty_ct_verify(&t, key, sizeof(key), hash2, 1700000000),
           SMARTY_CT_BAD_MAC, "the client's key changed");
    is_int(smarty_ct_verify(&t, key2, sizeof(key2), hash2, 1800000000),
           SMARTY_CT_BAD_MAC, "a bad mac is said before an expiry");
}


static void
test_round_trip(void)
{
    int          kind, ok_all;
    char         out[SMARTY_CT_MAX_LEN + 1], name[SMARTY_CT_NAME_MAX + 2];
    size_t       n, len, max;
    smarty_ct_t  t;

    memset(name, 'n', sizeof(name));
    ok_all = 1;
    max = 0;

    for (kind = SMARTY_CT_ACCESS; kind <= SMARTY_CT_REFRESH; kind++) {
        for (len = 1; len <= SMARTY_CT_NAME_MAX; len++) {
            n = smarty_ct_make(kind, name, len, hash, 5, (uint64_t) -1,
                               nonce, key, sizeof(key), out, sizeof(out));

            if (n == 0 || n > SMARTY_CT_MAX_LEN
                || smarty_ct_kind(out, n) != kind
                || smarty_ct_parse(out, n, &t) != SMARTY_CT_OK
                || t.kind != kind || t.name_len != len
                || memcmp(t.name, name, len) != 0
                || t.issued != 5 || t.expires != (uint64_t) -1
                || smarty_ct_verify(&t, key, sizeof(key), hash, 6)
                   != SMARTY_CT_OK)
            {
                ok_all = 0;
                diag("kind %d, a name of %zu bytes", kind, len);
            }

            if (n > max) {
                max = n;
            }
        }
    }

    ok(ok_all, "both kinds, names of 1 to 64 bytes: made, parsed, good");
    is_int((long long) max, SMARTY_CT_MAX_LEN,
           "the longest is SMARTY_CT_MAX_LEN bytes");

    is_int((long long) smarty_ct_make(SMARTY_CT_ACCESS, name,
                                      SMARTY_CT_NAME_MAX + 1, hash, 1, 2,
                                      nonce, key, sizeof(key), out,
                                      sizeof(out)),
           0, "a name of 65 bytes is refused");
    is_int((long long) smarty_ct_make(SMARTY_CT_ACCESS, name, 0, hash, 1, 2,
                                      nonce, key, sizeof(key), out,
                                      sizeof(out)),
           0, "an empty name is refused");
    is_int((long long) smarty_ct_make(2, name, 3, hash, 1, 2, nonce, key,
                                      sizeof(key), out, sizeof(out)),
           0, "an unknown kind is refused");
    is_int((long long) smarty_ct_make(SMARTY_CT_ACCESS, name, 3, hash, 1, 2,
                                      nonce, key, 0, out, sizeof(out)),
           0, "an empty signing key is refused");

    n = smarty_ct_make(SMARTY_CT_ACCESS, name, 3, hash, 1, 2, nonce, key,
                       sizeof(key), out, sizeof(out));
    is_int((long long) smarty_ct_make(SMARTY_CT_ACCESS, name, 3, hash, 1, 2,
                                      nonce, key, sizeof(key), out, n),
           0, "no room for the NUL: refused");
    ok(smarty_ct_make(SMARTY_CT_ACCESS, name, 3, hash, 1, 2, nonce, key,
                      sizeof(key), out, n + 1) == n,
       "exactly the room it needs");
}


static void
test_tampering(void)
{
    int          bad;
    char         tok[sizeof(KNOWN)], *chars;
    size_t       i, j, len;
    smarty_ct_t  t;
    smarty_ct_rc_e  rc;

    len = sizeof(KNOWN) - 1;
    chars = "ABaz09-_.=+/ ";
    bad = 0;

    /* every byte changed to each of a few others: never good */

    for (i = 0; i < len; i++) {
        for (j = 0; chars[j]; j++) {
            memcpy(tok, KNOWN, sizeof(KNOWN));

            if (tok[i] == chars[j]) {
                continue;
            }

            tok[i] = chars[j];
            rc = smarty_ct_parse(tok, len, &t);

            if (rc == SMARTY_CT_OK) {
                rc = smarty_ct_verify(&t, key, sizeof(key), hash,
                                      1700000001);
            }

            if (rc == SMARTY_CT_OK) {
                bad++;
                diag("byte %zu as '%c' is still good", i, chars[j]);
            }
        }
    }

    ok(bad == 0, "no changed byte makes a good token");

    /* the refresh prefix on an access token: another signed text */

    memcpy(tok, KNOWN, sizeof(KNOWN));
    tok[2] = 'r';
    ok(smarty_ct_parse(tok, len, &t) == SMARTY_CT_OK
       && t.kind == SMARTY_CT_REFRESH
       && smarty_ct_verify(&t, key, sizeof(key), hash, 1700000001)
          == SMARTY_CT_BAD_MAC,
       "an access token relabelled refresh is refused");

    /* the last character of the mac with non-zero spare bits */

    memcpy(tok, KNOWN, sizeof(KNOWN));
    ok(tok[len - 1] == 'w', "the mac ends with 'w' (spare bits 00)");
    tok[len - 1] = 'x';
    is_int(smarty_ct_parse(tok, len, &t), SMARTY_CT_MALFORMED,
           "the same mac spelt with spare bits set does not parse");

    is_int(smarty_ct_parse(KNOWN, len - 1, &t), SMARTY_CT_MALFORMED,
           "one character short");
    is_int(smarty_ct_parse(KNOWN "A", len + 1, &t), SMARTY_CT_MALFORMED,
           "one character more");
    is_int(smarty_ct_parse(KNOWN "AA", len + 2, &t), SMARTY_CT_MALFORMED,
           "a byte more of mac");
    is_int(smarty_ct_parse(KNOWN "=", len + 1, &t), SMARTY_CT_MALFORMED,
           "padding");
    is_int(smarty_ct_parse("sgat1.", 6, &t), SMARTY_CT_MALFORMED,
           "a prefix alone");
    is_int(smarty_ct_parse("sgat1..", 7, &t), SMARTY_CT_MALFORMED,
           "empty parts");
    is_int(smarty_ct_parse("sgw_abc", 7, &t), SMARTY_CT_MALFORMED,
           "a client key is not a token");
    is_int(smarty_ct_kind("sgw_abc", 7), -1, "nor claims to be one");
    is_int(smarty_ct_kind("sgat", 4), -1, "a short text claims nothing");
    is_int(smarty_ct_kind("sgrt1.x", 7), SMARTY_CT_REFRESH,
           "the refresh prefix");
    is_int(smarty_ct_parse("", 0, &t), SMARTY_CT_MALFORMED, "nothing");

    /* a second dot: the mac part is not base64url */

    memcpy(tok, KNOWN, sizeof(KNOWN));
    tok[len - 5] = '.';
    is_int(smarty_ct_parse(tok, len, &t), SMARTY_CT_MALFORMED,
           "a second dot");
}


/* payloads that are well-encoded but wrong inside */

static void
test_payloads(void)
{
    char           tok[512];
    size_t         n, i, k, plen;
    unsigned       acc, bits;
    smarty_ct_t    t;
    unsigned char  p[128];
    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    struct {
        const char  *what;
        int          version;
        int          name_len;
        int          extra;
    } cases[] = {
        { "version 2", 2, 3, 0 },
        { "version 0", 0, 3, 0 },
        { "a name length of 0", 1, 0, 0 },
        { "a name length of 65", 1, 65, 0 },
        { "a byte after the name", 1, 3, 1 },
        { "a byte short of the name", 1, 3, -1 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(p, 'x', sizeof(p));
        p[0] = (unsigned char) cases[i].version;
        p[33] = (unsigned char) cases[i].name_len;
        plen = 34 + cases[i].name_len + cases[i].extra;

        /* base64url by hand, so that the core's encoder is not trusted */

        memcpy(tok, "sgat1.", 6);
        n = 6;

        acc = 0;
        bits = 0;

        for (k = 0; k < plen; k++) {
            acc = (acc << 8 | p[k]) & 0xffff;
            bits += 8;

            while (bits >= 6) {
                bits -= 6;
                tok[n++] = b64[(acc >> bits) & 0x3f];
            }
        }

        if (bits) {
            tok[n++] = b64[(acc << (6 - bits)) & 0x3f];
        }

        memcpy(tok + n, ".", 1);
        n++;
        memcpy(tok + n, "HwWmyplS8aKLJuCAH7llV5Ji_bqMH2vST8K2NCV18Gw", 43);
        n += 43;

        is_int(smarty_ct_parse(tok, n, &t), SMARTY_CT_MALFORMED,
               "%s does not parse", cases[i].what);
    }
}


int
main(void)
{
    setup();

    test_known();
    test_round_trip();
    test_tampering();
    test_payloads();

    return done_testing();
}
