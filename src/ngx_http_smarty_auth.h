/*
 * smarty-gateway: local clients, their keys and their rights: the module
 * ngx_http_smarty_auth_module, its directive smarty_clients_file
 * (docs/reference.md, "smarty_clients_file").
 */

#ifndef NGX_HTTP_SMARTY_AUTH_H
#define NGX_HTTP_SMARTY_AUTH_H

#include "ngx_http_smarty.h"
#include "smarty_quota.h"


struct ngx_http_smarty_client_s {
    ngx_str_t                  name;
    u_char                     key_sha256[SMARTY_SHA256_LEN];
    ngx_uint_t                 spaces;     /* bit n: space "n" allowed */
    ngx_uint_t                 methods;    /* bit n: right n (smarty_meta.h) */
    unsigned                   operator:1; /* may read operator endpoints */
    smarty_quota_sets_t       *quota;      /* the clients file's "quota" */
};


typedef struct {
    ngx_str_t                  path;
    ngx_array_t                clients;    /* ngx_http_smarty_client_t */
} ngx_http_smarty_clients_t;


/* the clients of r's location, or of the location being configured */
ngx_http_smarty_clients_t *ngx_http_smarty_auth_clients(ngx_http_request_t *r);
ngx_http_smarty_clients_t *ngx_http_smarty_auth_conf_clients(ngx_conf_t *cf);

/*
 * The client whose key r carries (Authorization: Bearer, or the API's
 * oauth_token): SMARTY_OK with *client set, SMARTY_E_MISSING_KEY or
 * SMARTY_E_UNKNOWN_KEY.
 */
smarty_err_e ngx_http_smarty_auth_identify(ngx_http_request_t *r,
    const ngx_http_smarty_client_t **client);

/* may the client call the method: SMARTY_OK or SMARTY_E_METHOD_FORBIDDEN */
smarty_err_e ngx_http_smarty_auth_method(const ngx_http_smarty_client_t *c,
    const smarty_method_t *m);

/*
 * Once meta is known: the space (SMARTY_E_SPACE_FORBIDDEN), and a
 * recognize that changes the space (SMARTY_E_WRITE_FORBIDDEN).
 */
smarty_err_e ngx_http_smarty_auth_meta(const ngx_http_smarty_client_t *c,
    const smarty_method_t *m, const smarty_meta_t *meta);


extern ngx_module_t  ngx_http_smarty_auth_module;

#endif /* NGX_HTTP_SMARTY_AUTH_H */
