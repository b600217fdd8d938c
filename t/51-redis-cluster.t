# Redis Cluster (docs/redis.md, "Redis Cluster"): a real cluster of 3
# masters and 3 replicas made with redis-cli --cluster create, two gateway
# instances on it.  The configuration's checks; the walkthrough, the cache
# and its invalidation, the quotas, all across both instances, with the
# spaces spread over the masters; a slot migrated key by key under
# traffic; a master killed under traffic after a bump it took was lost:
# requests keep succeeding, the replica takes over, nothing stale is
# served, and quotas on the surviving masters stay exact.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use SmartyTopology;
use Time::HiRes qw(time sleep);

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

# --- the configuration, checked by nginx -t -------------------------------------

{
    my @bad = (
        [ "smarty_redis 127.0.0.1:1; smarty_redis_cluster 127.0.0.1:2;",
          qr/exclude each other/, 'one server and a cluster' ],
        [ "smarty_redis_cluster 127.0.0.1:2; smarty_redis_db 3;",
          qr/must be 0 with "smarty_redis_cluster"/, 'a database on a cluster' ],
        [ "smarty_redis_cluster unix:/tmp/x.sock;",
          qr/takes host:port addresses/, 'a unix socket as a seed' ],
        [ "smarty_redis_cluster 127.0.0.1:2; smarty_redis_cluster 127.0.0.1:3;",
          qr/is duplicate/, 'two cluster lines' ],
        [ "smarty_redis_cluster 127.0.0.1:2; smarty_redis_user app;",
          qr/"smarty_redis_user" needs "smarty_redis_password_file"/,
          'a user without a password' ],
        [ "smarty_redis_sentinel mymaster;",
          qr/invalid number of arguments/, 'sentinels without an address' ],
    );
    for my $b (@bad) {
        my ($rc, $out) = SmartyTest::nginx_test(http => $b->[0]);
        isnt($rc, 0, "nginx -t refuses $b->[2]");
        like($out, $b->[1], "  saying why") or diag $out;
    }
    my ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_cluster 127.0.0.1:7000 127.0.0.1:7001 localhost:7002;");
    is($rc, 0, 'nginx -t takes seed nodes, by address or name') or diag $out;
}

# --- the cluster, two gateways ------------------------------------------------------

my $cl = SmartyTest::start_redis_cluster();
my @ports = @{ $cl->{ports} };
my $seeds = join ' ', map { "127.0.0.1:$_" } @ports[0, 1];
my ($A, $B) = SmartyTopology::two_gateways("    smarty_redis_cluster $seeds;\n");
my $key = $A->{keys}{demo};
my $p0 = $ports[0];

sub owner { return SmartyTest::cluster_owner($p0, "smarty:{s$_[0]}:gen") }

my %masters;
$masters{ owner($_) }++ for 0 .. 9;
ok(keys %masters >= 2, 'the ten spaces live on ' . (keys %masters)
   . ' of the 3 masters');

SmartyTopology::walkthrough($A, $B);
SmartyTopology::invalidation($A, $B, '5');

# the entries are where their space's slot is, every key of a script in
# that slot
{
    my $owner = owner(5);
    my @keys = split /\n/, SmartyTest::redis_cli($owner, '--scan', '--pattern',
                                                 'smarty:{s5}:*');
    ok(scalar(grep { /^smarty:\{s5\}:e2:[0-9a-f]{16}:[0-9a-f]{64}$/ } @keys),
       "space 5's entries are on its slot's master ($owner)");
    like(SmartyTest::redis_cli($owner, 'GET', $keys[0] =~ /:e2:/ ? $keys[0]
                               : (grep { /:e2:/ } @keys)[0]),
         qr/^\d+ [0-9a-f]{16} v2 \d/,
         'an entry holds "<generation> <node> <answer>" (format 2)');
}

# --- quotas, exact across both instances ------------------------------------------

# the space for the quotas: on a master that will survive
my ($victim_space) = 3;
my $victim = owner($victim_space);
my ($qspace) = grep { owner($_) != $victim } 0 .. 9;
ok(defined $qspace, "space $qspace is on another master than space "
   . "$victim_space");
{
    my $n = SmartyTopology::quota_exact($A, $B, $qspace, 4);
    is($n->{200}, 4, "metered: 4 of 6 spent through both instances");
}

# --- a slot migrated under traffic ------------------------------------------------

{
    # entries to move
    for my $i (1 .. 15) {
        SmartyTopology::rec($A->{url}, $key, 1,
                            [ [ 'f', SmartyTest::alone_photo("mv$i") ] ]);
    }
    my ($src, undef, $slot) = SmartyTest::cluster_owner($p0, 'smarty:{s1}:gen');
    my @masters = map { $_->{port} } @{ $cl->{masters} };
    my ($dst) = grep { $_ != $src } @masters;

    my $t = SmartyTopology::start_traffic($A, $B, 1, 1, 2, 1, 4);
    SmartyTopology::traffic_goes_on($t, 5);

    # paced, so that the traffic meets the slot half moved
    my $moved = SmartyTopology::move_slot(\@masters, $slot, $src, $dst, 0.03);
    ok($moved >= 15, "slot $slot of space 1 moved key by key ($moved keys) "
       . "from $src to $dst");
    SmartyTopology::traffic_goes_on($t, 5);
    my $lines = SmartyTopology::stop_traffic($t);
    my @bad = grep { !/^200 / } @$lines;
    is(scalar @bad, 0, 'no error during the migration: '
       . SmartyTopology::summary($lines)) or diag join "\n", @bad[0 .. 4];
    ok(scalar(grep { /^200 1 / } @$lines) >= 5, 'space 1 was asked meanwhile');

    is(owner(1), $dst, 'space 1 is on its new master');
    my $photo = SmartyTest::alone_photo('after-move');
    like(SmartyTopology::cs(SmartyTopology::rec($A->{url}, $key, 1,
                                                [ [ 'f', $photo ] ])),
         qr/fwd=miss; stored/, 'after the move: a miss, stored on the new '
         . 'master');
    SmartyTopology::is_hit(
        SmartyTopology::cs(SmartyTopology::rec($B->{url}, $key, 1, [ [ 'f', $photo ] ])),
        '... and a hit through the other instance');
}

# --- a master killed under traffic, after a bump it did not pass on --------------

{
    my $group = SmartyTest::group_photo();
    my $s = $victim_space;
    my $r = SmartyTopology::rec($A->{url}, $key, $s, [ [ 'f', $group ] ]);
    my $before = SmartyTopology::tags_of($r);
    SmartyTopology::is_hit(
        SmartyTopology::cs(SmartyTopology::rec($B->{url}, $key, $s, [ [ 'f', $group ] ])),
        "space $s: cached on master $victim");
    ok(SmartyTest::wait_until(sub {
           SmartyTest::redis_cli($victim, 'WAIT', 1, 1000) >= 1 }, 10),
       'the replica has the entry');

    my ($vproc) = grep { $_->{port} == $victim } @{ $cl->{masters} };
    my $gen0 = SmartyTest::redis_cli($victim, 'GET', "smarty:{s$s}:gen") || 0;
    my $gen1 = SmartyTopology::lost_bump($A, $victim, $s, 4,
                                         SmartyTest::alone_photo('rachel'));
    is($gen1, $gen0 + 1, "the set's bump is on the master only (generation "
       . "$gen1, the replica keeps $gen0)");

    my $t = SmartyTopology::start_traffic($A, $B, 0 .. 9);
    SmartyTopology::traffic_goes_on($t, 5);
    kill 'KILL', $vproc->{pid};
    waitpid($vproc->{pid}, 0);
    $vproc->{pid} = 0;

    # the quotas on the other masters are decided meanwhile, exactly
    my $n = SmartyTopology::quota_exact($A, $B, $qspace, 5);
    is($n->{200}, 2, 'metered, during the failover: the last 2 of 6 '
       . 'admitted, exactly');
    is($n->{429}, 3, '... and 3 refused');

    my $promoted;
    ok(SmartyTest::wait_until(sub {
           $promoted = owner($s);
           defined $promoted && $promoted != $victim;
       }, 30), "a replica took over the slot of space $s ($promoted)");
    ok(SmartyTopology::traffic_goes_on($t, 20),
       'the traffic goes on after the failover');
    my $lines = SmartyTopology::stop_traffic($t);
    my @bad = grep { !/^200 / } @$lines;
    is(scalar @bad, 0, 'no request failed while the master died and its '
       . 'replica took over: ' . SmartyTopology::summary($lines))
        or diag join "\n", @bad[0 .. 4];

    is(SmartyTest::redis_cli($promoted, 'GET', "smarty:{s$s}:gen") || 0,
       $gen0, 'the new master never saw the bump');
    SmartyTopology::never_stale($A, $B, $key, $s, $group, $before);
}

for my $g ($A, $B) {
    unlike(SmartyTest::error_log($g->{ngx}), qr/\[alert\]|\[emerg\]|segfault|exited on signal/,
           'no alert, no crash in the error log');
}

done_testing;
