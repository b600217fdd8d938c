/*
 * smarty-gateway: the token endpoint of local clients: the module
 * ngx_http_smarty_oauth_issuer_module and its directives smarty_oauth_issuer,
 * smarty_oauth_token_lifetime, smarty_oauth_refresh_lifetime
 * (docs/oauth.md).
 *
 * The shape of the API's own endpoint, so that a client in OAuth mode
 * changes only its base URLs: POST with grant_type=client_credentials
 * (client_id: a name of the clients file, client_secret: its key; in a
 * form or JSON body, or as HTTP Basic) or grant_type=refresh_token
 * answers an access token of the gateway's, which the auth concern takes
 * wherever it takes a key, and a refresh token.  Tokens are made and
 * checked by the auth concern, without state; a refresh token is good
 * once: the SHA-256 of a used one is set in Redis (SET NX, for as long as
 * it would have lived), so every instance knows.
 */

#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_reply.h"
#include "smarty_args.h"

#include <jansson.h>
#include <openssl/sha.h>


#define NGX_HTTP_SMARTY_OAUTH_BODY_MAX  16384
#define NGX_HTTP_SMARTY_OAUTH_USED      "smarty:oauth:used:"


typedef struct {
    ngx_flag_t                       enable;
    time_t                           token_lifetime;
    time_t                           refresh_lifetime;
} ngx_http_smarty_oauth_conf_t;


/* the request's fields; data NULL: not given */

typedef struct {
    ngx_str_t                        grant_type;
    ngx_str_t                        client_id;
    ngx_str_t                        client_secret;
    ngx_str_t                        refresh_token;
} ngx_http_smarty_oauth_form_t;


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_smarty_redis_cmd_t     *cmd;
    const ngx_http_smarty_client_t  *client;
    ngx_str_t                        body;       /* copies of secrets, */
    ngx_str_t                        basic;      /* wiped at the end */
    ngx_str_t                        raw_id;     /* HTTP Basic's, not */
    ngx_str_t                        raw_secret; /* form-decoded */
    ngx_http_smarty_oauth_form_t     form;
    u_char                           used[sizeof(NGX_HTTP_SMARTY_OAUTH_USED)
                                          - 1 + 2 * SMARTY_SHA256_LEN];
    u_char                           ttl[NGX_TIME_T_LEN];
} ngx_http_smarty_oauth_ctx_t;


static ngx_int_t ngx_http_smarty_oauth_handler(ngx_http_request_t *r);
static void ngx_http_smarty_oauth_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_oauth_grant(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx);
static ngx_int_t ngx_http_smarty_oauth_credentials(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id, ngx_str_t *secret);
static ngx_int_t ngx_http_smarty_oauth_refresh(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id, ngx_str_t *secret);
static const ngx_http_smarty_client_t *ngx_http_smarty_oauth_find(
    ngx_http_request_t *r, ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id);
static ngx_int_t ngx_http_smarty_oauth_secret_is(
    ngx_http_smarty_oauth_ctx_t *ctx, const ngx_http_smarty_client_t *c,
    ngx_str_t *secret);
static void ngx_http_smarty_oauth_used(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_oauth_issue(ngx_http_request_t *r,
    const ngx_http_smarty_client_t *c, const char *grant);
static ngx_int_t ngx_http_smarty_oauth_read(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx);
static const char *ngx_http_smarty_oauth_parse(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx);
static const char *ngx_http_smarty_oauth_form(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx);
static const char *ngx_http_smarty_oauth_json(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx);
static ngx_str_t *ngx_http_smarty_oauth_field(ngx_http_smarty_oauth_form_t *f,
    const char *name, size_t len);
static const char *ngx_http_smarty_oauth_basic(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id, ngx_str_t *secret);
static ngx_int_t ngx_http_smarty_oauth_in_uri(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_oauth_is(ngx_str_t *s, const char *want);
static ngx_int_t ngx_http_smarty_oauth_error(ngx_http_request_t *r,
    smarty_err_e e, const char *msg);
static ngx_int_t ngx_http_smarty_oauth_headers(ngx_http_request_t *r);
static void ngx_http_smarty_oauth_cleanup(void *data);
static char *ngx_http_smarty_oauth_issuer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_smarty_oauth_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_oauth_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_smarty_oauth_commands[] = {

    { ngx_string("smarty_oauth_issuer"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_oauth_issuer,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_oauth_token_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_oauth_conf_t, token_lifetime),
      NULL },

    { ngx_string("smarty_oauth_refresh_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_oauth_conf_t, refresh_lifetime),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_oauth_issuer_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_oauth_create_conf,     /* create location configuration */
    ngx_http_smarty_oauth_merge_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_oauth_issuer_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_oauth_issuer_module_ctx,     /* module context */
    ngx_http_smarty_oauth_commands,        /* module directives */
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
ngx_http_smarty_oauth_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_cleanup_t           *cln;
    ngx_http_smarty_oauth_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_smarty_oauth_error(r, SMARTY_E_METHOD_NOT_ALLOWED,
                                           "the token endpoint takes POST "
                                           "requests only");
    }

    /* RFC 6749, 2.3.1: never in the URI (and the logs redact them) */

    if (ngx_http_smarty_oauth_in_uri(r)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_REQUEST,
                                           "credentials and tokens belong "
                                           "in the body or in HTTP Basic, "
                                           "never in the URI");
    }

    if (r->headers_in.content_length_n > NGX_HTTP_SMARTY_OAUTH_BODY_MAX) {
        r->keepalive = 0;
        r->lingering_close = 1;

        return ngx_http_smarty_oauth_error(r, SMARTY_E_BODY_TOO_LARGE,
                                           "a token request is at most "
                                           "16384 bytes");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_oauth_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_smarty_oauth_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_smarty_oauth_issuer_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_smarty_oauth_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* the body is read: answered now, or once Redis has said (NGX_DONE) */

static void
ngx_http_smarty_oauth_body(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_smarty_oauth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_smarty_oauth_issuer_module);

    rc = ngx_http_smarty_oauth_grant(r, ctx);

    if (rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_smarty_oauth_grant(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx)
{
    ngx_int_t                      rc;
    ngx_str_t                      id, secret;
    const char                    *msg;
    ngx_http_smarty_oauth_form_t  *f;

    rc = ngx_http_smarty_oauth_read(r, ctx);

    if (rc == NGX_DECLINED) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_BODY_TOO_LARGE,
                                           "a token request is at most "
                                           "16384 bytes");
    }

    if (rc != NGX_OK) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_INTERNAL, NULL);
    }

    msg = ngx_http_smarty_oauth_parse(r, ctx);

    if (msg == NULL) {
        msg = ngx_http_smarty_oauth_basic(r, ctx, &id, &secret);
    }

    if (msg != NULL) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_REQUEST,
                                           msg);
    }

    f = &ctx->form;

    if (f->grant_type.data == NULL) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_REQUEST,
                                           "grant_type is required");
    }

    if (ngx_http_smarty_oauth_is(&f->grant_type, "client_credentials")) {
        return ngx_http_smarty_oauth_credentials(r, ctx, &id, &secret);
    }

    if (ngx_http_smarty_oauth_is(&f->grant_type, "refresh_token")) {
        return ngx_http_smarty_oauth_refresh(r, ctx, &id, &secret);
    }

    return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_UNSUPPORTED_GRANT,
                                       NULL);
}


/* grant_type=client_credentials: the client's name and key */

static ngx_int_t
ngx_http_smarty_oauth_credentials(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id, ngx_str_t *secret)
{
    const ngx_http_smarty_client_t  *c;

    if (id->data == NULL || id->len == 0) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_REQUEST,
                                           "client_id is required");
    }

    if (secret->data == NULL || secret->len == 0) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_REQUEST,
                                           "client_secret is required");
    }

    c = ngx_http_smarty_oauth_find(r, ctx, id);

    if (!ngx_http_smarty_oauth_secret_is(ctx, c, secret)) {

        /* a guess, maybe: worth a rate limit (docs/oauth.md) */

        if (c != NULL) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "smarty oauth: client \"%V\": wrong client_secret",
                          &c->name);

        } else {
            /* what was sent is not logged: it may be a key */
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "smarty oauth: unknown client_id");
        }

        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_CLIENT,
                                           NULL);
    }

    return ngx_http_smarty_oauth_issue(r, c, "client_credentials");
}


/*
 * grant_type=refresh_token: a refresh token of the gateway's, good, and
 * not used before (Redis says, for every instance)
 */

static ngx_int_t
ngx_http_smarty_oauth_refresh(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id, ngx_str_t *secret)
{
    u_char                          *p, digest[SMARTY_SHA256_LEN];
    time_t                           expires, ttl;
    ngx_str_t                       *token;
    const char                      *argv[6];
    size_t                           argvlen[6];
    smarty_err_e                     e;
    const ngx_http_smarty_client_t  *c;

    token = &ctx->form.refresh_token;

    if (token->data == NULL || token->len == 0) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_REQUEST,
                                           "refresh_token is required");
    }

    if (ngx_http_smarty_redis_state() == NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED)
    {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_UNSUPPORTED_GRANT,
                                           "this gateway issues no refresh "
                                           "tokens (it has no Redis to make "
                                           "them single-use): use "
                                           "grant_type=client_credentials");
    }

    e = ngx_http_smarty_auth_token_check(r, token->data, token->len,
                                         SMARTY_CT_REFRESH, &c, &expires);

    if (e == SMARTY_E_TOKEN_EXPIRED) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_GRANT,
                                           "the refresh_token has expired: "
                                           "ask for a new token with "
                                           "grant_type=client_credentials");
    }

    if (e != SMARTY_OK) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_GRANT,
                                           NULL);
    }

    if (id->data != NULL && ngx_http_smarty_oauth_find(r, ctx, id) != c) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_GRANT,
                                           "the refresh_token was not "
                                           "issued to this client_id");
    }

    /* a client that authenticates as well must do it right */

    if (secret->data != NULL
        && !ngx_http_smarty_oauth_secret_is(ctx, c, secret))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "smarty oauth: client \"%V\": wrong client_secret",
                      &c->name);

        return ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_CLIENT,
                                           NULL);
    }

    /* used now, for as long as it would have lived: SET NX says if first */

    SHA256(token->data, token->len, digest);

    p = ngx_cpymem(ctx->used, NGX_HTTP_SMARTY_OAUTH_USED,
                   sizeof(NGX_HTTP_SMARTY_OAUTH_USED) - 1);
    p = ngx_hex_dump(p, digest, SMARTY_SHA256_LEN);

    ttl = expires - ngx_time();
    if (ttl < 1) {
        ttl = 1;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) ctx->used;
    argvlen[1] = p - ctx->used;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = "NX";
    argvlen[3] = 2;
    argv[4] = "EX";
    argvlen[4] = 2;
    argv[5] = (const char *) ctx->ttl;
    argvlen[5] = ngx_sprintf(ctx->ttl, "%T", ttl) - ctx->ttl;

    ctx->client = c;
    ctx->cmd = ngx_http_smarty_redis_command(0, ngx_http_smarty_oauth_used,
                                             ctx, 6, argv, argvlen);
    if (ctx->cmd == NULL) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_INTERNAL, NULL);
    }

    /* a client that leaves meanwhile is noticed: the cleanup cancels */

    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


/*
 * RFC 6749 has HTTP Basic's id and secret form-encoded first, which many
 * clients do not do: a name or a key is taken as sent, then decoded
 */

static const ngx_http_smarty_client_t *
ngx_http_smarty_oauth_find(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id)
{
    const ngx_http_smarty_client_t  *c;

    c = NULL;

    if (ctx->raw_id.data != NULL) {
        c = ngx_http_smarty_auth_find(r, ctx->raw_id.data, ctx->raw_id.len);
    }

    if (c == NULL) {
        c = ngx_http_smarty_auth_find(r, id->data, id->len);
    }

    return c;
}


static ngx_int_t
ngx_http_smarty_oauth_secret_is(ngx_http_smarty_oauth_ctx_t *ctx,
    const ngx_http_smarty_client_t *c, ngx_str_t *secret)
{
    if (ctx->raw_secret.data != NULL
        && ngx_http_smarty_auth_key_is(c, ctx->raw_secret.data,
                                       ctx->raw_secret.len))
    {
        return 1;
    }

    return ngx_http_smarty_auth_key_is(c, secret->data, secret->len);
}


static void
ngx_http_smarty_oauth_used(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_oauth_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->cmd = NULL;

    if (status == NGX_HTTP_SMARTY_REDIS_OK
        && reply->type == REDIS_REPLY_STATUS
        && reply->len == 2 && ngx_strncmp(reply->str, "OK", 2) == 0)
    {
        rc = ngx_http_smarty_oauth_issue(r, ctx->client, "refresh_token");

    } else if (status == NGX_HTTP_SMARTY_REDIS_OK
               && reply->type == REDIS_REPLY_NIL)
    {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "smarty oauth: client \"%V\": a refresh token used a "
                      "second time (a client that retried, or a stolen "
                      "token)", &ctx->client->name);

        rc = ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_INVALID_GRANT,
                                         "the refresh_token was already "
                                         "used: ask for a new token with "
                                         "grant_type=client_credentials");

    } else {
        if (status == NGX_HTTP_SMARTY_REDIS_OK
            && reply->type == REDIS_REPLY_ERROR)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "smarty oauth: a refresh refused, Redis said: %*s",
                          reply->len > 200 ? (size_t) 200 : reply->len,
                          reply->str);

        } else {
            ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                          "smarty oauth: a refresh refused, Redis: %s",
                          status == NGX_HTTP_SMARTY_REDIS_OK
                          ? "an unexpected reply"
                          : ngx_http_smarty_redis_status_text(status));
        }

        rc = ngx_http_smarty_oauth_error(r, SMARTY_E_OAUTH_UNAVAILABLE,
                                         NULL);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the answer: an access token, and a refresh token where Redis is */

static ngx_int_t
ngx_http_smarty_oauth_issue(ngx_http_request_t *r,
    const ngx_http_smarty_client_t *c, const char *grant)
{
    u_char                         access[SMARTY_CT_MAX_LEN + 1];
    u_char                         refresh[SMARTY_CT_MAX_LEN + 1];
    json_t                        *o;
    ngx_buf_t                     *b;
    ngx_chain_t                    out;
    ngx_http_smarty_oauth_conf_t  *ocf;

    ocf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_oauth_issuer_module);

    if (ngx_http_smarty_auth_token_make(r, c, SMARTY_CT_ACCESS,
                                        ocf->token_lifetime, access, NULL)
        == 0)
    {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_INTERNAL, NULL);
    }

    refresh[0] = '\0';

    if (ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED
        && ngx_http_smarty_auth_token_make(r, c, SMARTY_CT_REFRESH,
                                           ocf->refresh_lifetime, refresh,
                                           NULL)
           == 0)
    {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_INTERNAL, NULL);
    }

    o = json_pack("{s:s, s:s, s:I}",
                  "access_token", (const char *) access,
                  "token_type", "Bearer",
                  "expires_in", (json_int_t) ocf->token_lifetime);

    if (o != NULL && refresh[0]
        && json_object_set_new(o, "refresh_token",
                               json_string((const char *) refresh))
           != 0)
    {
        json_decref(o);
        o = NULL;
    }

    ngx_explicit_memzero(access, sizeof(access));
    ngx_explicit_memzero(refresh, sizeof(refresh));

    if (o == NULL) {
        return ngx_http_smarty_oauth_error(r, SMARTY_E_INTERNAL, NULL);
    }

    b = ngx_http_smarty_reply_json_buf(r->pool, o);
    json_decref(o);

    if (b == NULL || ngx_http_smarty_oauth_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "smarty oauth: client \"%V\": a token by %s", &c->name,
                  grant);

    out.buf = b;
    out.next = NULL;

    return ngx_http_smarty_reply_chain(r, NGX_HTTP_OK, &out,
                                       b->last - b->pos);
}


/* --- the request ---------------------------------------------------------- */


/* the body, in memory or in a temp file, as one string */

static ngx_int_t
ngx_http_smarty_oauth_read(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx)
{
    u_char       *p;
    off_t         size, len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > NGX_HTTP_SMARTY_OAUTH_BODY_MAX) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->body.data = p;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            b = cl->buf;
            size = ngx_buf_size(b);

            if (b->in_file) {
                n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);
                if (n != size) {
                    return NGX_ERROR;
                }

            } else {
                ngx_memcpy(p, b->pos, (size_t) size);
            }

            p += size;
            ctx->body.len += size;
        }
    }

    *p = '\0';

    return NGX_OK;
}


/* the fields, from a form or a JSON object: NULL, or what is wrong */

static const char *
ngx_http_smarty_oauth_parse(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx)
{
    u_char           *semi;
    ngx_str_t         type;
    ngx_table_elt_t  *h;

    h = r->headers_in.content_type;

    if (h == NULL) {
        return "Content-Type must be application/x-www-form-urlencoded "
               "or application/json";
    }

    type = h->value;

    semi = ngx_strlchr(type.data, type.data + type.len, ';');
    if (semi) {
        type.len = semi - type.data;
    }

    while (type.len && (type.data[type.len - 1] == ' '
                        || type.data[type.len - 1] == '\t'))
    {
        type.len--;
    }

    if (type.len == sizeof("application/x-www-form-urlencoded") - 1
        && ngx_strncasecmp(type.data,
                           (u_char *) "application/x-www-form-urlencoded",
                           type.len)
           == 0)
    {
        return ngx_http_smarty_oauth_form(r, ctx);
    }

    if (type.len == sizeof("application/json") - 1
        && ngx_strncasecmp(type.data, (u_char *) "application/json",
                           type.len)
           == 0)
    {
        return ngx_http_smarty_oauth_json(r, ctx);
    }

    return "Content-Type must be application/x-www-form-urlencoded or "
           "application/json";
}


static const char *
ngx_http_smarty_oauth_form(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx)
{
    u_char        *dst;
    size_t         pos;
    ngx_str_t     *field;
    ngx_uint_t     i;
    smarty_arg_t   a;

    static const char  *names[] = {
        "grant_type", "client_id", "client_secret", "refresh_token"
    };

    pos = 0;

    while (smarty_args_next((const char *) ctx->body.data, ctx->body.len,
                            &pos, &a))
    {
        field = NULL;

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (smarty_args_name_is(a.name, a.name_len, names[i], 0)) {
                field = ngx_http_smarty_oauth_field(&ctx->form, names[i],
                                                    ngx_strlen(names[i]));
                break;
            }
        }

        if (field == NULL) {
            continue;               /* scope, and anything else */
        }

        if (field->data != NULL) {
            return "a parameter is given twice";
        }

        dst = ngx_pnalloc(r->pool, a.value_len + 1);
        if (dst == NULL) {
            return "the gateway is out of memory";
        }

        field->data = dst;
        field->len = a.value ? smarty_args_unescape(a.value, a.value_len,
                                                    (char *) dst)
                             : 0;
    }

    return NULL;
}


/* the API's own shape: {"client_id", "client_secret", "grant_type"} */

static const char *
ngx_http_smarty_oauth_json(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx)
{
    size_t         len;
    json_t        *root, *v;
    ngx_str_t     *field;
    const char    *key;
    json_error_t   jerr;

    root = json_loadb((const char *) ctx->body.data, ctx->body.len,
                      JSON_REJECT_DUPLICATES, &jerr);

    if (!json_is_object(root)) {
        json_decref(root);
        return "the body is not a JSON object";
    }

    json_object_foreach(root, key, v) {
        field = ngx_http_smarty_oauth_field(&ctx->form, key,
                                            ngx_strlen(key));
        if (field == NULL) {
            continue;
        }

        if (!json_is_string(v)) {
            json_decref(root);
            return "grant_type, client_id, client_secret and refresh_token "
                   "must be strings";
        }

        len = json_string_length(v);

        field->data = ngx_pnalloc(r->pool, len + 1);
        if (field->data == NULL) {
            json_decref(root);
            return "the gateway is out of memory";
        }

        ngx_memcpy(field->data, json_string_value(v), len);
        field->len = len;
    }

    json_decref(root);

    return NULL;
}


static ngx_str_t *
ngx_http_smarty_oauth_field(ngx_http_smarty_oauth_form_t *f,
    const char *name, size_t len)
{
#define ngx_http_smarty_oauth_name(n)                                         \
    (len == sizeof(n) - 1 && ngx_strncmp(name, n, len) == 0)

    if (ngx_http_smarty_oauth_name("grant_type")) {
        return &f->grant_type;
    }

    if (ngx_http_smarty_oauth_name("client_id")) {
        return &f->client_id;
    }

    if (ngx_http_smarty_oauth_name("client_secret")) {
        return &f->client_secret;
    }

    if (ngx_http_smarty_oauth_name("refresh_token")) {
        return &f->refresh_token;
    }

#undef ngx_http_smarty_oauth_name

    return NULL;
}


/*
 * Who the client says it is: HTTP Basic (RFC 6749, 2.3.1: the id and the
 * secret form-encoded, then base64) or the body's fields, not both.
 * NULL, or what is wrong.
 */

static const char *
ngx_http_smarty_oauth_basic(ngx_http_request_t *r,
    ngx_http_smarty_oauth_ctx_t *ctx, ngx_str_t *id, ngx_str_t *secret)
{
    u_char           *colon, *p;
    ngx_str_t         v, in;
    ngx_table_elt_t  *h;

    *id = ctx->form.client_id;
    *secret = ctx->form.client_secret;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NULL;
    }

    v = h->value;

    if (v.len <= sizeof("Basic ") - 1
        || ngx_strncasecmp(v.data, (u_char *) "Basic ", sizeof("Basic ") - 1)
           != 0)
    {
        return "the token endpoint takes the client's credentials as HTTP "
               "Basic or in the body, no other Authorization";
    }

    in.data = v.data + sizeof("Basic ") - 1;
    in.len = v.len - (sizeof("Basic ") - 1);

    while (in.len && *in.data == ' ') {
        in.data++;
        in.len--;
    }

    ctx->basic.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(in.len)
                                           + 1);
    if (ctx->basic.data == NULL) {
        return "the gateway is out of memory";
    }

    if (ngx_decode_base64(&ctx->basic, &in) != NGX_OK) {
        return "a malformed HTTP Basic Authorization header";
    }

    colon = ngx_strlchr(ctx->basic.data, ctx->basic.data + ctx->basic.len,
                        ':');
    if (colon == NULL) {
        return "a malformed HTTP Basic Authorization header";
    }

    if (ctx->form.client_secret.data != NULL) {
        return "the client authenticates once: HTTP Basic or client_secret "
               "in the body, not both";
    }

    /*
     * as sent, then form-decoded in place (each is no longer than it was);
     * the body's fields are decoded only
     */

    ctx->raw_id.len = colon - ctx->basic.data;
    ctx->raw_secret.len = ctx->basic.data + ctx->basic.len - (colon + 1);

    p = ngx_pnalloc(r->pool, ctx->basic.len);
    if (p == NULL) {
        return "the gateway is out of memory";
    }

    ctx->raw_id.data = p;
    ctx->raw_secret.data = ngx_cpymem(p, ctx->basic.data, ctx->raw_id.len);
    ngx_memcpy(ctx->raw_secret.data, colon + 1, ctx->raw_secret.len);

    p = ctx->basic.data;
    id->data = p;
    id->len = smarty_args_unescape((const char *) p, colon - p, (char *) p);

    p = colon + 1;
    secret->data = p;
    secret->len = smarty_args_unescape((const char *) p,
                                       ctx->basic.data + ctx->basic.len - p,
                                       (char *) p);

    if (ctx->form.client_id.data != NULL
        && !(ctx->form.client_id.len == id->len
             && ngx_memcmp(ctx->form.client_id.data, id->data, id->len) == 0)
        && !(ctx->form.client_id.len == ctx->raw_id.len
             && ngx_memcmp(ctx->form.client_id.data, ctx->raw_id.data,
                           ctx->raw_id.len) == 0))
    {
        return "client_id in the body is not the one of HTTP Basic";
    }

    return NULL;
}


/* a secret of the token endpoint's in the query string */

static ngx_int_t
ngx_http_smarty_oauth_in_uri(ngx_http_request_t *r)
{
    size_t        pos;
    smarty_arg_t  a;

    pos = 0;

    while (smarty_args_next((const char *) r->args.data, r->args.len, &pos,
                            &a))
    {
        if (smarty_args_name_is(a.name, a.name_len, "client_secret", 1)
            || smarty_args_name_is(a.name, a.name_len, "refresh_token", 1))
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_smarty_oauth_is(ngx_str_t *s, const char *want)
{
    size_t  len;

    len = ngx_strlen(want);

    return s->len == len && ngx_strncmp(s->data, want, len) == 0;
}


/* --- answers -------------------------------------------------------------- */


/*
 * An error in the API's envelope, as the API's own token endpoint answers
 * them; the token endpoint's codes (RFC 6749, 5.2) also as "error" and
 * "error_description" at the top, for the OAuth libraries that read those.
 */

static ngx_int_t
ngx_http_smarty_oauth_error(ngx_http_request_t *r, smarty_err_e e,
    const char *msg)
{
    json_t                   *o;
    ngx_buf_t                *b;
    ngx_chain_t               out;
    ngx_http_smarty_error_t   err;
    const smarty_err_info_t  *info;

    if (e != SMARTY_E_OAUTH_INVALID_REQUEST
        && e != SMARTY_E_OAUTH_INVALID_CLIENT
        && e != SMARTY_E_OAUTH_INVALID_GRANT
        && e != SMARTY_E_OAUTH_UNSUPPORTED_GRANT
        && e != SMARTY_E_OAUTH_UNAVAILABLE)
    {
        ngx_memzero(&err, sizeof(ngx_http_smarty_error_t));
        err.err = e;
        err.msg = msg;

        return ngx_http_smarty_reply_error(r, &err);
    }

    info = smarty_err_info(e);
    msg = msg ? msg : info->message;

    o = json_pack("{s:i, s:{s:s, s:s}, s:b, s:i, s:s, s:s}",
                  "status", info->status,
                  "body", "error", msg, "code", info->code,
                  "htmlencoded", 0,
                  "last_modified", 0,
                  "error", info->code,
                  "error_description", msg);
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_smarty_reply_json_buf(r->pool, o);
    json_decref(o);

    if (b == NULL || ngx_http_smarty_oauth_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* RFC 6749, 5.2: the scheme the client may authenticate with */

    if (info->status == NGX_HTTP_UNAUTHORIZED
        && ngx_http_smarty_reply_header(r, "WWW-Authenticate",
                                 sizeof("WWW-Authenticate") - 1,
                                 (u_char *) "Basic realm=\"smarty-gateway\"",
                                 sizeof("Basic realm=\"smarty-gateway\"") - 1)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_smarty_reply_chain(r, info->status, &out,
                                       b->last - b->pos);
}


/* RFC 6749, 5.1: a token answer is never stored */

static ngx_int_t
ngx_http_smarty_oauth_headers(ngx_http_request_t *r)
{
    if (ngx_http_smarty_reply_header(r, "Cache-Control",
                                     sizeof("Cache-Control") - 1,
                                     (u_char *) "no-store",
                                     sizeof("no-store") - 1)
        != NGX_OK
        || ngx_http_smarty_reply_header(r, "Pragma", sizeof("Pragma") - 1,
                                        (u_char *) "no-cache",
                                        sizeof("no-cache") - 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_smarty_oauth_cleanup(void *data)
{
    ngx_http_smarty_oauth_ctx_t  *ctx = data;

    ngx_http_smarty_oauth_form_t  *f;

    if (ctx->cmd != NULL) {
        ngx_http_smarty_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    /* the copies this module made of secrets */

    f = &ctx->form;

    if (ctx->body.data) {
        ngx_explicit_memzero(ctx->body.data, ctx->body.len);
    }

    if (ctx->basic.data) {
        ngx_explicit_memzero(ctx->basic.data, ctx->basic.len);
    }

    if (ctx->raw_id.data) {
        ngx_explicit_memzero(ctx->raw_id.data,
                             ctx->raw_id.len + ctx->raw_secret.len);
    }

    if (f->client_secret.data) {
        ngx_explicit_memzero(f->client_secret.data, f->client_secret.len);
    }

    if (f->refresh_token.data) {
        ngx_explicit_memzero(f->refresh_token.data, f->refresh_token.len);
    }
}


/* --- configuration -------------------------------------------------------- */


static char *
ngx_http_smarty_oauth_issuer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_oauth_conf_t  *ocf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (ocf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    ocf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_smarty_oauth_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_oauth_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_oauth_conf_t  *ocf;

    ocf = ngx_palloc(cf->pool, sizeof(ngx_http_smarty_oauth_conf_t));
    if (ocf == NULL) {
        return NULL;
    }

    ocf->enable = NGX_CONF_UNSET;
    ocf->token_lifetime = NGX_CONF_UNSET;
    ocf->refresh_lifetime = NGX_CONF_UNSET;

    return ocf;
}


static char *
ngx_http_smarty_oauth_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_oauth_conf_t  *prev = parent;
    ngx_http_smarty_oauth_conf_t  *conf = child;

    ngx_conf_merge_sec_value(conf->token_lifetime, prev->token_lifetime,
                             3600);
    ngx_conf_merge_sec_value(conf->refresh_lifetime, prev->refresh_lifetime,
                             30 * 86400);

    if (conf->token_lifetime < 1 || conf->refresh_lifetime < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_oauth_token_lifetime\" and "
                           "\"smarty_oauth_refresh_lifetime\" must be at "
                           "least 1s");
        return NGX_CONF_ERROR;
    }

    /* not inherited: the location's handler is set where it is named */

    if (conf->enable != 1) {
        return NGX_CONF_OK;
    }

    if (ngx_http_smarty_auth_conf_clients(cf) == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_oauth_issuer\" needs "
                           "\"smarty_clients_file\": the clients it issues "
                           "tokens to");
        return NGX_CONF_ERROR;
    }

    if (!ngx_http_smarty_auth_conf_tokens(cf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_oauth_issuer\" needs "
                           "\"smarty_oauth_key_file\": the key its tokens "
                           "are signed with");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
