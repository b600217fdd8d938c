/*
 * smarty: the command-line client of the Smarty API and of smarty-gateway.
 * Declarations shared by the client's files.  Each file calls only those
 * below it:
 *
 *   smarty.c     main: the commands, and the one-call mode
 *   keygen.c     keygen, hash-key
 *   batch.c      recognize, enroll, delete, truncate (smarty_batch.h:
 *                run.c, files.c, output.c, set.c)
 *   help.c       the --help text
 *   util.c       buffer, usage errors, key, URL check, masking
 */

#ifndef SMARTY_CLIENT_H
#define SMARTY_CLIENT_H

#include <stddef.h>


/* exit statuses, documented in --help and client/README.md */
#define SMARTY_EXIT_OK          0   /* the call and every image succeeded */
#define SMARTY_EXIT_API         1   /* the API answered an error */
#define SMARTY_EXIT_USAGE       2   /* bad flags, unreadable file, bad meta */
#define SMARTY_EXIT_TRANSPORT   3   /* connection refused, timeout, ... */
#define SMARTY_EXIT_IMAGES      4   /* at least one image failed */

#define SMARTY_KEY_PREFIX       "sgw_"
#define SMARTY_KEY_BYTES        32
#define SMARTY_KEY_MAX          4096


typedef struct {
    char    *data;
    size_t   len;
    size_t   size;
} smarty_buf_t;


/* keygen.c */

/* "smarty keygen ...": argv[0] is "keygen" */
int smarty_keygen_main(int argc, char **argv);

/* "smarty audit ...": argv[0] is "audit" (audit.c) */
int smarty_audit_main(int argc, char **argv);

/* "smarty hash-key": argv[0] is "hash-key" */
int smarty_hash_key_main(int argc, char **argv);

/* lowercase hex SHA-256 of len bytes into out (65 bytes, NUL-terminated) */
void smarty_sha256_hex(const void *data, size_t len, char *out);


/* batch.c */

/* "smarty recognize|enroll|delete|truncate ...": argv[0] is the command,
 * prog the program's name as invoked (for the resume hint) */
int smarty_batch_main(const char *prog, int argc, char **argv);


/* help.c */

/* the whole --help text */
void smarty_help(void);


/* util.c */

/* what -v and error messages must never show */
extern const char  *smarty_secret_key;
extern char        *smarty_secret_token;

/* prints "smarty: <msg>" and a pointer to --help; returns SMARTY_EXIT_USAGE */
int smarty_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * The key from -k (with a warning: argv shows in ps), --key-file or
 * $SMARTY_KEY; *key is NULL when none is given.  Returns -1 when all is
 * well, else an exit status (the error is said on stderr).
 */
int smarty_key_get(const char *key_arg, const char *key_file, char **key);
int smarty_key_check(const char *key, const char *from);

/* 0 for an http:// or https:// URL (its oauth_token remembered as a
 * secret), else says why on stderr and returns non-zero */
int smarty_url_check(const char *url);

/* appends s to out with the key, tokens and credentials masked as "***" */
void smarty_mask(smarty_buf_t *out, const char *s, size_t len);

int smarty_buf_add(smarty_buf_t *b, const char *p, size_t len);
int smarty_buf_printf(smarty_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smarty_buf_free(smarty_buf_t *b);

#endif /* SMARTY_CLIENT_H */
