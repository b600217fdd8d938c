/*
 * smarty-gateway: the request flow, the one owner of an API request: it
 * calls the concerns in order, resumes when one of them is done, and is
 * the only place that finalizes the request (docs/architecture.md).
 */

#ifndef NGX_HTTP_SMARTY_FLOW_H
#define NGX_HTTP_SMARTY_FLOW_H

#include "ngx_http_smarty.h"


/* the content handler of a location with "smarty_gateway on" */
ngx_int_t ngx_http_smarty_flow_handler(ngx_http_request_t *r);

/*
 * An error location's answer ("smarty_error"): nginx's own refusal of a
 * request through error_page, or a location that only refuses.  A request
 * whose URI is under the API prefix is an API request like any other: it
 * is answered, counted and audited with its method and, when its key is
 * known, its client.
 */
ngx_int_t ngx_http_smarty_flow_refuse(ngx_http_request_t *r, smarty_err_e e);

/*
 * The request is finished, whatever path it ended on (the log phase): the
 * one place where what every request came to is taken.
 */
ngx_int_t ngx_http_smarty_flow_finished(ngx_http_request_t *r);

#endif /* NGX_HTTP_SMARTY_FLOW_H */
