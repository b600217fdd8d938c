/*
 * smarty-gateway: the gateway's own tokens for local clients, the pure
 * part: made, parsed and checked without state (docs/oauth.md, "The
 * tokens").  Pure C and OpenSSL, no nginx types.
 *
 *   sgat1.<payload>.<mac>    an access token
 *   sgrt1.<payload>.<mac>    a refresh token
 *
 * payload and mac are unpadded base64url.  The payload holds a version
 * byte (1), when the token was issued and when it expires (unix seconds,
 * 8 bytes each, big-endian), 16 random bytes, the client's name (a length
 * byte, then 1 to 64 bytes).  The mac is
 *
 *   HMAC-SHA256(signing key, "sgat1.<payload>" || SHA-256 of the client's
 *               key)
 *
 * so a token is good only while its client's key is the one it was made
 * for, and only for the gateways that hold the signing key.
 */

#ifndef SMARTY_CLIENT_TOKEN_H
#define SMARTY_CLIENT_TOKEN_H

#include <stddef.h>
#include <stdint.h>


#define SMARTY_CT_ACCESS      0
#define SMARTY_CT_REFRESH     1

#define SMARTY_CT_PREFIX_LEN  6         /* "sgat1.", "sgrt1." */
#define SMARTY_CT_NAME_MAX    64
#define SMARTY_CT_NONCE_LEN   16
#define SMARTY_CT_HASH_LEN    32        /* a key's SHA-256, the mac */
#define SMARTY_CT_KEY_MIN     32        /* bytes of a signing key */

/* the longest token: the prefix, 98 bytes and 32 in base64url, a dot */
#define SMARTY_CT_MAX_LEN     (SMARTY_CT_PREFIX_LEN + 131 + 1 + 43)


typedef enum {
    SMARTY_CT_OK = 0,
    SMARTY_CT_MALFORMED,        /* not a token of this format */
    SMARTY_CT_BAD_MAC,          /* another signing key, or the client's
                                   key changed */
    SMARTY_CT_EXPIRED
} smarty_ct_rc_e;


typedef struct {
    int             kind;                   /* SMARTY_CT_ACCESS, _REFRESH */
    uint64_t        issued;
    uint64_t        expires;
    unsigned char   nonce[SMARTY_CT_NONCE_LEN];
    char            name[SMARTY_CT_NAME_MAX + 1];
    size_t          name_len;

    /* what the mac covers (in the parsed text), and the mac */
    const char     *signed_text;
    size_t          signed_len;
    unsigned char   mac[SMARTY_CT_HASH_LEN];
} smarty_ct_t;


/* the kind of token the text's prefix claims, or -1 */
int smarty_ct_kind(const char *text, size_t len);

/*
 * Makes a token into out (size bytes; SMARTY_CT_MAX_LEN + 1 always
 * suffice), NUL-terminated.  Returns its length, or 0 if the name is not 1
 * to 64 bytes, kind is unknown, the key is empty or out is too small.
 */
size_t smarty_ct_make(int kind, const char *name, size_t name_len,
    const unsigned char key_hash[SMARTY_CT_HASH_LEN], uint64_t issued,
    uint64_t expires, const unsigned char nonce[SMARTY_CT_NONCE_LEN],
    const unsigned char *key, size_t key_len, char *out, size_t size);

/*
 * Parses a token: SMARTY_CT_OK with *t filled (t->signed_text points into
 * text), or SMARTY_CT_MALFORMED.  Only the canonical encoding parses, so
 * that one token has one spelling.  Nothing is checked yet: the name is
 * not a client until smarty_ct_verify() says so.
 */
smarty_ct_rc_e smarty_ct_parse(const char *text, size_t len, smarty_ct_t *t);

/*
 * Checks a parsed token's mac against one signing key and the SHA-256 of
 * the key of the client it names (in constant time), then its expiry:
 * SMARTY_CT_OK, SMARTY_CT_BAD_MAC or SMARTY_CT_EXPIRED (now at or past
 * t->expires).
 */
smarty_ct_rc_e smarty_ct_verify(const smarty_ct_t *t,
    const unsigned char *key, size_t key_len,
    const unsigned char key_hash[SMARTY_CT_HASH_LEN], uint64_t now);

#endif /* SMARTY_CLIENT_TOKEN_H */
