/*
 * smarty-gateway: quotas, what the client sees (docs/quota.md): the 429
 * and 413 envelopes naming the limit, the RateLimit headers
 * (draft-ietf-httpapi-ratelimit-headers-07), the $smarty_quota_*
 * variables.
 */

#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_quota_request.h"

#include <jansson.h>


static size_t ngx_http_smarty_quota_name(ngx_http_smarty_quota_ctx_t *q,
    size_t i, char *out, size_t size);
static ngx_table_elt_t *ngx_http_smarty_quota_header(ngx_http_request_t *r,
    const char *name, size_t len);
static ngx_int_t ngx_http_smarty_quota_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static const char  *ngx_http_smarty_quota_status_text[] = {
    "", "PASS", "REFUSED", "LOCAL_PASS", "LOCAL_REFUSED", "CLOSED"
};


static const char  *ngx_http_smarty_quota_limit_names[] = {
    "space_requests_second", "space_requests_minute",
    "space_requests_hour", "space_requests_day",
    "space_images_second", "space_images_minute",
    "space_images_hour", "space_images_day",
    "client_requests_second", "client_requests_minute",
    "client_requests_hour", "client_requests_day",
    "client_images_second", "client_images_minute",
    "client_images_hour", "client_images_day"
};


ngx_http_variable_t  ngx_http_smarty_quota_variables[] = {

    { ngx_string("smarty_quota_status"), NULL,
      ngx_http_smarty_quota_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_limit"), NULL,
      ngx_http_smarty_quota_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_remaining"), NULL,
      ngx_http_smarty_quota_variable, 2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_quota_reset"), NULL,
      ngx_http_smarty_quota_variable, 3, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_smarty_quota_admitted(ngx_http_request_t *r)
{
    char                         *p, *msg, name[64], code[80];
    char                          policy[64];
    size_t                        i;
    json_t                       *extra;
    smarty_quota_item_t          *it;
    ngx_http_smarty_ctx_t        *ctx;
    ngx_http_smarty_quota_ctx_t  *q;

    q = ngx_http_smarty_quota_get(r);

    if (q == NULL
        || (q->status != SMARTY_QUOTA_REFUSED
            && q->status != SMARTY_QUOTA_LOCAL_REFUSED
            && q->status != SMARTY_QUOTA_CLOSED))
    {
        return NGX_OK;
    }

    ctx = ngx_http_smarty_ctx(r);

    /* a look again while coalescing may refuse what a first look spent */

    if (q->spent_requests || q->spent_images) {
        ngx_http_smarty_quota_give_back(q, q->spent_requests,
                                        q->spent_images);
    }

    if (q->status == SMARTY_QUOTA_CLOSED) {
        ctx->error.err = SMARTY_E_QUOTA_UNAVAILABLE;
        return NGX_DECLINED;
    }

    i = q->call.res.refused - 1;
    it = &q->call.items[i];

    ctx->error.err = (q->call.res.retry_ms == SMARTY_QUOTA_NEVER)
                     ? SMARTY_E_QUOTA_BATCH : SMARTY_E_QUOTA_EXCEEDED;

    msg = ngx_pnalloc(r->pool, 256);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    (void) smarty_quota_refusal(it->limit, ctx->m.space, i >= q->nspace,
                                q->status == SMARTY_QUOTA_LOCAL_REFUSED,
                                q->call.res.retry_ms, msg, 256);
    ctx->error.msg = msg;

    /* the envelope names the limit: its code, body.limit, retry_after */

    (void) ngx_http_smarty_quota_name(q, i, name, sizeof(name));
    (void) smarty_quota_limit_text(it->limit, policy, sizeof(policy));

    if (ctx->error.err == SMARTY_E_QUOTA_EXCEEDED) {
        p = ngx_pnalloc(r->pool, sizeof(code));
        if (p == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_snprintf((u_char *) p, sizeof(code) - 1, "quota_%s%Z",
                            name);
        ctx->error.code = p;
    }

    extra = json_pack("{s:{s:s, s:s, s:s, s:s}}",
                      "limit",
                      "scope", i < q->nspace ? "space" : "client",
                      "unit", smarty_quota_unit_name(it->limit),
                      "window", smarty_quota_window_name(it->limit),
                      "policy", policy);

    if (extra && ctx->error.err == SMARTY_E_QUOTA_EXCEEDED) {
        json_object_set_new(extra, "retry_after",
               json_integer(smarty_quota_retry_after(q->call.res.retry_ms)));
    }

    ctx->error.extra = extra;

    return NGX_DECLINED;
}


/* "client_images_minute": the limit's name, the code after "quota_" */

static size_t
ngx_http_smarty_quota_name(ngx_http_smarty_quota_ctx_t *q, size_t i,
    char *out, size_t size)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) out, size - 1, "%s_%s_%s",
                     i < q->nspace ? "space" : "client",
                     smarty_quota_unit_name(q->call.items[i].limit),
                     smarty_quota_window_name(q->call.items[i].limit));
    *p = '\0';

    return p - (u_char *) out;
}


/*
 * RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-07)
 * on every answer once the limits were decided, Retry-After on a 429.
 */

ngx_int_t
ngx_http_smarty_quota_headers(ngx_http_request_t *r)
{
    size_t                        len, pick;
    int64_t                       retry;
    ngx_table_elt_t              *h;
    smarty_quota_item_t           item;
    ngx_http_smarty_quota_ctx_t  *q;

    q = ngx_http_smarty_quota_get(r);

    if (q == NULL || !q->decided) {
        return NGX_OK;
    }

    pick = smarty_quota_pick(q->call.items, q->call.n, q->call.res.refused);

    len = smarty_quota_policy_header(q->call.items, q->call.n, NULL, 0);

    h = ngx_http_smarty_quota_header(r, "RateLimit-Policy", len);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = smarty_quota_policy_header(q->call.items, q->call.n,
                                              (char *) h->value.data,
                                              len + 1);

    /*
     * on a refusal, "reset" is the moment Retry-After names (draft-07:
     * both SHOULD point to the same moment); a GCRA's wait for room is
     * shorter than its time to drain
     */

    item = q->call.items[pick];

    if (q->call.res.refused && q->call.res.retry_ms >= 0) {
        item.reset_ms = q->call.res.retry_ms;
    }

    len = smarty_quota_ratelimit_header(&item, NULL, 0);

    h = ngx_http_smarty_quota_header(r, "RateLimit", len);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = smarty_quota_ratelimit_header(&item,
                                                 (char *) h->value.data,
                                                 len + 1);

    if (!q->call.res.refused) {
        return NGX_OK;
    }

    retry = smarty_quota_retry_after(q->call.res.retry_ms);
    if (retry < 0) {
        return NGX_OK;
    }

    h = ngx_http_smarty_quota_header(r, "Retry-After", NGX_INT64_LEN);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%L", retry) - h->value.data;

    return NGX_OK;
}


/* an answer's header, its value len + 1 bytes to be written */

static ngx_table_elt_t *
ngx_http_smarty_quota_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->value.data = ngx_pnalloc(r->pool, len + 1);
    if (h->value.data == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.len = 0;

    return h;
}


/* $smarty_quota_status, _limit, _remaining, _reset */

static ngx_int_t
ngx_http_smarty_quota_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    char                          name[64];
    size_t                        pick;
    u_char                       *p;
    ngx_http_smarty_quota_ctx_t  *q;

    q = ngx_http_smarty_quota_get(r);

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->len = 0;
    v->data = (u_char *) "";

    if (q == NULL) {
        return NGX_OK;
    }

    if (data == 0) {
        v->data = (u_char *) ngx_http_smarty_quota_status_text[q->status];
        v->len = ngx_strlen(v->data);
        return NGX_OK;
    }

    if (!q->decided) {
        return NGX_OK;
    }

    pick = smarty_quota_pick(q->call.items, q->call.n, q->call.res.refused);

    p = ngx_pnalloc(r->pool, 64);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    switch (data) {

    case 1:
        v->len = ngx_http_smarty_quota_name(q, pick, name, sizeof(name));
        ngx_memcpy(p, name, v->len);
        break;

    case 2:
        v->len = ngx_sprintf(p, "%uL", q->call.items[pick].remaining) - p;
        break;

    default:
        v->len = ngx_sprintf(p, "%L",
                             (q->call.items[pick].reset_ms + 999) / 1000)
                 - p;
        break;
    }

    return NGX_OK;
}


/* for the audit and the metrics */

void
ngx_http_smarty_quota_outcome(ngx_http_request_t *r,
    ngx_http_smarty_quota_outcome_t *out)
{
    size_t                         pick, i;
    ngx_uint_t                     w;
    const smarty_quota_limit_t    *l;
    ngx_http_smarty_quota_ctx_t   *q;

    ngx_memzero(out, sizeof(ngx_http_smarty_quota_outcome_t));
    out->refused = -1;
    out->text = "";

    q = ngx_http_smarty_quota_get(r);

    if (q == NULL) {
        return;
    }

    out->status = q->status;
    out->text = ngx_http_smarty_quota_status_text[q->status];
    out->redis_failed = q->redis_failed;

    if (!q->decided || q->call.n == 0) {
        return;
    }

    pick = smarty_quota_pick(q->call.items, q->call.n, q->call.res.refused);

    out->decided = 1;
    out->remaining = q->call.items[pick].remaining;
    (void) ngx_http_smarty_quota_name(q, pick, out->limit,
                                      sizeof(out->limit));

    if (q->call.res.refused == 0) {
        return;
    }

    i = q->call.res.refused - 1;
    l = q->call.items[i].limit;

    switch (l->window) {
    case 's':
        w = 0;
        break;
    case 'm':
        w = 1;
        break;
    case 'h':
        w = 2;
        break;
    default:
        w = 3;
        break;
    }

    out->refused = (i < q->nspace ? 0 : 8) + (l->unit == 'r' ? 0 : 4) + w;
}


const char *
ngx_http_smarty_quota_limit_name(ngx_uint_t i)
{
    return i < NGX_HTTP_SMARTY_QUOTA_LIMITS
           ? ngx_http_smarty_quota_limit_names[i] : NULL;
}
