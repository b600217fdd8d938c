/*
 * smarty-gateway: where the upstream's token comes from: the module
 * ngx_http_smarty_token_module and its token sources (docs/token.md).
 * The upstream step asks a location's source for the token to send; a
 * source may have it at once (a file) or later (fetched from an OAuth
 * endpoint), and hears when the upstream refused it.
 */

#ifndef NGX_HTTP_SMARTY_TOKEN_H
#define NGX_HTTP_SMARTY_TOKEN_H

#include "ngx_http_smarty.h"


typedef struct ngx_http_smarty_token_source_s  ngx_http_smarty_token_source_t;


/*
 * What a source tells the metrics of its token (docs/metrics.md, "The
 * token"): every worker's view, a source that shares its token between
 * workers fills it from what they share.
 */
typedef struct {
    time_t      age;                /* seconds since it was obtained,
                                       -1: unknown */
    time_t      expires_in;         /* seconds it has left, -1: never or
                                       unknown */
    uint64_t    refreshes;          /* tokens obtained since the start */
    uint64_t    refresh_failures;   /* attempts that got none */
} ngx_http_smarty_token_stats_t;

typedef struct {
    /*
     * The token, URI-escaped for the query string: NGX_OK with *token;
     * NGX_AGAIN: not yet, next(r) is called when there is one or the wait
     * is over (then get again); NGX_DECLINED: there is none (the upstream
     * cannot be called: 502 upstream_auth_failed).
     */
    ngx_int_t  (*get)(ngx_http_smarty_token_source_t *src,
                      ngx_http_request_t *r, ngx_str_t *token,
                      ngx_http_smarty_next_pt next);

    /*
     * The upstream refused token (401): NGX_OK when another one is worth
     * a second try (get it again), NGX_DECLINED when not.
     */
    ngx_int_t  (*rejected)(ngx_http_smarty_token_source_t *src,
                           ngx_http_request_t *r, ngx_str_t *token);

    /* a request waiting in get() is gone */
    void       (*cancel)(ngx_http_smarty_token_source_t *src,
                         ngx_http_request_t *r);

    /*
     * For the metrics: NGX_OK with *st filled.  NULL (a file: a service
     * token has no age that matters, nothing is refreshed): no data, and
     * the metrics show no token series.
     */
    ngx_int_t  (*stats)(ngx_http_smarty_token_source_t *src,
                        ngx_http_smarty_token_stats_t *st);
} ngx_http_smarty_token_ops_t;


struct ngx_http_smarty_token_source_s {
    const ngx_http_smarty_token_ops_t  *ops;
    void                               *data;
};


/* the source of r's location, or of the location being configured */
ngx_http_smarty_token_source_t *ngx_http_smarty_token_source(
    ngx_http_request_t *r);
ngx_http_smarty_token_source_t *ngx_http_smarty_token_conf_source(
    ngx_conf_t *cf);

/* the oauth_provider the gateway sends with the token */
ngx_str_t *ngx_http_smarty_token_provider(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_smarty_token_module;

#endif /* NGX_HTTP_SMARTY_TOKEN_H */
