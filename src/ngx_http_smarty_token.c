/*
 * smarty-gateway: the token module and the file source (see
 * ngx_http_smarty_token.h, docs/token.md).
 *
 * The file source: a service token read from a file when the
 * configuration is (never inline in nginx.conf, never logged), so
 * "nginx -s reload" picks up a new one; kept URI-escaped.
 */

#include "ngx_http_smarty_token.h"
#include "ngx_http_smarty_secret.h"


#define SMARTY_TOKEN_MAX  4096


typedef struct {
    ngx_array_t                      sources;   /* of source pointers */
} ngx_http_smarty_token_main_conf_t;


typedef struct {
    ngx_http_smarty_token_source_t  *source;
    ngx_str_t                        provider;
} ngx_http_smarty_token_conf_t;


static ngx_int_t ngx_http_smarty_token_file_get(
    ngx_http_smarty_token_source_t *src, ngx_http_request_t *r,
    ngx_str_t *token, ngx_http_smarty_next_pt next);
static ngx_int_t ngx_http_smarty_token_file_rejected(
    ngx_http_smarty_token_source_t *src, ngx_http_request_t *r,
    ngx_str_t *token);
static void ngx_http_smarty_token_file_cancel(
    ngx_http_smarty_token_source_t *src, ngx_http_request_t *r);
static char *ngx_http_smarty_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_smarty_token_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_smarty_token_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_token_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static const ngx_http_smarty_token_ops_t  ngx_http_smarty_token_file_ops = {
    ngx_http_smarty_token_file_get,
    ngx_http_smarty_token_file_rejected,
    ngx_http_smarty_token_file_cancel,
    NULL
};


static ngx_command_t  ngx_http_smarty_token_commands[] = {

    { ngx_string("smarty_upstream_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_token_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_upstream_provider"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_token_conf_t, provider),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_token_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_token_create_main_conf,
                                           /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_token_create_conf,     /* create location configuration */
    ngx_http_smarty_token_merge_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_token_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_token_module_ctx,     /* module context */
    ngx_http_smarty_token_commands,        /* module directives */
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


ngx_http_smarty_token_source_t *
ngx_http_smarty_token_source(ngx_http_request_t *r)
{
    ngx_http_smarty_token_conf_t  *tcf;

    tcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_token_module);

    return tcf->source;
}


ngx_http_smarty_token_source_t *
ngx_http_smarty_token_conf_source(ngx_conf_t *cf)
{
    ngx_http_smarty_token_conf_t  *tcf;

    tcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_smarty_token_module);

    return tcf->source == NGX_CONF_UNSET_PTR ? NULL : tcf->source;
}


char *
ngx_http_smarty_token_conf_set_source(ngx_conf_t *cf,
    ngx_http_smarty_token_source_t *src)
{
    ngx_uint_t                          i;
    ngx_http_smarty_token_conf_t       *tcf;
    ngx_http_smarty_token_source_t    **p;
    ngx_http_smarty_token_main_conf_t  *tmcf;

    tcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_smarty_token_module);
    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_smarty_token_module);

    if (tcf->source != NGX_CONF_UNSET_PTR) {
        return "is duplicate: a context has one upstream token, from "
               "smarty_upstream_token_file or smarty_upstream_oauth";
    }

    tcf->source = src;

    p = tmcf->sources.elts;

    for (i = 0; i < tmcf->sources.nelts; i++) {
        if (p[i] == src) {
            return NGX_CONF_OK;
        }
    }

    p = ngx_array_push(&tmcf->sources);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    *p = src;

    return NGX_CONF_OK;
}


ngx_array_t *
ngx_http_smarty_token_sources(ngx_cycle_t *cycle)
{
    ngx_http_smarty_token_main_conf_t  *tmcf;

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module)
        == NULL)
    {
        return NULL;
    }

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_smarty_token_module);

    return &tmcf->sources;
}


ngx_str_t *
ngx_http_smarty_token_provider(ngx_http_request_t *r)
{
    ngx_http_smarty_token_conf_t  *tcf;

    tcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_token_module);

    return &tcf->provider;
}


/* --- the file source ------------------------------------------------------ */


static ngx_int_t
ngx_http_smarty_token_file_get(ngx_http_smarty_token_source_t *src,
    ngx_http_request_t *r, ngx_str_t *token, ngx_http_smarty_next_pt next)
{
    *token = *(ngx_str_t *) src->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_token_file_rejected(ngx_http_smarty_token_source_t *src,
    ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "smarty: the upstream rejected the gateway's token; "
                  "check smarty_upstream_token_file");

    return NGX_DECLINED;
}


static void
ngx_http_smarty_token_file_cancel(ngx_http_smarty_token_source_t *src,
    ngx_http_request_t *r)
{
    /* nothing waits on a file */
}


static char *
ngx_http_smarty_token_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_token_conf_t  *tcf = conf;

    u_char                          *p;
    size_t                           esc;
    ngx_str_t                       *value, path, raw, *token;
    ngx_http_smarty_token_source_t  *src;

    if (tcf->source != NGX_CONF_UNSET_PTR) {
        return "is duplicate: a context has one upstream token, from "
               "smarty_upstream_token_file or smarty_upstream_oauth";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_http_smarty_secret_read(cf, &path, "upstream token",
                                    SMARTY_TOKEN_MAX, &raw)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (p = raw.data; p < raw.data + raw.len; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            ngx_http_smarty_secret_wipe(&raw);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "upstream token file \"%V\" must hold one "
                               "token of printable characters", &path);
            return NGX_CONF_ERROR;
        }
    }

    src = ngx_palloc(cf->pool, sizeof(ngx_http_smarty_token_source_t)
                               + sizeof(ngx_str_t));
    esc = 2 * ngx_escape_uri(NULL, raw.data, raw.len, NGX_ESCAPE_ARGS);

    if (src == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    token = (ngx_str_t *) (src + 1);
    token->data = ngx_pnalloc(cf->pool, raw.len + esc);
    if (token->data == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    p = (u_char *) ngx_escape_uri(token->data, raw.data, raw.len,
                                  NGX_ESCAPE_ARGS);
    token->len = p - token->data;

    ngx_http_smarty_secret_wipe(&raw);

    src->ops = &ngx_http_smarty_token_file_ops;
    src->data = token;

    return ngx_http_smarty_token_conf_set_source(cf, src);
}


static void *
ngx_http_smarty_token_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_token_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_token_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&tmcf->sources, cf->pool, 2,
                       sizeof(ngx_http_smarty_token_source_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return tmcf;
}


static void *
ngx_http_smarty_token_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_token_conf_t  *tcf;

    tcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_token_conf_t));
    if (tcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tcf->provider = { 0, NULL };
     */

    tcf->source = NGX_CONF_UNSET_PTR;

    return tcf;
}


static char *
ngx_http_smarty_token_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_token_conf_t  *prev = parent;
    ngx_http_smarty_token_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->source, prev->source, NULL);
    ngx_conf_merge_str_value(conf->provider, prev->provider, "mcs");

    return NGX_CONF_OK;
}
