/*
 * smarty-gateway: the call to the upstream: the module
 * ngx_http_smarty_upstream_module, its directives smarty_upstream and
 * smarty_upstream_args (docs/reference.md).  A subrequest to an internal
 * location holding nginx's own proxy_pass, its answer kept in memory.
 */

#ifndef NGX_HTTP_SMARTY_UPSTREAM_H
#define NGX_HTTP_SMARTY_UPSTREAM_H

#include "ngx_http_smarty.h"


/*
 * The client's query parameters that go upstream: those that
 * smarty_upstream_args names, as the client sent them, never a credential
 * in any spelling.
 */
ngx_int_t ngx_http_smarty_upstream_args(ngx_http_request_t *r,
    ngx_str_t *out);

/*
 * Calls the upstream with the body rb of len bytes (rb NULL: the client's
 * body, as it came), the token of the location's source: NGX_AGAIN, and
 * next(r) is called when the call is over; NGX_DECLINED: no call could be
 * made (no token); NGX_ERROR.  Then ngx_http_smarty_upstream_result().
 */
ngx_int_t ngx_http_smarty_upstream_call(ngx_http_request_t *r,
    ngx_http_request_body_t *rb, off_t len, ngx_http_smarty_next_pt next);

/*
 * What the call came to: SMARTY_OK, the upstream's answer in the
 * context's up_status, up_body and up_len; or the error to answer, with a
 * sentence in msg (len bytes) when there is more to say.
 */
smarty_err_e ngx_http_smarty_upstream_result(ngx_http_request_t *r,
    char *msg, size_t len);

/*
 * How long the upstream took, in ms, from the first subrequest to the
 * end of the last (a second try with another token included); -1 when
 * none was made.  For the audit and the metrics.
 */
ngx_msec_int_t ngx_http_smarty_upstream_time(ngx_http_request_t *r);

/* configuration: the location's internal prefix, "" when none */
ngx_str_t *ngx_http_smarty_upstream_conf_location(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_smarty_upstream_module;

#endif /* NGX_HTTP_SMARTY_UPSTREAM_H */
