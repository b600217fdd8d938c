/*
 * smarty-gateway: the upstream token.
 *
 * The token is read from a file when the configuration is (never written
 * inline in nginx.conf, never logged), so "nginx -s reload" picks up a new
 * one.  It is kept URI-escaped, ready for the upstream query string.
 */

#include "ngx_http_smarty_module.h"


#define SMARTY_TOKEN_MAX  4096


char *
ngx_http_smarty_token_load(ngx_conf_t *cf, ngx_str_t *path, ngx_str_t *token)
{
    u_char           *buf, *p;
    size_t            len, esc;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "upstream token file \"%V\" cannot be opened",
                           path);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", path);
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    if (fi.st_mode & S_IROTH) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "upstream token file \"%V\" is readable by "
                           "everyone", path);
    }

    buf = ngx_pnalloc(cf->temp_pool, SMARTY_TOKEN_MAX + 1);
    if (buf == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = *path;
    file.log = cf->log;

    n = ngx_read_file(&file, buf, SMARTY_TOKEN_MAX + 1, 0);
    ngx_close_file(fd);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (n > SMARTY_TOKEN_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream token file \"%V\" is larger than %d "
                           "bytes", path, SMARTY_TOKEN_MAX);
        return NGX_CONF_ERROR;
    }

    len = n;

    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                   || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream token file \"%V\" is empty", path);
        return NGX_CONF_ERROR;
    }

    for (p = buf; p < buf + len; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "upstream token file \"%V\" must hold one "
                               "token of printable characters", path);
            return NGX_CONF_ERROR;
        }
    }

    esc = 2 * ngx_escape_uri(NULL, buf, len, NGX_ESCAPE_ARGS);

    token->data = ngx_pnalloc(cf->pool, len + esc);
    if (token->data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = (u_char *) ngx_escape_uri(token->data, buf, len, NGX_ESCAPE_ARGS);
    token->len = p - token->data;

    ngx_explicit_memzero(buf, SMARTY_TOKEN_MAX + 1);

    return NGX_CONF_OK;
}
