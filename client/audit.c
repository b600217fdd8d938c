/*
 * smarty: "smarty audit": the gateway's audit trail, read through its
 * operator's view (GET /audit, docs/audit.md), with an operator's key:
 *
 *   smarty audit [--client NAME] [--space N] [--method M] [--image HEX]
 *                [--image-file FILE] [--person ID] [--status CODE]
 *                [--since TIME] [--until TIME] [--limit N] [--follow]
 *                [--format table|jsonl] [-u URL] [-k KEY | --key-file F]
 *
 * The latest --limit records that pass the filters, oldest first, as a
 * table on a terminal and JSON lines otherwise; --follow then prints the
 * new ones as they come (polling the view: the gateway never blocks on
 * the stream).  The filters are the view's, but --image-file, which is
 * hashed here.  See client/README.md, "The audit trail".
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "smarty_client.h"


#define SMARTY_AUDIT_PAGE       1000      /* the view's most */
#define SMARTY_AUDIT_ANSWER     (64 * 1024 * 1024)


typedef struct {
    const char   *base;          /* the gateway's base URL */
    const char   *view;          /* "/audit" */
    char         *key;
    smarty_buf_t  filters;       /* "&client=...&space=..." */
    long          limit;         /* 0: all in the range */
    double        interval;
    double        timeout;
    int           table;
    CURL         *curl;
} smarty_audit_t;


static int smarty_audit_filter(smarty_audit_t *a, const char *name,
    const char *value);
static int smarty_audit_time(const char *arg, long long *ms);
static int smarty_audit_hash_file(const char *path, char *hex);
static int smarty_audit_get(smarty_audit_t *a, const char *query,
    json_t **answer);
static size_t smarty_audit_write(char *p, size_t size, size_t n, void *ud);
static void smarty_audit_print(smarty_audit_t *a, json_t *rec);
static void smarty_audit_header(smarty_audit_t *a);
static const char *smarty_audit_str(json_t *rec, const char *name);
static void smarty_audit_stop(int sig);


static volatile sig_atomic_t  smarty_audit_stopping;


int
smarty_audit_main(int argc, char **argv)
{
    int              c, rc, follow;
    char            *end, hex[65], num[32];
    const char      *url_arg, *key_arg, *key_file, *format, *env, *next;
    long long        ms;
    size_t           i, n, total;
    json_t          *answer, *records, *all, *rec, *v;
    struct timespec  ts;
    smarty_buf_t     q;
    smarty_audit_t   a;

    static const struct option  opts[] = {
        { "url",        required_argument, NULL, 'u' },
        { "key",        required_argument, NULL, 'k' },
        { "key-file",   required_argument, NULL, 'K' },
        { "client",     required_argument, NULL, 'c' },
        { "space",      required_argument, NULL, 's' },
        { "method",     required_argument, NULL, 'm' },
        { "image",      required_argument, NULL, 'i' },
        { "image-file", required_argument, NULL, 'I' },
        { "person",     required_argument, NULL, 'p' },
        { "status",     required_argument, NULL, 'S' },
        { "since",      required_argument, NULL, 'F' },
        { "until",      required_argument, NULL, 'U' },
        { "limit",      required_argument, NULL, 'n' },
        { "follow",     no_argument,       NULL, 'f' },
        { "interval",   required_argument, NULL, 'w' },
        { "format",     required_argument, NULL, 'o' },
        { "view",       required_argument, NULL, 'V' },
        { "timeout",    required_argument, NULL, 'T' },
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&a, 0, sizeof(a));
    ms = 0;
    a.view = "/audit";
    a.limit = -1;
    a.interval = 1;
    a.timeout = 30;

    url_arg = NULL;
    key_arg = NULL;
    key_file = NULL;
    format = NULL;
    follow = 0;
    opterr = 0;
    rc = -1;

    while (rc == -1
           && (c = getopt_long(argc, argv, ":u:k:n:fh", opts, NULL)) != -1)
    {
        switch (c) {

        case 'u':
            url_arg = optarg;
            break;

        case 'k':
            key_arg = optarg;
            break;

        case 'K':
            key_file = optarg;
            break;

        case 'c':
            rc = smarty_audit_filter(&a, "client", optarg);
            break;

        case 's':
            if (strlen(optarg) != 1 || optarg[0] < '0' || optarg[0] > '9') {
                rc = smarty_usage_error("audit: --space is 0 to 9, not "
                                        "\"%s\"", optarg);
                break;
            }

            rc = smarty_audit_filter(&a, "space", optarg);
            break;

        case 'm':
            rc = smarty_audit_filter(&a, "method", optarg);
            break;

        case 'i':
            rc = smarty_audit_filter(&a, "image", optarg);
            break;

        case 'I':
            rc = smarty_audit_hash_file(optarg, hex);
            if (rc == -1) {
                rc = smarty_audit_filter(&a, "image", hex);
            }
            break;

        case 'p':
            rc = smarty_audit_filter(&a, "person", optarg);
            break;

        case 'S':
            rc = smarty_audit_filter(&a, "status", optarg);
            break;

        case 'F':
        case 'U':
            rc = smarty_audit_time(optarg, &ms);
            if (rc == -1) {
                snprintf(num, sizeof(num), "%lld", ms);
                rc = smarty_audit_filter(&a, c == 'F' ? "from" : "to", num);
            }
            break;

        case 'n':
            errno = 0;
            a.limit = strtol(optarg, &end, 10);

            if (errno || end == optarg || *end || a.limit < 0) {
                rc = smarty_usage_error("audit: --limit wants a number of 0 "
                                        "or more (0: all), not \"%s\"",
                                        optarg);
            }
            break;

        case 'f':
            follow = 1;
            break;

        case 'w':
        case 'T':
            errno = 0;
            (c == 'w' ? &a.interval : &a.timeout)[0] = strtod(optarg, &end);

            if (errno || end == optarg || *end
                || (c == 'w' ? a.interval : a.timeout) < 0.1)
            {
                rc = smarty_usage_error("audit: --%s wants seconds, 0.1 or "
                                        "more, not \"%s\"",
                                        c == 'w' ? "interval" : "timeout",
                                        optarg);
            }
            break;

        case 'o':
            format = optarg;
            break;

        case 'V':
            a.view = optarg;
            break;

        case 'h':
            smarty_help();
            rc = SMARTY_EXIT_OK;
            break;

        case ':':
            rc = smarty_usage_error("audit: %s needs a value",
                                    argv[optind - 1]);
            break;

        default:
            rc = smarty_usage_error("audit: unknown option \"%s\"",
                                    argv[optind - 1]);
            break;
        }
    }

    if (rc == -1 && optind < argc) {
        rc = smarty_usage_error("audit: unexpected argument \"%s\"",
                                argv[optind]);
    }

    if (rc == -1 && format != NULL && strcmp(format, "table") != 0
        && strcmp(format, "jsonl") != 0 && strcmp(format, "json") != 0)
    {
        rc = smarty_usage_error("audit: --format is table or jsonl, not "
                                "\"%s\"", format);
    }

    if (rc == -1) {
        if (url_arg == NULL) {
            env = getenv("SMARTY_URL");
            url_arg = env != NULL && env[0] != '\0' ? env : NULL;
        }

        if (url_arg == NULL) {
            rc = smarty_usage_error("audit: where is the gateway? give its "
                                    "base URL with -u (such as "
                                    "http://127.0.0.1:8080) or SMARTY_URL");

        } else if (smarty_url_check(url_arg) != 0) {
            rc = SMARTY_EXIT_USAGE;
        }
    }

    if (rc == -1) {
        rc = smarty_key_get(key_arg, key_file, &a.key);

        if (rc == -1 && a.key == NULL) {
            rc = smarty_usage_error("audit: an operator's key is needed: "
                                    "SMARTY_KEY, --key-file or -k");
        }
    }

    if (rc != -1) {
        smarty_buf_free(&a.filters);
        free(a.key);
        return rc;
    }

    smarty_secret_key = a.key;
    a.base = url_arg;
    a.table = format ? strcmp(format, "table") == 0 : isatty(STDOUT_FILENO);

    if (a.limit < 0) {
        a.limit = follow ? 10 : 50;
    }

    a.curl = curl_easy_init();
    if (a.curl == NULL) {
        fprintf(stderr, "smarty: audit: libcurl failed to start\n");
        return SMARTY_EXIT_TRANSPORT;
    }

    memset(&q, 0, sizeof(q));
    all = json_array();
    rc = SMARTY_EXIT_OK;

    /* the latest records, newest first, page by page */

    next = NULL;
    total = 0;

    while (all != NULL && (a.limit == 0 || total < (size_t) a.limit)) {
        q.len = 0;
        n = a.limit ? (size_t) a.limit - total : SMARTY_AUDIT_PAGE;
        smarty_buf_printf(&q, "order=desc&limit=%zu%s%s%.*s",
                          n > SMARTY_AUDIT_PAGE ? SMARTY_AUDIT_PAGE : n,
                          next ? "&before=" : "", next ? next : "",
                          (int) a.filters.len,
                          a.filters.data ? a.filters.data : "");

        rc = smarty_audit_get(&a, q.data, &answer);
        if (rc != SMARTY_EXIT_OK) {
            break;
        }

        records = json_object_get(answer, "records");

        json_array_foreach(records, i, rec) {
            json_array_append(all, rec);
            total++;
        }

        v = json_object_get(answer, "next");
        free((char *) next);
        next = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
        json_decref(answer);

        if (next == NULL) {
            break;
        }
    }

    free((char *) next);

    if (rc == SMARTY_EXIT_OK) {
        smarty_audit_header(&a);

        for (i = json_array_size(all); i > 0; i--) {
            smarty_audit_print(&a, json_array_get(all, i - 1));
        }

        fflush(stdout);
    }

    /* then what comes: from the newest entry of the stream on */

    if (rc == SMARTY_EXIT_OK && follow) {
        signal(SIGINT, smarty_audit_stop);
        signal(SIGTERM, smarty_audit_stop);

        rc = smarty_audit_get(&a, "order=desc&limit=1", &answer);
        next = NULL;

        if (rc == SMARTY_EXIT_OK) {
            v = json_object_get(answer, "last");
            next = json_is_string(v) ? strdup(json_string_value(v))
                                     : strdup("0-0");
            json_decref(answer);
        }

        while (rc == SMARTY_EXIT_OK && !smarty_audit_stopping) {
            q.len = 0;
            smarty_buf_printf(&q, "order=asc&limit=%d&after=%s%.*s",
                              SMARTY_AUDIT_PAGE, next,
                              (int) a.filters.len,
                              a.filters.data ? a.filters.data : "");

            rc = smarty_audit_get(&a, q.data, &answer);

            if (rc == SMARTY_EXIT_TRANSPORT && smarty_audit_stopping) {
                rc = SMARTY_EXIT_OK;
                break;
            }

            if (rc != SMARTY_EXIT_OK) {
                break;
            }

            json_array_foreach(json_object_get(answer, "records"), i, rec) {
                smarty_audit_print(&a, rec);
            }

            fflush(stdout);

            v = json_object_get(answer, "last");

            if (json_is_string(v)) {
                free((char *) next);
                next = strdup(json_string_value(v));
            }

            c = json_is_string(json_object_get(answer, "next"));
            json_decref(answer);

            if (next == NULL) {
                perror("smarty");
                rc = SMARTY_EXIT_USAGE;
                break;
            }

            if (!c) {
                /* nothing more for now */
                ts.tv_sec = (time_t) a.interval;
                ts.tv_nsec = (long) ((a.interval - ts.tv_sec) * 1e9);
                nanosleep(&ts, NULL);
            }
        }

        free((char *) next);
    }

    json_decref(all);
    smarty_buf_free(&q);
    smarty_buf_free(&a.filters);
    curl_easy_cleanup(a.curl);
    free(a.key);

    return rc;
}


/* a filter of the view's query, percent-encoded */

static int
smarty_audit_filter(smarty_audit_t *a, const char *name, const char *value)
{
    char  *e;

    e = curl_easy_escape(NULL, value, 0);
    if (e == NULL) {
        perror("smarty");
        return SMARTY_EXIT_USAGE;
    }

    smarty_buf_printf(&a->filters, "&%s=%s", name, e);
    curl_free(e);

    return -1;
}


/*
 * --since, --until: "now"; an age, "90s", "15m", "2h", "7d"; a UTC date
 * and time, "2024-05-01", "2024-05-01T12:00", "2024-05-01 12:00:30"
 * (a trailing Z is allowed); into Unix milliseconds.
 */

static int
smarty_audit_time(const char *arg, long long *ms)
{
    int              y, mo, d, h, mi, s, n;
    char            *end, zone[4];
    double           v;
    long long        now;
    struct tm        tm;
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    if (strcmp(arg, "now") == 0) {
        *ms = now;
        return -1;
    }

    errno = 0;
    v = strtod(arg, &end);

    if (errno == 0 && end != arg && v >= 0 && end[0] != '\0'
        && end[1] == '\0' && strchr("smhd", end[0]) != NULL)
    {
        v *= end[0] == 's' ? 1 : end[0] == 'm' ? 60
                               : end[0] == 'h' ? 3600 : 86400;
        *ms = now - (long long) (v * 1000);
        return -1;
    }

    h = mi = s = 0;
    zone[0] = '\0';

    n = sscanf(arg, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%3s", &y, &mo, &d, &h,
               &mi, &s, zone);

    if (n < 6) {
        s = 0;
        n = sscanf(arg, "%4d-%2d-%2d%*1[T ]%2d:%2d%3s", &y, &mo, &d, &h, &mi,
                   zone);
        n = (n >= 5) ? 6 + (n == 6) : n;
    }

    if (n < 6) {
        h = mi = 0;
        zone[0] = '\0';
        n = sscanf(arg, "%4d-%2d-%2d%3s", &y, &mo, &d, zone);
        n = (n >= 3) ? 6 + (n == 4) : n;
    }

    if (n < 6 || (zone[0] != '\0' && strcmp(zone, "Z") != 0)
        || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59
        || s > 60)
    {
        return smarty_usage_error("audit: \"%s\" is not a time: \"now\", "
                                  "an age (90s, 15m, 2h, 7d) or a UTC date "
                                  "and time (2024-05-01T12:00:00Z)", arg);
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;

    *ms = (long long) timegm(&tm) * 1000;

    return -1;
}


/* the SHA-256 of a file, as the gateway has it of an image part */

static int
smarty_audit_hash_file(const char *path, char *hex)
{
    FILE           *f;
    size_t          n, i;
    unsigned int    len;
    EVP_MD_CTX     *md;
    unsigned char   buf[65536], h[EVP_MAX_MD_SIZE];

    f = fopen(path, "rb");
    if (f == NULL) {
        return smarty_usage_error("audit: cannot read \"%s\": %s", path,
                                  strerror(errno));
    }

    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        fclose(f);
        EVP_MD_CTX_free(md);
        fprintf(stderr, "smarty: audit: SHA-256 is not available\n");
        return SMARTY_EXIT_USAGE;
    }

    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        EVP_DigestUpdate(md, buf, n);
    }

    if (ferror(f)) {
        fclose(f);
        EVP_MD_CTX_free(md);
        return smarty_usage_error("audit: cannot read \"%s\": %s", path,
                                  strerror(errno));
    }

    fclose(f);
    EVP_DigestFinal_ex(md, h, &len);
    EVP_MD_CTX_free(md);

    for (i = 0; i < len && i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    }

    hex[64] = '\0';

    return -1;
}


/* one GET of the view: SMARTY_EXIT_OK with *answer, or an exit status */

static int
smarty_audit_get(smarty_audit_t *a, const char *query, json_t **answer)
{
    long                 http;
    char                *auth;
    CURLcode             cc;
    json_t              *j, *body;
    smarty_buf_t         url, out;
    struct curl_slist   *headers;

    memset(&url, 0, sizeof(url));
    memset(&out, 0, sizeof(out));
    *answer = NULL;

    /* base + view, one "/" between them */
    smarty_buf_printf(&url, "%s%s?%s", a->base,
                      a->base[strlen(a->base) - 1] == '/' && a->view[0] == '/'
                      ? a->view + 1 : a->view, query);

    auth = malloc(strlen(a->key) + sizeof("Authorization: Bearer "));
    if (auth == NULL || url.data == NULL) {
        free(auth);
        smarty_buf_free(&url);
        perror("smarty");
        return SMARTY_EXIT_USAGE;
    }

    sprintf(auth, "Authorization: Bearer %s", a->key);
    headers = curl_slist_append(NULL, auth);

    curl_easy_reset(a->curl);
    curl_easy_setopt(a->curl, CURLOPT_URL, url.data);
    curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(a->curl, CURLOPT_USERAGENT, "smarty-client/1.0");
    curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, smarty_audit_write);
    curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, (long) (a->timeout * 1000));
    curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS_STR, "http,https");

    cc = curl_easy_perform(a->curl);

    curl_slist_free_all(headers);
    OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    smarty_buf_free(&url);

    if (cc != CURLE_OK) {
        smarty_buf_free(&out);

        if (!smarty_audit_stopping) {
            fprintf(stderr, "smarty: audit: %s\n", curl_easy_strerror(cc));
        }

        return SMARTY_EXIT_TRANSPORT;
    }

    curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &http);

    j = out.data ? json_loadb(out.data, out.len, 0, NULL) : NULL;
    smarty_buf_free(&out);

    if (http != 200 || !json_is_array(json_object_get(j, "records"))) {
        body = json_object_get(j, "body");

        fprintf(stderr, "smarty: audit: the gateway answered HTTP %ld%s%s%s"
                "%s\n", http,
                json_is_string(json_object_get(body, "error")) ? ": " : "",
                json_is_string(json_object_get(body, "error"))
                ? json_string_value(json_object_get(body, "error")) : "",
                json_is_string(json_object_get(body, "code")) ? " " : "",
                json_is_string(json_object_get(body, "code"))
                ? json_string_value(json_object_get(body, "code")) : "");

        if (http == 404) {
            fprintf(stderr, "smarty: audit: is there a location with "
                    "smarty_audit_view at %s (--view)?\n", a->view);
        }

        json_decref(j);

        return http >= 500 ? SMARTY_EXIT_TRANSPORT : SMARTY_EXIT_API;
    }

    *answer = j;

    return SMARTY_EXIT_OK;
}


static size_t
smarty_audit_write(char *p, size_t size, size_t n, void *ud)
{
    smarty_buf_t  *out = ud;

    if (out->len + size * n > SMARTY_AUDIT_ANSWER
        || smarty_buf_add(out, p, size * n) != 0)
    {
        return 0;
    }

    return size * n;
}


/* --- output -------------------------------------------------------------- */


static void
smarty_audit_header(smarty_audit_t *a)
{
    if (a->table) {
        printf("%-23s %-12s %-12s %-17s %2s %4s %-7s %-22s %3s %-26s %6s\n",
               "TIME", "INSTANCE", "CLIENT", "METHOD", "SP", "IMG", "CACHE",
               "QUOTA", "ST", "ERROR", "MS");
    }
}


static void
smarty_audit_print(smarty_audit_t *a, json_t *rec)
{
    char         *line, time[24];
    const char   *s, *q;

    if (!a->table) {
        line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line != NULL) {
            puts(line);
            free(line);
        }
        return;
    }

    /* 2024-05-01T12:00:00.123Z -> 2024-05-01 12:00:00.123 */
    s = smarty_audit_str(rec, "time");
    snprintf(time, sizeof(time), "%.23s", s);
    if (strlen(time) > 10 && time[10] == 'T') {
        time[10] = ' ';
    }

    /* a quota names its limit when it decided one */
    q = smarty_audit_str(rec, "quota_limit");
    q = q[0] ? q : smarty_audit_str(rec, "quota");

    printf("%-23s %-12.12s %-12.12s %-17.17s %2s %4lld %-7.7s %-22.22s "
           "%3lld %-26.26s %6lld\n",
           time, smarty_audit_str(rec, "instance"),
           smarty_audit_str(rec, "client"), smarty_audit_str(rec, "method"),
           smarty_audit_str(rec, "space"),
           (long long) json_integer_value(json_object_get(rec, "images")),
           smarty_audit_str(rec, "cache"), q,
           (long long) json_integer_value(json_object_get(rec, "status")),
           smarty_audit_str(rec, "error"),
           (long long) json_integer_value(json_object_get(rec,
                                                          "duration_ms")));
}


static const char *
smarty_audit_str(json_t *rec, const char *name)
{
    json_t  *v;

    v = json_object_get(rec, name);

    return json_is_string(v) ? json_string_value(v) : "";
}


static void
smarty_audit_stop(int sig)
{
    smarty_audit_stopping = 1;
}
