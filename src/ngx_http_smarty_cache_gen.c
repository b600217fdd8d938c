/*
 * smarty-gateway: the cache's generations: every change of a space counted
 * in Redis, so that every answer cached for it becomes unreachable at once
 * on every instance (docs/cache.md, "Never stale").
 */

#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_redis.h"


/*
 * A bump outlives its request (it may have to be retried); the key first,
 * so that the retry queue holds and frees it as an ngx_str_t.
 */

typedef struct {
    ngx_str_t                  key;
    ngx_http_request_t        *request;   /* waits for the first reply */
    ngx_http_smarty_next_pt    next;
    ngx_pool_cleanup_t        *cln;
} ngx_http_smarty_cache_bump_t;


static void ngx_http_smarty_cache_bump_gone(void *data);
static void ngx_http_smarty_cache_incr(ngx_str_t *key);
static void ngx_http_smarty_cache_incr_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_cache_retry(ngx_event_t *ev);


ngx_int_t
ngx_http_smarty_cache_bump(ngx_str_t *gen_key, ngx_log_t *log,
    ngx_http_request_t *r, ngx_http_smarty_next_pt next)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_smarty_cache_bump_t  *b;

    cln = NULL;

    if (r) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
    }

    b = ngx_alloc(sizeof(ngx_http_smarty_cache_bump_t) + gen_key->len, log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->key.data = (u_char *) (b + 1);
    b->key.len = gen_key->len;
    ngx_memcpy(b->key.data, gen_key->data, b->key.len);

    b->request = r;
    b->next = next;
    b->cln = cln;

    if (cln) {
        cln->handler = ngx_http_smarty_cache_bump_gone;
        cln->data = b;
    }

    ngx_http_smarty_cache_incr(&b->key);

    return r ? NGX_AGAIN : NGX_OK;
}


/* the request went away first: the bump goes on without it */

static void
ngx_http_smarty_cache_bump_gone(void *data)
{
    ngx_http_smarty_cache_bump_t  *b = data;

    b->request = NULL;
    b->cln = NULL;
}


/*
 * Counting a change must not be lost to a passing Redis failure: a bump
 * that fails is retried every SMARTY_CACHE_RETRY ms by this worker until
 * Redis takes it (while Redis is away, nothing is served from the cache
 * either).  At most SMARTY_CACHE_PENDING spaces wait; more are logged.
 */

#define SMARTY_CACHE_RETRY    250
#define SMARTY_CACHE_PENDING  64

static ngx_str_t   *ngx_http_smarty_cache_pending[SMARTY_CACHE_PENDING];
static ngx_uint_t   ngx_http_smarty_cache_npending;
static ngx_event_t  ngx_http_smarty_cache_retry_ev;


static void
ngx_http_smarty_cache_incr(ngx_str_t *key)
{
    const char  *argv[2];
    size_t       argvlen[2];

    argv[0] = "INCR";
    argvlen[0] = 4;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;

    if (ngx_http_smarty_redis_command(0, ngx_http_smarty_cache_incr_handler,
                                      key, 2, argv, argvlen)
        == NULL)
    {
        ngx_http_smarty_cache_incr_handler(NGX_HTTP_SMARTY_REDIS_ERROR, NULL,
                                           key);
    }
}


static void
ngx_http_smarty_cache_incr_handler(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_str_t  *key = data;

    ngx_event_t                   *ev;
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_smarty_cache_bump_t  *b;

    b = (ngx_http_smarty_cache_bump_t *) key;

    if (b->request) {
        /* the answer goes now, counted or not (then retried below) */
        r = b->request;
        c = r->connection;

        b->request = NULL;
        b->cln->handler = NULL;
        b->cln = NULL;

        b->next(r);
        ngx_http_run_posted_requests(c);
    }

    if (status == NGX_HTTP_SMARTY_REDIS_OK && reply
        && reply->type == REDIS_REPLY_INTEGER)
    {
        ngx_free(key);
        return;
    }

    if (status == NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED) {
        ngx_free(key);
        return;
    }

    if (ngx_http_smarty_cache_npending == SMARTY_CACHE_PENDING) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "smarty cache: a change of \"%V\" could not be counted "
                      "in Redis (%s): its cached answers may be served until "
                      "smarty_cache_ttl passes", key,
                      ngx_http_smarty_redis_status_text(status));
        ngx_free(key);
        return;
    }

    ngx_http_smarty_cache_pending[ngx_http_smarty_cache_npending++] = key;

    ev = &ngx_http_smarty_cache_retry_ev;

    if (!ev->timer_set) {
        ev->handler = ngx_http_smarty_cache_retry;
        ev->log = ngx_cycle->log;
        ev->data = NULL;
        ev->cancelable = 1;
        ngx_add_timer(ev, SMARTY_CACHE_RETRY);
    }
}


static void
ngx_http_smarty_cache_retry(ngx_event_t *ev)
{
    ngx_uint_t   i, n;
    ngx_str_t   *keys[SMARTY_CACHE_PENDING];

    n = ngx_http_smarty_cache_npending;
    ngx_memcpy(keys, ngx_http_smarty_cache_pending, n * sizeof(ngx_str_t *));
    ngx_http_smarty_cache_npending = 0;

    if (ngx_exiting || ngx_terminate) {
        for (i = 0; i < n; i++) {
            ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                          "smarty cache: a change of \"%V\" was not counted "
                          "in Redis before the worker exited", keys[i]);
            ngx_free(keys[i]);
        }

        return;
    }

    for (i = 0; i < n; i++) {
        ngx_http_smarty_cache_incr(keys[i]);
    }
}
