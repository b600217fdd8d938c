/*
 * smarty-gateway: directives, configuration and the request flow.
 *
 * A location with "smarty_gateway on" gets this module's content handler.
 * For every request it:
 *
 *   1. resolves the API method from the URI, authenticates the client key
 *      and checks the method against the client's rights (no body read yet);
 *   2. reads the body (nginx keeps it in memory buffers or a temp file),
 *      parses the multipart stream where it lies, hashes every image and
 *      validates "meta" (ngx_http_smarty_body.c);
 *   3. checks the space against the client's rights, then the quotas of
 *      the space and of the client (ngx_http_smarty_quota.c), in the same
 *      Redis round trip as the cache lookup when the cache looks it up
 *      (ngx_http_smarty_cache.c);
 *   4. forwards the client's body bytes, unchanged, through a subrequest to
 *      the internal location named by "smarty_upstream" (nginx's own proxy:
 *      TLS, keepalive and timeouts are proxy_* configuration there), with
 *      the client's credentials removed and the gateway's token added
 *      (ngx_http_smarty_upstream.c);
 *   5. answers with the upstream's answer, or with an error in the API's
 *      envelope (ngx_http_smarty_reply.c).
 */

#include "ngx_http_smarty_module.h"
#include "ngx_http_smarty_quota.h"
#include "smarty_args.h"


static ngx_int_t ngx_http_smarty_handler(ngx_http_request_t *r);
static void ngx_http_smarty_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_reject(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, smarty_err_e e, const char *msg);
static void ngx_http_smarty_ctx_cleanup(void *data);

static ngx_int_t ngx_http_smarty_key_prefix(ngx_conf_t *cf, ngx_str_t *prefix,
    const char *directive);
static void *ngx_http_smarty_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_smarty_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_smarty_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_smarty_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_smarty_post_read(ngx_http_request_t *r);
static u_char *ngx_http_smarty_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);


static ngx_http_log_handler_pt  ngx_http_smarty_orig_log_handler;
static char *ngx_http_smarty_gateway(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_smarty_error_handler(ngx_http_request_t *r);
static char *ngx_http_smarty_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_clients_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_upstream_args_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_smarty_max_images(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_handler_pt  ngx_http_smarty_max_images_p =
    ngx_http_smarty_max_images;


static ngx_command_t  ngx_http_smarty_commands[] = {

    { ngx_string("smarty_gateway"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_smarty_gateway,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, enable),
      NULL },

    { ngx_string("smarty_error"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_smarty_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_api_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, api_prefix),
      NULL },

    { ngx_string("smarty_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, upstream),
      NULL },

    { ngx_string("smarty_upstream_args"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_smarty_upstream_args_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_upstream_provider"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, provider),
      NULL },

    { ngx_string("smarty_upstream_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_token_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_clients_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_clients_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_max_images"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, max_images),
      &ngx_http_smarty_max_images_p },

    { ngx_string("smarty_max_image_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, max_image_size),
      NULL },

    { ngx_string("smarty_max_meta_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, max_meta_size),
      NULL },

    { ngx_string("smarty_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, cache),
      NULL },

    { ngx_string("smarty_cache_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, cache_prefix),
      NULL },

    { ngx_string("smarty_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, cache_ttl),
      NULL },

    { ngx_string("smarty_cache_wait"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, cache_wait),
      NULL },

    { ngx_string("smarty_cache_status1"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, cache_status1),
      NULL },

    { ngx_string("smarty_quota"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, quota),
      NULL },

    { ngx_string("smarty_quota_space"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_smarty_quota_policy,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, quota_space),
      NULL },

    { ngx_string("smarty_quota_client"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_smarty_quota_policy,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, quota_client),
      NULL },

    { ngx_string("smarty_quota_hits"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, quota_hits),
      NULL },

    { ngx_string("smarty_quota_refund"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, quota_refund),
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
      offsetof(ngx_http_smarty_loc_conf_t, quota_prefix),
      NULL },

    { ngx_string("smarty_quota_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_main_conf_t, quota_zone_size),
      NULL },

    { ngx_string("smarty_quota_view"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_quota_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* the former name of smarty_quota_view, which $smarty_quota_status
     * shadowed: still read, with a warning */
    { ngx_string("smarty_quota_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_quota_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_module_ctx = {
    ngx_http_smarty_preconfiguration,      /* preconfiguration */
    ngx_http_smarty_postconfiguration,     /* postconfiguration */

    ngx_http_smarty_create_main_conf,      /* create main configuration */
    ngx_http_smarty_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_create_loc_conf,       /* create location configuration */
    ngx_http_smarty_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_module_ctx,           /* module context */
    ngx_http_smarty_commands,              /* module directives */
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


static ngx_int_t
ngx_http_smarty_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    path;
    ngx_pool_cleanup_t          *cln;
    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_loc_conf_t  *slcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_smarty_ctx_cleanup;
    cln->data = ctx;
    ctx->request = r;

    ngx_http_set_ctx(r, ctx, ngx_http_smarty_module);

    /* the method, from the URI: <api_prefix><group>/<method> */

    if (r->uri.len <= slcf->api_prefix.len
        || ngx_strncmp(r->uri.data, slcf->api_prefix.data,
                       slcf->api_prefix.len) != 0)
    {
        return ngx_http_smarty_reject(r, ctx, SMARTY_E_UNKNOWN_ENDPOINT, NULL);
    }

    path.data = r->uri.data + slcf->api_prefix.len;
    path.len = r->uri.len - slcf->api_prefix.len;

    ctx->method = smarty_method_find((const char *) path.data, path.len);
    if (ctx->method == NULL) {
        return ngx_http_smarty_reject(r, ctx, SMARTY_E_UNKNOWN_ENDPOINT, NULL);
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_smarty_reject(r, ctx, SMARTY_E_METHOD_NOT_ALLOWED,
                                      NULL);
    }

    /* who, and may they call this method: before a byte of body is read */

    rc = ngx_http_smarty_authenticate(r, slcf, ctx);
    if (rc != NGX_OK) {
        return ngx_http_smarty_reject(r, ctx, (smarty_err_e) rc, NULL);
    }

    if (ngx_http_smarty_upstream_args(r, slcf, &ctx->up_args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_smarty_body_begin(r, ctx);
    if (rc != NGX_OK) {
        return ngx_http_smarty_reject(r, ctx, ctx->body_err,
                                      ctx->body_msg[0] ? ctx->body_msg : NULL);
    }

    ctx->state = SMARTY_STATE_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_http_smarty_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            r->keepalive = 0;
            r->lingering_close = 1;
            return ngx_http_smarty_send_error(r, ctx, SMARTY_E_BODY_TOO_LARGE,
                                              NULL);
        }

        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_smarty_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_module);

    if (r->request_body == NULL) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_EMPTY_BODY, NULL);
        return;
    }

    rc = ngx_http_smarty_body_parse(r, slcf, ctx);

    if (rc == NGX_ERROR) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_smarty_fail(r, ctx, ctx->body_err,
                             ctx->body_msg[0] ? ctx->body_msg : NULL);
        return;
    }

    rc = ngx_http_smarty_authorize_space(r, ctx);
    if (rc != NGX_OK) {
        ngx_http_smarty_fail(r, ctx, (smarty_err_e) rc, NULL);
        return;
    }

    if (ngx_http_smarty_quota_prepare(r, slcf, ctx) != NGX_OK) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
        return;
    }

    /* the cache's lookup decides the quota too, in the same round trip */

    rc = ngx_http_smarty_cache_start(r, slcf, ctx);

    if (rc == NGX_AGAIN) {
        /* the cache goes on with the request when Redis answers */
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
        return;
    }

    ngx_http_smarty_quota_forward(r, slcf, ctx);
}


/* to the upstream: ngx_http_smarty_upstream_done() goes on when it ends */

void
ngx_http_smarty_forward(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    ctx->state = SMARTY_STATE_UPSTREAM;

    if (ngx_http_smarty_upstream_start(r, slcf, ctx) != NGX_OK) {
        ngx_http_smarty_fail(r, ctx, SMARTY_E_INTERNAL, NULL);
    }
}


void
ngx_http_smarty_answer(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    ngx_uint_t status, ngx_chain_t *body, size_t len)
{
    ctx->state = SMARTY_STATE_DONE;
    ngx_http_finalize_request(r, ngx_http_smarty_send_chain(r, ctx, status,
                                                            body, len));
}


void
ngx_http_smarty_fail(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e, const char *msg)
{
    ctx->state = SMARTY_STATE_DONE;
    ngx_http_finalize_request(r, ngx_http_smarty_send_error(r, ctx, e, msg));
}


/*
 * The subrequest to the upstream has ended (the parent's write event
 * handler, posted by ngx_http_finalize_request() of the subrequest).
 */

void
ngx_http_smarty_upstream_done(ngx_http_request_t *r)
{
    char                         msg[160];
    ngx_int_t                    rc;
    smarty_err_e                 e;
    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_loc_conf_t  *slcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_module);

    if (ctx == NULL || ctx->state != SMARTY_STATE_UPSTREAM || !ctx->up_done) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    msg[0] = '\0';
    e = ngx_http_smarty_upstream_result(r, ctx, msg, sizeof(msg));

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);

    rc = ngx_http_smarty_cache_finish(r, slcf, ctx, e == SMARTY_OK);

    if (e == SMARTY_OK && rc == NGX_DECLINED) {
        e = SMARTY_E_UPSTREAM_BAD_ANSWER;

    } else if (e == SMARTY_OK && rc == NGX_ERROR) {
        e = SMARTY_E_INTERNAL;
    }

    if (e != SMARTY_OK) {
        ngx_http_smarty_quota_finish(r, slcf, ctx, e);
        ngx_http_smarty_fail(r, ctx, e, msg[0] ? msg : NULL);
        return;
    }

    ngx_http_smarty_answer(r, ctx, ctx->up_status, ctx->up_body,
                           ctx->up_len);
}


/* an answer before the body is read: the body is discarded */

static ngx_int_t
ngx_http_smarty_reject(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e, const char *msg)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    return ngx_http_smarty_send_error(r, ctx, e, msg);
}


static void
ngx_http_smarty_ctx_cleanup(void *data)
{
    ngx_http_smarty_ctx_t  *ctx = data;

    ngx_http_smarty_cache_cleanup(ctx);
    ngx_http_smarty_quota_cleanup(ctx);

    if (ctx->md) {
        EVP_MD_CTX_free(ctx->md);
        ctx->md = NULL;
    }

    if (ctx->m_valid) {
        smarty_meta_free(&ctx->m);
        ctx->m_valid = 0;
    }
}


/* --- configuration -------------------------------------------------------- */


static void *
ngx_http_smarty_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->api_prefix = { 0, NULL };
     *     conf->upstream = { 0, NULL };
     *     conf->provider = { 0, NULL };
     *     conf->token = { 0, NULL };
     *     conf->token_file = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->upstream_args = NGX_CONF_UNSET_PTR;
    conf->clients = NGX_CONF_UNSET_PTR;
    conf->max_images = NGX_CONF_UNSET_UINT;
    conf->max_image_size = NGX_CONF_UNSET_SIZE;
    conf->max_meta_size = NGX_CONF_UNSET_SIZE;
    conf->error = NGX_CONF_UNSET;
    conf->cache = NGX_CONF_UNSET;
    conf->cache_ttl = NGX_CONF_UNSET_MSEC;
    conf->cache_wait = NGX_CONF_UNSET_MSEC;
    conf->cache_status1 = NGX_CONF_UNSET;
    conf->quota = NGX_CONF_UNSET;
    conf->quota_hits = NGX_CONF_UNSET;
    conf->quota_refund = NGX_CONF_UNSET;
    conf->quota_closed = NGX_CONF_UNSET;
    conf->quota_view = NGX_CONF_UNSET;

    return conf;
}


static void *
ngx_http_smarty_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    smcf->quota_zone_size = NGX_CONF_UNSET_SIZE;

    return smcf;
}


/* after the http block is read: the local fallback's zone, if any quota */

static char *
ngx_http_smarty_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_smarty_main_conf_t *smcf = conf;

    ngx_conf_init_size_value(smcf->quota_zone_size, 1024 * 1024);

    if (!smcf->quota_used) {
        return NGX_CONF_OK;
    }

    if (smcf->quota_zone_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_zone\" of %uz bytes is too small",
                           smcf->quota_zone_size);
        return NGX_CONF_ERROR;
    }

    smcf->quota_zone = ngx_http_smarty_quota_local_zone(cf,
                                                        smcf->quota_zone_size);
    if (smcf->quota_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_smarty_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_loc_conf_t  *prev = parent;
    ngx_http_smarty_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->error == NGX_CONF_UNSET) {
        conf->error = -1;       /* not inherited */
    }

    ngx_conf_merge_str_value(conf->api_prefix, prev->api_prefix, "/api/v1/");
    ngx_conf_merge_str_value(conf->upstream, prev->upstream, "");
    ngx_conf_merge_ptr_value(conf->upstream_args, prev->upstream_args, NULL);
    ngx_conf_merge_str_value(conf->provider, prev->provider, "mcs");
    ngx_conf_merge_str_value(conf->token, prev->token, "");
    ngx_conf_merge_str_value(conf->token_file, prev->token_file, "");
    ngx_conf_merge_ptr_value(conf->clients, prev->clients, NULL);
    ngx_conf_merge_uint_value(conf->max_images, prev->max_images, 100);
    ngx_conf_merge_size_value(conf->max_image_size, prev->max_image_size,
                              4 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->max_meta_size, prev->max_meta_size,
                              64 * 1024);

    ngx_conf_merge_value(conf->cache, prev->cache, 0);
    ngx_conf_merge_str_value(conf->cache_prefix, prev->cache_prefix,
                             "smarty:");
    ngx_conf_merge_msec_value(conf->cache_ttl, prev->cache_ttl, 3600000);
    ngx_conf_merge_msec_value(conf->cache_wait, prev->cache_wait, 5000);
    ngx_conf_merge_value(conf->cache_status1, prev->cache_status1, 0);

    if (conf->quota_space == NULL && conf->quota_client == NULL) {
        conf->quota_space = prev->quota_space;
        conf->quota_client = prev->quota_client;
    }

    ngx_conf_merge_value(conf->quota, prev->quota, 1);
    ngx_conf_merge_value(conf->quota_hits, prev->quota_hits, 0);
    ngx_conf_merge_value(conf->quota_refund, prev->quota_refund, 1);

    if (conf->quota_closed == NGX_CONF_UNSET) {
        conf->quota_closed = prev->quota_closed;
        conf->quota_share_num = prev->quota_share_num;
        conf->quota_share_den = prev->quota_share_den;
    }

    if (conf->quota_closed == NGX_CONF_UNSET) {
        conf->quota_closed = 0;
        conf->quota_share_num = 1;
        conf->quota_share_den = 1;
    }

    ngx_conf_merge_str_value(conf->quota_prefix, prev->quota_prefix,
                             "smarty:");

    if (ngx_http_smarty_key_prefix(cf, &conf->quota_prefix,
                                   "smarty_quota_prefix")
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->quota_view == NGX_CONF_UNSET) {
        conf->quota_view = 0;       /* not inherited */
    }

    if (conf->quota_view && conf->clients == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_view\" needs "
                           "\"smarty_clients_file\": only an operator's "
                           "key may read it");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->cache_ttl == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_cache_ttl\" must not be zero");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_smarty_key_prefix(cf, &conf->cache_prefix,
                                   "smarty_cache_prefix")
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->upstream.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_gateway\" needs \"smarty_upstream\": "
                           "the internal location that proxies to the API");
        return NGX_CONF_ERROR;
    }

    if (conf->token.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_gateway\" needs "
                           "\"smarty_upstream_token_file\"");
        return NGX_CONF_ERROR;
    }

    if (conf->clients == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_gateway\" needs \"smarty_clients_file\"");
        return NGX_CONF_ERROR;
    }

    if (conf->api_prefix.data[0] != '/'
        || conf->api_prefix.data[conf->api_prefix.len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_api_prefix\" must start and end with "
                           "\"/\", not \"%V\"", &conf->api_prefix);
        return NGX_CONF_ERROR;
    }

    if (conf->upstream.data[0] != '/'
        || conf->upstream.data[conf->upstream.len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_upstream\" must be a location prefix "
                           "that starts and ends with \"/\", not \"%V\"",
                           &conf->upstream);
        return NGX_CONF_ERROR;
    }

    if (conf->max_image_size == 0 || conf->max_meta_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_max_image_size\" and "
                           "\"smarty_max_meta_size\" must not be zero");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A Redis key prefix (smarty_cache_prefix, smarty_quota_prefix): at most 64
 * bytes, without the braces of the hash tags the gateway adds itself.
 */

static ngx_int_t
ngx_http_smarty_key_prefix(ngx_conf_t *cf, ngx_str_t *prefix,
    const char *directive)
{
    if (ngx_strlchr(prefix->data, prefix->data + prefix->len, '{')
        || ngx_strlchr(prefix->data, prefix->data + prefix->len, '}'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" must not hold \"{\" or \"}\": the "
                           "gateway sets the hash tags", directive);
        return NGX_ERROR;
    }

    if (prefix->len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is longer than 64 bytes", directive);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "smarty_error code": the location answers with that error in the API's
 * envelope; for error_page, e.g. nginx's own 413 for client_max_body_size.
 * "smarty_error" alone: the code is the URI's last segment, so that one
 * internal location serves every error_page:
 *
 *     error_page 400 /_smarty_error/bad_request;
 *     location /_smarty_error/ { internal; smarty_error; }
 */

#define NGX_HTTP_SMARTY_ERROR_URI  -2

static char *
ngx_http_smarty_error(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_loc_conf_t  *slcf = conf;

    ngx_str_t                 *value;
    smarty_err_e               e;
    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->error != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1) {
        slcf->error = NGX_HTTP_SMARTY_ERROR_URI;

    } else {
        e = smarty_err_find((const char *) value[1].data, value[1].len);
        if (e == SMARTY_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown smarty error code \"%V\" (see the "
                               "error codes in the documentation)",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        slcf->error = e;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_smarty_error_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_smarty_error_handler(ngx_http_request_t *r)
{
    u_char                      *p;
    ngx_int_t                    rc;
    smarty_err_e                 e;
    ngx_http_smarty_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_module);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        r->keepalive = 0;
    }

    e = (smarty_err_e) slcf->error;

    if (slcf->error == NGX_HTTP_SMARTY_ERROR_URI) {
        p = r->uri.data + r->uri.len;

        while (p > r->uri.data && p[-1] != '/') {
            p--;
        }

        e = smarty_err_find((const char *) p, r->uri.data + r->uri.len - p);

        if (e == SMARTY_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "smarty: \"%V\" names no smarty error code",
                          &r->uri);
            e = SMARTY_E_INTERNAL;
        }
    }

    return ngx_http_smarty_send_error(r,
                       ngx_http_get_module_ctx(r, ngx_http_smarty_module),
                       e, NULL);
}


static ngx_int_t
ngx_http_smarty_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_smarty_add_variables(cf);
}


static ngx_int_t
ngx_http_smarty_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_smarty_post_read;

    return NGX_OK;
}


/*
 * Secrets in the error log.  nginx's error lines carry the request line
 * ("request: ...", with a client key sent as oauth_token) and the upstream's
 * URI ("upstream: ...", with the gateway's token), at error level, not only
 * at debug.  Every request gets a log handler that writes nginx's context
 * and then replaces every oauth_token value in it with "***", whatever the
 * case or the percent-encoding of its name (smarty_args_redact()).
 */

static ngx_int_t
ngx_http_smarty_post_read(ngx_http_request_t *r)
{
    if (r->log_handler != ngx_http_smarty_log_error) {
        ngx_http_smarty_orig_log_handler = r->log_handler;
        r->log_handler = ngx_http_smarty_log_error;
    }

    return NGX_DECLINED;
}


static u_char *
ngx_http_smarty_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char  *end;

    end = ngx_http_smarty_orig_log_handler(r, sr, buf, len);

    return buf + smarty_args_redact((char *) buf, end - buf);
}


static char *
ngx_http_smarty_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_smarty_loc_conf_t  *slcf = conf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (slcf->enable) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->handler = ngx_http_smarty_handler;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_smarty_token_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_loc_conf_t  *slcf = conf;

    ngx_str_t  *value;

    if (slcf->token_file.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    slcf->token_file = value[1];

    return ngx_http_smarty_token_load(cf, &slcf->token_file, &slcf->token);
}


static char *
ngx_http_smarty_clients_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_loc_conf_t  *slcf = conf;

    ngx_str_t  *value;

    if (slcf->clients != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_smarty_clients_load(cf, &value[1], &slcf->clients);
}


/*
 * smarty_upstream_args name ...: the client's query parameters that go
 * upstream (none by default: the API defines none); never a credential.
 */

static char *
ngx_http_smarty_upstream_args_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_loc_conf_t  *slcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (slcf->upstream_args != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    slcf->upstream_args = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_str_t));
    if (slcf->upstream_args == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0 || value[i].len > SMARTY_ARGS_NAME_MAX
            || smarty_args_credential((const char *) value[i].data,
                                      value[i].len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"smarty_upstream_args\": \"%V\" cannot "
                               "be passed: the gateway sets oauth_token and "
                               "oauth_provider itself", &value[i]);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(slcf->upstream_args);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_smarty_max_images(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np < 1 || *np > 10000) {
        return "must be between 1 and 10000";
    }

    return NGX_CONF_OK;
}
