/*
 * smarty-gateway: what every quota store is asked: a call about n limits,
 * each limit's state named as in Redis (see ngx_http_smarty_quota_store.h,
 * docs/quota.md).
 */

#include "ngx_http_smarty_quota_store.h"


#define SMARTY_QUOTA_KEY_LEN  192
#define SMARTY_QUOTA_ARG_LEN  32


ngx_int_t
ngx_http_smarty_quota_call_init(ngx_http_smarty_quota_call_t *call,
    ngx_pool_t *pool, size_t n, ngx_log_t *log)
{
    u_char  *p;

    ngx_memzero(call, sizeof(ngx_http_smarty_quota_call_t));

    call->pool = pool;
    call->log = log;

    if (n == 0) {
        return NGX_OK;
    }

    p = ngx_pcalloc(pool, n * (sizeof(smarty_quota_item_t)
                               + sizeof(smarty_quota_state_t)
                               + sizeof(smarty_quota_limit_t *)
                               + sizeof(smarty_quota_limit_t)
                               + 2 * sizeof(ngx_str_t)));
    if (p == NULL) {
        return NGX_ERROR;
    }

    call->items = (smarty_quota_item_t *) p;
    call->states = (smarty_quota_state_t *) (call->items + n);
    call->limits = (const smarty_quota_limit_t **) (call->states + n);
    call->scaled = (smarty_quota_limit_t *) (call->limits + n);
    call->keys = (ngx_str_t *) (call->scaled + n);
    call->args = call->keys + n;

    return NGX_OK;
}


ngx_int_t
ngx_http_smarty_quota_item(ngx_http_smarty_quota_call_t *call, size_t i,
    ngx_str_t *prefix, ngx_int_t space, const ngx_str_t *client,
    const smarty_quota_limit_t *l)
{
    ngx_str_t  *key, *arg;

    call->limits[i] = l;
    call->items[i].limit = l;
    call->items[i].state = &call->states[i];

    key = &call->keys[i];
    arg = &call->args[i];

    key->data = ngx_pnalloc(call->pool, SMARTY_QUOTA_KEY_LEN
                                        + SMARTY_QUOTA_ARG_LEN);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = smarty_quota_key((const char *) prefix->data, prefix->len,
                                (int) space,
                                client ? (const char *) client->data : NULL,
                                client ? client->len : 0, l,
                                (char *) key->data, SMARTY_QUOTA_KEY_LEN);

    if (key->len == 0 || key->len >= SMARTY_QUOTA_KEY_LEN) {
        return NGX_ERROR;
    }

    arg->data = key->data + SMARTY_QUOTA_KEY_LEN;
    arg->len = smarty_quota_limit_arg(l, (char *) arg->data,
                                      SMARTY_QUOTA_ARG_LEN);

    return arg->len < SMARTY_QUOTA_ARG_LEN ? NGX_OK : NGX_ERROR;
}


int64_t
ngx_http_smarty_quota_clock(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}
