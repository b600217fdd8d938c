/*
 * smarty: "keygen" and "hash-key", the key tools for operators of
 * smarty-gateway.
 *
 * A client key is "sgw_" followed by 32 random bytes (OpenSSL RAND_bytes)
 * in URL-safe base64 without padding.  The gateway's clients file stores
 * only the lowercase hex SHA-256 of the key string's bytes:
 *
 *   {"name":"billing","key_sha256":"<64 hex digits>",
 *    "spaces":["0","1"] | "*","methods":["persons/recognize"] | "*"}
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "smarty_client.h"
#include "smarty_meta.h"     /* the API's methods, as the gateway knows them */


#define SMARTY_NAME_MAX  64


static int smarty_name_valid(const char *name);
static json_t *smarty_spaces_parse(const char *list);
static json_t *smarty_methods_parse(const char *list);
static char *smarty_list_item(const char **p, size_t *len);
static int smarty_key_make(char *key, size_t size);


void
smarty_sha256_hex(const void *data, size_t len, char *out)
{
    size_t          i;
    unsigned char   md[SHA256_DIGEST_LENGTH];
    static const char  hex[] = "0123456789abcdef";

    SHA256(data, len, md);

    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }

    out[2 * SHA256_DIGEST_LENGTH] = '\0';
}


int
smarty_keygen_main(int argc, char **argv)
{
    int          c, as_json, operator, rc;
    char         key[128], hash[65], *out;
    json_t      *spaces, *methods, *entry, *doc;
    const char  *name, *spaces_arg, *methods_arg;

    static const struct option  opts[] = {
        { "name",    required_argument, NULL, 'n' },
        { "spaces",  required_argument, NULL, 's' },
        { "methods", required_argument, NULL, 'm' },
        { "operator", no_argument,      NULL, 'o' },
        { "json",    no_argument,       NULL, 'j' },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    name = NULL;
    spaces_arg = "*";
    methods_arg = "*";
    as_json = 0;
    operator = 0;

    opterr = 0;
    optind = 1;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {

        case 'n':
            name = optarg;
            break;

        case 's':
            spaces_arg = optarg;
            break;

        case 'm':
            methods_arg = optarg;
            break;

        case 'j':
            as_json = 1;
            break;

        case 'o':
            operator = 1;
            break;

        case 'h':
            smarty_help();
            return SMARTY_EXIT_OK;

        case ':':
            return smarty_usage_error("keygen: option \"%s\" needs a value",
                                      argv[optind - 1]);

        default:
            if (optopt != 0) {
                return smarty_usage_error("keygen: unknown option \"-%c\"",
                                          optopt);
            }

            return smarty_usage_error("keygen: unknown option \"%s\"",
                                      argv[optind - 1]);
        }
    }

    if (optind < argc) {
        return smarty_usage_error("keygen: unexpected argument \"%s\"",
                                  argv[optind]);
    }

    if (name == NULL) {
        return smarty_usage_error("keygen: --name NAME is required");
    }

    if (!smarty_name_valid(name)) {
        return smarty_usage_error("keygen: --name must be 1 to %d printable "
                                  "ASCII characters without spaces, quotes "
                                  "or backslashes", SMARTY_NAME_MAX);
    }

    spaces = smarty_spaces_parse(spaces_arg);
    if (spaces == NULL) {
        return SMARTY_EXIT_USAGE;
    }

    methods = smarty_methods_parse(methods_arg);
    if (methods == NULL) {
        json_decref(spaces);
        return SMARTY_EXIT_USAGE;
    }

    if (smarty_key_make(key, sizeof(key)) != 0) {
        json_decref(spaces);
        json_decref(methods);
        fprintf(stderr, "smarty: keygen: no random bytes from OpenSSL\n");
        return SMARTY_EXIT_API;
    }

    smarty_sha256_hex(key, strlen(key), hash);

    entry = json_object();
    json_object_set_new(entry, "name", json_string(name));
    json_object_set_new(entry, "key_sha256", json_string(hash));
    json_object_set_new(entry, "spaces", spaces);
    json_object_set_new(entry, "methods", methods);

    if (operator) {
        json_object_set_new(entry, "operator", json_true());
    }

    rc = SMARTY_EXIT_OK;

    if (as_json) {
        doc = json_object();
        json_object_set_new(doc, "key", json_string(key));
        json_object_set(doc, "entry", entry);

        out = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (out == NULL) {
            rc = SMARTY_EXIT_API;

        } else {
            printf("%s\n", out);
            OPENSSL_cleanse(out, strlen(out));
            free(out);
        }

        json_decref(doc);

    } else {
        out = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (out == NULL) {
            rc = SMARTY_EXIT_API;

        } else {
            printf("key: %s\nentry: %s\n", key, out);
            free(out);
        }
    }

    json_decref(entry);
    OPENSSL_cleanse(key, sizeof(key));

    if (fflush(stdout) != 0) {
        perror("smarty: keygen: stdout");
        return SMARTY_EXIT_API;
    }

    return rc;
}


int
smarty_hash_key_main(int argc, char **argv)
{
    char    buf[SMARTY_KEY_MAX + 2], hash[65];
    size_t  n, start, end;

    if (argc == 2
        && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
    {
        smarty_help();
        return SMARTY_EXIT_OK;
    }

    if (argc > 1) {
        return smarty_usage_error("hash-key: takes no arguments, it reads "
                                  "the key on stdin");
    }

    n = fread(buf, 1, sizeof(buf) - 1, stdin);

    if (ferror(stdin)) {
        perror("smarty: hash-key: stdin");
        return SMARTY_EXIT_USAGE;
    }

    if (n > SMARTY_KEY_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return smarty_usage_error("hash-key: the key on stdin is longer than "
                                  "%d bytes", SMARTY_KEY_MAX);
    }

    /* surrounding whitespace (the newline of echo or of a file) is no part
     * of the key */

    start = 0;
    end = n;

    while (start < end && strchr(" \t\r\n", buf[start]) != NULL
           && buf[start] != '\0')
    {
        start++;
    }

    while (end > start && strchr(" \t\r\n", buf[end - 1]) != NULL
           && buf[end - 1] != '\0')
    {
        end--;
    }

    if (start == end) {
        return smarty_usage_error("hash-key: no key on stdin");
    }

    if (memchr(buf + start, '\n', end - start) != NULL) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return smarty_usage_error("hash-key: one key, on one line, please");
    }

    smarty_sha256_hex(buf + start, end - start, hash);
    OPENSSL_cleanse(buf, sizeof(buf));

    printf("%s\n", hash);

    return fflush(stdout) == 0 ? SMARTY_EXIT_OK : SMARTY_EXIT_API;
}


/* what the gateway accepts as a client's name in its clients file */

static int
smarty_name_valid(const char *name)
{
    size_t  i, len;

    len = strlen(name);

    if (len == 0 || len > SMARTY_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) name[i] < 0x21 || (unsigned char) name[i] > 0x7e
            || name[i] == '"' || name[i] == '\\')
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The next item of a comma list, surrounding blanks trimmed; *p moves past
 * the comma.  Returns NULL at the end of the list.
 */

static char *
smarty_list_item(const char **p, size_t *len)
{
    const char  *s, *e, *next;

    if (*p == NULL) {
        return NULL;
    }

    s = *p;
    e = strchr(s, ',');

    if (e == NULL) {
        e = s + strlen(s);
        next = NULL;

    } else {
        next = e + 1;
    }

    *p = next;

    while (s < e && (*s == ' ' || *s == '\t')) {
        s++;
    }

    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }

    *len = e - s;

    return (char *) s;
}


/* "*" or a comma list of digits; a JSON "*" or sorted unique ["0",...] */

static json_t *
smarty_spaces_parse(const char *list)
{
    int          i;
    char        *item, digit[2];
    size_t       len;
    json_t      *a;
    unsigned     mask;
    const char  *p;

    if (strcmp(list, "*") == 0) {
        return json_string("*");
    }

    if (strcmp(list, "none") == 0) {
        return json_array();
    }

    mask = 0;
    p = list;

    while ((item = smarty_list_item(&p, &len)) != NULL) {
        if (len != 1 || item[0] < '0' || item[0] > '9') {
            smarty_usage_error("keygen: --spaces is \"*\" or a comma list of "
                               "digits 0 to 9, not \"%s\"", list);
            return NULL;
        }

        mask |= 1u << (item[0] - '0');
    }

    a = json_array();
    digit[1] = '\0';

    for (i = 0; i < 10; i++) {
        if (mask & (1u << i)) {
            digit[0] = (char) ('0' + i);
            json_array_append_new(a, json_string(digit));
        }
    }

    return a;
}


/* "*", "none" or a comma list of rights (the method paths and
 * persons/enroll); a JSON "*" or unique [...] in the gateway's order */

static json_t *
smarty_methods_parse(const char *list)
{
    int          i, bit;
    char        *item;
    size_t       len;
    json_t      *a;
    unsigned     mask;
    const char  *p;

    if (strcmp(list, "*") == 0) {
        return json_string("*");
    }

    if (strcmp(list, "none") == 0) {
        return json_array();
    }

    mask = 0;
    p = list;

    while ((item = smarty_list_item(&p, &len)) != NULL) {
        bit = smarty_right_find(item, len);

        if (bit < 0) {
            smarty_usage_error("keygen: unknown method \"%.*s\" in "
                               "--methods; use \"*\", \"none\" or a comma "
                               "list of: persons/set, persons/recognize, "
                               "persons/enroll, persons/delete, "
                               "persons/truncate, objects/detect, "
                               "docs/detect, docs/recognize, "
                               "text/recognize, adult/detect",
                               (int) len, item);
            return NULL;
        }

        mask |= 1u << bit;
    }

    a = json_array();

    for (i = 0; i < SMARTY_RIGHT_COUNT; i++) {
        if (mask & (1u << i)) {
            json_array_append_new(a, json_string(smarty_right_name(i)));
        }
    }

    return a;
}


/* "sgw_" + base64url(32 random bytes), no padding */

static int
smarty_key_make(char *key, size_t size)
{
    int            n;
    size_t         i, plen;
    unsigned char  raw[SMARTY_KEY_BYTES];
    unsigned char  b64[4 * ((SMARTY_KEY_BYTES + 2) / 3) + 1];

    plen = sizeof(SMARTY_KEY_PREFIX) - 1;

    if (size < plen + sizeof(b64)) {
        return -1;
    }

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return -1;
    }

    n = EVP_EncodeBlock(b64, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));

    if (n <= 0) {
        return -1;
    }

    while (n > 0 && b64[n - 1] == '=') {
        n--;
    }

    memcpy(key, SMARTY_KEY_PREFIX, plen);

    for (i = 0; i < (size_t) n; i++) {
        key[plen + i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    }

    key[plen + n] = '\0';
    OPENSSL_cleanse(b64, sizeof(b64));

    return 0;
}
