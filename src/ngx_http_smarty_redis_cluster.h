/*
 * smarty-gateway: Redis Cluster under the command API: the slot map read
 * from the cluster (CLUSTER SLOTS), one node per master, each command
 * routed by its key's slot, MOVED, ASK and TRYAGAIN followed
 * (docs/redis.md, "Redis Cluster").
 */

#ifndef NGX_HTTP_SMARTY_REDIS_CLUSTER_H
#define NGX_HTTP_SMARTY_REDIS_CLUSTER_H

#include "ngx_http_smarty_redis_node.h"


typedef struct ngx_http_smarty_redis_cluster_s
    ngx_http_smarty_redis_cluster_t;


/* connects to the seeds and asks one of them for the slot map */
ngx_http_smarty_redis_cluster_t *ngx_http_smarty_redis_cluster_create(
    ngx_http_smarty_redis_settings_t *settings,
    ngx_http_smarty_redis_addr_t *seeds, ngx_uint_t nseeds, ngx_log_t *log);

/* to the master of the slot of argv[cmd->key] (any master without one) */
void ngx_http_smarty_redis_cluster_send(ngx_http_smarty_redis_cluster_t *cl,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout);

/* OK when a command would be sent (or queued for the map), else why not */
ngx_http_smarty_redis_status_e ngx_http_smarty_redis_cluster_state(
    ngx_http_smarty_redis_cluster_t *cl);

/* the map is known and a master is ready */
ngx_int_t ngx_http_smarty_redis_cluster_ready(
    ngx_http_smarty_redis_cluster_t *cl);

/* up to n of its nodes' views; returns how many it has */
ngx_uint_t ngx_http_smarty_redis_cluster_nodes(
    ngx_http_smarty_redis_cluster_t *cl,
    ngx_http_smarty_redis_node_info_t *info, ngx_uint_t n);

void ngx_http_smarty_redis_cluster_close(ngx_http_smarty_redis_cluster_t *cl);

#endif /* NGX_HTTP_SMARTY_REDIS_CLUSTER_H */
