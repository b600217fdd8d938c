/*
 * smarty-gateway: the module ngx_http_smarty_module: the gateway's
 * directives (smarty_gateway, smarty_api_prefix, smarty_error), its
 * variables, its place in nginx's phases; the request flow is
 * ngx_http_smarty_flow.c, each concern has a module of its own in the same
 * .so.  docs/reference.md, docs/architecture.md.
 */

#include "ngx_http_smarty_flow.h"
#include "ngx_http_smarty_audit.h"
#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_reply.h"
#include "ngx_http_smarty_token.h"
#include "ngx_http_smarty_upstream.h"
#include "smarty_args.h"


#define NGX_HTTP_SMARTY_ERROR_URI  -2


static char *ngx_http_smarty_gateway(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_smarty_error_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_post_read(ngx_http_request_t *r);
static u_char *ngx_http_smarty_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static ngx_int_t ngx_http_smarty_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_smarty_redacted(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_smarty_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_smarty_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_smarty_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_http_log_handler_pt  ngx_http_smarty_orig_log_handler;


static ngx_command_t  ngx_http_smarty_commands[] = {

    { ngx_string("smarty_gateway"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_smarty_gateway,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, enable),
      NULL },

    { ngx_string("smarty_api_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_loc_conf_t, api_prefix),
      NULL },

    { ngx_string("smarty_error"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_smarty_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


/*
 * Two modules: ngx_http_smarty_module, first in the .so (it names the .so,
 * keeps every request's context, adds the variables and the phase
 * handlers), and ngx_http_smarty_gateway_module, last (its directives, and
 * its checks of a location, once every concern's configuration of it is
 * merged).
 */

static ngx_http_module_t  ngx_http_smarty_module_ctx = {
    ngx_http_smarty_preconfiguration,      /* preconfiguration */
    ngx_http_smarty_postconfiguration,     /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_module_ctx,           /* module context */
    NULL,                                  /* module directives */
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


static ngx_http_module_t  ngx_http_smarty_gateway_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_create_loc_conf,       /* create location configuration */
    ngx_http_smarty_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_gateway_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_gateway_module_ctx,   /* module context */
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


typedef enum {
    SMARTY_VAR_CLIENT = 0,
    SMARTY_VAR_METHOD,
    SMARTY_VAR_SPACE,
    SMARTY_VAR_IMAGES,
    SMARTY_VAR_IMAGE_SHA256,
    SMARTY_VAR_ERROR,
    SMARTY_VAR_UPSTREAM_STATUS,
    SMARTY_VAR_PERSON_IDS,
    SMARTY_VAR_CREATE_NEW,
    SMARTY_VAR_UPDATE_EMBEDDING,
    SMARTY_VAR_UPSTREAM_TIME,
    SMARTY_VAR_TIME,
    SMARTY_VAR_API_REQUEST
} ngx_http_smarty_var_e;


static ngx_int_t ngx_http_smarty_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_http_variable_t  ngx_http_smarty_vars[] = {

    { ngx_string("smarty_client"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_CLIENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_method"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_METHOD, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_space"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_SPACE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_images"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_IMAGES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_image_sha256"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_IMAGE_SHA256, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_error"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_ERROR, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_upstream_status"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_UPSTREAM_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_person_ids"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_PERSON_IDS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_create_new"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_CREATE_NEW, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_update_embedding"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_UPDATE_EMBEDDING, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_upstream_time"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_UPSTREAM_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_time"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_api_request"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_API_REQUEST, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_redacted_args"), NULL,
      ngx_http_smarty_redacted, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_redacted_request_uri"), NULL,
      ngx_http_smarty_redacted, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


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
     */

    conf->enable = NGX_CONF_UNSET;
    conf->error = NGX_CONF_UNSET;

    return conf;
}


/*
 * The concerns' modules come before the gateway's in the .so: their
 * configuration of a location is merged when the gateway's is checked.
 */

static char *
ngx_http_smarty_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_loc_conf_t  *prev = parent;
    ngx_http_smarty_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->api_prefix, prev->api_prefix, "/api/v1/");

    if (conf->error == NGX_CONF_UNSET) {
        conf->error = -1;       /* not inherited */
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (ngx_http_smarty_upstream_conf_location(cf)->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_gateway\" needs \"smarty_upstream\": "
                           "the internal location that proxies to the API");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_smarty_token_conf_source(cf) == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_gateway\" needs "
                           "\"smarty_upstream_token_file\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_smarty_auth_conf_clients(cf) == NULL) {
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

    return NGX_CONF_OK;
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
        clcf->handler = ngx_http_smarty_flow_handler;
    }

    return NGX_CONF_OK;
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
    smarty_err_e                 e;
    ngx_http_smarty_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_gateway_module);

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

    return ngx_http_smarty_flow_refuse(r, e);
}


/* the variables of every concern that has some, and the gateway's */

static ngx_int_t
ngx_http_smarty_preconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t            i;
    ngx_http_variable_t  *var, *v;
    ngx_http_variable_t  *tables[] = {
        ngx_http_smarty_vars,
        ngx_http_smarty_cache_variables,
        ngx_http_smarty_quota_variables,
        ngx_http_smarty_audit_variables
    };

    for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        for (v = tables[i]; v->name.len; v++) {
            var = ngx_http_add_variable(cf, &v->name, v->flags);
            if (var == NULL) {
                return NGX_ERROR;
            }

            var->get_handler = v->get_handler;
            var->data = v->data;
        }
    }

    return NGX_OK;
}


/* the error log's redaction as a request starts; the flow's end */

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

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_smarty_flow_finished;

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


/* --- the gateway's variables ---------------------------------------------- */


static ngx_int_t
ngx_http_smarty_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_tm_t                 tm;
    ngx_uint_t               i, n;
    ngx_time_t              *tp;
    ngx_msec_int_t           ms;
    ngx_http_smarty_ctx_t   *ctx;
    ngx_http_smarty_part_t  *parts;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_smarty_module);

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->len = 0;
    v->data = (u_char *) "";

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case SMARTY_VAR_API_REQUEST:
        /* a request with a record: for access_log's if= */
        v->data = (u_char *) "1";
        v->len = 1;
        break;

    case SMARTY_VAR_CLIENT:
        if (ctx->client) {
            v->data = ctx->client->name.data;
            v->len = ctx->client->name.len;
        }
        break;

    case SMARTY_VAR_METHOD:
        if (ctx->method) {
            v->data = (u_char *) ctx->method->path;
            v->len = ngx_strlen(ctx->method->path);
        }
        break;

    case SMARTY_VAR_SPACE:
        if (ctx->m_valid && ctx->m.space >= 0) {
            v->data = (u_char *) "0123456789" + ctx->m.space;
            v->len = 1;
        }
        break;

    case SMARTY_VAR_IMAGES:
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%ui", ctx->parts.nelts) - p;
        break;

    case SMARTY_VAR_IMAGE_SHA256:
        if (ctx->parts.nelts == 0) {
            break;
        }

        p = ngx_pnalloc(r->pool, ctx->parts.nelts * (2 * SMARTY_SHA256_LEN
                                                     + 1));
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        parts = ctx->parts.elts;

        for (i = 0; i < ctx->parts.nelts; i++) {
            if (i) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, parts[i].sha256_hex, 2 * SMARTY_SHA256_LEN);
        }

        v->len = p - v->data;
        break;

    case SMARTY_VAR_ERROR:
        /* the code the answer has: a quota names its refused limit */
        if (ctx->error.err != SMARTY_OK) {
            v->data = (u_char *) (ctx->error.code
                                  ? ctx->error.code
                                  : smarty_err_info(ctx->error.err)->code);
            v->len = ngx_strlen(v->data);
        }
        break;

    case SMARTY_VAR_UPSTREAM_STATUS:
        if (ctx->up_status) {
            p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v->data = p;
            v->len = ngx_sprintf(p, "%ui", ctx->up_status) - p;
        }
        break;

    case SMARTY_VAR_PERSON_IDS:
        /* set and delete: the person ids of meta.images, in its order */
        if (!ctx->m_valid || ctx->m.nimages == 0) {
            break;
        }

        p = ngx_pnalloc(r->pool, ctx->m.nimages * (NGX_INT64_LEN + 1));
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;

        for (i = 0, n = 0; i < ctx->m.nimages; i++) {
            if (ctx->m.images[i].has_person_id) {
                p = ngx_sprintf(p, n++ ? ",%L" : "%L",
                                ctx->m.images[i].person_id);
            }
        }

        v->len = p - v->data;
        break;

    case SMARTY_VAR_CREATE_NEW:
    case SMARTY_VAR_UPDATE_EMBEDDING:
        /* recognize only: "true" or "false" */
        if (ctx->m_valid && ctx->method
            && ctx->method->id == SMARTY_M_PERSONS_RECOGNIZE)
        {
            n = (data == SMARTY_VAR_CREATE_NEW) ? ctx->m.create_new
                                                : ctx->m.update_embedding;
            v->data = (u_char *) (n ? "true" : "false");
            v->len = n ? 4 : 5;
        }
        break;

    case SMARTY_VAR_UPSTREAM_TIME:
        /* seconds with milliseconds, as $upstream_response_time */
        ms = ngx_http_smarty_upstream_time(r->main);
        if (ms < 0) {
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%T.%03M", (time_t) ms / 1000, ms % 1000)
                 - p;
        break;

    case SMARTY_VAR_TIME:
        /* now, UTC, milliseconds: the audit record's "time" */
        p = ngx_pnalloc(r->pool, sizeof("1970-01-01T00:00:00.000Z") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        tp = ngx_timeofday();
        ngx_gmtime(tp->sec, &tm);

        v->data = p;
        v->len = ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                             tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                             tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                             tp->msec)
                 - p;
        break;
    }

    return NGX_OK;
}


/* $smarty_redacted_args, $smarty_redacted_request_uri */

static ngx_int_t
ngx_http_smarty_redacted(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char     *p;
    ngx_str_t  *s;

    s = data ? &r->unparsed_uri : &r->args;

    if (s->len == 0) {
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        v->data = (u_char *) "";
        v->len = 0;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, s->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, s->data, s->len);

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;
    v->len = smarty_args_redact((char *) p, s->len);

    return NGX_OK;
}
