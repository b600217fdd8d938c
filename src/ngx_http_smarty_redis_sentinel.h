/*
 * smarty-gateway: a master found by Redis Sentinel, under the command API:
 * asked of the sentinels, followed across a failover (+switch-master),
 * its node replaced without a reload (docs/redis.md, "Sentinel").
 */

#ifndef NGX_HTTP_SMARTY_REDIS_SENTINEL_H
#define NGX_HTTP_SMARTY_REDIS_SENTINEL_H

#include "ngx_http_smarty_redis_node.h"


typedef struct ngx_http_smarty_redis_sentinel_s
    ngx_http_smarty_redis_sentinel_t;


/* connects to the sentinels, asks them for the master named name */
ngx_http_smarty_redis_sentinel_t *ngx_http_smarty_redis_sentinel_create(
    ngx_http_smarty_redis_settings_t *settings,
    ngx_http_smarty_redis_settings_t *sentinel_settings, ngx_str_t *name,
    ngx_http_smarty_redis_addr_t *sentinels, ngx_uint_t n, ngx_log_t *log);

/* to the master (held until one is known, within the timeout) */
void ngx_http_smarty_redis_sentinel_send(ngx_http_smarty_redis_sentinel_t *st,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout);

ngx_http_smarty_redis_status_e ngx_http_smarty_redis_sentinel_state(
    ngx_http_smarty_redis_sentinel_t *st);

ngx_int_t ngx_http_smarty_redis_sentinel_ready(
    ngx_http_smarty_redis_sentinel_t *st);

/* up to n views: the masters it used (the current one first), then the
 * sentinels; returns how many it has */
ngx_uint_t ngx_http_smarty_redis_sentinel_nodes(
    ngx_http_smarty_redis_sentinel_t *st,
    ngx_http_smarty_redis_node_info_t *info, ngx_uint_t n);

void ngx_http_smarty_redis_sentinel_close(
    ngx_http_smarty_redis_sentinel_t *st);

#endif /* NGX_HTTP_SMARTY_REDIS_SENTINEL_H */
