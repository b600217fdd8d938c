/*
 * smarty-gateway: local clients, their keys, the gateway's access tokens
 * and their rights: the module ngx_http_smarty_auth_module, its
 * directives smarty_clients_file (docs/reference.md) and
 * smarty_oauth_key_file (docs/oauth.md).
 */

#ifndef NGX_HTTP_SMARTY_AUTH_H
#define NGX_HTTP_SMARTY_AUTH_H

#include "ngx_http_smarty.h"
#include "smarty_client_token.h"
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
 * The client whose key, or access token of the gateway's, r carries
 * (Authorization: Bearer, or the API's oauth_token): SMARTY_OK with
 * *client set, SMARTY_E_MISSING_KEY, SMARTY_E_UNKNOWN_KEY, or for a token
 * SMARTY_E_INVALID_TOKEN or SMARTY_E_TOKEN_EXPIRED.
 */
smarty_err_e ngx_http_smarty_auth_identify(ngx_http_request_t *r,
    const ngx_http_smarty_client_t **client);

/* the client of r's location named so, or NULL */
const ngx_http_smarty_client_t *ngx_http_smarty_auth_find(
    ngx_http_request_t *r, const u_char *name, size_t len);

/*
 * Whether key is c's key: hashed and compared in constant time; with c
 * NULL (no such client) it does the same work and says no.
 */
ngx_int_t ngx_http_smarty_auth_key_is(const ngx_http_smarty_client_t *c,
    const u_char *key, size_t len);

/* whether the location has a signing key (smarty_oauth_key_file) */
ngx_int_t ngx_http_smarty_auth_tokens(ngx_http_request_t *r);
ngx_int_t ngx_http_smarty_auth_conf_tokens(ngx_conf_t *cf);

/*
 * A token of the kind (SMARTY_CT_ACCESS, SMARTY_CT_REFRESH) for c, good
 * for lifetime seconds from now, signed with the location's first key,
 * into out (SMARTY_CT_MAX_LEN + 1 bytes); *expires when it expires.
 * Returns its length, 0 if it could not be made (logged).
 */
size_t ngx_http_smarty_auth_token_make(ngx_http_request_t *r,
    const ngx_http_smarty_client_t *c, int kind, time_t lifetime,
    u_char *out, time_t *expires);

/*
 * The client a token of the kind is good for, by any of the location's
 * keys: SMARTY_OK with *client (and *expires, if not NULL) set,
 * SMARTY_E_TOKEN_EXPIRED, or SMARTY_E_INVALID_TOKEN (malformed, another
 * kind, an unknown client, a mac that is not good).
 */
smarty_err_e ngx_http_smarty_auth_token_check(ngx_http_request_t *r,
    const u_char *text, size_t len, int kind,
    const ngx_http_smarty_client_t **client, time_t *expires);

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
