/*
 * smarty: the command-line client of the Smarty face-recognition API and of
 * smarty-gateway, a C successor of the API's smarty.py.  main hands the
 * commands to keygen.c, audit.c and batch.c; the one-call mode is here:
 *
 *   smarty -u URL [-p FILE]... [--meta JSON] [-k KEY] [-v]
 *
 * It POSTs multipart/form-data: a "meta" part with the JSON object, then
 * every photo as "file_0", "file_1", ... in the order given; prints the
 * answer on stdout (pretty-printed when it is JSON) and says in the exit
 * status how the call went.  See client/README.md.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "smarty_client.h"


#define SMARTY_ANSWER_MAX    (64 * 1024 * 1024)
#define SMARTY_USER_AGENT    "smarty-client/1.0"


typedef struct {
    const char  *path;
    const char  *filename;      /* base name of path */
    const char  *type;          /* guessed from the extension */
    char         name[32];      /* "file_N" */
    long long    size;          /* -1: not a regular file */
} smarty_photo_t;


typedef struct {
    const char      *url;
    smarty_photo_t  *photos;
    size_t           nphotos;
    const char      *meta_arg;
    char            *meta;          /* what is sent */
    int              meta_filled;   /* "images" was added by us */
    char            *key;
    double           timeout;
    int              verbose;
} smarty_call_t;


static int smarty_main_call(int argc, char **argv);
static int smarty_photo_check(smarty_photo_t *ph, size_t i);
static const char *smarty_content_type(const char *path);
static int smarty_meta_prepare(smarty_call_t *call);
static int smarty_perform(smarty_call_t *call);
static int smarty_verdict(long http, smarty_buf_t *answer);
static void smarty_print_answer(smarty_buf_t *answer);
static size_t smarty_write(char *p, size_t size, size_t n, void *ud);
static int smarty_debug(CURL *h, curl_infotype type, char *data, size_t size,
    void *ud);
static void smarty_vlog(const char *prefix, const char *s, size_t len);
static void smarty_mask_url(smarty_buf_t *out, const char *url);


int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "keygen") == 0) {
        return smarty_keygen_main(argc - 1, argv + 1);
    }

    if (argc > 1 && strcmp(argv[1], "audit") == 0) {
        return smarty_audit_main(argc - 1, argv + 1);
    }

    if (argc > 1 && strcmp(argv[1], "hash-key") == 0) {
        return smarty_hash_key_main(argc - 1, argv + 1);
    }

    if (argc > 1
        && (strcmp(argv[1], "recognize") == 0
            || strcmp(argv[1], "enroll") == 0
            || strcmp(argv[1], "delete") == 0
            || strcmp(argv[1], "truncate") == 0))
    {
        return smarty_batch_main(argv[0], argc - 1, argv + 1);
    }

    return smarty_main_call(argc, argv);
}


static int
smarty_main_call(int argc, char **argv)
{
    int             c, rc;
    char           *end;
    size_t          i;
    smarty_call_t   call;
    const char     *key_arg, *key_file;

    static const struct option  opts[] = {
        { "url",      required_argument, NULL, 'u' },
        { "photo",    required_argument, NULL, 'p' },
        { "meta",     required_argument, NULL, 'M' },
        { "key",      required_argument, NULL, 'k' },
        { "key-file", required_argument, NULL, 'K' },
        { "timeout",  required_argument, NULL, 'T' },
        { "verbose",  no_argument,       NULL, 'v' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&call, 0, sizeof(call));
    call.timeout = 60;
    key_arg = NULL;
    key_file = NULL;

    if (argc < 2) {
        return smarty_usage_error("no URL: smarty -u URL [-p FILE]... "
                                  "[--meta JSON]");
    }

    call.photos = calloc(argc, sizeof(smarty_photo_t));
    if (call.photos == NULL) {
        perror("smarty");
        return SMARTY_EXIT_USAGE;
    }

    opterr = 0;
    rc = -1;

    while (rc == -1
           && (c = getopt_long(argc, argv, ":u:p:k:vh", opts, NULL)) != -1)
    {
        switch (c) {

        case 'u':
            call.url = optarg;
            break;

        case 'p':
            call.photos[call.nphotos++].path = optarg;
            break;

        case 'M':
            call.meta_arg = optarg;
            break;

        case 'k':
            key_arg = optarg;
            break;

        case 'K':
            key_file = optarg;
            break;

        case 'T':
            errno = 0;
            call.timeout = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0'
                || !(call.timeout > 0) || call.timeout > 86400)
            {
                rc = smarty_usage_error("--timeout wants seconds, more than "
                                        "0 and at most 86400, not \"%s\"",
                                        optarg);
            }
            break;

        case 'v':
            call.verbose = 1;
            break;

        case 'h':
            smarty_help();
            rc = SMARTY_EXIT_OK;
            break;

        case ':':
            rc = smarty_usage_error("option \"%s\" needs a value",
                                    argv[optind - 1]);
            break;

        default:
            if (optopt != 0) {
                rc = smarty_usage_error("unknown option \"-%c\"", optopt);

            } else {
                rc = smarty_usage_error("unknown option \"%s\"",
                                        argv[optind - 1]);
            }

            break;
        }
    }

    if (rc == -1 && optind < argc) {
        rc = smarty_usage_error("unexpected argument \"%s\" (photos go "
                                "after -p)", argv[optind]);
    }

    if (rc == -1 && call.url == NULL) {
        rc = smarty_usage_error("-u URL is required");
    }

    if (rc == -1 && smarty_url_check(call.url) != 0) {
        rc = SMARTY_EXIT_USAGE;
    }

    if (rc == -1) {
        rc = smarty_key_get(key_arg, key_file, &call.key);
    }

    for (i = 0; rc == -1 && i < call.nphotos; i++) {
        rc = smarty_photo_check(&call.photos[i], i);
    }

    if (rc == -1) {
        rc = smarty_meta_prepare(&call);
    }

    if (rc == -1) {
        smarty_secret_key = call.key;
        rc = smarty_perform(&call);
    }

    if (call.key != NULL) {
        OPENSSL_cleanse(call.key, strlen(call.key));
        free(call.key);
    }

    free(smarty_secret_token);
    free(call.meta);
    free(call.photos);

    return rc;
}


static int
smarty_photo_check(smarty_photo_t *ph, size_t i)
{
    int          fd;
    struct stat  st;
    const char  *slash;

    fd = open(ph->path, O_RDONLY);
    if (fd == -1) {
        return smarty_usage_error("cannot read the photo \"%s\": %s",
                                  ph->path, strerror(errno));
    }

    if (fstat(fd, &st) == -1) {
        close(fd);
        return smarty_usage_error("cannot read the photo \"%s\": %s",
                                  ph->path, strerror(errno));
    }

    close(fd);

    if (S_ISDIR(st.st_mode)) {
        return smarty_usage_error("the photo \"%s\" is a directory",
                                  ph->path);
    }

    ph->size = S_ISREG(st.st_mode) ? (long long) st.st_size : -1;

    slash = strrchr(ph->path, '/');
    ph->filename = slash ? slash + 1 : ph->path;
    ph->type = smarty_content_type(ph->filename);
    snprintf(ph->name, sizeof(ph->name), "file_%zu", i);

    if (ph->filename[0] == '\0') {
        return smarty_usage_error("the photo \"%s\" is not a file name",
                                  ph->path);
    }

    return -1;
}


static const char *
smarty_content_type(const char *path)
{
    size_t       i;
    const char  *dot;

    static const struct {
        const char  *ext;
        const char  *type;
    } types[] = {
        { "jpg",  "image/jpeg" },
        { "jpeg", "image/jpeg" },
        { "jpe",  "image/jpeg" },
        { "jfif", "image/jpeg" },
        { "png",  "image/png" },
        { "gif",  "image/gif" },
        { "bmp",  "image/bmp" },
        { "webp", "image/webp" },
        { "tif",  "image/tiff" },
        { "tiff", "image/tiff" },
        { "heic", "image/heic" },
        { "heif", "image/heif" },
        { NULL, NULL }
    };

    dot = strrchr(path, '.');

    if (dot != NULL) {
        for (i = 0; types[i].ext != NULL; i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0) {
                return types[i].type;
            }
        }
    }

    return "application/octet-stream";
}


/*
 * Validates --meta and makes the text to send.  Without "images" and with
 * photos, "images":[{"name":"file_0"},...] is appended to the object's text
 * (the rest of the user's text is kept byte for byte: no re-encoding of
 * numbers or strings); with "images", the text goes as given.
 */

static int
smarty_meta_prepare(smarty_call_t *call)
{
    size_t         i, len;
    json_t        *root, *check;
    const char    *arg;
    json_error_t   err;
    smarty_buf_t   b;

    arg = call->meta_arg ? call->meta_arg : "{}";

    root = json_loads(arg, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        return smarty_usage_error("--meta is not valid JSON: %s (at "
                                  "character %d)", err.text, err.position);
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return smarty_usage_error("--meta must be a JSON object, such as "
                                  "'{\"space\":\"1\"}'");
    }

    if (json_object_get(root, "images") != NULL || call->nphotos == 0) {
        json_decref(root);
        call->meta = strdup(arg);
        return call->meta ? -1 : smarty_usage_error("out of memory");
    }

    /* the text ends with the object's "}": cut it and the blanks before */

    len = strlen(arg);

    while (len > 0 && strchr(" \t\r\n", arg[len - 1]) != NULL) {
        len--;
    }

    len--;

    while (len > 0 && strchr(" \t\r\n", arg[len - 1]) != NULL) {
        len--;
    }

    memset(&b, 0, sizeof(b));

    if (smarty_buf_add(&b, arg, len) != 0
        || smarty_buf_printf(&b, "%s\"images\":[",
                             json_object_size(root) ? "," : "") != 0)
    {
        goto nomem;
    }

    for (i = 0; i < call->nphotos; i++) {
        if (smarty_buf_printf(&b, "%s{\"name\":\"%s\"}", i ? "," : "",
                              call->photos[i].name) != 0)
        {
            goto nomem;
        }
    }

    if (smarty_buf_add(&b, "]}", 2) != 0) {
        goto nomem;
    }

    json_decref(root);

    /* paranoia: what we made must be the same object plus "images" */

    check = json_loads(b.data, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(check)) {
        json_decref(check);
        smarty_buf_free(&b);
        fprintf(stderr, "smarty: internal error: could not add \"images\" to "
                "--meta\n");
        return SMARTY_EXIT_USAGE;
    }

    json_decref(check);

    call->meta = b.data;
    call->meta_filled = 1;

    return -1;

nomem:

    json_decref(root);
    smarty_buf_free(&b);
    return smarty_usage_error("out of memory");
}


static int
smarty_perform(smarty_call_t *call)
{
    int                 rc;
    long                http, ms;
    char                errbuf[CURL_ERROR_SIZE];
    CURL               *h;
    size_t              i;
    CURLcode            cc;
    curl_mime          *mime;
    curl_mimepart      *part;
    smarty_buf_t        answer, auth, line;
    struct curl_slist  *headers, *l;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "smarty: cannot initialise libcurl\n");
        return SMARTY_EXIT_TRANSPORT;
    }

    h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "smarty: cannot initialise libcurl\n");
        curl_global_cleanup();
        return SMARTY_EXIT_TRANSPORT;
    }

    memset(&answer, 0, sizeof(answer));
    memset(&auth, 0, sizeof(auth));
    memset(&line, 0, sizeof(line));
    headers = NULL;
    rc = SMARTY_EXIT_TRANSPORT;

    /* the body: meta first, then the photos in order */

    mime = curl_mime_init(h);

    part = curl_mime_addpart(mime);
    curl_mime_name(part, "meta");
    curl_mime_data(part, call->meta, CURL_ZERO_TERMINATED);

    for (i = 0; i < call->nphotos; i++) {
        part = curl_mime_addpart(mime);
        curl_mime_name(part, call->photos[i].name);

        if (curl_mime_filedata(part, call->photos[i].path) != CURLE_OK) {
            rc = smarty_usage_error("cannot read the photo \"%s\"",
                                    call->photos[i].path);
            goto done;
        }

        curl_mime_filename(part, call->photos[i].filename);
        curl_mime_type(part, call->photos[i].type);
    }

    l = curl_slist_append(headers, "Accept: application/json");
    if (l == NULL) {
        goto nomem;
    }

    headers = l;

    if (call->key != NULL) {
        if (smarty_buf_printf(&auth, "Authorization: Bearer %s", call->key)
            != 0)
        {
            goto nomem;
        }

        l = curl_slist_append(headers, auth.data);
        OPENSSL_cleanse(auth.data, auth.len);

        if (l == NULL) {
            goto nomem;
        }

        headers = l;
    }

    errbuf[0] = '\0';

    /* at least 1 ms: 0 would mean no limit at all */
    ms = (long) (call->timeout * 1000);
    ms = ms > 0 ? ms : 1;

    curl_easy_setopt(h, CURLOPT_URL, call->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, SMARTY_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, smarty_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);

    if (call->verbose) {
        smarty_mask_url(&line, call->url);
        fprintf(stderr, "* URL: %s\n", line.data ? line.data : "");

        fprintf(stderr, "* key: %s\n",
                call->key ? "sent as \"Authorization: Bearer ***\""
                          : "none (no -k, --key-file, SMARTY_KEY)");

        fprintf(stderr, "* meta (%zu bytes%s): %s\n", strlen(call->meta),
                call->meta_filled ? ", \"images\" added from the photos" : "",
                call->meta);

        fprintf(stderr, "* part \"meta\": %zu bytes\n", strlen(call->meta));

        for (i = 0; i < call->nphotos; i++) {
            fprintf(stderr, "* part \"%s\": filename \"%s\", %s, ",
                    call->photos[i].name, call->photos[i].filename,
                    call->photos[i].type);

            if (call->photos[i].size >= 0) {
                fprintf(stderr, "%lld bytes\n", call->photos[i].size);

            } else {
                fprintf(stderr, "size unknown (not a regular file)\n");
            }
        }

        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, smarty_debug);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }

    cc = curl_easy_perform(h);

    if (cc != CURLE_OK) {
        smarty_buf_free(&line);
        smarty_mask(&line, errbuf[0] ? errbuf : curl_easy_strerror(cc),
                    strlen(errbuf[0] ? errbuf : curl_easy_strerror(cc)));
        fprintf(stderr, "smarty: transport failure: %.*s\n", (int) line.len,
                line.data ? line.data : "");
        rc = SMARTY_EXIT_TRANSPORT;

        if (call->verbose) {
            fprintf(stderr, "* exit status %d\n", rc);
        }

        goto done;
    }

    http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);

    smarty_print_answer(&answer);
    rc = smarty_verdict(http, &answer);

    if (call->verbose) {
        fprintf(stderr, "* exit status %d\n", rc);
    }

    goto done;

nomem:

    fprintf(stderr, "smarty: out of memory\n");
    rc = SMARTY_EXIT_TRANSPORT;

done:

    curl_easy_cleanup(h);
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    curl_global_cleanup();

    smarty_buf_free(&answer);
    smarty_buf_free(&auth);
    smarty_buf_free(&line);

    return rc;
}


static size_t
smarty_write(char *p, size_t size, size_t n, void *ud)
{
    smarty_buf_t  *b = ud;

    if (b->len + n > SMARTY_ANSWER_MAX) {
        fprintf(stderr, "smarty: the answer is larger than %d bytes\n",
                SMARTY_ANSWER_MAX);
        return 0;
    }

    return smarty_buf_add(b, p, n) == 0 ? n : 0;
}


static void
smarty_print_answer(smarty_buf_t *answer)
{
    json_t        *root;
    json_error_t   err;

    if (answer->len == 0) {
        return;
    }

    root = json_loadb(answer->data, answer->len, JSON_DECODE_ANY, &err);

    if (root != NULL) {
        /* 15 significant digits: what was sent as 0.93 prints as 0.93 */
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                 | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        fputc('\n', stdout);
        json_decref(root);

    } else {
        fwrite(answer->data, 1, answer->len, stdout);
    }

    fflush(stdout);
}


/*
 * 0: HTTP 2xx, envelope status 200, every body.objects[].status 0;
 * 4: the same but an image failed; 1: anything else.  Says why on stderr.
 */

static int
smarty_verdict(long http, smarty_buf_t *answer)
{
    int            bad;
    size_t         i, n;
    json_t        *root, *status, *body, *objects, *o, *st, *v;
    const char    *error, *code, *name;
    json_error_t   err;

    root = NULL;

    if (answer->len > 0) {
        root = json_loadb(answer->data, answer->len, 0, &err);
    }

    body = json_object_get(root, "body");
    status = json_object_get(root, "status");

    if (http < 200 || http > 299 || !json_is_integer(status)
        || json_integer_value(status) != 200)
    {
        error = json_string_value(json_object_get(body, "error"));
        code = json_string_value(json_object_get(body, "code"));

        if (http < 200 || http > 299) {
            fprintf(stderr, "smarty: the API answered HTTP %ld", http);

        } else if (root == NULL || !json_is_object(root)) {
            fprintf(stderr, "smarty: the answer (HTTP %ld) is not a JSON "
                    "envelope", http);

        } else if (!json_is_integer(status)) {
            fprintf(stderr, "smarty: the answer (HTTP %ld) has no envelope "
                    "status", http);

        } else {
            fprintf(stderr, "smarty: the API answered status %lld (HTTP %ld)",
                    (long long) json_integer_value(status), http);
        }

        if (error != NULL) {
            fprintf(stderr, ": %s", error);
        }

        if (code != NULL) {
            fprintf(stderr, " (%s)", code);
        }

        fputc('\n', stderr);
        json_decref(root);

        return SMARTY_EXIT_API;
    }

    objects = json_object_get(body, "objects");
    n = json_array_size(objects);
    bad = 0;

    for (i = 0; i < n; i++) {
        o = json_array_get(objects, i);
        st = json_object_get(o, "status");

        if (st == NULL
            || (json_is_integer(st) && json_integer_value(st) == 0))
        {
            continue;
        }

        bad++;
        name = json_string_value(json_object_get(o, "name"));
        error = json_string_value(json_object_get(o, "error"));
        v = json_is_integer(st) ? st : NULL;

        fprintf(stderr, "smarty: image %s: status %lld%s%s\n",
                name ? name : "(unnamed)",
                v ? (long long) json_integer_value(v) : -1LL,
                error ? ": " : "", error ? error : "");
    }

    json_decref(root);

    if (bad) {
        fprintf(stderr, "smarty: %d of %zu images failed\n", bad, n);
        return SMARTY_EXIT_IMAGES;
    }

    return SMARTY_EXIT_OK;
}


static int
smarty_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    const char  *prefix;

    switch (type) {

    case CURLINFO_TEXT:
        prefix = "* ";
        break;

    case CURLINFO_HEADER_OUT:
        prefix = "> ";
        break;

    case CURLINFO_HEADER_IN:
        prefix = "< ";
        break;

    default:
        /* bodies (image bytes above all) and TLS data: never */
        return 0;
    }

    smarty_vlog(prefix, data, size);

    return 0;
}


/* prints every line of s with prefix, secrets masked */

static void
smarty_vlog(const char *prefix, const char *s, size_t len)
{
    size_t         n;
    const char    *nl;
    smarty_buf_t   out;

    while (len > 0) {
        nl = memchr(s, '\n', len);
        n = nl ? (size_t) (nl - s) : len;

        memset(&out, 0, sizeof(out));
        smarty_mask(&out, s, (n > 0 && s[n - 1] == '\r') ? n - 1 : n);

        if (out.len > 0 || nl == NULL) {
            fprintf(stderr, "%s%.*s%s", prefix, (int) out.len,
                    out.data ? out.data : "", nl ? "\n" : "");
        }

        smarty_buf_free(&out);

        s += nl ? n + 1 : n;
        len -= nl ? n + 1 : n;
    }
}


/* a URL for -v: user:password@ and the oauth_token masked */

static void
smarty_mask_url(smarty_buf_t *out, const char *url)
{
    size_t       n;
    const char  *host, *at, *slash;

    host = strstr(url, "://");

    if (host != NULL) {
        host += 3;
        n = strcspn(host, "/?#");
        at = memchr(host, '@', n);
        slash = host + n;

        if (at != NULL && at < slash) {
            smarty_buf_add(out, url, host - url);
            smarty_buf_add(out, "***", 3);
            url = at;
        }
    }

    smarty_mask(out, url, strlen(url));
}
