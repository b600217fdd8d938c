/*
 * smarty-gateway: answers (see ngx_http_smarty_reply.h).
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

#include "ngx_http_smarty_reply.h"

#include <jansson.h>


ngx_int_t
ngx_http_smarty_reply_error(ngx_http_request_t *r, ngx_http_smarty_error_t *e)
{
    json_t                   *o, *extra;
    ngx_buf_t                *b;
    ngx_chain_t               out;
    const char               *msg;
    const smarty_err_info_t  *info;

    info = smarty_err_info(e->err);
    extra = e->extra;
    e->extra = NULL;

    if (r->header_sent) {
        json_decref(extra);
        return NGX_ERROR;
    }

    msg = e->msg ? e->msg : info->message;

    o = json_pack("{s:i, s:{s:s, s:s}, s:b, s:i}",
                  "status", info->status,
                  "body", "error", msg,
                          "code", e->code ? e->code : info->code,
                  "htmlencoded", 0,
                  "last_modified", 0);

    if (o == NULL && e->msg) {
        /* the message was not valid UTF-8 */
        o = json_pack("{s:i, s:{s:s, s:s}, s:b, s:i}",
                      "status", info->status,
                      "body", "error", info->message,
                              "code", e->code ? e->code : info->code,
                      "htmlencoded", 0,
                      "last_modified", 0);
    }

    if (o == NULL) {
        json_decref(extra);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (extra) {
        (void) json_object_update(json_object_get(o, "body"), extra);
        json_decref(extra);
    }

    b = ngx_http_smarty_reply_json_buf(r->pool, o);
    json_decref(o);

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (info->status == NGX_HTTP_UNAUTHORIZED
        && ngx_http_smarty_reply_header(r, "WWW-Authenticate",
                            sizeof("WWW-Authenticate") - 1,
                            (u_char *) "Bearer realm=\"smarty-gateway\"",
                            sizeof("Bearer realm=\"smarty-gateway\"") - 1)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (info->status == NGX_HTTP_NOT_ALLOWED
        && ngx_http_smarty_reply_header(r, "Allow", sizeof("Allow") - 1,
                                        (u_char *) "POST", 4)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_smarty_reply_chain(r, info->status, &out,
                                       b->last - b->pos);
}


ngx_buf_t *
ngx_http_smarty_reply_json_buf(ngx_pool_t *pool, void *json)
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
ngx_http_smarty_reply_chain(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *body, size_t len)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

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


ngx_int_t
ngx_http_smarty_reply_buf(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.data = (u_char *) content_type;
    r->headers_out.content_type.len = ngx_strlen(content_type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_smarty_reply_header(r, "Cache-Control",
                                     sizeof("Cache-Control") - 1,
                                     (u_char *) "no-store",
                                     sizeof("no-store") - 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_smarty_reply_header(ngx_http_request_t *r, const char *key,
    size_t klen, u_char *value, size_t vlen)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = klen;
    h->value.data = value;
    h->value.len = vlen;

    return NGX_OK;
}
