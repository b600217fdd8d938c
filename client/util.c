/*
 * smarty: the helpers below every command: the growing buffer, usage
 * errors, the key (-k, --key-file, SMARTY_KEY), the URL check and the
 * masking of secrets in what is shown.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "smarty_client.h"


/* what -v and error messages must never show */
const char  *smarty_secret_key;
char        *smarty_secret_token;


static int smarty_key_from_file(const char *path, char **key);


int
smarty_usage_error(const char *fmt, ...)
{
    va_list  ap;

    fputs("smarty: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry \"smarty --help\" for more information.\n", stderr);

    return SMARTY_EXIT_USAGE;
}


/*
 * The key: -k, else --key-file, else $SMARTY_KEY (none at all is no error:
 * *key stays NULL).  A key in argv is visible to every local user in the
 * process list: it works, with a warning.  Returns -1 or an exit status.
 */

int
smarty_key_get(const char *key_arg, const char *key_file, char **key)
{
    char  *env;

    *key = NULL;

    if (key_arg != NULL && key_file != NULL) {
        return smarty_usage_error("give the key with -k or with --key-file, "
                                  "not both");
    }

    if (key_arg != NULL) {
        fprintf(stderr, "smarty: warning: a key given with -k is visible to "
                "other users in the process list (ps); use SMARTY_KEY or "
                "--key-file\n");

        *key = strdup(key_arg);
        return smarty_key_check(*key, "-k");
    }

    if (key_file != NULL) {
        return smarty_key_from_file(key_file, key);
    }

    env = getenv("SMARTY_KEY");

    if (env != NULL && env[0] != '\0') {
        *key = strdup(env);
        return smarty_key_check(*key, "SMARTY_KEY");
    }

    return -1;
}


int
smarty_key_check(const char *key, const char *from)
{
    const unsigned char  *p;

    if (key == NULL) {
        perror("smarty");
        return SMARTY_EXIT_USAGE;
    }

    if (key[0] == '\0') {
        return smarty_usage_error("the key given by %s is empty", from);
    }

    if (strlen(key) > SMARTY_KEY_MAX) {
        return smarty_usage_error("the key given by %s is longer than %d "
                                  "bytes", from, SMARTY_KEY_MAX);
    }

    /* it goes into a header line: printable ASCII only */

    for (p = (const unsigned char *) key; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            return smarty_usage_error("the key given by %s holds a space or "
                                      "a character that is not printable "
                                      "ASCII", from);
        }
    }

    return -1;
}


static int
smarty_key_from_file(const char *path, char **key)
{
    char    buf[SMARTY_KEY_MAX + 2];
    FILE   *f;
    size_t  n;

    f = fopen(path, "r");
    if (f == NULL) {
        return smarty_usage_error("cannot read the key file \"%s\": %s",
                                  path, strerror(errno));
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);

    if (ferror(f)) {
        fclose(f);
        return smarty_usage_error("cannot read the key file \"%s\": %s",
                                  path, strerror(errno));
    }

    fclose(f);
    buf[n] = '\0';

    /* the first line, without its line ending */
    buf[strcspn(buf, "\r\n")] = '\0';

    *key = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));

    return smarty_key_check(*key, "--key-file");
}


int
smarty_url_check(const char *url)
{
    int       rc;
    char     *query, *p, *e;
    CURLU    *u;
    CURLUcode uc;

    if (strncasecmp(url, "http://", 7) != 0
        && strncasecmp(url, "https://", 8) != 0)
    {
        return smarty_usage_error("-u wants an http:// or https:// URL");
    }

    u = curl_url();
    if (u == NULL) {
        return smarty_usage_error("out of memory");
    }

    rc = 0;
    uc = curl_url_set(u, CURLUPART_URL, url, 0);

    if (uc != CURLUE_OK) {
        /* the URL may hold a token: no echo of it */
        rc = smarty_usage_error("-u: not a valid URL (%s)",
                                curl_url_strerror(uc));

    } else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {

        /* remember the oauth_token, so that -v can mask it anywhere */

        for (p = query; p != NULL; p = e ? e + 1 : NULL) {
            e = strchr(p, '&');

            if (strncmp(p, "oauth_token=", 12) == 0
                && smarty_secret_token == NULL)
            {
                smarty_secret_token = e ? strndup(p + 12, e - (p + 12))
                                        : strdup(p + 12);
            }
        }

        curl_free(query);
    }

    curl_url_cleanup(u);

    return rc;
}


/*
 * Appends s to out with secrets replaced by "***":
 *  - the credentials of an Authorization or Proxy-Authorization header
 *    (the scheme stays: "Authorization: Bearer ***");
 *  - the value of every oauth_token query parameter;
 *  - anywhere, the key itself and the URL's oauth_token when they are long
 *    enough not to be mistaken for ordinary text.
 */

void
smarty_mask(smarty_buf_t *out, const char *s, size_t len)
{
    size_t       i, j, klen, tlen;
    const char  *colon, *v, *end;

    colon = memchr(s, ':', len);

    if (colon != NULL
        && (((size_t) (colon - s) == 13 && strncasecmp(s, "authorization", 13)
             == 0)
            || ((size_t) (colon - s) == 19
                && strncasecmp(s, "proxy-authorization", 19) == 0)))
    {
        end = s + len;
        v = colon + 1;

        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }

        for (j = 0; v + j < end && v[j] != ' ' && v[j] != '\t'; j++) {
            /* the scheme */
        }

        smarty_buf_add(out, s, colon + 1 - s);

        if (v + j < end) {
            smarty_buf_printf(out, " %.*s ***", (int) j, v);

        } else {
            smarty_buf_add(out, " ***", 4);
        }

        return;
    }

    klen = smarty_secret_key ? strlen(smarty_secret_key) : 0;
    tlen = smarty_secret_token ? strlen(smarty_secret_token) : 0;

    for (i = 0; i < len; /* void */) {

        if ((i == 0 || s[i - 1] == '?' || s[i - 1] == '&')
            && len - i >= 12 && strncasecmp(s + i, "oauth_token=", 12) == 0)
        {
            smarty_buf_add(out, s + i, 12);
            i += 12;

            for (j = i; j < len && strchr("& #\"'", s[j]) == NULL; j++) {
                /* the value */
            }

            if (j > i) {
                smarty_buf_add(out, "***", 3);
            }

            i = j;
            continue;
        }

        if (klen >= 8 && len - i >= klen
            && memcmp(s + i, smarty_secret_key, klen) == 0)
        {
            smarty_buf_add(out, "***", 3);
            i += klen;
            continue;
        }

        if (tlen >= 8 && len - i >= tlen
            && memcmp(s + i, smarty_secret_token, tlen) == 0)
        {
            smarty_buf_add(out, "***", 3);
            i += tlen;
            continue;
        }

        smarty_buf_add(out, s + i, 1);
        i++;
    }
}


int
smarty_buf_add(smarty_buf_t *b, const char *p, size_t len)
{
    char    *d;
    size_t   size;

    if (b->len + len + 1 > b->size) {
        size = b->size ? b->size : 256;

        while (size < b->len + len + 1) {
            size *= 2;
        }

        d = realloc(b->data, size);
        if (d == NULL) {
            return -1;
        }

        b->data = d;
        b->size = size;
    }

    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';

    return 0;
}


int
smarty_buf_printf(smarty_buf_t *b, const char *fmt, ...)
{
    int      n, rc;
    char     small[256], *big;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);

    if (n < 0) {
        return -1;
    }

    if ((size_t) n < sizeof(small)) {
        n = smarty_buf_add(b, small, n);
        OPENSSL_cleanse(small, sizeof(small));
        return n;
    }

    big = malloc(n + 1);
    if (big == NULL) {
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf(big, n + 1, fmt, ap);
    va_end(ap);

    rc = smarty_buf_add(b, big, n);
    OPENSSL_cleanse(big, n);
    free(big);

    return rc;
}


void
smarty_buf_free(smarty_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->size = 0;
}
