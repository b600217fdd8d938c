/*
 * smarty-gateway: answers.
 *
 * Every answer the gateway makes itself is the API's envelope, so a client
 * parses one format:
 *
 *   {"status":403,"body":{"error":"...","code":"space_forbidden"},
 *    "htmlencoded":false,"last_modified":0}
 *
 * Messages never hold a secret: they are built from the error table and
 * from names the client itself sent.
 */

#include "ngx_http_smarty_module.h"

#include <jansson.h>


static ngx_int_t ngx_http_smarty_add_header(ngx_http_request_t *r,
    const char *key, const char *value);


ngx_int_t
ngx_http_smarty_send_error(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e, const char *msg)
{
    json_t                   *o;
    ngx_buf_t                *b;
    ngx_chain_t               out;
    const smarty_err_info_t  *info;

    info = smarty_err_info(e);

    if (ctx) {
        ctx->err = e;
    }

    if (r->header_sent) {
        return NGX_ERROR;
    }

    o = json_pack("{s:i, s:{s:s, s:s}, s:b, s:i}",
                  "status", info->status,
                  "body", "error", msg ? msg : info->message,
                          "code", info->code,
                  "htmlencoded", 0,
                  "last_modified", 0);

    if (o == NULL && msg) {
        /* the message was not valid UTF-8 */
        o = json_pack("{s:i, s:{s:s, s:s}, s:b, s:i}",
                      "status", info->status,
                      "body", "error", info->message, "code", info->code,
                      "htmlencoded", 0,
                      "last_modified", 0);
    }

    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx && (e == SMARTY_E_QUOTA_EXCEEDED || e == SMARTY_E_QUOTA_BATCH)) {
        /* the code and the body name the limit */
        ngx_http_smarty_quota_error(ctx, json_object_get(o, "body"));
    }

    b = ngx_http_smarty_json_buf(r->pool, o);
    json_decref(o);

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (info->status == NGX_HTTP_UNAUTHORIZED) {
        if (ngx_http_smarty_add_header(r, "WWW-Authenticate",
                                       "Bearer realm=\"smarty-gateway\"")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (info->status == NGX_HTTP_NOT_ALLOWED) {
        if (ngx_http_smarty_add_header(r, "Allow", "POST") != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_smarty_send_chain(r, ctx, info->status, &out,
                                      b->last - b->pos);
}


/* a JSON value (json_t) as an answer's body: compact, in order, one line */

ngx_buf_t *
ngx_http_smarty_json_buf(ngx_pool_t *pool, void *json)
{
    char       *s;
    size_t      len;
    ngx_buf_t  *b;

    s = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        return NULL;
    }

    len = ngx_strlen(s);

    b = ngx_create_temp_buf(pool, len + 1);
    if (b != NULL) {
        b->last = ngx_cpymem(b->last, s, len);
        *b->last++ = '\n';
    }

    free(s);

    return b;
}


ngx_int_t
ngx_http_smarty_send_chain(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    ngx_uint_t status, ngx_chain_t *body, size_t len)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (ctx) {
        ctx->status = status;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ctx && ngx_http_smarty_cache_header(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx && ngx_http_smarty_quota_headers(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    for (cl = body; cl; cl = cl->next) {
        if (cl->next == NULL) {
            cl->buf->last_buf = (r == r->main) ? 1 : 0;
            cl->buf->last_in_chain = 1;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, body);
}


static ngx_int_t
ngx_http_smarty_add_header(ngx_http_request_t *r, const char *key,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}
