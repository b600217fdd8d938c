/*
 * smarty-gateway: hiredis's async API on nginx's event loop, the adapter
 * alone (see ngx_http_smarty_redis_event.h, docs/redis.md).
 */

#include "ngx_http_smarty_redis_event.h"


static void ngx_http_smarty_redis_event_read(ngx_event_t *rev);
static void ngx_http_smarty_redis_event_write(ngx_event_t *wev);
static void ngx_http_smarty_redis_event_kill(ngx_event_t *ev);
static void ngx_http_smarty_redis_event_add_read(void *privdata);
static void ngx_http_smarty_redis_event_del_read(void *privdata);
static void ngx_http_smarty_redis_event_add_write(void *privdata);
static void ngx_http_smarty_redis_event_del_write(void *privdata);
static void ngx_http_smarty_redis_event_cleanup(void *privdata);


ngx_int_t
ngx_http_smarty_redis_event_attach(ngx_http_smarty_redis_event_t *ev,
    redisAsyncContext *ac)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, ev->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ev;
    c->log = ev->log;
    c->read->log = ev->log;
    c->write->log = ev->log;
    c->read->handler = ngx_http_smarty_redis_event_read;
    c->write->handler = ngx_http_smarty_redis_event_write;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    ev->ac = ac;
    ev->c = c;
    ev->writing = 0;

    ev->kill.handler = ngx_http_smarty_redis_event_kill;
    ev->kill.data = ev;
    ev->kill.log = ev->log;

    ac->ev.data = ev;
    ac->ev.addRead = ngx_http_smarty_redis_event_add_read;
    ac->ev.delRead = ngx_http_smarty_redis_event_del_read;
    ac->ev.addWrite = ngx_http_smarty_redis_event_add_write;
    ac->ev.delWrite = ngx_http_smarty_redis_event_del_write;
    ac->ev.cleanup = ngx_http_smarty_redis_event_cleanup;

    return NGX_OK;
}


static void
ngx_http_smarty_redis_event_read(ngx_event_t *rev)
{
    ngx_connection_t               *c;
    ngx_http_smarty_redis_event_t  *ev;

    c = rev->data;
    ev = c->data;

    if (ev->ac == NULL || ev->c != c) {
        return;
    }

    ngx_http_smarty_redis_event_poll(ev);

    /* the context may be gone now */
}


/*
 * hiredis reads one buffer (16 KB) per call; level-triggered, more would
 * come as another event, one turn of a busy worker's loop later.  As long
 * as a reply is begun but not whole, its rest is read now (it is in the
 * socket, or on its way): a 60 KB reply takes one turn, not four.  A read
 * that brings nothing (EAGAIN) ends it.
 */

void
ngx_http_smarty_redis_event_poll(ngx_http_smarty_redis_event_t *ev)
{
    size_t        pos, len;
    ngx_uint_t    i;
    redisReader  *rd;

    for (i = 0; i < NGX_HTTP_SMARTY_REDIS_EVENT_READS && ev->ac != NULL;
         i++)
    {
        rd = ev->ac->c.reader;
        pos = rd->pos;
        len = rd->len;

        redisAsyncHandleRead(ev->ac);

        if (ev->ac == NULL) {
            /* gone (EOF, an error): the cleanup hook ran */
            return;
        }

        rd = ev->ac->c.reader;

        if (rd->ridx < 0 && rd->pos >= rd->len) {
            /* every reply read is whole */
            return;
        }

        if (rd->pos == pos && rd->len == len) {
            /* nothing came */
            return;
        }
    }
}


static void
ngx_http_smarty_redis_event_write(ngx_event_t *wev)
{
    ngx_connection_t               *c;
    ngx_http_smarty_redis_event_t  *ev;

    c = wev->data;
    ev = c->data;

    if (ev->ac == NULL || ev->c != c) {
        return;
    }

    /* a write not done now asks for the write event (add_write) */
    ev->writing = 1;
    redisAsyncHandleWrite(ev->ac);

    if (ev->ac != NULL) {
        ev->writing = 0;
    }
}


static void
ngx_http_smarty_redis_event_kill(ngx_event_t *e)
{
    ngx_http_smarty_redis_event_t  *ev = e->data;

    if (ev->ac != NULL) {
        /* the cleanup hook runs from inside */
        redisAsyncFree(ev->ac);
    }
}


static void
ngx_http_smarty_redis_event_add_read(void *privdata)
{
    ngx_http_smarty_redis_event_t  *ev = privdata;

    if (ev->c == NULL || ev->c->read->active) {
        return;
    }

    if (ngx_add_event(ev->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
        != NGX_OK)
    {
        ngx_post_event(&ev->kill, &ngx_posted_events);
    }
}


static void
ngx_http_smarty_redis_event_del_read(void *privdata)
{
    ngx_http_smarty_redis_event_t  *ev = privdata;

    if (ev->c == NULL || !ev->c->read->active) {
        return;
    }

    if (ngx_del_event(ev->c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_post_event(&ev->kill, &ngx_posted_events);
    }
}


static void
ngx_http_smarty_redis_event_add_write(void *privdata)
{
    ngx_http_smarty_redis_event_t  *ev = privdata;

    if (ev->c == NULL || ev->c->write->active) {
        return;
    }

    if (ev->ac != NULL && (ev->ac->c.flags & REDIS_CONNECTED)
        && !ev->writing)
    {
        /* a command: written at the end of this turn of the loop */
        if (!ev->c->write->posted) {
            ngx_post_event(ev->c->write, &ngx_posted_events);
        }

        return;
    }

    if (ngx_add_event(ev->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
        != NGX_OK)
    {
        ngx_post_event(&ev->kill, &ngx_posted_events);
    }
}


static void
ngx_http_smarty_redis_event_del_write(void *privdata)
{
    ngx_http_smarty_redis_event_t  *ev = privdata;

    if (ev->c != NULL && ev->c->write->posted) {
        ngx_delete_posted_event(ev->c->write);
    }

    if (ev->c == NULL || !ev->c->write->active) {
        return;
    }

    if (ngx_del_event(ev->c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
        ngx_post_event(&ev->kill, &ngx_posted_events);
    }
}


/*
 * hiredis frees the context: the pending callbacks have had their NULL
 * reply; the socket is closed by hiredis right after this returns, so the
 * connection is given back with its events deleted, not its fd closed.
 */

static void
ngx_http_smarty_redis_event_cleanup(void *privdata)
{
    ngx_http_smarty_redis_event_t  *ev = privdata;

    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    c = ev->c;
    ac = ev->ac;

    if (c != NULL) {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        c->read->closed = 1;
        c->write->closed = 1;

        ngx_free_connection(c);

        /* hiredis closes it */
        c->fd = (ngx_socket_t) -1;
    }

    if (ev->kill.posted) {
        ngx_delete_posted_event(&ev->kill);
    }

    ev->ac = NULL;
    ev->c = NULL;

    if (ev->gone) {
        ev->gone(ev->data, ac);
    }
}
