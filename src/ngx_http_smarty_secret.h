/*
 * smarty-gateway: secrets read from files with the configuration (the
 * upstream token, the Redis password): never inline in nginx.conf, never
 * logged.
 */

#ifndef NGX_HTTP_SMARTY_SECRET_H
#define NGX_HTTP_SMARTY_SECRET_H

#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Reads the file at path (made absolute in place) into a buffer of
 * cf->temp_pool, trailing white space and newlines removed; "what" names
 * the file in messages ("upstream token", "redis password").  Warns when
 * the file is readable by everyone; fails, saying why, when it cannot be
 * read, is larger than max bytes or is empty.  The caller checks the
 * characters, copies what it keeps and wipes the buffer with
 * ngx_http_smarty_secret_wipe().
 */
char *ngx_http_smarty_secret_read(ngx_conf_t *cf, ngx_str_t *path,
    const char *what, size_t max, ngx_str_t *secret);

void ngx_http_smarty_secret_wipe(ngx_str_t *secret);

#endif /* NGX_HTTP_SMARTY_SECRET_H */
