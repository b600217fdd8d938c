/*
 * smarty-gateway: the request flow (see ngx_http_smarty_flow.h,
 * docs/architecture.md).
 *
 *   handler   method from the URI, the client's key and right to the
 *             method, the body's Content-Type; nginx reads the body
 *   body      parsed, meta validated, the space and write rights, the
 *             quota's limits
 *   admit     the cache's lookup (the quota decided in its round trip)
 *             or the quota alone: a refusal, an answer from the cache, or
 *             the upstream
 *   upstream  its answer, merged with the cached images, stored
 *   count     a change of the space counted in Redis before its answer
 *
 * A concern's asynchronous step calls ngx_http_smarty_flow_resume(),
 * which goes on by the state the request is in.  Every answer leaves from
 * ngx_http_smarty_flow_answer() or _error(): the concerns add their
 * headers there, and the request is finalized there and nowhere else.
 */

#include "ngx_http_smarty_flow.h"
#include "ngx_http_smarty_audit.h"
#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_body.h"
#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_metrics.h"
#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_reply.h"
#include "ngx_http_smarty_upstream.h"


typedef enum {
    NGX_HTTP_SMARTY_FLOW_BODY = 0,
    NGX_HTTP_SMARTY_FLOW_LOOKUP,
    NGX_HTTP_SMARTY_FLOW_QUOTA,
    NGX_HTTP_SMARTY_FLOW_UPSTREAM,
    NGX_HTTP_SMARTY_FLOW_COUNT,
    NGX_HTTP_SMARTY_FLOW_DONE
} ngx_http_smarty_flow_state_e;


static void ngx_http_smarty_flow_body(ngx_http_request_t *r);
static void ngx_http_smarty_flow_admit(ngx_http_request_t *r);
static void ngx_http_smarty_flow_resume(ngx_http_request_t *r);
static void ngx_http_smarty_flow_looked_up(ngx_http_request_t *r);
static void ngx_http_smarty_flow_quota(ngx_http_request_t *r);
static void ngx_http_smarty_flow_decided(ngx_http_request_t *r);
static void ngx_http_smarty_flow_forward(ngx_http_request_t *r);
static void ngx_http_smarty_flow_answered(ngx_http_request_t *r);
static void ngx_http_smarty_flow_answer(ngx_http_request_t *r,
    ngx_uint_t status, ngx_chain_t *body, size_t len);
static void ngx_http_smarty_flow_error(ngx_http_request_t *r,
    smarty_err_e e);
static ngx_int_t ngx_http_smarty_flow_send_error(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);
static ngx_int_t ngx_http_smarty_flow_reject(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, smarty_err_e e);


ngx_int_t
ngx_http_smarty_flow_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      path, *prefix;
    smarty_err_e                   e;
    ngx_http_smarty_ctx_t         *ctx;
    ngx_http_smarty_loc_conf_t    *slcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_smarty_module);

    /* the method, from the URI: <api_prefix><group>/<method> */

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_gateway_module);
    prefix = &slcf->api_prefix;

    if (r->uri.len <= prefix->len
        || ngx_strncmp(r->uri.data, prefix->data, prefix->len) != 0)
    {
        return ngx_http_smarty_flow_reject(r, ctx, SMARTY_E_UNKNOWN_ENDPOINT);
    }

    path.data = r->uri.data + prefix->len;
    path.len = r->uri.len - prefix->len;

    ctx->method = smarty_method_find((const char *) path.data, path.len);
    if (ctx->method == NULL) {
        return ngx_http_smarty_flow_reject(r, ctx, SMARTY_E_UNKNOWN_ENDPOINT);
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_smarty_flow_reject(r, ctx,
                                           SMARTY_E_METHOD_NOT_ALLOWED);
    }

    /* who, and may they call this method: before a byte of body is read */

    e = ngx_http_smarty_auth_identify(r, &ctx->client);

    if (e == SMARTY_OK) {
        e = ngx_http_smarty_auth_method(ctx->client, ctx->method);
    }

    if (e != SMARTY_OK) {
        return ngx_http_smarty_flow_reject(r, ctx, e);
    }

    if (ngx_http_smarty_upstream_args(r, &ctx->args) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_smarty_body_begin(r);

    if (rc == NGX_DECLINED) {
        return ngx_http_smarty_flow_reject(r, ctx, ctx->error.err);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = NGX_HTTP_SMARTY_FLOW_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_http_smarty_flow_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            r->keepalive = 0;
            r->lingering_close = 1;
            ctx->error.err = SMARTY_E_BODY_TOO_LARGE;
            return ngx_http_smarty_flow_send_error(r, ctx);
        }

        return rc;
    }

    return NGX_DONE;
}


/* the whole body is read */

static void
ngx_http_smarty_flow_body(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    smarty_err_e            e;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);

    rc = ngx_http_smarty_body_parse(r);

    if (rc == NGX_DECLINED) {
        ngx_http_smarty_flow_error(r, ctx->error.err);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    e = ngx_http_smarty_auth_meta(ctx->client, ctx->method, &ctx->m);

    if (e != SMARTY_OK) {
        ngx_http_smarty_flow_error(r, e);
        return;
    }

    if (ngx_http_smarty_quota_prepare(r) != NGX_OK) {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    ngx_http_smarty_flow_admit(r);
}


/* the cache looks the request up, and decides the quota in its round trip */

static void
ngx_http_smarty_flow_admit(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);

    rc = ngx_http_smarty_cache_prepare(r);

    if (rc == NGX_ERROR) {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    if (rc == NGX_OK) {
        ctx->state = NGX_HTTP_SMARTY_FLOW_LOOKUP;

        rc = ngx_http_smarty_cache_lookup(r, ngx_http_smarty_quota_slice(r),
                                          ngx_http_smarty_flow_resume);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
            return;
        }
    }

    ngx_http_smarty_flow_quota(r);
}


/* a concern's asynchronous step is over: go on from where the request is */

static void
ngx_http_smarty_flow_resume(ngx_http_request_t *r)
{
    ngx_connection_t       *c;
    ngx_http_smarty_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_smarty_ctx(r);

    switch (ctx->state) {

    case NGX_HTTP_SMARTY_FLOW_LOOKUP:
        ngx_http_smarty_flow_looked_up(r);
        break;

    case NGX_HTTP_SMARTY_FLOW_QUOTA:
        ngx_http_smarty_flow_decided(r);
        break;

    case NGX_HTTP_SMARTY_FLOW_UPSTREAM:
        /* the parent's write event: nginx runs the posted requests */
        ngx_http_smarty_flow_answered(r);
        return;

    case NGX_HTTP_SMARTY_FLOW_COUNT:
        /* Redis's reply: its handler runs the posted requests */
        ngx_http_smarty_flow_answered(r);
        return;

    default:
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "smarty: resumed in state %ui", ctx->state);
        return;
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_smarty_flow_looked_up(ngx_http_request_t *r)
{
    size_t        len;
    ngx_uint_t   *up, nup;
    ngx_chain_t  *answer;

    switch (ngx_http_smarty_cache_decision(r, &answer, &len, &up, &nup)) {

    case NGX_HTTP_SMARTY_CACHE_REFUSED:
        ngx_http_smarty_flow_decided(r);
        return;

    case NGX_HTTP_SMARTY_CACHE_ANSWER:
        ngx_http_smarty_quota_settle(r, 0);
        ngx_http_smarty_flow_answer(r, NGX_HTTP_OK, answer, len);
        return;

    default: /* NGX_HTTP_SMARTY_CACHE_FORWARD */
        ngx_http_smarty_quota_settle(r, nup);
        ngx_http_smarty_flow_quota(r);
        return;
    }
}


/* the quota, unless the lookup decided it */

static void
ngx_http_smarty_flow_quota(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);
    ctx->state = NGX_HTTP_SMARTY_FLOW_QUOTA;

    rc = ngx_http_smarty_quota_decide(r, ngx_http_smarty_flow_resume);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    ngx_http_smarty_flow_decided(r);
}


static void
ngx_http_smarty_flow_decided(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);

    rc = ngx_http_smarty_quota_admitted(r);

    if (rc == NGX_DECLINED) {
        ngx_http_smarty_flow_error(r, ctx->error.err);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    ngx_http_smarty_flow_forward(r);
}


/* to the upstream: the client's body, or the images the cache lacks */

static void
ngx_http_smarty_flow_forward(ngx_http_request_t *r)
{
    off_t                     len;
    size_t                    alen;
    ngx_int_t                 rc;
    ngx_uint_t               *up, nup;
    ngx_chain_t              *answer;
    ngx_http_smarty_ctx_t    *ctx;
    ngx_http_request_body_t  *rb;

    ctx = ngx_http_smarty_ctx(r);

    rb = NULL;
    len = 0;

    (void) ngx_http_smarty_cache_decision(r, &answer, &alen, &up, &nup);

    if (up != NULL
        && ngx_http_smarty_body_subset(r, up, nup, &rb, &len) != NGX_OK)
    {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    ctx->state = NGX_HTTP_SMARTY_FLOW_UPSTREAM;
    ctx->forwarded = 1;

    rc = ngx_http_smarty_upstream_call(r, rb, len,
                                       ngx_http_smarty_flow_resume);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
        return;
    }

    /* no call could be made: the result says why */
    ngx_http_smarty_flow_answered(r);
}


static void
ngx_http_smarty_flow_answered(ngx_http_request_t *r)
{
    u_char                 *p;
    char                    msg[160];
    ngx_int_t               rc;
    smarty_err_e            e;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);

    if (ctx->state == NGX_HTTP_SMARTY_FLOW_UPSTREAM) {
        ctx->state = NGX_HTTP_SMARTY_FLOW_COUNT;

        rc = ngx_http_smarty_cache_count(r, ngx_http_smarty_flow_resume);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_smarty_flow_error(r, SMARTY_E_INTERNAL);
            return;
        }
    }

    msg[0] = '\0';
    e = ngx_http_smarty_upstream_result(r, msg, sizeof(msg));

    rc = ngx_http_smarty_cache_finish(r, e == SMARTY_OK);

    if (e == SMARTY_OK && rc == NGX_DECLINED) {
        e = SMARTY_E_UPSTREAM_BAD_ANSWER;

    } else if (e == SMARTY_OK && rc == NGX_ERROR) {
        e = SMARTY_E_INTERNAL;
    }

    if (e == SMARTY_OK) {
        ngx_http_smarty_flow_answer(r, ctx->up_status, ctx->up_body,
                                    ctx->up_len);
        return;
    }

    ngx_http_smarty_quota_refund(r, e);

    if (msg[0]) {
        p = ngx_pnalloc(r->pool, ngx_strlen(msg) + 1);
        if (p != NULL) {
            ngx_memcpy(p, msg, ngx_strlen(msg) + 1);
            ctx->error.msg = (const char *) p;
        }
    }

    ngx_http_smarty_flow_error(r, e);
}


/* --- every answer leaves from here ---------------------------------------- */


static void
ngx_http_smarty_flow_answer(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *body, size_t len)
{
    ngx_int_t               rc;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);
    ctx->state = NGX_HTTP_SMARTY_FLOW_DONE;
    ctx->status = status;

    if (ngx_http_smarty_cache_headers(r) != NGX_OK
        || ngx_http_smarty_quota_headers(r) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    rc = ngx_http_smarty_reply_chain(r, status, body, len);

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_smarty_flow_error(ngx_http_request_t *r, smarty_err_e e)
{
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_smarty_ctx(r);
    ctx->state = NGX_HTTP_SMARTY_FLOW_DONE;

    if (e != ctx->error.err) {
        /* the error of a step that left no sentence of its own */
        ctx->error.err = e;
        ctx->error.msg = (e == SMARTY_E_INTERNAL) ? NULL : ctx->error.msg;
    }

    if (ngx_http_smarty_cache_headers(r) != NGX_OK
        || ngx_http_smarty_quota_headers(r) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_smarty_flow_send_error(r, ctx));
}


static ngx_int_t
ngx_http_smarty_flow_send_error(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx)
{
    ctx->status = smarty_err_info(ctx->error.err)->status;

    return ngx_http_smarty_reply_error(r, &ctx->error);
}


/* an answer before the body is read: the body is discarded */

static ngx_int_t
ngx_http_smarty_flow_reject(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    ctx->state = NGX_HTTP_SMARTY_FLOW_DONE;
    ctx->error.err = e;

    return ngx_http_smarty_flow_send_error(r, ctx);
}


/* --- nginx's own refusals ------------------------------------------------- */


ngx_int_t
ngx_http_smarty_flow_refuse(ngx_http_request_t *r, smarty_err_e e)
{
    u_char                      *q, *src, *dst;
    ngx_str_t                    uri, *prefix;
    ngx_http_smarty_ctx_t       *ctx;
    ngx_http_smarty_error_t      err;
    ngx_http_smarty_loc_conf_t  *slcf;

    /*
     * The URI the client sent: error_page's redirect changed r->uri, not
     * the request line's (empty when the request line itself was bad).
     * Its path percent-decoded, as nginx decodes r->uri for the flow.
     */

    uri = r->unparsed_uri;

    q = ngx_strlchr(uri.data, uri.data + uri.len, '?');
    if (q) {
        uri.len = q - uri.data;
    }

    if (uri.len) {
        dst = ngx_pnalloc(r->pool, uri.len);
        if (dst == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        src = uri.data;
        uri.data = dst;
        ngx_unescape_uri(&dst, &src, uri.len, NGX_UNESCAPE_URI);
        uri.len = dst - uri.data;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_gateway_module);
    prefix = &slcf->api_prefix;

    if (r != r->main
        || ngx_http_get_module_ctx(r, ngx_http_smarty_module) != NULL
        || uri.len <= prefix->len
        || ngx_strncmp(uri.data, prefix->data, prefix->len) != 0)
    {
        /* not an API request: the envelope alone */

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        ngx_memzero(&err, sizeof(ngx_http_smarty_error_t));
        err.err = e;

        return ngx_http_smarty_reply_error(r, &err);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_smarty_module);

    ctx->method = smarty_method_find((const char *) uri.data + prefix->len,
                                     uri.len - prefix->len);

    /* who sent it, when the key says so: for the record, nothing more */

    (void) ngx_http_smarty_auth_identify(r, &ctx->client);

    return ngx_http_smarty_flow_reject(r, ctx, e);
}


/* --- the request is finished ---------------------------------------------- */


ngx_int_t
ngx_http_smarty_flow_finished(ngx_http_request_t *r)
{
    ngx_http_smarty_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_module);

    if (r != r->main || ctx == NULL) {
        return NGX_OK;
    }

    /* the status the client got, as $status has it: an error of nginx's
     * after the flow answered, a client that left */

    if (r->err_status) {
        ctx->status = r->err_status;

    } else if (r->headers_out.status) {
        ctx->status = r->headers_out.status;
    }

    ngx_http_smarty_metrics_finished(r);
    ngx_http_smarty_audit_finished(r);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "smarty: finished: %s, status %ui, error %s, upstream %ui",
                   ctx->method ? ctx->method->path : "-", ctx->status,
                   smarty_err_info(ctx->error.err)->code, ctx->up_status);

    return NGX_OK;
}
