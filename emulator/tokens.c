/*
 * smarty-emulator: POST /auth/oauth/v1/token, the OAuth 2.0 endpoint.
 *
 *   {"client_id","client_secret","grant_type":"client_credentials"}
 *   {"client_id","refresh_token","grant_type":"refresh_token"}
 *     -> {"access_token","refresh_token","expires_in"}
 *
 * One project (--client-id, --client-secret).  An access token lives
 * --token-lifetime seconds, a refresh token --refresh-lifetime seconds; at
 * most --max-tokens of each are active at once (429 too_many_tokens
 * beyond).  A refresh revokes the pair it came with and issues a new one.
 * Tokens are 32 random bytes (RAND_bytes) in hex; none is ever logged.
 * Faults of its own: a hang, a latency, a 503 (token_hang, token_latency_ms,
 * token_fail).
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "emu.h"


typedef struct {
    char         access[65];
    char         refresh[65];
    int64_t      access_exp;      /* ms, monotonic */
    int64_t      refresh_exp;
    int          access_live;
    int          refresh_live;
} emu_grant_t;


static pthread_mutex_t    emu_tokens_lock = PTHREAD_MUTEX_INITIALIZER;
static emu_grant_t       *emu_grants;
static size_t             emu_ngrants;
static size_t             emu_grants_alloc;
static emu_token_stats_t  emu_tstats;   /* active: counted when asked */


static int
emu_token_eq(const char *a, const char *b)
{
    size_t  n;

    n = strlen(a);

    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}


/* drops what has expired or been revoked; the lock is held */
static void
emu_grants_prune(int64_t now)
{
    size_t        i, k;
    emu_grant_t  *g;

    for (i = 0, k = 0; i < emu_ngrants; i++) {
        g = &emu_grants[i];

        if (g->access_exp <= now) {
            g->access_live = 0;
        }

        if (g->refresh_exp <= now) {
            g->refresh_live = 0;
        }

        if (g->access_live || g->refresh_live) {
            emu_grants[k++] = *g;
        }
    }

    emu_ngrants = k;
}


static void
emu_grants_count(size_t *access, size_t *refresh)
{
    size_t  i;

    *access = 0;
    *refresh = 0;

    for (i = 0; i < emu_ngrants; i++) {
        *access += emu_grants[i].access_live;
        *refresh += emu_grants[i].refresh_live;
    }
}


static int
emu_random_token(char out[65])
{
    unsigned char  b[32];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return -1;
    }

    emu_hex(b, sizeof(b), out);

    return 0;
}


/* a new pair; the lock is held */
static emu_grant_t *
emu_grant_new(int64_t now)
{
    emu_grant_t  *g;
    size_t        n, access, refresh;

    if (emu_ngrants == emu_grants_alloc) {
        n = emu_grants_alloc ? 2 * emu_grants_alloc : 32;
        g = realloc(emu_grants, n * sizeof(emu_grant_t));
        if (g == NULL) {
            return NULL;
        }

        emu_grants = g;
        emu_grants_alloc = n;
    }

    g = &emu_grants[emu_ngrants];

    if (emu_random_token(g->access) != 0
        || emu_random_token(g->refresh) != 0)
    {
        return NULL;
    }

    g->access_exp = now + emu_conf.token_lifetime * 1000;
    g->refresh_exp = now + emu_conf.refresh_lifetime * 1000;
    g->access_live = 1;
    g->refresh_live = 1;
    emu_ngrants++;

    emu_grants_count(&access, &refresh);

    emu_tstats.issued++;

    if ((json_int_t) access > emu_tstats.max_active) {
        emu_tstats.max_active = access;
    }

    return g;
}


int
emu_token_valid(const char *token)
{
    size_t   i;
    int64_t  now;
    int      ok;

    for (i = 0; i < EMU_SERVICE_TOKENS; i++) {
        if (emu_conf.tokens[i] && emu_token_eq(emu_conf.tokens[i], token)) {
            return 1;
        }
    }

    now = emu_now_ms();
    ok = 0;

    pthread_mutex_lock(&emu_tokens_lock);

    for (i = 0; i < emu_ngrants; i++) {
        if (emu_grants[i].access_live && emu_grants[i].access_exp > now
            && emu_token_eq(emu_grants[i].access, token))
        {
            ok = 1;
            break;
        }
    }

    pthread_mutex_unlock(&emu_tokens_lock);

    return ok;
}


void
emu_tokens_stats(emu_token_stats_t *ts)
{
    size_t  access, refresh;

    pthread_mutex_lock(&emu_tokens_lock);

    emu_grants_prune(emu_now_ms());
    emu_grants_count(&access, &refresh);

    *ts = emu_tstats;
    ts->active = access;

    pthread_mutex_unlock(&emu_tokens_lock);
}


/* zero, but the highest number active starts from the number active now */
void
emu_tokens_stats_reset(void)
{
    size_t  access, refresh;

    pthread_mutex_lock(&emu_tokens_lock);

    emu_grants_prune(emu_now_ms());
    emu_grants_count(&access, &refresh);

    memset(&emu_tstats, 0, sizeof(emu_token_stats_t));
    emu_tstats.max_active = access;

    pthread_mutex_unlock(&emu_tokens_lock);
}


/* revokes every issued token; returns how many were active */
size_t
emu_tokens_revoke(void)
{
    size_t  access, refresh;

    pthread_mutex_lock(&emu_tokens_lock);

    emu_grants_prune(emu_now_ms());
    emu_grants_count(&access, &refresh);
    emu_ngrants = 0;

    pthread_mutex_unlock(&emu_tokens_lock);

    return access + refresh;
}


static const char *
emu_field(json_t *req, const char *name)
{
    return json_string_value(json_object_get(req, name));
}


/* the grant, or NULL with err set; the lock is held */
static emu_grant_t *
emu_grant(json_t *req, emu_err_t *err)
{
    const char   *grant, *id, *secret, *refresh;
    emu_grant_t  *g, *old;
    size_t        i, access, refreshes;
    int64_t       now;

    grant = emu_field(req, "grant_type");
    id = emu_field(req, "client_id");

    if (grant == NULL || id == NULL) {
        emu_err_set(err, 400, "invalid_request",
                    "client_id and grant_type are required");
        return NULL;
    }

    now = emu_now_ms();
    emu_grants_prune(now);
    emu_grants_count(&access, &refreshes);

    if (strcmp(grant, "client_credentials") == 0) {
        secret = emu_field(req, "client_secret");

        if (secret == NULL) {
            emu_err_set(err, 400, "invalid_request",
                        "client_secret is required");
            return NULL;
        }

        if (!emu_token_eq(id, emu_conf.client_id)
            || !emu_token_eq(secret, emu_conf.client_secret))
        {
            emu_err_set(err, 401, "invalid_client",
                        "unknown client_id or wrong client_secret");
            return NULL;
        }

        if (access >= (size_t) emu_conf.max_tokens
            || refreshes >= (size_t) emu_conf.max_tokens)
        {
            emu_err_set(err, 429, "too_many_tokens",
                        "the project already has %ld active access or "
                        "refresh tokens", emu_conf.max_tokens);
            return NULL;
        }

    } else if (strcmp(grant, "refresh_token") == 0) {
        refresh = emu_field(req, "refresh_token");

        if (refresh == NULL) {
            emu_err_set(err, 400, "invalid_request",
                        "refresh_token is required");
            return NULL;
        }

        if (!emu_token_eq(id, emu_conf.client_id)) {
            emu_err_set(err, 401, "invalid_client", "unknown client_id");
            return NULL;
        }

        old = NULL;

        for (i = 0; i < emu_ngrants; i++) {
            if (emu_grants[i].refresh_live
                && emu_token_eq(emu_grants[i].refresh, refresh))
            {
                old = &emu_grants[i];
                break;
            }
        }

        if (old == NULL) {
            emu_err_set(err, 400, "invalid_grant",
                        "the refresh_token is not valid or has expired");
            return NULL;
        }

        if (access - old->access_live >= (size_t) emu_conf.max_tokens) {
            emu_err_set(err, 429, "too_many_tokens",
                        "the project already has %ld active access tokens",
                        emu_conf.max_tokens);
            return NULL;
        }

        old->access_live = 0;
        old->refresh_live = 0;

    } else {
        emu_err_set(err, 400, "unsupported_grant_type",
                    "grant_type must be client_credentials or "
                    "refresh_token");
        return NULL;
    }

    g = emu_grant_new(now);
    if (g == NULL) {
        emu_err_set(err, 500, "internal_error", "cannot make a token");

    } else if (strcmp(grant, "refresh_token") == 0) {
        emu_tstats.refreshed++;
    }

    return g;
}


/* a refused token request: counted, answered */
static enum MHD_Result
emu_tokens_refuse(struct MHD_Connection *c, emu_req_t *r,
    const emu_err_t *err)
{
    pthread_mutex_lock(&emu_tokens_lock);
    emu_tstats.refused++;
    pthread_mutex_unlock(&emu_tokens_lock);

    return emu_send_error(c, r, err);
}


enum MHD_Result
emu_tokens_handle(struct MHD_Connection *c, emu_req_t *r)
{
    json_t        *req, *answer;
    emu_grant_t   *g;
    emu_err_t      err;
    json_error_t   jerr;
    emu_knobs_t    knobs;

    if (strcmp(r->method, MHD_HTTP_METHOD_POST) != 0) {
        emu_err_set(&err, 405, "method_not_allowed",
                    "the token endpoint takes POST requests only");
        return emu_tokens_refuse(c, r, &err);
    }

    emu_knobs_get(&knobs);

    if (emu_chance(knobs.token_hang)) {
        emu_stats_fault("token_hang");
        emu_log("%s %s hangs (injected)", r->method, r->path);
        emu_wait(c, emu_conf.hang_max_s * 1000);
        emu_log("%s %s hang over after %ld ms", r->method, r->path,
                (long) (emu_now_ms() - r->start_ms));
        return MHD_NO;
    }

    if (emu_wait(c, knobs.token_latency_ms) != 0) {
        emu_log("%s %s: the client left during the latency", r->method,
                r->path);
        return MHD_NO;
    }

    if (emu_chance(knobs.token_fail)) {
        emu_stats_fault("token_fail");
        emu_err_set(&err, 503, "service_unavailable",
                    "the token service is unavailable (injected)");
        return emu_tokens_refuse(c, r, &err);
    }

    if (r->body_overflow) {
        emu_err_set(&err, 413, "body_too_large",
                    "the request body is too large");
        return emu_tokens_refuse(c, r, &err);
    }

    req = json_loadb((const char *) (r->body ? r->body
                                             : (unsigned char *) ""),
                     r->body_stored, 0, &jerr);

    if (!json_is_object(req)) {
        json_decref(req);
        emu_err_set(&err, 400, "invalid_request",
                    "the body must be a JSON object");
        return emu_tokens_refuse(c, r, &err);
    }

    pthread_mutex_lock(&emu_tokens_lock);

    g = emu_grant(req, &err);
    answer = NULL;

    if (g != NULL) {
        answer = json_pack("{s:s,s:s,s:I}", "access_token", g->access,
                           "refresh_token", g->refresh,
                           "expires_in", (json_int_t) emu_conf.token_lifetime);
    }

    pthread_mutex_unlock(&emu_tokens_lock);

    json_decref(req);

    if (answer == NULL) {
        return emu_tokens_refuse(c, r, &err);
    }

    return emu_send_json(c, r, 200, answer);
}
