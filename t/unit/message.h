/*
 * smarty-gateway tests: is an error message a sentence a client can be
 * shown, i.e. valid UTF-8 without control characters?  Shared by the unit
 * tests and the fuzz targets of the pure cores.
 */

#ifndef SMARTY_TEST_MESSAGE_H
#define SMARTY_TEST_MESSAGE_H

#include <stddef.h>


static int
smarty_test_utf8_text(const char *s)
{
    size_t                n, i;
    const unsigned char  *p;

    p = (const unsigned char *) s;

    while (*p) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }

        if (*p < 0x80) {
            p++;
            continue;
        }

        if (*p >= 0xc2 && *p <= 0xdf) {
            n = 2;

        } else if (*p >= 0xe0 && *p <= 0xef) {
            n = 3;
            if ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] > 0x9f)) {
                return 0;
            }

        } else if (*p >= 0xf0 && *p <= 0xf4) {
            n = 4;
            if ((*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] > 0x8f)) {
                return 0;
            }

        } else {
            return 0;
        }

        for (i = 1; i < n; i++) {
            if (p[i] < 0x80 || p[i] > 0xbf) {
                return 0;
            }
        }

        p += n;
    }

    return 1;
}

#endif /* SMARTY_TEST_MESSAGE_H */
