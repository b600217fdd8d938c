/*
 * smarty-gateway: one Redis server as a worker sees it: its connection
 * (handshake, backoff), its commands (a timer each, NOSCRIPT), its circuit
 * breaker (docs/redis.md).  The command API (ngx_http_smarty_redis.h) sits
 * above; callers use that one.
 */

#ifndef NGX_HTTP_SMARTY_REDIS_NODE_H
#define NGX_HTTP_SMARTY_REDIS_NODE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>


typedef enum {
    NGX_HTTP_SMARTY_REDIS_OK = 0,         /* a reply, maybe an error reply */
    NGX_HTTP_SMARTY_REDIS_TIMEOUT,        /* no reply within the timeout */
    NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED,  /* no connection, or it was lost
                                             before the reply came */
    NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN,   /* refused by the open breaker */
    NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED, /* no "smarty_redis" */
    NGX_HTTP_SMARTY_REDIS_ERROR           /* out of memory, hiredis refused
                                             the command */
} ngx_http_smarty_redis_status_e;


typedef void (*ngx_http_smarty_redis_handler_pt)(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);


/* what every node of a configuration shares */

typedef struct {
    ngx_str_t                   password;     /* never logged */
    ngx_int_t                   db;
    ngx_msec_t                  timeout;
    ngx_msec_t                  connect_timeout;
    ngx_int_t                   breaker_failures;  /* 0: no breaker */
    ngx_msec_t                  breaker_cooldown;
} ngx_http_smarty_redis_settings_t;


typedef struct ngx_http_smarty_redis_node_s  ngx_http_smarty_redis_node_t;
typedef struct ngx_http_smarty_redis_cmd_s   ngx_http_smarty_redis_cmd_t;


/*
 * A command: its outcome is decided once, by the first of its reply, its
 * timer, the loss of the connection; its handler is called then (or, for
 * a command refused at once, from a posted event).  It is freed when
 * hiredis no longer holds it, its timer is gone and its caller was
 * answered or cancelled it.
 */

struct ngx_http_smarty_redis_cmd_s {
    ngx_event_t                         ev;      /* timer, posted answer */
    ngx_http_smarty_redis_handler_pt    handler;
    void                               *data;
    ngx_http_smarty_redis_status_e      status;  /* for the posted answer */
    ngx_http_smarty_redis_node_t       *node;

    int                                 argc;
    const char                        **argv;
    size_t                             *argvlen;

    /* a script's EVALSHA: the EVAL sent once after NOSCRIPT */
    const char                         *script_name;
    const char                         *script_text;
    size_t                              script_len;
    ngx_uint_t                          script;

    unsigned                            user:1;      /* handler owed */
    unsigned                            in_redis:1;  /* hiredis holds it */
    unsigned                            decided:1;
    unsigned                            probe:1;
    unsigned                            retried:1;
    unsigned                            calling:1;   /* in the handler */
};


/*
 * A node of host:port (port 0: a unix socket at host; host numeric, never
 * resolved here), addr naming it in logs; it connects at once, and again
 * after a backoff whenever the connection is lost.
 */
ngx_http_smarty_redis_node_t *ngx_http_smarty_redis_node_create(
    ngx_http_smarty_redis_settings_t *settings, ngx_str_t *addr,
    ngx_str_t *host, ngx_int_t port, ngx_log_t *log);

/* sends cmd (its argv in its own memory), or answers it later, refused */
void ngx_http_smarty_redis_node_send(ngx_http_smarty_redis_node_t *node,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout);

/* the caller is gone: the handler will never be called */
void ngx_http_smarty_redis_node_cancel(ngx_http_smarty_redis_cmd_t *cmd);

/*
 * What a command sent now would get at once: OK when it would be sent or
 * queued behind the handshake, else NOT_CONNECTED or BREAKER_OPEN.
 */
ngx_http_smarty_redis_status_e ngx_http_smarty_redis_node_state(
    ngx_http_smarty_redis_node_t *node);

/* connected, handshake done, and the breaker would let a command by */
ngx_int_t ngx_http_smarty_redis_node_ready(ngx_http_smarty_redis_node_t *node);

/* the worker exits: no handler is called any more */
void ngx_http_smarty_redis_node_close(ngx_http_smarty_redis_node_t *node);

#endif /* NGX_HTTP_SMARTY_REDIS_NODE_H */
