/*
 * smarty-emulator: flags, start, signals.
 */

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"


#define EMU_TOKEN_FILE_MAX  65536


static void
emu_usage(FILE *f)
{
    fprintf(f,
"usage: smarty-emulator [flags]\n"
"\n"
"An emulator of the Smarty (Mail.ru / VK Cloud Vision) API: POST\n"
"/api/v1/<group>/<method>, POST /auth/oauth/v1/token and /_emulator/\n"
"(see emulator/README.md).\n"
"\n"
"  --listen ADDR            address to listen on (127.0.0.1)\n"
"  --port N                 port, 0 for any (8090)\n"
"  --token TOKEN            a service token the API accepts (none)\n"
"  --token-file FILE        a file holding a service token, trailing white\n"
"                           space stripped (none)\n"
"  --client-id ID           the OAuth client_id (smarty-emulator)\n"
"  --client-secret SECRET   the OAuth client_secret "
"(smarty-emulator-secret)\n"
"  --client-id-file FILE    --client-id from a file\n"
"  --client-secret-file FILE\n"
"                           --client-secret from a file (off the command\n"
"                           line, where ps shows it)\n"
"  --token-lifetime S       access token lifetime, seconds (3600)\n"
"  --refresh-lifetime S     refresh token lifetime, seconds (2592000)\n"
"  --max-tokens N           active access tokens, and refresh tokens, at\n"
"                           most (25)\n"
"  --max-images N           images per request at most (100)\n"
"  --max-image-bytes N      bytes per image at most (4194304)\n"
"  --max-body-bytes N       request body bytes at most (0: max-images *\n"
"                           max-image-bytes + 1 MiB)\n"
"  --latency-ms N           fixed latency of every API answer (0)\n"
"  --per-image-ms N         more latency per image (0)\n"
"  --fail-5xx P             share of API answers that are 500/503 (0)\n"
"  --temp-error P           share of images answered status 2 (0)\n"
"  --hang P                 share of API requests never answered (0)\n"
"  --hang-max-s S           a hang ends (connection closed) after S\n"
"                           seconds, or when the client leaves (300)\n"
"  --reset P                share of API requests whose connection is\n"
"                           reset without an answer (0)\n"
"  --token-fail P           share of token requests answered 503 (0)\n"
"  --token-hang P           share of token requests never answered (0)\n"
"  --token-latency-ms N     latency of every token request (0)\n"
"  --seed N                 seed of the fault injection RNG (1)\n"
"  --quiet                  log nothing but the start line and errors\n"
"  --help                   this text\n"
"\n"
"Shares P are from 0 to 1.  Of the faults, only the --token-* ones apply\n"
"to the token endpoint.  Tokens are never logged.\n");
}


/* one line of a file: a token, a client id or secret ("what") */
static char *
emu_read_token(const char *path, const char *what)
{
    FILE    *f;
    char    *buf;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "smarty-emulator: cannot open the %s file "
                "\"%s\": %s\n", what, path, strerror(errno));
        return NULL;
    }

    buf = malloc(EMU_TOKEN_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }

    n = fread(buf, 1, EMU_TOKEN_FILE_MAX + 1, f);
    fclose(f);

    if (n > EMU_TOKEN_FILE_MAX) {
        fprintf(stderr, "smarty-emulator: the %s file \"%s\" is too "
                "large\n", what, path);
        free(buf);
        return NULL;
    }

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                 || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    {
        n--;
    }

    buf[n] = '\0';

    if (n == 0 || memchr(buf, '\0', n) != NULL) {
        fprintf(stderr, "smarty-emulator: the %s file \"%s\" holds "
                "nothing usable\n", what, path);
        free(buf);
        return NULL;
    }

    return buf;
}


enum {
    EMU_O_LISTEN = 256,
    EMU_O_PORT,
    EMU_O_TOKEN,
    EMU_O_TOKEN_FILE,
    EMU_O_CLIENT_ID,
    EMU_O_CLIENT_SECRET,
    EMU_O_CLIENT_ID_FILE,
    EMU_O_CLIENT_SECRET_FILE,
    EMU_O_TOKEN_LIFETIME,
    EMU_O_REFRESH_LIFETIME,
    EMU_O_MAX_TOKENS,
    EMU_O_MAX_IMAGES,
    EMU_O_MAX_IMAGE_BYTES,
    EMU_O_MAX_BODY_BYTES,
    EMU_O_LATENCY_MS,
    EMU_O_PER_IMAGE_MS,
    EMU_O_FAIL_5XX,
    EMU_O_TEMP_ERROR,
    EMU_O_HANG,
    EMU_O_HANG_MAX_S,
    EMU_O_RESET,
    EMU_O_TOKEN_FAIL,
    EMU_O_TOKEN_HANG,
    EMU_O_TOKEN_LATENCY_MS,
    EMU_O_SEED,
    EMU_O_QUIET,
    EMU_O_HELP
};


static const struct option  emu_options[] = {
    { "listen",           required_argument, NULL, EMU_O_LISTEN },
    { "port",             required_argument, NULL, EMU_O_PORT },
    { "token",            required_argument, NULL, EMU_O_TOKEN },
    { "token-file",       required_argument, NULL, EMU_O_TOKEN_FILE },
    { "client-id",        required_argument, NULL, EMU_O_CLIENT_ID },
    { "client-secret",    required_argument, NULL, EMU_O_CLIENT_SECRET },
    { "client-id-file",   required_argument, NULL, EMU_O_CLIENT_ID_FILE },
    { "client-secret-file", required_argument, NULL,
      EMU_O_CLIENT_SECRET_FILE },
    { "token-lifetime",   required_argument, NULL, EMU_O_TOKEN_LIFETIME },
    { "refresh-lifetime", required_argument, NULL, EMU_O_REFRESH_LIFETIME },
    { "max-tokens",       required_argument, NULL, EMU_O_MAX_TOKENS },
    { "max-images",       required_argument, NULL, EMU_O_MAX_IMAGES },
    { "max-image-bytes",  required_argument, NULL, EMU_O_MAX_IMAGE_BYTES },
    { "max-body-bytes",   required_argument, NULL, EMU_O_MAX_BODY_BYTES },
    { "latency-ms",       required_argument, NULL, EMU_O_LATENCY_MS },
    { "per-image-ms",     required_argument, NULL, EMU_O_PER_IMAGE_MS },
    { "fail-5xx",         required_argument, NULL, EMU_O_FAIL_5XX },
    { "temp-error",       required_argument, NULL, EMU_O_TEMP_ERROR },
    { "hang",             required_argument, NULL, EMU_O_HANG },
    { "hang-max-s",       required_argument, NULL, EMU_O_HANG_MAX_S },
    { "reset",            required_argument, NULL, EMU_O_RESET },
    { "token-fail",       required_argument, NULL, EMU_O_TOKEN_FAIL },
    { "token-hang",       required_argument, NULL, EMU_O_TOKEN_HANG },
    { "token-latency-ms", required_argument, NULL, EMU_O_TOKEN_LATENCY_MS },
    { "seed",             required_argument, NULL, EMU_O_SEED },
    { "quiet",            no_argument,       NULL, EMU_O_QUIET },
    { "help",             no_argument,       NULL, EMU_O_HELP },
    { NULL, 0, NULL, 0 }
};


static int
emu_bad(const char *flag, const char *what)
{
    fprintf(stderr, "smarty-emulator: --%s must be %s\n", flag, what);
    return -1;
}


static int
emu_flags(int argc, char **argv)
{
    int                  opt, idx;
    long                 v;
    char                *end, *line;
    const char          *name;
    unsigned long long   seed;

    emu_conf.listen = "127.0.0.1";
    emu_conf.port = 8090;
    emu_conf.client_id = "smarty-emulator";
    emu_conf.client_secret = "smarty-emulator-secret";
    emu_conf.token_lifetime = 3600;
    emu_conf.refresh_lifetime = 2592000;
    emu_conf.max_tokens = 25;
    emu_conf.max_images = 100;
    emu_conf.max_image_bytes = 4194304;
    emu_conf.max_body_bytes = 0;
    emu_conf.hang_max_s = 300;
    emu_conf.seed = 1;

    for ( ;; ) {
        idx = -1;
        opt = getopt_long(argc, argv, "h", emu_options, &idx);
        if (opt == -1) {
            break;
        }

        name = idx >= 0 ? emu_options[idx].name : "";

        switch (opt) {

        case EMU_O_LISTEN:
            emu_conf.listen = optarg;
            break;

        case EMU_O_PORT:
            if (emu_parse_long(optarg, 0, 65535, &emu_conf.port) != 0) {
                return emu_bad(name, "a port number");
            }
            break;

        case EMU_O_TOKEN:
            if (optarg[0] == '\0') {
                return emu_bad(name, "non-empty");
            }
            free(emu_conf.tokens[0]);
            emu_conf.tokens[0] = strdup(optarg);
            break;

        case EMU_O_TOKEN_FILE:
            free(emu_conf.tokens[1]);
            emu_conf.tokens[1] = emu_read_token(optarg, "token");
            if (emu_conf.tokens[1] == NULL) {
                return -1;
            }
            break;

        case EMU_O_CLIENT_ID:
            emu_conf.client_id = optarg;
            break;

        case EMU_O_CLIENT_SECRET:
            emu_conf.client_secret = optarg;
            break;

        case EMU_O_CLIENT_ID_FILE:
        case EMU_O_CLIENT_SECRET_FILE:
            line = emu_read_token(optarg, opt == EMU_O_CLIENT_ID_FILE
                                          ? "client id" : "client secret");
            if (line == NULL) {
                return -1;
            }

            /* kept for the life of the process */
            if (opt == EMU_O_CLIENT_ID_FILE) {
                emu_conf.client_id = line;

            } else {
                emu_conf.client_secret = line;
            }
            break;

        case EMU_O_TOKEN_LIFETIME:
        case EMU_O_REFRESH_LIFETIME:
        case EMU_O_HANG_MAX_S:
            if (emu_parse_long(optarg, opt == EMU_O_HANG_MAX_S ? 0 : 1,
                               100L * 365 * 86400, &v) != 0)
            {
                return emu_bad(name, "a number of seconds");
            }

            if (opt == EMU_O_TOKEN_LIFETIME) {
                emu_conf.token_lifetime = v;

            } else if (opt == EMU_O_REFRESH_LIFETIME) {
                emu_conf.refresh_lifetime = v;

            } else {
                emu_conf.hang_max_s = v;
            }
            break;

        case EMU_O_MAX_TOKENS:
            if (emu_parse_long(optarg, 1, 1000000, &emu_conf.max_tokens)) {
                return emu_bad(name, "a positive integer");
            }
            break;

        case EMU_O_MAX_IMAGES:
            if (emu_parse_long(optarg, 1, 100000, &emu_conf.max_images)) {
                return emu_bad(name, "a positive integer");
            }
            break;

        case EMU_O_MAX_IMAGE_BYTES:
            if (emu_parse_long(optarg, 1, 1L << 32,
                               &emu_conf.max_image_bytes))
            {
                return emu_bad(name, "a positive integer");
            }
            break;

        case EMU_O_MAX_BODY_BYTES:
            if (emu_parse_long(optarg, 0, 1L << 40,
                               &emu_conf.max_body_bytes))
            {
                return emu_bad(name, "a non-negative integer");
            }
            break;

        case EMU_O_LATENCY_MS:
            if (emu_parse_long(optarg, 0, 3600000,
                               &emu_conf.knobs.latency_ms))
            {
                return emu_bad(name, "milliseconds, 0 to 3600000");
            }
            break;

        case EMU_O_PER_IMAGE_MS:
            if (emu_parse_long(optarg, 0, 3600000,
                               &emu_conf.knobs.per_image_ms))
            {
                return emu_bad(name, "milliseconds, 0 to 3600000");
            }
            break;

        case EMU_O_FAIL_5XX:
            if (emu_parse_prob(optarg, &emu_conf.knobs.fail_5xx)) {
                return emu_bad(name, "a share from 0 to 1");
            }
            break;

        case EMU_O_TEMP_ERROR:
            if (emu_parse_prob(optarg, &emu_conf.knobs.temp_error)) {
                return emu_bad(name, "a share from 0 to 1");
            }
            break;

        case EMU_O_HANG:
            if (emu_parse_prob(optarg, &emu_conf.knobs.hang)) {
                return emu_bad(name, "a share from 0 to 1");
            }
            break;

        case EMU_O_RESET:
            if (emu_parse_prob(optarg, &emu_conf.knobs.reset)) {
                return emu_bad(name, "a share from 0 to 1");
            }
            break;

        case EMU_O_TOKEN_FAIL:
            if (emu_parse_prob(optarg, &emu_conf.knobs.token_fail)) {
                return emu_bad(name, "a share from 0 to 1");
            }
            break;

        case EMU_O_TOKEN_HANG:
            if (emu_parse_prob(optarg, &emu_conf.knobs.token_hang)) {
                return emu_bad(name, "a share from 0 to 1");
            }
            break;

        case EMU_O_TOKEN_LATENCY_MS:
            if (emu_parse_long(optarg, 0, 3600000,
                               &emu_conf.knobs.token_latency_ms))
            {
                return emu_bad(name, "milliseconds, 0 to 3600000");
            }
            break;

        case EMU_O_SEED:
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || optarg[0] == '\0' || *end != '\0') {
                return emu_bad(name, "a non-negative integer");
            }
            emu_conf.seed = seed;
            break;

        case EMU_O_QUIET:
            emu_conf.quiet = 1;
            break;

        case 'h':
        case EMU_O_HELP:
            emu_usage(stdout);
            exit(0);

        default:
            emu_usage(stderr);
            return -1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "smarty-emulator: unexpected argument \"%s\"\n",
                argv[optind]);
        return -1;
    }

    if (emu_conf.max_body_bytes == 0) {
        emu_conf.max_body_bytes = emu_conf.max_images
                                  * emu_conf.max_image_bytes + 1024 * 1024;
    }

    if (emu_conf.tokens[0] == NULL && emu_conf.tokens[1] == NULL) {
        fprintf(stderr, "smarty-emulator: no --token or --token-file: the "
                "API accepts only access tokens of /auth/oauth/v1/token\n");
    }

    return 0;
}


int
main(int argc, char **argv)
{
    struct MHD_Daemon  *d;
    sigset_t            set;
    int                 sig, i;

    if (emu_flags(argc, argv) != 0) {
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);

    /* the server's threads inherit the mask: only sigwait() sees these */
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    emu_util_init();
    emu_persons_init();

    d = emu_server_start();
    if (d == NULL) {
        return 1;
    }

    sig = 0;
    while (sigwait(&set, &sig) != 0) { /* void */ }

    emu_log("signal %d: stopping", sig);

    emu_stopping = 1;
    MHD_stop_daemon(d);

    emu_persons_reset();
    (void) emu_tokens_revoke();

    for (i = 0; i < EMU_SERVICE_TOKENS; i++) {
        free(emu_conf.tokens[i]);
    }

    return 0;
}
