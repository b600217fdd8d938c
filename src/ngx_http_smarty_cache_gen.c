/*
 * smarty-gateway: the cache's generations: every change of a space counted
 * in Redis, so that every answer cached for it becomes unreachable at once
 * on every instance (docs/cache.md, "Never stale").
 */

#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_redis.h"


static void ngx_http_smarty_cache_incr(ngx_str_t *key);
static void ngx_http_smarty_cache_incr_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_cache_retry(ngx_event_t *ev);


void
ngx_http_smarty_cache_bump(ngx_str_t *gen_key, ngx_log_t *log)
{
    ngx_str_t  *key;

    /* the key outlives the request: the bump may have to be retried */

    key = ngx_alloc(sizeof(ngx_str_t) + gen_key->len, log);
    if (key == NULL) {
        return;
    }

    key->data = (u_char *) (key + 1);
    key->len = gen_key->len;
    ngx_memcpy(key->data, gen_key->data, key->len);

    ngx_http_smarty_cache_incr(key);
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

    ngx_event_t  *ev;

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
