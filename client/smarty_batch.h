/*
 * smarty: the batch commands (recognize, enroll, delete, truncate).
 * Declarations shared by batch.c (flags), files.c (what is sent),
 * output.c (the result lines, --resume), run.c (the requests) and set.c
 * (the string set).
 */

#ifndef SMARTY_BATCH_H
#define SMARTY_BATCH_H

#include <stddef.h>

#include <jansson.h>

#include "smarty_client.h"


#define SMARTY_BATCH_IMAGES     100         /* the API's images per request */
#define SMARTY_IMAGE_MAX        (4 * 1024 * 1024)   /* the API's per image */
#define SMARTY_BATCH_BYTES      (64 * 1024 * 1024)  /* --batch-bytes */

/* a part's delimiter and headers, its filename aside, and a meta entry */
#define SMARTY_PART_OVERHEAD    256


typedef enum {
    SMARTY_CMD_RECOGNIZE = 0,
    SMARTY_CMD_ENROLL,
    SMARTY_CMD_DELETE,
    SMARTY_CMD_TRUNCATE
} smarty_cmd_e;


typedef enum {
    SMARTY_FORMAT_JSONL = 0,
    SMARTY_FORMAT_CSV
} smarty_format_e;


typedef enum {
    SMARTY_ITEM_QUEUED = 0,     /* waits to be sent (maybe again) */
    SMARTY_ITEM_SENT,           /* in a request in flight */
    SMARTY_ITEM_DONE            /* its line is written */
} smarty_item_state_e;


/* a string set (open addressing), for duplicates and --resume */
typedef struct {
    char    **slots;
    size_t    size;             /* a power of two, or 0 */
    size_t    n;
} smarty_set_t;


/* one line of the output: an image, or a person id for delete */
typedef struct {
    char        *key;           /* the path as given or walked; the
                                   person id for delete */
    const char  *filename;      /* base name of the path */
    const char  *type;          /* MIME type from the content; NULL: the
                                   item sends no part */
    const char  *error;         /* known before sending: written at once */
    const char  *code;
    long long    size;
    long long    person_id;     /* enroll, delete */
    double       not_before;    /* monotonic: not sent again before */
    int          attempts;      /* failed: 5xx, transport, status 2 */
    int          state;         /* smarty_item_state_e */
} smarty_item_t;


typedef struct {
    smarty_cmd_e      cmd;
    const char       *name;         /* "recognize" */
    const char       *method;       /* "persons/recognize" */
    const char       *prog;         /* argv[0] of the program */
    int               argc;         /* the command's, for the resume hint */
    char            **argv;

    char              space[2];
    int               create_new;
    char             *url;          /* the method's URL */
    char             *key;

    smarty_item_t    *items;
    size_t            nitems;
    size_t            nalloc;
    smarty_set_t      seen;         /* keys of items: no duplicates */
    smarty_set_t      done;         /* keys with a final line in --out */

    /* flags */
    int               parallel;
    size_t            max_images;
    size_t            max_bytes;
    int               retries;
    double            backoff;
    double            timeout;
    double            interval;     /* plain progress lines, seconds */
    int               quiet;
    int               verbose;
    int               resume;
    int               yes;
    smarty_format_e   format;
    const char       *out_path;

    /* the output */
    int               out_fd;
    int               out_tty;      /* the output shares the progress'
                                       terminal */
    int               progress_tty; /* stderr is a terminal */
    int               progress_drawn;

    /* counts */
    size_t            skipped;      /* files that are no images */
    size_t            resumed;      /* in --out already */
    size_t            total;        /* items of this run */
    size_t            written;      /* final lines written by this run */
    size_t            ok;
    size_t            failed;
    size_t            hits;         /* images answered from the cache */
    size_t            persons;      /* faces found */
    size_t            known;        /* faces with a person's tag */
    size_t            requests;
    size_t            waits;        /* 429 answers waited for */
    size_t            retried;      /* requests whose images went again */
    size_t            splits;       /* 413 answers that split a batch */
} smarty_job_t;


/* files.c */
int smarty_files_add(smarty_job_t *job, const char *path);
int smarty_enroll_add(smarty_job_t *job, const char *dir);
smarty_item_t *smarty_item_add(smarty_job_t *job, const char *key,
    int *dup);
const char *smarty_image_type(const unsigned char *p, size_t n);

/* output.c */
int smarty_out_open(smarty_job_t *job);
int smarty_out_line(smarty_job_t *job, smarty_item_t *it, int status,
    const char *error, const char *code, json_t *persons,
    const char *cache);
void smarty_out_close(smarty_job_t *job);
void smarty_progress_clear(smarty_job_t *job);

/* run.c */
int smarty_run(smarty_job_t *job);
double smarty_now(void);

/* set.c */
int smarty_set_add(smarty_set_t *s, const char *key);
int smarty_set_has(smarty_set_t *s, const char *key);
void smarty_set_free(smarty_set_t *s);

#endif /* SMARTY_BATCH_H */
