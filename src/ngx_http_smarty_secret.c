/*
 * smarty-gateway: secrets read from files with the configuration.
 */

#include "ngx_http_smarty_secret.h"


char *
ngx_http_smarty_secret_read(ngx_conf_t *cf, ngx_str_t *path,
    const char *what, size_t max, ngx_str_t *secret)
{
    u_char           *buf;
    size_t            len;
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
                           "%s file \"%V\" cannot be opened", what, path);
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
                           "%s file \"%V\" is readable by everyone", what,
                           path);
    }

    buf = ngx_pnalloc(cf->temp_pool, max + 1);
    if (buf == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = *path;
    file.log = cf->log;

    n = ngx_read_file(&file, buf, max + 1, 0);
    ngx_close_file(fd);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    secret->data = buf;
    secret->len = max + 1;

    if ((size_t) n > max) {
        ngx_http_smarty_secret_wipe(secret);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s file \"%V\" is larger than %uz bytes", what,
                           path, max);
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
                           "%s file \"%V\" is empty", what, path);
        return NGX_CONF_ERROR;
    }

    secret->len = len;

    return NGX_CONF_OK;
}


void
ngx_http_smarty_secret_wipe(ngx_str_t *secret)
{
    ngx_explicit_memzero(secret->data, secret->len);
}
