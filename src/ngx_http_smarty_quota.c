/*
 * smarty-gateway: quotas, per space and per client, shared by every
 * gateway instance through Redis (docs/quota.md).
 *
 * The arithmetic is the pure core's (smarty_quota.c) and, in Redis, the
 * same arithmetic in Lua (src/lua/lib/quota_core.lua).  This file:
 *
 *   - reads the directives and the clients file's "quota";
 *   - builds a request's limits (the space's set and the client's set) once
 *     the space is known;
 *   - decides: in the cache lookup's script when the cache looks the
 *     request up (one round trip for both, spending only on the images
 *     that go upstream), else with quota.lua, else, Redis being away, with
 *     the local fallback (ngx_http_smarty_quota_local.c) or not at all
 *     ("closed": 503);
 *   - gives images back when the upstream fails, and when images it paid
 *     for were answered from the cache after all (coalescing);
 *   - writes the 429 answer, the RateLimit headers and the variables;
 *   - serves the operator's view (smarty_quota_view), to operators only.
 */

#include "ngx_http_smarty_module.h"
#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_quota.h"

#include <jansson.h>


#define SMARTY_QUOTA_KEY_LEN  192
#define SMARTY_QUOTA_ARG_LEN  32


typedef struct {
    ngx_http_request_t            *request;
    ngx_http_smarty_redis_cmd_t   *cmd;
    ngx_str_t                      space;
    ngx_int_t                      slot;
    size_t                         n;
    smarty_quota_item_t           *items;
    smarty_quota_state_t          *states;
    smarty_quota_limit_t          *scaled;
    const smarty_quota_limit_t   **limits;
    ngx_str_t                     *keys;
    ngx_str_t                     *args;
    ngx_str_t                    **clients;    /* NULL: the space's */
} ngx_http_smarty_quota_view_t;


static smarty_quota_set_t *ngx_http_smarty_quota_set(
    ngx_http_smarty_quota_sets_t *sets, ngx_int_t slot);
static ngx_int_t ngx_http_smarty_quota_slot(ngx_str_t *space);
static ngx_int_t ngx_http_smarty_quota_add(ngx_pool_t *pool,
    ngx_http_smarty_loc_conf_t *slcf, ngx_int_t space, ngx_str_t *client,
    const smarty_quota_limit_t *l, ngx_str_t *key, ngx_str_t *arg);
static void ngx_http_smarty_quota_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_quota_reply(ngx_http_smarty_quota_t *q,
    redisReply *reply, size_t offset, ngx_uint_t trailer,
    uint64_t requests, uint64_t images);
static ngx_int_t ngx_http_smarty_quota_local(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    uint64_t requests, uint64_t images);
static void ngx_http_smarty_quota_give_back(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    uint64_t requests, uint64_t images);
static const char **ngx_http_smarty_quota_argv(ngx_pool_t *pool,
    ngx_str_t *keys, ngx_str_t *args, size_t n, const int64_t *nums,
    size_t nnum, int *argc, size_t **argvlen);
static void ngx_http_smarty_quota_items(ngx_http_smarty_quota_t *q);
static ngx_table_elt_t *ngx_http_smarty_quota_header(ngx_http_request_t *r,
    const char *name, size_t len);
static void ngx_http_smarty_quota_ignore(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static int64_t ngx_http_smarty_quota_clock(void);
static size_t ngx_http_smarty_quota_code(ngx_http_smarty_quota_t *q,
    size_t i, char *out, size_t size);
static ngx_int_t ngx_http_smarty_quota_view_handler(ngx_http_request_t *r);
static void ngx_http_smarty_quota_view_done(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_quota_view_send(ngx_http_request_t *r,
    ngx_http_smarty_quota_view_t *v, ngx_uint_t local);
static void ngx_http_smarty_quota_view_cleanup(void *data);


static const char  *ngx_http_smarty_quota_status_text[] = {
    "", "PASS", "REFUSED", "LOCAL_PASS", "LOCAL_REFUSED", "CLOSED"
};


/* --- configuration -------------------------------------------------------- */


/* "0".."9", "detectors", "*" */

static ngx_int_t
ngx_http_smarty_quota_slot(ngx_str_t *space)
{
    if (space->len == 1 && space->data[0] >= '0' && space->data[0] <= '9') {
        return space->data[0] - '0';
    }

    if (space->len == 1 && space->data[0] == '*') {
        return SMARTY_QUOTA_ANY;
    }

    if (space->len == 9 && ngx_strncmp(space->data, "detectors", 9) == 0) {
        return SMARTY_QUOTA_DETECTORS;
    }

    return NGX_ERROR;
}


/*
 * One "<space> <policy>" pair into a set of sets; what names its origin in
 * errors ("smarty_quota_space", "clients file ...").
 */

char *
ngx_http_smarty_quota_sets_parse(ngx_conf_t *cf,
    ngx_http_smarty_quota_sets_t **sets, ngx_str_t *space, ngx_str_t *policy,
    const char *what)
{
    char                          err[160];
    ngx_int_t                     slot;
    smarty_quota_set_t           *set;
    ngx_http_smarty_main_conf_t  *smcf;

    slot = ngx_http_smarty_quota_slot(space);
    if (slot == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s: \"%V\" is not a space: \"0\" to \"9\", "
                           "\"*\" or \"detectors\"", what, space);
        return NGX_CONF_ERROR;
    }

    if (*sets == NULL) {
        *sets = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_quota_sets_t));
        if (*sets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if ((*sets)->set[slot]) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s: a second policy for space \"%V\"", what,
                           space);
        return NGX_CONF_ERROR;
    }

    set = ngx_pcalloc(cf->pool, sizeof(smarty_quota_set_t));
    if (set == NULL) {
        return NGX_CONF_ERROR;
    }

    if (smarty_quota_parse((const char *) policy->data, policy->len, set,
                           err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: %s", what, err);
        return NGX_CONF_ERROR;
    }

    (*sets)->set[slot] = set;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_smarty_module);
    smcf->quota_used = 1;

    return NGX_CONF_OK;
}


/* smarty_quota_space and smarty_quota_client <space> "<policy>" */

char *
ngx_http_smarty_quota_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                      *value;
    ngx_http_smarty_quota_sets_t  **sets;

    value = cf->args->elts;
    sets = (ngx_http_smarty_quota_sets_t **) (p + cmd->offset);

    return ngx_http_smarty_quota_sets_parse(cf, sets, &value[1], &value[2],
                                            (const char *) cmd->name.data);
}


/* smarty_quota_fallback local [share=N/M | share=0.25] | closed */

char *
ngx_http_smarty_quota_fallback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_loc_conf_t *slcf = conf;

    u_char      *p, *slash;
    ngx_int_t    num, den, frac;
    ngx_str_t   *value, s;

    if (slcf->quota_closed != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "closed") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no share with \"closed\"";
        }

        slcf->quota_closed = 1;
        slcf->quota_share_num = 1;
        slcf->quota_share_den = 1;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "local") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_fallback\": \"%V\" is neither "
                           "\"local\" nor \"closed\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    slcf->quota_closed = 0;
    slcf->quota_share_num = 1;
    slcf->quota_share_den = 1;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "share=", 6) != 0) {
        goto invalid;
    }

    s.data = value[2].data + 6;
    s.len = value[2].len - 6;

    slash = ngx_strlchr(s.data, s.data + s.len, '/');

    if (slash) {
        num = ngx_atoi(s.data, slash - s.data);
        den = ngx_atoi(slash + 1, s.data + s.len - slash - 1);

    } else {
        /* a decimal fraction, at most 6 digits after the point */

        p = ngx_strlchr(s.data, s.data + s.len, '.');
        num = ngx_atoi(s.data, p ? (size_t) (p - s.data) : s.len);
        den = 1;

        if (p && num != NGX_ERROR) {
            frac = (s.data + s.len - p - 1 > 0 && s.data + s.len - p - 1 <= 6)
                   ? ngx_atoi(p + 1, s.data + s.len - p - 1) : NGX_ERROR;

            if (frac == NGX_ERROR) {
                goto invalid;
            }

            for (p++; p < s.data + s.len; p++) {
                den *= 10;
            }

            num = num * den + frac;
        }
    }

    if (num == NGX_ERROR || den == NGX_ERROR || num <= 0 || den <= 0
        || num > den || den > 1000000)
    {
        goto invalid;
    }

    slcf->quota_share_num = num;
    slcf->quota_share_den = den;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"smarty_quota_fallback\": \"%V\" is not a share: "
                       "\"share=1/4\" or \"share=0.25\", more than 0 and at "
                       "most 1", &value[2]);
    return NGX_CONF_ERROR;
}


/* smarty_quota_view: this location is the operator's view */

char *
ngx_http_smarty_quota_view(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_loc_conf_t  *slcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->quota_view != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (cmd->name.len == sizeof("smarty_quota_status") - 1) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"smarty_quota_status\" is now called "
                           "\"smarty_quota_view\"");
    }

    slcf->quota_view = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_smarty_quota_view_handler;

    return NGX_CONF_OK;
}


static smarty_quota_set_t *
ngx_http_smarty_quota_set(ngx_http_smarty_quota_sets_t *sets, ngx_int_t slot)
{
    if (sets == NULL) {
        return NULL;
    }

    if (sets->set[slot]) {
        return sets->set[slot];
    }

    return slot < SMARTY_QUOTA_DETECTORS ? sets->set[SMARTY_QUOTA_ANY] : NULL;
}


/* a limit's key and its argument for the scripts */

static ngx_int_t
ngx_http_smarty_quota_add(ngx_pool_t *pool, ngx_http_smarty_loc_conf_t *slcf,
    ngx_int_t space, ngx_str_t *client, const smarty_quota_limit_t *l,
    ngx_str_t *key, ngx_str_t *arg)
{
    key->data = ngx_pnalloc(pool, SMARTY_QUOTA_KEY_LEN + SMARTY_QUOTA_ARG_LEN);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = smarty_quota_key((const char *) slcf->quota_prefix.data,
                                slcf->quota_prefix.len, (int) space,
                                client ? (const char *) client->data : NULL,
                                client ? client->len : 0, l,
                                (char *) key->data, SMARTY_QUOTA_KEY_LEN);

    if (key->len == 0 || key->len >= SMARTY_QUOTA_KEY_LEN) {
        return NGX_ERROR;
    }

    arg->data = key->data + SMARTY_QUOTA_KEY_LEN;
    arg->len = smarty_quota_limit_arg(l, (char *) arg->data,
                                      SMARTY_QUOTA_ARG_LEN);

    return arg->len < SMARTY_QUOTA_ARG_LEN ? NGX_OK : NGX_ERROR;
}


/* --- a request ------------------------------------------------------------ */


/* the limits of a request whose space and client are known */

ngx_int_t
ngx_http_smarty_quota_prepare(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    size_t                    i, k;
    ngx_int_t                 slot;
    smarty_quota_set_t       *sets[2];
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (!slcf->quota || ctx->client == NULL) {
        return NGX_OK;
    }

    slot = ctx->m.space < 0 ? SMARTY_QUOTA_DETECTORS : ctx->m.space;

    sets[0] = ngx_http_smarty_quota_set(slcf->quota_space, slot);
    sets[1] = ngx_http_smarty_quota_set(ctx->client->quota, slot);

    if (sets[1] == NULL) {
        sets[1] = ngx_http_smarty_quota_set(slcf->quota_client, slot);
    }

    for (k = 0; k < 2; k++) {
        if (sets[k] == NULL) {
            continue;
        }

        for (i = 0; i < sets[k]->n; i++) {
            q->limits[q->n] = &sets[k]->limit[i];
            q->items[q->n].limit = q->limits[q->n];
            q->items[q->n].state = &q->states[q->n];

            if (ngx_http_smarty_quota_add(r->pool, slcf, ctx->m.space,
                                          k ? &ctx->client->name : NULL,
                                          q->limits[q->n], &q->keys[q->n],
                                          &q->args[q->n])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            q->n++;
        }

        if (k == 0) {
            q->nspace = q->n;
        }
    }

    return NGX_OK;
}


/*
 * Decide (when the cache did not) and forward: quota.lua in Redis, or the
 * local fallback while Redis is away.
 */

void
ngx_http_smarty_quota_forward(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    int                       argc;
    size_t                   *argvlen;
    int64_t                   nums[2];
    ngx_int_t                 rc;
    const char              **argv;
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (q->n == 0 || q->status != SMARTY_QUOTA_NONE) {
        ngx_http_smarty_forward(r, slcf, ctx);
        return;
    }

    if (q->redis_failed
        || ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK)
    {
        rc = ngx_http_smarty_quota_local(r, slcf, ctx, 1, ctx->m.nimages);

        if (rc == NGX_OK) {
            ngx_http_smarty_forward(r, slcf, ctx);

        } else {
            ngx_http_smarty_quota_refuse(r, slcf, ctx);
        }

        return;
    }

    /* quota.lua: one request and the request's images */

    nums[0] = 1;
    nums[1] = ctx->m.nimages;

    argv = ngx_http_smarty_quota_argv(r->pool, q->keys, q->args, q->n, nums,
                                      2, &argc, &argvlen);
    if (argv == NULL) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
        return;
    }

    ctx->state = SMARTY_STATE_CACHE;

    q->cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_QUOTA, 0,
                                          ngx_http_smarty_quota_handler, r,
                                          (int) q->n, argc, argv, argvlen);
    if (q->cmd == NULL) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
    }
}


static void
ngx_http_smarty_quota_handler(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_loc_conf_t  *slcf;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);

    ctx->quota.cmd = NULL;

    rc = NGX_ERROR;

    if (status == NGX_HTTP_SMARTY_REDIS_OK) {
        rc = ngx_http_smarty_quota_reply(&ctx->quota, reply, 0, 0, 1,
                                         ctx->m.nimages);
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "smarty quota: Redis did not decide (%s): the local "
                      "fallback does",
                      status == NGX_HTTP_SMARTY_REDIS_OK
                      ? (reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "bad reply")
                      : ngx_http_smarty_redis_status_text(status));

        ctx->quota.redis_failed = 1;
        rc = ngx_http_smarty_quota_local(r, slcf, ctx, 1, ctx->m.nimages);
    }

    if (rc == NGX_OK) {
        ngx_http_smarty_forward(r, slcf, ctx);

    } else {
        ngx_http_smarty_quota_refuse(r, slcf, ctx);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The quota's part of a script's answer, from element offset:
 *   refused, retry_ms, now, remaining_1, reset_ms_1, ...
 * and with trailer the requests and images spent (the cache lookup's);
 * else requests and images are what an admission spent.  NGX_OK admitted,
 * NGX_DECLINED refused, NGX_ERROR not an answer.
 */

static ngx_int_t
ngx_http_smarty_quota_reply(ngx_http_smarty_quota_t *q, redisReply *reply,
    size_t offset, ngx_uint_t trailer, uint64_t requests, uint64_t images)
{
    size_t       i, n;
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    n = offset + 3 + 2 * q->n + (trailer ? 2 : 0);

    if (reply->elements != n) {
        return NGX_ERROR;
    }

    for (i = offset; i < n; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    e = reply->element[offset];

    if (e->integer < 0 || (size_t) e->integer > q->n) {
        return NGX_ERROR;
    }

    q->res.refused = e->integer;
    q->res.retry_ms = reply->element[offset + 1]->integer;
    q->res.now = reply->element[offset + 2]->integer;

    for (i = 0; i < q->n; i++) {
        q->items[i].limit = q->limits[i];
        q->items[i].remaining = reply->element[offset + 3 + 2 * i]->integer;
        q->items[i].reset_ms = reply->element[offset + 4 + 2 * i]->integer;
    }

    q->decided = 1;
    q->local = 0;

    if (q->res.refused) {
        q->status = SMARTY_QUOTA_REFUSED;
        return NGX_DECLINED;
    }

    if (trailer) {
        requests = reply->element[n - 2]->integer;
        images = reply->element[n - 1]->integer;
    }

    if (requests || images) {
        q->at = q->res.now;
    }

    q->spent_requests += requests;
    q->spent_images += images;
    q->status = SMARTY_QUOTA_PASS;

    return NGX_OK;
}


/* the cache lookup's script decided too: its answer from offset */

ngx_int_t
ngx_http_smarty_quota_lookup_reply(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, void *reply, size_t offset)
{
    ngx_int_t  rc;

    rc = ngx_http_smarty_quota_reply(&ctx->quota, reply, offset, 1, 0, 0);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "smarty quota: the cache lookup's answer holds no "
                      "quota decision");
    }

    return rc;
}


/*
 * Redis is away: the local fallback decides, on every limit scaled by the
 * configured share, or nothing does ("closed").  NGX_OK admitted,
 * NGX_DECLINED refused.
 */

static ngx_int_t
ngx_http_smarty_quota_local(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    uint64_t requests, uint64_t images)
{
    ngx_int_t                     rc;
    ngx_http_smarty_quota_t      *q;
    ngx_http_smarty_main_conf_t  *smcf;

    q = &ctx->quota;

    if (slcf->quota_closed == 1) {
        q->status = SMARTY_QUOTA_CLOSED;
        return NGX_DECLINED;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_module);

    if (smcf->quota_zone == NULL) {
        q->status = SMARTY_QUOTA_LOCAL_PASS;
        return NGX_OK;
    }

    ngx_http_smarty_quota_items(q);

    rc = ngx_http_smarty_quota_local_check(smcf->quota_zone, q->keys,
                                           q->items, q->scaled, q->n,
                                           slcf->quota_share_num,
                                           slcf->quota_share_den,
                                           ngx_http_smarty_quota_clock(),
                                           requests, images, &q->res,
                                           r->connection->log);

    if (rc == NGX_ERROR) {
        /* the zone is full: a fallback must not refuse for that */
        q->status = SMARTY_QUOTA_LOCAL_PASS;
        return NGX_OK;
    }

    q->decided = 1;
    q->local = 1;

    if (rc == 0) {
        q->status = SMARTY_QUOTA_LOCAL_REFUSED;
        return NGX_DECLINED;
    }

    q->status = SMARTY_QUOTA_LOCAL_PASS;
    q->at = q->res.now;
    q->spent_requests += requests;
    q->spent_images += images;

    return NGX_OK;
}


/* the answer to a refused request */

void
ngx_http_smarty_quota_refuse(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    char                     *p, *last, msg[256];
    size_t                    i;
    int64_t                   retry;
    const char               *whose;
    smarty_err_e              e;
    smarty_quota_item_t      *it;
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    /* a look again while coalescing may refuse what a first look spent */

    if (q->spent_requests || q->spent_images) {
        ngx_http_smarty_quota_give_back(r, slcf, ctx, q->spent_requests,
                                        q->spent_images);
    }

    if (q->status == SMARTY_QUOTA_CLOSED) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_QUOTA_UNAVAILABLE, NULL);
        return;
    }

    i = q->res.refused - 1;
    it = &q->items[i];
    whose = i < q->nspace ? "the space's" : "the client's";

    p = msg;
    last = msg + sizeof(msg);

    if (ctx->m.space < 0) {
        p = (char *) ngx_slprintf((u_char *) p, (u_char *) last,
                                  "detectors: ");
    } else {
        p = (char *) ngx_slprintf((u_char *) p, (u_char *) last,
                                  "space %i: ", ctx->m.space);
    }

    if (q->res.retry_ms == SMARTY_QUOTA_NEVER) {
        e = SMARTY_E_QUOTA_BATCH;
        p = (char *) ngx_slprintf((u_char *) p, (u_char *) last,
                                  "%s limit of %uL %s per %s can never "
                                  "admit this request; split it",
                                  whose,
                                  it->limit->window == 's'
                                  ? it->limit->burst : it->limit->count,
                                  smarty_quota_unit_name(it->limit),
                                  it->limit->window == 's'
                                  ? "burst" : smarty_quota_window_name(
                                                                  it->limit));

    } else {
        e = SMARTY_E_QUOTA_EXCEEDED;
        retry = smarty_quota_retry_after(q->res.retry_ms);
        p = (char *) ngx_slprintf((u_char *) p, (u_char *) last,
                                  "%s limit of %uL %s per %s is reached; "
                                  "retry in %L s", whose, it->limit->count,
                                  smarty_quota_unit_name(it->limit),
                                  smarty_quota_window_name(it->limit),
                                  retry);
    }

    if (q->local) {
        p = (char *) ngx_slprintf((u_char *) p, (u_char *) last,
                                  " (this gateway's share, while the "
                                  "shared quota store is away)");
    }

    *(p < last ? p : last - 1) = '\0';

    ngx_http_smarty_fail(r, ctx, e, msg);
}


/*
 * The cache decided: images go upstream.  Images paid for that were
 * answered from the cache after all (another request fetched them while
 * this one waited) are given back, and the request too when none goes.
 */

void
ngx_http_smarty_quota_settle(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    ngx_uint_t images)
{
    uint64_t                  back_r, back_i;
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (q->status != SMARTY_QUOTA_PASS || slcf->quota_hits) {
        return;
    }

    back_i = q->spent_images > images ? q->spent_images - images : 0;
    back_r = (images == 0) ? q->spent_requests : 0;

    if (back_i || back_r) {
        ngx_http_smarty_quota_give_back(r, slcf, ctx, back_r, back_i);
        q->spent_images -= back_i;
        q->spent_requests -= back_r;
    }
}


/* the upstream failed: its images come back (smarty_quota_refund) */

void
ngx_http_smarty_quota_finish(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e)
{
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (!slcf->quota_refund || q->spent_images == 0) {
        return;
    }

    if (q->status != SMARTY_QUOTA_PASS && q->status != SMARTY_QUOTA_LOCAL_PASS)
    {
        return;
    }

    if (e != SMARTY_E_UPSTREAM_UNAVAILABLE && e != SMARTY_E_UPSTREAM_ERROR
        && e != SMARTY_E_UPSTREAM_TIMEOUT)
    {
        return;
    }

    ngx_http_smarty_quota_give_back(r, slcf, ctx, 0, q->spent_images);
    q->spent_images = 0;
}


static void
ngx_http_smarty_quota_give_back(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    uint64_t requests, uint64_t images)
{
    int                           argc;
    size_t                       *argvlen;
    int64_t                       nums[3];
    const char                  **argv;
    ngx_http_smarty_quota_t      *q;
    ngx_http_smarty_main_conf_t  *smcf;

    q = &ctx->quota;

    if (q->local) {
        smcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_module);

        if (smcf->quota_zone == NULL) {
            return;
        }

        ngx_http_smarty_quota_items(q);

        (void) ngx_http_smarty_quota_local_refund(smcf->quota_zone, q->keys,
                                        q->items, q->scaled, q->n,
                                        slcf->quota_share_num,
                                        slcf->quota_share_den,
                                        ngx_http_smarty_quota_clock(), q->at,
                                        requests, images, r->connection->log);
        return;
    }

    /* quota_refund.lua: at, requests, images */

    nums[0] = q->at;
    nums[1] = (int64_t) requests;
    nums[2] = (int64_t) images;

    argv = ngx_http_smarty_quota_argv(r->pool, q->keys, q->args, q->n, nums,
                                      3, &argc, &argvlen);
    if (argv == NULL) {
        return;
    }

    /* fire and forget: a refund lost to a Redis failure is logged */

    (void) ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_QUOTA_REFUND,
                                        0, ngx_http_smarty_quota_ignore, NULL,
                                        (int) q->n, argc, argv, argvlen);
}


/*
 * The arguments of quota.lua and quota_refund.lua: KEYS, the n states'
 * keys; then ARGV, the clock ("": Redis's TIME), the nnum numbers and the
 * n limits.
 */

static const char **
ngx_http_smarty_quota_argv(ngx_pool_t *pool, ngx_str_t *keys,
    ngx_str_t *args, size_t n, const int64_t *nums, size_t nnum, int *argc,
    size_t **argvlen)
{
    u_char       *p;
    size_t        i, k, *lens;
    const char  **argv;

    k = n + 1 + nnum;                   /* the first limit */

    argv = ngx_palloc(pool, (k + n) * (sizeof(char *) + sizeof(size_t)));
    p = ngx_pnalloc(pool, nnum * NGX_INT64_LEN + 1);

    if (argv == NULL || p == NULL) {
        return NULL;
    }

    lens = (size_t *) (argv + k + n);

    for (i = 0; i < n; i++) {
        argv[i] = (const char *) keys[i].data;
        lens[i] = keys[i].len;
        argv[k + i] = (const char *) args[i].data;
        lens[k + i] = args[i].len;
    }

    argv[n] = "";
    lens[n] = 0;

    for (i = 0; i < nnum; i++) {
        argv[n + 1 + i] = (const char *) p;
        lens[n + 1 + i] = ngx_sprintf(p, "%L", nums[i]) - p;
        p += lens[n + 1 + i];
    }

    *argc = (int) (k + n);
    *argvlen = lens;

    return argv;
}


/* the items as prepare() made them, for the local fallback to scale */

static void
ngx_http_smarty_quota_items(ngx_http_smarty_quota_t *q)
{
    size_t  i;

    for (i = 0; i < q->n; i++) {
        q->items[i].limit = q->limits[i];
        q->items[i].state = &q->states[i];
    }
}


static void
ngx_http_smarty_quota_ignore(ngx_http_smarty_redis_status_e status,
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


void
ngx_http_smarty_quota_cleanup(ngx_http_smarty_ctx_t *ctx)
{
    if (ctx->quota.cmd) {
        ngx_http_smarty_redis_cancel(ctx->quota.cmd);
        ctx->quota.cmd = NULL;
    }
}


static int64_t
ngx_http_smarty_quota_clock(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/* --- what the client sees ------------------------------------------------- */


/* "client_images_minute": the limit's name, the code after "quota_" */

static size_t
ngx_http_smarty_quota_code(ngx_http_smarty_quota_t *q, size_t i, char *out,
    size_t size)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) out, size - 1, "%s_%s_%s",
                     i < q->nspace ? "space" : "client",
                     smarty_quota_unit_name(q->items[i].limit),
                     smarty_quota_window_name(q->items[i].limit));
    *p = '\0';

    return p - (u_char *) out;
}


/*
 * RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-07)
 * on every answer once the limits were decided, Retry-After on a 429.
 */

ngx_int_t
ngx_http_smarty_quota_headers(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx)
{
    size_t                    len, pick;
    int64_t                   retry;
    ngx_table_elt_t          *h;
    smarty_quota_item_t       item;
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (!q->decided || q->n == 0) {
        return NGX_OK;
    }

    pick = smarty_quota_pick(q->items, q->n, q->res.refused);

    len = smarty_quota_policy_header(q->items, q->n, NULL, 0);

    h = ngx_http_smarty_quota_header(r, "RateLimit-Policy", len);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = smarty_quota_policy_header(q->items, q->n,
                                              (char *) h->value.data,
                                              len + 1);

    /*
     * on a refusal, "reset" is the moment Retry-After names (draft-07:
     * both SHOULD point to the same moment); a GCRA's wait for room is
     * shorter than its time to drain
     */

    item = q->items[pick];

    if (q->res.refused && q->res.retry_ms >= 0) {
        item.reset_ms = q->res.retry_ms;
    }

    len = smarty_quota_ratelimit_header(&item, NULL, 0);

    h = ngx_http_smarty_quota_header(r, "RateLimit", len);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = smarty_quota_ratelimit_header(&item,
                                                 (char *) h->value.data,
                                                 len + 1);

    if (!q->res.refused) {
        return NGX_OK;
    }

    retry = smarty_quota_retry_after(q->res.retry_ms);
    if (retry < 0) {
        return NGX_OK;
    }

    h = ngx_http_smarty_quota_header(r, "Retry-After", NGX_INT64_LEN);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%L", retry) - h->value.data;

    return NGX_OK;
}


/* an answer's header, its value len + 1 bytes to be written */

static ngx_table_elt_t *
ngx_http_smarty_quota_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->value.data = ngx_pnalloc(r->pool, len + 1);
    if (h->value.data == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.len = 0;

    return h;
}


/*
 * The 429 and 413 envelopes name the limit: body.code
 * "quota_<scope>_<unit>_<window>" (429; 413 keeps quota_batch_too_large),
 * body.limit and body.retry_after (429).
 */

void
ngx_http_smarty_quota_error(ngx_http_smarty_ctx_t *ctx, void *body)
{
    char                      name[64], code[80], policy[64];
    size_t                    i;
    json_t                   *o = body;
    json_t                   *limit;
    smarty_quota_item_t      *it;
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (!q->decided || q->res.refused == 0 || q->res.refused > q->n) {
        return;
    }

    i = q->res.refused - 1;
    it = &q->items[i];

    (void) ngx_http_smarty_quota_code(q, i, name, sizeof(name));

    if (ctx->err == SMARTY_E_QUOTA_EXCEEDED) {
        (void) ngx_snprintf((u_char *) code, sizeof(code) - 1, "quota_%s%Z",
                            name);
        json_object_set_new(o, "code", json_string(code));
    }

    (void) smarty_quota_limit_text(it->limit, policy, sizeof(policy));

    limit = json_pack("{s:s, s:s, s:s, s:s}",
                      "scope", i < q->nspace ? "space" : "client",
                      "unit", smarty_quota_unit_name(it->limit),
                      "window", smarty_quota_window_name(it->limit),
                      "policy", policy);
    if (limit) {
        json_object_set_new(o, "limit", limit);
    }

    if (ctx->err == SMARTY_E_QUOTA_EXCEEDED) {
        json_object_set_new(o, "retry_after",
                 json_integer(smarty_quota_retry_after(q->res.retry_ms)));
    }
}


/* $smarty_quota_status, _limit, _remaining, _reset */

ngx_int_t
ngx_http_smarty_quota_variable(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t which, ngx_str_t *value)
{
    char                      name[64];
    size_t                    pick;
    ngx_http_smarty_quota_t  *q;

    q = &ctx->quota;

    if (which == 0) {
        value->data = (u_char *) ngx_http_smarty_quota_status_text[q->status];
        value->len = ngx_strlen(value->data);
        return NGX_OK;
    }

    if (!q->decided || q->n == 0) {
        value->len = 0;
        return NGX_OK;
    }

    pick = smarty_quota_pick(q->items, q->n, q->res.refused);

    value->data = ngx_pnalloc(r->pool, 64);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    switch (which) {

    case 1:
        value->len = ngx_http_smarty_quota_code(q, pick, name, sizeof(name));
        ngx_memcpy(value->data, name, value->len);
        break;

    case 2:
        value->len = ngx_sprintf(value->data, "%uL",
                                 q->items[pick].remaining)
                     - value->data;
        break;

    default:
        value->len = ngx_sprintf(value->data, "%L",
                                 (q->items[pick].reset_ms + 999) / 1000)
                     - value->data;
        break;
    }

    return NGX_OK;
}


/* --- the operator's view -------------------------------------------------- */


/*
 * GET <location>?space=1[&client=NAME]: the limits of the space and of its
 * clients (those of the clients file that may use the space), with what is
 * spent, read from Redis (nothing is spent by looking), or from the local
 * fallback while Redis is away.
 */

static ngx_int_t
ngx_http_smarty_quota_view_handler(ngx_http_request_t *r)
{
    static const int64_t            nothing[2] = { 0, 0 };

    int                             argc;
    size_t                          i, k, n, *argvlen;
    ngx_int_t                       rc, slot;
    ngx_str_t                       name, *cname;
    ngx_uint_t                      j;
    const char                    **argv;
    smarty_err_e                    e;
    ngx_http_cleanup_t             *cln;
    smarty_quota_set_t             *set;
    ngx_http_smarty_client_t       *cl;
    ngx_http_smarty_loc_conf_t     *slcf;
    ngx_http_smarty_quota_view_t   *v;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_smarty_send_error(r, NULL,
                                          SMARTY_E_METHOD_NOT_ALLOWED, NULL);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);

    /* only an operator: the view names every client and its usage */

    e = ngx_http_smarty_identify(r, slcf->clients, &cl);
    if (e != SMARTY_OK) {
        return ngx_http_smarty_send_error(r, NULL, e, NULL);
    }

    if (!cl->operator) {
        return ngx_http_smarty_send_error(r, NULL,
                                          SMARTY_E_OPERATOR_FORBIDDEN, NULL);
    }

    v = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_quota_view_t));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->request = r;

    if (ngx_http_arg(r, (u_char *) "space", 5, &v->space) != NGX_OK) {
        ngx_str_set(&v->space, "");
    }

    slot = ngx_http_smarty_quota_slot(&v->space);

    if (slot == NGX_ERROR || slot == SMARTY_QUOTA_ANY) {
        return ngx_http_smarty_send_error(r, NULL, SMARTY_E_BAD_SPACE,
                                          "\"space\" must be \"0\" to \"9\" "
                                          "or \"detectors\"");
    }

    v->slot = slot;

    if (ngx_http_arg(r, (u_char *) "client", 6, &name) != NGX_OK) {
        name.len = 0;
    }

    /* how many limits: the space's, then each client's */

    cl = slcf->clients ? slcf->clients->clients.elts : NULL;
    n = SMARTY_QUOTA_MAX_LIMITS;

    for (j = 0; cl && j < slcf->clients->clients.nelts; j++) {
        n += SMARTY_QUOTA_MAX_LIMITS;
    }

    v->items = ngx_pcalloc(r->pool, n * (sizeof(smarty_quota_item_t)
                                         + sizeof(smarty_quota_state_t)
                                         + sizeof(smarty_quota_limit_t)
                                         + sizeof(smarty_quota_limit_t *)
                                         + 2 * sizeof(ngx_str_t)
                                         + sizeof(ngx_str_t *)));
    if (v->items == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->states = (smarty_quota_state_t *) (v->items + n);
    v->scaled = (smarty_quota_limit_t *) (v->states + n);
    v->limits = (const smarty_quota_limit_t **) (v->scaled + n);
    v->keys = (ngx_str_t *) (v->limits + n);
    v->args = v->keys + n;
    v->clients = (ngx_str_t **) (v->args + n);

    for (j = 0; ; j++) {

        if (j == 0) {
            set = slcf->quota ? ngx_http_smarty_quota_set(slcf->quota_space,
                                                          slot)
                              : NULL;
            cname = NULL;

        } else {
            if (cl == NULL || j > slcf->clients->clients.nelts) {
                break;
            }

            cname = &cl[j - 1].name;

            if ((slot < SMARTY_QUOTA_DETECTORS
                 && !(cl[j - 1].spaces & (1 << slot)))
                || (name.len
                    && (name.len != cname->len
                        || ngx_strncmp(name.data, cname->data, name.len)
                           != 0)))
            {
                continue;
            }

            set = ngx_http_smarty_quota_set(cl[j - 1].quota, slot);
            if (set == NULL) {
                set = ngx_http_smarty_quota_set(slcf->quota_client, slot);
            }

            if (!slcf->quota) {
                set = NULL;
            }
        }

        for (k = 0; set && k < set->n; k++) {
            i = v->n++;

            v->limits[i] = &set->limit[k];
            v->items[i].limit = v->limits[i];
            v->items[i].state = &v->states[i];
            v->clients[i] = cname;

            if (ngx_http_smarty_quota_add(r->pool, slcf,
                                          slot == SMARTY_QUOTA_DETECTORS
                                          ? -1 : slot,
                                          cname, v->limits[i], &v->keys[i],
                                          &v->args[i])
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    if (v->n == 0
        || ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK)
    {
        return ngx_http_smarty_quota_view_send(r, v, v->n > 0);
    }

    /* quota.lua spending nothing: every limit's remaining and reset */

    argv = ngx_http_smarty_quota_argv(r->pool, v->keys, v->args, v->n, nothing,
                                      2, &argc, &argvlen);
    if (argv == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_smarty_quota_view_cleanup;
    cln->data = v;

    v->cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_QUOTA, 0,
                                          ngx_http_smarty_quota_view_done, v,
                                          (int) v->n, argc, argv, argvlen);
    if (v->cmd == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_smarty_quota_view_done(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_quota_view_t *v = data;

    size_t               i;
    ngx_uint_t           local;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = v->request;
    c = r->connection;

    v->cmd = NULL;
    local = 1;

    if (status == NGX_HTTP_SMARTY_REDIS_OK
        && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 3 + 2 * v->n)
    {
        local = 0;

        for (i = 0; i < v->n; i++) {
            if (reply->element[3 + 2 * i]->type != REDIS_REPLY_INTEGER
                || reply->element[4 + 2 * i]->type != REDIS_REPLY_INTEGER)
            {
                local = 1;
                break;
            }

            v->items[i].remaining = reply->element[3 + 2 * i]->integer;
            v->items[i].reset_ms = reply->element[4 + 2 * i]->integer;
        }
    }

    ngx_http_finalize_request(r, ngx_http_smarty_quota_view_send(r, v, local));
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_smarty_quota_view_send(ngx_http_request_t *r,
    ngx_http_smarty_quota_view_t *v, ngx_uint_t local)
{
    char                          name[64], policy[64];
    size_t                        i;
    json_t                       *o, *list, *e;
    uint64_t                      cap;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    smarty_quota_item_t          *it;
    ngx_http_smarty_loc_conf_t   *slcf;
    ngx_http_smarty_main_conf_t  *smcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);
    smcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_module);

    if (local && v->n) {
        if (smcf->quota_zone) {
            ngx_http_smarty_quota_local_peek(smcf->quota_zone, v->keys,
                                             v->items, v->scaled, v->n,
                                             slcf->quota_share_num,
                                             slcf->quota_share_den,
                                             ngx_http_smarty_quota_clock(),
                                             r->connection->log);
        } else {
            smarty_quota_peek(v->items, v->n, ngx_http_smarty_quota_clock());
        }
    }

    list = json_array();
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < v->n; i++) {
        it = &v->items[i];
        cap = it->limit->window == 's' ? it->limit->burst : it->limit->count;

        (void) ngx_snprintf((u_char *) name, sizeof(name) - 1, "%s_%s_%s%Z",
                            v->clients[i] ? "client" : "space",
                            smarty_quota_unit_name(it->limit),
                            smarty_quota_window_name(it->limit));
        (void) smarty_quota_limit_text(it->limit, policy, sizeof(policy));

        e = json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
                      "scope", v->clients[i] ? "client" : "space",
                      "client", v->clients[i]
                                ? json_stringn((const char *)
                                               v->clients[i]->data,
                                               v->clients[i]->len)
                                : json_null(),
                      "code", name,
                      "policy", policy,
                      "limit", (json_int_t) it->limit->count,
                      "capacity", (json_int_t) cap,
                      "remaining", (json_int_t) it->remaining,
                      "used", (json_int_t) (it->remaining < cap
                                            ? cap - it->remaining : 0),
                      "reset_ms", (json_int_t) it->reset_ms);

        if (e == NULL || json_array_append_new(list, e) != 0) {
            json_decref(list);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    o = json_pack("{s:s%, s:s, s:o}",
                  "space", v->space.data, v->space.len,
                  "source", local ? "local" : "redis",
                  "limits", list);
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_smarty_json_buf(r->pool, o);
    json_decref(o);

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_smarty_send_chain(r, NULL, NGX_HTTP_OK, &out,
                                      b->last - b->pos);
}


static void
ngx_http_smarty_quota_view_cleanup(void *data)
{
    ngx_http_smarty_quota_view_t *v = data;

    if (v->cmd) {
        ngx_http_smarty_redis_cancel(v->cmd);
        v->cmd = NULL;
    }
}
