/*
 * smarty-emulator: the configuration and the stop flag, the seeded RNG of
 * fault injection, the run-time knobs, hashing, JSON and time helpers.
 */

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "emu.h"


/* filled in by main.c from the flags; emu_stopping set once, on a signal */
emu_conf_t             emu_conf;
volatile sig_atomic_t  emu_stopping;


static pthread_mutex_t  emu_util_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t         emu_rng_state;
static emu_knobs_t      emu_knobs;


/* seeds the RNG with --seed and installs the knobs given as flags */
void
emu_util_init(void)
{
    pthread_mutex_lock(&emu_util_lock);
    emu_rng_state = emu_conf.seed;
    emu_knobs = emu_conf.knobs;
    pthread_mutex_unlock(&emu_util_lock);
}


/* splitmix64: small, seeded, good enough to pick faults */
static uint64_t
emu_rng_next(void)
{
    uint64_t  z;

    pthread_mutex_lock(&emu_util_lock);
    emu_rng_state += 0x9E3779B97F4A7C15ULL;
    z = emu_rng_state;
    pthread_mutex_unlock(&emu_util_lock);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}


/* true with probability p; p <= 0 never, p >= 1 always */
int
emu_chance(double p)
{
    double  x;

    if (p <= 0) {
        return 0;
    }

    if (p >= 1) {
        return 1;
    }

    x = (double) (emu_rng_next() >> 11) / (double) (1ULL << 53);

    return x < p;
}


void
emu_knobs_get(emu_knobs_t *k)
{
    pthread_mutex_lock(&emu_util_lock);
    *k = emu_knobs;
    pthread_mutex_unlock(&emu_util_lock);
}


void
emu_knobs_set(const emu_knobs_t *k)
{
    pthread_mutex_lock(&emu_util_lock);
    emu_knobs = *k;
    pthread_mutex_unlock(&emu_util_lock);
}


void
emu_sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256(data, len, out);
}


void
emu_hex(const unsigned char *p, size_t n, char *out)
{
    static const char  hex[] = "0123456789abcdef";
    size_t             i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 0x0f];
    }

    out[2 * n] = '\0';
}


int64_t
emu_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


double
emu_round4(double v)
{
    return round(v * 10000.0) / 10000.0;
}


/* a value in [lo, hi] from two bytes, with four decimals */
double
emu_frac(const unsigned char *p, double lo, double hi)
{
    unsigned  u;

    u = ((unsigned) p[0] << 8) | p[1];

    return emu_round4(lo + (hi - lo) * ((double) u / 65535.0));
}


char *
emu_json_dumps(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)
                         | JSON_ENCODE_ANY);
}


int
emu_parse_prob(const char *s, double *p)
{
    char    *end;
    double   v;

    if (s == NULL || *s == '\0') {
        return -1;
    }

    errno = 0;
    v = strtod(s, &end);

    if (errno || *end != '\0' || !isfinite(v) || v < 0 || v > 1) {
        return -1;
    }

    *p = v;
    return 0;
}


int
emu_parse_long(const char *s, long min, long max, long *v)
{
    char  *end;
    long   n;

    if (s == NULL || *s == '\0') {
        return -1;
    }

    errno = 0;
    n = strtol(s, &end, 10);

    if (errno || *end != '\0' || n < min || n > max) {
        return -1;
    }

    *v = n;
    return 0;
}


void
emu_err_set(emu_err_t *err, unsigned status, const char *code,
    const char *fmt, ...)
{
    va_list  ap;

    err->status = status;
    err->code = code;

    va_start(ap, fmt);
    vsnprintf(err->error, sizeof(err->error), fmt, ap);
    va_end(ap);
}


void
emu_log(const char *fmt, ...)
{
    va_list  ap;
    char     line[512];

    if (emu_conf.quiet) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    fprintf(stderr, "smarty-emulator: %s\n", line);
}
