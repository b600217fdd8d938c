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
#include "smarty_quota.h"


#define SMARTY_SHA256_LEN  32

/* quota sets by space: "0".."9", then the detectors, then "*" */
#define SMARTY_QUOTA_DETECTORS  10
#define SMARTY_QUOTA_ANY        11
#define SMARTY_QUOTA_SLOTS      12

#define SMARTY_QUOTA_ITEMS      (2 * SMARTY_QUOTA_MAX_LIMITS)


typedef struct {
    smarty_quota_set_t        *set[SMARTY_QUOTA_SLOTS];
} ngx_http_smarty_quota_sets_t;


typedef struct {
    ngx_str_t                  name;
    u_char                     key_sha256[SMARTY_SHA256_LEN];
    ngx_uint_t                 spaces;     /* bit n: space "n" allowed */
    ngx_uint_t                 methods;    /* bit n: right n (smarty_meta.h) */
    unsigned                   operator:1; /* may read operator endpoints */
    ngx_http_smarty_quota_sets_t  *quota;  /* the clients file's "quota" */
} ngx_http_smarty_client_t;


typedef struct {
    ngx_str_t                  path;
    ngx_array_t                clients;    /* ngx_http_smarty_client_t */
} ngx_http_smarty_clients_t;


typedef struct {
    ngx_flag_t                 enable;
    ngx_str_t                  api_prefix;      /* "/api/v1/" */
    ngx_str_t                  upstream;        /* internal location prefix */
    ngx_array_t               *upstream_args;   /* names a client may pass */
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

    ngx_flag_t                 quota;
    ngx_http_smarty_quota_sets_t  *quota_space;
    ngx_http_smarty_quota_sets_t  *quota_client;
    ngx_flag_t                 quota_hits;
    ngx_flag_t                 quota_refund;
    ngx_int_t                  quota_closed;    /* fallback "closed" */
    ngx_uint_t                 quota_share_num; /* fallback "share=" */
    ngx_uint_t                 quota_share_den;
    ngx_str_t                  quota_prefix;
    ngx_flag_t                 quota_view;      /* the operator's view */
} ngx_http_smarty_loc_conf_t;


typedef struct {
    size_t                     quota_zone_size;
    ngx_uint_t                 quota_used;      /* a quota is configured */
    ngx_shm_zone_t            *quota_zone;      /* the local fallback's */
} ngx_http_smarty_main_conf_t;


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
    unsigned                        holds:1;    /* may hold locks: release
                                                   them when it goes */
    unsigned                        collapsed:1;
    unsigned                        stored:1;
} ngx_http_smarty_cache_t;


/* what the quota did: $smarty_quota_status */
typedef enum {
    SMARTY_QUOTA_NONE = 0,       /* no limit applies (yet) */
    SMARTY_QUOTA_PASS,           /* Redis admitted */
    SMARTY_QUOTA_REFUSED,        /* Redis refused */
    SMARTY_QUOTA_LOCAL_PASS,     /* the local fallback admitted */
    SMARTY_QUOTA_LOCAL_REFUSED,  /* the local fallback refused */
    SMARTY_QUOTA_CLOSED          /* Redis away, fallback "closed": 503 */
} ngx_http_smarty_quota_status_e;


typedef struct {
    ngx_http_smarty_quota_status_e  status;
    ngx_http_smarty_cache_cmd_t    *cmd;        /* quota.lua in flight */

    size_t                          n;          /* items: space's, client's */
    size_t                          nspace;     /* of which the space's */
    smarty_quota_item_t             items[SMARTY_QUOTA_ITEMS];
    smarty_quota_state_t            states[SMARTY_QUOTA_ITEMS];
    smarty_quota_limit_t            scaled[SMARTY_QUOTA_ITEMS];
    const smarty_quota_limit_t     *limits[SMARTY_QUOTA_ITEMS];
    ngx_str_t                       keys[SMARTY_QUOTA_ITEMS];
    ngx_str_t                       args[SMARTY_QUOTA_ITEMS];
    smarty_quota_result_t           res;

    int64_t                         at;         /* the spend's clock */
    uint64_t                        spent_requests;
    uint64_t                        spent_images;

    unsigned                        decided:1;  /* res and items are set */
    unsigned                        local:1;    /* by the local fallback */
    unsigned                        redis_failed:1;
} ngx_http_smarty_quota_t;


typedef enum {
    SMARTY_STATE_INIT = 0,
    SMARTY_STATE_BODY,
    SMARTY_STATE_CACHE,
    SMARTY_STATE_UPSTREAM,
    SMARTY_STATE_DONE
} ngx_http_smarty_state_e;


typedef struct {
    ngx_http_request_t        *request;
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
    ngx_http_smarty_quota_t    quota;

    /* upstream */
    ngx_str_t                  up_args;    /* the client's, forwarded */
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
smarty_err_e ngx_http_smarty_identify(ngx_http_request_t *r,
    ngx_http_smarty_clients_t *clients, ngx_http_smarty_client_t **client);
ngx_int_t ngx_http_smarty_authenticate(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_authorize_space(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);

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

/* quota */
char *ngx_http_smarty_quota_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_smarty_quota_fallback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_smarty_quota_view(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_smarty_quota_sets_parse(ngx_conf_t *cf,
    ngx_http_smarty_quota_sets_t **sets, ngx_str_t *space, ngx_str_t *policy,
    const char *what);
ngx_int_t ngx_http_smarty_quota_prepare(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
void ngx_http_smarty_quota_forward(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
ngx_uint_t ngx_http_smarty_quota_lookup_argc(ngx_http_smarty_ctx_t *ctx);
ngx_uint_t ngx_http_smarty_quota_lookup_args(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    const char **argv, size_t *argvlen, const char **keys, size_t *keylen);
ngx_int_t ngx_http_smarty_quota_lookup_reply(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, void *reply, size_t offset);
void ngx_http_smarty_quota_settle(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    ngx_uint_t images);
void ngx_http_smarty_quota_refuse(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
void ngx_http_smarty_quota_finish(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e);
void ngx_http_smarty_quota_cleanup(ngx_http_smarty_ctx_t *ctx);
ngx_int_t ngx_http_smarty_quota_headers(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx);
void ngx_http_smarty_quota_error(ngx_http_smarty_ctx_t *ctx, void *body);
ngx_int_t ngx_http_smarty_quota_variable(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t which, ngx_str_t *value);

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
ngx_int_t ngx_http_smarty_upstream_args(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_str_t *out);
ngx_int_t ngx_http_smarty_upstream_start(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx);
void ngx_http_smarty_upstream_done(ngx_http_request_t *r);
smarty_err_e ngx_http_smarty_upstream_result(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, char *msg, size_t len);

/* reply */
ngx_int_t ngx_http_smarty_send_error(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, smarty_err_e e, const char *msg);
ngx_buf_t *ngx_http_smarty_json_buf(ngx_pool_t *pool, void *json);
ngx_int_t ngx_http_smarty_send_chain(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t status, ngx_chain_t *body,
    size_t len);

/* variables */
ngx_int_t ngx_http_smarty_add_variables(ngx_conf_t *cf);

#endif /* NGX_HTTP_SMARTY_MODULE_H */
