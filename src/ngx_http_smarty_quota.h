/*
 * smarty-gateway: quotas per space and per client, shared by every
 * instance: the module ngx_http_smarty_quota_module, its directives, what
 * a request spends (docs/quota.md).  The states live in a store
 * (ngx_http_smarty_quota_store.h): Redis, or shared memory while Redis is
 * away.
 */

#ifndef NGX_HTTP_SMARTY_QUOTA_H
#define NGX_HTTP_SMARTY_QUOTA_H

#include "ngx_http_smarty.h"
#include "ngx_http_smarty_quota_store.h"


typedef struct {
    ngx_flag_t                 enable;
    smarty_quota_sets_t       *space;      /* smarty_quota_space */
    smarty_quota_sets_t       *client;     /* smarty_quota_client */
    ngx_flag_t                 hits;
    ngx_flag_t                 refund;
    ngx_int_t                  closed;     /* fallback "closed" */
    ngx_uint_t                 share_num;  /* fallback "share=" */
    ngx_uint_t                 share_den;
    ngx_str_t                  prefix;
} ngx_http_smarty_quota_conf_t;


/*
 * The limits of a request whose client, method and meta are known: its
 * space's set and its client's set.  NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_quota_prepare(ngx_http_request_t *r);

/*
 * The decision as a slice of the cache's lookup, one round trip for both;
 * NULL when no limit applies or Redis is known to be away.
 */
ngx_http_smarty_redis_slice_t *ngx_http_smarty_quota_slice(
    ngx_http_request_t *r);

/*
 * Decides, unless the slice did: NGX_OK decided (or nothing to decide);
 * NGX_AGAIN, next(r) when it is; NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_quota_decide(ngx_http_request_t *r,
    ngx_http_smarty_next_pt next);

/*
 * Admitted: NGX_OK; refused: NGX_DECLINED, the context's error set (429,
 * 413 quota_batch_too_large, or 503 quota_unavailable) and what earlier
 * looks spent given back.
 */
ngx_int_t ngx_http_smarty_quota_admitted(ngx_http_request_t *r);

/*
 * The cache decided that images go upstream: images paid for that came
 * from the cache after all are given back, and the request too when none
 * goes (coalescing).
 */
void ngx_http_smarty_quota_settle(ngx_http_request_t *r, ngx_uint_t images);

/* the upstream failed with e: its images come back (smarty_quota_refund) */
void ngx_http_smarty_quota_refund(ngx_http_request_t *r, smarty_err_e e);

/* RateLimit-Policy, RateLimit and Retry-After, once the limits were met */
ngx_int_t ngx_http_smarty_quota_headers(ngx_http_request_t *r);

/* $smarty_quota_status, _limit, _remaining, _reset: the gateway registers
 * them */
extern ngx_http_variable_t  ngx_http_smarty_quota_variables[];


/* what the quota decided for a request, read by the audit and the metrics */

#define NGX_HTTP_SMARTY_QUOTA_OUTCOMES  6   /* the statuses, 0 included */
#define NGX_HTTP_SMARTY_QUOTA_LIMITS    16  /* scope x unit x window */

typedef struct {
    ngx_uint_t                 status;     /* 0: no limit applied; 1 PASS,
                                              2 REFUSED, 3 LOCAL_PASS,
                                              4 LOCAL_REFUSED, 5 CLOSED */
    const char                *text;       /* as $smarty_quota_status */
    ngx_uint_t                 decided;    /* limit and remaining are set */
    char                       limit[32];  /* the one RateLimit names,
                                              "client_images_minute" */
    uint64_t                   remaining;
    ngx_int_t                  refused;    /* the refused limit's index
                                              (..._quota_limit_name()),
                                              -1: none */
    ngx_uint_t                 redis_failed;  /* Redis did not decide */
} ngx_http_smarty_quota_outcome_t;

void ngx_http_smarty_quota_outcome(ngx_http_request_t *r,
    ngx_http_smarty_quota_outcome_t *out);

/* "space_requests_second" .. "client_images_day": a limit's index, from
 * the scope (space 0, client 1), the unit (requests 0, images 1) and the
 * window (second 0, minute 1, hour 2, day 3); NULL past the last */
const char *ngx_http_smarty_quota_limit_name(ngx_uint_t i);


/* for the operator's view: the location's quota configuration */
ngx_http_smarty_quota_conf_t *ngx_http_smarty_quota_conf(
    ngx_http_request_t *r);

/* the zone of the local store, NULL when no quota is configured */
ngx_shm_zone_t *ngx_http_smarty_quota_zone(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_smarty_quota_module;

#endif /* NGX_HTTP_SMARTY_QUOTA_H */
