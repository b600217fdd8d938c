/*
 * smarty-gateway: the recognize and detector cache in Redis: the module
 * ngx_http_smarty_cache_module and its directives (docs/cache.md).  Per
 * image, keyed by the image's SHA-256, never stale: every change of a
 * space makes its answers unreachable.
 */

#ifndef NGX_HTTP_SMARTY_CACHE_H
#define NGX_HTTP_SMARTY_CACHE_H

#include "ngx_http_smarty.h"
#include "ngx_http_smarty_redis.h"


typedef enum {
    NGX_HTTP_SMARTY_CACHE_FORWARD = 0,   /* to the upstream: all images, or
                                            the ones the cache lacks */
    NGX_HTTP_SMARTY_CACHE_ANSWER,        /* every image from the cache */
    NGX_HTTP_SMARTY_CACHE_REFUSED        /* the slice refused the request */
} ngx_http_smarty_cache_decision_e;


/*
 * Once meta is known: NGX_OK, the cache looks the request up; NGX_DECLINED,
 * it does not (no cache here, a write, a meta member it does not know,
 * Redis known to be away); NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_cache_prepare(ngx_http_request_t *r);

/*
 * The lookup, with slice (NULL: none) in the same script: NGX_AGAIN,
 * next(r) when it decided (identical misses in flight may make it look
 * again first); NGX_DECLINED, no lookup was sent: forward; NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_cache_lookup(ngx_http_request_t *r,
    ngx_http_smarty_redis_slice_t *slice, ngx_http_smarty_next_pt next);

/*
 * What the lookup decided.  ANSWER: *answer and *len, the answer.
 * FORWARD: *up and *nup, the indexes in meta.images of the images to send
 * (NULL, 0: send the client's body as it is).
 */
ngx_http_smarty_cache_decision_e ngx_http_smarty_cache_decision(
    ngx_http_request_t *r, ngx_chain_t **answer, size_t *len,
    ngx_uint_t **up, ngx_uint_t *nup);

/*
 * A request that changes its space (set, delete, truncate, create_new,
 * update_embedding), once the upstream was called: the change counted in
 * Redis before its answer goes, so that no request sent after the answer
 * reaches an answer cached before the change, on any instance.  NGX_OK:
 * nothing to count; NGX_AGAIN: next(r) is called when Redis took it, or
 * could not (then it is retried in the background, and the answer goes).
 */
ngx_int_t ngx_http_smarty_cache_count(ngx_http_request_t *r,
    ngx_http_smarty_next_pt next);

/*
 * The upstream answered (ok) or not: what may be stored is, a partial
 * hit's answer is merged into the context's up_body.  NGX_OK;
 * NGX_DECLINED, the fresh answer cannot be merged (502); NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_cache_finish(ngx_http_request_t *r, ngx_uint_t ok);

/* Cache-Status (RFC 9211), on the answers the cache served or forwarded */
ngx_int_t ngx_http_smarty_cache_headers(ngx_http_request_t *r);

/* $smarty_cache_status, $smarty_cache_hits: the gateway registers them */
extern ngx_http_variable_t  ngx_http_smarty_cache_variables[];

/*
 * A change of the space whose generation key is gen_key: counted in Redis,
 * retried until Redis takes it (ngx_http_smarty_cache_gen.c).  With r and
 * next: NGX_AGAIN, next(r) when Redis answered the first try (r may go
 * away meanwhile); without: NGX_OK.  NGX_ERROR: out of memory.
 */
ngx_int_t ngx_http_smarty_cache_bump(ngx_str_t *gen_key, ngx_log_t *log,
    ngx_http_request_t *r, ngx_http_smarty_next_pt next);


/* what the cache did for a request, read by the audit and the metrics */

typedef enum {
    NGX_HTTP_SMARTY_CACHE_NOT_USED = 0,  /* no cache here, or not reached */
    NGX_HTTP_SMARTY_CACHE_BYPASSED,      /* a write, meta it does not know */
    NGX_HTTP_SMARTY_CACHE_UNAVAILABLE,   /* Redis did not answer in time */
    NGX_HTTP_SMARTY_CACHE_MISSED,
    NGX_HTTP_SMARTY_CACHE_PARTIAL_HIT,
    NGX_HTTP_SMARTY_CACHE_FULL_HIT
} ngx_http_smarty_cache_outcome_e;

#define NGX_HTTP_SMARTY_CACHE_OUTCOMES  6

/*
 * The outcome, with *hits the images answered from the cache and *text
 * the word of $smarty_cache_status ("HIT", ...; "" when not used).
 */
ngx_http_smarty_cache_outcome_e ngx_http_smarty_cache_outcome(
    ngx_http_request_t *r, ngx_uint_t *hits, const char **text);


extern ngx_module_t  ngx_http_smarty_cache_module;

#endif /* NGX_HTTP_SMARTY_CACHE_H */
