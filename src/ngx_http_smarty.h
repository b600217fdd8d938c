/*
 * smarty-gateway: what every part of the module shares about a request:
 * the public request context, the continuation a concern calls when it is
 * done, the error convention.  The request flow (ngx_http_smarty_flow.c)
 * owns the context and is the only place that finalizes a request; the
 * concerns below it keep their own state.  docs/architecture.md.
 */

#ifndef NGX_HTTP_SMARTY_H
#define NGX_HTTP_SMARTY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "smarty_errors.h"
#include "smarty_meta.h"


#define SMARTY_SHA256_LEN  32


typedef struct ngx_http_smarty_client_s  ngx_http_smarty_client_t;


/*
 * An error answer: the code, a sentence (NULL: the code's own), and what
 * a concern adds to it (a quota's 429 names its own code and limit).
 */

typedef struct {
    smarty_err_e               err;
    const char                *msg;
    const char                *code;      /* NULL: the code of err */
    void                      *extra;     /* json_t: more members of body */
} ngx_http_smarty_error_t;


/* an image part of the body, as the body concern found it */

typedef struct {
    ngx_str_t                  name;
    uint64_t                   start;      /* its header lines */
    uint64_t                   data_start;
    uint64_t                   data_end;
    u_char                     sha256[SMARTY_SHA256_LEN];
    u_char                     sha256_hex[2 * SMARTY_SHA256_LEN];
                                           /* lower-case, encoded once */
} ngx_http_smarty_part_t;


/* the gateway's own configuration of a location */

typedef struct {
    ngx_flag_t                 enable;          /* smarty_gateway */
    ngx_str_t                  api_prefix;      /* "/api/v1/" */
    ngx_int_t                  error;           /* smarty_error, or -1 */
} ngx_http_smarty_loc_conf_t;


typedef struct {
    ngx_http_request_t             *request;
    ngx_uint_t                      state;      /* the flow's, the flow's
                                                   only */

    const smarty_method_t          *method;
    const ngx_http_smarty_client_t *client;
    ngx_str_t                       args;       /* the client's query
                                                   parameters that go
                                                   upstream */

    /* the body, once parsed */
    ngx_array_t                     parts;      /* ngx_http_smarty_part_t */
    ngx_str_t                       meta;       /* the meta part's bytes */
    smarty_meta_t                   m;          /* meta, validated */
    unsigned                        m_valid:1;

    /* the upstream's answer */
    unsigned                        forwarded:1; /* the upstream was
                                                    called */
    ngx_uint_t                      up_status;  /* 0: no answer */
    ngx_chain_t                    *up_body;
    size_t                          up_len;

    /* the answer */
    ngx_uint_t                      status;
    ngx_http_smarty_error_t         error;      /* err SMARTY_OK: none */
} ngx_http_smarty_ctx_t;


/*
 * A concern's asynchronous step ends: it calls the continuation it was
 * handed (never from inside the call that started the step), with its
 * result in its own state.
 */
typedef void (*ngx_http_smarty_next_pt)(ngx_http_request_t *r);


/* the request's context, of the main request */
#define ngx_http_smarty_ctx(r)                                                \
    ((ngx_http_smarty_ctx_t *) ngx_http_get_module_ctx((r)->main,             \
                                                      ngx_http_smarty_module))


extern ngx_module_t  ngx_http_smarty_module;
extern ngx_module_t  ngx_http_smarty_gateway_module;

#endif /* NGX_HTTP_SMARTY_H */
