# A Redis Cluster whose nodes announce names (docs/redis.md, "Redis
# Cluster"; Redis 7's cluster-announce-hostname with
# cluster-preferred-endpoint-type hostname): CLUSTER SLOTS names each node
# and gives its address beside the name, MOVED names it only.  The gateway
# resolves nothing: it takes the map's addresses, and follows a MOVED that
# names a node by the address the map gave for that name.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use SmartyTopology;

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my $cl = SmartyTest::start_redis_cluster(masters => 3, replicas => 0);
my @masters = map { $_->{port} } @{ $cl->{masters} };
my $p0 = $masters[0];
my %name;
for my $i (0 .. $#masters) {
    my $p = $masters[$i];
    $name{$p} = 'node' . ($i + 1) . '.smarty.invalid';
    SmartyTest::redis_cli($p, 'CONFIG', 'SET', 'cluster-announce-hostname',
                          $name{$p});
    SmartyTest::redis_cli($p, 'CONFIG', 'SET',
                          'cluster-preferred-endpoint-type', 'hostname');
}
ok(SmartyTest::wait_until(sub {
       my $slots = SmartyTest::redis_cli($p0, 'CLUSTER', 'SLOTS');
       !grep { $slots !~ /^\Q$name{$_}\E$/m } @masters
   }, 20), 'CLUSTER SLOTS names every master, with its address beside it');
{
    # a key of a slot another master serves
    my ($k) = grep { SmartyTest::cluster_owner($p0, $_) != $p0 }
              map { "k$_" } 0 .. 99;
    like(SmartyTest::redis_cli($p0, 'GET', $k),
         qr/^MOVED \d+ node\d\.smarty\.invalid:\d+$/,
         'a MOVED names the node only');
}

my $ops = 'sgw_ops_' . SmartyTest::random_hex(16);
my $gw = SmartyTest::start_gateway(
    error_level => 'info',
    clients => [ { name => 'demo' },
                 { name => 'ops', key => $ops, spaces => [], methods => [],
                   operator => JSON::PP::true } ],
    http => "    smarty_redis_cluster 127.0.0.1:$p0;\n"
          . "    smarty_redis_timeout 500ms;\n",
    gateway => 'smarty_cache on; smarty_cache_wait 2s;',
    server => "        smarty_clients_file %%CLIENTS_FILE%%;\n"
            . "        location = /metrics { smarty_metrics; }\n",
    emu_args => [ '--per-image-ms', '0' ]);
my $key = $gw->{keys}{demo};

sub metric {
    my ($re) = @_;
    my $r = SmartyTest::http('GET', "$gw->{url}/metrics",
                             headers => { Authorization => "Bearer $ops" });
    my $n = 0;
    for (split /\n/, $r->{content} // '') {
        $n += $1 if /^$re\S* (\d+)$/;
    }
    return $n;
}

# every space, on every master: stored, then a hit
for my $s (0 .. 9) {
    my $photo = SmartyTest::alone_photo("named$s");
    my $r;
    ok(SmartyTest::wait_until(sub {
           $r = SmartyTopology::rec($gw->{url}, $key, $s, [ [ 'f', $photo ] ]);
           SmartyTopology::cs($r) =~ /stored/
       }, 10), "space $s: stored") or diag(SmartyTopology::cs($r));
    SmartyTopology::is_hit(SmartyTopology::cs(
        SmartyTopology::rec($gw->{url}, $key, $s, [ [ 'f', $photo ] ])),
        "space $s: a hit");
}
my $log = SmartyTest::error_log($gw->{ngx});
unlike($log, qr/announced by the name/, 'no node was left out of the map');
for my $p (@masters) {
    like($log, qr/127\.0\.0\.1:$p/, "the master named $name{$p} is "
         . "connected by its address");
}

# the slot of space 1 moves to another master: the gateway's map is older,
# the node it asks answers MOVED <name>:<port>
my ($src, undef, $slot) = SmartyTest::cluster_owner($p0, 'smarty:{s1}:gen');
my ($dst) = grep { $_ != $src } @masters;
my $redirects = metric('smarty_redis_node_redirects_total');
SmartyTopology::move_slot(\@masters, $slot, $src, $dst);
like(SmartyTest::redis_cli($src, 'GET', 'smarty:{s1}:gen'),
     qr/^MOVED $slot \Q$name{$dst}\E:$dst$/, "the old master answers MOVED "
     . "$name{$dst}:$dst");

my $photo = SmartyTest::alone_photo('moved');
like(SmartyTopology::cs(SmartyTopology::rec($gw->{url}, $key, 1,
                                            [ [ 'f', $photo ] ])),
     qr/stored/, 'right after the move: stored, on the new master');
ok(SmartyTest::redis_cli($dst, '--scan', '--pattern', 'smarty:{s1}:e2:*'),
   '... which holds the entries of space 1');
cmp_ok(metric('smarty_redis_node_redirects_total'), '>', $redirects,
       'the gateway followed a MOVED that named the node');
SmartyTopology::is_hit(SmartyTopology::cs(
    SmartyTopology::rec($gw->{url}, $key, 1, [ [ 'f', $photo ] ])),
    'and hits it');

done_testing;
