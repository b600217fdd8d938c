/*
 * smarty-gateway: variables, for logs and for the rest of nginx.
 *
 *   $smarty_client                 the authenticated client's name
 *   $smarty_method                 "persons/recognize", ...
 *   $smarty_space                  "0".."9", empty for stateless methods
 *   $smarty_images                 number of image parts
 *   $smarty_image_sha256           SHA-256 of every image, comma-separated
 *   $smarty_error                  the code of the gateway's own error answer
 *   $smarty_upstream_status        the upstream's HTTP status
 *   $smarty_cache_status           HIT, PARTIAL, MISS, BYPASS, UNAVAILABLE
 *   $smarty_cache_hits             images answered from the cache
 *   $smarty_quota_status           PASS, REFUSED, LOCAL_PASS, LOCAL_REFUSED,
 *                                  CLOSED; empty when no limit applied
 *   $smarty_quota_limit            the limit RateLimit describes, e.g.
 *                                  client_images_minute
 *   $smarty_quota_remaining        its remaining units
 *   $smarty_quota_reset            seconds until it is whole again
 *   $smarty_redacted_args          $args with every oauth_token value (its
 *                                  name in any case or percent-encoding)
 *                                  as "***"
 *   $smarty_redacted_request_uri   $request_uri likewise
 *
 * The redacted forms exist because a client may send its key as
 * oauth_token, which $args and $request_uri would put in an access log.
 */

#include "ngx_http_smarty_module.h"
#include "smarty_args.h"


typedef enum {
    SMARTY_VAR_CLIENT = 0,
    SMARTY_VAR_METHOD,
    SMARTY_VAR_SPACE,
    SMARTY_VAR_IMAGES,
    SMARTY_VAR_IMAGE_SHA256,
    SMARTY_VAR_ERROR,
    SMARTY_VAR_UPSTREAM_STATUS,
    SMARTY_VAR_CACHE_STATUS,
    SMARTY_VAR_CACHE_HITS,
    SMARTY_VAR_QUOTA_STATUS,
    SMARTY_VAR_QUOTA_LIMIT,
    SMARTY_VAR_QUOTA_REMAINING,
    SMARTY_VAR_QUOTA_RESET
} ngx_http_smarty_var_e;


static ngx_int_t ngx_http_smarty_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_smarty_redacted(ngx_http_request_t *r,
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

    { ngx_string("smarty_cache_status"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_CACHE_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_cache_hits"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_CACHE_HITS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_status"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_QUOTA_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_limit"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_QUOTA_LIMIT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_remaining"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_QUOTA_REMAINING, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_reset"), NULL, ngx_http_smarty_variable,
      SMARTY_VAR_QUOTA_RESET, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_redacted_args"), NULL,
      ngx_http_smarty_redacted, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_redacted_request_uri"), NULL,
      ngx_http_smarty_redacted, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_smarty_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_smarty_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_str_t                s;
    ngx_uint_t               i;
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

            p = ngx_hex_dump(p, parts[i].sha256, SMARTY_SHA256_LEN);
        }

        v->len = p - v->data;
        break;

    case SMARTY_VAR_ERROR:
        if (ctx->err == SMARTY_E_QUOTA_EXCEEDED && ctx->quota.decided) {
            /* the code the answer has: quota_<the refused limit> */
            if (ngx_http_smarty_quota_variable(r, ctx, 1, &s) != NGX_OK) {
                return NGX_ERROR;
            }

            p = ngx_pnalloc(r->pool, sizeof("quota_") - 1 + s.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v->data = p;
            p = ngx_cpymem(p, "quota_", sizeof("quota_") - 1);
            v->len = ngx_cpymem(p, s.data, s.len) - v->data;

        } else if (ctx->err != SMARTY_OK) {
            v->data = (u_char *) smarty_err_info(ctx->err)->code;
            v->len = ngx_strlen(v->data);
        }
        break;

    case SMARTY_VAR_CACHE_STATUS:
        v->data = (u_char *) ngx_http_smarty_cache_status_text(ctx);
        v->len = ngx_strlen(v->data);
        break;

    case SMARTY_VAR_CACHE_HITS:
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%ui", ctx->cache.hits) - p;
        break;

    case SMARTY_VAR_QUOTA_STATUS:
    case SMARTY_VAR_QUOTA_LIMIT:
    case SMARTY_VAR_QUOTA_REMAINING:
    case SMARTY_VAR_QUOTA_RESET:
        if (ngx_http_smarty_quota_variable(r, ctx,
                                           data - SMARTY_VAR_QUOTA_STATUS, &s)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        v->data = s.data;
        v->len = s.len;
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
