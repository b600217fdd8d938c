/*
 * smarty: the batch commands for whole folders.
 *
 *   smarty recognize PATH... --space N [--create-new]
 *   smarty enroll DIR... --space N          DIR/<person_id>/photos
 *   smarty delete PERSON_ID... --space N
 *   smarty truncate --space N [--yes]
 *
 * The gateway's base URL comes from -u or SMARTY_URL, the key from
 * SMARTY_KEY, --key-file or -k.  One result line per image (JSON lines or
 * CSV) on stdout or in --out, which --resume goes on with.  See
 * client/README.md.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "smarty_batch.h"


static int smarty_batch_flags(smarty_job_t *job, int argc, char **argv,
    const char **url_arg);
static int smarty_number(const char *flag, const char *arg, double min,
    double max, double *v);
static int smarty_size(const char *arg, size_t *v);
static int smarty_method_url(smarty_job_t *job, const char *base);
static int smarty_truncate_confirm(smarty_job_t *job);
static int smarty_delete_add(smarty_job_t *job, const char *arg);
static void smarty_job_free(smarty_job_t *job);


int
smarty_batch_main(const char *prog, int argc, char **argv)
{
    int            i, rc, dup;
    size_t         n;
    const char    *url_arg, *term;
    smarty_job_t   job;

    memset(&job, 0, sizeof(smarty_job_t));
    job.prog = prog;
    job.argc = argc;
    job.argv = argv;
    job.name = argv[0];
    job.out_fd = -1;
    job.parallel = 4;
    job.max_images = SMARTY_BATCH_IMAGES;
    job.max_bytes = SMARTY_BATCH_BYTES;
    job.retries = 5;
    job.backoff = 0.5;
    job.timeout = 300;
    job.interval = 10;

    if (strcmp(job.name, "recognize") == 0) {
        job.cmd = SMARTY_CMD_RECOGNIZE;
        job.method = "persons/recognize";

    } else if (strcmp(job.name, "enroll") == 0) {
        job.cmd = SMARTY_CMD_ENROLL;
        job.method = "persons/set";

    } else if (strcmp(job.name, "delete") == 0) {
        job.cmd = SMARTY_CMD_DELETE;
        job.method = "persons/delete";

    } else {
        job.cmd = SMARTY_CMD_TRUNCATE;
        job.method = "persons/truncate";
    }

    url_arg = NULL;
    rc = smarty_batch_flags(&job, argc, argv, &url_arg);

    if (rc == -1) {
        rc = smarty_url_check(url_arg) == 0 ? -1 : SMARTY_EXIT_USAGE;
    }

    if (rc == -1) {
        rc = smarty_method_url(&job, url_arg);
    }

    if (rc == -1) {
        smarty_secret_key = job.key;

        term = getenv("TERM");
        job.progress_tty = isatty(STDERR_FILENO)
                           && !(term != NULL && strcmp(term, "dumb") == 0);
        job.out_tty = job.progress_tty && job.out_path == NULL
                      && isatty(STDOUT_FILENO);
    }

    if (rc == -1 && job.cmd == SMARTY_CMD_TRUNCATE) {
        rc = smarty_truncate_confirm(&job);

        if (rc == -1 && smarty_item_add(&job, "space", &dup) == NULL) {
            rc = smarty_usage_error("out of memory");
        }
    }

    for (i = optind; rc == -1 && i < argc; i++) {
        switch (job.cmd) {

        case SMARTY_CMD_RECOGNIZE:
            rc = smarty_files_add(&job, argv[i]);
            break;

        case SMARTY_CMD_ENROLL:
            rc = smarty_enroll_add(&job, argv[i]);
            break;

        default:
            rc = smarty_delete_add(&job, argv[i]);
            break;
        }
    }

    /* the output, once every path was found; with --resume, what it
     * records as done is not sent again */

    if (rc == -1 && job.cmd != SMARTY_CMD_TRUNCATE) {
        rc = smarty_out_open(&job);
    }

    for (n = 0; rc == -1 && n < job.nitems; n++) {
        if (smarty_set_has(&job.done, job.items[n].key)) {
            job.items[n].state = SMARTY_ITEM_DONE;
            job.resumed++;
        }
    }

    if (rc == -1) {
        rc = smarty_run(&job);
    }

    smarty_job_free(&job);

    return rc;
}


static int
smarty_batch_flags(smarty_job_t *job, int argc, char **argv,
    const char **url_arg)
{
    int          c, rc, npaths;
    char        *end;
    double       v;
    const char  *key_arg, *key_file, *format, *env, *dot;
    struct stat  st;

    static const struct option  opts[] = {
        { "url",               required_argument, NULL, 'u' },
        { "key",               required_argument, NULL, 'k' },
        { "key-file",          required_argument, NULL, 'K' },
        { "space",             required_argument, NULL, 's' },
        { "create-new",        no_argument,       NULL, 'C' },
        { "out",               required_argument, NULL, 'o' },
        { "format",            required_argument, NULL, 'F' },
        { "resume",            no_argument,       NULL, 'R' },
        { "parallel",          required_argument, NULL, 'P' },
        { "batch-images",      required_argument, NULL, 'N' },
        { "batch-bytes",       required_argument, NULL, 'B' },
        { "retries",           required_argument, NULL, 'r' },
        { "backoff",           required_argument, NULL, 'W' },
        { "timeout",           required_argument, NULL, 'T' },
        { "progress-interval", required_argument, NULL, 'I' },
        { "quiet",             no_argument,       NULL, 'q' },
        { "verbose",           no_argument,       NULL, 'v' },
        { "yes",               no_argument,       NULL, 'y' },
        { "help",              no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    key_arg = NULL;
    key_file = NULL;
    format = NULL;
    rc = -1;
    opterr = 0;
    optind = 1;

    while (rc == -1
           && (c = getopt_long(argc, argv, ":u:k:o:qvyh", opts, NULL)) != -1)
    {
        switch (c) {

        case 'u':
            *url_arg = optarg;
            break;

        case 'k':
            key_arg = optarg;
            break;

        case 'K':
            key_file = optarg;
            break;

        case 's':
            if (optarg[0] < '0' || optarg[0] > '9' || optarg[1] != '\0') {
                rc = smarty_usage_error("%s: --space is a digit from 0 to "
                                        "9, not \"%s\"", job->name, optarg);
                break;
            }

            job->space[0] = optarg[0];
            break;

        case 'C':
            job->create_new = 1;
            break;

        case 'o':
            job->out_path = optarg;
            break;

        case 'F':
            format = optarg;
            break;

        case 'R':
            job->resume = 1;
            break;

        case 'P':
            rc = smarty_number("--parallel", optarg, 1, 64, &v);
            job->parallel = rc == -1 ? (int) v : job->parallel;
            break;

        case 'N':
            rc = smarty_number("--batch-images", optarg, 1,
                               SMARTY_BATCH_IMAGES, &v);
            job->max_images = rc == -1 ? (size_t) v : job->max_images;
            break;

        case 'B':
            rc = smarty_size(optarg, &job->max_bytes);
            break;

        case 'r':
            rc = smarty_number("--retries", optarg, 0, 100, &v);
            job->retries = rc == -1 ? (int) v : job->retries;
            break;

        case 'W':
            errno = 0;
            job->backoff = strtod(optarg, &end);

            if (errno != 0 || end == optarg || *end != '\0'
                || !(job->backoff >= 0) || job->backoff > 60)
            {
                rc = smarty_usage_error("--backoff wants seconds from 0 to "
                                        "60, not \"%s\"", optarg);
            }

            break;

        case 'T':
            errno = 0;
            job->timeout = strtod(optarg, &end);

            if (errno != 0 || end == optarg || *end != '\0'
                || !(job->timeout > 0) || job->timeout > 86400)
            {
                rc = smarty_usage_error("--timeout wants seconds, more than "
                                        "0 and at most 86400, not \"%s\"",
                                        optarg);
            }

            break;

        case 'I':
            errno = 0;
            job->interval = strtod(optarg, &end);

            if (errno != 0 || end == optarg || *end != '\0'
                || !(job->interval >= 0) || job->interval > 86400)
            {
                rc = smarty_usage_error("--progress-interval wants seconds "
                                        "from 0 to 86400, not \"%s\"",
                                        optarg);
            }

            break;

        case 'q':
            job->quiet = 1;
            break;

        case 'v':
            job->verbose = 1;
            break;

        case 'y':
            job->yes = 1;
            break;

        case 'h':
            smarty_help();
            rc = SMARTY_EXIT_OK;
            break;

        case ':':
            rc = smarty_usage_error("%s: option \"%s\" needs a value",
                                    job->name, argv[optind - 1]);
            break;

        default:
            if (optopt != 0) {
                rc = smarty_usage_error("%s: unknown option \"-%c\"",
                                        job->name, optopt);

            } else {
                rc = smarty_usage_error("%s: unknown option \"%s\"",
                                        job->name, argv[optind - 1]);
            }

            break;
        }
    }

    if (rc != -1) {
        return rc;
    }

    npaths = argc - optind;

    if (job->cmd == SMARTY_CMD_TRUNCATE && npaths > 0) {
        return smarty_usage_error("truncate: unexpected argument \"%s\"",
                                  argv[optind]);
    }

    if (job->cmd != SMARTY_CMD_TRUNCATE && npaths == 0) {
        return smarty_usage_error("%s: %s", job->name,
                   job->cmd == SMARTY_CMD_RECOGNIZE
                   ? "which photos? smarty recognize PATH... --space N"
                   : job->cmd == SMARTY_CMD_ENROLL
                   ? "which folder? smarty enroll DIR --space N "
                     "(DIR/<person_id>/photos)"
                   : "which persons? smarty delete PERSON_ID... --space N");
    }

    if (job->space[0] == '\0') {
        return smarty_usage_error("%s: --space N is required (a digit from "
                                  "0 to 9)", job->name);
    }

    if (job->create_new && job->cmd != SMARTY_CMD_RECOGNIZE) {
        return smarty_usage_error("%s: --create-new is for recognize",
                                  job->name);
    }

    if (job->yes && job->cmd != SMARTY_CMD_TRUNCATE) {
        return smarty_usage_error("%s: --yes is for truncate", job->name);
    }

    if (job->cmd == SMARTY_CMD_TRUNCATE
        && (job->out_path != NULL || job->resume || format != NULL))
    {
        return smarty_usage_error("truncate: no result lines, so no --out, "
                                  "--format or --resume");
    }

    if (job->resume && job->out_path == NULL) {
        return smarty_usage_error("%s: --resume goes on with an --out FILE",
                                  job->name);
    }

    /* said before a long walk; smarty_out_open() checks it again */

    if (job->out_path != NULL && !job->resume
        && stat(job->out_path, &st) == 0 && S_ISREG(st.st_mode)
        && st.st_size > 0)
    {
        return smarty_usage_error("--out \"%s\" holds results already: "
                                  "add --resume to go on with them, or "
                                  "choose another file", job->out_path);
    }

    if (format == NULL) {
        dot = job->out_path ? strrchr(job->out_path, '.') : NULL;
        job->format = dot && strcasecmp(dot, ".csv") == 0
                      ? SMARTY_FORMAT_CSV : SMARTY_FORMAT_JSONL;

    } else if (strcmp(format, "jsonl") == 0 || strcmp(format, "json") == 0) {
        job->format = SMARTY_FORMAT_JSONL;

    } else if (strcmp(format, "csv") == 0) {
        job->format = SMARTY_FORMAT_CSV;

    } else {
        return smarty_usage_error("%s: --format is jsonl or csv, not \"%s\"",
                                  job->name, format);
    }

    if (*url_arg == NULL) {
        env = getenv("SMARTY_URL");
        *url_arg = env != NULL && env[0] != '\0' ? env : NULL;
    }

    if (*url_arg == NULL) {
        return smarty_usage_error("%s: where is the gateway? give its base "
                                  "URL with -u (such as "
                                  "http://127.0.0.1:8080) or SMARTY_URL",
                                  job->name);
    }

    return smarty_key_get(key_arg, key_file, &job->key);
}


static int
smarty_number(const char *flag, const char *arg, double min, double max,
    double *v)
{
    char  *end;
    long   n;

    errno = 0;
    n = strtol(arg, &end, 10);

    if (errno != 0 || end == arg || *end != '\0' || n < min || n > max) {
        return smarty_usage_error("%s wants a whole number from %.0f to "
                                  "%.0f, not \"%s\"", flag, min, max, arg);
    }

    *v = n;

    return -1;
}


/* --batch-bytes: bytes, or with k, m, g (KiB, MiB, GiB); at least 64k */

static int
smarty_size(const char *arg, size_t *v)
{
    char                *end;
    unsigned long long   n, unit;

    errno = 0;
    n = strtoull(arg, &end, 10);
    unit = 1;

    if (end != arg && end[0] != '\0' && end[1] == '\0') {
        unit = (end[0] == 'k' || end[0] == 'K') ? 1024
               : (end[0] == 'm' || end[0] == 'M') ? 1024 * 1024
               : (end[0] == 'g' || end[0] == 'G') ? 1024 * 1024 * 1024
               : 0;
        end += unit ? 1 : 0;
    }

    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-'
        || n > (1ULL << 40) / unit || n * unit < 64 * 1024)
    {
        return smarty_usage_error("--batch-bytes wants a size of at least "
                                  "64k, such as 64m, not \"%s\"", arg);
    }

    *v = (size_t) (n * unit);

    return -1;
}


/*
 * The method's URL from the gateway's base URL: "/api/v1/<method>" is
 * appended to its path (just "/<method>" when the path ends with
 * "/api/v1"); its query string, if any, is kept.
 */

static int
smarty_method_url(smarty_job_t *job, const char *base)
{
    int            rc;
    char          *path, *url, *p;
    size_t         len;
    CURLU         *u;
    smarty_buf_t   b;

    u = curl_url();
    if (u == NULL) {
        return smarty_usage_error("out of memory");
    }

    path = NULL;
    url = NULL;
    memset(&b, 0, sizeof(smarty_buf_t));
    rc = -1;

    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
    {
        rc = smarty_usage_error("-u: not a valid URL");
        goto done;
    }

    len = strlen(path);

    while (len > 0 && path[len - 1] == '/') {
        len--;
    }

    p = strstr(path, "/api/v1/");

    if (p != NULL && (size_t) (p - path) + 8 < len) {
        rc = smarty_usage_error("%s: -u is the gateway's base URL, such as "
                                "http://127.0.0.1:8080, not a method's URL "
                                "(the client adds /api/v1/%s)", job->name,
                                job->method);
        goto done;
    }

    smarty_buf_add(&b, path, len);

    if (len < 7 || memcmp(path + len - 7, "/api/v1", 7) != 0) {
        smarty_buf_add(&b, "/api/v1", 7);
    }

    if (smarty_buf_printf(&b, "/%s", job->method) != 0
        || curl_url_set(u, CURLUPART_PATH, b.data, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK
        || (job->url = strdup(url)) == NULL)
    {
        rc = smarty_usage_error("-u: cannot make the method's URL");
    }

done:

    curl_free(path);
    curl_free(url);
    curl_url_cleanup(u);
    smarty_buf_free(&b);

    return rc;
}


/* truncate forgets a whole space: "yes" typed on a terminal, or --yes */

static int
smarty_truncate_confirm(smarty_job_t *job)
{
    char  line[64];

    if (job->yes) {
        return -1;
    }

    if (!isatty(STDIN_FILENO)) {
        return smarty_usage_error("truncate forgets every person of space "
                                  "%s: confirm with --yes (stdin is no "
                                  "terminal to ask on)", job->space);
    }

    fprintf(stderr, "smarty: truncate forgets every person of space %s. "
            "Type \"yes\" to go on: ", job->space);
    fflush(stderr);

    if (fgets(line, sizeof(line), stdin) == NULL) {
        line[0] = '\0';
    }

    line[strcspn(line, "\r\n")] = '\0';

    if (strcmp(line, "yes") != 0) {
        fprintf(stderr, "smarty: truncate: not confirmed, nothing sent\n");
        return SMARTY_EXIT_USAGE;
    }

    return -1;
}


static int
smarty_delete_add(smarty_job_t *job, const char *arg)
{
    int             dup;
    char           *end, key[32];
    long long       id;
    smarty_item_t  *it;

    errno = 0;
    id = strtoll(arg, &end, 10);

    if (errno != 0 || end == arg || *end != '\0' || id < 1) {
        return smarty_usage_error("delete: a person id is a whole number "
                                  "from 1, not \"%s\"", arg);
    }

    /* the key as a result line writes it: "007" is 7 */
    snprintf(key, sizeof(key), "%lld", id);

    it = smarty_item_add(job, key, &dup);

    if (it == NULL) {
        return dup ? -1 : smarty_usage_error("out of memory");
    }

    it->person_id = id;

    return -1;
}


static void
smarty_job_free(smarty_job_t *job)
{
    size_t  i;

    smarty_out_close(job);

    for (i = 0; i < job->nitems; i++) {
        free(job->items[i].key);
    }

    free(job->items);
    smarty_set_free(&job->seen);
    smarty_set_free(&job->done);
    free(job->url);

    if (job->key != NULL) {
        OPENSSL_cleanse(job->key, strlen(job->key));
        free(job->key);
    }

    smarty_secret_key = NULL;
}
