/*
 * smarty: the command-line client of the Smarty API and of smarty-gateway.
 * Declarations shared by the client's files.
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


/* "smarty keygen ...": argv[0] is "keygen" */
int smarty_keygen_main(int argc, char **argv);

/* "smarty hash-key": argv[0] is "hash-key" */
int smarty_hash_key_main(int argc, char **argv);

/* lowercase hex SHA-256 of len bytes into out (65 bytes, NUL-terminated) */
void smarty_sha256_hex(const void *data, size_t len, char *out);

/* prints "smarty: <msg>" and a pointer to --help; returns SMARTY_EXIT_USAGE */
int smarty_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* the whole --help text */
void smarty_help(void);

#endif /* SMARTY_CLIENT_H */
