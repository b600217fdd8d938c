/*
 * smarty-emulator: an emulator of the Smarty (Mail.ru / VK Cloud Vision)
 * API for the gateway's tests, benchmarks and demos.  It does no computer
 * vision: what a photo shows is written into the photo (see README.md).
 *
 * Files, each calling only those below it:
 *   main.c       flags, start, signals
 *   server.c     the HTTP server (libmicrohttpd): requests, bodies, routes
 *   api.c        /api/v1/: authorization, faults, validation, dispatch
 *   control.c    /_emulator/: stats, last request, faults, reset, revoke
 *   persons.c    persons/set, recognize, delete, truncate: the spaces
 *   detect.c     the stateless detectors
 *   tokens.c     /auth/oauth/v1/token, and the tokens it issued
 *   call.c       what the methods share: meta.images, image parts, errors
 *   http.c       answers (JSON, envelope, error), waits, resets
 *   stats.c      the counters and the last request
 *   multipart.c  multipart/form-data parsing (binary safe, linear time)
 *   faces.c      image types, faces and their scores
 *   util.c       configuration, RNG, knobs, hashing, JSON, time
 */

#ifndef EMU_H
#define EMU_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>


#define EMU_SPACES          10
#define EMU_ID_MAX          64      /* annotated identity length */
#define EMU_SERVICE_TOKENS  2

#define EMU_UNKNOWN_TYPE    "The memory contains data of an unknown image type"
#define EMU_TEMP_ERROR      "temporary error, retry later"


/* the knobs that /_emulator/faults may change at run time */
typedef struct {
    double       fail_5xx;
    double       temp_error;
    double       hang;
    double       reset;
    double       aliases_changed;   /* share of recognize answers saying
                                       aliases_changed: true */
    long         latency_ms;
    long         per_image_ms;
    double       token_fail;        /* the token endpoint's 503s */
    double       token_hang;        /* and hangs */
    long         token_latency_ms;
} emu_knobs_t;


typedef struct {
    const char  *listen;
    long         port;
    char        *tokens[EMU_SERVICE_TOKENS];   /* service tokens */
    const char  *client_id;
    const char  *client_secret;
    long         token_lifetime;                /* seconds */
    long         refresh_lifetime;              /* seconds */
    long         max_tokens;
    long         max_images;
    long         max_image_bytes;
    long         max_body_bytes;
    long         hang_max_s;
    uint64_t     seed;
    int          quiet;
    emu_knobs_t  knobs;                         /* initial values */
} emu_conf_t;


/* a request-level error: the envelope's status, code and sentence */
typedef struct {
    unsigned     status;
    const char  *code;
    char         error[256];
} emu_err_t;


/* one request, from the URI callback to the completion callback */
typedef struct {
    char            *uri;          /* raw request target */
    char            *path;         /* URL path, unescaped by MHD */
    const char      *method;
    int              started;
    int              kind;
    unsigned char   *body;
    size_t           body_len;     /* bytes received */
    size_t           body_stored;  /* bytes kept in body */
    size_t           body_alloc;
    size_t           body_max;
    int              body_overflow;
    EVP_MD_CTX      *sha;
    char             body_sha256[65];
    int64_t          start_ms;
} emu_req_t;


typedef struct {
    char                 *name;
    char                 *filename;
    char                 *content_type;
    const unsigned char  *data;
    size_t                len;
} emu_part_t;


typedef struct {
    emu_part_t  *parts;
    size_t       nparts;
    size_t       nalloc;
} emu_parts_t;


/* one call of an API method */
typedef struct {
    const char         *path;
    json_t             *meta;
    const emu_parts_t  *parts;
    double              temp_error;
    double              aliases_changed;
    size_t              images;     /* out: images answered */
    emu_err_t           err;        /* out: when the method returns NULL */
} emu_call_t;

typedef json_t *(*emu_method_pt)(emu_call_t *call);


/* what /_emulator/stats tells of the token endpoint */
typedef struct {
    json_int_t   issued;        /* access tokens, refreshed ones included */
    json_int_t   refreshed;
    json_int_t   active;        /* access tokens unexpired and unrevoked */
    json_int_t   max_active;    /* since the last reset */
    json_int_t   refused;       /* 4xx and 5xx answers */
} emu_token_stats_t;


typedef struct {
    char         id[EMU_ID_MAX + 8];   /* annotated <id>, or "#<sha>/<n>" */
    uint32_t     box[4];               /* left, top, right, bottom */
    int          annotated;
} emu_face_t;


/* server.c */
struct MHD_Daemon *emu_server_start(void);

/* api.c */
enum MHD_Result emu_api_handle(struct MHD_Connection *c, emu_req_t *r);

/* control.c */
enum MHD_Result emu_control_handle(struct MHD_Connection *c, emu_req_t *r);

/* persons.c */
void emu_persons_init(void);
void emu_persons_reset(void);
json_t *emu_persons_set(emu_call_t *call);
json_t *emu_persons_recognize(emu_call_t *call);
json_t *emu_persons_delete(emu_call_t *call);
json_t *emu_persons_truncate(emu_call_t *call);

/* detect.c */
json_t *emu_objects_detect(emu_call_t *call);
json_t *emu_docs_detect(emu_call_t *call);
json_t *emu_docs_recognize(emu_call_t *call);
json_t *emu_text_recognize(emu_call_t *call);
json_t *emu_adult_detect(emu_call_t *call);

/* tokens.c */
enum MHD_Result emu_tokens_handle(struct MHD_Connection *c, emu_req_t *r);
int emu_token_valid(const char *token);
size_t emu_tokens_revoke(void);
void emu_tokens_stats(emu_token_stats_t *ts);
void emu_tokens_stats_reset(void);

/* call.c */
const emu_part_t *emu_image_begin(emu_call_t *call, json_t *entry,
    json_t **answer);
json_t *emu_image_error(const char *name, int status, const char *error);
json_t *emu_meta_images(emu_call_t *call, int person_id);

/* http.c */
enum MHD_Result emu_send_json(struct MHD_Connection *c, emu_req_t *r,
    unsigned status, json_t *json);
enum MHD_Result emu_send_envelope(struct MHD_Connection *c, emu_req_t *r,
    unsigned status, json_t *body);
enum MHD_Result emu_send_error(struct MHD_Connection *c, emu_req_t *r,
    const emu_err_t *err);
int emu_wait(struct MHD_Connection *c, long ms);
void emu_reset_connection(struct MHD_Connection *c);

/* stats.c */
void emu_stats_request_total(void);
void emu_stats_request(const char *path);
void emu_stats_images(size_t n);
void emu_stats_fault(const char *which);
void emu_last_set(json_t *last);
json_t *emu_last_get(void);
json_t *emu_stats_json(const emu_token_stats_t *ts);
void emu_stats_clear(void);

/* multipart.c */
int emu_multipart_parse(const char *ctype, const unsigned char *body,
    size_t len, emu_parts_t *out, emu_err_t *err);
void emu_parts_free(emu_parts_t *parts);
const emu_part_t *emu_parts_find(const emu_parts_t *parts, const char *name);

/* faces.c */
const char *emu_image_type(const unsigned char *p, size_t len);
size_t emu_faces_find(const unsigned char *p, size_t len, emu_face_t **faces);
void emu_face_scores(const emu_face_t *f, double *confidence,
    double *similarity_match, double *similarity_none, double *awesomeness);
void emu_face_attributes(const emu_face_t *f, const char **sex, int *age,
    const char **emotion);

/* util.c */
extern emu_conf_t             emu_conf;
extern volatile sig_atomic_t  emu_stopping;

void emu_util_init(void);
int emu_chance(double p);
void emu_knobs_get(emu_knobs_t *k);
void emu_knobs_set(const emu_knobs_t *k);
void emu_sha256(const void *data, size_t len, unsigned char out[32]);
void emu_hex(const unsigned char *p, size_t n, char *out);
int64_t emu_now_ms(void);
double emu_round4(double v);
double emu_frac(const unsigned char *p, double lo, double hi);
char *emu_json_dumps(json_t *j);
int emu_parse_prob(const char *s, double *p);
int emu_parse_long(const char *s, long min, long max, long *v);
void emu_err_set(emu_err_t *err, unsigned status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void emu_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* EMU_H */
