/*
 * smarty-gateway: the OAuth token source, ngx_http_smarty_token_oauth_module
 * and its directive smarty_upstream_oauth (docs/token.md).
 *
 * The gateway obtains the upstream's token itself and keeps one for the
 * whole instance, in shared memory, so that every worker sends the same
 * one; with smarty_redis, one for every instance, in Redis.  A request
 * that needs a token while there is none waits, bounded, in its worker's
 * queue; a token is replaced ahead of its expiry, and at once when the
 * upstream refuses it.  The fetch itself (Redis, libcurl in nginx's thread
 * pool) is ngx_http_smarty_token_fetch.c's.
 */

#include "ngx_http_smarty_token_fetch.h"
#include "ngx_http_smarty_secret.h"


/* a request that waits for a token */

typedef struct {
    ngx_queue_t                      queue;
    ngx_http_request_t              *request;
    ngx_http_smarty_oauth_t         *src;
    ngx_http_smarty_next_pt          next;
    ngx_msec_t                       deadline;
    unsigned                         queued:1;
    unsigned                         woken:1;
    unsigned                         timed_out:1;
} ngx_http_smarty_oauth_waiter_t;


typedef struct {
    ngx_array_t                      sources;    /* ngx_http_smarty_oauth_t * */
} ngx_http_smarty_oauth_main_conf_t;


static ngx_int_t ngx_http_smarty_oauth_get(
    ngx_http_smarty_token_source_t *source, ngx_http_request_t *r,
    ngx_str_t *token, ngx_http_smarty_next_pt next);
static ngx_int_t ngx_http_smarty_oauth_rejected(
    ngx_http_smarty_token_source_t *source, ngx_http_request_t *r,
    ngx_str_t *token);
static void ngx_http_smarty_oauth_cancel(
    ngx_http_smarty_token_source_t *source, ngx_http_request_t *r);
static void ngx_http_smarty_oauth_stats(
    ngx_http_smarty_token_source_t *source,
    ngx_http_smarty_token_stats_t *st);

static ngx_int_t ngx_http_smarty_oauth_claim(ngx_http_smarty_oauth_t *src,
    int64_t now);
static ngx_int_t ngx_http_smarty_oauth_wait(ngx_http_smarty_oauth_t *src,
    ngx_http_request_t *r, ngx_http_smarty_next_pt next);
static void ngx_http_smarty_oauth_waiter_cleanup(void *data);
static void ngx_http_smarty_oauth_poll(ngx_event_t *ev);
static void ngx_http_smarty_oauth_wake(ngx_http_smarty_oauth_t *src);

static char *ngx_http_smarty_oauth_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_oauth_read(ngx_conf_t *cf, ngx_str_t *path,
    const char *what, size_t max, ngx_str_t *out);
static ngx_int_t ngx_http_smarty_oauth_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void *ngx_http_smarty_oauth_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_smarty_oauth_init_process(ngx_cycle_t *cycle);
static void ngx_http_smarty_oauth_exit_process(ngx_cycle_t *cycle);


static const ngx_http_smarty_token_ops_t  ngx_http_smarty_oauth_ops = {
    ngx_http_smarty_oauth_get,
    ngx_http_smarty_oauth_rejected,
    ngx_http_smarty_oauth_cancel,
    ngx_http_smarty_oauth_stats
};


static ngx_command_t  ngx_http_smarty_oauth_commands[] = {

    { ngx_string("smarty_upstream_oauth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_smarty_oauth_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_token_oauth_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_oauth_create_main_conf,
                                           /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_token_oauth_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_token_oauth_module_ctx,  /* module context */
    ngx_http_smarty_oauth_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_smarty_oauth_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_smarty_oauth_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* --- the source's interface ----------------------------------------------- */


static ngx_int_t
ngx_http_smarty_oauth_get(ngx_http_smarty_token_source_t *source,
    ngx_http_request_t *r, ngx_str_t *token, ngx_http_smarty_next_pt next)
{
    ngx_http_smarty_oauth_t  *src = source->data;

    int64_t                          now;
    ngx_int_t                        rc;
    ngx_uint_t                       woken;
    ngx_http_smarty_oauth_sh_t      *sh;
    ngx_http_smarty_oauth_waiter_t  *w;

    if (src->task == NULL) {
        /*
         * this process did not start with this configuration: nginx's
         * single-process mode (master_process off) after a reload, which
         * starts neither thread pools nor modules' processes
         */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "smarty: no upstream token: smarty_upstream_oauth "
                      "needs a worker started with this configuration "
                      "(master_process on, or a restart)");
        return NGX_DECLINED;
    }

    sh = src->sh;
    now = ngx_http_smarty_oauth_now();

    /* back from a wait (a retry after a 401 may wait again) */
    w = ngx_http_get_module_ctx(r, ngx_http_smarty_token_oauth_module);
    woken = (w && w->woken);

    if (w) {
        w->woken = 0;
    }

    ngx_shmtx_lock(&src->shpool->mutex);

    if (sh->expires > now) {
        token->len = sh->escaped_len;
        token->data = ngx_pnalloc(r->pool, sh->escaped_len);

        if (token->data) {
            ngx_memcpy(token->data, sh->escaped, sh->escaped_len);
        }

        /* due: replaced in the background while this one still serves */
        rc = (now >= sh->refresh_at)
             ? ngx_http_smarty_oauth_claim(src, now) : NGX_DECLINED;

        ngx_shmtx_unlock(&src->shpool->mutex);

        if (rc == NGX_OK) {
            ngx_http_smarty_oauth_fetch(src);
        }

        return token->data ? NGX_OK : NGX_ERROR;
    }

    if (woken) {
        /* it waited, and there is still none */
        ngx_shmtx_unlock(&src->shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "smarty: no upstream token %s (%s)",
                      w->timed_out ? "within smarty_upstream_oauth's wait"
                                   : "before the token endpoint's next try",
                      sh->error[0] ? (char *) sh->error : "no error");
        return NGX_DECLINED;
    }

    rc = ngx_http_smarty_oauth_claim(src, now);

    if (rc == NGX_BUSY
        && (sh->hopeless || sh->next_try - now > (int64_t) src->wait))
    {
        /* the endpoint failed lately: no use waiting */
        ngx_shmtx_unlock(&src->shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "smarty: no upstream token: the token endpoint "
                      "failed (%s), next try in %L ms",
                      sh->error, sh->next_try - now);
        return NGX_DECLINED;
    }

    sh->waits++;

    ngx_shmtx_unlock(&src->shpool->mutex);

    if (rc == NGX_OK) {
        ngx_http_smarty_oauth_fetch(src);
    }

    return ngx_http_smarty_oauth_wait(src, r, next);
}


/*
 * The fetch is this worker's to do, under the shared lock: NGX_OK (taken),
 * NGX_DECLINED (another worker fetches), NGX_BUSY (the backoff is not
 * over).  A fetcher that did not finish by its deadline (a worker gone) is
 * taken over.
 */

static ngx_int_t
ngx_http_smarty_oauth_claim(ngx_http_smarty_oauth_t *src, int64_t now)
{
    ngx_http_smarty_oauth_sh_t  *sh = src->sh;

    if (sh->fetcher && now < sh->fetch_deadline) {
        return NGX_DECLINED;
    }

    if (now < sh->next_try) {
        return NGX_BUSY;
    }

    sh->fetcher = ngx_pid;
    sh->fetch_deadline = now + 2 * (ngx_msec_int_t) src->timeout
                         + 2 * (ngx_msec_int_t) src->wait + 5000;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_oauth_rejected(ngx_http_smarty_token_source_t *source,
    ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_http_smarty_oauth_t  *src = source->data;

    int64_t                      now, age;
    ngx_http_smarty_oauth_sh_t  *sh;

    sh = src->sh;
    now = ngx_http_smarty_oauth_now();

    ngx_shmtx_lock(&src->shpool->mutex);

    if (sh->expires == 0
        || token->len != sh->escaped_len
        || ngx_memcmp(token->data, sh->escaped, token->len) != 0)
    {
        /* already replaced: the next one is worth a try */
        ngx_shmtx_unlock(&src->shpool->mutex);
        return NGX_OK;
    }

    age = now - sh->obtained;

    sh->rejected++;
    sh->expires = 0;
    smarty_oauth_id((char *) sh->access, sh->access_len,
                    (char *) sh->refused);

    if (age < SMARTY_OAUTH_FRESH) {
        /* a new token refused: the account, not the token; back off */
        sh->failing++;
        sh->next_try = now + smarty_oauth_backoff_ms(sh->failing,
                                                      (uint32_t) ngx_random(),
                                                      SMARTY_OAUTH_CAP_NONE);
        ngx_cpystrn(sh->error, (u_char *) "the upstream refused a new token",
                    SMARTY_OAUTH_ERROR_MAX);
    }

    ngx_shmtx_unlock(&src->shpool->mutex);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "smarty: the upstream refused the gateway's token "
                  "(obtained %L ms ago): fetching a new one%s", age,
                  age < SMARTY_OAUTH_FRESH
                  ? "; a token that new refused: check "
                    "smarty_upstream_provider and the account" : "");

    return NGX_OK;
}


static void
ngx_http_smarty_oauth_cancel(ngx_http_smarty_token_source_t *source,
    ngx_http_request_t *r)
{
    ngx_http_smarty_oauth_waiter_t  *w;

    w = ngx_http_get_module_ctx(r, ngx_http_smarty_token_oauth_module);

    if (w && w->queued) {
        ngx_queue_remove(&w->queue);
        w->queued = 0;
    }
}


static void
ngx_http_smarty_oauth_stats(ngx_http_smarty_token_source_t *source,
    ngx_http_smarty_token_stats_t *st)
{
    ngx_http_smarty_oauth_t  *src = source->data;

    ngx_http_smarty_oauth_sh_t  *sh = src->sh;

    ngx_shmtx_lock(&src->shpool->mutex);

    st->name = src->url;
    st->fetches = sh->fetches;
    st->refreshes = sh->refreshes;
    st->adopted = sh->adopted;
    st->failures = sh->failures;
    st->failing = sh->failing;
    st->rejected = sh->rejected;
    st->waits = sh->waits;
    st->wait_timeouts = sh->wait_timeouts;
    st->obtained = sh->expires ? sh->obtained : 0;
    st->expires = sh->expires;

    ngx_shmtx_unlock(&src->shpool->mutex);
}




/* --- requests that wait ------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_oauth_wait(ngx_http_smarty_oauth_t *src,
    ngx_http_request_t *r, ngx_http_smarty_next_pt next)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_smarty_oauth_waiter_t  *w;

    w = ngx_http_get_module_ctx(r, ngx_http_smarty_token_oauth_module);

    if (w == NULL) {
        w = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_oauth_waiter_t));
        if (w == NULL) {
            return NGX_ERROR;
        }

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_smarty_oauth_waiter_cleanup;
        cln->data = w;

        ngx_http_set_ctx(r, w, ngx_http_smarty_token_oauth_module);
    }

    w->request = r;
    w->src = src;
    w->next = next;
    w->deadline = ngx_current_msec + src->wait;
    w->woken = 0;
    w->timed_out = 0;

    if (!w->queued) {
        ngx_queue_insert_tail(&src->waiters, &w->queue);
        w->queued = 1;
    }

    if (!src->poll.timer_set) {
        ngx_add_timer(&src->poll, SMARTY_OAUTH_POLL);
    }

    return NGX_AGAIN;
}


static void
ngx_http_smarty_oauth_waiter_cleanup(void *data)
{
    ngx_http_smarty_oauth_waiter_t  *w = data;

    if (w->queued) {
        ngx_queue_remove(&w->queue);
        w->queued = 0;
    }
}


/*
 * While requests wait: a token (of another worker's fetch, or of another
 * instance's), a fetch to begin (the backoff over, a fetcher gone), a wait
 * that is over.
 */

static void
ngx_http_smarty_oauth_poll(ngx_event_t *ev)
{
    ngx_http_smarty_oauth_t  *src = ev->data;

    int64_t    now;
    ngx_int_t  rc;

    if (ngx_queue_empty(&src->waiters)) {
        return;
    }

    now = ngx_http_smarty_oauth_now();
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&src->shpool->mutex);

    if (src->sh->expires <= now) {
        rc = ngx_http_smarty_oauth_claim(src, now);
    }

    ngx_shmtx_unlock(&src->shpool->mutex);

    if (rc == NGX_OK) {
        ngx_http_smarty_oauth_fetch(src);
    }

    ngx_http_smarty_oauth_wake(src);

    if (!ngx_queue_empty(&src->waiters)) {
        ngx_add_timer(&src->poll, SMARTY_OAUTH_POLL);
    }
}


/*
 * Wakes the waiters that may go on: all of them when there is a token;
 * else those whose wait is over, and those that the next try (after a
 * failed fetch) would come too late for.  Each one is taken off the queue
 * before its continuation runs (which may finalize the request).
 */

static void
ngx_http_smarty_oauth_wake(ngx_http_smarty_oauth_t *src)
{
    int64_t                          now, next;
    ngx_uint_t                       have, busy;
    ngx_msec_int_t                   left;
    ngx_queue_t                     *q, ready;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_smarty_oauth_sh_t      *sh;
    ngx_http_smarty_oauth_waiter_t  *w;

    sh = src->sh;
    now = ngx_http_smarty_oauth_now();

    ngx_shmtx_lock(&src->shpool->mutex);

    have = (sh->expires > now);
    busy = (sh->fetcher && now < sh->fetch_deadline);
    next = sh->hopeless ? NGX_MAX_INT_T_VALUE : sh->next_try - now;

    ngx_shmtx_unlock(&src->shpool->mutex);

    ngx_queue_init(&ready);

    q = ngx_queue_head(&src->waiters);

    while (q != ngx_queue_sentinel(&src->waiters)) {
        w = ngx_queue_data(q, ngx_http_smarty_oauth_waiter_t, queue);
        q = ngx_queue_next(q);

        left = (ngx_msec_int_t) (w->deadline - ngx_current_msec);

        if (!have && left <= 0) {
            w->timed_out = 1;

        } else if (!have && (busy || next <= left)) {
            continue;
        }

        ngx_queue_remove(&w->queue);
        ngx_queue_insert_tail(&ready, &w->queue);
    }

    while (!ngx_queue_empty(&ready)) {
        q = ngx_queue_head(&ready);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_smarty_oauth_waiter_t, queue);
        w->queued = 0;
        w->woken = 1;

        if (w->timed_out) {
            ngx_shmtx_lock(&src->shpool->mutex);
            sh->wait_timeouts++;
            ngx_shmtx_unlock(&src->shpool->mutex);
        }

        r = w->request;
        c = r->connection;

        w->next(r);
        ngx_http_run_posted_requests(c);
    }
}


/* --- configuration ------------------------------------------------------ */


/*
 * smarty_upstream_oauth URL client_id_file=PATH client_secret_file=PATH
 *     [ca_file=PATH] [timeout=TIME] [wait=TIME] [shared=on|off]
 *     [thread_pool=NAME];
 *
 * The same endpoint and client id in several contexts is one source.
 */

static char *
ngx_http_smarty_oauth_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char                             *p;
    ngx_str_t                          *value, s, id_file, secret_file;
    ngx_str_t                           url, id, secret, ca, pool, name;
    ngx_int_t                           timeout, wait;
    ngx_uint_t                          i, shared;
    ngx_shm_zone_t                     *zone;
    ngx_http_smarty_oauth_t            *src, **srcs;
    ngx_http_smarty_oauth_main_conf_t  *omcf;
    char                                hid[SMARTY_OAUTH_ID_LEN + 1];

    value = cf->args->elts;
    url = value[1];

    if (!(url.len > 7 && ngx_strncasecmp(url.data, (u_char *) "http://", 7)
                         == 0)
        && !(url.len > 8
             && ngx_strncasecmp(url.data, (u_char *) "https://", 8) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_upstream_oauth\": the token endpoint "
                           "\"%V\" is not an http:// or https:// URL", &url);
        return NGX_CONF_ERROR;
    }

    if (ngx_strlchr(url.data, url.data + url.len, '@') != NULL
        || ngx_strlchr(url.data, url.data + url.len, ' ') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_upstream_oauth\": the token endpoint's "
                           "URL holds no credentials (\"@\"): they belong "
                           "in client_id_file and client_secret_file");
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&id_file);
    ngx_str_null(&secret_file);
    ngx_str_set(&ca, "");
    ngx_str_null(&pool);
    timeout = 10000;
    wait = 5000;
    shared = 1;

    for (i = 2; i < cf->args->nelts; i++) {
        s = value[i];

        if (s.len > 15 && ngx_strncmp(s.data, "client_id_file=", 15) == 0) {
            id_file.data = s.data + 15;
            id_file.len = s.len - 15;
            continue;
        }

        if (s.len > 19
            && ngx_strncmp(s.data, "client_secret_file=", 19) == 0)
        {
            secret_file.data = s.data + 19;
            secret_file.len = s.len - 19;
            continue;
        }

        if (s.len > 8 && ngx_strncmp(s.data, "ca_file=", 8) == 0) {
            ca.data = s.data + 8;
            ca.len = s.len - 8;

            if (ngx_conf_full_name(cf->cycle, &ca, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (s.len > 8 && ngx_strncmp(s.data, "timeout=", 8) == 0) {
            s.data += 8;
            s.len -= 8;
            timeout = ngx_parse_time(&s, 0);

            if (timeout == NGX_ERROR || timeout < 100) {
                goto invalid;
            }

            continue;
        }

        if (s.len > 5 && ngx_strncmp(s.data, "wait=", 5) == 0) {
            s.data += 5;
            s.len -= 5;
            wait = ngx_parse_time(&s, 0);

            if (wait == NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (s.len == 9 && ngx_strncmp(s.data, "shared=on", 9) == 0) {
            shared = 1;
            continue;
        }

        if (s.len == 10 && ngx_strncmp(s.data, "shared=off", 10) == 0) {
            shared = 0;
            continue;
        }

        if (s.len > 12 && ngx_strncmp(s.data, "thread_pool=", 12) == 0) {
            pool.data = s.data + 12;
            pool.len = s.len - 12;
            continue;
        }

        goto invalid;
    }

    if (id_file.len == 0 || secret_file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_upstream_oauth\" needs client_id_file= "
                           "and client_secret_file= (the client's id and "
                           "secret are never written in nginx.conf)");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_smarty_oauth_read(cf, &id_file, "OAuth client id",
                                   SMARTY_OAUTH_ID_MAX, &id)
        != NGX_CONF_OK
        || ngx_http_smarty_oauth_read(cf, &secret_file, "OAuth client secret",
                                      SMARTY_OAUTH_SECRET_MAX, &secret)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf,
                                            ngx_http_smarty_token_oauth_module);
    srcs = omcf->sources.elts;

    for (i = 0; i < omcf->sources.nelts; i++) {
        src = srcs[i];

        if (src->url.len != url.len
            || ngx_strncmp(src->url.data, url.data, url.len) != 0
            || src->client_id.len != id.len
            || ngx_strncmp(src->client_id.data, id.data, id.len) != 0)
        {
            continue;
        }

        if (src->secret.len != secret.len
            || ngx_strncmp(src->secret.data, secret.data, secret.len) != 0
            || src->ca_file.len != ca.len
            || ngx_strncmp(src->ca_file.data, ca.data, ca.len) != 0
            || src->timeout != (ngx_msec_t) timeout
            || src->wait != (ngx_msec_t) wait
            || src->shared != (ngx_flag_t) shared)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"smarty_upstream_oauth\": the endpoint "
                               "\"%V\" and its client id are already "
                               "configured with other settings", &url);
            return NGX_CONF_ERROR;
        }

        return ngx_http_smarty_token_conf_set_source(cf, &src->source);
    }

    src = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_oauth_t));
    if (src == NULL) {
        return NGX_CONF_ERROR;
    }

    src->source.ops = &ngx_http_smarty_oauth_ops;
    src->source.data = src;

    src->url.data = ngx_pstrdup(cf->pool, &url);
    src->client_id = id;
    src->secret = secret;
    src->ca_file = ca;
    src->timeout = timeout;
    src->connect_timeout = ngx_min(timeout, 5000);
    src->wait = wait;
    src->shared = shared;
    src->url.len = url.len;

    p = ngx_pnalloc(cf->pool, url.len + 1);
    if (src->url.data == NULL || p == NULL) {
        return NGX_CONF_ERROR;
    }

    *ngx_cpymem(p, url.data, url.len) = '\0';
    src->url.data = p;

    src->pool = ngx_thread_pool_add(cf, pool.len ? &pool : NULL);
    if (src->pool == NULL) {
        return NGX_CONF_ERROR;
    }

    /* one zone and one Redis key per endpoint and client id */

    p = ngx_pnalloc(cf->pool, url.len + 1 + id.len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, url.data, url.len);
    p[url.len] = '\n';
    ngx_memcpy(p + url.len + 1, id.data, id.len);
    smarty_oauth_id((char *) p, url.len + 1 + id.len, hid);

    name.len = sizeof("smarty_oauth_") - 1 + SMARTY_OAUTH_ID_LEN;
    name.data = ngx_pnalloc(cf->pool, name.len);
    src->key.len = sizeof("smarty:oauth:{}") - 1 + SMARTY_OAUTH_ID_LEN;
    src->key.data = ngx_pnalloc(cf->pool, src->key.len);
    src->lock.len = src->key.len + sizeof(":lock") - 1;
    src->lock.data = ngx_pnalloc(cf->pool, src->lock.len);

    if (name.data == NULL || src->key.data == NULL
        || src->lock.data == NULL)
    {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(name.data, "smarty_oauth_%s", hid);
    ngx_sprintf(src->key.data, "smarty:oauth:{%s}", hid);
    ngx_sprintf(src->lock.data, "smarty:oauth:{%s}:lock", hid);

    zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize
                                 + sizeof(ngx_http_smarty_oauth_sh_t),
                                 &ngx_http_smarty_token_oauth_module);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->init = ngx_http_smarty_oauth_init_zone;
    zone->data = src;
    src->zone = zone;

    smarty_oauth_seal_key((char *) src->client_id.data,
                          (char *) src->secret.data, src->seal);
    smarty_oauth_id((char *) src->secret.data, src->secret.len,
                    (char *) src->secret_id);

    srcs = ngx_array_push(&omcf->sources);
    if (srcs == NULL) {
        return NGX_CONF_ERROR;
    }

    *srcs = src;

    return ngx_http_smarty_token_conf_set_source(cf, &src->source);

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"smarty_upstream_oauth\": invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


/* a file's one line of printable characters, kept NUL-terminated */

static char *
ngx_http_smarty_oauth_read(ngx_conf_t *cf, ngx_str_t *path, const char *what,
    size_t max, ngx_str_t *out)
{
    ngx_str_t   raw;

    if (ngx_http_smarty_secret_read(cf, path, what, max, &raw)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!smarty_oauth_token_ok((char *) raw.data, raw.len)) {
        ngx_http_smarty_secret_wipe(&raw);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s file \"%V\" must hold one line of printable "
                           "characters", what, path);
        return NGX_CONF_ERROR;
    }

    out->len = raw.len;
    out->data = ngx_pnalloc(cf->pool, raw.len + 1);

    if (out->data == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    *ngx_cpymem(out->data, raw.data, raw.len) = '\0';

    ngx_http_smarty_secret_wipe(&raw);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_smarty_oauth_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_smarty_oauth_t  *old = data;

    size_t                    len;
    ngx_slab_pool_t          *shpool;
    ngx_http_smarty_oauth_t  *src;

    src = zone->data;

    if (old) {
        /* a reload: the token and the counters live on */
        src->shpool = old->shpool;
        src->sh = old->sh;

        if (ngx_strcmp(src->sh->secret_id, src->secret_id) != 0) {
            /* a new secret is tried at once */
            ngx_memcpy(src->sh->secret_id, src->secret_id,
                       sizeof(src->secret_id));
            src->sh->next_try = 0;
            src->sh->failing = 0;
            src->sh->hopeless = 0;
        }

        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    src->shpool = shpool;

    if (zone->shm.exists) {
        src->sh = shpool->data;
        return NGX_OK;
    }

    src->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_smarty_oauth_sh_t));
    if (src->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = src->sh;
    ngx_memcpy(src->sh->secret_id, src->secret_id, sizeof(src->secret_id));

    len = sizeof(" in smarty_upstream_oauth zone \"\"") + zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in smarty_upstream_oauth zone \"%V\"%Z",
                &zone->shm.name);

    return NGX_OK;
}


static void *
ngx_http_smarty_oauth_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_oauth_main_conf_t  *omcf;

    omcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_oauth_main_conf_t));
    if (omcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&omcf->sources, cf->pool, 1,
                       sizeof(ngx_http_smarty_oauth_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return omcf;
}


static ngx_int_t
ngx_http_smarty_oauth_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                          i;
    ngx_http_smarty_oauth_t            *src, **srcs;
    ngx_http_smarty_oauth_main_conf_t  *omcf;

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module)
        == NULL)
    {
        return NGX_OK;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle,
                                            ngx_http_smarty_token_oauth_module);

    if (omcf->sources.nelts == 0) {
        return NGX_OK;
    }

    if (smarty_oauth_global_init() != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "smarty: libcurl failed to initialise");
        return NGX_ERROR;
    }

    srcs = omcf->sources.elts;

    for (i = 0; i < omcf->sources.nelts; i++) {
        src = srcs[i];

        ngx_queue_init(&src->waiters);

        src->poll.handler = ngx_http_smarty_oauth_poll;
        src->poll.data = src;
        src->poll.log = cycle->log;

        if (ngx_http_smarty_oauth_fetch_init(src, cycle) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_smarty_oauth_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                          i;
    ngx_http_smarty_oauth_t            *src, **srcs;
    ngx_http_smarty_oauth_main_conf_t  *omcf;

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module)
        == NULL)
    {
        return;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle,
                                            ngx_http_smarty_token_oauth_module);
    srcs = omcf->sources.elts;

    for (i = 0; i < omcf->sources.nelts; i++) {
        src = srcs[i];

        if (src->sh == NULL) {
            continue;
        }

        /* another worker need not wait for this one's deadline */
        ngx_shmtx_lock(&src->shpool->mutex);

        if (src->sh->fetcher == ngx_pid) {
            src->sh->fetcher = 0;
        }

        ngx_shmtx_unlock(&src->shpool->mutex);
    }
}
