/*
 * smarty-gateway: hiredis's async API on nginx's event loop, the adapter
 * alone (docs/redis.md, "How it works").
 */

#ifndef NGX_HTTP_SMARTY_REDIS_EVENT_H
#define NGX_HTTP_SMARTY_REDIS_EVENT_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/async.h>


typedef struct {
    redisAsyncContext  *ac;
    ngx_connection_t   *c;          /* wraps ac's socket */
    ngx_log_t          *log;
    ngx_event_t         kill;       /* posted: free ac outside of hiredis */

    /* hiredis frees ac (error, EOF, redisAsyncFree()): its callbacks had
     * their NULL replies, the socket is closed right after this returns */
    void              (*gone)(void *data, redisAsyncContext *ac);
    void               *data;
} ngx_http_smarty_redis_event_t;


/*
 * Puts ac on nginx's event loop: its socket in an ngx_connection_t whose
 * events are level-triggered (hiredis reads one buffer per call: with an
 * edge-triggered epoll the bytes left in the socket would raise no event),
 * hiredis's add/del hooks mapped to nginx's, the cleanup to ev->gone.  A
 * hook that cannot register an event frees ac from a posted event.
 * NGX_ERROR (no free connection): the caller frees ac.
 */
ngx_int_t ngx_http_smarty_redis_event_attach(ngx_http_smarty_redis_event_t *ev,
    redisAsyncContext *ac);

#endif /* NGX_HTTP_SMARTY_REDIS_EVENT_H */
