/*
 * smarty-gateway: forwarding to the upstream.
 *
 * The request goes upstream as a subrequest to the internal location named
 * by "smarty_upstream", which holds nginx's own proxy_pass: TLS, keepalive,
 * timeouts and retries stay proxy_* configuration.  The subrequest:
 *
 *   - is a POST carrying the client's body bytes unchanged (it shares the
 *     parent's request_body: memory buffers or the temp file as they are);
 *   - has the client's headers minus Authorization, the client's key;
 *   - has a query string built from scratch: the gateway's oauth_provider
 *     and oauth_token, then only the client's parameters that
 *     "smarty_upstream_args" allows (none by default), never a credential
 *     in any spelling (names compared percent-decoded, in any case);
 *   - keeps the answer in memory (NGX_HTTP_SUBREQUEST_IN_MEMORY), so the
 *     gateway decides what the client sees: the upstream's answer, or an
 *     error in the API's envelope (502, 504) when the upstream failed.
 *
 * The answer must fit in the subrequest_output_buffer_size of that
 * location.
 */

#include "ngx_http_smarty_module.h"
#include "smarty_args.h"
#include "smarty_cache.h"


static ngx_int_t ngx_http_smarty_upstream_post(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_smarty_strip_credentials(ngx_http_request_t *r,
    ngx_http_request_t *sr);
static ngx_int_t ngx_http_smarty_upstream_subset(ngx_http_request_t *r,
    ngx_http_request_t *sr, ngx_http_smarty_ctx_t *ctx);


ngx_int_t
ngx_http_smarty_upstream_start(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    u_char                       *p;
    size_t                        plen;
    ngx_str_t                     uri, args, client_args;
    ngx_http_request_t           *sr;
    ngx_http_post_subrequest_t   *ps;

    plen = ngx_strlen(ctx->method->path);

    uri.len = slcf->upstream.len + plen;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(uri.data, slcf->upstream.data, slcf->upstream.len);
    ngx_memcpy(p, ctx->method->path, plen);

    client_args = ctx->up_args;

    /* the gateway's credentials first, then what the allow-list lets by */

    args.len = sizeof("oauth_provider=&oauth_token=") - 1
               + slcf->provider.len + slcf->token.len
               + (client_args.len ? client_args.len + 1 : 0);

    args.data = ngx_pnalloc(r->pool, args.len);
    if (args.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(args.data, "oauth_provider=", sizeof("oauth_provider=") - 1);
    p = ngx_cpymem(p, slcf->provider.data, slcf->provider.len);
    p = ngx_cpymem(p, "&oauth_token=", sizeof("&oauth_token=") - 1);
    p = ngx_cpymem(p, slcf->token.data, slcf->token.len);

    if (client_args.len) {
        *p++ = '&';
        p = ngx_cpymem(p, client_args.data, client_args.len);
    }

    args.len = p - args.data;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_smarty_upstream_post;
    ps->data = ctx;

    if (ngx_http_subrequest(r, &uri, &args, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->method = NGX_HTTP_POST;
    sr->method_name = r->method_name;
    sr->request_body = r->request_body;
    sr->header_only = 0;

    if (ctx->cache.status == SMARTY_CACHE_PARTIAL) {
        /* only the images the cache does not have */
        if (ngx_http_smarty_upstream_subset(r, sr, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_smarty_strip_credentials(r, sr) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->sr = sr;
    ctx->up_done = 0;

    r->write_event_handler = ngx_http_smarty_upstream_done;

    return NGX_OK;
}


/*
 * The client's parameters that go upstream: those "smarty_upstream_args"
 * names, as the client sent them, in its order; never a credential.  The
 * cache key depends on exactly these bytes.
 */

ngx_int_t
ngx_http_smarty_upstream_args(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_str_t *out)
{
    u_char        *p;
    size_t         pos;
    ngx_str_t     *allow;
    ngx_uint_t     i;
    smarty_arg_t   a;

    out->len = 0;
    out->data = NULL;

    if (slcf->upstream_args == NULL || r->args.len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, r->args.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    allow = slcf->upstream_args->elts;
    pos = 0;

    while (smarty_args_next((const char *) r->args.data, r->args.len, &pos,
                            &a))
    {
        if (smarty_args_credential(a.name, a.name_len)) {
            continue;
        }

        for (i = 0; i < slcf->upstream_args->nelts; i++) {
            if (smarty_args_name_is(a.name, a.name_len,
                                    (const char *) allow[i].data, 1))
            {
                break;
            }
        }

        if (i == slcf->upstream_args->nelts) {
            continue;
        }

        if (p != out->data) {
            *p++ = '&';
        }

        p = ngx_cpymem(p, a.pair, a.pair_len);
    }

    out->len = p - out->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_upstream_subset(ngx_http_request_t *r, ngx_http_request_t *sr,
    ngx_http_smarty_ctx_t *ctx)
{
    off_t                     len;
    char                     *meta;
    u_char                   *copy;
    size_t                    meta_len;
    ngx_uint_t                i;
    const char              **keep;
    ngx_http_request_body_t  *rb;

    keep = ngx_palloc(r->pool, ctx->cache.nup * sizeof(char *));
    if (keep == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->cache.nup; i++) {
        keep[i] = ctx->m.images[ctx->cache.up[i]].name;
    }

    meta = smarty_meta_subset((const char *) ctx->meta, ctx->meta_len, keep,
                              ctx->cache.nup, &meta_len);
    if (meta == NULL) {
        return NGX_ERROR;
    }

    copy = ngx_pnalloc(r->pool, meta_len);
    if (copy == NULL) {
        free(meta);
        return NGX_ERROR;
    }

    ngx_memcpy(copy, meta, meta_len);
    free(meta);

    if (ngx_http_smarty_body_subset(r, ctx, ctx->cache.up, ctx->cache.nup,
                                    copy, meta_len, &rb, &len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->request_body = rb;
    sr->headers_in.content_length_n = len;
    sr->headers_in.chunked = 0;

    return NGX_OK;
}


/* the subrequest's headers: the client's, without its key */

static ngx_int_t
ngx_http_smarty_strip_credentials(ngx_http_request_t *r,
    ngx_http_request_t *sr)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 16,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Authorization") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Authorization",
                               sizeof("Authorization") - 1) == 0)
        {
            continue;
        }

        nh = ngx_list_push(&sr->headers_in.headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    sr->headers_in.authorization = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_upstream_post(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_smarty_ctx_t  *ctx = data;

    ngx_buf_t  *b;

    if (ctx->up_done) {
        return rc;
    }

    ctx->up_done = 1;
    ctx->up_rc = rc;

    if (sr->upstream && sr->upstream->headers_in.status_n) {
        ctx->up_status = sr->upstream->headers_in.status_n;
    }

    /* the answer, as the postpone filter gathered it in memory */

    if (rc == NGX_OK && sr->out && sr->out->buf) {
        b = sr->out->buf;

        if (b->last > b->pos) {
            ctx->up_body = sr->out;
            ctx->up_len = b->last - b->pos;
        }
    }

    if (rc == NGX_HTTP_CLIENT_CLOSED_REQUEST || sr->connection->error) {
        /* the client is gone: nothing to answer */
        return rc;
    }

    /*
     * Otherwise the gateway answers for the subrequest, whatever happened
     * upstream: no error page of nginx's may reach the client.  The parent
     * goes on in ngx_http_smarty_upstream_done().
     */

    return NGX_OK;
}


/*
 * What the upstream's outcome means for the client: SMARTY_OK (the answer is
 * in ctx->up_body) or the error to answer with.
 */

smarty_err_e
ngx_http_smarty_upstream_result(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, char *msg, size_t len)
{
    ngx_http_request_t  *sr;

    sr = ctx->sr;

    if (sr->upstream == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "smarty: the \"smarty_upstream\" location did not "
                      "proxy the request (status %i)", ctx->up_rc);
        return SMARTY_E_INTERNAL;
    }

    if (ctx->up_rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        return SMARTY_E_UPSTREAM_TIMEOUT;
    }

    if (ctx->up_rc == NGX_ERROR && ctx->up_status == NGX_HTTP_OK) {
        ngx_snprintf((u_char *) msg, len - 1,
                     "the recognition service's answer is larger than "
                     "subrequest_output_buffer_size%Z");
        return SMARTY_E_UPSTREAM_BAD_ANSWER;
    }

    if (ctx->up_rc != NGX_OK || ctx->up_status == 0) {
        return SMARTY_E_UPSTREAM_UNAVAILABLE;
    }

    if (ctx->up_status == NGX_HTTP_UNAUTHORIZED
        || ctx->up_status == NGX_HTTP_FORBIDDEN)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "smarty: the upstream rejected the gateway's token "
                      "(HTTP %ui); check smarty_upstream_token_file",
                      ctx->up_status);
        return SMARTY_E_UPSTREAM_AUTH;
    }

    if (ctx->up_status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_snprintf((u_char *) msg, len - 1,
                     "the recognition service failed (HTTP %ui)%Z",
                     ctx->up_status);
        return SMARTY_E_UPSTREAM_ERROR;
    }

    if (ctx->up_len == 0) {
        ngx_snprintf((u_char *) msg, len - 1,
                     "the recognition service answered HTTP %ui with no "
                     "body%Z", ctx->up_status);
        return SMARTY_E_UPSTREAM_BAD_ANSWER;
    }

    return SMARTY_OK;
}
