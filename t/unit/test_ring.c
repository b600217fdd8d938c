/*
 * smarty-gateway: unit tests of the record ring (TAP): order, records
 * that wrap round the block's end, full rings, the mark.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_ring.h"
#include "tap.h"


static int
count(smarty_ring_t *r)
{
    int                   n;
    size_t                len;
    uint64_t              pos;
    const unsigned char  *p;

    n = 0;
    pos = r->head;

    while (smarty_ring_next(r, &pos, &p, &len) == 0) {
        n++;
    }

    return n;
}


static void
test_basic(void)
{
    char                  mem[512];
    size_t                len;
    uint64_t              pos;
    smarty_ring_t        *r;
    const unsigned char  *p;

    ok(smarty_ring_init(mem, 32) == NULL, "a block too small is refused");

    r = smarty_ring_init(mem, sizeof(mem));
    ok(r != NULL, "a ring");
    is_int(r->size % 8, 0, "its size is a multiple of 8");

    pos = r->head;
    is_int(smarty_ring_next(r, &pos, &p, &len), -1, "empty");

    is_int(smarty_ring_push(r, "one", 3), 0, "push one");
    is_int(smarty_ring_push(r, "", 0), 0, "push an empty record");
    is_int(smarty_ring_push(r, "three!!!!", 9), 0, "push three");
    is_int((int) r->count, 3, "three records");

    pos = r->head;
    is_int(smarty_ring_next(r, &pos, &p, &len), 0, "first");
    is_mem(p, len, "one", 3, "first is one");
    is_int(smarty_ring_next(r, &pos, &p, &len), 0, "second");
    is_int((int) len, 0, "second is empty");
    is_int(smarty_ring_next(r, &pos, &p, &len), 0, "third");
    is_mem(p, len, "three!!!!", 9, "third is three");
    is_int(smarty_ring_next(r, &pos, &p, &len), -1, "no fourth");

    smarty_ring_pop(r, 1);
    pos = r->head;
    is_int(smarty_ring_next(r, &pos, &p, &len), 0, "after a pop");
    is_int((int) len, 0, "the empty record is first");

    smarty_ring_pop(r, 5);
    is_int((int) r->count, 0, "popping more than there are empties it");
    is_int((int) smarty_ring_used(r), 0, "nothing used");
}


static void
test_full_and_wrap(void)
{
    int                   i, pushed, popped, ok_order;
    char                  mem[sizeof(smarty_ring_t) + 256], rec[64];
    size_t                len;
    uint64_t              pos;
    smarty_ring_t        *r;
    const unsigned char  *p;

    r = smarty_ring_init(mem, sizeof(mem));
    is_int((int) r->size, 256, "a ring of 256 bytes");
    is_int((int) smarty_ring_max(r), 120, "its largest record");
    is_int(smarty_ring_push(r, mem, 121), -1, "a record over it is refused");

    /* 40 bytes a record: 6 fit */
    memset(rec, 'x', sizeof(rec));

    for (i = 0; i < 10 && smarty_ring_push(r, rec, 30) == 0; i++) {
        /* void */
    }

    is_int(i, 6, "six records of 30 bytes fit in 256");
    is_int((int) r->count, 6, "six in the ring");

    /* records that wrap, kept in order */

    pushed = 6;
    popped = 0;
    ok_order = 1;

    for (i = 0; i < 200; i++) {
        smarty_ring_pop(r, 1);
        popped++;

        len = (size_t) (i % 50) + 1;
        snprintf(rec, sizeof(rec), "%05d", pushed);
        memset(rec + 5, 'a' + i % 26, sizeof(rec) - 5);

        while (smarty_ring_push(r, rec, len < 5 ? 5 : len) != 0) {
            smarty_ring_pop(r, 1);
            popped++;
        }

        pushed++;

        pos = r->head;

        if (smarty_ring_next(r, &pos, &p, &len) == 0) {
            snprintf(rec, sizeof(rec), "%05d", popped);
            if (popped >= 6 && memcmp(p, rec, 5) != 0) {
                ok_order = 0;
            }
        }
    }

    ok(ok_order, "the head is always the oldest record left");
    is_int(count(r), (int) r->count, "iteration sees every record");
    ok(smarty_ring_used(r) <= r->size, "never more used than the size");
}


static void
test_mark(void)
{
    char            mem[1024];
    smarty_ring_t  *r;

    r = smarty_ring_init(mem, sizeof(mem));

    smarty_ring_push(r, "a", 1);
    smarty_ring_push(r, "b", 1);
    smarty_ring_push(r, "c", 1);

    is_int((int) smarty_ring_mark(r, 2), 2, "mark two");
    is_int((int) smarty_ring_mark(r, 2), 0, "again: none new");
    is_int((int) smarty_ring_mark(r, 1), 0, "fewer: none new");

    smarty_ring_push(r, "d", 1);
    is_int((int) smarty_ring_mark(r, (uint64_t) -1), 2, "all: two new");
    is_int((int) r->marked, 4, "four marked");

    smarty_ring_pop(r, 3);
    is_int((int) r->marked, 1, "a pop takes marked records");
    smarty_ring_push(r, "e", 1);
    is_int((int) smarty_ring_mark(r, (uint64_t) -1), 1, "the new one");
    smarty_ring_pop(r, 2);
    is_int((int) r->marked, 0, "empty: none marked");
}


int
main(void)
{
    test_basic();
    test_full_and_wrap();
    test_mark();

    return done_testing();
}
