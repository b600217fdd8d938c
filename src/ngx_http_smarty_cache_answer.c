/*
 * smarty-gateway: the cache, what the client sees (docs/cache.md): the
 * upstream's answers stored per image and merged with the cached ones,
 * Cache-Status (RFC 9211), $smarty_cache_status and $smarty_cache_hits.
 */

#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_cache_request.h"


static const char *ngx_http_smarty_cache_status_text(
    ngx_http_smarty_cache_ctx_t *c);
static ngx_int_t ngx_http_smarty_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


ngx_http_variable_t  ngx_http_smarty_cache_variables[] = {

    { ngx_string("smarty_cache_status"), NULL,
      ngx_http_smarty_cache_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("smarty_cache_hits"), NULL,
      ngx_http_smarty_cache_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * A change of the space, whatever the upstream answered: counted before
 * the answer goes (see ngx_http_smarty_cache.h).
 */

ngx_int_t
ngx_http_smarty_cache_count(ngx_http_request_t *r,
    ngx_http_smarty_next_pt next)
{
    ngx_http_smarty_ctx_t        *ctx;
    ngx_http_smarty_cache_ctx_t  *c;

    ctx = ngx_http_smarty_ctx(r);
    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);

    if (c == NULL || !smarty_meta_writes(ctx->method, &ctx->m)
        || ctx->m.space < 0)
    {
        return NGX_OK;
    }

    return ngx_http_smarty_cache_bump(&c->gen_key, r->connection->log, r,
                                      next);
}


/*
 * After the upstream (ok: its answer is in the context's up_body): store
 * what may be stored, and for a partial hit merge the cached and the fresh
 * answers into up_body.  Returns NGX_OK, or NGX_DECLINED when the fresh
 * answer cannot be merged (502).
 */

ngx_int_t
ngx_http_smarty_cache_finish(ngx_http_request_t *r, ngx_uint_t ok)
{
    int                           rc;
    char                          err[128];
    u_char                       *body;
    size_t                        len, *lens;
    ngx_uint_t                    i, k, malformed;
    ngx_chain_t                  *cl;
    const char                  **names, **values;
    smarty_answer_t               ans;
    ngx_http_smarty_ctx_t        *ctx;
    ngx_http_smarty_cache_ctx_t  *c;
    ngx_http_smarty_cache_conf_t *ccf;

    ctx = ngx_http_smarty_ctx(r);
    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);
    ccf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_cache_module);

    if (c == NULL) {
        /* not a cached location */
        return NGX_OK;
    }

    if (smarty_meta_writes(ctx->method, &ctx->m)) {
        /* counted already: ngx_http_smarty_cache_count() */
        return NGX_OK;
    }

    if (!ok || ctx->up_status != NGX_HTTP_OK || ctx->up_body == NULL) {
        if (c->lookup) {
            /* release the locks */
            (void) ngx_http_smarty_cache_store(r, c, NULL);
        }

        return NGX_OK;
    }

    body = ngx_pnalloc(r->pool, ctx->up_len + 1);
    if (body == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (cl = ctx->up_body; cl; cl = cl->next) {
        len = ngx_cpymem(body + len, cl->buf->pos,
                         cl->buf->last - cl->buf->pos) - body;
    }

    body[len] = '\0';

    /* the names sent upstream: all of meta's, or the missing ones */

    k = (c->lookup && c->nup) ? c->nup : ctx->m.nimages;

    names = ngx_palloc(r->pool, (k + 1) * sizeof(char *));
    if (names == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < k; i++) {
        names[i] = ctx->m.images[(c->lookup && c->nup) ? c->up[i] : i].name;
    }

    rc = smarty_answer_split((const char *) body, len, names, k,
                             ccf->status1 ? 1 : 0, &ans, err,
                             sizeof(err));
    if (rc != 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "smarty cache: the upstream's answer cannot be split "
                      "per image: %s", err);

        if (c->lookup) {
            (void) ngx_http_smarty_cache_store(r, c, NULL);
        }

        return c->status == SMARTY_CACHE_PARTIAL ? NGX_DECLINED : NGX_OK;
    }

    if (ans.aliases_changed) {
        /* the space changed under this recognize: nothing is stored */
        if (ngx_http_smarty_cache_bump(&c->gen_key, r->connection->log,
                                       NULL, NULL)
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }

        if (c->lookup) {
            (void) ngx_http_smarty_cache_store(r, c, NULL);
        }

    } else if (c->lookup) {
        (void) ngx_http_smarty_cache_store(r, c, &ans);
    }

    if (c->status != SMARTY_CACHE_PARTIAL) {
        smarty_answer_free(&ans);
        return NGX_OK;
    }

    /* merge: cached entries and fresh ones, in request order */

    values = ngx_pcalloc(r->pool, c->n * (sizeof(char *) + sizeof(size_t)));
    if (values == NULL) {
        smarty_answer_free(&ans);
        return NGX_ERROR;
    }

    lens = (size_t *) (values + c->n);

    for (i = 0; i < c->n; i++) {
        if (c->state[i] == SMARTY_CE_HIT) {
            values[i] = (const char *) c->value[i].data;
            lens[i] = c->value[i].len;
        }
    }

    for (i = 0; i < c->nup; i++) {
        if (ans.values[i] == NULL) {
            /* the upstream left an image out: not an answer to give */
            smarty_answer_free(&ans);
            return NGX_DECLINED;
        }

        values[c->up[i]] = ans.values[i];
        lens[c->up[i]] = ans.lens[i];
    }

    cl = ngx_http_smarty_cache_build(r, values, lens, c->n, &len,
                                     &malformed);
    smarty_answer_free(&ans);

    if (cl == NULL) {
        return malformed ? NGX_DECLINED : NGX_ERROR;
    }

    ctx->up_body = cl;
    ctx->up_len = len;

    return NGX_OK;
}


static const char *
ngx_http_smarty_cache_status_text(ngx_http_smarty_cache_ctx_t *c)
{
    switch (c ? c->status : SMARTY_CACHE_NONE) {
    case SMARTY_CACHE_BYPASS:
        return "BYPASS";
    case SMARTY_CACHE_UNAVAILABLE:
        return "UNAVAILABLE";
    case SMARTY_CACHE_MISS:
        return "MISS";
    case SMARTY_CACHE_PARTIAL:
        return "PARTIAL";
    case SMARTY_CACHE_HIT:
        return "HIT";
    default:
        return "";
    }
}


/* Cache-Status (RFC 9211) */

ngx_int_t
ngx_http_smarty_cache_headers(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_table_elt_t              *h;
    ngx_http_smarty_ctx_t        *ctx;
    ngx_http_smarty_cache_ctx_t  *c;

    ctx = ngx_http_smarty_ctx(r);
    c = ngx_http_get_module_ctx(r, ngx_http_smarty_cache_module);

    /* only on answers the cache decided: served from it, or forwarded */

    if (c == NULL || c->status == SMARTY_CACHE_NONE
        || (c->status != SMARTY_CACHE_HIT && !ctx->forwarded))
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 128);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Status");
    h->value.data = p;

    switch (c->status) {

    case SMARTY_CACHE_HIT:
        p = ngx_sprintf(p, "smarty-gateway; hit");
        break;

    case SMARTY_CACHE_PARTIAL:
        p = ngx_sprintf(p, "smarty-gateway; fwd=partial; detail=\"%ui of %ui "
                        "images cached\"", c->hits, c->n);
        break;

    case SMARTY_CACHE_MISS:
        p = ngx_sprintf(p, "smarty-gateway; fwd=miss");
        break;

    case SMARTY_CACHE_BYPASS:
        if (ctx->m.foreign) {
            /* meta holds a member the gateway does not know */
            p = ngx_sprintf(p, "smarty-gateway; fwd=bypass; detail=meta");

        } else {
            /* a write: set, delete, truncate, an enrolling recognize */
            p = ngx_sprintf(p, "smarty-gateway; fwd=method");
        }
        break;

    default: /* SMARTY_CACHE_UNAVAILABLE */
        p = ngx_sprintf(p, "smarty-gateway; fwd=miss; detail=unavailable");
        break;
    }

    if (c->status != SMARTY_CACHE_HIT && c->stored) {
        p = ngx_sprintf(p, "; stored");
    }

    if (c->collapsed) {
        p = ngx_sprintf(p, "; collapsed");
    }

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/* $smarty_cache_status, $smarty_cache_hits */

static ngx_int_t
ngx_http_smarty_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    ngx_http_smarty_cache_ctx_t  *c;

    c = ngx_http_get_module_ctx(r->main, ngx_http_smarty_cache_module);

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    if (data == 0) {
        v->data = (u_char *) ngx_http_smarty_cache_status_text(c);
        v->len = ngx_strlen(v->data);
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%ui", c ? c->hits : 0) - p;

    return NGX_OK;
}


ngx_http_smarty_cache_outcome_e
ngx_http_smarty_cache_outcome(ngx_http_request_t *r, ngx_uint_t *hits,
    const char **text)
{
    ngx_http_smarty_cache_ctx_t  *c;

    c = ngx_http_get_module_ctx(r->main, ngx_http_smarty_cache_module);

    *hits = c ? c->hits : 0;
    *text = ngx_http_smarty_cache_status_text(c);

    switch (c ? c->status : SMARTY_CACHE_NONE) {
    case SMARTY_CACHE_BYPASS:
        return NGX_HTTP_SMARTY_CACHE_BYPASSED;
    case SMARTY_CACHE_UNAVAILABLE:
        return NGX_HTTP_SMARTY_CACHE_UNAVAILABLE;
    case SMARTY_CACHE_MISS:
        return NGX_HTTP_SMARTY_CACHE_MISSED;
    case SMARTY_CACHE_PARTIAL:
        return NGX_HTTP_SMARTY_CACHE_PARTIAL_HIT;
    case SMARTY_CACHE_HIT:
        return NGX_HTTP_SMARTY_CACHE_FULL_HIT;
    default:
        return NGX_HTTP_SMARTY_CACHE_NOT_USED;
    }
}
