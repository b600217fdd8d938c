/*
 * smarty-gateway: a tiny TAP producer for the C unit tests.
 *
 *   plan(n);                  "1..n" first (or done_testing() at the end)
 *   ok(cond, fmt, ...);       "ok N - desc" / "not ok N - desc"
 *   is_int(got, want, fmt, ...);
 *   is_str(got, want, fmt, ...);    NULL-safe
 *   is_mem(got, glen, want, wlen, fmt, ...);
 *   diag(fmt, ...);           "# ..." on stderr
 *   return done_testing();    prints the plan if none was given; the exit
 *                             status is 1 if any test failed or the count
 *                             does not match the plan
 *
 * Header-only: every test program includes it once.
 */

#ifndef SMARTY_TAP_H
#define SMARTY_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>


/* not every test uses every helper */
#define TAP_FN  static __attribute__((unused))


static int  tap_planned = -1;
static int  tap_run;
static int  tap_failed;


TAP_FN void
tap_vline(int pass, const char *fmt, va_list args)
{
    tap_run++;

    if (!pass) {
        tap_failed++;
    }

    printf("%sok %d - ", pass ? "" : "not ", tap_run);
    vprintf(fmt, args);
    printf("\n");
    fflush(stdout);
}


TAP_FN void
diag(const char *fmt, ...)
{
    va_list  args;

    fflush(stdout);
    fprintf(stderr, "# ");
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\n");
    fflush(stderr);
}


TAP_FN void
plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}


TAP_FN int
ok(int pass, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    tap_vline(pass, fmt, args);
    va_end(args);

    if (!pass) {
        diag("  Failed test %d", tap_run);
    }

    return pass;
}


TAP_FN int
is_int(long long got, long long want, const char *fmt, ...)
{
    int      pass;
    va_list  args;

    pass = (got == want);

    va_start(args, fmt);
    tap_vline(pass, fmt, args);
    va_end(args);

    if (!pass) {
        diag("  Failed test %d", tap_run);
        diag("         got: %lld", got);
        diag("    expected: %lld", want);
    }

    return pass;
}


/* a short printable rendering of n bytes for diagnostics */

TAP_FN void
tap_show(char *out, size_t size, const char *s, size_t n)
{
    size_t  i, o;

    if (s == NULL) {
        snprintf(out, size, "(null)");
        return;
    }

    o = 0;
    out[o++] = '"';

    for (i = 0; i < n && o + 8 < size; i++) {
        unsigned char  c = (unsigned char) s[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char) c;

        } else {
            o += snprintf(out + o, size - o, "\\x%02x", c);
        }
    }

    if (i < n) {
        o += snprintf(out + o, size - o, "...");
    }

    snprintf(out + o, size - o, "\"");
}


TAP_FN int
is_mem(const void *got, size_t glen, const void *want, size_t wlen,
    const char *fmt, ...)
{
    int      pass;
    char     buf[512];
    va_list  args;

    if (got == NULL || want == NULL) {
        pass = (got == want);

    } else {
        pass = (glen == wlen && memcmp(got, want, glen) == 0);
    }

    va_start(args, fmt);
    tap_vline(pass, fmt, args);
    va_end(args);

    if (!pass) {
        diag("  Failed test %d", tap_run);
        tap_show(buf, sizeof(buf), got, glen);
        diag("         got: %s (%zu bytes)", buf, glen);
        tap_show(buf, sizeof(buf), want, wlen);
        diag("    expected: %s (%zu bytes)", buf, wlen);
    }

    return pass;
}


TAP_FN int
is_str(const char *got, const char *want, const char *fmt, ...)
{
    int      pass;
    char     buf[512];
    va_list  args;

    if (got == NULL || want == NULL) {
        pass = (got == want);

    } else {
        pass = (strcmp(got, want) == 0);
    }

    va_start(args, fmt);
    tap_vline(pass, fmt, args);
    va_end(args);

    if (!pass) {
        diag("  Failed test %d", tap_run);
        tap_show(buf, sizeof(buf), got, got ? strlen(got) : 0);
        diag("         got: %s", buf);
        tap_show(buf, sizeof(buf), want, want ? strlen(want) : 0);
        diag("    expected: %s", buf);
    }

    return pass;
}


TAP_FN int
done_testing(void)
{
    if (tap_planned < 0) {
        printf("1..%d\n", tap_run);
        tap_planned = tap_run;

    } else if (tap_planned != tap_run) {
        diag("Looks like you planned %d tests but ran %d.", tap_planned,
             tap_run);
        return 1;
    }

    if (tap_failed) {
        diag("Looks like you failed %d test%s of %d.", tap_failed,
             tap_failed == 1 ? "" : "s", tap_run);
        return 1;
    }

    fflush(stdout);

    return 0;
}

#endif /* SMARTY_TAP_H */
