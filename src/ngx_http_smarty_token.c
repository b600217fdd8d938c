/*
 * smarty-gateway: the upstream token.
 *
 * The token is read from a file when the configuration is (never written
 * inline in nginx.conf, never logged), so "nginx -s reload" picks up a new
 * one.  It is kept URI-escaped, ready for the upstream query string.
 */

#include "ngx_http_smarty_module.h"
#include "ngx_http_smarty_secret.h"


#define SMARTY_TOKEN_MAX  4096


char *
ngx_http_smarty_token_load(ngx_conf_t *cf, ngx_str_t *path, ngx_str_t *token)
{
    u_char     *p;
    size_t      esc;
    ngx_str_t   raw;

    if (ngx_http_smarty_secret_read(cf, path, "upstream token",
                                    SMARTY_TOKEN_MAX, &raw)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (p = raw.data; p < raw.data + raw.len; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            ngx_http_smarty_secret_wipe(&raw);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "upstream token file \"%V\" must hold one "
                               "token of printable characters", path);
            return NGX_CONF_ERROR;
        }
    }

    esc = 2 * ngx_escape_uri(NULL, raw.data, raw.len, NGX_ESCAPE_ARGS);

    token->data = ngx_pnalloc(cf->pool, raw.len + esc);
    if (token->data == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    p = (u_char *) ngx_escape_uri(token->data, raw.data, raw.len,
                                  NGX_ESCAPE_ARGS);
    token->len = p - token->data;

    ngx_http_smarty_secret_wipe(&raw);

    return NGX_CONF_OK;
}
