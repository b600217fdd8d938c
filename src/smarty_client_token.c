/*
 * smarty-gateway: the gateway's tokens for local clients, the pure part
 * (see smarty_client_token.h, docs/oauth.md).
 */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "smarty_client_token.h"


#define SMARTY_CT_VERSION     1
#define SMARTY_CT_FIXED_LEN   (1 + 8 + 8 + SMARTY_CT_NONCE_LEN + 1)
#define SMARTY_CT_PAYLOAD_MAX (SMARTY_CT_FIXED_LEN + SMARTY_CT_NAME_MAX)


static const char  *smarty_ct_prefixes[] = { "sgat1.", "sgrt1." };

static const char  smarty_ct_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


static size_t smarty_ct_b64_encode(const unsigned char *in, size_t len,
    char *out);
static int smarty_ct_b64_decode(const char *in, size_t len,
    unsigned char *out, size_t size, size_t *out_len);
static int smarty_ct_b64_value(int c);
static void smarty_ct_put64(unsigned char *p, uint64_t v);
static uint64_t smarty_ct_get64(const unsigned char *p);
static int smarty_ct_mac(const unsigned char *key, size_t key_len,
    const char *text, size_t len,
    const unsigned char key_hash[SMARTY_CT_HASH_LEN],
    unsigned char mac[SMARTY_CT_HASH_LEN]);


int
smarty_ct_kind(const char *text, size_t len)
{
    int  k;

    if (len < SMARTY_CT_PREFIX_LEN) {
        return -1;
    }

    for (k = SMARTY_CT_ACCESS; k <= SMARTY_CT_REFRESH; k++) {
        if (memcmp(text, smarty_ct_prefixes[k], SMARTY_CT_PREFIX_LEN) == 0) {
            return k;
        }
    }

    return -1;
}


size_t
smarty_ct_make(int kind, const char *name, size_t name_len,
    const unsigned char key_hash[SMARTY_CT_HASH_LEN], uint64_t issued,
    uint64_t expires, const unsigned char nonce[SMARTY_CT_NONCE_LEN],
    const unsigned char *key, size_t key_len, char *out, size_t size)
{
    char           *p;
    size_t          plen, n;
    unsigned char   payload[SMARTY_CT_PAYLOAD_MAX];
    unsigned char   mac[SMARTY_CT_HASH_LEN];

    if (kind != SMARTY_CT_ACCESS && kind != SMARTY_CT_REFRESH) {
        return 0;
    }

    if (name_len == 0 || name_len > SMARTY_CT_NAME_MAX || key_len == 0) {
        return 0;
    }

    plen = SMARTY_CT_FIXED_LEN + name_len;

    /* the prefix, the payload, a dot, the mac, a NUL */

    n = SMARTY_CT_PREFIX_LEN + (plen * 4 + 2) / 3 + 1
        + (SMARTY_CT_HASH_LEN * 4 + 2) / 3 + 1;

    if (size < n) {
        return 0;
    }

    payload[0] = SMARTY_CT_VERSION;
    smarty_ct_put64(payload + 1, issued);
    smarty_ct_put64(payload + 9, expires);
    memcpy(payload + 17, nonce, SMARTY_CT_NONCE_LEN);
    payload[17 + SMARTY_CT_NONCE_LEN] = (unsigned char) name_len;
    memcpy(payload + SMARTY_CT_FIXED_LEN, name, name_len);

    p = out;
    memcpy(p, smarty_ct_prefixes[kind], SMARTY_CT_PREFIX_LEN);
    p += SMARTY_CT_PREFIX_LEN;
    p += smarty_ct_b64_encode(payload, plen, p);

    if (smarty_ct_mac(key, key_len, out, p - out, key_hash, mac) != 0) {
        return 0;
    }

    *p++ = '.';
    p += smarty_ct_b64_encode(mac, SMARTY_CT_HASH_LEN, p);
    *p = '\0';

    return p - out;
}


smarty_ct_rc_e
smarty_ct_parse(const char *text, size_t len, smarty_ct_t *t)
{
    size_t          plen, mlen, nlen;
    const char     *dot, *body;
    unsigned char   payload[SMARTY_CT_PAYLOAD_MAX];

    memset(t, 0, sizeof(smarty_ct_t));

    if (len > SMARTY_CT_MAX_LEN) {
        return SMARTY_CT_MALFORMED;
    }

    t->kind = smarty_ct_kind(text, len);
    if (t->kind < 0) {
        return SMARTY_CT_MALFORMED;
    }

    body = text + SMARTY_CT_PREFIX_LEN;

    dot = memchr(body, '.', text + len - body);
    if (dot == NULL) {
        return SMARTY_CT_MALFORMED;
    }

    if (smarty_ct_b64_decode(body, dot - body, payload, sizeof(payload),
                             &plen)
        != 0
        || smarty_ct_b64_decode(dot + 1, text + len - dot - 1, t->mac,
                                sizeof(t->mac), &mlen)
           != 0
        || mlen != SMARTY_CT_HASH_LEN)
    {
        return SMARTY_CT_MALFORMED;
    }

    if (plen < SMARTY_CT_FIXED_LEN + 1 || payload[0] != SMARTY_CT_VERSION) {
        return SMARTY_CT_MALFORMED;
    }

    nlen = payload[17 + SMARTY_CT_NONCE_LEN];

    if (nlen == 0 || nlen > SMARTY_CT_NAME_MAX
        || plen != SMARTY_CT_FIXED_LEN + nlen)
    {
        return SMARTY_CT_MALFORMED;
    }

    t->issued = smarty_ct_get64(payload + 1);
    t->expires = smarty_ct_get64(payload + 9);
    memcpy(t->nonce, payload + 17, SMARTY_CT_NONCE_LEN);
    memcpy(t->name, payload + SMARTY_CT_FIXED_LEN, nlen);
    t->name[nlen] = '\0';
    t->name_len = nlen;

    t->signed_text = text;
    t->signed_len = dot - text;

    return SMARTY_CT_OK;
}


smarty_ct_rc_e
smarty_ct_verify(const smarty_ct_t *t, const unsigned char *key,
    size_t key_len, const unsigned char key_hash[SMARTY_CT_HASH_LEN],
    uint64_t now)
{
    int             diff;
    unsigned char   mac[SMARTY_CT_HASH_LEN];

    if (t->signed_text == NULL || key_len == 0) {
        return SMARTY_CT_BAD_MAC;
    }

    if (smarty_ct_mac(key, key_len, t->signed_text, t->signed_len, key_hash,
                      mac)
        != 0)
    {
        return SMARTY_CT_BAD_MAC;
    }

    diff = CRYPTO_memcmp(mac, t->mac, SMARTY_CT_HASH_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));

    if (diff != 0) {
        return SMARTY_CT_BAD_MAC;
    }

    if (now >= t->expires) {
        return SMARTY_CT_EXPIRED;
    }

    return SMARTY_CT_OK;
}


static int
smarty_ct_mac(const unsigned char *key, size_t key_len, const char *text,
    size_t len, const unsigned char key_hash[SMARTY_CT_HASH_LEN],
    unsigned char mac[SMARTY_CT_HASH_LEN])
{
    unsigned int   n;
    unsigned char  buf[SMARTY_CT_MAX_LEN + SMARTY_CT_HASH_LEN];

    if (len > SMARTY_CT_MAX_LEN) {
        return -1;
    }

    memcpy(buf, text, len);
    memcpy(buf + len, key_hash, SMARTY_CT_HASH_LEN);

    n = 0;

    if (HMAC(EVP_sha256(), key, (int) key_len, buf, len + SMARTY_CT_HASH_LEN,
             mac, &n)
        == NULL
        || n != SMARTY_CT_HASH_LEN)
    {
        return -1;
    }

    return 0;
}


/* unpadded base64url */

static size_t
smarty_ct_b64_encode(const unsigned char *in, size_t len, char *out)
{
    char      *p;
    size_t     i;
    uint32_t   v;

    p = out;

    for (i = 0; i + 3 <= len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        *p++ = smarty_ct_b64[v >> 18];
        *p++ = smarty_ct_b64[(v >> 12) & 0x3f];
        *p++ = smarty_ct_b64[(v >> 6) & 0x3f];
        *p++ = smarty_ct_b64[v & 0x3f];
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        *p++ = smarty_ct_b64[v >> 18];
        *p++ = smarty_ct_b64[(v >> 12) & 0x3f];

    } else if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        *p++ = smarty_ct_b64[v >> 18];
        *p++ = smarty_ct_b64[(v >> 12) & 0x3f];
        *p++ = smarty_ct_b64[(v >> 6) & 0x3f];
    }

    return p - out;
}


/*
 * Decodes unpadded base64url; refuses any other character, a length of
 * 4n + 1, and bits left over that are not zero (the one canonical
 * spelling only).
 */

static int
smarty_ct_b64_decode(const char *in, size_t len, unsigned char *out,
    size_t size, size_t *out_len)
{
    int        c;
    size_t     i, n;
    uint32_t   acc;
    unsigned   bits;

    if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > size) {
        return -1;
    }

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = smarty_ct_b64_value((unsigned char) in[i]);
        if (c < 0) {
            return -1;
        }

        acc = (acc << 6 | (uint32_t) c) & 0xffffff;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
        }
    }

    if (acc & ((1u << bits) - 1)) {
        return -1;
    }

    *out_len = n;

    return 0;
}


static int
smarty_ct_b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    if (c == '_') {
        return 63;
    }

    return -1;
}


static void
smarty_ct_put64(unsigned char *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char) (v & 0xff);
        v >>= 8;
    }
}


static uint64_t
smarty_ct_get64(const unsigned char *p)
{
    int       i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }

    return v;
}
