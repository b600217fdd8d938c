/*
 * smarty-gateway: query strings, the pure part (docs/reference.md,
 * "Query string").
 *
 * Names are compared as the upstream's HTTP stack reads them: percent-
 * decoded once, '+' as a space.  So "oauth%5Ftoken" is oauth_token, and a
 * client cannot smuggle a credential past a filter that compares raw
 * bytes.  Pure C, no nginx types.
 */

#ifndef SMARTY_ARGS_H
#define SMARTY_ARGS_H

#include <stddef.h>


#define SMARTY_ARGS_NAME_MAX  256       /* longer names match nothing */


typedef struct {
    const char  *pair;          /* the whole pair, raw, as sent */
    size_t       pair_len;
    const char  *name;          /* raw */
    size_t       name_len;
    const char  *value;         /* raw, after '='; NULL without '=' */
    size_t       value_len;
} smarty_arg_t;


/*
 * The next pair of args[*pos .. len), '&'-separated; empty pairs ("a&&b")
 * are skipped.  Returns 1 with *arg filled and *pos moved past the pair,
 * 0 at the end.
 */
int smarty_args_next(const char *args, size_t len, size_t *pos,
    smarty_arg_t *arg);

/*
 * Percent-decodes len bytes at s into out (room for len bytes), '+' as a
 * space; an escape that is not '%' and two hex digits stays as it is.
 * Returns the decoded length.
 */
size_t smarty_args_unescape(const char *s, size_t len, char *out);

/*
 * Whether the raw name, decoded, equals want: byte for byte (icase 0) or
 * ignoring ASCII case (icase 1).  A name longer than SMARTY_ARGS_NAME_MAX
 * equals nothing.
 */
int smarty_args_name_is(const char *name, size_t len, const char *want,
    int icase);

/* oauth_token or oauth_provider, decoded, in any case */
int smarty_args_credential(const char *name, size_t len);

/*
 * In place, in any text that holds query strings (a query, a request
 * line, an error log line): the value of every parameter whose decoded
 * name is oauth_token, access_token, refresh_token or client_secret, in
 * any case, becomes "***" (a value shorter than three bytes becomes as
 * many '*').  A name starts after '?', '&', ';', '/', a space, a quote, a
 * comma or a control character; a value ends at the same.  Returns the
 * new length (never more than len).
 */
size_t smarty_args_redact(char *text, size_t len);

#endif /* SMARTY_ARGS_H */
