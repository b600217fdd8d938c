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
 * The request is finished, whatever path it ended on (the log phase): the
 * one place where what every request came to is taken.
 */
ngx_int_t ngx_http_smarty_flow_finished(ngx_http_request_t *r);

#endif /* NGX_HTTP_SMARTY_FLOW_H */
