/*
 * smarty-gateway: unit tests of the Redis Cluster core (TAP): CRC16, the
 * slot of a key and its hash tag, the redirection errors.
 */

#include <stdio.h>
#include <string.h>

#include "smarty_cluster.h"
#include "tap.h"


static unsigned
slot(const char *key)
{
    return smarty_cluster_slot(key, strlen(key));
}


static void
test_slots(void)
{
    is_int((int) smarty_cluster_crc16("123456789", 9), 0x31c3,
           "CRC16 of \"123456789\" is 0x31C3 (XModem)");
    is_int((int) slot("foo"), 12182, "foo: slot 12182");
    is_int((int) slot("bar"), 5061, "bar: slot 5061");
    is_int((int) slot("hello"), 866, "hello: slot 866");
    is_int((int) slot(""), 0, "the empty key: slot 0");
    is_int((int) slot("{user1000}.following"), (int) slot("user1000"),
           "the hash tag alone is hashed");
    is_int((int) slot("{user1000}.followers"),
           (int) slot("{user1000}.following"), "same tag, same slot");
    is_int((int) slot("foo{}{bar}"),
           (int) (smarty_cluster_crc16("foo{}{bar}", 10) & 16383),
           "an empty first tag: the whole key");
    is_int((int) slot("foo{{bar}}zap"), (int) slot("{bar"),
           "the tag ends at the first '}'");
    is_int((int) slot("foo{bar"), (int) (smarty_cluster_crc16("foo{bar", 7)
                                         & 16383),
           "no closing brace: the whole key");
    is_int((int) slot("smarty:{s1}:gen"), (int) slot("s1"),
           "a space's generation key: the slot of s1");
    is_int((int) slot("smarty:{s1}:q:s:rs"), (int) slot("smarty:{s1}:e:x"),
           "a quota key and an entry key of one space share the slot");
}


static void
test_redirects(void)
{
    smarty_redirect_t  r;
    const char        *e;

    e = "MOVED 3999 127.0.0.1:6381";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_MOVED,
           "MOVED");
    is_int((int) r.slot, 3999, "MOVED: the slot");
    is_str(r.host, "127.0.0.1", "MOVED: the host");
    is_int(r.port, 6381, "MOVED: the port");

    e = "ASK 0 [::1]:7000";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_ASK,
           "ASK with a bracketed IPv6 address");
    is_str(r.host, "::1", "ASK: the host without brackets");
    is_int(r.port, 7000, "ASK: the port");

    e = "ASK 16383 ::1:7001";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_ASK,
           "ASK with a bare IPv6 address");
    is_str(r.host, "::1", "the port after the last ':'");
    is_int((int) r.slot, 16383, "the last slot");

    e = "TRYAGAIN Multiple keys request during rehashing of slot";
    is_int(smarty_cluster_redirect(e, strlen(e), &r),
           SMARTY_REDIRECT_TRYAGAIN, "TRYAGAIN");

    e = "CLUSTERDOWN The cluster is down";
    is_int(smarty_cluster_redirect(e, strlen(e), &r),
           SMARTY_REDIRECT_CLUSTERDOWN, "CLUSTERDOWN");

    e = "MOVED 16384 127.0.0.1:6381";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_NONE,
           "a slot out of range is refused");

    e = "MOVED 12 127.0.0.1";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_NONE,
           "no port: refused");

    e = "MOVED 12 127.0.0.1:70000";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_NONE,
           "a port out of range: refused");

    e = "MOVED 12 :6379";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_NONE,
           "no host: refused");

    e = "MOVEDX 12 1.2.3.4:5";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_NONE,
           "another word: not a redirection");

    e = "NOSCRIPT No matching script";
    is_int(smarty_cluster_redirect(e, strlen(e), &r), SMARTY_REDIRECT_NONE,
           "NOSCRIPT: not a redirection");

    is_int(smarty_cluster_redirect(NULL, 0, &r), SMARTY_REDIRECT_NONE,
           "NULL: not a redirection");

    ok(smarty_cluster_numeric("10.1.2.3"), "an IPv4 address is numeric");
    ok(smarty_cluster_numeric("::1"), "an IPv6 address is numeric");
    ok(!smarty_cluster_numeric("redis-1.example"), "a name is not");
    ok(!smarty_cluster_numeric(""), "nor is nothing");
}


int
main(void)
{
    test_slots();
    test_redirects();

    return done_testing();
}
