/*
 * smarty-gateway: Redis, the module: its directives, the worker's nodes,
 * the command and script API (see ngx_http_smarty_redis.h, docs/redis.md).
 */

#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_secret.h"

#include <openssl/evp.h>


#define NGX_HTTP_SMARTY_REDIS_PASSWORD_MAX 1024


typedef struct {
    ngx_str_t                           addr;     /* as configured */
    ngx_str_t                           host;     /* numeric IP or unix
                                                     path */
    ngx_int_t                           port;     /* 0: a unix socket */
    ngx_http_smarty_redis_settings_t    settings;
} ngx_http_smarty_redis_main_conf_t;


static void ngx_http_smarty_redis_send(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_msec_t timeout);
static void ngx_http_smarty_redis_unconfigured(ngx_event_t *ev);

static void *ngx_http_smarty_redis_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_redis_init_main_conf(ngx_conf_t *cf,
    void *conf);
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


/* the worker's node: NULL without "smarty_redis" */
static ngx_http_smarty_redis_node_t  *ngx_http_smarty_redis_node;

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

    { ngx_string("smarty_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
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
    int                           i;
    u_char                       *p;
    size_t                        size;
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (argc < 1 || argv == NULL || argvlen == NULL || handler == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "smarty_redis: a command without arguments");
        return NULL;
    }

    /* the struct, then its argv, argvlen and the bytes: its own memory */

    size = sizeof(ngx_http_smarty_redis_cmd_t)
           + argc * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    cmd = ngx_calloc(size, ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->user = 1;
    cmd->argc = argc;
    cmd->argv = (const char **) (cmd + 1);
    cmd->argvlen = (size_t *) (cmd->argv + argc);
    p = (u_char *) (cmd->argvlen + argc);

    for (i = 0; i < argc; i++) {
        cmd->argv[i] = (const char *) p;
        cmd->argvlen[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
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
    u_char                       *p;
    size_t                        size;
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (script >= NGX_HTTP_SMARTY_REDIS_LUA_N || nkeys < 0 || argc < nkeys
        || (argc > 0 && (argv == NULL || argvlen == NULL)) || handler == NULL)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "smarty_redis: a script call with bad arguments");
        return NULL;
    }

    /* the struct, then EVALSHA's argv, argvlen, nkeys' text, the bytes */

    n = argc + 3;

    size = sizeof(ngx_http_smarty_redis_cmd_t)
           + n * (sizeof(char *) + sizeof(size_t)) + NGX_INT_T_LEN + 1;

    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    cmd = ngx_calloc(size, ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->user = 1;
    cmd->script = script;
    cmd->script_name = ngx_http_smarty_redis_lua[script].name;
    cmd->script_text = ngx_http_smarty_redis_lua[script].text;
    cmd->script_len = ngx_http_smarty_redis_lua[script].len;

    cmd->argc = n;
    cmd->argv = (const char **) (cmd + 1);
    cmd->argvlen = (size_t *) (cmd->argv + n);
    p = (u_char *) (cmd->argvlen + n);

    cmd->argv[0] = "EVALSHA";
    cmd->argvlen[0] = sizeof("EVALSHA") - 1;
    cmd->argv[1] = ngx_http_smarty_redis_sha1[script];
    cmd->argvlen[1] = 40;
    cmd->argv[2] = (const char *) p;
    p = ngx_sprintf(p, "%d", nkeys);
    cmd->argvlen[2] = p - (u_char *) cmd->argv[2];

    for (i = 0; i < argc; i++) {
        cmd->argv[i + 3] = (const char *) p;
        cmd->argvlen[i + 3] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    ngx_http_smarty_redis_send(cmd, timeout);

    return cmd;
}


/*
 * Sends the command to its node, or answers it later (posted): refused,
 * not configured.
 */

static void
ngx_http_smarty_redis_send(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_msec_t timeout)
{
    if (ngx_http_smarty_redis_node == NULL) {
        cmd->status = NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED;
        cmd->decided = 1;
        cmd->ev.data = cmd;
        cmd->ev.log = ngx_cycle->log;
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

    if (cmd->node == NULL) {
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
    return ngx_http_smarty_redis_node != NULL
           && ngx_http_smarty_redis_node_ready(ngx_http_smarty_redis_node);
}


ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_state(void)
{
    if (ngx_http_smarty_redis_node == NULL) {
        return NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED;
    }

    return ngx_http_smarty_redis_node_state(ngx_http_smarty_redis_node);
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
     *     rmcf->addr = { 0, NULL };
     *     rmcf->host = { 0, NULL };
     *     rmcf->settings.password = { 0, NULL };
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


/* smarty_redis host:port | unix:/path */

static char *
ngx_http_smarty_redis_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    u_char               *p;
    ngx_str_t            *value;
    ngx_url_t             u;
    struct sockaddr_un   *saun;

    if (rmcf->host.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of the \"smarty_redis\" "
                               "directive", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis\" \"%V\" has no address", &u.url);
        return NGX_CONF_ERROR;
    }

    rmcf->addr = value[1];

    if (u.family == AF_UNIX) {
        saun = (struct sockaddr_un *) u.addrs[0].sockaddr;

        rmcf->host.len = ngx_strlen(saun->sun_path);
        rmcf->host.data = ngx_pnalloc(cf->pool, rmcf->host.len + 1);
        if (rmcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(rmcf->host.data, saun->sun_path, rmcf->host.len + 1);
        rmcf->port = 0;

        return NGX_CONF_OK;
    }

    if (u.naddrs > 1) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"smarty_redis\" \"%V\" has %ui addresses, "
                           "only the first one, %V, is used",
                           &u.url, u.naddrs, &u.addrs[0].name);
    }

    /* hiredis gets a numeric address: it never resolves (blocks) */

    rmcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rmcf->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    switch (u.addrs[0].sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        rmcf->host.len = ngx_inet_ntop(AF_INET6,
                           &((struct sockaddr_in6 *) u.addrs[0].sockaddr)
                                ->sin6_addr,
                           rmcf->host.data, NGX_SOCKADDR_STRLEN);
        break;
#endif

    default: /* AF_INET */
        rmcf->host.len = ngx_inet_ntop(AF_INET,
                           &((struct sockaddr_in *) u.addrs[0].sockaddr)
                                ->sin_addr,
                           rmcf->host.data, NGX_SOCKADDR_STRLEN);
        break;
    }

    p = rmcf->host.data + rmcf->host.len;
    *p = '\0';

    rmcf->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_CONF_OK;
}


/* smarty_redis_password_file path: AUTH on connect; never logged */

static char *
ngx_http_smarty_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    u_char     *p;
    ngx_str_t  *value, path, raw;

    if (rmcf->settings.password.data != NULL) {
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

    for (p = raw.data; p < raw.data + raw.len; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\0') {
            ngx_http_smarty_secret_wipe(&raw);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "redis password file \"%V\" must hold the "
                               "password on one line", &path);
            return NGX_CONF_ERROR;
        }
    }

    rmcf->settings.password.data = ngx_pnalloc(cf->pool, raw.len);
    if (rmcf->settings.password.data == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(rmcf->settings.password.data, raw.data, raw.len);
    rmcf->settings.password.len = raw.len;

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

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_smarty_redis_module);

    if (rmcf == NULL || rmcf->host.data == NULL) {
        /* no Redis: every command is answered "not_configured" */
        return NGX_OK;
    }

    ngx_http_smarty_redis_node = ngx_http_smarty_redis_node_create(
                                          &rmcf->settings, &rmcf->addr,
                                          &rmcf->host, rmcf->port, cycle->log);

    return ngx_http_smarty_redis_node ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_smarty_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_smarty_redis_node != NULL) {
        ngx_http_smarty_redis_node_close(ngx_http_smarty_redis_node);
    }
}
