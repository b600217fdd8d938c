/*
 * smarty-gateway: the cache, what a request has met: its state, shared by
 * the cache's own files (the lookup, ngx_http_smarty_cache.c; the
 * answers, ngx_http_smarty_cache_answer.c) and nothing else.
 */

#ifndef NGX_HTTP_SMARTY_CACHE_REQUEST_H
#define NGX_HTTP_SMARTY_CACHE_REQUEST_H

#include "ngx_http_smarty.h"
#include "ngx_http_smarty_redis.h"
#include "smarty_cache.h"


#define SMARTY_CE_MISS      0   /* no coalescing */
#define SMARTY_CE_LOCKED    1   /* this request goes upstream for it */
#define SMARTY_CE_WAITING   2   /* another request does */
#define SMARTY_CE_HIT       3

#define SMARTY_CACHE_POLL   20  /* ms between looks while coalescing */


typedef struct {
    ngx_flag_t                 enable;
    ngx_str_t                  prefix;
    ngx_msec_t                 ttl;
    ngx_msec_t                 wait;
    ngx_flag_t                 status1;
} ngx_http_smarty_cache_conf_t;


/* what the cache did for a request: $smarty_cache_status, Cache-Status */
typedef enum {
    SMARTY_CACHE_NONE = 0,       /* not looked up (yet) */
    SMARTY_CACHE_BYPASS,         /* a write, or meta it does not know */
    SMARTY_CACHE_UNAVAILABLE,    /* Redis did not answer in time */
    SMARTY_CACHE_MISS,
    SMARTY_CACHE_PARTIAL,
    SMARTY_CACHE_HIT
} ngx_http_smarty_cache_status_e;


typedef struct {
    ngx_http_request_t                *request;
    ngx_http_smarty_cache_status_e     status;
    ngx_uint_t                         decision;   /* ..._decision_e */
    ngx_http_smarty_redis_cmd_t       *cmd;        /* the lookup in flight */
    ngx_http_smarty_redis_slice_t     *slice;
    ngx_http_smarty_next_pt            next;
    ngx_event_t                        poll;       /* coalescing: look again */
    ngx_msec_t                         deadline;   /* coalescing: give up */

    ngx_str_t                          base;       /* "smarty:{s1}" */
    ngx_str_t                          gen_key;    /* "smarty:{s1}:gen" */
    ngx_str_t                          params;     /* the parameters' id */
    ngx_str_t                          gen;        /* the token the lookup
                                                      read: "<generation>
                                                      <node>", opaque */
    ngx_str_t                          owner;      /* this request's locks */

    ngx_uint_t                         n;          /* meta images */
    ngx_str_t                         *hex;        /* their SHA-256, hex */
    ngx_str_t                         *ekey;       /* their entry keys */
    ngx_str_t                         *lkey;       /* their locks' keys */
    ngx_str_t                         *value;      /* cached answers */
    u_char                            *state;      /* SMARTY_CE_* */
    ngx_uint_t                         hits;
    ngx_uint_t                         waiting;

    ngx_uint_t                        *up;         /* meta indexes sent */
    ngx_uint_t                         nup;

    ngx_chain_t                       *answer;     /* a full hit's */
    size_t                             answer_len;

    unsigned                           lookup:1;   /* a lookup answered */
    unsigned                           holds:1;    /* may hold locks:
                                                      released as it goes */
    unsigned                           collapsed:1;
    unsigned                           stored:1;
} ngx_http_smarty_cache_ctx_t;


extern ngx_module_t  ngx_http_smarty_cache_module;


/* cache_put: the cacheable answers of ans (NULL: only the locks go) */
ngx_int_t ngx_http_smarty_cache_store(ngx_http_request_t *r,
    ngx_http_smarty_cache_ctx_t *c, smarty_answer_t *ans);

/* an answer built by the cache core (malloc'ed, freed here) as a chain */
ngx_chain_t *ngx_http_smarty_cache_chain(ngx_http_request_t *r, char *json,
    size_t len);

/* a cached value as a C string of the request's pool */
const char *ngx_http_smarty_cache_cstr(ngx_http_request_t *r, ngx_str_t *v);

/* recognize answers always carry aliases_changed (0), detectors' never */
int ngx_http_smarty_cache_aliases(ngx_http_smarty_ctx_t *ctx);

#endif /* NGX_HTTP_SMARTY_CACHE_REQUEST_H */
