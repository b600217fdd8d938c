/*
 * smarty-gateway: the upstream's OAuth token without nginx (see
 * smarty_oauth.h, docs/token.md).
 *
 * The endpoint takes a JSON body ({"client_id", "client_secret",
 * "grant_type": "client_credentials"} or {"client_id", "refresh_token",
 * "grant_type": "refresh_token"}) and answers {"access_token",
 * "refresh_token", "expires_in"}.  A refusal is read in the API's envelope
 * ({"status", "body": {"error", "code"}}) or in RFC 6749's shape
 * ({"error", "error_description"}).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "smarty_oauth.h"


#define SMARTY_OAUTH_NONCE  12
#define SMARTY_OAUTH_TAG    16


typedef struct {
    char    *data;
    size_t   len;
    int      overflow;
} smarty_oauth_buf_t;


static void smarty_oauth_call(const smarty_oauth_request_t *req,
    const char *refresh, smarty_oauth_result_t *res);
static size_t smarty_oauth_write(char *p, size_t size, size_t n, void *data);
static void smarty_oauth_mask(char *text, const char *secret);
static void smarty_oauth_cause(smarty_oauth_result_t *res, long status,
    json_t *root, const char *secret, const char *refresh);
static int smarty_oauth_unhex(const char *s, size_t len, unsigned char *out);
static void smarty_oauth_clear(smarty_oauth_result_t *res, long status);


int
smarty_oauth_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}


void
smarty_oauth_fetch(const smarty_oauth_request_t *req,
    smarty_oauth_result_t *res)
{
    res->refreshed = 0;
    res->refresh_refused = 0;

    if (req->refresh_token && req->refresh_token[0]) {
        smarty_oauth_call(req, req->refresh_token, res);

        if (res->rc == SMARTY_OAUTH_OK) {
            res->refreshed = 1;
            return;
        }

        if (res->rc != SMARTY_OAUTH_REFUSED) {
            return;
        }

        /* a refresh token expired or revoked: the client's credentials */
        res->refresh_refused = 1;
    }

    smarty_oauth_call(req, NULL, res);
}


static void
smarty_oauth_call(const smarty_oauth_request_t *req, const char *refresh,
    smarty_oauth_result_t *res)
{
    char                *body;
    long                 status;
    CURL                *curl;
    CURLcode             rc;
    smarty_oauth_buf_t   buf;
    struct curl_slist   *headers, *h;
    char                 errbuf[CURL_ERROR_SIZE];

    smarty_oauth_clear(res, 0);
    res->rc = SMARTY_OAUTH_FAILED;

    body = smarty_oauth_body(req->client_id, req->client_secret, refresh);
    if (body == NULL) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return;
    }

    buf.data = NULL;
    buf.len = 0;
    buf.overflow = 0;
    headers = NULL;
    errbuf[0] = '\0';

    curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(res->error, sizeof(res->error), "libcurl: no handle");
        goto done;
    }

    h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h == NULL) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        goto done;
    }

    headers = h;

    h = curl_slist_append(headers, "Accept: application/json");
    if (h == NULL) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        goto done;
    }

    headers = h;

    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "smarty-gateway");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, smarty_oauth_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);

    if (req->ca_file && req->ca_file[0]) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, req->ca_file);
    }

    rc = curl_easy_perform(curl);

    if (rc != CURLE_OK) {
        switch (rc) {

        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            res->rc = SMARTY_OAUTH_CONFIG;
            break;

        default:
            res->rc = SMARTY_OAUTH_UNAVAILABLE;
        }

        if (buf.overflow) {
            res->rc = SMARTY_OAUTH_BAD_ANSWER;
            snprintf(res->error, sizeof(res->error),
                     "the answer is larger than %d bytes",
                     SMARTY_OAUTH_ANSWER_MAX);

        } else {
            snprintf(res->error, sizeof(res->error), "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }

        goto done;
    }

    status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

    (void) smarty_oauth_answer(status, buf.data ? buf.data : "", buf.len,
                               req->client_secret, refresh, res);

done:

    if (curl) {
        curl_easy_cleanup(curl);
    }

    curl_slist_free_all(headers);

    smarty_oauth_wipe(body, strlen(body));
    free(body);

    if (buf.data) {
        smarty_oauth_wipe(buf.data, buf.len);
        free(buf.data);
    }
}


static size_t
smarty_oauth_write(char *p, size_t size, size_t n, void *data)
{
    smarty_oauth_buf_t  *buf = data;

    char    *np;
    size_t   len;

    len = size * n;

    if (buf->len + len > SMARTY_OAUTH_ANSWER_MAX) {
        buf->overflow = 1;
        return 0;
    }

    np = realloc(buf->data, buf->len + len + 1);
    if (np == NULL) {
        return 0;
    }

    memcpy(np + buf->len, p, len);
    buf->data = np;
    buf->len += len;
    buf->data[buf->len] = '\0';

    return len;
}


char *
smarty_oauth_body(const char *client_id, const char *client_secret,
    const char *refresh)
{
    char    *text;
    json_t  *o;

    if (refresh) {
        o = json_pack("{s:s,s:s,s:s}", "client_id", client_id,
                      "refresh_token", refresh,
                      "grant_type", "refresh_token");

    } else {
        o = json_pack("{s:s,s:s,s:s}", "client_id", client_id,
                      "client_secret", client_secret,
                      "grant_type", "client_credentials");
    }

    if (o == NULL) {
        return NULL;
    }

    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

    /* jansson's copies of the strings are freed unwiped: short-lived */
    json_decref(o);

    return text;
}


smarty_oauth_rc_e
smarty_oauth_answer(long status, const char *body, size_t len,
    const char *secret, const char *refresh, smarty_oauth_result_t *res)
{
    json_t        *root, *o, *v;
    const char    *access, *rt;
    size_t         alen, rlen;
    json_int_t     exp;
    json_error_t   jerr;

    smarty_oauth_clear(res, status);

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

    if (status < 200 || status > 299) {
        res->rc = (status == 400 || status == 401 || status == 403)
                  ? SMARTY_OAUTH_REFUSED : SMARTY_OAUTH_UNAVAILABLE;
        smarty_oauth_cause(res, status, root, secret, refresh);
        json_decref(root);
        return res->rc;
    }

    res->rc = SMARTY_OAUTH_BAD_ANSWER;

    if (!json_is_object(root)) {
        snprintf(res->error, sizeof(res->error),
                 "HTTP %ld and an answer that is not a JSON object", status);
        json_decref(root);
        return res->rc;
    }

    o = root;

    if (json_object_get(o, "access_token") == NULL
        && json_is_object(json_object_get(o, "body")))
    {
        o = json_object_get(o, "body");
    }

    v = json_object_get(o, "access_token");
    access = json_string_value(v);
    alen = access ? json_string_length(v) : 0;

    if (access == NULL || !smarty_oauth_token_ok(access, alen)) {
        snprintf(res->error, sizeof(res->error),
                 "HTTP %ld and no usable access_token in the answer",
                 status);
        json_decref(root);
        return res->rc;
    }

    v = json_object_get(o, "refresh_token");
    rt = json_string_value(v);
    rlen = rt ? json_string_length(v) : 0;

    if (rt && !smarty_oauth_token_ok(rt, rlen)) {
        /* not one the gateway can send back: do without */
        rt = NULL;
        rlen = 0;
    }

    v = json_object_get(o, "expires_in");

    if (v == NULL || json_is_null(v)) {
        exp = SMARTY_OAUTH_DEFAULT_LIFE;

    } else if (json_is_integer(v)) {
        exp = json_integer_value(v);

    } else if (json_is_string(v)) {
        exp = strtoll(json_string_value(v), NULL, 10);

    } else if (json_is_real(v)) {
        exp = (json_int_t) json_real_value(v);

    } else {
        exp = -1;
    }

    if (exp <= 0 || exp > 366 * 86400) {
        snprintf(res->error, sizeof(res->error),
                 "HTTP %ld and an expires_in that is not a number of "
                 "seconds from 1 to a year", status);
        json_decref(root);
        return res->rc;
    }

    memcpy(res->access, access, alen);
    res->access[alen] = '\0';
    res->access_len = alen;

    if (rt) {
        memcpy(res->refresh, rt, rlen);
        res->refresh[rlen] = '\0';
        res->refresh_len = rlen;
    }

    res->expires_in = (long) exp;
    res->rc = SMARTY_OAUTH_OK;

    json_decref(root);

    return res->rc;
}


/* "HTTP 401 invalid_client: unknown client_id or wrong client_secret" */

static void
smarty_oauth_cause(smarty_oauth_result_t *res, long status, json_t *root,
    const char *secret, const char *refresh)
{
    json_t      *o;
    const char  *code, *text;

    code = NULL;
    text = NULL;

    if (json_is_object(root)) {
        o = json_object_get(root, "body");

        if (json_is_object(o)) {
            code = json_string_value(json_object_get(o, "code"));
            text = json_string_value(json_object_get(o, "error"));

        } else {
            code = json_string_value(json_object_get(root, "error"));
            text = json_string_value(json_object_get(root,
                                                     "error_description"));
            if (text == NULL) {
                text = json_string_value(json_object_get(root, "message"));
            }
        }
    }

    snprintf(res->error, sizeof(res->error), "HTTP %ld%s%.64s%s%.160s",
             status, code ? " " : "", code ? code : "",
             text ? ": " : "", text ? text : "");

    /* never a secret in a log line, even one an endpoint echoes */
    smarty_oauth_mask(res->error, secret);
    smarty_oauth_mask(res->error, refresh);
}


/* a result with no token yet (its rc is the caller's) */

static void
smarty_oauth_clear(smarty_oauth_result_t *res, long status)
{
    res->status = status;
    res->access_len = 0;
    res->refresh_len = 0;
    res->expires_in = 0;
    res->access[0] = '\0';
    res->refresh[0] = '\0';
    res->error[0] = '\0';
}


static void
smarty_oauth_mask(char *text, const char *secret)
{
    char    *p;
    size_t   n;

    if (secret == NULL || secret[0] == '\0') {
        return;
    }

    n = strlen(secret);

    while ((p = strstr(text, secret)) != NULL) {
        memset(p, '*', n);
    }
}


int
smarty_oauth_token_ok(const char *token, size_t len)
{
    size_t  i;

    if (len == 0 || len > SMARTY_OAUTH_TOKEN_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) token[i] <= 0x20
            || (unsigned char) token[i] >= 0x7f)
        {
            return 0;
        }
    }

    return 1;
}


int64_t
smarty_oauth_ahead_ms(int64_t lifetime_ms)
{
    int64_t  ahead;

    if (lifetime_ms <= 0) {
        return 0;
    }

    ahead = lifetime_ms / 20;

    return ahead > 60000 ? 60000 : ahead;
}


int64_t
smarty_oauth_backoff_ms(unsigned n, uint32_t rnd, int64_t cap_ms)
{
    int64_t  ms;

    ms = 500;

    while (n > 1 && ms < cap_ms) {
        ms *= 2;
        n--;
    }

    if (ms > cap_ms) {
        ms = cap_ms;
    }

    /* "equal jitter": between half and all of it */
    return ms - (int64_t) ((uint64_t) (ms / 2) * (rnd % 1024) / 1023);
}


void
smarty_oauth_id(const char *token, size_t len,
    char id[SMARTY_OAUTH_ID_LEN + 1])
{
    static const char  hex[] = "0123456789abcdef";

    size_t         i;
    unsigned char  md[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *) token, len, md);

    for (i = 0; i < SMARTY_OAUTH_ID_LEN / 2; i++) {
        id[2 * i] = hex[md[i] >> 4];
        id[2 * i + 1] = hex[md[i] & 0x0f];
    }

    id[SMARTY_OAUTH_ID_LEN] = '\0';
}


void
smarty_oauth_seal_key(const char *client_id, const char *secret,
    unsigned char key[SMARTY_OAUTH_KEY_LEN])
{
    static const char  label[] = "smarty-gateway token seal v1\n";

    size_t         n, idlen;
    unsigned int   len;
    unsigned char  msg[512];

    idlen = strlen(client_id);
    if (idlen > sizeof(msg) - sizeof(label)) {
        idlen = sizeof(msg) - sizeof(label);
    }

    n = sizeof(label) - 1;
    memcpy(msg, label, n);
    memcpy(msg + n, client_id, idlen);
    n += idlen;

    len = SMARTY_OAUTH_KEY_LEN;

    HMAC(EVP_sha256(), secret, (int) strlen(secret), msg, n, key, &len);
}


size_t
smarty_oauth_seal_len(size_t plain_len)
{
    return 2 * (SMARTY_OAUTH_NONCE + plain_len + SMARTY_OAUTH_TAG);
}


int
smarty_oauth_seal(const unsigned char key[SMARTY_OAUTH_KEY_LEN],
    const char *plain, size_t len, char *out, size_t out_size)
{
    static const char  hex[] = "0123456789abcdef";

    int              n, ok;
    size_t           i, total;
    unsigned char   *raw;
    EVP_CIPHER_CTX  *c;

    total = SMARTY_OAUTH_NONCE + len + SMARTY_OAUTH_TAG;

    if (len > 4 * SMARTY_OAUTH_TOKEN_MAX || out_size < 2 * total + 1) {
        return -1;
    }

    raw = malloc(total);
    if (raw == NULL) {
        return -1;
    }

    c = EVP_CIPHER_CTX_new();
    ok = c != NULL
         && RAND_bytes(raw, SMARTY_OAUTH_NONCE) == 1
         && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, raw) == 1
         && EVP_EncryptUpdate(c, raw + SMARTY_OAUTH_NONCE, &n,
                              (const unsigned char *) plain, (int) len) == 1
         && EVP_EncryptFinal_ex(c, raw + SMARTY_OAUTH_NONCE + n, &n) == 1
         && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SMARTY_OAUTH_TAG,
                                raw + SMARTY_OAUTH_NONCE + len) == 1;

    EVP_CIPHER_CTX_free(c);

    if (ok) {
        for (i = 0; i < total; i++) {
            out[2 * i] = hex[raw[i] >> 4];
            out[2 * i + 1] = hex[raw[i] & 0x0f];
        }

        out[2 * total] = '\0';
    }

    smarty_oauth_wipe(raw, total);
    free(raw);

    return ok ? 0 : -1;
}


int
smarty_oauth_unseal(const unsigned char key[SMARTY_OAUTH_KEY_LEN],
    const char *text, size_t len, char *plain, size_t plain_size,
    size_t *plain_len)
{
    int              n, ok;
    size_t           total, clen;
    unsigned char   *raw;
    EVP_CIPHER_CTX  *c;

    if (len % 2 || len < 2 * (SMARTY_OAUTH_NONCE + SMARTY_OAUTH_TAG)) {
        return -1;
    }

    total = len / 2;
    clen = total - SMARTY_OAUTH_NONCE - SMARTY_OAUTH_TAG;

    if (clen + 1 > plain_size) {
        return -1;
    }

    raw = malloc(total);
    if (raw == NULL) {
        return -1;
    }

    if (smarty_oauth_unhex(text, len, raw) != 0) {
        free(raw);
        return -1;
    }

    c = EVP_CIPHER_CTX_new();
    ok = c != NULL
         && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, raw) == 1
         && EVP_DecryptUpdate(c, (unsigned char *) plain, &n,
                              raw + SMARTY_OAUTH_NONCE, (int) clen) == 1
         && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SMARTY_OAUTH_TAG,
                                raw + SMARTY_OAUTH_NONCE + clen) == 1
         && EVP_DecryptFinal_ex(c, (unsigned char *) plain + n, &n) == 1;

    EVP_CIPHER_CTX_free(c);
    free(raw);

    if (!ok) {
        smarty_oauth_wipe(plain, clen);
        return -1;
    }

    plain[clen] = '\0';
    *plain_len = clen;

    return 0;
}


static int
smarty_oauth_unhex(const char *s, size_t len, unsigned char *out)
{
    int     hi, lo;
    size_t  i;

    for (i = 0; i < len; i += 2) {
        hi = (s[i] >= '0' && s[i] <= '9') ? s[i] - '0'
             : (s[i] >= 'a' && s[i] <= 'f') ? s[i] - 'a' + 10 : -1;
        lo = (s[i + 1] >= '0' && s[i + 1] <= '9') ? s[i + 1] - '0'
             : (s[i + 1] >= 'a' && s[i + 1] <= 'f') ? s[i + 1] - 'a' + 10
             : -1;

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i / 2] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


void
smarty_oauth_wipe(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}
