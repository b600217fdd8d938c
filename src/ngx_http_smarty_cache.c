/*
 * smarty-gateway: the recognize and detector cache in Redis (see
 * ngx_http_smarty_cache.h, docs/cache.md).
 *
 * One round trip looks a request up: src/lua/cache_get.lua reads the
 * space's token (generation and node) and every image, takes the
 * coalescing locks, and decides the slice of another concern it is handed
 * (the quotas).  Every key a script touches is in its KEYS, under the
 * space's hash tag (one Redis Cluster slot).  Every
 * image cached: the answer is rebuilt with the caller's part names; some:
 * only the others go upstream; none: the client's body goes as it is.
 * Answers are stored by src/lua/cache_put.lua only if the generation did
 * not move meanwhile (ngx_http_smarty_cache_gen.c counts the changes).
 * What the client sees of it: ngx_http_smarty_cache_answer.c.
 */

#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_cache_request.h"


static ngx_int_t ngx_http_smarty_cache_cacheable(ngx_http_smarty_ctx_t *ctx);
static ngx_int_t ngx_http_smarty_cache_keys(ngx_http_request_t *r,
    ngx_http_smarty_cache_conf_t *ccf, ngx_http_smarty_ctx_t *ctx,
    ngx_http_smarty_cache_ctx_t *c);
static ngx_int_t ngx_http_smarty_cache_init(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_http_smarty_cache_ctx_t *c);
static ngx_int_t ngx_http_smarty_cache_send(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c);
static void ngx_http_smarty_cache_lookup_handler(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_cache_unavailable(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c);
static void ngx_http_smarty_cache_poll_handler(ngx_event_t *ev);
static void ngx_http_smarty_cache_decide(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c);
static void ngx_http_smarty_cache_ignore(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_cache_cleanup(void *data);
static void *ngx_http_smarty_cache_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_cache_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_smarty_cache_commands[] = {

    { ngx_string("smarty_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_cache_conf_t, enable),
      NULL },

    { ngx_string("smarty_cache_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_cache_conf_t, prefix),
      NULL },

    { ngx_string("smarty_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_cache_conf_t, ttl),
      NULL },

    { ngx_string("smarty_cache_wait"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_cache_conf_t, wait),
      NULL },

    { ngx_string("smarty_cache_status1"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_cache_conf_t, status1),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_cache_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_cache_create_conf,     /* create location configuration */
    ngx_http_smarty_cache_merge_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_cache_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_cache_module_ctx,     /* module context */
    ngx_http_smarty_cache_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_int_t
ngx_http_smarty_cache_prepare(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_smarty_ctx_t         *ctx;
    ngx_http_smarty_cache_ctx_t   *c;
    ngx_http_smarty_cache_conf_t  *ccf;

    ccf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_cache_module);

    if (!ccf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_smarty_ctx(r);

    c = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_cache_ctx_t));
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->request = r;
    ngx_http_set_ctx(r, c, ngx_http_smarty_cache_module);

    /* every request of a cached location: a write bumps the generation */

    if (ngx_http_smarty_cache_keys(r, ccf, ctx, c) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_http_smarty_cache_cacheable(ctx)) {
        c->status = SMARTY_CACHE_BYPASS;
        return NGX_DECLINED;
    }

    /*
     * not while Redis is known to be away (breaker open, not connected);
     * a connection being established queues the lookup, so a worker that
     * has just started uses the cache from its first request
     */

    if (ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK) {
        c->status = SMARTY_CACHE_UNAVAILABLE;
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_smarty_cache_cleanup;
    cln->data = c;

    c->deadline = ngx_current_msec + ccf->wait;

    return ngx_http_smarty_cache_init(r, ctx, c);
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

int
ngx_http_smarty_cache_aliases(ngx_http_smarty_ctx_t *ctx)
{
    return ctx->method->id == SMARTY_M_PERSONS_RECOGNIZE ? 0 : -1;
}


/* the key base, the generation key and the parameters' id */

static ngx_int_t
ngx_http_smarty_cache_keys(ngx_http_request_t *r,
    ngx_http_smarty_cache_conf_t *ccf, ngx_http_smarty_ctx_t *ctx,
    ngx_http_smarty_cache_ctx_t *c)
{
    size_t   n;
    u_char  *p;

    n = ccf->prefix.len + 16;

    p = ngx_pnalloc(r->pool, 2 * n + sizeof(":gen") + SMARTY_PARAMS_ID_LEN
                             + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    c->base.data = p;
    c->base.len = smarty_cache_base((const char *) ccf->prefix.data,
                                    ccf->prefix.len, ctx->m.space,
                                    (char *) p, n);

    if (c->base.len == 0 || c->base.len >= n) {
        return NGX_ERROR;
    }

    c->gen_key.data = p + n;
    c->gen_key.len = smarty_cache_gen_key((const char *) c->base.data,
                                          c->base.len,
                                          (char *) c->gen_key.data, n + 5);

    c->params.data = c->gen_key.data + c->gen_key.len;

    if (smarty_cache_params_id(ctx->method->path, ctx->m.params,
                               ctx->m.params_len,
                               (const char *) ctx->args.data, ctx->args.len,
                               (char *) c->params.data)
        != 0)
    {
        return NGX_ERROR;
    }

    c->params.len = SMARTY_PARAMS_ID_LEN;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_cache_init(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    ngx_http_smarty_cache_ctx_t *c)
{
    static ngx_uint_t         seq;

    u_char                   *p;
    size_t                    klen;
    ngx_uint_t                i;
    ngx_http_smarty_part_t   *parts;

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

    /* the entries' and the locks' keys: KEYS of both scripts */

    c->ekey = ngx_palloc(r->pool, 2 * c->n * sizeof(ngx_str_t));
    if (c->ekey == NULL) {
        return NGX_ERROR;
    }

    c->lkey = c->ekey + c->n;

    klen = c->base.len + sizeof(":lock:") + SMARTY_PARAMS_ID_LEN + 1
           + 2 * SMARTY_SHA256_LEN + 1;

    p = ngx_pnalloc(r->pool, c->n * 2 * klen);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < c->n; i++) {
        c->ekey[i].data = p;
        c->ekey[i].len = smarty_cache_entry_key((const char *) c->base.data,
                                    c->base.len, (const char *) c->params.data,
                                    (const char *) c->hex[i].data,
                                    (char *) p, klen);
        p += klen;

        c->lkey[i].data = p;
        c->lkey[i].len = smarty_cache_lock_key((const char *) c->base.data,
                                    c->base.len, (const char *) c->params.data,
                                    (const char *) c->hex[i].data,
                                    (char *) p, klen);
        p += klen;

        if (c->ekey[i].len >= klen || c->lkey[i].len >= klen) {
            return NGX_ERROR;
        }
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

    c->poll.handler = ngx_http_smarty_cache_poll_handler;
    c->poll.data = r;
    c->poll.log = r->connection->log;

    return NGX_OK;
}


ngx_int_t
ngx_http_smarty_cache_lookup(ngx_http_request_t *r,
    ngx_http_smarty_redis_slice_t *slice, ngx_http_smarty_next_pt next)
{
    ngx_http_smarty_cache_ctx_t  *c;

    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);

    c->slice = slice;
    c->next = next;

    if (ngx_http_smarty_cache_send(r, c) != NGX_OK) {
        c->status = SMARTY_CACHE_UNAVAILABLE;

        if (slice) {
            (void) slice->reply(slice->data, NULL, 0);
        }

        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


/*
 * cache_get.lua: KEYS the generation, the slice's, the images' entries and
 * their locks; ARGV the lock's lifetime and owner, the slice's arguments
 * ("0" without a slice: no quota).
 */

static ngx_int_t
ngx_http_smarty_cache_send(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c)
{
    u_char                         *num;
    size_t                         *argvlen;
    ngx_uint_t                      i, j, argc, nkeys;
    const char                    **argv;
    ngx_http_smarty_cache_conf_t   *ccf;
    ngx_http_smarty_redis_slice_t  *s;

    ccf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_cache_module);
    s = c->slice;

    if (s && s->build(s->data) != NGX_OK) {
        return NGX_ERROR;
    }

    nkeys = 1 + (s ? s->nkeys : 0) + 2 * c->n;
    argc = nkeys + 2 + (s ? s->nargs : 1);

    argv = ngx_palloc(r->pool, argc * (sizeof(char *) + sizeof(size_t)));
    num = ngx_pnalloc(r->pool, NGX_INT64_LEN);

    if (argv == NULL || num == NULL) {
        return NGX_ERROR;
    }

    argvlen = (size_t *) (argv + argc);
    j = 0;

    argv[j] = (const char *) c->gen_key.data;
    argvlen[j++] = c->gen_key.len;

    for (i = 0; s && i < s->nkeys; i++) {
        argv[j] = (const char *) s->keys[i].data;
        argvlen[j++] = s->keys[i].len;
    }

    for (i = 0; i < c->n; i++) {
        argv[j] = (const char *) c->ekey[i].data;
        argvlen[j++] = c->ekey[i].len;
    }

    for (i = 0; i < c->n; i++) {
        argv[j] = (const char *) c->lkey[i].data;
        argvlen[j++] = c->lkey[i].len;
    }

    argv[j] = (const char *) num;
    argvlen[j++] = ngx_sprintf(num, "%M", ccf->wait) - num;
    argv[j] = (const char *) c->owner.data;
    argvlen[j++] = c->owner.len;

    if (s == NULL) {
        argv[j] = "0";
        argvlen[j++] = 1;
    }

    for (i = 0; s && i < s->nargs; i++) {
        argv[j] = (const char *) s->args[i].data;
        argvlen[j++] = s->args[i].len;
    }

    c->cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_CACHE_GET,
                                    0, ngx_http_smarty_cache_lookup_handler,
                                    r, (int) nkeys, (int) argc, argv,
                                    argvlen);

    return c->cmd ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_smarty_cache_lookup_handler(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    size_t                          nslice;
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    redisReply                     *e;
    ngx_http_smarty_cache_ctx_t    *c;
    ngx_http_smarty_redis_slice_t  *s;

    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);
    s = c->slice;
    nslice = s ? s->nreply : 0;

    c->cmd = NULL;

    rc = (status == NGX_HTTP_SMARTY_REDIS_OK
          && reply->type == REDIS_REPLY_ARRAY
          && reply->elements == c->n + 1 + nslice
          && reply->element[0]->type == REDIS_REPLY_STRING)
         ? NGX_OK : NGX_ERROR;

    if (rc == NGX_OK && s) {
        rc = s->reply(s->data, reply->element + c->n + 1, nslice);

        if (rc == NGX_DECLINED) {
            if (c->lookup) {
                /* refused on a look again: locks of the first look go */
                (void) ngx_http_smarty_cache_store(r, c, NULL);
            }

            c->decision = NGX_HTTP_SMARTY_CACHE_REFUSED;
            c->next(r);
            return;
        }
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
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
            ngx_str_set(&c->gen, "");
            (void) ngx_http_smarty_cache_store(r, c, NULL);
        }

        if (s && status != NGX_HTTP_SMARTY_REDIS_OK) {
            /* the slice was not decided: its concern must know */
            (void) s->reply(s->data, NULL, 0);
        }

        ngx_http_smarty_cache_unavailable(r, c);
        return;
    }

    e = reply->element[0];

    if (c->gen.data == NULL || c->gen.len < e->len) {
        c->gen.data = ngx_pnalloc(r->pool, e->len);
        if (c->gen.data == NULL) {
            ngx_http_smarty_cache_unavailable(r, c);
            return;
        }
    }

    ngx_memcpy(c->gen.data, e->str, e->len);
    c->gen.len = e->len;
    c->lookup = 1;
    c->hits = 0;
    c->waiting = 0;

    for (i = 0; i < c->n; i++) {
        e = reply->element[i + 1];

        if (e->type == REDIS_REPLY_STRING) {
            c->value[i].data = ngx_pnalloc(r->pool, e->len);
            if (c->value[i].data == NULL) {
                ngx_http_smarty_cache_unavailable(r, c);
                return;
            }

            ngx_memcpy(c->value[i].data, e->str, e->len);
            c->value[i].len = e->len;
            c->state[i] = SMARTY_CE_HIT;
            c->hits++;
            continue;
        }

        if (e->type == REDIS_REPLY_INTEGER && e->integer == SMARTY_CE_WAITING)
        {
            c->state[i] = SMARTY_CE_WAITING;
            c->waiting++;
            continue;
        }

        if (e->type == REDIS_REPLY_INTEGER && e->integer == SMARTY_CE_LOCKED)
        {
            c->state[i] = SMARTY_CE_LOCKED;
            c->holds = 1;
            continue;
        }

        c->state[i] = SMARTY_CE_MISS;
    }

    ngx_http_smarty_cache_decide(r, c);
}


/* Redis did not answer the lookup: the whole body goes, nothing is stored */

static void
ngx_http_smarty_cache_unavailable(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c)
{
    c->status = SMARTY_CACHE_UNAVAILABLE;
    c->lookup = 0;
    c->nup = 0;
    c->decision = NGX_HTTP_SMARTY_CACHE_FORWARD;

    c->next(r);
}


static void
ngx_http_smarty_cache_decide(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c)
{
    size_t                  len;
    char                   *json;
    ngx_uint_t              i;
    const char            **names, **values;
    ngx_http_smarty_ctx_t  *ctx;

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

    c->decision = NGX_HTTP_SMARTY_CACHE_FORWARD;

    if (c->hits < c->n) {
        c->nup = 0;

        for (i = 0; i < c->n; i++) {
            if (c->state[i] != SMARTY_CE_HIT) {
                c->up[c->nup++] = i;
            }
        }

        c->status = c->hits ? SMARTY_CACHE_PARTIAL : SMARTY_CACHE_MISS;
        c->next(r);
        return;
    }

    /* every image cached: the answer without the upstream */

    ctx = ngx_http_smarty_ctx(r);
    c->status = SMARTY_CACHE_HIT;
    c->nup = 0;

    names = ngx_palloc(r->pool, 2 * c->n * sizeof(char *));
    if (names == NULL) {
        ngx_http_smarty_cache_unavailable(r, c);
        return;
    }

    values = names + c->n;

    for (i = 0; i < c->n; i++) {
        names[i] = ctx->m.images[i].name;
        values[i] = ngx_http_smarty_cache_cstr(r, &c->value[i]);
        if (values[i] == NULL) {
            ngx_http_smarty_cache_unavailable(r, c);
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
        c->next(r);
        return;
    }

    c->answer = ngx_http_smarty_cache_chain(r, json, len);
    c->answer_len = len;

    if (c->answer == NULL) {
        ngx_http_smarty_cache_unavailable(r, c);
        return;
    }

    c->decision = NGX_HTTP_SMARTY_CACHE_ANSWER;
    c->next(r);
}


static void
ngx_http_smarty_cache_poll_handler(ngx_event_t *ev)
{
    ngx_http_request_t *r = ev->data;

    ngx_http_smarty_cache_ctx_t  *c;

    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);

    if (ngx_http_smarty_cache_send(r, c) != NGX_OK) {
        if (c->slice) {
            (void) c->slice->reply(c->slice->data, NULL, 0);
        }

        ngx_http_smarty_cache_unavailable(r, c);
    }
}


ngx_http_smarty_cache_decision_e
ngx_http_smarty_cache_decision(ngx_http_request_t *r, ngx_chain_t **answer,
    size_t *len, ngx_uint_t **up, ngx_uint_t *nup)
{
    ngx_http_smarty_cache_ctx_t  *c;

    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);

    if (c == NULL) {
        /* not a cached location: the client's body goes */
        *answer = NULL;
        *len = 0;
        *up = NULL;
        *nup = ngx_http_smarty_ctx(r)->m.nimages;

        return NGX_HTTP_SMARTY_CACHE_FORWARD;
    }

    *answer = c->answer;
    *len = c->answer_len;

    /* the images sent: the missing ones of a partial hit, else all */

    *up = (c->status == SMARTY_CACHE_PARTIAL) ? c->up : NULL;
    *nup = (c->status == SMARTY_CACHE_PARTIAL) ? c->nup : c->n;

    if (c->decision == NGX_HTTP_SMARTY_CACHE_ANSWER) {
        *nup = 0;
    }

    return c->decision;
}


/*
 * cache_put: the cacheable answers (ans NULL: none, only the locks are
 * released).  Fire and forget: the request does not wait for it.  Nothing
 * comes from the request's pool: this runs from its cleanup too, when the
 * pool is going.
 */

ngx_int_t
ngx_http_smarty_cache_store(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c, smarty_answer_t *ans)
{
    u_char                         ttl[NGX_INT_T_LEN];
    size_t                        *argvlen;
    ngx_uint_t                     i, j, k, argc, idx, a;
    const char                   **argv;
    ngx_http_smarty_cache_conf_t  *ccf;
    ngx_http_smarty_redis_cmd_t   *cmd;

    ccf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_cache_module);
    k = c->nup ? c->nup : c->n;
    c->holds = 0;

    /* KEYS: the generation, k entries, k locks; ARGV: token, ttl, owner,
     * k answers */

    argc = 1 + 2 * k + 3 + k;

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)),
                     r->connection->log);
    if (argv == NULL) {
        return NGX_ERROR;
    }

    argvlen = (size_t *) (argv + argc);

    argv[0] = (const char *) c->gen_key.data;
    argvlen[0] = c->gen_key.len;

    a = 1 + 2 * k;                                /* the first ARGV */

    argv[a] = (const char *) c->gen.data;
    argvlen[a] = c->gen.len;
    argv[a + 1] = (const char *) ttl;
    argvlen[a + 1] = ngx_sprintf(ttl, "%M", ccf->ttl) - ttl;
    argv[a + 2] = (const char *) c->owner.data;
    argvlen[a + 2] = c->owner.len;

    for (i = 0; i < k; i++) {
        idx = c->nup ? c->up[i] : i;

        argv[1 + i] = (const char *) c->ekey[idx].data;
        argvlen[1 + i] = c->ekey[idx].len;
        argv[1 + k + i] = (const char *) c->lkey[idx].data;
        argvlen[1 + k + i] = c->lkey[idx].len;

        j = a + 3 + i;

        if (ans && ans->values[i] && ans->cacheable[i]) {
            argv[j] = ans->values[i];
            argvlen[j] = ans->lens[i];
            c->stored = 1;

        } else {
            argv[j] = "";
            argvlen[j] = 0;
        }
    }

    /* the command copies its arguments */

    cmd = ngx_http_smarty_redis_script(NGX_HTTP_SMARTY_REDIS_LUA_CACHE_PUT, 0,
                                       ngx_http_smarty_cache_ignore, NULL,
                                       (int) (1 + 2 * k), (int) argc, argv,
                                       argvlen);
    ngx_free(argv);

    return cmd ? NGX_OK : NGX_ERROR;
}


const char *
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

ngx_chain_t *
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
 * The request's pool is going: the store takes nothing from it.
 */

static void
ngx_http_smarty_cache_cleanup(void *data)
{
    ngx_http_smarty_cache_ctx_t  *c = data;

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
        (void) ngx_http_smarty_cache_store(c->request, c, NULL);
    }
}


static void *
ngx_http_smarty_cache_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_cache_conf_t  *ccf;

    ccf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_cache_conf_t));
    if (ccf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ccf->prefix = { 0, NULL };
     */

    ccf->enable = NGX_CONF_UNSET;
    ccf->ttl = NGX_CONF_UNSET_MSEC;
    ccf->wait = NGX_CONF_UNSET_MSEC;
    ccf->status1 = NGX_CONF_UNSET;

    return ccf;
}


static char *
ngx_http_smarty_cache_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_cache_conf_t  *prev = parent;
    ngx_http_smarty_cache_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "smarty:");
    ngx_conf_merge_msec_value(conf->ttl, prev->ttl, 3600000);
    ngx_conf_merge_msec_value(conf->wait, prev->wait, 5000);
    ngx_conf_merge_value(conf->status1, prev->status1, 0);

    if (conf->ttl == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_cache_ttl\" must not be zero");
        return NGX_CONF_ERROR;
    }

    /* the gateway sets the hash tags: smarty_cache_base() refuses braces */

    if (smarty_cache_base((const char *) conf->prefix.data,
                             conf->prefix.len, 0, NULL, 0)
           == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_cache_prefix\" must not hold \"{\" or "
                           "\"}\": the gateway sets the hash tags");
        return NGX_CONF_ERROR;
    }

    if (conf->prefix.len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_cache_prefix\" is longer than 64 bytes");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
