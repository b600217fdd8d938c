/*
 * smarty-emulator: the HTTP server.
 *
 * libmicrohttpd with a thread per connection, so that a request that
 * sleeps (latency, hang) blocks nobody else; HTTP/1.1 keep-alive is MHD's.
 * A request's context is made by the URI callback (which sees the raw
 * request target, query included) and freed by the completion callback.
 * The body is hashed as it arrives and kept in memory up to a limit; once
 * the whole body is in, the request goes to its endpoint (api.c, tokens.c,
 * control.c), which answers with http.c.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "emu.h"


enum {
    EMU_R_OTHER = 0,
    EMU_R_API,
    EMU_R_TOKEN,
    EMU_R_CONTROL
};


#define EMU_SMALL_BODY_MAX  (1024 * 1024)


static void *
emu_uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
    emu_req_t  *r;

    r = calloc(1, sizeof(emu_req_t));
    if (r == NULL) {
        return NULL;
    }

    r->uri = strdup(uri ? uri : "");
    r->start_ms = emu_now_ms();

    return r;
}


static void
emu_req_free(emu_req_t *r)
{
    if (r == NULL) {
        return;
    }

    free(r->uri);
    free(r->path);
    free(r->body);

    if (r->sha) {
        EVP_MD_CTX_free(r->sha);
    }

    free(r);
}


static void
emu_completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
    emu_req_free(*con_cls);
    *con_cls = NULL;
}


static int
emu_route(const char *path)
{
    if (strncmp(path, "/api/v1/", sizeof("/api/v1/") - 1) == 0) {
        return EMU_R_API;
    }

    if (strcmp(path, "/auth/oauth/v1/token") == 0) {
        return EMU_R_TOKEN;
    }

    if (strncmp(path, "/_emulator/", sizeof("/_emulator/") - 1) == 0) {
        return EMU_R_CONTROL;
    }

    return EMU_R_OTHER;
}


static void
emu_body_append(emu_req_t *r, const char *data, size_t n)
{
    unsigned char  *b;
    size_t          size;

    EVP_DigestUpdate(r->sha, data, n);
    r->body_len += n;

    if (r->body_overflow) {
        return;
    }

    if (r->body_stored + n > r->body_max) {
        r->body_overflow = 1;
        free(r->body);
        r->body = NULL;
        r->body_stored = 0;
        r->body_alloc = 0;
        return;
    }

    if (r->body_stored + n > r->body_alloc) {
        size = r->body_alloc ? r->body_alloc : 65536;
        while (size < r->body_stored + n) {
            size *= 2;
        }

        if (size > r->body_max) {
            size = r->body_max;
        }

        b = realloc(r->body, size);
        if (b == NULL) {
            r->body_overflow = 1;
            return;
        }

        r->body = b;
        r->body_alloc = size;
    }

    memcpy(r->body + r->body_stored, data, n);
    r->body_stored += n;
}


static enum MHD_Result
emu_access_cb(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    emu_req_t      *r;
    emu_err_t       err;
    unsigned char   md[EVP_MAX_MD_SIZE];
    unsigned int    mdlen;

    r = *con_cls;

    if (r == NULL) {
        r = emu_uri_cb(NULL, url, c);
        if (r == NULL) {
            return MHD_NO;
        }
        *con_cls = r;
    }

    if (!r->started) {
        r->started = 1;
        r->path = strdup(url);
        r->method = method;
        r->kind = emu_route(url);
        r->body_max = (r->kind == EMU_R_API) ? (size_t) emu_conf.max_body_bytes
                                              : EMU_SMALL_BODY_MAX;
        r->sha = EVP_MD_CTX_new();

        if (r->path == NULL || r->sha == NULL
            || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1)
        {
            return MHD_NO;
        }

        return MHD_YES;
    }

    if (*upload_data_size) {
        emu_body_append(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    mdlen = 0;
    EVP_DigestFinal_ex(r->sha, md, &mdlen);
    emu_hex(md, mdlen, r->body_sha256);

    switch (r->kind) {

    case EMU_R_API:
        return emu_api_handle(c, r);

    case EMU_R_TOKEN:
        return emu_tokens_handle(c, r);

    case EMU_R_CONTROL:
        return emu_control_handle(c, r);

    default:
        emu_err_set(&err, 404, "unknown_endpoint", "no such endpoint");
        return emu_send_error(c, r, &err);
    }
}


struct MHD_Daemon *
emu_server_start(void)
{
    struct MHD_Daemon           *d;
    struct sockaddr_in           sin;
    struct sockaddr_in6          sin6;
    struct sockaddr             *sa;
    unsigned int                 flags;
    const union MHD_DaemonInfo  *di;
    unsigned                     port;

    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
            | MHD_USE_AUTO;

    if (!emu_conf.quiet) {
        flags |= MHD_USE_ERROR_LOG;
    }

    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));

    if (strchr(emu_conf.listen, ':') != NULL) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t) emu_conf.port);
        if (inet_pton(AF_INET6, emu_conf.listen, &sin6.sin6_addr) != 1) {
            fprintf(stderr, "smarty-emulator: bad --listen address \"%s\"\n",
                    emu_conf.listen);
            return NULL;
        }
        sa = (struct sockaddr *) &sin6;
        flags |= MHD_USE_IPv6;

    } else {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t) emu_conf.port);
        if (inet_pton(AF_INET, emu_conf.listen, &sin.sin_addr) != 1) {
            fprintf(stderr, "smarty-emulator: bad --listen address \"%s\"\n",
                    emu_conf.listen);
            return NULL;
        }
        sa = (struct sockaddr *) &sin;
    }

    d = MHD_start_daemon(flags, (uint16_t) emu_conf.port, NULL, NULL,
                         emu_access_cb, NULL,
                         MHD_OPTION_SOCK_ADDR, sa,
                         MHD_OPTION_URI_LOG_CALLBACK, emu_uri_cb, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, emu_completed_cb, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 300,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t) (256 * 1024),
                         MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int) 1,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "smarty-emulator: cannot listen on %s:%ld\n",
                emu_conf.listen, emu_conf.port);
        return NULL;
    }

    di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    port = di ? di->port : (unsigned) emu_conf.port;

    if (sa == (struct sockaddr *) &sin6) {
        fprintf(stderr, "smarty-emulator listening on [%s]:%u\n",
                emu_conf.listen, port);

    } else {
        fprintf(stderr, "smarty-emulator listening on %s:%u\n",
                emu_conf.listen, port);
    }

    return d;
}
