/*
 * smarty-gateway: Redis, the module: its directives, the worker's
 * topology (one server, a cluster, a master found by sentinels), the
 * command and script API (see ngx_http_smarty_redis.h, docs/redis.md).
 */

#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_redis_cluster.h"
#include "ngx_http_smarty_redis_sentinel.h"
#include "ngx_http_smarty_secret.h"

#include <openssl/evp.h>


#define NGX_HTTP_SMARTY_REDIS_PASSWORD_MAX 1024


typedef enum {
    NGX_HTTP_SMARTY_REDIS_NONE = 0,
    NGX_HTTP_SMARTY_REDIS_SINGLE,
    NGX_HTTP_SMARTY_REDIS_CLUSTER,
    NGX_HTTP_SMARTY_REDIS_SENTINEL
} ngx_http_smarty_redis_mode_e;


typedef struct {
    ngx_http_smarty_redis_mode_e        mode;
    ngx_str_t                           directive;  /* for messages */
    ngx_str_t                           addr;     /* as configured */
    ngx_str_t                           host;     /* numeric IP or unix
                                                     path */
    ngx_int_t                           port;     /* 0: a unix socket */
    ngx_array_t                        *addrs;    /* cluster seeds,
                                                     sentinels */
    ngx_str_t                           master;   /* sentinel's name */
    ngx_http_smarty_redis_settings_t    settings;
    ngx_str_t                           sentinel_user;
    ngx_str_t                           sentinel_password;
    ngx_http_smarty_redis_settings_t    sentinel_settings;
} ngx_http_smarty_redis_main_conf_t;


static void ngx_http_smarty_redis_send(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_msec_t timeout);
static void ngx_http_smarty_redis_unconfigured(ngx_event_t *ev);
static ngx_int_t ngx_http_smarty_redis_parse_addr(ngx_conf_t *cf,
    ngx_str_t *value, ngx_uint_t unix_ok, ngx_str_t *addr, ngx_str_t *host,
    ngx_int_t *port);
static char *ngx_http_smarty_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_redis_sentinel(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

static void *ngx_http_smarty_redis_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_redis_init_main_conf(ngx_conf_t *cf,
    void *conf);
static char *ngx_http_smarty_redis_mode(ngx_conf_t *cf,
    ngx_http_smarty_redis_main_conf_t *rmcf,
    ngx_http_smarty_redis_mode_e mode);
static char *ngx_http_smarty_redis_addrs(ngx_conf_t *cf,
    ngx_http_smarty_redis_main_conf_t *rmcf, ngx_uint_t first);
static char *ngx_http_smarty_redis_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_smarty_redis_breaker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_redis_positive_msec(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_smarty_redis_init_process(ngx_cycle_t *cycle);
static void ngx_http_smarty_redis_exit_process(ngx_cycle_t *cycle);


/* the worker's topology: one of them, or none without "smarty_redis*" */
static ngx_http_smarty_redis_node_t      *ngx_http_smarty_redis_node;
static ngx_http_smarty_redis_cluster_t   *ngx_http_smarty_redis_cl;
static ngx_http_smarty_redis_sentinel_t  *ngx_http_smarty_redis_st;

/* the embedded scripts' SHA1s, hex, computed with the configuration */
static char  ngx_http_smarty_redis_sha1[NGX_HTTP_SMARTY_REDIS_LUA_N][41];


static ngx_conf_post_handler_pt  ngx_http_smarty_redis_positive_msec_p =
    ngx_http_smarty_redis_positive_msec;


static ngx_command_t  ngx_http_smarty_redis_commands[] = {

    { ngx_string("smarty_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_server,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_redis_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_smarty_redis_cluster,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_smarty_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_redis_user"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, settings.user),
      NULL },

    { ngx_string("smarty_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, settings.password),
      NULL },

    { ngx_string("smarty_redis_sentinel_user"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, sentinel_user),
      NULL },

    { ngx_string("smarty_redis_sentinel_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, sentinel_password),
      NULL },

    { ngx_string("smarty_redis_db"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, settings.db),
      NULL },

    { ngx_string("smarty_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, settings.timeout),
      &ngx_http_smarty_redis_positive_msec_p },

    { ngx_string("smarty_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, settings.connect_timeout),
      &ngx_http_smarty_redis_positive_msec_p },

    { ngx_string("smarty_redis_breaker"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_smarty_redis_breaker,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_redis_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_redis_create_main_conf, /* create main configuration */
    ngx_http_smarty_redis_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_redis_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_redis_module_ctx,     /* module context */
    ngx_http_smarty_redis_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_smarty_redis_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_smarty_redis_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* --- the command API ----------------------------------------------------- */


ngx_http_smarty_redis_cmd_t *
ngx_http_smarty_redis_command(ngx_msec_t timeout,
    ngx_http_smarty_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (argc < 1 || argv == NULL || argvlen == NULL || handler == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "smarty_redis: a command without arguments");
        return NULL;
    }

    /* a single-key command: its key, argv[1], routes it on a cluster */

    cmd = ngx_http_smarty_redis_cmd_create(handler, data, argc, argv, argvlen,
                                       argc >= 2 ? 1 : -1);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_http_smarty_redis_send(cmd, timeout);

    return cmd;
}


ngx_http_smarty_redis_cmd_t *
ngx_http_smarty_redis_script(ngx_uint_t script, ngx_msec_t timeout,
    ngx_http_smarty_redis_handler_pt handler, void *data, int nkeys,
    int argc, const char **argv, const size_t *argvlen)
{
    int                           i, n;
    u_char                        num[NGX_INT_T_LEN];
    size_t                       *lens;
    const char                  **args;
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (script >= NGX_HTTP_SMARTY_REDIS_LUA_N || nkeys < 0 || argc < nkeys
        || (argc > 0 && (argv == NULL || argvlen == NULL)) || handler == NULL)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "smarty_redis: a script call with bad arguments");
        return NULL;
    }

    /* EVALSHA sha1 nkeys keys... args...: the first key routes it */

    n = argc + 3;

    args = ngx_alloc(n * (sizeof(char *) + sizeof(size_t)), ngx_cycle->log);
    if (args == NULL) {
        return NULL;
    }

    lens = (size_t *) (args + n);

    args[0] = "EVALSHA";
    lens[0] = sizeof("EVALSHA") - 1;
    args[1] = ngx_http_smarty_redis_sha1[script];
    lens[1] = 40;
    args[2] = (const char *) num;
    lens[2] = ngx_sprintf(num, "%d", nkeys) - num;

    for (i = 0; i < argc; i++) {
        args[i + 3] = argv[i];
        lens[i + 3] = argvlen[i];
    }

    cmd = ngx_http_smarty_redis_cmd_create(handler, data, n, args, lens,
                                       nkeys > 0 ? 3 : -1);
    ngx_free(args);

    if (cmd == NULL) {
        return NULL;
    }

    cmd->script = script;
    cmd->script_name = ngx_http_smarty_redis_lua[script].name;
    cmd->script_text = ngx_http_smarty_redis_lua[script].text;
    cmd->script_len = ngx_http_smarty_redis_lua[script].len;

    ngx_http_smarty_redis_send(cmd, timeout);

    return cmd;
}


/*
 * Sends the command to its node (through the topology), or answers it
 * later (posted): refused, not configured.
 */

static void
ngx_http_smarty_redis_send(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_msec_t timeout)
{
    if (ngx_http_smarty_redis_cl) {
        ngx_http_smarty_redis_cluster_send(ngx_http_smarty_redis_cl, cmd,
                                           timeout);
        return;
    }

    if (ngx_http_smarty_redis_st) {
        ngx_http_smarty_redis_sentinel_send(ngx_http_smarty_redis_st, cmd,
                                            timeout);
        return;
    }

    if (ngx_http_smarty_redis_node == NULL) {
        cmd->status = NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED;
        cmd->decided = 1;
        cmd->ev.handler = ngx_http_smarty_redis_unconfigured;
        ngx_post_event(&cmd->ev, &ngx_posted_events);
        return;
    }

    ngx_http_smarty_redis_node_send(ngx_http_smarty_redis_node, cmd, timeout);
}


/* no "smarty_redis": the answer, posted */

static void
ngx_http_smarty_redis_unconfigured(ngx_event_t *ev)
{
    ngx_http_smarty_redis_cmd_t  *cmd = ev->data;

    if (cmd->user) {
        cmd->user = 0;
        cmd->handler(NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED, NULL, cmd->data);
    }

    ngx_free(cmd);
}


void
ngx_http_smarty_redis_cancel(ngx_http_smarty_redis_cmd_t *cmd)
{
    if (cmd == NULL) {
        return;
    }

    if (cmd->node == NULL && !cmd->held && cmd->ev.handler
        == ngx_http_smarty_redis_unconfigured)
    {
        /* not configured: its posted answer goes with it */
        if (cmd->ev.posted) {
            ngx_delete_posted_event(&cmd->ev);
        }

        ngx_free(cmd);
        return;
    }

    ngx_http_smarty_redis_node_cancel(cmd);
}


ngx_int_t
ngx_http_smarty_redis_available(void)
{
    if (ngx_http_smarty_redis_cl) {
        return ngx_http_smarty_redis_cluster_ready(ngx_http_smarty_redis_cl);
    }

    if (ngx_http_smarty_redis_st) {
        return ngx_http_smarty_redis_sentinel_ready(ngx_http_smarty_redis_st);
    }

    return ngx_http_smarty_redis_node != NULL
           && ngx_http_smarty_redis_node_ready(ngx_http_smarty_redis_node);
}


ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_state(void)
{
    if (ngx_http_smarty_redis_cl) {
        return ngx_http_smarty_redis_cluster_state(ngx_http_smarty_redis_cl);
    }

    if (ngx_http_smarty_redis_st) {
        return ngx_http_smarty_redis_sentinel_state(ngx_http_smarty_redis_st);
    }

    if (ngx_http_smarty_redis_node == NULL) {
        return NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED;
    }

    return ngx_http_smarty_redis_node_state(ngx_http_smarty_redis_node);
}


ngx_uint_t
ngx_http_smarty_redis_nodes(ngx_http_smarty_redis_node_info_t *info,
    ngx_uint_t n)
{
    if (ngx_http_smarty_redis_cl) {
        return ngx_http_smarty_redis_cluster_nodes(ngx_http_smarty_redis_cl,
                                                   info, n);
    }

    if (ngx_http_smarty_redis_st) {
        return ngx_http_smarty_redis_sentinel_nodes(ngx_http_smarty_redis_st,
                                                    info, n);
    }

    if (ngx_http_smarty_redis_node == NULL) {
        return 0;
    }

    if (n > 0) {
        ngx_http_smarty_redis_node_info(ngx_http_smarty_redis_node, info);
        info->role = "server";
    }

    return 1;
}


const char *
ngx_http_smarty_redis_status_text(ngx_http_smarty_redis_status_e status)
{
    switch (status) {
    case NGX_HTTP_SMARTY_REDIS_OK:
        return "ok";
    case NGX_HTTP_SMARTY_REDIS_TIMEOUT:
        return "timeout";
    case NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED:
        return "not_connected";
    case NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN:
        return "breaker_open";
    case NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED:
        return "not_configured";
    default:
        return "error";
    }
}


/* --- configuration ------------------------------------------------------- */


static void *
ngx_http_smarty_redis_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_redis_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_redis_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->mode = NGX_HTTP_SMARTY_REDIS_NONE;
     *     rmcf->addr = { 0, NULL };
     *     rmcf->host = { 0, NULL };
     *     rmcf->addrs = NULL;
     *     rmcf->settings.user = { 0, NULL };
     *     rmcf->settings.password = { 0, NULL };
     *     rmcf->sentinel_user = { 0, NULL };
     *     rmcf->sentinel_password = { 0, NULL };
     */

    rmcf->port = NGX_CONF_UNSET;
    rmcf->settings.db = NGX_CONF_UNSET;
    rmcf->settings.timeout = NGX_CONF_UNSET_MSEC;
    rmcf->settings.connect_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->settings.breaker_failures = NGX_CONF_UNSET;
    rmcf->settings.breaker_cooldown = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static char *
ngx_http_smarty_redis_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    u_char                             md[EVP_MAX_MD_SIZE];
    ngx_uint_t                         i;
    unsigned int                       mdlen;
    ngx_http_smarty_redis_settings_t  *s;

    s = &rmcf->settings;

    ngx_conf_init_value(s->db, 0);
    ngx_conf_init_msec_value(s->timeout, 100);
    ngx_conf_init_msec_value(s->connect_timeout, 200);
    ngx_conf_init_value(s->breaker_failures, 5);
    ngx_conf_init_msec_value(s->breaker_cooldown, 5000);

    if (s->db < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_db\" must not be negative");
        return NGX_CONF_ERROR;
    }

    if (rmcf->mode == NGX_HTTP_SMARTY_REDIS_CLUSTER && s->db != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_db\" must be 0 with "
                           "\"smarty_redis_cluster\": a cluster has one "
                           "database");
        return NGX_CONF_ERROR;
    }

    if (s->user.len && s->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_user\" needs "
                           "\"smarty_redis_password_file\"");
        return NGX_CONF_ERROR;
    }

    if (rmcf->sentinel_user.len && rmcf->sentinel_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_sentinel_user\" needs "
                           "\"smarty_redis_sentinel_password_file\"");
        return NGX_CONF_ERROR;
    }

    if (rmcf->sentinel_password.len
        && rmcf->mode != NGX_HTTP_SMARTY_REDIS_SENTINEL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_sentinel_password_file\" needs "
                           "\"smarty_redis_sentinel\"");
        return NGX_CONF_ERROR;
    }

    /* the sentinels: their own AUTH (sentinel.conf's requirepass, not the
     * master's), no SELECT, no breaker (they are asked in turn), the same
     * timeouts */

    rmcf->sentinel_settings = *s;
    rmcf->sentinel_settings.user = rmcf->sentinel_user;
    rmcf->sentinel_settings.password = rmcf->sentinel_password;
    rmcf->sentinel_settings.db = 0;
    rmcf->sentinel_settings.breaker_failures = 0;

    /* the scripts' SHA1s: EVALSHA needs no SCRIPT LOAD first */

    for (i = 0; i < NGX_HTTP_SMARTY_REDIS_LUA_N; i++) {
        if (EVP_Digest(ngx_http_smarty_redis_lua[i].text,
                       ngx_http_smarty_redis_lua[i].len, md, &mdlen,
                       EVP_sha1(), NULL)
            != 1 || mdlen != 20)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "smarty_redis: SHA1 of script \"%s\" failed",
                               ngx_http_smarty_redis_lua[i].name);
            return NGX_CONF_ERROR;
        }

        ngx_hex_dump((u_char *) ngx_http_smarty_redis_sha1[i], md, 20);
        ngx_http_smarty_redis_sha1[i][40] = '\0';
    }

    return NGX_CONF_OK;
}


/* one of smarty_redis, smarty_redis_cluster, smarty_redis_sentinel */

static char *
ngx_http_smarty_redis_mode(ngx_conf_t *cf,
    ngx_http_smarty_redis_main_conf_t *rmcf, ngx_http_smarty_redis_mode_e mode)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (rmcf->mode == mode) {
        return "is duplicate";
    }

    if (rmcf->mode != NGX_HTTP_SMARTY_REDIS_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" and \"%V\" exclude each other: one "
                           "server, a cluster or sentinels", &value[0],
                           &rmcf->directive);
        return NGX_CONF_ERROR;
    }

    rmcf->mode = mode;
    rmcf->directive = value[0];

    return NGX_CONF_OK;
}


/* smarty_redis host:port | unix:/path */

static char *
ngx_http_smarty_redis_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    char       *rv;
    ngx_str_t  *value;

    rv = ngx_http_smarty_redis_mode(cf, rmcf, NGX_HTTP_SMARTY_REDIS_SINGLE);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    if (ngx_http_smarty_redis_parse_addr(cf, &value[1], 1, &rmcf->addr,
                                         &rmcf->host, &rmcf->port)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the addresses of smarty_redis_cluster, smarty_redis_sentinel */

static char *
ngx_http_smarty_redis_addrs(ngx_conf_t *cf,
    ngx_http_smarty_redis_main_conf_t *rmcf, ngx_uint_t first)
{
    ngx_str_t                     *value;
    ngx_uint_t                     i;
    ngx_http_smarty_redis_addr_t  *a;

    value = cf->args->elts;

    rmcf->addrs = ngx_array_create(cf->pool, cf->args->nelts,
                                   sizeof(ngx_http_smarty_redis_addr_t));
    if (rmcf->addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts - first > 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes at most 16 addresses", &value[0]);
        return NGX_CONF_ERROR;
    }

    for (i = first; i < cf->args->nelts; i++) {
        a = ngx_array_push(rmcf->addrs);
        if (a == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_smarty_redis_parse_addr(cf, &value[i], 0, &a->addr,
                                             &a->host, &a->port)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* smarty_redis_cluster host:port ... (seeds) */

static char *
ngx_http_smarty_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    char  *rv;

    rv = ngx_http_smarty_redis_mode(cf, rmcf, NGX_HTTP_SMARTY_REDIS_CLUSTER);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_http_smarty_redis_addrs(cf, rmcf, 1);
}


/* smarty_redis_sentinel master_name host:port ... */

static char *
ngx_http_smarty_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    char        *rv;
    u_char      *p;
    ngx_str_t   *value;

    rv = ngx_http_smarty_redis_mode(cf, rmcf, NGX_HTTP_SMARTY_REDIS_SENTINEL);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (*p <= ' ' || *p >= 0x7f) {
            break;
        }
    }

    if (value[1].len == 0 || value[1].len > 128
        || p != value[1].data + value[1].len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_sentinel\": invalid master name "
                           "\"%V\" (\"smarty_redis_sentinel mymaster "
                           "10.0.0.1:26379 ...\")", &value[1]);
        return NGX_CONF_ERROR;
    }

    rmcf->master = value[1];

    return ngx_http_smarty_redis_addrs(cf, rmcf, 2);
}


/*
 * host:port (the port defaults to 6379; a name resolved now, never in a
 * worker: the first address) or, where unix_ok, unix:/path; host comes
 * out numeric and NUL-terminated, port 0 for a unix socket.
 */

static ngx_int_t
ngx_http_smarty_redis_parse_addr(ngx_conf_t *cf, ngx_str_t *value,
    ngx_uint_t unix_ok, ngx_str_t *addr, ngx_str_t *host, ngx_int_t *port)
{
    ngx_str_t            *args;
    ngx_url_t             u;
    struct sockaddr_un   *saun;

    args = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of the \"%V\" directive",
                               u.err, &u.url, &args[0]);
        }

        return NGX_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\" has no address", &args[0],
                           &u.url);
        return NGX_ERROR;
    }

    *addr = *value;

    if (u.family == AF_UNIX) {
        if (!unix_ok) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" takes host:port addresses, not "
                               "\"%V\"", &args[0], &u.url);
            return NGX_ERROR;
        }

        saun = (struct sockaddr_un *) u.addrs[0].sockaddr;

        host->len = ngx_strlen(saun->sun_path);
        host->data = ngx_pnalloc(cf->pool, host->len + 1);
        if (host->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(host->data, saun->sun_path, host->len + 1);
        *port = 0;

        return NGX_OK;
    }

    if (u.naddrs > 1) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"%V\" \"%V\" has %ui addresses, only the "
                           "first one, %V, is used", &args[0],
                           &u.url, u.naddrs, &u.addrs[0].name);
    }

    /* hiredis gets a numeric address: it never resolves (blocks) */

    host->data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (host->data == NULL) {
        return NGX_ERROR;
    }

    switch (u.addrs[0].sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        host->len = ngx_inet_ntop(AF_INET6,
                           &((struct sockaddr_in6 *) u.addrs[0].sockaddr)
                                ->sin6_addr,
                           host->data, NGX_SOCKADDR_STRLEN);
        break;
#endif

    default: /* AF_INET */
        host->len = ngx_inet_ntop(AF_INET,
                           &((struct sockaddr_in *) u.addrs[0].sockaddr)
                                ->sin_addr,
                           host->data, NGX_SOCKADDR_STRLEN);
        break;
    }

    host->data[host->len] = '\0';

    *port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_OK;
}


/*
 * smarty_redis_password_file path, smarty_redis_sentinel_password_file
 * path: AUTH on connect; never logged
 */

static char *
ngx_http_smarty_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    u_char     *c;
    ngx_str_t  *value, *password, path, raw;

    password = (ngx_str_t *) (p + cmd->offset);

    if (password->data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_http_smarty_secret_read(cf, &path, "redis password",
                                    NGX_HTTP_SMARTY_REDIS_PASSWORD_MAX, &raw)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (c = raw.data; c < raw.data + raw.len; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\0') {
            ngx_http_smarty_secret_wipe(&raw);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "redis password file \"%V\" must hold the "
                               "password on one line", &path);
            return NGX_CONF_ERROR;
        }
    }

    password->data = ngx_pnalloc(cf->pool, raw.len);
    if (password->data == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(password->data, raw.data, raw.len);
    password->len = raw.len;

    ngx_http_smarty_secret_wipe(&raw);

    return NGX_CONF_OK;
}


/* smarty_redis_breaker failures=N cooldown=time | off */

static char *
ngx_http_smarty_redis_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    ngx_str_t   *value, s;
    ngx_int_t    n;
    ngx_uint_t   i;

    if (rmcf->settings.breaker_failures != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        rmcf->settings.breaker_failures = 0;
        rmcf->settings.breaker_cooldown = 0;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "failures=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);

            if (n == NGX_ERROR || n < 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"smarty_redis_breaker\": invalid "
                                   "\"%V\", failures must be a number of "
                                   "1 or more", &value[i]);
                return NGX_CONF_ERROR;
            }

            rmcf->settings.breaker_failures = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cooldown=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"smarty_redis_breaker\": invalid "
                                   "\"%V\", cooldown must be a time above "
                                   "0 (\"5s\", \"500ms\")", &value[i]);
                return NGX_CONF_ERROR;
            }

            rmcf->settings.breaker_cooldown = (ngx_msec_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_breaker\": unknown parameter "
                           "\"%V\" (failures=N cooldown=time, or off)",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (rmcf->settings.breaker_failures == NGX_CONF_UNSET) {
        rmcf->settings.breaker_failures = 5;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_smarty_redis_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be above 0";
    }

    return NGX_CONF_OK;
}


/* --- the worker ---------------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_smarty_redis_main_conf_t  *rmcf;

    ngx_http_smarty_redis_node = NULL;
    ngx_http_smarty_redis_cl = NULL;
    ngx_http_smarty_redis_st = NULL;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_smarty_redis_module);

    if (rmcf == NULL) {
        return NGX_OK;
    }

    switch (rmcf->mode) {

    case NGX_HTTP_SMARTY_REDIS_SINGLE:
        ngx_http_smarty_redis_node = ngx_http_smarty_redis_node_create(
                                          &rmcf->settings, &rmcf->addr,
                                          &rmcf->host, rmcf->port, 0, NULL,
                                          cycle->log);

        return ngx_http_smarty_redis_node ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_SMARTY_REDIS_CLUSTER:
        ngx_http_smarty_redis_cl = ngx_http_smarty_redis_cluster_create(
                                          &rmcf->settings, rmcf->addrs->elts,
                                          rmcf->addrs->nelts, cycle->log);

        return ngx_http_smarty_redis_cl ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_SMARTY_REDIS_SENTINEL:
        ngx_http_smarty_redis_st = ngx_http_smarty_redis_sentinel_create(
                                          &rmcf->settings,
                                          &rmcf->sentinel_settings,
                                          &rmcf->master, rmcf->addrs->elts,
                                          rmcf->addrs->nelts, cycle->log);

        return ngx_http_smarty_redis_st ? NGX_OK : NGX_ERROR;

    default:
        /* no Redis: every command is answered "not_configured" */
        return NGX_OK;
    }
}


static void
ngx_http_smarty_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_smarty_redis_node != NULL) {
        ngx_http_smarty_redis_node_close(ngx_http_smarty_redis_node);
    }

    if (ngx_http_smarty_redis_cl != NULL) {
        ngx_http_smarty_redis_cluster_close(ngx_http_smarty_redis_cl);
    }

    if (ngx_http_smarty_redis_st != NULL) {
        ngx_http_smarty_redis_sentinel_close(ngx_http_smarty_redis_st);
    }
}
