/*
 * smarty-gateway: the operator's view of the audit stream: the module
 * ngx_http_smarty_audit_view_module and its directive smarty_audit_view
 * (docs/audit.md, "The audit view").
 *
 * GET <location>?limit=&order=&after=&before=&from=&to=&client=&space=
 * &method=&image=&person=&status=: one XRANGE (or XREVRANGE) of the
 * stream, at most a scan's worth of entries, the records that pass the
 * filters (src/smarty_audit.c), and where the next page starts.  An
 * operator's key only.  Nothing else reads the stream; `smarty audit`
 * (the client) pages through this view.
 */

#include "ngx_http_smarty_audit.h"
#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_reply.h"
#include "smarty_audit.h"


#define NGX_HTTP_SMARTY_AUDIT_VIEW_LIMIT  100     /* default */
#define NGX_HTTP_SMARTY_AUDIT_VIEW_MAX    1000    /* records, entries */
#define NGX_HTTP_SMARTY_AUDIT_VIEW_ID     48      /* "(" + a stream id */


typedef struct {
    ngx_flag_t                       enable;
} ngx_http_smarty_audit_view_conf_t;


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_smarty_redis_cmd_t     *cmd;
    smarty_audit_filter_t            filter;
    ngx_uint_t                       limit;
    ngx_uint_t                       scan;
} ngx_http_smarty_audit_view_t;


static ngx_int_t ngx_http_smarty_audit_view_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_audit_view_args(ngx_http_request_t *r,
    ngx_http_smarty_audit_view_t *v, ngx_str_t *range, const char **bad);
static ngx_int_t ngx_http_smarty_audit_view_bound(ngx_http_request_t *r,
    char *name, ngx_str_t *out, ngx_uint_t exclusive);
static ngx_int_t ngx_http_smarty_audit_view_text(ngx_http_request_t *r,
    char *name, ngx_str_t *out);
static void ngx_http_smarty_audit_view_done(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_audit_view_send(ngx_http_request_t *r,
    ngx_http_smarty_audit_view_t *v, redisReply *reply);
static void ngx_http_smarty_audit_view_cleanup(void *data);
static ngx_int_t ngx_http_smarty_audit_view_error(ngx_http_request_t *r,
    smarty_err_e e, const char *msg);
static char *ngx_http_smarty_audit_view(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_smarty_audit_view_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_audit_view_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_command_t  ngx_http_smarty_audit_view_commands[] = {

    { ngx_string("smarty_audit_view"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_audit_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_audit_view_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_audit_view_create_conf, /* create location conf */
    ngx_http_smarty_audit_view_merge_conf  /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_audit_view_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_audit_view_module_ctx, /* module context */
    ngx_http_smarty_audit_view_commands,   /* module directives */
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
ngx_http_smarty_audit_view_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        range[2], *key;
    ngx_uint_t                       desc;
    const char                      *bad, *argv[6];
    size_t                           argvlen[6];
    u_char                           count[NGX_INT_T_LEN];
    smarty_err_e                     e;
    ngx_http_cleanup_t              *cln;
    ngx_http_smarty_audit_view_t    *v;
    const ngx_http_smarty_client_t  *op;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_smarty_audit_view_error(r,
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
        return ngx_http_smarty_audit_view_error(r, e, NULL);
    }

    v = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_audit_view_t));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->request = r;

    bad = NULL;
    rc = ngx_http_smarty_audit_view_args(r, v, range, &bad);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_smarty_audit_view_error(r, SMARTY_E_BAD_FILTER, bad);
    }

    desc = (rc == NGX_OK);

    if (ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK) {
        return ngx_http_smarty_audit_view_error(r,
                                        SMARTY_E_AUDIT_UNAVAILABLE, NULL);
    }

    /* XREVRANGE key end start COUNT n, or XRANGE key start end COUNT n */

    key = ngx_http_smarty_audit_stream(r);

    argv[0] = desc ? "XREVRANGE" : "XRANGE";
    argvlen[0] = desc ? sizeof("XREVRANGE") - 1 : sizeof("XRANGE") - 1;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;
    argv[2] = (const char *) range[desc ? 1 : 0].data;
    argvlen[2] = range[desc ? 1 : 0].len;
    argv[3] = (const char *) range[desc ? 0 : 1].data;
    argvlen[3] = range[desc ? 0 : 1].len;
    argv[4] = "COUNT";
    argvlen[4] = sizeof("COUNT") - 1;
    argv[5] = (const char *) count;
    argvlen[5] = ngx_sprintf(count, "%ui", v->scan) - count;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->cmd = ngx_http_smarty_redis_command(0,
                                           ngx_http_smarty_audit_view_done,
                                           v, 6, argv, argvlen);
    if (v->cmd == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_smarty_audit_view_cleanup;
    cln->data = v;

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The query: NGX_OK (newest first), NGX_AGAIN (oldest first), NGX_DECLINED
 * with *bad naming the parameter, NGX_ERROR.  range: the stream's start
 * and end bounds.
 */

static ngx_int_t
ngx_http_smarty_audit_view_args(ngx_http_request_t *r,
    ngx_http_smarty_audit_view_t *v, ngx_str_t *range, const char **bad)
{
    ngx_int_t               n, asc;
    ngx_str_t               s;
    smarty_audit_filter_t  *f;

    f = &v->filter;
    f->space = -1;

    v->limit = NGX_HTTP_SMARTY_AUDIT_VIEW_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &s) == NGX_OK) {
        n = ngx_atoi(s.data, s.len);

        if (n < 1 || n > NGX_HTTP_SMARTY_AUDIT_VIEW_MAX) {
            *bad = "\"limit\" must be a number from 1 to 1000";
            return NGX_DECLINED;
        }

        v->limit = n;
    }

    asc = 0;

    if (ngx_http_arg(r, (u_char *) "order", 5, &s) == NGX_OK) {
        if (s.len == 3 && ngx_strncmp(s.data, "asc", 3) == 0) {
            asc = 1;

        } else if (s.len != 4 || ngx_strncmp(s.data, "desc", 4) != 0) {
            *bad = "\"order\" must be \"asc\" or \"desc\"";
            return NGX_DECLINED;
        }
    }

    /* the range: after/before (stream ids, excluded), from/to (ms) */

    n = ngx_http_smarty_audit_view_bound(r, "after", &range[0], 1);

    if (n == NGX_DECLINED) {
        n = ngx_http_smarty_audit_view_bound(r, "from", &range[0], 0);
    }

    if (n == NGX_DECLINED) {
        ngx_str_set(&range[0], "-");

    } else if (n != NGX_OK) {
        *bad = "\"after\", \"before\", \"from\" and \"to\" must be stream "
               "ids (\"1714564800123-0\") or milliseconds";
        return (n == NGX_ERROR) ? NGX_ERROR : NGX_DECLINED;
    }

    n = ngx_http_smarty_audit_view_bound(r, "before", &range[1], 1);

    if (n == NGX_DECLINED) {
        n = ngx_http_smarty_audit_view_bound(r, "to", &range[1], 0);
    }

    if (n == NGX_DECLINED) {
        ngx_str_set(&range[1], "+");

    } else if (n != NGX_OK) {
        *bad = "\"after\", \"before\", \"from\" and \"to\" must be stream "
               "ids (\"1714564800123-0\") or milliseconds";
        return (n == NGX_ERROR) ? NGX_ERROR : NGX_DECLINED;
    }

    /* the filters */

    n = ngx_http_smarty_audit_view_text(r, "client", &s);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (n == NGX_OK) {
        f->client = (const char *) s.data;
        f->client_len = s.len;
    }

    n = ngx_http_smarty_audit_view_text(r, "method", &s);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (n == NGX_OK) {
        if (smarty_method_find((const char *) s.data, s.len) == NULL) {
            *bad = "\"method\" must be an API method (\"persons/set\")";
            return NGX_DECLINED;
        }

        f->method = (const char *) s.data;
        f->method_len = s.len;
    }

    if (ngx_http_arg(r, (u_char *) "space", 5, &s) == NGX_OK) {
        if (s.len != 1 || s.data[0] < '0' || s.data[0] > '9') {
            *bad = "\"space\" must be \"0\" to \"9\"";
            return NGX_DECLINED;
        }

        f->space = s.data[0] - '0';
    }

    if (ngx_http_arg(r, (u_char *) "image", 5, &s) == NGX_OK) {
        if (smarty_audit_hex((const char *) s.data, s.len, f->sha256) != 0) {
            *bad = "\"image\" must be a SHA-256 in hex (64 digits)";
            return NGX_DECLINED;
        }

        f->has_sha256 = 1;
    }

    if (ngx_http_arg(r, (u_char *) "person", 6, &s) == NGX_OK) {
        n = ngx_atoi(s.data, s.len);

        if (n < 1) {
            *bad = "\"person\" must be a person id, 1 or more";
            return NGX_DECLINED;
        }

        f->person_id = n;
    }

    if (ngx_http_arg(r, (u_char *) "status", 6, &s) == NGX_OK) {
        if (smarty_audit_status_range((const char *) s.data, s.len,
                                      &f->status_min, &f->status_max)
            != 0)
        {
            *bad = "\"status\" must be an HTTP status (\"429\") or a class "
                   "(\"4xx\")";
            return NGX_DECLINED;
        }
    }

    /* without a filter, a page is the limit; with one, a scan's worth */

    v->scan = (f->client || f->method || f->space >= 0 || f->has_sha256
               || f->person_id || f->status_min)
              ? NGX_HTTP_SMARTY_AUDIT_VIEW_MAX : v->limit;

    return asc ? NGX_AGAIN : NGX_OK;
}


/*
 * A bound of the range: a stream id ("(" before it when exclusive), or
 * milliseconds.  NGX_OK, NGX_DECLINED (absent), NGX_ABORT (malformed),
 * NGX_ERROR.
 */

static ngx_int_t
ngx_http_smarty_audit_view_bound(ngx_http_request_t *r, char *name,
    ngx_str_t *out, ngx_uint_t exclusive)
{
    u_char      *p;
    ngx_str_t    s;
    ngx_uint_t   i, dash;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &s) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (s.len == 0 || s.len > NGX_HTTP_SMARTY_AUDIT_VIEW_ID - 1) {
        return NGX_ABORT;
    }

    dash = 0;

    for (i = 0; i < s.len; i++) {
        if (s.data[i] == '-' && exclusive && !dash && i > 0
            && i + 1 < s.len)
        {
            dash = 1;
            continue;
        }

        if (s.data[i] < '0' || s.data[i] > '9') {
            return NGX_ABORT;
        }
    }

    p = ngx_pnalloc(r->pool, s.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    if (exclusive) {
        *p++ = '(';
    }

    p = ngx_cpymem(p, s.data, s.len);
    out->len = p - out->data;

    return NGX_OK;
}


/* a text parameter, percent-decoded: NGX_OK, NGX_DECLINED, NGX_ERROR */

static ngx_int_t
ngx_http_smarty_audit_view_text(ngx_http_request_t *r, char *name,
    ngx_str_t *out)
{
    u_char     *dst, *src;
    ngx_str_t   s;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &s) != NGX_OK) {
        return NGX_DECLINED;
    }

    out->data = ngx_pnalloc(r->pool, s.len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    dst = out->data;
    src = s.data;

    ngx_unescape_uri(&dst, &src, s.len, NGX_UNESCAPE_URI);

    out->len = dst - out->data;

    return NGX_OK;
}


static void
ngx_http_smarty_audit_view_done(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_audit_view_t *v = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = v->request;
    c = r->connection;

    v->cmd = NULL;

    if (status != NGX_HTTP_SMARTY_REDIS_OK
        || reply->type != REDIS_REPLY_ARRAY)
    {
        if (status == NGX_HTTP_SMARTY_REDIS_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "smarty_audit_view: the stream cannot be read: "
                          "%*s", reply->type == REDIS_REPLY_ERROR
                                 ? ngx_min(reply->len, 200) : 0,
                          reply->str);
        }

        rc = ngx_http_smarty_audit_view_error(r,
                                        SMARTY_E_AUDIT_UNAVAILABLE, NULL);

    } else {
        rc = ngx_http_smarty_audit_view_send(r, v, reply);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * {"records":[{"stream_id":"...",<the record's members>},...],
 *  "next":"<id>"|null,"last":"<id>"|null,"scanned":N}: next is where the
 * following page starts (its "after" or "before"), null when the range
 * has no more; last, the last entry read (null: none).
 */

static ngx_int_t
ngx_http_smarty_audit_view_send(ngx_http_request_t *r,
    ngx_http_smarty_audit_view_t *v, redisReply *reply)
{
    size_t       size, i, j, matched;
    ngx_buf_t   *b;
    redisReply  *e, *id, *fields, *rec, *last;

    /* the most the answer can take */

    size = sizeof("{\"records\":[],\"next\":\"\",\"last\":\"\","
                  "\"scanned\":}")
           + 2 * NGX_HTTP_SMARTY_AUDIT_VIEW_ID + NGX_INT_T_LEN + 1;

    for (i = 0; i < reply->elements; i++) {
        size += sizeof("{\"stream_id\":\"\",},")
                + NGX_HTTP_SMARTY_AUDIT_VIEW_ID;

        e = reply->element[i];

        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2
            && e->element[1]->type == REDIS_REPLY_ARRAY)
        {
            fields = e->element[1];

            for (j = 0; j < fields->elements; j++) {
                size += fields->element[j]->len;
            }
        }
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"records\":[", 12);

    matched = 0;
    last = NULL;

    for (i = 0; i < reply->elements && matched < v->limit; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[0]->len >= NGX_HTTP_SMARTY_AUDIT_VIEW_ID
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            continue;
        }

        id = e->element[0];
        fields = e->element[1];
        last = id;
        rec = NULL;

        for (j = 0; j + 1 < fields->elements; j += 2) {
            if (fields->element[j]->type == REDIS_REPLY_STRING
                && fields->element[j]->len == 1
                && fields->element[j]->str[0] == 'r'
                && fields->element[j + 1]->type == REDIS_REPLY_STRING)
            {
                rec = fields->element[j + 1];
                break;
            }
        }

        /* a record is an object of ours: its "{" makes room for the id */

        if (rec == NULL || rec->len < 2 || rec->str[0] != '{'
            || smarty_audit_match(rec->str, rec->len, &v->filter) != 1)
        {
            continue;
        }

        b->last = ngx_sprintf(b->last, "%s{\"stream_id\":\"%*s\",",
                              matched ? "," : "", id->len, id->str);
        b->last = ngx_cpymem(b->last, rec->str + 1, rec->len - 1);
        matched++;
    }

    b->last = ngx_cpymem(b->last, "],\"next\":", 9);

    /* more may follow: the limit was reached, or the scan was full */

    if (last != NULL && (matched == v->limit || reply->elements == v->scan))
    {
        b->last = ngx_sprintf(b->last, "\"%*s\"", last->len, last->str);

    } else {
        b->last = ngx_cpymem(b->last, "null", 4);
    }

    /* the last entry scanned: a cursor that skips what matched nothing */

    if (last != NULL) {
        b->last = ngx_sprintf(b->last, ",\"last\":\"%*s\"", last->len,
                              last->str);

    } else {
        b->last = ngx_cpymem(b->last, ",\"last\":null", 12);
    }

    b->last = ngx_sprintf(b->last, ",\"scanned\":%uz}\n", i);

    return ngx_http_smarty_reply_buf(r, NGX_HTTP_OK, "application/json", b);
}


static void
ngx_http_smarty_audit_view_cleanup(void *data)
{
    ngx_http_smarty_audit_view_t *v = data;

    if (v->cmd != NULL) {
        ngx_http_smarty_redis_cancel(v->cmd);
        v->cmd = NULL;
    }
}


static ngx_int_t
ngx_http_smarty_audit_view_error(ngx_http_request_t *r, smarty_err_e e,
    const char *msg)
{
    ngx_http_smarty_error_t  err;

    ngx_memzero(&err, sizeof(ngx_http_smarty_error_t));
    err.err = e;
    err.msg = msg;

    return ngx_http_smarty_reply_error(r, &err);
}


/* --- configuration ------------------------------------------------------- */


static char *
ngx_http_smarty_audit_view(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_audit_view_conf_t  *vcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (vcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    vcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_smarty_audit_view_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_audit_view_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_audit_view_conf_t  *vcf;

    vcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_audit_view_conf_t));
    if (vcf == NULL) {
        return NULL;
    }

    vcf->enable = NGX_CONF_UNSET;

    return vcf;
}


/* a view needs a stream to read (smarty_audit_stream comes in http{},
 * which is read before any location is merged) */

static char *
ngx_http_smarty_audit_view_merge_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_audit_view_conf_t *conf = child;

    if (conf->enable == 1
        && ngx_http_smarty_audit_conf_stream(cf)->len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_audit_view\" needs "
                           "\"smarty_audit_stream\" in the http block");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
