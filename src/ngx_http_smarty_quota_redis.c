/*
 * smarty-gateway: quota states in Redis, shared by every instance (see
 * ngx_http_smarty_quota_store.h, docs/quota.md): quota.lua checks and
 * spends, quota_refund.lua gives back, both one round trip, on Redis's own
 * clock.
 */

#include "ngx_http_smarty_quota_store.h"


static ngx_int_t ngx_http_smarty_quota_redis_check(
    ngx_http_smarty_quota_call_t *c);
static void ngx_http_smarty_quota_redis_refund(
    ngx_http_smarty_quota_call_t *c);
static ngx_int_t ngx_http_smarty_quota_redis_peek(
    ngx_http_smarty_quota_call_t *c);
static void ngx_http_smarty_quota_redis_cancel(
    ngx_http_smarty_quota_call_t *c);
static ngx_http_smarty_redis_cmd_t *ngx_http_smarty_quota_redis_run(
    ngx_http_smarty_quota_call_t *c, ngx_uint_t script, int64_t *nums,
    size_t nnum, ngx_http_smarty_redis_handler_pt handler, void *data);
static void ngx_http_smarty_quota_redis_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_quota_redis_ignore(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_quota_redis_parse(
    ngx_http_smarty_quota_call_t *c, redisReply **e, size_t n);


const ngx_http_smarty_quota_store_t  ngx_http_smarty_quota_redis_store = {
    "redis",
    ngx_http_smarty_quota_redis_check,
    ngx_http_smarty_quota_redis_refund,
    ngx_http_smarty_quota_redis_peek,
    ngx_http_smarty_quota_redis_cancel
};


/* quota.lua: the request's requests and images */

static ngx_int_t
ngx_http_smarty_quota_redis_check(ngx_http_smarty_quota_call_t *c)
{
    int64_t  nums[2];

    nums[0] = (int64_t) c->requests;
    nums[1] = (int64_t) c->images;

    c->cmd = ngx_http_smarty_quota_redis_run(c,
                                       NGX_HTTP_SMARTY_REDIS_LUA_QUOTA, nums, 2,
                                       ngx_http_smarty_quota_redis_handler, c);

    return c->cmd ? NGX_AGAIN : NGX_ERROR;
}


/* quota.lua spending nothing */

static ngx_int_t
ngx_http_smarty_quota_redis_peek(ngx_http_smarty_quota_call_t *c)
{
    int64_t  nums[2];

    nums[0] = 0;
    nums[1] = 0;

    c->cmd = ngx_http_smarty_quota_redis_run(c,
                                       NGX_HTTP_SMARTY_REDIS_LUA_QUOTA, nums, 2,
                                       ngx_http_smarty_quota_redis_handler, c);

    return c->cmd ? NGX_AGAIN : NGX_ERROR;
}


/*
 * quota_refund.lua: at, requests, images.  Fire and forget: the command
 * knows nothing of the request, which may be gone when the reply comes; a
 * refund lost is logged.
 */

static void
ngx_http_smarty_quota_redis_refund(ngx_http_smarty_quota_call_t *c)
{
    int64_t  nums[3];

    nums[0] = c->at;
    nums[1] = (int64_t) c->requests;
    nums[2] = (int64_t) c->images;

    (void) ngx_http_smarty_quota_redis_run(c,
                                       NGX_HTTP_SMARTY_REDIS_LUA_QUOTA_REFUND,
                                       nums, 3,
                                       ngx_http_smarty_quota_redis_ignore,
                                       NULL);
}


static void
ngx_http_smarty_quota_redis_cancel(ngx_http_smarty_quota_call_t *c)
{
    if (c->cmd) {
        ngx_http_smarty_redis_cancel(c->cmd);
        c->cmd = NULL;
    }
}


/*
 * quota.lua and quota_refund.lua: KEYS, the n states' keys; ARGV, the
 * clock ("": Redis's TIME), the nnum numbers and the n limits.
 */

static ngx_http_smarty_redis_cmd_t *
ngx_http_smarty_quota_redis_run(ngx_http_smarty_quota_call_t *c,
    ngx_uint_t script, int64_t *nums, size_t nnum,
    ngx_http_smarty_redis_handler_pt handler, void *data)
{
    u_char       *p;
    size_t        i, k, argc, *lens;
    const char  **argv;

    k = c->n + 1 + nnum;                   /* the first limit */
    argc = k + c->n;

    argv = ngx_palloc(c->pool, argc * (sizeof(char *) + sizeof(size_t)));
    p = ngx_pnalloc(c->pool, nnum * NGX_INT64_LEN + 1);

    if (argv == NULL || p == NULL) {
        return NULL;
    }

    lens = (size_t *) (argv + argc);

    for (i = 0; i < c->n; i++) {
        argv[i] = (const char *) c->keys[i].data;
        lens[i] = c->keys[i].len;
        argv[k + i] = (const char *) c->args[i].data;
        lens[k + i] = c->args[i].len;
    }

    argv[c->n] = "";
    lens[c->n] = 0;

    for (i = 0; i < nnum; i++) {
        argv[c->n + 1 + i] = (const char *) p;
        lens[c->n + 1 + i] = ngx_sprintf(p, "%L", nums[i]) - p;
        p += lens[c->n + 1 + i];
    }

    return ngx_http_smarty_redis_script(script, 0, handler, data, (int) c->n,
                                        (int) argc, argv, lens);
}


static void
ngx_http_smarty_quota_redis_handler(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_quota_call_t  *c = data;

    ngx_int_t  rc;

    c->cmd = NULL;
    rc = NGX_ERROR;

    if (status == NGX_HTTP_SMARTY_REDIS_OK
        && reply->type == REDIS_REPLY_ARRAY)
    {
        rc = ngx_http_smarty_quota_redis_parse(c, reply->element,
                                               reply->elements);
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "smarty quota: Redis did not decide (%s)",
                      status == NGX_HTTP_SMARTY_REDIS_OK
                      ? (reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "bad reply")
                      : ngx_http_smarty_redis_status_text(status));
    }

    c->done(c, rc);
}


static void
ngx_http_smarty_quota_redis_ignore(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    if (status != NGX_HTTP_SMARTY_REDIS_OK
        || reply->type == REDIS_REPLY_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "smarty quota: a refund was lost (%s)",
                      status == NGX_HTTP_SMARTY_REDIS_OK
                      ? reply->str : ngx_http_smarty_redis_status_text(status));
    }
}


/*
 * quota.lua's answer, n elements: refused, retry_ms, now, remaining_1,
 * reset_ms_1, ...  NGX_OK admitted, NGX_DECLINED refused, NGX_ERROR not
 * an answer.
 */

static ngx_int_t
ngx_http_smarty_quota_redis_parse(ngx_http_smarty_quota_call_t *c,
    redisReply **e, size_t n)
{
    size_t  i;

    if (n != 3 + 2 * c->n) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (e[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    if (e[0]->integer < 0 || (size_t) e[0]->integer > c->n) {
        return NGX_ERROR;
    }

    c->res.refused = e[0]->integer;
    c->res.retry_ms = e[1]->integer;
    c->res.now = e[2]->integer;

    for (i = 0; i < c->n; i++) {
        c->items[i].limit = c->limits[i];
        c->items[i].remaining = e[3 + 2 * i]->integer;
        c->items[i].reset_ms = e[4 + 2 * i]->integer;
    }

    return c->res.refused ? NGX_DECLINED : NGX_OK;
}


/* --- a slice of the cache's lookup ---------------------------------------- */


ngx_int_t
ngx_http_smarty_quota_redis_slice(ngx_http_smarty_quota_call_t *c,
    ngx_http_smarty_redis_slice_t *slice, ngx_uint_t hits,
    uint64_t spent_requests, uint64_t spent_images)
{
    u_char      *p;
    size_t       i;
    ngx_str_t   *args;

    if (slice->args == NULL) {
        slice->args = ngx_palloc(c->pool, (5 + c->n) * sizeof(ngx_str_t));
        if (slice->args == NULL) {
            return NGX_ERROR;
        }
    }

    p = ngx_pnalloc(c->pool, 3 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    args = slice->args;

    args[0].data = p;
    args[0].len = ngx_sprintf(p, "%uz", c->n) - p;
    p += args[0].len;

    ngx_str_set(&args[1], "");                         /* Redis's clock */

    if (hits) {
        ngx_str_set(&args[2], "1");

    } else {
        ngx_str_set(&args[2], "0");
    }

    args[3].data = p;
    args[3].len = ngx_sprintf(p, "%uL", spent_requests) - p;
    p += args[3].len;

    args[4].data = p;
    args[4].len = ngx_sprintf(p, "%uL", spent_images) - p;

    for (i = 0; i < c->n; i++) {
        args[5 + i] = c->args[i];
    }

    slice->nargs = 5 + c->n;
    slice->keys = c->keys;
    slice->nkeys = c->n;
    slice->nreply = 3 + 2 * c->n + 2;

    return NGX_OK;
}


ngx_int_t
ngx_http_smarty_quota_redis_slice_reply(ngx_http_smarty_quota_call_t *c,
    redisReply **e, size_t n, uint64_t *requests, uint64_t *images)
{
    ngx_int_t  rc;

    if (n != 3 + 2 * c->n + 2
        || e[n - 2]->type != REDIS_REPLY_INTEGER
        || e[n - 1]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_smarty_quota_redis_parse(c, e, n - 2);

    *requests = (uint64_t) e[n - 2]->integer;
    *images = (uint64_t) e[n - 1]->integer;

    return rc;
}
