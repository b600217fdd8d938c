# Redis Sentinel (docs/redis.md, "Sentinel"): a master, its replica and 3
# sentinels, two gateway instances that know only the sentinels.  The
# walkthrough, the cache and its invalidation, the quotas across both
# instances; then the master is killed under traffic after a bump it did
# not pass on: requests keep succeeding, the gateways follow the
# sentinels to the promoted replica without a reload, and nothing stale
# is served.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use SmartyTopology;

plan skip_all => 'redis-sentinel is needed'
    unless grep { -x "$_/redis-sentinel" } split /:/, $ENV{PATH};

{
    my ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_sentinel mymaster 127.0.0.1:26379 localhost:26380;");
    is($rc, 0, 'nginx -t takes a master name and sentinels') or diag $out;
    ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_sentinel 'my master' 127.0.0.1:26379;");
    isnt($rc, 0, 'nginx -t refuses a master name with a space');
    like($out, qr/invalid master name/, '  saying why');
    ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_sentinel m 127.0.0.1:26379; smarty_redis 127.0.0.1:1;");
    like($out, qr/exclude each other/, 'sentinels and one server: refused');
}

my $st = SmartyTest::start_redis_sentinels();
my $sentinels = join ' ', map { "127.0.0.1:$_->{port}" } @{ $st->{sentinels} };
my ($A, $B) = SmartyTopology::two_gateways(
    "    smarty_redis_sentinel mymaster $sentinels;\n");
my $key = $A->{keys}{demo};
my $mport = $st->{master}{port};
my $rport = $st->{replica}{port};

SmartyTopology::walkthrough($A, $B);
SmartyTopology::invalidation($A, $B, '5');
{
    my $n = SmartyTopology::quota_exact($A, $B, '7', 8);
    is($n->{200}, 6, 'metered: exactly 6 of 8 admitted through both '
       . 'instances');
    is($n->{429}, 2, '... 2 refused');
}
like(SmartyTest::error_log($A->{ngx}),
     qr/the master "mymaster" is 127\.0\.0\.1:$mport/,
     'the gateway found the master through the sentinels');

# each gateway's worker listens to a sentinel for +switch-master
ok(SmartyTopology::switch_master_subscribed($st, 2),
   'both gateways subscribe to +switch-master');

# --- the master killed under traffic, after a bump it did not pass on ----------

my $group = SmartyTest::group_photo();
my $s = 3;
my $r = SmartyTopology::rec($A->{url}, $key, $s, [ [ 'f', $group ] ]);
my $before = SmartyTopology::tags_of($r);
SmartyTopology::is_hit(
    SmartyTopology::cs(SmartyTopology::rec($B->{url}, $key, $s, [ [ 'f', $group ] ])),
    "space $s: cached");
ok(SmartyTest::wait_until(sub {
       SmartyTest::redis_cli($mport, 'WAIT', 1, 1000) >= 1 }, 10),
   'the replica has the entry');
my $gen0 = SmartyTest::redis_cli($mport, 'GET', "smarty:{s$s}:gen") || 0;
my $gen1 = SmartyTopology::lost_bump($A, $mport, $s, 4,
                                     SmartyTest::alone_photo('rachel'));
is($gen1, $gen0 + 1, "the set's bump is on the master only");

my $lines = SmartyTopology::sentinel_failover($st, $A, $B, 5, 20);
ok(scalar(grep { /stored|hit/ } @$lines[-5 .. -1]),
   'the cache is in use again at the end');

is(SmartyTest::redis_cli($rport, 'GET', "smarty:{s$s}:gen") || 0, $gen0,
   'the new master never saw the bump');
SmartyTopology::never_stale($A, $B, $key, $s, $group, $before);

# writes go to the new master: the cache stores there
like(SmartyTopology::cs(SmartyTopology::rec($A->{url}, $key, 8,
         [ [ 'f', SmartyTest::alone_photo('after') ] ])),
     qr/stored/, 'a miss is stored on the new master');
ok(SmartyTest::redis_cli($rport, '--scan', '--pattern', 'smarty:{s8}:e2:*'),
   '... which holds the entry');

for my $g ($A, $B) {
    unlike(SmartyTest::error_log($g->{ngx}),
           qr/\[alert\]|\[emerg\]|segfault|exited on signal/,
           'no alert, no crash in the error log');
}

done_testing;
