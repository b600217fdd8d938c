/*
 * smarty-gateway: quotas per space and per client (see
 * ngx_http_smarty_quota.h, docs/quota.md).
 *
 * A request's limits are its space's set and its client's set.  They are
 * decided in the cache lookup's own round trip when the cache looks the
 * request up (a slice of its script), else with the Redis store, else,
 * Redis being away, with the local store (or not at all: "closed", 503).
 * Images the upstream never processed are given back to the store that
 * spent them.  What the client sees of it: ngx_http_smarty_quota_answer.c.
 */

#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_quota_request.h"
#include "ngx_http_smarty_auth.h"



typedef struct {
    size_t                               zone_size;
    ngx_shm_zone_t                      *zone;     /* the local store's */
} ngx_http_smarty_quota_main_conf_t;


static ngx_int_t ngx_http_smarty_quota_slice_build(void *data);
static ngx_int_t ngx_http_smarty_quota_slice_reply(void *data,
    redisReply **element, size_t n);
static void ngx_http_smarty_quota_done(ngx_http_smarty_quota_call_t *call,
    ngx_int_t rc);
static void ngx_http_smarty_quota_spent(ngx_http_smarty_quota_ctx_t *q,
    const ngx_http_smarty_quota_store_t *store, uint64_t requests,
    uint64_t images);
static void ngx_http_smarty_quota_local(ngx_http_smarty_quota_ctx_t *q);
static void ngx_http_smarty_quota_cleanup(void *data);
static char *ngx_http_smarty_quota_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_quota_fallback(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_smarty_quota_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_quota_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_smarty_quota_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_quota_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_smarty_quota_commands[] = {

    { ngx_string("smarty_quota"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_conf_t, enable),
      NULL },

    { ngx_string("smarty_quota_space"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_smarty_quota_policy,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_conf_t, space),
      NULL },

    { ngx_string("smarty_quota_client"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_smarty_quota_policy,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_conf_t, client),
      NULL },

    { ngx_string("smarty_quota_hits"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_conf_t, hits),
      NULL },

    { ngx_string("smarty_quota_refund"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_conf_t, refund),
      NULL },

    { ngx_string("smarty_quota_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_smarty_quota_fallback,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_quota_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_conf_t, prefix),
      NULL },

    { ngx_string("smarty_quota_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_quota_main_conf_t, zone_size),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_quota_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_quota_create_main_conf, /* create main configuration */
    ngx_http_smarty_quota_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_quota_create_conf,     /* create location configuration */
    ngx_http_smarty_quota_merge_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_quota_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_quota_module_ctx,     /* module context */
    ngx_http_smarty_quota_commands,        /* module directives */
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


/* --- a request's limits --------------------------------------------------- */


ngx_int_t
ngx_http_smarty_quota_prepare(ngx_http_request_t *r)
{
    int                                slot;
    size_t                             i, k, n;
    ngx_http_smarty_ctx_t             *ctx;
    const smarty_quota_set_t          *sets[2];
    ngx_http_smarty_quota_ctx_t       *q;
    ngx_http_smarty_quota_conf_t      *qcf;
    ngx_http_smarty_quota_main_conf_t *qmcf;

    ctx = ngx_http_smarty_ctx(r);
    qcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_quota_module);
    qmcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_quota_module);

    if (!qcf->enable || ctx->client == NULL) {
        return NGX_OK;
    }

    slot = ctx->m.space < 0 ? SMARTY_QUOTA_DETECTORS : ctx->m.space;

    sets[0] = smarty_quota_sets_get(qcf->space, slot);
    sets[1] = smarty_quota_sets_get(ctx->client->quota, slot);

    if (sets[1] == NULL) {
        sets[1] = smarty_quota_sets_get(qcf->client, slot);
    }

    n = (sets[0] ? sets[0]->n : 0) + (sets[1] ? sets[1]->n : 0);

    if (n == 0) {
        return NGX_OK;
    }

    q = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_quota_ctx_t));
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->request = r;

    if (ngx_http_smarty_quota_call_init(&q->call, r->pool, n,
                                        r->connection->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    q->call.zone = qmcf->zone;
    q->call.share_num = qcf->share_num;
    q->call.share_den = qcf->share_den;
    q->call.done = ngx_http_smarty_quota_done;
    q->call.data = q;

    for (n = 0, k = 0; k < 2; k++) {

        for (i = 0; sets[k] && i < sets[k]->n; i++, n++) {
            if (ngx_http_smarty_quota_item(&q->call, n, &qcf->prefix,
                                           ctx->m.space,
                                           k ? &ctx->client->name : NULL,
                                           &sets[k]->limit[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (k == 0) {
            q->nspace = n;
        }
    }

    q->call.n = n;

    ngx_http_set_ctx(r, q, ngx_http_smarty_quota_module);

    return NGX_OK;
}


/* --- deciding ------------------------------------------------------------- */


ngx_http_smarty_redis_slice_t *
ngx_http_smarty_quota_slice(ngx_http_request_t *r)
{
    ngx_http_smarty_quota_ctx_t  *q;

    q = ngx_http_smarty_quota_get(r);

    if (q == NULL || q->status != SMARTY_QUOTA_NONE
        || ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK)
    {
        return NULL;
    }

    q->slice.build = ngx_http_smarty_quota_slice_build;
    q->slice.reply = ngx_http_smarty_quota_slice_reply;
    q->slice.data = q;

    return &q->slice;
}


/* before each look: a look again spends only what is new */

static ngx_int_t
ngx_http_smarty_quota_slice_build(void *data)
{
    ngx_http_smarty_quota_ctx_t  *q = data;

    ngx_http_smarty_quota_conf_t  *qcf;

    qcf = ngx_http_get_module_loc_conf(q->request,
                                       ngx_http_smarty_quota_module);

    return ngx_http_smarty_quota_redis_slice(&q->call, &q->slice, qcf->hits,
                                             q->spent_requests,
                                             q->spent_images);
}


/* the slice's answer; element NULL: the lookup failed, Redis decided not */

static ngx_int_t
ngx_http_smarty_quota_slice_reply(void *data, redisReply **element,
    size_t n)
{
    ngx_http_smarty_quota_ctx_t  *q = data;

    uint64_t   requests, images;
    ngx_int_t  rc;

    if (element == NULL) {
        q->redis_failed = 1;
        return NGX_ERROR;
    }

    rc = ngx_http_smarty_quota_redis_slice_reply(&q->call, element, n,
                                                 &requests, &images);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, q->request->connection->log, 0,
                      "smarty quota: the cache lookup's answer holds no "
                      "quota decision");
        q->redis_failed = 1;
        return NGX_ERROR;
    }

    q->decided = 1;

    if (rc == NGX_DECLINED) {
        q->status = SMARTY_QUOTA_REFUSED;
        return NGX_DECLINED;
    }

    q->status = SMARTY_QUOTA_PASS;
    ngx_http_smarty_quota_spent(q, &ngx_http_smarty_quota_redis_store,
                                requests, images);

    return NGX_OK;
}


ngx_int_t
ngx_http_smarty_quota_decide(ngx_http_request_t *r,
    ngx_http_smarty_next_pt next)
{
    ngx_int_t                     rc;
    ngx_http_cleanup_t           *cln;
    ngx_http_smarty_ctx_t        *ctx;
    ngx_http_smarty_quota_ctx_t  *q;

    q = ngx_http_smarty_quota_get(r);

    if (q == NULL || q->status != SMARTY_QUOTA_NONE) {
        return NGX_OK;
    }

    ctx = ngx_http_smarty_ctx(r);

    q->call.requests = 1;
    q->call.images = ctx->m.nimages;

    if (!q->redis_failed
        && ngx_http_smarty_redis_state() == NGX_HTTP_SMARTY_REDIS_OK)
    {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_smarty_quota_redis_store.check(&q->call);

        if (rc == NGX_AGAIN) {
            cln->handler = ngx_http_smarty_quota_cleanup;
            cln->data = q;
            q->next = next;
            return NGX_AGAIN;
        }

        q->redis_failed = 1;
    }

    ngx_http_smarty_quota_local(q);

    return NGX_OK;
}


/* the Redis store decided, or could not */

static void
ngx_http_smarty_quota_done(ngx_http_smarty_quota_call_t *call, ngx_int_t rc)
{
    ngx_http_smarty_quota_ctx_t  *q = call->data;

    switch (rc) {

    case NGX_OK:
        q->decided = 1;
        q->status = SMARTY_QUOTA_PASS;
        ngx_http_smarty_quota_spent(q, &ngx_http_smarty_quota_redis_store,
                                    call->requests, call->images);
        break;

    case NGX_DECLINED:
        q->decided = 1;
        q->status = SMARTY_QUOTA_REFUSED;
        break;

    default:
        q->redis_failed = 1;
        ngx_http_smarty_quota_local(q);
        break;
    }

    q->next(q->request);
}


/* Redis is away: the local store decides, or nothing does ("closed") */

static void
ngx_http_smarty_quota_local(ngx_http_smarty_quota_ctx_t *q)
{
    ngx_int_t                      rc;
    ngx_http_smarty_quota_conf_t  *qcf;

    qcf = ngx_http_get_module_loc_conf(q->request,
                                       ngx_http_smarty_quota_module);

    if (qcf->closed == 1) {
        q->status = SMARTY_QUOTA_CLOSED;
        return;
    }

    rc = ngx_http_smarty_quota_local_store.check(&q->call);

    if (rc == NGX_ERROR) {
        /* no zone, or a full one: a fallback must not refuse for that */
        q->status = SMARTY_QUOTA_LOCAL_PASS;
        return;
    }

    q->decided = 1;

    if (rc == NGX_DECLINED) {
        q->status = SMARTY_QUOTA_LOCAL_REFUSED;
        return;
    }

    q->status = SMARTY_QUOTA_LOCAL_PASS;
    ngx_http_smarty_quota_spent(q, &ngx_http_smarty_quota_local_store,
                                q->call.requests, q->call.images);
}


static void
ngx_http_smarty_quota_spent(ngx_http_smarty_quota_ctx_t *q,
    const ngx_http_smarty_quota_store_t *store, uint64_t requests,
    uint64_t images)
{
    q->store = store;

    if (requests || images) {
        q->at = q->call.res.now;
    }

    q->spent_requests += requests;
    q->spent_images += images;
}


static void
ngx_http_smarty_quota_cleanup(void *data)
{
    ngx_http_smarty_quota_ctx_t  *q = data;

    ngx_http_smarty_quota_redis_store.cancel(&q->call);
}


/* --- giving back ---------------------------------------------------------- */


void
ngx_http_smarty_quota_settle(ngx_http_request_t *r, ngx_uint_t images)
{
    uint64_t                       back_r, back_i;
    ngx_http_smarty_quota_ctx_t   *q;
    ngx_http_smarty_quota_conf_t  *qcf;

    q = ngx_http_smarty_quota_get(r);
    qcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_quota_module);

    if (q == NULL || q->status != SMARTY_QUOTA_PASS || qcf->hits) {
        return;
    }

    back_i = q->spent_images > images ? q->spent_images - images : 0;
    back_r = (images == 0) ? q->spent_requests : 0;

    if (back_i || back_r) {
        ngx_http_smarty_quota_give_back(q, back_r, back_i);
        q->spent_images -= back_i;
        q->spent_requests -= back_r;
    }
}


void
ngx_http_smarty_quota_refund(ngx_http_request_t *r, smarty_err_e e)
{
    ngx_http_smarty_quota_ctx_t   *q;
    ngx_http_smarty_quota_conf_t  *qcf;

    q = ngx_http_smarty_quota_get(r);
    qcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_quota_module);

    if (q == NULL || !qcf->refund || q->spent_images == 0) {
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

    ngx_http_smarty_quota_give_back(q, 0, q->spent_images);
    q->spent_images = 0;
}


/* to the store that spent them */

void
ngx_http_smarty_quota_give_back(ngx_http_smarty_quota_ctx_t *q,
    uint64_t requests, uint64_t images)
{
    if (q->store == NULL) {
        return;
    }

    q->call.requests = requests;
    q->call.images = images;
    q->call.at = q->at;

    q->store->refund(&q->call);
}


/* --- configuration -------------------------------------------------------- */


ngx_http_smarty_quota_conf_t *
ngx_http_smarty_quota_conf(ngx_http_request_t *r)
{
    return ngx_http_get_module_loc_conf(r, ngx_http_smarty_quota_module);
}


ngx_shm_zone_t *
ngx_http_smarty_quota_zone(ngx_http_request_t *r)
{
    ngx_http_smarty_quota_main_conf_t  *qmcf;

    qmcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_quota_module);

    return qmcf->zone;
}


/* smarty_quota_space and smarty_quota_client <space> "<policy>" */

static char *
ngx_http_smarty_quota_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char                  err[160];
    ngx_str_t            *value;
    smarty_quota_set_t   *set;
    smarty_quota_sets_t **sets;

    value = cf->args->elts;
    sets = (smarty_quota_sets_t **) (p + cmd->offset);

    if (*sets == NULL) {
        *sets = ngx_pcalloc(cf->pool, sizeof(smarty_quota_sets_t));
        if (*sets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    set = ngx_palloc(cf->pool, sizeof(smarty_quota_set_t));
    if (set == NULL) {
        return NGX_CONF_ERROR;
    }

    if (smarty_quota_sets_add(*sets, set, (const char *) value[1].data,
                              value[1].len, (const char *) value[2].data,
                              value[2].len, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %s", &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* smarty_quota_fallback local [share=N/M | share=0.25] | closed */

static char *
ngx_http_smarty_quota_fallback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_quota_conf_t *qcf = conf;

    uint64_t    num, den;
    ngx_str_t  *value;

    if (qcf->closed != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    num = 1;
    den = 1;

    if (ngx_strcmp(value[1].data, "closed") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no share with \"closed\"";
        }

    } else if (ngx_strcmp(value[1].data, "local") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_fallback\": \"%V\" is neither "
                           "\"local\" nor \"closed\"", &value[1]);
        return NGX_CONF_ERROR;

    } else if (cf->args->nelts == 3
               && (ngx_strncmp(value[2].data, "share=", 6) != 0
                   || smarty_quota_share_parse((char *) value[2].data + 6,
                                               value[2].len - 6, &num, &den)
                      != 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_fallback\": \"%V\" is not a "
                           "share: \"share=1/4\" or \"share=0.25\", more "
                           "than 0 and at most 1", &value[2]);
        return NGX_CONF_ERROR;
    }

    qcf->closed = (value[1].data[0] == 'c');
    qcf->share_num = (ngx_uint_t) num;
    qcf->share_den = (ngx_uint_t) den;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_quota_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_quota_main_conf_t  *qmcf;

    qmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_quota_main_conf_t));
    if (qmcf == NULL) {
        return NULL;
    }

    qmcf->zone_size = NGX_CONF_UNSET_SIZE;

    return qmcf;
}


static char *
ngx_http_smarty_quota_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_smarty_quota_main_conf_t *qmcf = conf;

    ngx_conf_init_size_value(qmcf->zone_size, 1024 * 1024);

    if (qmcf->zone_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_zone\" of %uz bytes is too small",
                           qmcf->zone_size);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_quota_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_quota_conf_t  *qcf;

    qcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_quota_conf_t));
    if (qcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     qcf->space = NULL;
     *     qcf->client = NULL;
     *     qcf->prefix = { 0, NULL };
     */

    qcf->enable = NGX_CONF_UNSET;
    qcf->hits = NGX_CONF_UNSET;
    qcf->refund = NGX_CONF_UNSET;
    qcf->closed = NGX_CONF_UNSET;

    return qcf;
}


/*
 * The local store's zone is added with the first location that has a
 * limit: of the directives, or of a client of its clients file.
 */

static char *
ngx_http_smarty_quota_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_quota_conf_t  *prev = parent;
    ngx_http_smarty_quota_conf_t  *conf = child;

    ngx_uint_t                          i, limited;
    ngx_http_smarty_client_t           *c;
    static const smarty_quota_limit_t   probe = { 'r', 's', 1, 1 };

    ngx_http_smarty_clients_t          *clients;
    ngx_http_smarty_quota_main_conf_t  *qmcf;

    if (conf->space == NULL && conf->client == NULL) {
        conf->space = prev->space;
        conf->client = prev->client;
    }

    ngx_conf_merge_value(conf->enable, prev->enable, 1);
    ngx_conf_merge_value(conf->hits, prev->hits, 0);
    ngx_conf_merge_value(conf->refund, prev->refund, 1);

    if (conf->closed == NGX_CONF_UNSET) {
        conf->closed = prev->closed;
        conf->share_num = prev->share_num;
        conf->share_den = prev->share_den;
    }

    if (conf->closed == NGX_CONF_UNSET) {
        conf->closed = 0;
        conf->share_num = 1;
        conf->share_den = 1;
    }

    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "smarty:");

    /* the gateway sets the hash tags: smarty_quota_key() refuses braces */

    if (smarty_quota_key((const char *) conf->prefix.data,
                            conf->prefix.len, 0, NULL, 0, &probe, NULL, 0)
           == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_prefix\" must not hold \"{\" or "
                           "\"}\": the gateway sets the hash tags");
        return NGX_CONF_ERROR;
    }

    if (conf->prefix.len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_prefix\" is longer than 64 bytes");
        return NGX_CONF_ERROR;
    }

    limited = (conf->space != NULL || conf->client != NULL);
    clients = ngx_http_smarty_auth_conf_clients(cf);

    for (i = 0; !limited && clients && i < clients->clients.nelts; i++) {
        c = clients->clients.elts;
        limited = (c[i].quota != NULL);
    }

    qmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_smarty_quota_module);

    if (limited && qmcf->zone == NULL) {
        qmcf->zone = ngx_http_smarty_quota_local_zone(cf, qmcf->zone_size,
                                                &ngx_http_smarty_quota_module);
        if (qmcf->zone == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}
