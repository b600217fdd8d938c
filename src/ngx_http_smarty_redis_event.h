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

    unsigned            writing:1;  /* in hiredis's write handler */
} ngx_http_smarty_redis_event_t;


/*
 * Puts ac on nginx's event loop: its socket in an ngx_connection_t whose
 * events are level-triggered (hiredis reads one buffer per call: with an
 * edge-triggered epoll the bytes left in the socket would raise no event),
 * hiredis's add/del hooks mapped to nginx's, the cleanup to ev->gone.  A
 * hook that cannot register an event frees ac from a posted event.
 *
 * Commands are written at the end of the turn of the loop that issued
 * them (the write event posted, all of them in one write), not a turn
 * later from epoll: no epoll_ctl per command, and a busy worker does not
 * hold a command back for a whole turn.  Only a write the socket cannot
 * take at once, and the connection's establishment, wait for epoll.
 * NGX_ERROR (no free connection): the caller frees ac.
 */
ngx_int_t ngx_http_smarty_redis_event_attach(ngx_http_smarty_redis_event_t *ev,
    redisAsyncContext *ac);

/*
 * Reads what the socket holds for hiredis (its replies' handlers run):
 * once, and again while a reply is begun but not whole, at most
 * NGX_HTTP_SMARTY_REDIS_EVENT_READS reads.  The read event's handler; a
 * command's timer calls it too, so that a reply that came while the
 * worker was busy is taken before the command is said to have timed out.
 * ev->ac may be NULL when it returns (the context went).
 */
void ngx_http_smarty_redis_event_poll(ngx_http_smarty_redis_event_t *ev);

#define NGX_HTTP_SMARTY_REDIS_EVENT_READS  64    /* 16 KB each */

#endif /* NGX_HTTP_SMARTY_REDIS_EVENT_H */
