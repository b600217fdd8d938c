/*
 * smarty-gateway: local clients, their keys, the gateway's access tokens
 * and their rights (see ngx_http_smarty_auth.h; the clients file:
 * docs/reference.md; the tokens: docs/oauth.md).
 *
 * Only the SHA-256 of a key is stored; a presented key is hashed and
 * compared with every client's hash in constant time.  An access token
 * (smarty_client_token.c) is checked without state: its mac, by a signing
 * key of smarty_oauth_key_file and its client's key hash, and its expiry.
 */

#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_digest.h"
#include "ngx_http_smarty_secret.h"
#include "smarty_args.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>


#define SMARTY_ALL_SPACES   0x3ff
#define SMARTY_KEY_FILE_MAX 4096


typedef struct {
    ngx_http_smarty_clients_t  *clients;
    ngx_array_t                *token_keys;  /* ngx_str_t: the first signs,
                                                every one verifies */
} ngx_http_smarty_auth_conf_t;


static char *ngx_http_smarty_clients_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_clients_load(ngx_conf_t *cf, ngx_str_t *path,
    ngx_http_smarty_clients_t **out);
static ngx_int_t ngx_http_smarty_hex32(const char *hex, u_char *out);
static ngx_int_t ngx_http_smarty_client_parse(ngx_conf_t *cf, ngx_str_t *path,
    size_t i, json_t *e, ngx_http_smarty_client_t *c);
static ngx_int_t ngx_http_smarty_get_key(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_http_smarty_client_t *ngx_http_smarty_auth_by_key(
    ngx_http_smarty_clients_t *clients, const u_char *key, size_t len);
static char *ngx_http_smarty_oauth_key_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_smarty_auth_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_auth_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_smarty_auth_commands[] = {

    { ngx_string("smarty_clients_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_clients_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_oauth_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_smarty_oauth_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_auth_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_auth_create_conf,      /* create location configuration */
    ngx_http_smarty_auth_merge_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_auth_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_auth_module_ctx,      /* module context */
    ngx_http_smarty_auth_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_http_smarty_clients_t *
ngx_http_smarty_auth_clients(ngx_http_request_t *r)
{
    ngx_http_smarty_auth_conf_t  *acf;

    acf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_auth_module);

    return acf->clients;
}


ngx_http_smarty_clients_t *
ngx_http_smarty_auth_conf_clients(ngx_conf_t *cf)
{
    ngx_http_smarty_auth_conf_t  *acf;

    acf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_smarty_auth_module);

    return acf->clients == NGX_CONF_UNSET_PTR ? NULL : acf->clients;
}


smarty_err_e
ngx_http_smarty_auth_identify(ngx_http_request_t *r,
    const ngx_http_smarty_client_t **client)
{
    ngx_str_t                   key;
    smarty_err_e                te;
    ngx_http_smarty_client_t   *found;
    ngx_http_smarty_clients_t  *clients;

    clients = ngx_http_smarty_auth_clients(r);
    if (clients == NULL) {
        return SMARTY_E_UNKNOWN_KEY;
    }

    if (ngx_http_smarty_get_key(r, &key) != NGX_OK) {
        return SMARTY_E_MISSING_KEY;
    }

    /*
     * An access token of the gateway's; what only looks like one is still
     * tried as a key (a key of the clients file may begin like a token)
     */

    te = SMARTY_OK;

    if (smarty_ct_kind((const char *) key.data, key.len) == SMARTY_CT_ACCESS) {
        te = ngx_http_smarty_auth_token_check(r, key.data, key.len,
                                              SMARTY_CT_ACCESS, client,
                                              NULL);
        if (te == SMARTY_OK) {
            return SMARTY_OK;
        }
    }

    found = ngx_http_smarty_auth_by_key(clients, key.data, key.len);

    if (found == NULL) {
        return te != SMARTY_OK ? te : SMARTY_E_UNKNOWN_KEY;
    }

    *client = found;

    return SMARTY_OK;
}


/* the client whose key this is: every client looked at, in constant time */

static ngx_http_smarty_client_t *
ngx_http_smarty_auth_by_key(ngx_http_smarty_clients_t *clients,
    const u_char *key, size_t len)
{
    u_char                     digest[SMARTY_SHA256_LEN];
    ngx_uint_t                 i;
    ngx_http_smarty_client_t  *c, *found;

    /* on every request: the worker's SHA-256 (ngx_http_smarty_digest.h) */

    if (ngx_http_smarty_digest(key, len, digest) != NGX_OK) {
        return NULL;
    }

    /* look at every client, whatever matches, so that timing says nothing */

    found = NULL;
    c = clients->clients.elts;

    for (i = 0; i < clients->clients.nelts; i++) {
        if (CRYPTO_memcmp(c[i].key_sha256, digest, SMARTY_SHA256_LEN) == 0) {
            found = &c[i];
        }
    }

    ngx_explicit_memzero(digest, sizeof(digest));

    return found;
}


const ngx_http_smarty_client_t *
ngx_http_smarty_auth_find(ngx_http_request_t *r, const u_char *name,
    size_t len)
{
    ngx_uint_t                  i;
    ngx_http_smarty_client_t   *c;
    ngx_http_smarty_clients_t  *clients;

    clients = ngx_http_smarty_auth_clients(r);
    if (clients == NULL) {
        return NULL;
    }

    c = clients->clients.elts;

    for (i = 0; i < clients->clients.nelts; i++) {
        if (c[i].name.len == len && ngx_memcmp(c[i].name.data, name, len) == 0)
        {
            return &c[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_smarty_auth_key_is(const ngx_http_smarty_client_t *c,
    const u_char *key, size_t len)
{
    int            diff;
    u_char         digest[SMARTY_SHA256_LEN];
    static u_char  none[SMARTY_SHA256_LEN];

    /* the same work for a client that does not exist */

    SHA256(key, len, digest);

    diff = CRYPTO_memcmp(c ? c->key_sha256 : none, digest,
                         SMARTY_SHA256_LEN);

    ngx_explicit_memzero(digest, sizeof(digest));

    return c != NULL && diff == 0;
}


/* --- the gateway's tokens ------------------------------------------------- */


ngx_int_t
ngx_http_smarty_auth_tokens(ngx_http_request_t *r)
{
    ngx_http_smarty_auth_conf_t  *acf;

    acf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_auth_module);

    return acf->token_keys != NULL;
}


ngx_int_t
ngx_http_smarty_auth_conf_tokens(ngx_conf_t *cf)
{
    ngx_http_smarty_auth_conf_t  *acf;

    acf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_smarty_auth_module);

    return acf->token_keys != NULL && acf->token_keys != NGX_CONF_UNSET_PTR;
}


size_t
ngx_http_smarty_auth_token_make(ngx_http_request_t *r,
    const ngx_http_smarty_client_t *c, int kind, time_t lifetime,
    u_char *out, time_t *expires)
{
    size_t                        n;
    time_t                        now;
    ngx_str_t                    *key;
    unsigned char                 nonce[SMARTY_CT_NONCE_LEN];
    ngx_http_smarty_auth_conf_t  *acf;

    acf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_auth_module);

    if (acf->token_keys == NULL) {
        return 0;
    }

    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "smarty oauth: RAND_bytes() failed");
        return 0;
    }

    key = acf->token_keys->elts;
    now = ngx_time();

    n = smarty_ct_make(kind, (const char *) c->name.data, c->name.len,
                       c->key_sha256, (uint64_t) now,
                       (uint64_t) (now + lifetime), nonce, key[0].data,
                       key[0].len, (char *) out, SMARTY_CT_MAX_LEN + 1);

    if (n && expires) {
        *expires = now + lifetime;
    }

    return n;
}


smarty_err_e
ngx_http_smarty_auth_token_check(ngx_http_request_t *r, const u_char *text,
    size_t len, int kind, const ngx_http_smarty_client_t **client,
    time_t *expires)
{
    ngx_str_t                       *key;
    ngx_uint_t                       i;
    smarty_ct_t                      t;
    smarty_ct_rc_e                   rc;
    ngx_http_smarty_auth_conf_t     *acf;
    const ngx_http_smarty_client_t  *c;

    acf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_auth_module);

    if (acf->token_keys == NULL
        || smarty_ct_parse((const char *) text, len, &t) != SMARTY_CT_OK
        || t.kind != kind)
    {
        return SMARTY_E_INVALID_TOKEN;
    }

    c = ngx_http_smarty_auth_find(r, (u_char *) t.name, t.name_len);

    if (c == NULL) {
        /* the name is not logged: nothing vouches for it yet */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "smarty oauth: a token naming a client that the "
                      "clients file does not have");
        return SMARTY_E_INVALID_TOKEN;
    }

    key = acf->token_keys->elts;
    rc = SMARTY_CT_BAD_MAC;

    for (i = 0; i < acf->token_keys->nelts && rc == SMARTY_CT_BAD_MAC; i++) {
        rc = smarty_ct_verify(&t, key[i].data, key[i].len, c->key_sha256,
                              (uint64_t) ngx_time());
    }

    if (rc == SMARTY_CT_BAD_MAC) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "smarty oauth: a token of client \"%V\" whose mac "
                      "is not good: its key, or the signing key, changed",
                      &c->name);
        return SMARTY_E_INVALID_TOKEN;
    }

    if (rc == SMARTY_CT_EXPIRED) {
        return SMARTY_E_TOKEN_EXPIRED;
    }

    *client = c;

    if (expires) {
        *expires = (time_t) t.expires;
    }

    return SMARTY_OK;
}


smarty_err_e
ngx_http_smarty_auth_method(const ngx_http_smarty_client_t *c,
    const smarty_method_t *m)
{
    return (c->methods & (1 << m->id)) ? SMARTY_OK
                                       : SMARTY_E_METHOD_FORBIDDEN;
}


smarty_err_e
ngx_http_smarty_auth_meta(const ngx_http_smarty_client_t *c,
    const smarty_method_t *m, const smarty_meta_t *meta)
{
    if (meta->space < 0) {
        return SMARTY_OK;
    }

    if (!(c->spaces & (1 << meta->space))) {
        return SMARTY_E_SPACE_FORBIDDEN;
    }

    /* a recognize that enrolls or updates is a write */

    if (m->id == SMARTY_M_PERSONS_RECOGNIZE
        && smarty_meta_writes(m, meta)
        && !(c->methods & (1 << SMARTY_RIGHT_ENROLL
                           | 1 << SMARTY_M_PERSONS_SET)))
    {
        return SMARTY_E_WRITE_FORBIDDEN;
    }

    return SMARTY_OK;
}


/* --- the clients file ----------------------------------------------------- */


static char *
ngx_http_smarty_clients_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_auth_conf_t  *acf = conf;

    ngx_str_t  *value;

    if (acf->clients != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_smarty_clients_load(cf, &value[1], &acf->clients);
}


/*
 * "smarty_oauth_key_file key [previous]": the signing key of the gateway's
 * tokens, the same file on every instance; a previous key still verifies
 * (a rotation, docs/oauth.md)
 */

static char *
ngx_http_smarty_oauth_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_auth_conf_t  *acf = conf;

    char        *rv;
    ngx_str_t   *value, secret, *key;
    ngx_uint_t   i;

    if (acf->token_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    acf->token_keys = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (acf->token_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        rv = ngx_http_smarty_secret_read(cf, &value[i], "oauth key",
                                         SMARTY_KEY_FILE_MAX, &secret);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        if (secret.len < SMARTY_CT_KEY_MIN) {
            ngx_http_smarty_secret_wipe(&secret);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "oauth key file \"%V\" holds fewer than %d "
                               "bytes: make one with \"openssl rand -hex "
                               "32\"", &value[i], SMARTY_CT_KEY_MIN);
            return NGX_CONF_ERROR;
        }

        key = ngx_array_push(acf->token_keys);
        if (key == NULL) {
            ngx_http_smarty_secret_wipe(&secret);
            return NGX_CONF_ERROR;
        }

        key->len = secret.len;
        key->data = ngx_pnalloc(cf->pool, secret.len);
        if (key->data == NULL) {
            ngx_http_smarty_secret_wipe(&secret);
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(key->data, secret.data, secret.len);
        ngx_http_smarty_secret_wipe(&secret);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_smarty_clients_load(ngx_conf_t *cf, ngx_str_t *path,
    ngx_http_smarty_clients_t **out)
{
    size_t                      i, j;
    json_t                     *root, *list, *e;
    json_error_t                jerr;
    ngx_http_smarty_client_t   *c, *cs;
    ngx_http_smarty_clients_t  *clients;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    root = json_load_file((const char *) path->data, JSON_REJECT_DUPLICATES,
                          &jerr);
    if (root == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": %s (line %d)", path,
                           jerr.text, jerr.line);
        return NGX_CONF_ERROR;
    }

    list = json_object_get(root, "clients");
    if (!json_is_array(list)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": no \"clients\" array", path);
        json_decref(root);
        return NGX_CONF_ERROR;
    }

    clients = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_clients_t));
    if (clients == NULL
        || ngx_array_init(&clients->clients, cf->pool,
                          json_array_size(list) + 1,
                          sizeof(ngx_http_smarty_client_t))
           != NGX_OK)
    {
        json_decref(root);
        return NGX_CONF_ERROR;
    }

    clients->path = *path;

    json_array_foreach(list, i, e) {
        c = ngx_array_push(&clients->clients);
        if (c == NULL) {
            json_decref(root);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_smarty_client_parse(cf, path, i, e, c) != NGX_OK) {
            json_decref(root);
            return NGX_CONF_ERROR;
        }

        cs = clients->clients.elts;

        for (j = 0; j < i; j++) {
            if (cs[j].name.len == c->name.len
                && ngx_strncmp(cs[j].name.data, c->name.data, c->name.len)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "clients file \"%V\": client \"%V\" "
                                   "is listed twice", path, &c->name);
                json_decref(root);
                return NGX_CONF_ERROR;
            }

            if (ngx_memcmp(cs[j].key_sha256, c->key_sha256,
                           SMARTY_SHA256_LEN) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "clients file \"%V\": clients \"%V\" and "
                                   "\"%V\" have the same key", path,
                                   &cs[j].name, &c->name);
                json_decref(root);
                return NGX_CONF_ERROR;
            }
        }
    }

    json_decref(root);

    *out = clients;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_smarty_client_parse(ngx_conf_t *cf, ngx_str_t *path, size_t i,
    json_t *e, ngx_http_smarty_client_t *c)
{
    int                     bit;
    char                    err[160];
    size_t                  k;
    json_t                 *v, *x;
    const char             *s, *key;
    smarty_quota_set_t     *set;

    ngx_memzero(c, sizeof(ngx_http_smarty_client_t));

    if (!json_is_object(e)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": clients[%uz] is not an "
                           "object", path, i);
        return NGX_ERROR;
    }

    v = json_object_get(e, "name");
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > 64)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": clients[%uz].name must be "
                           "a string of 1 to 64 characters", path, i);
        return NGX_ERROR;
    }

    c->name.len = json_string_length(v);
    c->name.data = ngx_pstrdup(cf->pool, &(ngx_str_t) { c->name.len,
                                          (u_char *) json_string_value(v) });
    if (c->name.data == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < c->name.len; k++) {
        if (c->name.data[k] < 0x21 || c->name.data[k] > 0x7e
            || c->name.data[k] == '"' || c->name.data[k] == '\\'
            || c->name.data[k] == '{' || c->name.data[k] == '}')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "clients file \"%V\": clients[%uz].name must "
                               "be printable ASCII without spaces, quotes "
                               "or braces",
                               path, i);
            return NGX_ERROR;
        }
    }

    v = json_object_get(e, "key_sha256");
    if (!json_is_string(v) || json_string_length(v) != 64
        || ngx_http_smarty_hex32(json_string_value(v), c->key_sha256)
           != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": client \"%V\": key_sha256 "
                           "must be 64 hex digits (the SHA-256 of the key, "
                           "see \"smarty keygen\")", path, &c->name);
        return NGX_ERROR;
    }

    if (json_object_get(e, "key") != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": client \"%V\": keys are "
                           "never stored, only \"key_sha256\"", path,
                           &c->name);
        return NGX_ERROR;
    }

    v = json_object_get(e, "spaces");
    s = json_string_value(v);

    if (s && ngx_strcmp(s, "*") == 0) {
        c->spaces = SMARTY_ALL_SPACES;

    } else if (json_is_array(v)) {
        json_array_foreach(v, k, x) {
            s = json_string_value(x);
            if (s == NULL || s[0] < '0' || s[0] > '9' || s[1] != '\0') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "clients file \"%V\": client \"%V\": "
                                   "spaces[%uz] must be a string \"0\" to "
                                   "\"9\"", path, &c->name, k);
                return NGX_ERROR;
            }

            c->spaces |= 1 << (s[0] - '0');
        }

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": client \"%V\": \"spaces\" "
                           "must be \"*\" or an array of \"0\"..\"9\"", path,
                           &c->name);
        return NGX_ERROR;
    }

    v = json_object_get(e, "methods");
    s = json_string_value(v);

    if (s && ngx_strcmp(s, "*") == 0) {
        c->methods = SMARTY_RIGHTS_ALL;

    } else if (json_is_array(v)) {
        json_array_foreach(v, k, x) {
            s = json_string_value(x);
            bit = s ? smarty_right_find(s, ngx_strlen(s)) : -1;

            if (bit < 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "clients file \"%V\": client \"%V\": "
                                   "methods[%uz] is not an API method "
                                   "such as \"persons/recognize\", nor "
                                   "\"persons/enroll\"", path, &c->name, k);
                return NGX_ERROR;
            }

            c->methods |= 1 << bit;
        }

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "clients file \"%V\": client \"%V\": \"methods\" "
                           "must be \"*\" or an array of method paths", path,
                           &c->name);
        return NGX_ERROR;
    }

    v = json_object_get(e, "operator");

    if (v != NULL) {
        if (!json_is_boolean(v)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "clients file \"%V\": client \"%V\": "
                               "\"operator\" must be true or false", path,
                               &c->name);
            return NGX_ERROR;
        }

        c->operator = json_is_true(v);
    }

    v = json_object_get(e, "quota");

    if (v != NULL) {
        if (!json_is_object(v)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "clients file \"%V\": client \"%V\": "
                               "\"quota\" must be an object of policies by "
                               "space, e.g. {\"1\": \"100i/m\"}", path,
                               &c->name);
            return NGX_ERROR;
        }

        json_object_foreach(v, key, x) {
            if (!json_is_string(x)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "clients file \"%V\": client \"%V\": "
                                   "quota \"%s\" is not a policy string",
                                   path, &c->name, key);
                return NGX_ERROR;
            }

            if (c->quota == NULL) {
                c->quota = ngx_pcalloc(cf->pool, sizeof(smarty_quota_sets_t));
                if (c->quota == NULL) {
                    return NGX_ERROR;
                }
            }

            set = ngx_palloc(cf->pool, sizeof(smarty_quota_set_t));
            if (set == NULL) {
                return NGX_ERROR;
            }

            if (smarty_quota_sets_add(c->quota, set, key, ngx_strlen(key),
                                      json_string_value(x),
                                      json_string_length(x), err,
                                      sizeof(err))
                != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "clients file \"%V\": client \"%V\": "
                                   "quota: %s", path, &c->name, err);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_hex32(const char *hex, u_char *out)
{
    ngx_int_t   n;
    ngx_uint_t  i;

    for (i = 0; i < SMARTY_SHA256_LEN; i++) {
        n = ngx_hextoi((u_char *) hex + 2 * i, 2);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        out[i] = (u_char) n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_get_key(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char           *p, *dst;
    size_t            pos;
    ngx_str_t         v;
    smarty_arg_t      a;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h != NULL) {
        v = h->value;

        if (v.len <= sizeof("Bearer ") - 1
            || ngx_strncasecmp(v.data, (u_char *) "Bearer ",
                               sizeof("Bearer ") - 1) != 0)
        {
            return NGX_DECLINED;
        }

        p = v.data + sizeof("Bearer ") - 1;

        while (p < v.data + v.len && *p == ' ') {
            p++;
        }

        key->data = p;
        key->len = v.data + v.len - p;

        while (key->len && key->data[key->len - 1] == ' ') {
            key->len--;
        }

        return key->len ? NGX_OK : NGX_DECLINED;
    }

    /*
     * the first oauth_token, its name decoded as the API decodes it:
     * "oauth%5Ftoken" is one too
     */

    pos = 0;

    for ( ;; ) {
        if (!smarty_args_next((const char *) r->args.data, r->args.len, &pos,
                              &a))
        {
            return NGX_DECLINED;
        }

        if (smarty_args_name_is(a.name, a.name_len, "oauth_token", 0)) {
            break;
        }
    }

    if (a.value == NULL || a.value_len == 0) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, a.value_len);
    if (dst == NULL) {
        return NGX_DECLINED;
    }

    key->data = dst;
    key->len = smarty_args_unescape(a.value, a.value_len, (char *) dst);

    return key->len ? NGX_OK : NGX_DECLINED;
}


static void *
ngx_http_smarty_auth_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_auth_conf_t  *acf;

    acf = ngx_palloc(cf->pool, sizeof(ngx_http_smarty_auth_conf_t));
    if (acf == NULL) {
        return NULL;
    }

    acf->clients = NGX_CONF_UNSET_PTR;
    acf->token_keys = NGX_CONF_UNSET_PTR;

    return acf;
}


static char *
ngx_http_smarty_auth_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_auth_conf_t  *prev = parent;
    ngx_http_smarty_auth_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->clients, prev->clients, NULL);
    ngx_conf_merge_ptr_value(conf->token_keys, prev->token_keys, NULL);

    return NGX_CONF_OK;
}
