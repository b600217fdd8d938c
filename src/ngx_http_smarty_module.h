/*
 * smarty-gateway: an nginx module in front of the Smarty face-recognition
 * API.  Shared types of the module's files.
 */

#ifndef NGX_HTTP_SMARTY_MODULE_H
#define NGX_HTTP_SMARTY_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "smarty_errors.h"
#include "smarty_multipart.h"
#include "smarty_meta.h"


#define SMARTY_SHA256_LEN  32


typedef struct {
    ngx_str_t                  name;
    u_char                     key_sha256[SMARTY_SHA256_LEN];
    ngx_uint_t                 spaces;     /* bit n: space "n" allowed */
    ngx_uint_t                 methods;    /* bit smarty_method_e allowed */
} ngx_http_smarty_client_t;


typedef struct {
    ngx_str_t                  path;
    ngx_array_t                clients;    /* ngx_http_smarty_client_t */
} ngx_http_smarty_clients_t;


typedef struct {
    ngx_flag_t                 enable;
    ngx_str_t                  api_prefix;      /* "/api/v1/" */
    ngx_str_t                  upstream;        /* internal location prefix */
    ngx_str_t                  provider;        /* oauth_provider to send */
    ngx_str_t                  token;           /* URI-escaped token */
    ngx_str_t                  token_file;
    ngx_http_smarty_clients_t *clients;
    ngx_uint_t                 max_images;
    size_t                     max_image_size;
    size_t                     max_meta_size;
    ngx_int_t                  error;           /* smarty_error, or -1 */

    ngx_flag_t                 cache;
    ngx_str_t                  cache_prefix;
    ngx_msec_t                 cache_ttl;
    ngx_msec_t                 cache_wait;
    ngx_flag_t                 cache_status1;
} ngx_http_smarty_loc_conf_t;


typedef struct {
    ngx_str_t                  name;
    uint64_t                   start;
    uint64_t                   data_start;
    uint64_t                   data_end;
    u_char                     sha256[SMARTY_SHA256_LEN];
} ngx_http_smarty_part_t;


typedef struct ngx_http_smarty_redis_cmd_s  ngx_http_smarty_cache_cmd_t;


/* what the cache did for a request: $smarty_cache_status, Cache-Status */
typedef enum {
    SMARTY_CACHE_NONE = 0,       /* not a cached location */
    SMARTY_CACHE_BYPASS,         /* the method is not cached */
    SMARTY_CACHE_UNAVAILABLE,    /* Redis did not answer in time */
    SMARTY_CACHE_MISS,
    SMARTY_CACHE_PARTIAL,
    SMARTY_CACHE_HIT
} ngx_http_smarty_cache_status_e;


typedef struct {
    ngx_http_smarty_cache_status_e  status;
    ngx_http_smarty_cache_cmd_t    *cmd;        /* the lookup in flight */
    ngx_event_t                     poll;       /* coalescing: look again */
    ngx_msec_t                      deadline;   /* coalescing: give up */

    ngx_str_t                       base;       /* "smarty:{s1}" */
    ngx_str_t                       gen_key;    /* "smarty:{s1}:gen" */
    ngx_str_t                       params;     /* the parameters' id */
    ngx_str_t                       gen;        /* as read by the lookup */
    ngx_str_t                       owner;      /* this request's lock id */

    ngx_uint_t                      n;          /* meta images */
    ngx_str_t                      *hex;        /* their SHA-256, hex */
    ngx_str_t                      *value;      /* cached answers */
    u_char                         *state;      /* SMARTY_CE_* */
    ngx_uint_t                      hits;
    ngx_uint_t                      waiting;

    ngx_uint_t                     *up;         /* meta indexes forwarded */
    ngx_uint_t                      nup;

    unsigned                        lookup:1;   /* a lookup was answered */
    unsigned                        collapsed:1;
    unsigned                        stored:1;
} ngx_http_smarty_cache_t;


typedef enum {
    SMARTY_STATE_INIT = 0,
    SMARTY_STATE_BODY,
    SMARTY_STATE_CACHE,
    SMARTY_STATE_UPSTREAM,
    SMARTY_STATE_DONE
} ngx_http_smarty_state_e;


typedef struct {
    ngx_http_smarty_state_e    state;
    const smarty_method_t     *method;
    ngx_http_smarty_client_t  *client;

    /* body */
    smarty_mp_t               *mp;
    ngx_array_t                parts;      /* ngx_http_smarty_part_t, images */
    ngx_http_smarty_part_t    *cur;        /* image part being read */
    EVP_MD_CTX                *md;
    u_char                    *meta;
    size_t                     meta_len;
    size_t                     meta_size;
    unsigned                   in_meta:1;
    unsigned                   seen_meta:1;
    smarty_err_e               body_err;
    char                       body_msg[160];
    smarty_meta_t              m;          /* validated meta */
    unsigned                   m_valid:1;
    u_char                     boundary[SMARTY_MP_BOUNDARY_MAX + 1];
    size_t                     boundary_len;

    ngx_http_smarty_cache_t    cache;

    /* upstream */
    ngx_http_request_t        *sr;
    ngx_int_t                  up_rc;
    ngx_uint_t                 up_status;
    ngx_chain_t               *up_body;
    size_t                     up_len;
    unsigned                   up_done:1;

    /* for logs */
    smarty_err_e               err;
    ngx_uint_t                 status;
} ngx_http_smarty_ctx_t;


extern ngx_module_t  ngx_http_smarty_module;


/* auth */
char *ngx_http_smarty_clients_load(ngx_conf_t *cf, ngx_str_t *path,
    ngx_http_smarty_clients_t **out);
ngx_int_t ngx_http_smarty_authenticate(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_authorize_space(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_args_filter(ngx_pool_t *pool, ngx_str_t *args,
    ngx_str_t *out, ngx_uint_t redact);

/* the request flow (module) */
void ngx_http_smarty_forward(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
void ngx_http_smarty_answer(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t status, ngx_chain_t *body,
    size_t len);
void ngx_http_smarty_fail(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e, const char *msg);

/* cache */
ngx_int_t ngx_http_smarty_cache_start(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_cache_finish(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    ngx_uint_t ok);
void ngx_http_smarty_cache_cleanup(ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_cache_header(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);
const char *ngx_http_smarty_cache_status_text(ngx_http_smarty_ctx_t *ctx);

/* body */
ngx_int_t ngx_http_smarty_body_subset(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t *idx, ngx_uint_t n,
    u_char *meta, size_t meta_len, ngx_http_request_body_t **rb,
    off_t *len);
ngx_int_t ngx_http_smarty_body_begin(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_body_parse(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);

/* token */
char *ngx_http_smarty_token_load(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *token);

/* upstream */
ngx_int_t ngx_http_smarty_upstream_start(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
void ngx_http_smarty_upstream_done(ngx_http_request_t *r);
smarty_err_e ngx_http_smarty_upstream_result(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, char *msg, size_t len);

/* reply */
ngx_int_t ngx_http_smarty_send_error(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, smarty_err_e e, const char *msg);
ngx_int_t ngx_http_smarty_send_chain(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t status, ngx_chain_t *body,
    size_t len);

/* variables */
ngx_int_t ngx_http_smarty_add_variables(ngx_conf_t *cf);

#endif /* NGX_HTTP_SMARTY_MODULE_H */
