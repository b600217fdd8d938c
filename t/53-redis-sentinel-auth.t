# Redis Sentinel with passwords (docs/redis.md, "Sentinel"): the master and
# its replica want one password (requirepass), the sentinels another
# (requirepass in sentinel.conf).  The gateway authenticates to each with
# its own file, on the sentinels' query connections and on the connection
# that listens for +switch-master; it follows a failover; a wrong sentinel
# password is logged (never the password) and finds no master.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use SmartyTopology;

plan skip_all => 'redis-sentinel is needed'
    unless grep { -x "$_/redis-sentinel" } split /:/, $ENV{PATH};

my $dir = SmartyTest::tempdir() . '/sentinel-auth';
mkdir $dir;
my $pw = 'data-' . SmartyTest::random_hex(8);
my $spw = 'sentinel-' . SmartyTest::random_hex(8);
for (['password', $pw], ['sentinel-password', $spw],
     ['wrong', 'not-the-password'])
{
    SmartyTest::spew("$dir/$_->[0]", "$_->[1]\n");
    chmod 0600, "$dir/$_->[0]";
}

{
    my ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_sentinel m 127.0.0.1:26379;\n"
        . "smarty_redis_sentinel_user gw;");
    isnt($rc, 0, 'nginx -t: a sentinel user without a password file');
    like($out, qr/"smarty_redis_sentinel_user" needs/, '  saying why');
    ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis 127.0.0.1:6379;\n"
        . "smarty_redis_sentinel_password_file $dir/sentinel-password;");
    isnt($rc, 0, 'nginx -t: a sentinel password without sentinels');
    like($out, qr/needs "smarty_redis_sentinel"/, '  saying why');
    ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_sentinel m 127.0.0.1:26379;\n"
        . "smarty_redis_sentinel_password_file $dir/none;");
    isnt($rc, 0, 'nginx -t: a sentinel password file that is not there');
    ($rc, $out) = SmartyTest::nginx_test(http =>
        "smarty_redis_sentinel m 127.0.0.1:26379;\n"
        . "smarty_redis_password_file $dir/password;\n"
        . "smarty_redis_sentinel_password_file $dir/sentinel-password;");
    is($rc, 0, 'nginx -t: a password for the master, one for the sentinels')
        or diag $out;
    unlike($out, qr/\Q$spw\E|\Q$pw\E/, '  and says neither');
}

my $st = SmartyTest::start_redis_sentinels(password => $pw,
                                           sentinel_password => $spw);
my $sent = join ' ', map { "127.0.0.1:$_->{port}" } @{ $st->{sentinels} };
my $mport = $st->{master}{port};

# the sentinels refuse a connection without their password
like(`redis-cli -p $st->{sentinels}[0]{port} SENTINEL masters 2>&1`,
     qr/NOAUTH/, 'the sentinels want their password');

my ($A, $B) = SmartyTopology::two_gateways(
    "    smarty_redis_sentinel mymaster $sent;\n"
    . "    smarty_redis_password_file $dir/password;\n"
    . "    smarty_redis_sentinel_password_file $dir/sentinel-password;\n");
my $key = $A->{keys}{demo};

ok(SmartyTest::wait_until(sub {
       SmartyTest::error_log($A->{ngx})
           =~ /the master "mymaster" is 127\.0\.0\.1:$mport/ }, 10),
   'the gateway found the master through the sentinels');
my $group = SmartyTest::group_photo();
like(SmartyTopology::cs(SmartyTopology::rec($A->{url}, $key, 2,
                                            [ [ 'f', $group ] ])),
     qr/stored/, 'a miss is stored on the master (its password too)');
SmartyTopology::is_hit(
    SmartyTopology::cs(SmartyTopology::rec($B->{url}, $key, 2, [ [ 'f', $group ] ])),
    '... and the other instance hits it');

ok(SmartyTopology::switch_master_subscribed($st, 2),
   'both gateways authenticate and subscribe to +switch-master');

# the failover: the gateways follow the sentinels to the replica
SmartyTopology::sentinel_failover($st, $A, $B, 3, 10);
like(SmartyTopology::cs(SmartyTopology::rec($A->{url}, $key, 8,
         [ [ 'f', SmartyTest::alone_photo('after') ] ])),
     qr/stored/, 'a miss is stored on the new master');

# a gateway with the wrong sentinel password: no master, the API still
# answers (the documented fallback), the log says why without a password
my $W = SmartyTest::start_gateway(
    http => "    smarty_redis_sentinel mymaster $sent;\n"
          . "    smarty_redis_password_file $dir/password;\n"
          . "    smarty_redis_sentinel_password_file $dir/wrong;\n"
          . "    smarty_redis_timeout 300ms;\n",
    gateway => 'smarty_cache on;',
    clients => [ { name => 'demo', spaces => '*', methods => '*' } ],
    emu => $A->{emu}, token => $A->{token},
    emu_args => [ '--per-image-ms', '0' ]);
ok(SmartyTest::wait_until(sub {
       SmartyTest::error_log($W->{ngx}) =~ /WRONGPASS|invalid password/ }, 10),
   'a wrong sentinel password: the error log says AUTH failed');
my $r = SmartyTopology::rec($W->{url}, $W->{keys}{demo}, 3,
                            [ [ 'f', $group ] ]);
is($r->{status}, 200, '... and the API still answers, past the cache');
unlike(SmartyTest::error_log($W->{ngx}), qr/the master "mymaster" is/,
       '... with no master found');
for my $g ($A, $B, $W) {
    my $log = SmartyTest::error_log($g->{ngx});
    unlike($log, qr/\Q$pw\E|\Q$spw\E|not-the-password/,
           'no password in the error log');
}

done_testing;
