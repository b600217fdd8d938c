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
 * A source's counters, for metrics: since the source's shared memory was
 * made (a reload keeps them).  Times are Unix milliseconds, 0 for none.
 */

typedef struct {
    ngx_str_t   name;            /* "file", or the endpoint's URL */
    ngx_uint_t  fetches;         /* tokens obtained from the endpoint */
    ngx_uint_t  refreshes;       /* of which by the refresh grant */
    ngx_uint_t  adopted;         /* tokens taken from another instance */
    ngx_uint_t  failures;        /* fetches that failed */
    ngx_uint_t  failing;         /* of which in a row, now */
    ngx_uint_t  rejected;        /* tokens the upstream refused */
    ngx_uint_t  waits;           /* requests that waited for a token */
    ngx_uint_t  wait_timeouts;   /* of which in vain */
    int64_t     obtained;        /* the current token's */
    int64_t     expires;
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

    /* what the source did so far (NULL: a source with nothing to say) */
    void       (*stats)(ngx_http_smarty_token_source_t *src,
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

/*
 * Makes src the source of the context being configured: NGX_CONF_OK, or
 * an error ("is duplicate") for ngx_conf_t's handler to return.
 */
char *ngx_http_smarty_token_conf_set_source(ngx_conf_t *cf,
    ngx_http_smarty_token_source_t *src);

/* every source of the configuration, each once (an array of pointers) */
ngx_array_t *ngx_http_smarty_token_sources(ngx_cycle_t *cycle);

/* the oauth_provider the gateway sends with the token */
ngx_str_t *ngx_http_smarty_token_provider(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_smarty_token_module;

#endif /* NGX_HTTP_SMARTY_TOKEN_H */
