/*
 * smarty-gateway: Prometheus metrics: the module
 * ngx_http_smarty_metrics_module and its directives (smarty_metrics,
 * smarty_metrics_zone, smarty_metrics_collect), docs/metrics.md.  Every
 * API request is counted once it is finished, in shared memory, so that
 * one scrape sees every worker's counts; the endpoint renders them in
 * Prometheus's text format, for an operator's key only.
 */

#ifndef NGX_HTTP_SMARTY_METRICS_H
#define NGX_HTTP_SMARTY_METRICS_H

#include "ngx_http_smarty.h"


/* the request is finished (the flow's hook): it is counted */
void ngx_http_smarty_metrics_finished(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_smarty_metrics_module;

#endif /* NGX_HTTP_SMARTY_METRICS_H */
