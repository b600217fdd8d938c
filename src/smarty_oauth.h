/*
 * smarty-gateway: the upstream's OAuth token, the parts that need no nginx
 * (docs/token.md): the token endpoint's request and answer, one blocking
 * call to it with libcurl (nginx runs it in a thread pool), the seal of a
 * token kept in Redis for the other instances, and the arithmetic of
 * refreshing ahead and backing off.  Plain C, no nginx types.
 */

#ifndef SMARTY_OAUTH_H
#define SMARTY_OAUTH_H

#include <stddef.h>
#include <stdint.h>


#define SMARTY_OAUTH_TOKEN_MAX    4096  /* an access or a refresh token */
#define SMARTY_OAUTH_ERROR_MAX    256   /* the cause of a failure */
#define SMARTY_OAUTH_ANSWER_MAX   65536 /* the endpoint's answer, read */
#define SMARTY_OAUTH_KEY_LEN      32    /* the seal's key */
#define SMARTY_OAUTH_ID_LEN       16    /* a token's id: hex of its SHA-256 */

/* an access token's life when the answer gives none: the API's hour */
#define SMARTY_OAUTH_DEFAULT_LIFE 3600


typedef enum {
    SMARTY_OAUTH_OK = 0,
    SMARTY_OAUTH_REFUSED,       /* the endpoint said no: 400, 401, 403 */
    SMARTY_OAUTH_UNAVAILABLE,   /* no answer, 408, 429, 5xx: try later */
    SMARTY_OAUTH_BAD_ANSWER,    /* an answer that holds no token */
    SMARTY_OAUTH_FAILED,        /* nothing sent: memory, libcurl */
    SMARTY_OAUTH_CONFIG         /* nothing will work until the
                                   configuration changes: the endpoint's
                                   certificate not verified, a bad URL */
} smarty_oauth_rc_e;


typedef struct {
    const char  *url;
    const char  *client_id;
    const char  *client_secret;
    const char  *refresh_token;     /* NULL or "": client credentials */
    const char  *ca_file;           /* NULL: libcurl's own */
    long         timeout_ms;        /* the whole call, each grant */
    long         connect_timeout_ms;
} smarty_oauth_request_t;


typedef struct {
    smarty_oauth_rc_e  rc;
    long               status;              /* HTTP; 0: no answer */
    long               expires_in;          /* seconds */
    size_t             access_len;
    size_t             refresh_len;
    unsigned           refreshed:1;         /* the refresh grant gave it */
    unsigned           refresh_refused:1;   /* it was tried and refused */
    char               access[SMARTY_OAUTH_TOKEN_MAX + 1];
    char               refresh[SMARTY_OAUTH_TOKEN_MAX + 1];
    char               error[SMARTY_OAUTH_ERROR_MAX];   /* never a secret */
} smarty_oauth_result_t;


/* once per process, before any thread calls smarty_oauth_fetch() */
int smarty_oauth_global_init(void);

/*
 * A token from the endpoint, blocking for at most the timeouts: with a
 * refresh token, the refresh grant first and, when the endpoint refuses
 * it, client credentials.  res->rc says how it went, res->error why not.
 */
void smarty_oauth_fetch(const smarty_oauth_request_t *req,
    smarty_oauth_result_t *res);

/*
 * The endpoint's JSON body for a grant: client credentials when refresh
 * is NULL, else the refresh grant.  Returns a malloc()ed string (wipe and
 * free it: it holds a secret) or NULL.
 */
char *smarty_oauth_body(const char *client_id, const char *client_secret,
    const char *refresh);

/*
 * Reads the endpoint's answer of HTTP status, into res (rc, the tokens,
 * expires_in, or the cause: the endpoint's error code and description,
 * where any occurrence of the secrets given is masked).  Accepts the
 * token at the top level or in the API's envelope ("body").
 */
smarty_oauth_rc_e smarty_oauth_answer(long status, const char *body,
    size_t len, const char *secret, const char *refresh,
    smarty_oauth_result_t *res);

/* whether a token is one the gateway can send: 1..MAX printable bytes */
int smarty_oauth_token_ok(const char *token, size_t len);

/*
 * How long before its expiry a token of that lifetime is replaced: a
 * twentieth of it, at most a minute; never less than 0.  Milliseconds.
 */
int64_t smarty_oauth_ahead_ms(int64_t lifetime_ms);

/*
 * The wait after the n-th failure in a row (n >= 1): from 500 ms,
 * doubling, at most cap_ms, and a random part (rnd, any 32 bits) taking
 * it down by up to half, so that workers and instances spread out.
 */
int64_t smarty_oauth_backoff_ms(unsigned n, uint32_t rnd, int64_t cap_ms);

/* a token's id: the first hex digits of its SHA-256, NUL-terminated */
void smarty_oauth_id(const char *token, size_t len,
    char id[SMARTY_OAUTH_ID_LEN + 1]);

/*
 * The seal of the tokens kept in Redis: AES-256-GCM under a key derived
 * from the client's secret (every instance has it; Redis alone does not).
 * seal: plain -> hex text (2 * (12 + len + 16) bytes + NUL in out);
 * unseal: the reverse, 0 on success, -1 when the text is not a seal of
 * this key (a changed secret, a corrupted value).
 */
void smarty_oauth_seal_key(const char *client_id, const char *secret,
    unsigned char key[SMARTY_OAUTH_KEY_LEN]);
size_t smarty_oauth_seal_len(size_t plain_len);
int smarty_oauth_seal(const unsigned char key[SMARTY_OAUTH_KEY_LEN],
    const char *plain, size_t len, char *out, size_t out_size);
int smarty_oauth_unseal(const unsigned char key[SMARTY_OAUTH_KEY_LEN],
    const char *text, size_t len, char *plain, size_t plain_size,
    size_t *plain_len);

/* wipes a secret, in a way the compiler keeps */
void smarty_oauth_wipe(void *p, size_t len);

#endif /* SMARTY_OAUTH_H */
