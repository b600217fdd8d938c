/*
 * smarty-gateway: the audit trail: the module ngx_http_smarty_audit_module
 * and its directives (smarty_audit_stream, smarty_audit,
 * smarty_audit_buffer, smarty_audit_instance), docs/audit.md.  A record of
 * every API request, once it is finished, into a Redis stream shared by
 * every instance: through a buffer in shared memory, written in batches
 * after the answers went out, kept while Redis is away.
 */

#ifndef NGX_HTTP_SMARTY_AUDIT_H
#define NGX_HTTP_SMARTY_AUDIT_H

#include "ngx_http_smarty.h"


/* what the audit has done since the zone was made, every worker's */

typedef struct {
    uint64_t                   records;     /* made */
    uint64_t                   written;     /* taken by Redis */
    uint64_t                   buffered;    /* kept back: Redis away */
    uint64_t                   dropped;     /* lost: the buffer was full */
    uint64_t                   failures;    /* batches Redis did not take */
    uint64_t                   pending;     /* in the buffer now */
    uint64_t                   pending_bytes;
    uint64_t                   capacity_bytes;
} ngx_http_smarty_audit_stats_t;


/* the request is finished (the flow's hook): its record, if audited */
void ngx_http_smarty_audit_finished(ngx_http_request_t *r);

/* NGX_OK with *st; NGX_DECLINED when no stream is configured */
ngx_int_t ngx_http_smarty_audit_stats(ngx_http_smarty_audit_stats_t *st);

/* the stream's key ("" when none), for the audit view */
ngx_str_t *ngx_http_smarty_audit_stream(ngx_http_request_t *r);
ngx_str_t *ngx_http_smarty_audit_conf_stream(ngx_conf_t *cf);

/* $smarty_instance: the gateway registers it */
extern ngx_http_variable_t  ngx_http_smarty_audit_variables[];


extern ngx_module_t  ngx_http_smarty_audit_module;

#endif /* NGX_HTTP_SMARTY_AUDIT_H */
