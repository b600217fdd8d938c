/*
 * smarty: what the batch commands send.  Files and folders (walked
 * recursively, in byte order of the names) become items when their first
 * bytes are a JPEG, PNG, GIF, BMP or WebP signature; other files are
 * skipped and counted.  enroll reads DIR/<person_id>/...
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smarty_batch.h"


static int smarty_walk(smarty_job_t *job, const char *path,
    long long person_id, int top);
static int smarty_file(smarty_job_t *job, const char *path,
    struct stat *st, long long person_id, int top);
static char *smarty_path_join(const char *dir, const char *name);
static int smarty_dirent_wanted(const struct dirent *d);
static int smarty_utf8_valid(const char *s);
static long long smarty_person_id(const char *name);


/* the signatures of emulator.md, "What counts as an image" */

const char *
smarty_image_type(const unsigned char *p, size_t n)
{
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
        return "image/jpeg";
    }

    if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) {
        return "image/png";
    }

    if (n >= 4 && memcmp(p, "GIF8", 4) == 0) {
        return "image/gif";
    }

    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
    {
        return "image/webp";
    }

    if (n >= 2 && p[0] == 'B' && p[1] == 'M') {
        return "image/bmp";
    }

    return NULL;
}


/* a PATH of recognize: a file, or a folder walked recursively */

int
smarty_files_add(smarty_job_t *job, const char *path)
{
    return smarty_walk(job, path, 0, 1);
}


/*
 * enroll's DIR: every folder DIR/<person_id> (a number from 1) holds that
 * person's photos (its subfolders too).  Anything else in DIR is skipped
 * with a warning.
 */

int
smarty_enroll_add(smarty_job_t *job, const char *dir)
{
    int              i, n, rc;
    char            *path;
    long long        id;
    struct stat      st;
    struct dirent  **names;

    if (stat(dir, &st) == -1) {
        return smarty_usage_error("enroll: cannot read \"%s\": %s", dir,
                                  strerror(errno));
    }

    if (!S_ISDIR(st.st_mode)) {
        return smarty_usage_error("enroll: \"%s\" is not a folder of "
                                  "<person_id>/ folders", dir);
    }

    n = scandir(dir, &names, smarty_dirent_wanted, alphasort);
    if (n == -1) {
        return smarty_usage_error("enroll: cannot read the folder \"%s\": "
                                  "%s", dir, strerror(errno));
    }

    rc = -1;

    for (i = 0; i < n; i++) {

        if (rc == -1) {
            path = smarty_path_join(dir, names[i]->d_name);

            if (path == NULL) {
                rc = smarty_usage_error("out of memory");

            } else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                id = smarty_person_id(names[i]->d_name);

                if (id > 0) {
                    rc = smarty_walk(job, path, id, 1);

                } else {
                    fprintf(stderr, "smarty: enroll: the folder \"%s\" is no "
                            "person id (a number from 1): skipped\n", path);
                }

            } else {
                fprintf(stderr, "smarty: enroll: \"%s\" is not in a "
                        "<person_id>/ folder: skipped\n", path);
                job->skipped++;
            }

            free(path);
        }

        free(names[i]);
    }

    free(names);

    return rc;
}


/* an item for key; NULL with *dup set when the key is there already,
 * NULL without on no memory */

smarty_item_t *
smarty_item_add(smarty_job_t *job, const char *key, int *dup)
{
    size_t          size;
    smarty_item_t  *items, *it;
    const char     *slash;

    *dup = 0;

    switch (smarty_set_add(&job->seen, key)) {

    case -1:
        return NULL;

    case 0:
        *dup = 1;
        return NULL;

    default:
        break;
    }

    if (job->nitems == job->nalloc) {
        size = job->nalloc ? job->nalloc * 2 : 256;

        items = realloc(job->items, size * sizeof(smarty_item_t));
        if (items == NULL) {
            return NULL;
        }

        job->items = items;
        job->nalloc = size;
    }

    it = &job->items[job->nitems];
    memset(it, 0, sizeof(smarty_item_t));

    it->key = strdup(key);
    if (it->key == NULL) {
        return NULL;
    }

    slash = strrchr(it->key, '/');
    it->filename = slash ? slash + 1 : it->key;

    job->nitems++;

    return it;
}


static int
smarty_walk(smarty_job_t *job, const char *path, long long person_id,
    int top)
{
    int              i, n, rc;
    char            *child;
    struct stat      st;
    struct dirent  **names;

    if (stat(path, &st) == -1) {
        if (top) {
            return smarty_usage_error("cannot read \"%s\": %s", path,
                                      strerror(errno));
        }

        fprintf(stderr, "smarty: cannot read \"%s\": %s: skipped\n", path,
                strerror(errno));
        job->skipped++;
        return -1;
    }

    if (!S_ISDIR(st.st_mode)) {
        if (!S_ISREG(st.st_mode)) {
            if (top) {
                fprintf(stderr, "smarty: \"%s\" is not a regular file: "
                        "skipped\n", path);
            }

            job->skipped++;
            return -1;
        }

        return smarty_file(job, path, &st, person_id, top);
    }

    /* below the paths given, a symbolic link to a folder is not followed:
     * no loops */

    if (!top && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        fprintf(stderr, "smarty: \"%s\" is a link to a folder: not "
                "followed\n", path);
        return -1;
    }

    n = scandir(path, &names, smarty_dirent_wanted, alphasort);

    if (n == -1) {
        if (top) {
            return smarty_usage_error("cannot read the folder \"%s\": %s",
                                      path, strerror(errno));
        }

        fprintf(stderr, "smarty: cannot read the folder \"%s\": %s: "
                "skipped\n", path, strerror(errno));
        return -1;
    }

    rc = -1;

    for (i = 0; i < n; i++) {
        if (rc == -1) {
            child = smarty_path_join(path, names[i]->d_name);

            rc = child ? smarty_walk(job, child, person_id, 0)
                       : smarty_usage_error("out of memory");
            free(child);
        }

        free(names[i]);
    }

    free(names);

    return rc;
}


static int
smarty_file(smarty_job_t *job, const char *path, struct stat *st,
    long long person_id, int top)
{
    int             fd, dup, err;
    ssize_t         n;
    const char     *type;
    smarty_item_t  *it;
    unsigned char   head[16];

    if (!smarty_utf8_valid(path)) {
        /* a result line is UTF-8 text (JSON): the path could not be told */
        fprintf(stderr, "smarty: a file whose path is not UTF-8 was "
                "skipped (a result line could not name it)\n");
        job->skipped++;
        return -1;
    }

    type = NULL;
    err = 0;
    n = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        err = errno;

    } else {
        n = read(fd, head, sizeof(head));
        err = n == -1 ? errno : 0;
        close(fd);
    }

    if (err == 0) {
        type = smarty_image_type(head, n);

        if (type == NULL) {
            if (top) {
                fprintf(stderr, "smarty: \"%s\" is not a JPEG, PNG, GIF, "
                        "BMP or WebP image: skipped\n", path);
            }

            job->skipped++;
            return -1;
        }
    }

    it = smarty_item_add(job, path, &dup);

    if (it == NULL) {
        return dup ? -1 : smarty_usage_error("out of memory");
    }

    it->type = type;
    it->size = st->st_size;
    it->person_id = person_id;

    if (err != 0) {
        it->error = strerror(err);
        it->code = "unreadable";

    } else if (st->st_size > SMARTY_IMAGE_MAX) {
        it->error = "the image is larger than 4 MB (the API's limit): "
                    "not sent";
        it->code = "image_too_large";
    }

    return -1;
}


static char *
smarty_path_join(const char *dir, const char *name)
{
    char    *p;
    size_t   dlen, nlen;

    dlen = strlen(dir);
    nlen = strlen(name);

    while (dlen > 1 && dir[dlen - 1] == '/') {
        dlen--;
    }

    p = malloc(dlen + 1 + nlen + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, dir, dlen);

    if (dlen == 1 && dir[0] == '/') {
        dlen = 0;
    }

    p[dlen] = '/';
    memcpy(p + dlen + 1, name, nlen + 1);

    return p;
}


static int
smarty_dirent_wanted(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}


static int
smarty_utf8_valid(const char *s)
{
    json_t  *j;

    j = json_string(s);
    if (j == NULL) {
        return 0;
    }

    json_decref(j);

    return 1;
}


/* a folder name as a person id: digits, no leading zero, from 1; else 0 */

static long long
smarty_person_id(const char *name)
{
    char       *end;
    long long   id;

    if (name[0] < '1' || name[0] > '9') {
        return 0;
    }

    errno = 0;
    id = strtoll(name, &end, 10);

    if (errno != 0 || *end != '\0') {
        return 0;
    }

    return id;
}
