/*
 * smarty-gateway: local clients, their keys and their rights.
 *
 * The clients file is JSON, read when the configuration is (so "nginx -s
 * reload" picks up a changed file, and "nginx -t" reports its mistakes):
 *
 *   {"clients": [
 *     {"name": "billing", "key_sha256": "<64 hex digits>",
 *      "spaces": ["0", "1"] | "*",
 *      "methods": ["persons/recognize", "persons/enroll", ...] | "*",
 *      "operator": true,                                   (optional)
 *      "quota": {"1": "100i/m", "*": "10r/s"}}         (optional)
 *   ]}
 *
 * "persons/enroll" lets a client recognize with create_new or
 * update_embedding (persons/set lets it too); "operator" lets it read the
 * operator endpoints (the quota view).  "quota" replaces
 * smarty_quota_client's policy for this client in the
 * spaces it names ("0".."9", "*", "detectors"; see docs/quota.md).
 *
 * Only the SHA-256 of a key is stored.  A client presents its key as
 * "Authorization: Bearer <key>" or, for scripts written for the API itself,
 * as the "oauth_token" query parameter.  The presented key is hashed and
 * compared with every client's hash in constant time.
 */

#include "ngx_http_smarty_module.h"
#include "smarty_args.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>


#define SMARTY_ALL_SPACES   0x3ff


static ngx_int_t ngx_http_smarty_hex32(const char *hex, u_char *out);
static ngx_int_t ngx_http_smarty_client_parse(ngx_conf_t *cf, ngx_str_t *path,
    size_t i, json_t *e, ngx_http_smarty_client_t *c);
static ngx_int_t ngx_http_smarty_get_key(ngx_http_request_t *r,
    ngx_str_t *key);


char *
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
    size_t                  k;
    json_t                 *v, *x;
    u_char                 *what;
    ngx_str_t               space, policy;
    int                     bit;
    const char             *s, *key;

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

            space.data = (u_char *) key;
            space.len = ngx_strlen(key);
            policy.data = (u_char *) json_string_value(x);
            policy.len = json_string_length(x);

            what = ngx_pnalloc(cf->pool, path->len + c->name.len + 64);
            if (what == NULL) {
                return NGX_ERROR;
            }

            *ngx_sprintf(what, "clients file \"%V\": client \"%V\": quota",
                         path, &c->name) = '\0';

            if (ngx_http_smarty_quota_sets_parse(cf, &c->quota, &space,
                                                 &policy, (char *) what)
                != NGX_CONF_OK)
            {
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


/*
 * The client whose key the request carries: SMARTY_OK with *client set, or
 * SMARTY_E_MISSING_KEY, SMARTY_E_UNKNOWN_KEY.
 */

smarty_err_e
ngx_http_smarty_identify(ngx_http_request_t *r,
    ngx_http_smarty_clients_t *clients, ngx_http_smarty_client_t **client)
{
    u_char                     digest[SMARTY_SHA256_LEN];
    ngx_str_t                  key;
    ngx_uint_t                 i;
    ngx_http_smarty_client_t  *c, *found;

    if (ngx_http_smarty_get_key(r, &key) != NGX_OK) {
        return SMARTY_E_MISSING_KEY;
    }

    SHA256(key.data, key.len, digest);

    /* look at every client, whatever matches, so that timing says nothing */

    found = NULL;
    c = clients->clients.elts;

    for (i = 0; i < clients->clients.nelts; i++) {
        if (CRYPTO_memcmp(c[i].key_sha256, digest, SMARTY_SHA256_LEN) == 0) {
            found = &c[i];
        }
    }

    ngx_memzero(digest, sizeof(digest));

    if (found == NULL) {
        return SMARTY_E_UNKNOWN_KEY;
    }

    *client = found;

    return SMARTY_OK;
}


/*
 * Returns NGX_OK with ctx->client set, or an smarty_err_e: the client's key
 * is missing, unknown, or may not call this method.
 */

ngx_int_t
ngx_http_smarty_authenticate(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    smarty_err_e  e;

    e = ngx_http_smarty_identify(r, slcf->clients, &ctx->client);
    if (e != SMARTY_OK) {
        return e;
    }

    if (!(ctx->client->methods & (1 << ctx->method->id))) {
        return SMARTY_E_METHOD_FORBIDDEN;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_smarty_authorize_space(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx)
{
    if (ctx->m.space < 0) {
        return NGX_OK;
    }

    if (!(ctx->client->spaces & (1 << ctx->m.space))) {
        return SMARTY_E_SPACE_FORBIDDEN;
    }

    /* a recognize that enrolls or updates is a write */

    if (ctx->method->id == SMARTY_M_PERSONS_RECOGNIZE
        && smarty_meta_writes(ctx->method, &ctx->m)
        && !(ctx->client->methods & (1 << SMARTY_RIGHT_ENROLL
                                     | 1 << SMARTY_M_PERSONS_SET)))
    {
        return SMARTY_E_WRITE_FORBIDDEN;
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
