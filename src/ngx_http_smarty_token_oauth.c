/*
 * smarty-gateway: the OAuth token source, ngx_http_smarty_token_oauth_module
 * and its directive smarty_upstream_oauth (docs/token.md).
 *
 * The gateway obtains the upstream's token itself and keeps one for the
 * whole instance, in shared memory, so that every worker sends the same
 * one; with smarty_redis, one for every instance, in Redis (one instance
 * fetches under a lock, the others take its token: token_sync.lua,
 * token_put.lua).  A fetch is a libcurl call (smarty_oauth.c) in nginx's
 * thread pool: a worker never blocks.  A request that needs a token while
 * there is none waits, bounded, in its worker's queue; a token is replaced
 * ahead of its expiry, and at once when the upstream refuses it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_smarty_token.h"
#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_secret.h"
#include "smarty_oauth.h"


#if !(NGX_THREADS)
#error "smarty_upstream_oauth calls the token endpoint in nginx's thread pool: build nginx --with-threads (Debian's is)"
#endif


#define SMARTY_OAUTH_POLL        20        /* ms: a waiting worker looks */
#define SMARTY_OAUTH_LOCK_POLL   50        /* ms: another instance fetches */
#define SMARTY_OAUTH_CAP_VALID   30000     /* ms: backoff, a token left */
#define SMARTY_OAUTH_CAP_NONE    5000      /* ms: backoff, none left */
#define SMARTY_OAUTH_FRESH       5000      /* ms: a token refused younger
                                              than this counts as a failure
                                              of the fetch */
#define SMARTY_OAUTH_KEEP_TEXT   "86400000"  /* ms: Redis keeps the
                                              refresh token a day after the
                                              access token's expiry */
#define SMARTY_OAUTH_ID_MAX      256       /* the client id */
#define SMARTY_OAUTH_SECRET_MAX  1024


/* the instance's token, in the source's shared memory */

typedef struct {
    ngx_uint_t                 version;      /* a new token: + 1 */
    int64_t                    obtained;     /* Unix ms */
    int64_t                    expires;      /* Unix ms; 0: none */
    int64_t                    refresh_at;   /* Unix ms */

    ngx_pid_t                  fetcher;      /* the worker fetching, 0 */
    int64_t                    fetch_deadline;
    int64_t                    next_try;     /* after a failure */
    ngx_uint_t                 failing;      /* failures in a row */
    ngx_uint_t                 hopeless;     /* the endpoint refused the
                                                client's credentials */
    u_char                     secret_id[SMARTY_OAUTH_ID_LEN + 1];

    ngx_uint_t                 fetches;
    ngx_uint_t                 refreshes;
    ngx_uint_t                 adopted;
    ngx_uint_t                 failures;
    ngx_uint_t                 rejected;
    ngx_uint_t                 waits;
    ngx_uint_t                 wait_timeouts;

    size_t                     access_len;
    size_t                     escaped_len;
    size_t                     refresh_len;
    u_char                     refused[SMARTY_OAUTH_ID_LEN + 1];
    u_char                     access[SMARTY_OAUTH_TOKEN_MAX];
    u_char                     escaped[3 * SMARTY_OAUTH_TOKEN_MAX];
    u_char                     refresh[SMARTY_OAUTH_TOKEN_MAX];
    u_char                     error[SMARTY_OAUTH_ERROR_MAX];
} ngx_http_smarty_oauth_sh_t;


typedef struct ngx_http_smarty_oauth_s  ngx_http_smarty_oauth_t;


/* a fetch, as the thread sees it: nothing of nginx's */

typedef struct {
    ngx_http_smarty_oauth_t   *src;
    smarty_oauth_request_t     req;
    int64_t                    started;      /* Unix ms */
    char                       refresh[SMARTY_OAUTH_TOKEN_MAX + 1];
    smarty_oauth_result_t      res;
} ngx_http_smarty_oauth_job_t;


struct ngx_http_smarty_oauth_s {
    ngx_http_smarty_token_source_t   source;

    ngx_str_t                        url;       /* NUL-terminated */
    ngx_str_t                        client_id;
    ngx_str_t                        secret;    /* never logged */
    ngx_str_t                        ca_file;
    ngx_msec_t                       wait;
    ngx_msec_t                       timeout;
    ngx_msec_t                       connect_timeout;
    ngx_flag_t                       shared;
    ngx_thread_pool_t               *pool;

    ngx_shm_zone_t                  *zone;
    ngx_slab_pool_t                 *shpool;
    ngx_http_smarty_oauth_sh_t      *sh;

    u_char                           secret_id[SMARTY_OAUTH_ID_LEN + 1];
    ngx_str_t                        key;        /* Redis: the token */
    ngx_str_t                        lock;       /* Redis: the lock */
    u_char                           seal[SMARTY_OAUTH_KEY_LEN];

    /* this worker's */
    ngx_queue_t                      waiters;
    ngx_event_t                      poll;
    ngx_event_t                      again;      /* the lock elsewhere */
    ngx_thread_task_t               *task;
    ngx_http_smarty_redis_cmd_t     *cmd;
    ngx_uint_t                       serial;
    int64_t                          lock_since;
    u_char                           owner[64];
    size_t                           owner_len;
    unsigned                         fetching:1;  /* this worker fetches */
    unsigned                         locked:1;    /* holds the Redis lock */
    unsigned                         running:1;   /* the task is posted */
};


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

static int64_t ngx_http_smarty_oauth_now(void);
static ngx_int_t ngx_http_smarty_oauth_claim(ngx_http_smarty_oauth_t *src,
    int64_t now);
static ngx_int_t ngx_http_smarty_oauth_wait(ngx_http_smarty_oauth_t *src,
    ngx_http_request_t *r, ngx_http_smarty_next_pt next);
static void ngx_http_smarty_oauth_waiter_cleanup(void *data);
static void ngx_http_smarty_oauth_poll(ngx_event_t *ev);
static void ngx_http_smarty_oauth_wake(ngx_http_smarty_oauth_t *src);
static void ngx_http_smarty_oauth_wake_later(ngx_http_smarty_oauth_t *src);

static void ngx_http_smarty_oauth_fetch(ngx_http_smarty_oauth_t *src);
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


static int64_t
ngx_http_smarty_oauth_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/* --- requests that wait ---------------------------------------------------- */


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


/* from a handler that may run inside a request's call: soon, not now */

static void
ngx_http_smarty_oauth_wake_later(ngx_http_smarty_oauth_t *src)
{
    if (!ngx_queue_empty(&src->waiters) && !src->poll.posted) {
        ngx_post_event(&src->poll, &ngx_posted_events);
    }
}


/* --- a fetch ------------------------------------------------------------ */


/*
 * This worker fetches: the token another instance has (Redis), or the
 * right to fetch one; without Redis, or when it fails, its own.
 */

static void
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

    if (nl == NULL || nl == plain || (size_t) (nl - plain) > SMARTY_OAUTH_TOKEN_MAX
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

    ngx_http_smarty_oauth_wake_later(src);
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

    ngx_http_smarty_oauth_wake_later(src);
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


/* --- configuration --------------------------------------------------------- */


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
    ngx_http_smarty_oauth_job_t        *job;
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
        job->req.ca_file = src->ca_file.len ? (char *) src->ca_file.data
                                            : NULL;
        job->req.timeout_ms = src->timeout;
        job->req.connect_timeout_ms = src->connect_timeout;

        src->task->handler = ngx_http_smarty_oauth_thread;
        src->task->event.handler = ngx_http_smarty_oauth_fetched;
        src->task->event.data = src;
        src->task->event.log = cycle->log;
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
