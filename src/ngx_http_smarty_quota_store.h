/*
 * smarty-gateway: where quota states live, behind one interface: Redis
 * (shared by every instance) and this instance's shared memory (the
 * fallback while Redis is away).  The arithmetic is the pure core's
 * (smarty_quota.c), and in Redis the same in Lua.  docs/quota.md.
 */

#ifndef NGX_HTTP_SMARTY_QUOTA_STORE_H
#define NGX_HTTP_SMARTY_QUOTA_STORE_H

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_smarty_redis.h"
#include "smarty_quota.h"


/* the limits of one request: a space's set and a client's set */
#define SMARTY_QUOTA_MAX_ITEMS  (2 * SMARTY_QUOTA_MAX_LIMITS)


typedef struct ngx_http_smarty_quota_call_s  ngx_http_smarty_quota_call_t;

typedef void (*ngx_http_smarty_quota_done_pt)(
    ngx_http_smarty_quota_call_t *call, ngx_int_t rc);


/* one question to a store about n limits */

struct ngx_http_smarty_quota_call_s {
    size_t                          n;
    smarty_quota_item_t            *items;     /* .limit, .state: scratch */
    smarty_quota_state_t           *states;
    const smarty_quota_limit_t    **limits;    /* as configured */
    smarty_quota_limit_t           *scaled;    /* by the local share */
    ngx_str_t                      *keys;      /* each state's name (the
                                                  Redis key) */
    ngx_str_t                      *args;      /* each limit as the
                                                  scripts take it */

    uint64_t                        requests;  /* to spend or give back */
    uint64_t                        images;
    int64_t                         at;        /* a refund: the clock of
                                                  the spend */

    smarty_quota_result_t           res;       /* and every item's
                                                  remaining, reset_ms */

    /* the local store's */
    ngx_shm_zone_t                 *zone;      /* NULL: no zone */
    ngx_uint_t                      share_num;
    ngx_uint_t                      share_den;

    /* an asynchronous store's */
    ngx_http_smarty_redis_cmd_t    *cmd;
    ngx_http_smarty_quota_done_pt   done;
    void                           *data;
    ngx_pool_t                     *pool;
    ngx_log_t                      *log;
};


typedef struct {
    const char                     *name;

    /*
     * Check and spend, on every limit or on none: NGX_OK admitted,
     * NGX_DECLINED refused (res says by which limit, for how long),
     * NGX_ERROR the store cannot decide; or NGX_AGAIN: done(call, rc) is
     * called later (never from inside this call) with one of those.
     */
    ngx_int_t                     (*check)(ngx_http_smarty_quota_call_t *c);

    /* give back requests and images spent at "at": fire and forget */
    void                          (*refund)(ngx_http_smarty_quota_call_t *c);

    /*
     * Every item's remaining and reset_ms, nothing spent: NGX_OK,
     * NGX_ERROR, or NGX_AGAIN as check().
     */
    ngx_int_t                     (*peek)(ngx_http_smarty_quota_call_t *c);

    /* the caller is gone: done() is never called */
    void                          (*cancel)(ngx_http_smarty_quota_call_t *c);
} ngx_http_smarty_quota_store_t;


extern const ngx_http_smarty_quota_store_t  ngx_http_smarty_quota_redis_store;
extern const ngx_http_smarty_quota_store_t  ngx_http_smarty_quota_local_store;


/*
 * Redis: the call as a slice of another script's call, so that one round
 * trip decides it too (the cache's lookup: src/lua/cache_get.lua includes
 * the quota core).  The slice's arguments: the number of limits, Redis's
 * clock, whether hits spend, what was spent already (a look again spends
 * only what is new), the limits; its reply: quota.lua's answer, then the
 * requests and images spent.
 */
ngx_int_t ngx_http_smarty_quota_redis_slice(ngx_http_smarty_quota_call_t *c,
    ngx_http_smarty_redis_slice_t *slice, ngx_uint_t hits,
    uint64_t spent_requests, uint64_t spent_images);

/*
 * The slice's reply elements: NGX_OK admitted (*requests, *images: what
 * this look spent), NGX_DECLINED refused, NGX_ERROR not an answer.
 */
ngx_int_t ngx_http_smarty_quota_redis_slice_reply(
    ngx_http_smarty_quota_call_t *c, redisReply **element, size_t n,
    uint64_t *requests, uint64_t *images);


/*
 * The local store's zone ("smarty_quota", size bytes), added once per
 * configuration.
 */
ngx_shm_zone_t *ngx_http_smarty_quota_local_zone(ngx_conf_t *cf, size_t size,
    void *tag);

/* a call of n items from pool */
ngx_int_t ngx_http_smarty_quota_call_init(ngx_http_smarty_quota_call_t *call,
    ngx_pool_t *pool, size_t n, ngx_log_t *log);

/*
 * Item i of call: limit l of space (-1: the detectors) and client (NULL:
 * the space's), its key under prefix and its script argument.
 */
ngx_int_t ngx_http_smarty_quota_item(ngx_http_smarty_quota_call_t *call,
    size_t i, ngx_str_t *prefix, ngx_int_t space, const ngx_str_t *client,
    const smarty_quota_limit_t *l);

/* the wall clock in ms, as the local store's decisions use it */
int64_t ngx_http_smarty_quota_clock(void);

#endif /* NGX_HTTP_SMARTY_QUOTA_STORE_H */
