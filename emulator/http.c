/*
 * smarty-emulator: answering a request, for every endpoint: JSON, the
 * API's envelope, an error; sleeping while the client stays (latency,
 * hang); a reset instead of an answer.
 */

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "emu.h"


enum MHD_Result
emu_send_json(struct MHD_Connection *c, emu_req_t *r, unsigned status,
    json_t *json)
{
    char                 *text;
    struct MHD_Response  *resp;
    enum MHD_Result       rc;

    text = json ? emu_json_dumps(json) : NULL;
    json_decref(json);

    if (text == NULL) {
        text = strdup("{\"status\":500,\"body\":{\"error\":\"the emulator "
                      "failed to make its answer\",\"code\":"
                      "\"internal_error\"},\"htmlencoded\":false,"
                      "\"last_modified\":0}");
        status = 500;
        if (text == NULL) {
            return MHD_NO;
        }
    }

    resp = MHD_create_response_from_buffer(strlen(text), text,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");

    rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);

    emu_log("%s %s %u %ld ms", r->method, r->path, status,
            (long) (emu_now_ms() - r->start_ms));

    return rc;
}


enum MHD_Result
emu_send_envelope(struct MHD_Connection *c, emu_req_t *r, unsigned status,
    json_t *body)
{
    json_t  *env;

    env = json_pack("{s:i,s:o,s:b,s:i}", "status", (json_int_t) status,
                    "body", body ? body : json_object(),
                    "htmlencoded", 0, "last_modified", 0);

    return emu_send_json(c, r, status, env);
}


enum MHD_Result
emu_send_error(struct MHD_Connection *c, emu_req_t *r, const emu_err_t *err)
{
    return emu_send_envelope(c, r, err->status,
                             json_pack("{s:s,s:s}", "error", err->error,
                                       "code", err->code));
}


static int
emu_conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo  *ci;

    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

    return ci ? (int) ci->connect_fd : -1;
}


/*
 * Sleeps ms milliseconds; returns -1 early when the client closes (or
 * half-closes) the connection or the emulator is stopping, else 0.
 */
int
emu_wait(struct MHD_Connection *c, long ms)
{
    int64_t          deadline, left;
    int              fd;
    struct pollfd    pfd;
    struct timespec  ts;

    if (ms <= 0) {
        return emu_stopping ? -1 : 0;
    }

    fd = emu_conn_fd(c);
    deadline = emu_now_ms() + ms;

    for ( ;; ) {
        if (emu_stopping) {
            return -1;
        }

        left = deadline - emu_now_ms();
        if (left <= 0) {
            return 0;
        }

        if (left > 200) {
            left = 200;
        }

        if (fd >= 0) {
            pfd.fd = fd;
            pfd.events = POLLRDHUP;
            pfd.revents = 0;

            if (poll(&pfd, 1, (int) left) > 0 && pfd.revents) {
                return -1;
            }

        } else {
            ts.tv_sec = left / 1000;
            ts.tv_nsec = (left % 1000) * 1000000;
            nanosleep(&ts, NULL);
        }
    }
}


/* makes the close that follows an MHD_NO a reset (RST) */
void
emu_reset_connection(struct MHD_Connection *c)
{
    int            fd;
    struct linger  l;

    fd = emu_conn_fd(c);
    if (fd < 0) {
        return;
    }

    l.l_onoff = 1;
    l.l_linger = 0;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}
