/*
 * smarty-gateway: the operator's view of the quotas: the module
 * ngx_http_smarty_quota_view_module and its directive smarty_quota_view
 * (docs/quota.md, "The operator's view").
 *
 * GET <location>?space=1[&client=NAME]: the limits of the space and of
 * its clients (those of the clients file that may use the space), with
 * what is spent, read from the Redis store (nothing is spent by looking),
 * or from the local store while Redis is away.  An operator's key only:
 * it names every client and its usage.
 */

#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_reply.h"

#include <jansson.h>


typedef struct {
    ngx_flag_t                       enable;
} ngx_http_smarty_quota_view_conf_t;


typedef struct {
    ngx_http_request_t              *request;
    ngx_str_t                        space;
    ngx_http_smarty_quota_call_t     call;
    ngx_str_t                      **clients;    /* NULL: the space's */
} ngx_http_smarty_quota_view_t;


static ngx_int_t ngx_http_smarty_quota_view_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_quota_view_limits(ngx_http_request_t *r,
    ngx_http_smarty_quota_view_t *v, int slot, ngx_str_t *name);
static void ngx_http_smarty_quota_view_done(
    ngx_http_smarty_quota_call_t *call, ngx_int_t rc);
static ngx_int_t ngx_http_smarty_quota_view_send(ngx_http_request_t *r,
    ngx_http_smarty_quota_view_t *v, ngx_uint_t local);
static void ngx_http_smarty_quota_view_cleanup(void *data);
static ngx_int_t ngx_http_smarty_quota_view_error(ngx_http_request_t *r,
    smarty_err_e e, const char *msg);
static char *ngx_http_smarty_quota_view(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_smarty_quota_view_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_quota_view_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_command_t  ngx_http_smarty_quota_view_commands[] = {

    { ngx_string("smarty_quota_view"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_quota_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* the former name, which $smarty_quota_status shadowed: still read,
     * with a warning */
    { ngx_string("smarty_quota_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_quota_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_quota_view_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_quota_view_create_conf, /* create location conf */
    ngx_http_smarty_quota_view_merge_conf  /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_quota_view_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_quota_view_module_ctx, /* module context */
    ngx_http_smarty_quota_view_commands,   /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_smarty_quota_view_handler(ngx_http_request_t *r)
{
    int                               slot;
    ngx_int_t                         rc;
    ngx_str_t                         name;
    smarty_err_e                      e;
    ngx_http_cleanup_t               *cln;
    ngx_http_smarty_quota_view_t     *v;
    const ngx_http_smarty_client_t   *op;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_smarty_quota_view_error(r,
                                         SMARTY_E_METHOD_NOT_ALLOWED, NULL);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    e = ngx_http_smarty_auth_identify(r, &op);

    if (e == SMARTY_OK && !op->operator) {
        e = SMARTY_E_OPERATOR_FORBIDDEN;
    }

    if (e != SMARTY_OK) {
        return ngx_http_smarty_quota_view_error(r, e, NULL);
    }

    v = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_quota_view_t));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->request = r;

    if (ngx_http_arg(r, (u_char *) "space", 5, &v->space) != NGX_OK) {
        ngx_str_set(&v->space, "");
    }

    slot = smarty_quota_slot((const char *) v->space.data, v->space.len);

    if (slot < 0 || slot == SMARTY_QUOTA_ANY) {
        return ngx_http_smarty_quota_view_error(r, SMARTY_E_BAD_SPACE,
                                                "\"space\" must be \"0\" to "
                                                "\"9\" or \"detectors\"");
    }

    if (ngx_http_arg(r, (u_char *) "client", 6, &name) != NGX_OK) {
        name.len = 0;
    }

    if (ngx_http_smarty_quota_view_limits(r, v, slot, &name) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->call.n == 0
        || ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK)
    {
        return ngx_http_smarty_quota_view_send(r, v, v->call.n > 0);
    }

    /* every limit's remaining and reset, spending nothing */

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->call.done = ngx_http_smarty_quota_view_done;
    v->call.data = v;

    if (ngx_http_smarty_quota_redis_store.peek(&v->call) != NGX_AGAIN) {
        return ngx_http_smarty_quota_view_send(r, v, 1);
    }

    cln->handler = ngx_http_smarty_quota_view_cleanup;
    cln->data = v;

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


/* the space's limits, then each client's that may use it */

static ngx_int_t
ngx_http_smarty_quota_view_limits(ngx_http_request_t *r,
    ngx_http_smarty_quota_view_t *v, int slot, ngx_str_t *name)
{
    size_t                          i, n;
    ngx_int_t                       space;
    ngx_str_t                      *cname;
    ngx_uint_t                      j, nclients;
    const smarty_quota_set_t       *set;
    ngx_http_smarty_client_t       *cl;
    ngx_http_smarty_clients_t      *clients;
    ngx_http_smarty_quota_conf_t   *qcf;

    qcf = ngx_http_smarty_quota_conf(r);
    clients = ngx_http_smarty_auth_clients(r);
    cl = clients ? clients->clients.elts : NULL;
    nclients = clients ? clients->clients.nelts : 0;
    space = (slot == SMARTY_QUOTA_DETECTORS) ? -1 : slot;

    n = SMARTY_QUOTA_MAX_LIMITS * (1 + nclients);

    if (ngx_http_smarty_quota_call_init(&v->call, r->pool, n,
                                        r->connection->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    v->clients = ngx_pcalloc(r->pool, n * sizeof(ngx_str_t *));
    if (v->clients == NULL) {
        return NGX_ERROR;
    }

    v->call.zone = ngx_http_smarty_quota_zone(r);
    v->call.share_num = qcf->share_num;
    v->call.share_den = qcf->share_den;

    for (j = 0, n = 0; j <= nclients; j++) {

        if (j == 0) {
            set = smarty_quota_sets_get(qcf->space, slot);
            cname = NULL;

        } else {
            cname = &cl[j - 1].name;

            if ((slot < SMARTY_QUOTA_DETECTORS
                 && !(cl[j - 1].spaces & (1 << slot)))
                || (name->len
                    && (name->len != cname->len
                        || ngx_strncmp(name->data, cname->data, name->len)
                           != 0)))
            {
                continue;
            }

            set = smarty_quota_sets_get(cl[j - 1].quota, slot);
            if (set == NULL) {
                set = smarty_quota_sets_get(qcf->client, slot);
            }
        }

        for (i = 0; qcf->enable && set && i < set->n; i++, n++) {
            v->clients[n] = cname;

            if (ngx_http_smarty_quota_item(&v->call, n, &qcf->prefix, space,
                                           cname, &set->limit[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    v->call.n = n;

    return NGX_OK;
}


static void
ngx_http_smarty_quota_view_done(ngx_http_smarty_quota_call_t *call,
    ngx_int_t rc)
{
    ngx_http_smarty_quota_view_t  *v = call->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = v->request;
    c = r->connection;

    ngx_http_finalize_request(r, ngx_http_smarty_quota_view_send(r, v,
                                                             rc == NGX_ERROR));
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_smarty_quota_view_send(ngx_http_request_t *r,
    ngx_http_smarty_quota_view_t *v, ngx_uint_t local)
{
    char                   name[64], policy[64];
    size_t                 i;
    json_t                *o, *list, *e;
    uint64_t               cap;
    ngx_buf_t             *b;
    ngx_chain_t            out;
    smarty_quota_item_t   *it;

    if (local && v->call.n) {
        (void) ngx_http_smarty_quota_local_store.peek(&v->call);
    }

    list = json_array();
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < v->call.n; i++) {
        it = &v->call.items[i];
        cap = it->limit->window == 's' ? it->limit->burst : it->limit->count;

        (void) ngx_snprintf((u_char *) name, sizeof(name) - 1, "%s_%s_%s%Z",
                            v->clients[i] ? "client" : "space",
                            smarty_quota_unit_name(it->limit),
                            smarty_quota_window_name(it->limit));
        (void) smarty_quota_limit_text(it->limit, policy, sizeof(policy));

        e = json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
                      "scope", v->clients[i] ? "client" : "space",
                      "client", v->clients[i]
                                ? json_stringn((const char *)
                                               v->clients[i]->data,
                                               v->clients[i]->len)
                                : json_null(),
                      "code", name,
                      "policy", policy,
                      "limit", (json_int_t) it->limit->count,
                      "capacity", (json_int_t) cap,
                      "remaining", (json_int_t) it->remaining,
                      "used", (json_int_t) (it->remaining < cap
                                            ? cap - it->remaining : 0),
                      "reset_ms", (json_int_t) it->reset_ms);

        if (e == NULL || json_array_append_new(list, e) != 0) {
            json_decref(list);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    o = json_pack("{s:s%, s:s, s:o}",
                  "space", v->space.data, v->space.len,
                  "source", local ? "local" : "redis",
                  "limits", list);
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_smarty_reply_json_buf(r->pool, o);
    json_decref(o);

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_smarty_reply_chain(r, NGX_HTTP_OK, &out,
                                       b->last - b->pos);
}


static void
ngx_http_smarty_quota_view_cleanup(void *data)
{
    ngx_http_smarty_quota_view_t  *v = data;

    ngx_http_smarty_quota_redis_store.cancel(&v->call);
}


static ngx_int_t
ngx_http_smarty_quota_view_error(ngx_http_request_t *r, smarty_err_e e,
    const char *msg)
{
    ngx_http_smarty_error_t  err;

    ngx_memzero(&err, sizeof(ngx_http_smarty_error_t));
    err.err = e;
    err.msg = msg;

    return ngx_http_smarty_reply_error(r, &err);
}


/* --- configuration -------------------------------------------------------- */


static char *
ngx_http_smarty_quota_view(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_quota_view_conf_t  *vcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (vcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (cmd->name.len == sizeof("smarty_quota_status") - 1) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"smarty_quota_status\" is now called "
                           "\"smarty_quota_view\"");
    }

    vcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_smarty_quota_view_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_quota_view_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_quota_view_conf_t  *vcf;

    vcf = ngx_palloc(cf->pool, sizeof(ngx_http_smarty_quota_view_conf_t));
    if (vcf == NULL) {
        return NULL;
    }

    vcf->enable = NGX_CONF_UNSET;

    return vcf;
}


static char *
ngx_http_smarty_quota_view_merge_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_quota_view_conf_t  *conf = child;

    /* not inherited: the location's handler is set where it is named */

    if (conf->enable == 1 && ngx_http_smarty_auth_conf_clients(cf) == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_quota_view\" needs "
                           "\"smarty_clients_file\": only an operator's key "
                           "may read it");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
