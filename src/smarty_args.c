/*
 * smarty-gateway: query strings, the pure part (see smarty_args.h).
 */

#include <string.h>
#include <strings.h>

#include "smarty_args.h"


static int smarty_args_hex(int c);
static int smarty_args_delim(int c);
static int smarty_args_secret(const char *name, size_t len);


int
smarty_args_next(const char *args, size_t len, size_t *pos,
    smarty_arg_t *arg)
{
    const char  *p, *end, *amp, *eq;

    end = args + len;
    p = args + *pos;

    while (p < end && *p == '&') {
        p++;
    }

    if (p >= end) {
        *pos = len;
        return 0;
    }

    amp = memchr(p, '&', end - p);
    if (amp == NULL) {
        amp = end;
    }

    eq = memchr(p, '=', amp - p);

    arg->pair = p;
    arg->pair_len = amp - p;
    arg->name = p;
    arg->name_len = (eq ? eq : amp) - p;
    arg->value = eq ? eq + 1 : NULL;
    arg->value_len = eq ? (size_t) (amp - eq - 1) : 0;

    *pos = amp - args;

    return 1;
}


size_t
smarty_args_unescape(const char *s, size_t len, char *out)
{
    int     hi, lo;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {

        if (s[i] == '+') {
            out[n++] = ' ';
            continue;
        }

        if (s[i] == '%' && i + 2 < len) {
            hi = smarty_args_hex((unsigned char) s[i + 1]);
            lo = smarty_args_hex((unsigned char) s[i + 2]);

            if (hi >= 0 && lo >= 0) {
                out[n++] = (char) (hi << 4 | lo);
                i += 2;
                continue;
            }
        }

        out[n++] = s[i];
    }

    return n;
}


int
smarty_args_name_is(const char *name, size_t len, const char *want,
    int icase)
{
    char    buf[SMARTY_ARGS_NAME_MAX];
    size_t  n, wlen;

    if (len > SMARTY_ARGS_NAME_MAX) {
        return 0;
    }

    n = smarty_args_unescape(name, len, buf);
    wlen = strlen(want);

    if (n != wlen) {
        return 0;
    }

    return icase ? strncasecmp(buf, want, n) == 0
                 : memcmp(buf, want, n) == 0;
}


int
smarty_args_credential(const char *name, size_t len)
{
    return smarty_args_name_is(name, len, "oauth_token", 1)
           || smarty_args_name_is(name, len, "oauth_provider", 1);
}


size_t
smarty_args_redact(char *text, size_t len)
{
    size_t  i, start, v, e, vlen;

    for (i = 0; i < len; i++) {

        if (text[i] != '=') {
            continue;
        }

        /* the name before '=' */

        for (start = i; start > 0; start--) {
            if (smarty_args_delim((unsigned char) text[start - 1])
                || text[start - 1] == '=')
            {
                break;
            }
        }

        if (!smarty_args_secret(text + start, i - start)) {
            continue;
        }

        v = i + 1;

        for (e = v; e < len; e++) {
            if (smarty_args_delim((unsigned char) text[e])) {
                break;
            }
        }

        vlen = e - v;

        if (vlen >= 3) {
            memcpy(text + v, "***", 3);
            memmove(text + v + 3, text + e, len - e);
            len -= vlen - 3;

        } else {
            memset(text + v, '*', vlen);
        }

        i = v;
    }

    return len;
}


/* the parameters whose values are secrets: a key or a token, an OAuth
 * client's secret */

static int
smarty_args_secret(const char *name, size_t len)
{
    return smarty_args_name_is(name, len, "oauth_token", 1)
           || smarty_args_name_is(name, len, "access_token", 1)
           || smarty_args_name_is(name, len, "refresh_token", 1)
           || smarty_args_name_is(name, len, "client_secret", 1);
}


static int
smarty_args_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* where a name starts and a value ends, in a query or around one */

static int
smarty_args_delim(int c)
{
    return c == '&' || c == '?' || c == ';' || c == '/' || c == ' '
           || c == '"' || c == '\'' || c == ',' || c < 0x20 || c == 0x7f;
}
