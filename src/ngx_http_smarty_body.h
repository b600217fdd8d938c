/*
 * smarty-gateway: the request body: the module ngx_http_smarty_body_module
 * and its limits (docs/reference.md).  It parses the multipart stream where
 * nginx keeps it, hashes every image, validates meta, and builds the body
 * of a subset of the images.
 */

#ifndef NGX_HTTP_SMARTY_BODY_H
#define NGX_HTTP_SMARTY_BODY_H

#include "ngx_http_smarty.h"


/*
 * Before the body is read: a multipart/form-data Content-Type with a
 * usable boundary.  NGX_OK, NGX_DECLINED (the context's error set) or
 * NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_body_begin(ngx_http_request_t *r);

/*
 * The whole body is read: the context's parts, meta and m, every limit
 * checked.  NGX_OK, NGX_DECLINED (the context's error set) or NGX_ERROR.
 */
ngx_int_t ngx_http_smarty_body_parse(ngx_http_request_t *r);

/*
 * A body for the images idx[0..n) of meta only: a meta naming them, then
 * each one's part, its bytes referenced where they lie (memory or temp
 * file), not copied.
 */
ngx_int_t ngx_http_smarty_body_subset(ngx_http_request_t *r, ngx_uint_t *idx,
    ngx_uint_t n, ngx_http_request_body_t **rb, off_t *len);


extern ngx_module_t  ngx_http_smarty_body_module;

#endif /* NGX_HTTP_SMARTY_BODY_H */
