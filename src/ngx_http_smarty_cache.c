/*
 * smarty-gateway: the recognize/detector cache in Redis.
 *
 * Entries are per image: <prefix>{s<space>}:g<generation>:<params id>:<sha>
 * (stateless detectors: <prefix>{d}:g0:...), the value being that image's
 * answer without its part name.  A request is looked up in one round trip
 * (src/lua/cache_get.lua reads the space's generation and every image):
 *
 *   - every image cached: the answer is rebuilt with the caller's part
 *     names, in the caller's order, and the upstream is not called;
 *   - some cached: only the missing images go upstream, in a rebuilt body,
 *     and the answer merges both in request order;
 *   - none: the client's body goes upstream unchanged.
 *
 * Answers are stored by src/lua/cache_put.lua only if the generation did
 * not move meanwhile; every change of a space increments it (see the
 * reasoning in cache_put.lua).  Identical misses in flight at once go
 * upstream once: the first holds a lock per image, the others look again
 * until the lock's owner stored the answer or smarty_cache_wait passed.
 *
 * Redis slow, down or black-holed costs at most smarty_redis_timeout, then
 * the request goes upstream as on a miss; the adapter's breaker stops
 * asking for a while.  No error of the cache ever reaches a client.
 */

#include "ngx_http_smarty_module.h"
#include "ngx_http_smarty_redis.h"
#include "smarty_cache.h"


#define SMARTY_CE_MISS      0   /* no coalescing */
#define SMARTY_CE_LOCKED    1   /* this request goes upstream for it */
#define SMARTY_CE_WAITING   2   /* another request does */
#define SMARTY_CE_HIT       3

#define SMARTY_CACHE_POLL   20  /* ms between looks while coalescing */


static ngx_int_t ngx_http_smarty_cache_cacheable(ngx_http_smarty_ctx_t *ctx);
static ngx_int_t ngx_http_smarty_cache_init(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
static ngx_int_t ngx_http_smarty_cache_lookup(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
static void ngx_http_smarty_cache_lookup_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_cache_poll_handler(ngx_event_t *ev);
static void ngx_http_smarty_cache_decide(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
static ngx_int_t ngx_http_smarty_cache_store(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    smarty_answer_t *ans);
static void ngx_http_smarty_cache_bump(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);
static void ngx_http_smarty_cache_incr(ngx_str_t *key);
static void ngx_http_smarty_cache_incr_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_cache_retry(ngx_event_t *ev);
static void ngx_http_smarty_cache_ignore(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static int ngx_http_smarty_cache_aliases(ngx_http_smarty_ctx_t *ctx);
static const char *ngx_http_smarty_cache_cstr(ngx_http_request_t *r,
    ngx_str_t *v);
static ngx_chain_t *ngx_http_smarty_cache_chain(ngx_http_request_t *r,
    char *json, size_t len);
static ngx_int_t ngx_http_smarty_cache_keys(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);


/*
 * Before the upstream: NGX_DECLINED (go upstream now), NGX_AGAIN (a lookup
 * is in flight: the cache goes on with the request) or NGX_ERROR.
 */

ngx_int_t
ngx_http_smarty_cache_start(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    if (!slcf->cache) {
        return NGX_DECLINED;
    }

    if (ngx_http_smarty_cache_keys(r, slcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_http_smarty_cache_cacheable(ctx)) {
        ctx->cache.status = SMARTY_CACHE_BYPASS;
        return NGX_DECLINED;
    }

    /*
     * not while Redis is known to be away (breaker open, not connected);
     * a connection being established queues the lookup, so a worker that
     * has just started uses the cache from its first request
     */

    if (ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK) {
        ctx->cache.status = SMARTY_CACHE_UNAVAILABLE;
        return NGX_DECLINED;
    }

    if (ngx_http_smarty_cache_init(r, slcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->state = SMARTY_STATE_CACHE;

    if (ngx_http_smarty_cache_lookup(r, slcf, ctx) != NGX_OK) {
        ctx->state = SMARTY_STATE_BODY;
        ctx->cache.status = SMARTY_CACHE_UNAVAILABLE;
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


/*
 * A recognize that changes nothing, and the stateless detectors; never a
 * request whose meta holds a member the gateway does not know (it cannot
 * tell what that member does to the answer).
 */

static ngx_int_t
ngx_http_smarty_cache_cacheable(ngx_http_smarty_ctx_t *ctx)
{
    if (ctx->m.foreign) {
        return 0;
    }

    if (ctx->method->id == SMARTY_M_PERSONS_RECOGNIZE) {
        return !smarty_meta_writes(ctx->method, &ctx->m);
    }

    return !ctx->method->persons && ctx->method->images;
}


/* recognize answers always carry aliases_changed, detectors' never */

static int
ngx_http_smarty_cache_aliases(ngx_http_smarty_ctx_t *ctx)
{
    return ctx->method->id == SMARTY_M_PERSONS_RECOGNIZE ? 0 : -1;
}


/* the key base, the generation key and the parameters' id */

static ngx_int_t
ngx_http_smarty_cache_keys(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    size_t                    n;
    u_char                   *p;
    ngx_http_smarty_cache_t  *c;

    c = &ctx->cache;

    n = slcf->cache_prefix.len + 16;

    p = ngx_pnalloc(r->pool, 2 * n + sizeof(":gen") + SMARTY_PARAMS_ID_LEN
                             + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    c->base.data = p;
    c->base.len = smarty_cache_base((const char *) slcf->cache_prefix.data,
                                    slcf->cache_prefix.len, ctx->m.space,
                                    (char *) p, n);
    if (c->base.len >= n) {
        return NGX_ERROR;
    }

    if (c->base.len == 0) {
        return NGX_ERROR;
    }

    c->gen_key.data = p + n;
    c->gen_key.len = smarty_cache_gen_key((const char *) c->base.data,
                                          c->base.len,
                                          (char *) c->gen_key.data, n + 5);

    c->params.data = c->gen_key.data + c->gen_key.len;
    if (smarty_cache_params_id(ctx->method->path, ctx->m.params,
                               ctx->m.params_len,
                               (const char *) ctx->up_args.data,
                               ctx->up_args.len, (char *) c->params.data)
        != 0)
    {
        return NGX_ERROR;
    }

    c->params.len = SMARTY_PARAMS_ID_LEN;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_cache_init(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    static ngx_uint_t         seq;

    u_char                   *p;
    ngx_uint_t                i;
    ngx_http_smarty_part_t   *parts;
    ngx_http_smarty_cache_t  *c;

    c = &ctx->cache;
    c->n = ctx->m.nimages;
    parts = ctx->parts.elts;

    c->hex = ngx_pcalloc(r->pool, c->n * (sizeof(ngx_str_t) * 2 + 1
                                          + sizeof(ngx_uint_t)));
    if (c->hex == NULL) {
        return NGX_ERROR;
    }

    c->value = c->hex + c->n;
    c->up = (ngx_uint_t *) (c->value + c->n);
    c->state = (u_char *) (c->up + c->n);

    p = ngx_pnalloc(r->pool, c->n * 2 * SMARTY_SHA256_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < c->n; i++) {
        c->hex[i].data = p;
        c->hex[i].len = 2 * SMARTY_SHA256_LEN;
        p = ngx_hex_dump(p, parts[ctx->m.images[i].part].sha256,
                         SMARTY_SHA256_LEN);
    }

    /* the locks' owner: unique enough across workers and instances */

    c->owner.data = ngx_pnalloc(r->pool, NGX_INT64_LEN * 3 + 16);
    if (c->owner.data == NULL) {
        return NGX_ERROR;
    }

    c->owner.len = ngx_sprintf(c->owner.data, "%P.%ui.%ui.%ui", ngx_pid,
                               ++seq, (ngx_uint_t) ngx_random(),
                               (ngx_uint_t) ngx_current_msec)
                   - c->owner.data;

    c->deadline = ngx_current_msec + slcf->cache_wait;

    c->poll.handler = ngx_http_smarty_cache_poll_handler;
    c->poll.data = r;
    c->poll.log = r->connection->log;

    return NGX_OK;
}


/*
 * cache_get.lua: KEYS the generation and the quota's states; ARGV the base,
 * the parameters' id, the lock's lifetime and owner, the quota (its size,
 * then the clock, whether hits spend, what this request spent already and
 * the limits) and the images' SHA-256.
 */

static ngx_int_t
ngx_http_smarty_cache_lookup(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    u_char                   *num, *p;
    size_t                   *argvlen;
    ngx_uint_t                i, j, q, argc;
    const char              **argv;
    ngx_http_smarty_cache_t  *c;
    ngx_http_smarty_quota_t  *quota;

    c = &ctx->cache;
    quota = &ctx->quota;
    q = quota->n;

    argc = 1 + q + 5 + (q ? 4 + q : 0) + c->n;

    argv = ngx_palloc(r->pool, argc * (sizeof(char *) + sizeof(size_t)));
    num = ngx_pnalloc(r->pool, 4 * NGX_INT64_LEN);

    if (argv == NULL || num == NULL) {
        return NGX_ERROR;
    }

    argvlen = (size_t *) (argv + argc);
    j = 0;

    argv[j] = (const char *) c->gen_key.data;
    argvlen[j++] = c->gen_key.len;

    for (i = 0; i < q; i++) {
        argv[j] = (const char *) quota->keys[i].data;
        argvlen[j++] = quota->keys[i].len;
    }

    argv[j] = (const char *) c->base.data;
    argvlen[j++] = c->base.len;
    argv[j] = (const char *) c->params.data;
    argvlen[j++] = c->params.len;

    p = num;
    argv[j] = (const char *) p;
    argvlen[j++] = ngx_sprintf(p, "%M", slcf->cache_wait) - p;
    p += argvlen[j - 1];

    argv[j] = (const char *) c->owner.data;
    argvlen[j++] = c->owner.len;

    argv[j] = (const char *) p;
    argvlen[j++] = ngx_sprintf(p, "%ui", q) - p;
    p += argvlen[j - 1];

    if (q) {
        argv[j] = "";                                   /* Redis's clock */
        argvlen[j++] = 0;
        argv[j] = slcf->quota_hits ? "1" : "0";
        argvlen[j++] = 1;

        argv[j] = (const char *) p;
        argvlen[j++] = ngx_sprintf(p, "%uL", quota->spent_requests) - p;
        p += argvlen[j - 1];

        argv[j] = (const char *) p;
        argvlen[j++] = ngx_sprintf(p, "%uL", quota->spent_images) - p;

        for (i = 0; i < q; i++) {
            argv[j] = (const char *) quota->args[i].data;
            argvlen[j++] = quota->args[i].len;
        }
    }

    for (i = 0; i < c->n; i++) {
        argv[j] = (const char *) c->hex[i].data;
        argvlen[j++] = c->hex[i].len;
    }

    c->cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_CACHE_GET,
                                    0, ngx_http_smarty_cache_lookup_handler,
                                    r, (int) (1 + q), (int) argc, argv,
                                    argvlen);

    return c->cmd ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_smarty_cache_lookup_handler(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_int_t                    rc;
    ngx_uint_t                   i, q;
    redisReply                  *e;
    ngx_connection_t            *c;
    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_cache_t     *cache;
    ngx_http_smarty_loc_conf_t  *slcf;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);
    cache = &ctx->cache;
    q = ctx->quota.n;

    cache->cmd = NULL;

    rc = NGX_OK;

    if (status == NGX_HTTP_SMARTY_REDIS_OK
        && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == cache->n + 1 + (q ? 5 + 2 * q : 0)
        && reply->element[0]->type == REDIS_REPLY_STRING
        && q)
    {
        rc = ngx_http_smarty_quota_lookup_reply(r, ctx, reply, cache->n + 1);

        if (rc == NGX_DECLINED) {
            if (cache->lookup) {
                /* refused on a look again: locks of the first look go */
                (void) ngx_http_smarty_cache_store(r, slcf, ctx, NULL);
            }

            ngx_http_smarty_quota_refuse(r, slcf, ctx);
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    if (status != NGX_HTTP_SMARTY_REDIS_OK
        || rc == NGX_ERROR
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != cache->n + 1 + (q ? 5 + 2 * q : 0)
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "smarty cache: lookup failed (%s): forwarding",
                      status == NGX_HTTP_SMARTY_REDIS_OK
                      ? (reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "bad reply")
                      : ngx_http_smarty_redis_status_text(status));

        if (status == NGX_HTTP_SMARTY_REDIS_TIMEOUT) {
            /*
             * The lookup may still run and take locks: release them behind
             * it, on the same connection (the generation is unknown, so
             * nothing is stored).
             */
            ngx_str_set(&cache->gen, "");
            (void) ngx_http_smarty_cache_store(r, slcf, ctx, NULL);
        }

        /*
         * a miss, with nothing stored: the generation is unknown; the quota
         * is decided by the local fallback unless a first look did
         */
        cache->status = SMARTY_CACHE_UNAVAILABLE;
        cache->lookup = 0;
        ctx->quota.redis_failed = 1;
        ngx_http_smarty_quota_forward(r, slcf, ctx);
        ngx_http_run_posted_requests(c);
        return;
    }

    e = reply->element[0];

    if (cache->gen.data == NULL || cache->gen.len < e->len) {
        cache->gen.data = ngx_pnalloc(r->pool, e->len);
        if (cache->gen.data == NULL) {
            ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    ngx_memcpy(cache->gen.data, e->str, e->len);
    cache->gen.len = e->len;
    cache->lookup = 1;
    cache->hits = 0;
    cache->waiting = 0;

    for (i = 0; i < cache->n; i++) {
        e = reply->element[i + 1];

        if (e->type == REDIS_REPLY_STRING) {
            cache->value[i].data = ngx_pnalloc(r->pool, e->len);
            if (cache->value[i].data == NULL) {
                ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
                ngx_http_run_posted_requests(c);
                return;
            }

            ngx_memcpy(cache->value[i].data, e->str, e->len);
            cache->value[i].len = e->len;
            cache->state[i] = SMARTY_CE_HIT;
            cache->hits++;
            continue;
        }

        if (e->type == REDIS_REPLY_INTEGER && e->integer == SMARTY_CE_WAITING)
        {
            cache->state[i] = SMARTY_CE_WAITING;
            cache->waiting++;
            continue;
        }

        if (e->type == REDIS_REPLY_INTEGER && e->integer == SMARTY_CE_LOCKED)
        {
            cache->state[i] = SMARTY_CE_LOCKED;
            cache->holds = 1;
            continue;
        }

        cache->state[i] = SMARTY_CE_MISS;
    }

    ngx_http_smarty_cache_decide(r, slcf, ctx);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_smarty_cache_decide(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    size_t                    len;
    char                     *json;
    ngx_uint_t                i;
    ngx_chain_t              *cl;
    const char              **names, **values;
    ngx_http_smarty_cache_t  *c;

    c = &ctx->cache;

    if (c->waiting) {
        if ((ngx_msec_int_t) (c->deadline - ngx_current_msec) > 0) {
            /* identical work is in flight elsewhere: look again soon */
            c->collapsed = 1;
            ngx_add_timer(&c->poll, SMARTY_CACHE_POLL);
            return;
        }

        /* waited long enough: go upstream for those too */

        for (i = 0; i < c->n; i++) {
            if (c->state[i] == SMARTY_CE_WAITING) {
                c->state[i] = SMARTY_CE_MISS;
            }
        }

        c->waiting = 0;
    }

    if (c->hits < c->n) {
        c->nup = 0;

        for (i = 0; i < c->n; i++) {
            if (c->state[i] != SMARTY_CE_HIT) {
                c->up[c->nup++] = i;
            }
        }

        c->status = c->hits ? SMARTY_CACHE_PARTIAL : SMARTY_CACHE_MISS;
        ngx_http_smarty_quota_settle(r, slcf, ctx, c->nup);
        ngx_http_smarty_forward(r, slcf, ctx);
        return;
    }

    /* every image cached: the answer without the upstream */

    c->status = SMARTY_CACHE_HIT;
    ngx_http_smarty_quota_settle(r, slcf, ctx, 0);

    names = ngx_palloc(r->pool, 2 * c->n * sizeof(char *));
    if (names == NULL) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
        return;
    }

    values = names + c->n;

    for (i = 0; i < c->n; i++) {
        names[i] = ctx->m.images[i].name;
        values[i] = ngx_http_smarty_cache_cstr(r, &c->value[i]);
        if (values[i] == NULL) {
            ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
            return;
        }
    }

    json = smarty_answer_build(names, values, c->n,
                               ngx_http_smarty_cache_aliases(ctx), &len);
    if (json == NULL) {
        /* a stored value is not what the gateway stores: forward */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "smarty cache: a cached answer is malformed");
        c->status = SMARTY_CACHE_MISS;
        c->nup = 0;
        ngx_http_smarty_forward(r, slcf, ctx);
        return;
    }

    cl = ngx_http_smarty_cache_chain(r, json, len);
    if (cl == NULL) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
        return;
    }

    ngx_http_smarty_answer(r, ctx, NGX_HTTP_OK, cl, len);
}


static void
ngx_http_smarty_cache_poll_handler(ngx_event_t *ev)
{
    ngx_http_request_t *r = ev->data;

    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_loc_conf_t  *slcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);

    if (ngx_http_smarty_cache_lookup(r, slcf, ctx) != NGX_OK) {
        ctx->cache.status = SMARTY_CACHE_UNAVAILABLE;
        ctx->quota.redis_failed = 1;
        ngx_http_smarty_quota_forward(r, slcf, ctx);
        ngx_http_run_posted_requests(r->connection);
    }
}


/*
 * After the upstream (ok: its answer is in ctx->up_body): store what may be
 * stored, count a change of the space, and for a partial hit merge the
 * cached and the fresh answers into ctx->up_body.  Returns NGX_OK, or
 * NGX_DECLINED when the fresh answer cannot be merged (502).
 */

ngx_int_t
ngx_http_smarty_cache_finish(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    ngx_uint_t ok)
{
    int                       rc;
    char                      err[128], *json;
    u_char                   *body;
    size_t                    len;
    ngx_uint_t                i, k;
    ngx_chain_t              *cl;
    const char              **names, **values;
    smarty_answer_t           ans;
    ngx_http_smarty_cache_t  *c;

    c = &ctx->cache;

    /* a change of the space, whatever the upstream answered */

    if (smarty_meta_writes(ctx->method, &ctx->m)) {
        ngx_http_smarty_cache_bump(r, ctx);
        return NGX_OK;
    }

    if (!ok || ctx->up_status != NGX_HTTP_OK || ctx->up_body == NULL) {
        if (c->lookup) {
            /* release the locks */
            (void) ngx_http_smarty_cache_store(r, slcf, ctx, NULL);
        }

        return NGX_OK;
    }

    if (c->base.len == 0) {
        /* not a cached location */
        return NGX_OK;
    }

    body = ngx_pnalloc(r->pool, ctx->up_len + 1);
    if (body == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (cl = ctx->up_body; cl; cl = cl->next) {
        len = ngx_cpymem(body + len, cl->buf->pos,
                         cl->buf->last - cl->buf->pos) - body;
    }

    body[len] = '\0';

    /* the names sent upstream: all of meta's, or the missing ones */

    k = (c->lookup && c->nup) ? c->nup : ctx->m.nimages;

    names = ngx_palloc(r->pool, 2 * (ctx->m.nimages + 1) * sizeof(char *));
    if (names == NULL) {
        return NGX_ERROR;
    }

    values = names + ctx->m.nimages + 1;

    for (i = 0; i < k; i++) {
        names[i] = ctx->m.images[(c->lookup && c->nup) ? c->up[i] : i].name;
    }

    rc = smarty_answer_split((const char *) body, len, names, k,
                             slcf->cache_status1 ? 1 : 0, &ans, err,
                             sizeof(err));
    if (rc != 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "smarty cache: the upstream's answer cannot be split "
                      "per image: %s", err);

        if (c->lookup) {
            (void) ngx_http_smarty_cache_store(r, slcf, ctx, NULL);
        }

        return c->status == SMARTY_CACHE_PARTIAL ? NGX_DECLINED : NGX_OK;
    }

    if (ans.aliases_changed) {
        /* the space changed under this recognize: nothing is stored */
        ngx_http_smarty_cache_bump(r, ctx);

        if (c->lookup) {
            (void) ngx_http_smarty_cache_store(r, slcf, ctx, NULL);
        }

    } else if (c->lookup) {
        (void) ngx_http_smarty_cache_store(r, slcf, ctx, &ans);
    }

    if (c->status != SMARTY_CACHE_PARTIAL) {
        smarty_answer_free(&ans);
        return NGX_OK;
    }

    /* merge: cached answers and fresh ones, in request order */

    for (i = 0; i < c->n; i++) {
        names[i] = ctx->m.images[i].name;

        if (c->state[i] == SMARTY_CE_HIT) {
            values[i] = ngx_http_smarty_cache_cstr(r, &c->value[i]);
            if (values[i] == NULL) {
                smarty_answer_free(&ans);
                return NGX_ERROR;
            }
        }
    }

    for (i = 0; i < c->nup; i++) {
        values[c->up[i]] = ans.values[i];

        if (ans.values[i] == NULL) {
            smarty_answer_free(&ans);
            return NGX_DECLINED;
        }
    }

    json = smarty_answer_build(names, values, c->n,
                               ngx_http_smarty_cache_aliases(ctx), &len);
    smarty_answer_free(&ans);

    if (json == NULL) {
        return NGX_DECLINED;
    }

    cl = ngx_http_smarty_cache_chain(r, json, len);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    ctx->up_body = cl;
    ctx->up_len = len;

    return NGX_OK;
}


/*
 * cache_put: the cacheable answers (ans NULL: none, only the locks are
 * released).  Fire and forget: the request does not wait for it.  Nothing
 * comes from the request's pool: this runs from its cleanup too, when the
 * pool is going.
 */

static ngx_int_t
ngx_http_smarty_cache_store(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    smarty_answer_t *ans)
{
    u_char                    ttl[NGX_INT_T_LEN];
    size_t                   *argvlen;
    ngx_uint_t                i, j, k, argc, idx;
    const char              **argv;
    ngx_http_smarty_cache_t  *c;
    ngx_http_smarty_redis_cmd_t  *cmd;

    c = &ctx->cache;
    k = c->nup ? c->nup : c->n;
    c->holds = 0;

    argc = 6 + 2 * k;

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)),
                     r->connection->log);
    if (argv == NULL) {
        return NGX_ERROR;
    }

    argvlen = (size_t *) (argv + argc);

    argv[0] = (const char *) c->gen_key.data;
    argvlen[0] = c->gen_key.len;
    argv[1] = (const char *) c->base.data;
    argvlen[1] = c->base.len;
    argv[2] = (const char *) c->params.data;
    argvlen[2] = c->params.len;
    argv[3] = (const char *) c->gen.data;
    argvlen[3] = c->gen.len;
    argv[4] = (const char *) ttl;
    argvlen[4] = ngx_sprintf(ttl, "%M", slcf->cache_ttl) - ttl;
    argv[5] = (const char *) c->owner.data;
    argvlen[5] = c->owner.len;

    j = 6;

    for (i = 0; i < k; i++) {
        idx = c->nup ? c->up[i] : i;

        argv[j] = (const char *) c->hex[idx].data;
        argvlen[j++] = c->hex[idx].len;

        if (ans && ans->values[i] && ans->cacheable[i]) {
            argv[j] = ans->values[i];
            argvlen[j++] = ans->lens[i];
            c->stored = 1;

        } else {
            argv[j] = "";
            argvlen[j++] = 0;
        }
    }

    /* the command copies its arguments */

    cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_CACHE_PUT, 0,
                                       ngx_http_smarty_cache_ignore, NULL, 1,
                                       j, argv, argvlen);
    ngx_free(argv);

    return cmd ? NGX_OK : NGX_ERROR;
}


static const char *
ngx_http_smarty_cache_cstr(ngx_http_request_t *r, ngx_str_t *v)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, v->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, v->data, v->len);
    p[v->len] = '\0';

    return (const char *) p;
}


/* an answer built by the cache core (malloc'ed, freed here) as a chain */

static ngx_chain_t *
ngx_http_smarty_cache_chain(ngx_http_request_t *r, char *json, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_create_temp_buf(r->pool, len);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        free(json);
        return NULL;
    }

    b->last = ngx_cpymem(b->last, json, len);
    free(json);

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/* a change of the space: every cached answer of it becomes unreachable */

static void
ngx_http_smarty_cache_bump(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx)
{
    ngx_str_t  *key;

    if (ctx->cache.gen_key.len == 0 || ctx->m.space < 0) {
        return;
    }

    /* the key outlives the request: the bump may have to be retried */

    key = ngx_alloc(sizeof(ngx_str_t) + ctx->cache.gen_key.len,
                    r->connection->log);
    if (key == NULL) {
        return;
    }

    key->data = (u_char *) (key + 1);
    key->len = ctx->cache.gen_key.len;
    ngx_memcpy(key->data, ctx->cache.gen_key.data, key->len);

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


static void
ngx_http_smarty_cache_ignore(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    /* a store: losing one costs a later miss, nothing more */
}


/*
 * The request goes (its client left, or it is done): a lookup in flight
 * may still take locks, and locks held are released now, not when they
 * expire (smarty_cache_wait), so identical requests do not wait for them.
 */

void
ngx_http_smarty_cache_cleanup(ngx_http_smarty_ctx_t *ctx)
{
    ngx_http_smarty_cache_t  *c;

    c = &ctx->cache;

    if (c->poll.timer_set) {
        ngx_del_timer(&c->poll);
    }

    if (c->cmd) {
        ngx_http_smarty_redis_cancel(c->cmd);
        c->cmd = NULL;
        c->holds = 1;
        ngx_str_set(&c->gen, "");
    }

    if (c->holds) {
        (void) ngx_http_smarty_cache_store(ctx->request,
                   ngx_http_get_module_loc_conf(ctx->request,
                                                ngx_http_smarty_module),
                   ctx, NULL);
    }
}


const char *
ngx_http_smarty_cache_status_text(ngx_http_smarty_ctx_t *ctx)
{
    switch (ctx->cache.status) {
    case SMARTY_CACHE_BYPASS:
        return "BYPASS";
    case SMARTY_CACHE_UNAVAILABLE:
        return "UNAVAILABLE";
    case SMARTY_CACHE_MISS:
        return "MISS";
    case SMARTY_CACHE_PARTIAL:
        return "PARTIAL";
    case SMARTY_CACHE_HIT:
        return "HIT";
    default:
        return "";
    }
}


/* Cache-Status (RFC 9211) */

ngx_int_t
ngx_http_smarty_cache_header(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx)
{
    u_char                   *p;
    ngx_table_elt_t          *h;
    ngx_http_smarty_cache_t  *c;

    c = &ctx->cache;

    /* only on answers the cache decided: served from it, or forwarded */

    if (c->status == SMARTY_CACHE_NONE
        || (c->status != SMARTY_CACHE_HIT && ctx->sr == NULL))
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 128);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Status");
    h->value.data = p;

    switch (c->status) {

    case SMARTY_CACHE_HIT:
        p = ngx_sprintf(p, "smarty-gateway; hit");
        break;

    case SMARTY_CACHE_PARTIAL:
        p = ngx_sprintf(p, "smarty-gateway; fwd=partial; detail=\"%ui of %ui "
                        "images cached\"", c->hits, c->n);
        break;

    case SMARTY_CACHE_MISS:
        p = ngx_sprintf(p, "smarty-gateway; fwd=miss");
        break;

    case SMARTY_CACHE_BYPASS:
        if (ctx->m.foreign) {
            /* meta holds a member the gateway does not know */
            p = ngx_sprintf(p, "smarty-gateway; fwd=bypass; detail=meta");

        } else {
            /* a write: set, delete, truncate, an enrolling recognize */
            p = ngx_sprintf(p, "smarty-gateway; fwd=method");
        }
        break;

    default: /* SMARTY_CACHE_UNAVAILABLE */
        p = ngx_sprintf(p, "smarty-gateway; fwd=miss; detail=unavailable");
        break;
    }

    if (c->status != SMARTY_CACHE_HIT && c->stored) {
        p = ngx_sprintf(p, "; stored");
    }

    if (c->collapsed) {
        p = ngx_sprintf(p, "; collapsed");
    }

    h->value.len = p - h->value.data;

    return NGX_OK;
}
