/*
 * smarty-gateway: answers: the API's JSON envelope for errors, a chain or
 * a JSON value as an answer's body (docs/reference.md, "Answers and error
 * codes").  Knows nothing of the concerns: the headers they add are added
 * before.
 */

#ifndef NGX_HTTP_SMARTY_REPLY_H
#define NGX_HTTP_SMARTY_REPLY_H

#include "ngx_http_smarty.h"


/*
 * The error in the API's envelope, with WWW-Authenticate (401) or Allow
 * (405).  Takes the reference of e->extra (a json_t object whose members
 * are added to the envelope's body, when not NULL).
 */
ngx_int_t ngx_http_smarty_reply_error(ngx_http_request_t *r,
    ngx_http_smarty_error_t *e);

/* an answer: status, application/json, body of len bytes */
ngx_int_t ngx_http_smarty_reply_chain(ngx_http_request_t *r,
    ngx_uint_t status, ngx_chain_t *body, size_t len);

/*
 * An operator's answer (the views, the metrics, the health endpoint): one
 * buffer of content_type (a static string), never stored by a cache on
 * the way (Cache-Control: no-store).
 */
ngx_int_t ngx_http_smarty_reply_buf(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, ngx_buf_t *b);

/* a JSON value (json_t) as an answer's body: compact, in order, one line */
ngx_buf_t *ngx_http_smarty_reply_json_buf(ngx_pool_t *pool, void *json);

/* an answer's header; key and value must live as long as the request */
ngx_int_t ngx_http_smarty_reply_header(ngx_http_request_t *r,
    const char *key, size_t klen, u_char *value, size_t vlen);

#endif /* NGX_HTTP_SMARTY_REPLY_H */
