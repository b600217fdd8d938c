/*
 * smarty-gateway: a fetch of the OAuth token source (see
 * ngx_http_smarty_token_fetch.h, docs/token.md).
 *
 * With Redis (token_sync.lua): the token another instance fetched is
 * taken, or this instance takes the lock and fetches (token_put.lua shares
 * the result and releases the lock), or another instance holds the lock
 * and this worker looks again.  The endpoint is called with libcurl in
 * nginx's thread pool (smarty_oauth.c), the refresh grant first.  The
 * result goes to shared memory for every worker, with the backoff after a
 * failure.
 */

#include "ngx_http_smarty_token_fetch.h"


static void ngx_http_smarty_oauth_waiters_go(ngx_http_smarty_oauth_t *src);
static void ngx_http_smarty_oauth_again(ngx_event_t *ev);
static void ngx_http_smarty_oauth_synced(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_oauth_adopt(ngx_http_smarty_oauth_t *src,
    redisReply *reply);
static ngx_int_t ngx_http_smarty_oauth_unseal(ngx_http_smarty_oauth_t *src,
    const char *text, size_t len, char *access, size_t *alen,
    char *refresh, size_t *rlen);
static void ngx_http_smarty_oauth_post(ngx_http_smarty_oauth_t *src,
    const char *refresh, size_t len);
static void ngx_http_smarty_oauth_thread(void *data, ngx_log_t *log);
static void ngx_http_smarty_oauth_fetched(ngx_event_t *ev);
static void ngx_http_smarty_oauth_store(ngx_http_smarty_oauth_t *src,
    const char *access, size_t alen, const char *refresh, size_t rlen,
    int64_t obtained, int64_t expires, int64_t ahead);
static void ngx_http_smarty_oauth_failed(ngx_http_smarty_oauth_t *src,
    const char *why, ngx_uint_t hopeless);
static void ngx_http_smarty_oauth_put(ngx_http_smarty_oauth_t *src,
    const char *access, size_t alen, const char *refresh, size_t rlen,
    int64_t left, int64_t life);
static void ngx_http_smarty_oauth_put_done(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);


ngx_int_t
ngx_http_smarty_oauth_fetch_init(ngx_http_smarty_oauth_t *src,
    ngx_cycle_t *cycle)
{
    ngx_http_smarty_oauth_job_t  *job;

    src->again.handler = ngx_http_smarty_oauth_again;
    src->again.data = src;
    src->again.log = cycle->log;
    /* a worker that quits need not look at the lock again */
    src->again.cancelable = 1;

    src->task = ngx_thread_task_alloc(cycle->pool,
                                      sizeof(ngx_http_smarty_oauth_job_t));
    if (src->task == NULL) {
        return NGX_ERROR;
    }

    job = src->task->ctx;
    job->src = src;
    job->req.url = (char *) src->url.data;
    job->req.client_id = (char *) src->client_id.data;
    job->req.client_secret = (char *) src->secret.data;
    job->req.refresh_token = job->refresh;
    job->req.ca_file = src->ca_file.len ? (char *) src->ca_file.data : NULL;
    job->req.timeout_ms = src->timeout;
    job->req.connect_timeout_ms = src->connect_timeout;

    src->task->handler = ngx_http_smarty_oauth_thread;
    src->task->event.handler = ngx_http_smarty_oauth_fetched;
    src->task->event.data = src;
    src->task->event.log = cycle->log;

    return NGX_OK;
}


int64_t
ngx_http_smarty_oauth_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/*
 * A fetch ended: the worker's waiting requests look at the token (their
 * poll event, at once but not from inside a request's call).
 */

static void
ngx_http_smarty_oauth_waiters_go(ngx_http_smarty_oauth_t *src)
{
    if (!ngx_queue_empty(&src->waiters) && !src->poll.posted) {
        ngx_post_event(&src->poll, &ngx_posted_events);
    }
}


/*
 * This worker fetches: the token another instance has (Redis), or the
 * right to fetch one; without Redis, or when it fails, its own.
 */

void
ngx_http_smarty_oauth_fetch(ngx_http_smarty_oauth_t *src)
{
    u_char       *p;
    const char   *argv[5];
    size_t        argvlen[5];
    char          ttl[NGX_INT64_LEN];
    ngx_msec_t    life;

    if (src->fetching) {
        return;
    }

    src->fetching = 1;
    src->locked = 0;
    src->lock_since = 0;

    if (!src->shared
        || ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK)
    {
        ngx_http_smarty_oauth_post(src, NULL, 0);
        return;
    }

    src->serial++;
    p = ngx_snprintf(src->owner, sizeof(src->owner), "%V:%P:%ui",
                     &ngx_cycle->hostname, ngx_pid, src->serial);
    src->owner_len = p - src->owner;

    life = 2 * src->timeout + 2000;
    p = ngx_snprintf((u_char *) ttl, sizeof(ttl), "%M", life);

    ngx_shmtx_lock(&src->shpool->mutex);

    argv[2] = (char *) src->sh->refused;
    argvlen[2] = ngx_strlen(src->sh->refused);

    ngx_shmtx_unlock(&src->shpool->mutex);

    argv[0] = (char *) src->key.data;
    argvlen[0] = src->key.len;
    argv[1] = (char *) src->lock.data;
    argvlen[1] = src->lock.len;
    argv[3] = (char *) src->owner;
    argvlen[3] = src->owner_len;
    argv[4] = ttl;
    argvlen[4] = p - (u_char *) ttl;

    /* the arguments are copied before the call returns */
    src->cmd = ngx_http_smarty_redis_script(
                   NGX_HTTP_SMARTY_REDIS_LUA_TOKEN_SYNC, 0,
                   ngx_http_smarty_oauth_synced, src, 2, 5, argv, argvlen);

    if (src->cmd == NULL) {
        ngx_http_smarty_oauth_post(src, NULL, 0);
    }
}


/* another instance held the lock: look again */

static void
ngx_http_smarty_oauth_again(ngx_event_t *ev)
{
    ngx_http_smarty_oauth_t  *src = ev->data;

    src->fetching = 0;

    ngx_shmtx_lock(&src->shpool->mutex);
    src->sh->fetch_deadline = ngx_http_smarty_oauth_now()
                              + 2 * (ngx_msec_int_t) src->timeout + 5000;
    ngx_shmtx_unlock(&src->shpool->mutex);

    ngx_http_smarty_oauth_fetch(src);
}


static void
ngx_http_smarty_oauth_synced(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_oauth_t  *src = data;

    size_t       alen, rlen;
    redisReply  *kind;
    char         access[SMARTY_OAUTH_TOKEN_MAX + 1];
    char         refresh[SMARTY_OAUTH_TOKEN_MAX + 1];

    src->cmd = NULL;

    if (status != NGX_HTTP_SMARTY_REDIS_OK
        || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "smarty: upstream token: Redis did not answer (%s): "
                      "this instance fetches its own",
                      status == NGX_HTTP_SMARTY_REDIS_OK
                      ? "a reply that is not the script's"
                      : ngx_http_smarty_redis_status_text(status));
        ngx_http_smarty_oauth_post(src, NULL, 0);
        return;
    }

    kind = reply->element[0];

    if (kind->len == 5 && ngx_strncmp(kind->str, "token", 5) == 0) {
        if (ngx_http_smarty_oauth_adopt(src, reply) == NGX_OK) {
            return;
        }

        /* a seal of another secret: fetch one, and overwrite it */
        ngx_http_smarty_oauth_post(src, NULL, 0);
        return;
    }

    if (kind->len == 5 && ngx_strncmp(kind->str, "fetch", 5) == 0) {
        src->locked = 1;

        if (reply->element[1]->type == REDIS_REPLY_STRING
            && reply->element[1]->len
            && ngx_http_smarty_oauth_unseal(src, reply->element[1]->str,
                                            reply->element[1]->len, access,
                                            &alen, refresh, &rlen)
               == NGX_OK
            && rlen)
        {
            smarty_oauth_wipe(access, alen);
            ngx_http_smarty_oauth_post(src, refresh, rlen);
            smarty_oauth_wipe(refresh, rlen);
            return;
        }

        ngx_http_smarty_oauth_post(src, NULL, 0);
        return;
    }

    /* "wait": another instance fetches; its lock has a deadline */

    if (src->lock_since == 0) {
        src->lock_since = ngx_http_smarty_oauth_now();

    } else if (ngx_http_smarty_oauth_now() - src->lock_since
               > 2 * (ngx_msec_int_t) src->timeout + 4000)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "smarty: upstream token: another instance holds the "
                      "fetch's lock for too long: this instance fetches "
                      "its own");
        ngx_http_smarty_oauth_post(src, NULL, 0);
        return;
    }

    ngx_add_timer(&src->again, SMARTY_OAUTH_LOCK_POLL);
}


/* the token another instance fetched, taken */

static ngx_int_t
ngx_http_smarty_oauth_adopt(ngx_http_smarty_oauth_t *src, redisReply *reply)
{
    size_t        alen, rlen;
    int64_t       now, left, life, ahead;
    redisReply  **e;
    char          access[SMARTY_OAUTH_TOKEN_MAX + 1];
    char          refresh[SMARTY_OAUTH_TOKEN_MAX + 1];

    e = reply->element;

    if (reply->elements != 5 || e[1]->type != REDIS_REPLY_STRING
        || e[2]->type != REDIS_REPLY_INTEGER
        || e[3]->type != REDIS_REPLY_INTEGER
        || e[4]->type != REDIS_REPLY_INTEGER
        || e[2]->integer <= 0)
    {
        return NGX_ERROR;
    }

    if (ngx_http_smarty_oauth_unseal(src, e[1]->str, e[1]->len, access,
                                     &alen, refresh, &rlen)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "smarty: upstream token: the one in Redis is sealed "
                      "with another client secret: replacing it");
        return NGX_ERROR;
    }

    now = ngx_http_smarty_oauth_now();
    left = e[2]->integer;
    life = ngx_max(e[3]->integer, left);
    ahead = ngx_max(e[4]->integer, 0);

    ngx_shmtx_lock(&src->shpool->mutex);
    src->sh->adopted++;
    ngx_shmtx_unlock(&src->shpool->mutex);

    ngx_http_smarty_oauth_store(src, access, alen, refresh, rlen,
                                now + left - life, now + left, ahead);

    smarty_oauth_wipe(access, alen);
    smarty_oauth_wipe(refresh, rlen);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "smarty: upstream token: taken from another instance, "
                  "valid %L ms more", left);

    return NGX_OK;
}


/* "access\nrefresh", sealed */

static ngx_int_t
ngx_http_smarty_oauth_unseal(ngx_http_smarty_oauth_t *src, const char *text,
    size_t len, char *access, size_t *alen, char *refresh, size_t *rlen)
{
    char    *nl;
    size_t   n;
    char     plain[2 * SMARTY_OAUTH_TOKEN_MAX + 2];

    if (smarty_oauth_unseal(src->seal, text, len, plain, sizeof(plain), &n)
        != 0)
    {
        return NGX_ERROR;
    }

    nl = memchr(plain, '\n', n);

    if (nl == NULL || nl == plain
        || (size_t) (nl - plain) > SMARTY_OAUTH_TOKEN_MAX
        || n - (nl - plain) - 1 > SMARTY_OAUTH_TOKEN_MAX
        || !smarty_oauth_token_ok(plain, nl - plain))
    {
        smarty_oauth_wipe(plain, n);
        return NGX_ERROR;
    }

    *alen = nl - plain;
    ngx_memcpy(access, plain, *alen);
    access[*alen] = '\0';

    *rlen = n - *alen - 1;
    ngx_memcpy(refresh, nl + 1, *rlen);
    refresh[*rlen] = '\0';

    smarty_oauth_wipe(plain, n);

    return NGX_OK;
}


/* the endpoint's call, in the thread pool */

static void
ngx_http_smarty_oauth_post(ngx_http_smarty_oauth_t *src, const char *refresh,
    size_t len)
{
    ngx_http_smarty_oauth_job_t  *job;

    job = src->task->ctx;

    if (src->running) {
        /* a call is under way: its end finishes this fetch */
        return;
    }

    if (refresh == NULL) {
        ngx_shmtx_lock(&src->shpool->mutex);

        len = src->sh->refresh_len;
        ngx_memcpy(job->refresh, src->sh->refresh, len);

        ngx_shmtx_unlock(&src->shpool->mutex);

    } else {
        ngx_memcpy(job->refresh, refresh, len);
    }

    job->refresh[len] = '\0';
    job->started = ngx_http_smarty_oauth_now();

    if (ngx_thread_task_post(src->pool, src->task) != NGX_OK) {
        smarty_oauth_wipe(job->refresh, len);
        ngx_http_smarty_oauth_failed(src, "the thread pool refused the "
                                     "task", 0);
        return;
    }

    src->running = 1;
}


static void
ngx_http_smarty_oauth_thread(void *data, ngx_log_t *log)
{
    ngx_http_smarty_oauth_job_t  *job = data;

    smarty_oauth_fetch(&job->req, &job->res);

    smarty_oauth_wipe(job->refresh, sizeof(job->refresh));
}


/* the call has ended (the task's event, in the worker) */

static void
ngx_http_smarty_oauth_fetched(ngx_event_t *ev)
{
    ngx_http_smarty_oauth_t  *src = ev->data;

    int64_t                       life;
    ngx_http_smarty_oauth_job_t  *job;
    smarty_oauth_result_t        *res;

    src->running = 0;
    job = src->task->ctx;
    res = &job->res;

    if (res->rc != SMARTY_OAUTH_OK) {
        ngx_http_smarty_oauth_failed(src, res->error,
                                     res->rc == SMARTY_OAUTH_REFUSED
                                     || res->rc == SMARTY_OAUTH_CONFIG);

    } else {
        ngx_shmtx_lock(&src->shpool->mutex);
        src->sh->fetches++;
        src->sh->refreshes += res->refreshed;
        ngx_shmtx_unlock(&src->shpool->mutex);

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "smarty: upstream token: a new one from %V (%s), "
                      "valid %l s",
                      &src->url,
                      res->refreshed ? "refresh grant"
                      : res->refresh_refused
                        ? "client credentials, the refresh token refused"
                        : "client credentials",
                      res->expires_in);

        life = (int64_t) res->expires_in * 1000;

        ngx_http_smarty_oauth_store(src, res->access, res->access_len,
                                    res->refresh, res->refresh_len,
                                    job->started, job->started + life,
                                    smarty_oauth_ahead_ms(life));

        if (src->shared
            && ngx_http_smarty_redis_state() == NGX_HTTP_SMARTY_REDIS_OK)
        {
            ngx_http_smarty_oauth_put(src, res->access, res->access_len,
                                      res->refresh, res->refresh_len,
                                      job->started + life
                                      - ngx_http_smarty_oauth_now(),
                                      life);
        }
    }

    smarty_oauth_wipe(res->access, res->access_len);
    smarty_oauth_wipe(res->refresh, res->refresh_len);

    src->fetching = 0;
    src->locked = 0;
}


/* a new token for every worker; the waiters go on */

static void
ngx_http_smarty_oauth_store(ngx_http_smarty_oauth_t *src, const char *access,
    size_t alen, const char *refresh, size_t rlen, int64_t obtained,
    int64_t expires, int64_t ahead)
{
    u_char                      *p;
    ngx_http_smarty_oauth_sh_t  *sh = src->sh;

    ngx_shmtx_lock(&src->shpool->mutex);

    ngx_memcpy(sh->access, access, alen);
    sh->access_len = alen;

    p = (u_char *) ngx_escape_uri(sh->escaped, (u_char *) access, alen,
                                  NGX_ESCAPE_ARGS);
    sh->escaped_len = p - sh->escaped;

    if (rlen) {
        ngx_memcpy(sh->refresh, refresh, rlen);
        sh->refresh_len = rlen;
    }

    sh->version++;
    sh->obtained = obtained;
    sh->expires = expires;
    sh->refresh_at = expires - ahead;
    sh->refused[0] = '\0';
    sh->failing = 0;
    sh->hopeless = 0;
    sh->next_try = 0;

    if (sh->fetcher == ngx_pid) {
        sh->fetcher = 0;
    }

    ngx_shmtx_unlock(&src->shpool->mutex);

    src->fetching = 0;

    ngx_http_smarty_oauth_waiters_go(src);
}


static void
ngx_http_smarty_oauth_failed(ngx_http_smarty_oauth_t *src, const char *why,
    ngx_uint_t hopeless)
{
    int64_t                      now, wait;
    ngx_uint_t                   have;
    ngx_http_smarty_oauth_sh_t  *sh = src->sh;

    now = ngx_http_smarty_oauth_now();

    ngx_shmtx_lock(&src->shpool->mutex);

    have = (sh->expires > now);

    sh->failures++;
    sh->failing++;
    wait = smarty_oauth_backoff_ms(sh->failing, (uint32_t) ngx_random(),
                                   have ? SMARTY_OAUTH_CAP_VALID
                                        : SMARTY_OAUTH_CAP_NONE);

    if (have && now + wait > sh->expires) {
        /* try once more before the token in hand expires */
        wait = (sh->expires - now) / 2;
    }

    sh->next_try = now + wait;
    sh->hopeless = hopeless;
    ngx_cpystrn(sh->error, (u_char *) why, SMARTY_OAUTH_ERROR_MAX);

    if (sh->fetcher == ngx_pid) {
        sh->fetcher = 0;
    }

    ngx_shmtx_unlock(&src->shpool->mutex);

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "smarty: upstream token: the token endpoint %V failed: "
                  "%s%s; %s, next try in %L ms", &src->url, why,
                  hopeless
                  ? (ngx_strstr(why, "HTTP ")
                     ? " (the client's credentials refused: check "
                       "smarty_upstream_oauth's client_id_file and "
                       "client_secret_file)"
                     : " (check smarty_upstream_oauth's URL and ca_file)")
                  : "",
                  have ? "the current token serves until it expires"
                       : "requests get 502 upstream_auth_failed",
                  wait);

    if (src->locked) {
        /* the other instances need not wait for the lock's deadline */
        ngx_http_smarty_oauth_put(src, NULL, 0, NULL, 0, 0, 0);
    }

    src->fetching = 0;
    src->locked = 0;

    ngx_http_smarty_oauth_waiters_go(src);
}


/* for the other instances: the token, or only the lock released */

static void
ngx_http_smarty_oauth_put(ngx_http_smarty_oauth_t *src, const char *access,
    size_t alen, const char *refresh, size_t rlen, int64_t left,
    int64_t life)
{
    u_char                       *p, *plain, *seal;
    size_t                        slen;
    const char                   *argv[9];
    size_t                        argvlen[9];
    char                          id[SMARTY_OAUTH_ID_LEN + 1];
    char                          ms[NGX_INT64_LEN], lf[NGX_INT64_LEN];
    char                          ahead[NGX_INT64_LEN];
    ngx_http_smarty_redis_cmd_t  *cmd;

    argv[0] = (char *) src->key.data;
    argvlen[0] = src->key.len;
    argv[1] = (char *) src->lock.data;
    argvlen[1] = src->lock.len;
    argv[2] = (char *) src->owner;
    argvlen[2] = src->owner_len;

    plain = NULL;
    seal = NULL;

    if (access == NULL || left <= 0) {
        argv[3] = argv[4] = argv[5] = argv[6] = argv[7] = "";
        argvlen[3] = argvlen[4] = argvlen[5] = argvlen[6] = argvlen[7] = 0;

    } else {
        plain = ngx_alloc(alen + 1 + rlen, ngx_cycle->log);
        slen = smarty_oauth_seal_len(alen + 1 + rlen) + 1;
        seal = ngx_alloc(slen, ngx_cycle->log);

        if (plain == NULL || seal == NULL) {
            goto failed;
        }

        p = ngx_cpymem(plain, access, alen);
        *p++ = '\n';
        p = ngx_cpymem(p, refresh, rlen);

        if (smarty_oauth_seal(src->seal, (char *) plain, p - plain,
                              (char *) seal, slen)
            != 0)
        {
            smarty_oauth_wipe(plain, p - plain);
            goto failed;
        }

        smarty_oauth_wipe(plain, p - plain);
        smarty_oauth_id(access, alen, id);

        p = ngx_snprintf((u_char *) ms, sizeof(ms), "%L", left);
        argv[3] = ms;
        argvlen[3] = p - (u_char *) ms;

        p = ngx_snprintf((u_char *) lf, sizeof(lf), "%L", life);
        argv[4] = lf;
        argvlen[4] = p - (u_char *) lf;

        p = ngx_snprintf((u_char *) ahead, sizeof(ahead), "%L",
                         smarty_oauth_ahead_ms(life));
        argv[5] = ahead;
        argvlen[5] = p - (u_char *) ahead;

        argv[6] = id;
        argvlen[6] = SMARTY_OAUTH_ID_LEN;
        argv[7] = (char *) seal;
        argvlen[7] = slen - 1;
    }

    argv[8] = SMARTY_OAUTH_KEEP_TEXT;
    argvlen[8] = sizeof(SMARTY_OAUTH_KEEP_TEXT) - 1;

    cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_TOKEN_PUT,
                                       0, ngx_http_smarty_oauth_put_done,
                                       src, 2, 9, argv, argvlen);

    /* fire and forget: the handler only logs; the source lives on */
    (void) cmd;

failed:

    if (plain) {
        ngx_free(plain);
    }

    if (seal) {
        ngx_free(seal);
    }
}


static void
ngx_http_smarty_oauth_put_done(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    if (status != NGX_HTTP_SMARTY_REDIS_OK
        || reply->type == REDIS_REPLY_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "smarty: upstream token: not shared through Redis "
                      "(%s): the other instances fetch their own",
                      status == NGX_HTTP_SMARTY_REDIS_OK
                      ? "a script error"
                      : ngx_http_smarty_redis_status_text(status));
    }
}
