/*
 * smarty: the result lines of the batch commands, JSON lines or CSV, one
 * write(2) per line so that an interrupted run leaves whole lines; and
 * --resume, which reads what an earlier run recorded.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "smarty_batch.h"


#define SMARTY_CSV_FIELDS  16


static const char  *smarty_csv_headers[] = {
    "file,status,error,code,faces,tags,persons,cache\r\n",
    "file,person_id,status,error,code\r\n",
    "person_id,status,error,code\r\n",
    ""
};


static int smarty_out_resume(smarty_job_t *job, struct stat *st);
static int smarty_resume_jsonl(smarty_job_t *job, const char *p,
    size_t len, size_t *good);
static int smarty_resume_csv(smarty_job_t *job, const char *p, size_t len,
    size_t *good);
static int smarty_csv_record(const char *p, size_t len, size_t *used,
    smarty_buf_t *fields, size_t *n);
static int smarty_resume_record(smarty_job_t *job, const char *key,
    long long status);
static int smarty_line_jsonl(smarty_job_t *job, smarty_buf_t *b,
    smarty_item_t *it, int status, const char *error, const char *code,
    json_t *persons, const char *cache);
static int smarty_line_csv(smarty_job_t *job, smarty_buf_t *b,
    smarty_item_t *it, int status, const char *error, const char *code,
    json_t *persons, const char *cache);
static int smarty_csv_field(smarty_buf_t *b, const char *s, int last);
static int smarty_write_all(int fd, const char *p, size_t len);


/*
 * Opens the output: --out FILE (appended to with --resume, after what it
 * records is read; refused without --resume when it holds anything), or
 * stdout.  Writes the CSV header when the output starts empty.
 */

int
smarty_out_open(smarty_job_t *job)
{
    int          fd, rc;
    const char  *header;
    struct stat  st;

    job->out_fd = -1;
    header = smarty_csv_headers[job->cmd];

    if (job->out_path == NULL) {
        job->out_fd = STDOUT_FILENO;

        if (job->format == SMARTY_FORMAT_CSV && header[0] != '\0'
            && smarty_write_all(job->out_fd, header, strlen(header)) != 0)
        {
            fprintf(stderr, "smarty: cannot write the output: %s\n",
                    strerror(errno));
            return SMARTY_EXIT_USAGE;
        }

        return -1;
    }

    fd = open(job->out_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1) {
        return smarty_usage_error("cannot open --out \"%s\": %s",
                                  job->out_path, strerror(errno));
    }

    job->out_fd = fd;

    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        return smarty_usage_error("--out \"%s\" is being written by another "
                                  "smarty run", job->out_path);
    }

    if (fstat(fd, &st) == -1) {
        return smarty_usage_error("cannot read --out \"%s\": %s",
                                  job->out_path, strerror(errno));
    }

    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        if (!job->resume) {
            return smarty_usage_error("--out \"%s\" holds results already: "
                                      "add --resume to go on with them, or "
                                      "choose another file", job->out_path);
        }

        rc = smarty_out_resume(job, &st);
        if (rc != -1) {
            return rc;
        }

        if (fstat(fd, &st) == -1) {
            return smarty_usage_error("cannot read --out \"%s\": %s",
                                      job->out_path, strerror(errno));
        }
    }

    if ((!S_ISREG(st.st_mode) || st.st_size == 0)
        && job->format == SMARTY_FORMAT_CSV && header[0] != '\0'
        && smarty_write_all(fd, header, strlen(header)) != 0)
    {
        return smarty_usage_error("cannot write --out \"%s\": %s",
                                  job->out_path, strerror(errno));
    }

    return -1;
}


void
smarty_out_close(smarty_job_t *job)
{
    if (job->out_fd > STDERR_FILENO) {
        close(job->out_fd);
    }

    job->out_fd = -1;
}


/* the progress line of a terminal, wiped before anything else is shown */

void
smarty_progress_clear(smarty_job_t *job)
{
    if (job->progress_drawn) {
        (void) smarty_write_all(STDERR_FILENO, "\r\033[K", 4);
        job->progress_drawn = 0;
    }
}


/*
 * Writes the result line of an item, in one write(2).  status: the API's
 * (0, 1, 2); error and code when it failed; persons the faces of a
 * recognized image; cache the request's Cache-Status in a word.  Returns
 * 0, or -1 when the output cannot be written (errno set).
 */

int
smarty_out_line(smarty_job_t *job, smarty_item_t *it, int status,
    const char *error, const char *code, json_t *persons, const char *cache)
{
    int           rc;
    smarty_buf_t  b;

    it->state = SMARTY_ITEM_DONE;
    job->written++;

    if (status == 0) {
        job->ok++;

    } else {
        job->failed++;
    }

    if (job->cmd == SMARTY_CMD_TRUNCATE) {
        return 0;
    }

    memset(&b, 0, sizeof(smarty_buf_t));

    rc = job->format == SMARTY_FORMAT_CSV
         ? smarty_line_csv(job, &b, it, status, error, code, persons, cache)
         : smarty_line_jsonl(job, &b, it, status, error, code, persons,
                             cache);

    if (rc != 0) {
        smarty_buf_free(&b);
        errno = ENOMEM;
        return -1;
    }

    if (job->out_tty) {
        smarty_progress_clear(job);
    }

    rc = smarty_write_all(job->out_fd, b.data, b.len);
    smarty_buf_free(&b);

    return rc;
}


static int
smarty_line_jsonl(smarty_job_t *job, smarty_buf_t *b, smarty_item_t *it,
    int status, const char *error, const char *code, json_t *persons,
    const char *cache)
{
    int      rc;
    char    *text;
    json_t  *o;

    o = json_object();
    if (o == NULL) {
        return -1;
    }

    if (job->cmd != SMARTY_CMD_DELETE) {
        json_object_set_new(o, "file", json_string(it->key));
    }

    if (job->cmd != SMARTY_CMD_RECOGNIZE) {
        json_object_set_new(o, "person_id", json_integer(it->person_id));
    }

    json_object_set_new(o, "status", json_integer(status));

    if (error != NULL) {
        json_object_set_new(o, "error", json_string(error));
    }

    if (code != NULL) {
        json_object_set_new(o, "code", json_string(code));
    }

    if (job->cmd == SMARTY_CMD_RECOGNIZE && status == 0) {
        json_object_set_new(o, "persons", persons ? json_incref(persons)
                                                  : json_array());
    }

    if (cache != NULL) {
        json_object_set_new(o, "cache", json_string(cache));
    }

    /* 15 significant digits: 0.93 stays 0.93 */
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER
                         | JSON_REAL_PRECISION(15));
    json_decref(o);

    if (text == NULL) {
        return -1;
    }

    rc = smarty_buf_add(b, text, strlen(text));
    free(text);

    return rc == 0 ? smarty_buf_add(b, "\n", 1) : -1;
}


static int
smarty_line_csv(smarty_job_t *job, smarty_buf_t *b, smarty_item_t *it,
    int status, const char *error, const char *code, json_t *persons,
    const char *cache)
{
    int            rc;
    char           num[32], *text;
    size_t         i, n;
    json_t        *tag;
    smarty_buf_t   tags;

    rc = 0;

    if (job->cmd != SMARTY_CMD_DELETE) {
        rc |= smarty_csv_field(b, it->key, 0);
    }

    if (job->cmd != SMARTY_CMD_RECOGNIZE) {
        snprintf(num, sizeof(num), "%lld", it->person_id);
        rc |= smarty_csv_field(b, num, 0);
    }

    snprintf(num, sizeof(num), "%d", status);
    rc |= smarty_csv_field(b, num, 0);
    rc |= smarty_csv_field(b, error ? error : "", 0);

    if (job->cmd != SMARTY_CMD_RECOGNIZE) {
        rc |= smarty_csv_field(b, code ? code : "", 1);
        return rc;
    }

    rc |= smarty_csv_field(b, code ? code : "", 0);

    /* faces, tags joined by ";", the persons as JSON, the cache */

    n = status == 0 ? json_array_size(persons) : 0;
    snprintf(num, sizeof(num), "%zu", n);
    rc |= smarty_csv_field(b, status == 0 ? num : "", 0);

    memset(&tags, 0, sizeof(smarty_buf_t));
    smarty_buf_add(&tags, "", 0);

    for (i = 0; i < n; i++) {
        tag = json_object_get(json_array_get(persons, i), "tag");
        rc |= smarty_buf_printf(&tags, "%s%s", i ? ";" : "",
                                json_is_string(tag) ? json_string_value(tag)
                                                    : "");
    }

    rc |= smarty_csv_field(b, tags.data ? tags.data : "", 0);
    smarty_buf_free(&tags);

    text = NULL;

    if (status == 0) {
        text = persons ? json_dumps(persons, JSON_COMPACT
                                             | JSON_PRESERVE_ORDER
                                             | JSON_REAL_PRECISION(15))
                       : strdup("[]");
        rc |= text ? 0 : -1;
    }

    rc |= smarty_csv_field(b, text ? text : "", 0);
    free(text);

    rc |= smarty_csv_field(b, cache ? cache : "", 1);

    return rc;
}


/* RFC 4180: quoted when it holds a comma, a quote or a line break */

static int
smarty_csv_field(smarty_buf_t *b, const char *s, int last)
{
    int          rc;
    const char  *q;

    rc = 0;

    if (strpbrk(s, ",\"\r\n") == NULL) {
        rc |= smarty_buf_add(b, s, strlen(s));

    } else {
        rc |= smarty_buf_add(b, "\"", 1);

        while ((q = strchr(s, '"')) != NULL) {
            rc |= smarty_buf_add(b, s, q + 1 - s);
            rc |= smarty_buf_add(b, "\"", 1);
            s = q + 1;
        }

        rc |= smarty_buf_add(b, s, strlen(s));
        rc |= smarty_buf_add(b, "\"", 1);
    }

    rc |= last ? smarty_buf_add(b, "\r\n", 2) : smarty_buf_add(b, ",", 1);

    return rc;
}


/*
 * --resume: the keys of every line with a final status (0 success, 1
 * permanent error) go into job->done, so that they are not sent again;
 * lines with status 2 (temporary) are sent again.  A last line without
 * its line end (the run was killed while writing it) is cut off the file.
 */

static int
smarty_out_resume(smarty_job_t *job, struct stat *st)
{
    int      rc;
    char    *data;
    size_t   len, good;
    ssize_t  n;

    len = st->st_size;

    data = malloc(len + 1);
    if (data == NULL) {
        return smarty_usage_error("out of memory");
    }

    for (good = 0; good < len; good += n) {
        n = pread(job->out_fd, data + good, len - good, good);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            free(data);
            return smarty_usage_error("cannot read --out \"%s\": %s",
                                      job->out_path,
                                      n ? strerror(errno) : "cut short");
        }
    }

    data[len] = '\0';
    good = 0;

    rc = job->format == SMARTY_FORMAT_CSV
         ? smarty_resume_csv(job, data, len, &good)
         : smarty_resume_jsonl(job, data, len, &good);

    free(data);

    if (rc != -1) {
        return rc;
    }

    if (good < len) {
        fprintf(stderr, "smarty: the last line of \"%s\" was cut short (an "
                "interrupted write): dropped, its image goes again\n",
                job->out_path);

        if (ftruncate(job->out_fd, good) == -1) {
            return smarty_usage_error("cannot cut \"%s\" short: %s",
                                      job->out_path, strerror(errno));
        }
    }

    return -1;
}


static int
smarty_resume_jsonl(smarty_job_t *job, const char *p, size_t len,
    size_t *good)
{
    char          num[32];
    size_t        off, line;
    json_t       *o, *k, *st;
    const char   *nl, *key;
    json_error_t  err;

    if (len > 0 && p[0] != '{') {
        return smarty_usage_error("--out \"%s\" does not hold JSON lines "
                                  "(CSV? then give --format csv)",
                                  job->out_path);
    }

    line = 0;

    for (off = 0; off < len; off = nl + 1 - p) {
        nl = memchr(p + off, '\n', len - off);

        if (nl == NULL) {
            /* the cut last line */
            break;
        }

        line++;
        *good = nl + 1 - p;

        o = json_loadb(p + off, nl - (p + off), 0, &err);
        st = json_object_get(o, "status");
        k = json_object_get(o, job->cmd == SMARTY_CMD_DELETE ? "person_id"
                                                           : "file");
        key = NULL;

        if (json_is_string(k)) {
            key = json_string_value(k);

        } else if (json_is_integer(k)) {
            snprintf(num, sizeof(num), "%lld",
                     (long long) json_integer_value(k));
            key = num;
        }

        if (key == NULL || !json_is_integer(st)) {
            fprintf(stderr, "smarty: line %zu of \"%s\" is no result line: "
                    "ignored\n", line, job->out_path);

        } else if (smarty_resume_record(job, key, json_integer_value(st))
                   != 0)
        {
            json_decref(o);
            return smarty_usage_error("out of memory");
        }

        json_decref(o);
    }

    return -1;
}


static int
smarty_resume_csv(smarty_job_t *job, const char *p, size_t len,
    size_t *good)
{
    int            rc, kcol, scol;
    char          *end;
    size_t         i, n, used, off, line;
    long long      status;
    const char    *header;
    smarty_buf_t   f[SMARTY_CSV_FIELDS];

    header = smarty_csv_headers[job->cmd];

    if (len > 0 && p[0] == '{') {
        return smarty_usage_error("--out \"%s\" holds JSON lines, not CSV "
                                  "(leave --format out)", job->out_path);
    }

    memset(f, 0, sizeof(f));
    off = 0;
    line = 0;
    kcol = -1;
    scol = -1;
    rc = -1;

    while (rc == -1 && off < len) {
        if (smarty_csv_record(p + off, len - off, &used, f, &n) != 1) {
            /* the cut last record */
            break;
        }

        line++;

        if (line == 1) {
            if (used != strlen(header) || memcmp(p, header, used) != 0) {
                rc = smarty_usage_error("--out \"%s\" does not start with "
                                        "the header of smarty %s --format "
                                        "csv", job->out_path, job->name);
                break;
            }

            for (i = 0; i < n; i++) {
                if (strcmp(f[i].data, job->cmd == SMARTY_CMD_DELETE
                                      ? "person_id" : "file") == 0)
                {
                    kcol = kcol == -1 ? (int) i : kcol;

                } else if (strcmp(f[i].data, "status") == 0) {
                    scol = i;
                }
            }

        } else if (kcol < (int) n && scol < (int) n) {
            errno = 0;
            status = strtoll(f[scol].data, &end, 10);

            if (errno != 0 || end == f[scol].data || *end != '\0') {
                fprintf(stderr, "smarty: record %zu of \"%s\" has no "
                        "status: ignored\n", line, job->out_path);

            } else if (smarty_resume_record(job, f[kcol].data, status)
                       != 0)
            {
                rc = smarty_usage_error("out of memory");
            }

        } else {
            fprintf(stderr, "smarty: record %zu of \"%s\" is too short: "
                    "ignored\n", line, job->out_path);
        }

        off += used;
        *good = off;
    }

    for (i = 0; i < SMARTY_CSV_FIELDS; i++) {
        smarty_buf_free(&f[i]);
    }

    return rc;
}


/*
 * One RFC 4180 record at p: its first SMARTY_CSV_FIELDS fields into
 * fields[] (NUL-terminated), their number in *n, its length with the line
 * end in *used.  Returns 1, or 0 when the record has no line end yet (or
 * ends inside quotes).
 */

static int
smarty_csv_record(const char *p, size_t len, size_t *used,
    smarty_buf_t *fields, size_t *n)
{
    int     quoted;
    char    c;
    size_t  i, k;

    for (k = 0; k < SMARTY_CSV_FIELDS; k++) {
        fields[k].len = 0;
        smarty_buf_add(&fields[k], "", 0);
    }

    k = 0;
    quoted = 0;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (quoted) {
            if (c != '"') {
                goto add;
            }

            if (i + 1 < len && p[i + 1] == '"') {
                i++;
                goto add;
            }

            quoted = 0;
            continue;
        }

        if (c == '"') {
            quoted = 1;
            continue;
        }

        if (c == ',') {
            k++;
            continue;
        }

        if (c == '\n' || (c == '\r' && i + 1 < len && p[i + 1] == '\n')) {
            *used = i + (c == '\r' ? 2 : 1);
            *n = k + 1 < SMARTY_CSV_FIELDS ? k + 1 : SMARTY_CSV_FIELDS;
            return 1;
        }

    add:

        if (k < SMARTY_CSV_FIELDS) {
            smarty_buf_add(&fields[k], &c, 1);
        }
    }

    return 0;
}


static int
smarty_resume_record(smarty_job_t *job, const char *key, long long status)
{
    if (status != 0 && status != 1) {
        /* temporary: sent again */
        return 0;
    }

    return smarty_set_add(&job->done, key) == -1 ? -1 : 0;
}


static int
smarty_write_all(int fd, const char *p, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(fd, p, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        p += n;
        len -= n;
    }

    return 0;
}
