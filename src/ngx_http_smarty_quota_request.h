/*
 * smarty-gateway: quotas, what a request has met: its state, shared by
 * the quota's own files (the decisions, ngx_http_smarty_quota.c; the
 * answers, ngx_http_smarty_quota_answer.c) and nothing else.
 */

#ifndef NGX_HTTP_SMARTY_QUOTA_REQUEST_H
#define NGX_HTTP_SMARTY_QUOTA_REQUEST_H

#include "ngx_http_smarty.h"
#include "ngx_http_smarty_quota_store.h"


typedef enum {
    SMARTY_QUOTA_NONE = 0,       /* no limit applies (yet) */
    SMARTY_QUOTA_PASS,           /* Redis admitted */
    SMARTY_QUOTA_REFUSED,        /* Redis refused */
    SMARTY_QUOTA_LOCAL_PASS,     /* the local store admitted */
    SMARTY_QUOTA_LOCAL_REFUSED,  /* the local store refused */
    SMARTY_QUOTA_CLOSED          /* Redis away, fallback "closed": 503 */
} ngx_http_smarty_quota_status_e;


typedef struct {
    ngx_http_request_t                  *request;
    ngx_http_smarty_quota_status_e       status;
    ngx_http_smarty_quota_call_t         call;     /* the request's limits */
    size_t                               nspace;   /* of which the space's */
    const ngx_http_smarty_quota_store_t *store;    /* the one that spent */
    int64_t                              at;       /* the spend's clock */
    uint64_t                             spent_requests;
    uint64_t                             spent_images;
    ngx_http_smarty_redis_slice_t        slice;
    ngx_http_smarty_next_pt              next;
    unsigned                             decided:1;  /* res, items set */
    unsigned                             redis_failed:1;
} ngx_http_smarty_quota_ctx_t;


#define ngx_http_smarty_quota_get(r)                                          \
    ((ngx_http_smarty_quota_ctx_t *) ngx_http_get_module_ctx((r)->main,       \
                                                ngx_http_smarty_quota_module))


extern ngx_module_t  ngx_http_smarty_quota_module;


/* to the store that spent them */
void ngx_http_smarty_quota_give_back(ngx_http_smarty_quota_ctx_t *q,
    uint64_t requests, uint64_t images);

#endif /* NGX_HTTP_SMARTY_QUOTA_REQUEST_H */
