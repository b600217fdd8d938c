/*
 * smarty-gateway: quotas, the nginx side (see docs/quota.md).
 *
 * ngx_http_smarty_quota.c       configuration, the decision in Redis, the
 *                               answer's headers, the operator's view
 * ngx_http_smarty_quota_local.c the fallback: an instance's limiter in
 *                               nginx shared memory, used while Redis is
 *                               away
 */

#ifndef NGX_HTTP_SMARTY_QUOTA_H
#define NGX_HTTP_SMARTY_QUOTA_H

#include <ngx_config.h>
#include <ngx_core.h>

#include "smarty_quota.h"


/* the limits of one request: a space's set and a client's set */
#define SMARTY_QUOTA_MAX_ITEMS  (2 * SMARTY_QUOTA_MAX_LIMITS)


/*
 * The shared memory zone of the local fallback ("smarty_quota", size
 * bytes).  Called once per configuration, from the http block's
 * init_main_conf when a quota is configured.
 */
ngx_shm_zone_t *ngx_http_smarty_quota_local_zone(ngx_conf_t *cf,
    size_t size);


/*
 * Check and spend in the zone, all or nothing, as smarty_quota_check():
 *
 *   keys[i]    the state's key (the Redis key of item i: one name for one
 *              limit, whatever the store);
 *   items[i]   .limit the limit as configured, .state scratch space of the
 *              caller; on return .limit points to scaled[i], the limit
 *              scaled by the share (count and burst times num/den, rounded
 *              down, at least 1), and .remaining/.reset_ms are filled;
 *   scaled     n limits of the caller's, written here;
 *   now        the wall clock in ms.
 *
 * Returns 1 admitted, 0 refused (res filled as by smarty_quota_check()),
 * NGX_ERROR when the zone cannot hold the states (logged; the caller
 * admits: a full zone must not refuse traffic).
 */
ngx_int_t ngx_http_smarty_quota_local_check(ngx_shm_zone_t *zone,
    ngx_str_t *keys, smarty_quota_item_t *items, smarty_quota_limit_t *scaled,
    size_t n, ngx_uint_t num, ngx_uint_t den, int64_t now, uint64_t requests,
    uint64_t images, smarty_quota_result_t *res, ngx_log_t *log);


/* give back, as smarty_quota_refund(); returns the states changed */
size_t ngx_http_smarty_quota_local_refund(ngx_shm_zone_t *zone,
    ngx_str_t *keys, smarty_quota_item_t *items, smarty_quota_limit_t *scaled,
    size_t n, ngx_uint_t num, ngx_uint_t den, int64_t now, int64_t at,
    uint64_t requests, uint64_t images, ngx_log_t *log);


/* remaining and reset_ms at now, nothing written, as smarty_quota_peek() */
void ngx_http_smarty_quota_local_peek(ngx_shm_zone_t *zone, ngx_str_t *keys,
    smarty_quota_item_t *items, smarty_quota_limit_t *scaled, size_t n,
    ngx_uint_t num, ngx_uint_t den, int64_t now, ngx_log_t *log);

#endif /* NGX_HTTP_SMARTY_QUOTA_H */
