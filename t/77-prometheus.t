# A real Prometheus server (Debian's prometheus) scrapes the gateway's
# /metrics with an operator's key, as docs/metrics.md's scrape
# configuration says: the target is up, the gateway's counts (and its
# OAuth token's) are what it stores, the alert rules of docs/metrics.md
# load (promtool check rules) and evaluate.  Without the key the scrape fails: the endpoint is an
# operator's.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use JSON::PP ();

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};
plan skip_all => 'prometheus and promtool are needed (Debian\'s prometheus)'
    unless grep { -x "$_/prometheus" } split /:/, $ENV{PATH};

my $WAIT = $ENV{SMARTY_VALGRIND} ? 240 : 60;

my $redis = SmartyTest::start_redis();
my $ops = 'sgw_ops_' . SmartyTest::random_hex(16);
my $gw = SmartyTest::start_gateway(
    oauth => {},
    emu_args => [ '--per-image-ms', '0' ],
    clients => [ { name => 'demo' },
                 { name => 'ops', key => $ops, spaces => [], methods => [],
                   operator => JSON::PP::true } ],
    error_level => 'notice',
    http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
          . "    smarty_audit_stream smarty:audit;\n",
    gateway => "            smarty_cache on;\n",
    server => "        smarty_clients_file %%CLIENTS_FILE%%;\n"
            . "        location = /metrics { smarty_metrics; }\n");

# 3 images, 7 requests: 4 repeats, hits unless a repeat comes before the
# entry of its first is stored (the store follows the answer: a slow
# machine, valgrind); the hits expected are the ones the client was told
my $N = 7;
my $hits = 0;
for my $i (1 .. $N) {
    my $r = SmartyTest::call($gw->{url}, 'persons/recognize',
        key => $gw->{keys}{demo},
        meta => { space => '2', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', SmartyTest::alone_photo('p', seed => $i % 3) ] ]);
    is($r->{status}, 200, "request $i");
    $hits++ if ($r->{headers}{'cache-status'} // '') =~ /; hit\b/;
}
cmp_ok($hits, '>=', 1, "$hits of the 4 repeats were hits");

# the configuration and the rules of docs/metrics.md, pointed at this
# gateway: the doc's examples are what is tested
my $doc = SmartyTest::slurp('docs/metrics.md');
my ($scrape) = $doc =~ /<!-- scrape -->\n```yaml\n(.*?)```/s;
my ($rules) = $doc =~ /<!-- rules -->\n```yaml\n(.*?)```/s;
ok($scrape, 'docs/metrics.md has a scrape configuration');
ok($rules, 'docs/metrics.md has alert rules');

my $dir = SmartyTest::tempdir() . '/prometheus';
mkdir $dir;
SmartyTest::spew("$dir/operator.key", "$ops\n");
SmartyTest::spew("$dir/bad.key", "sgw_nobody\n");
SmartyTest::spew("$dir/rules.yml", $rules);

my $port = SmartyTest::free_port();
my $target = "127.0.0.1:$gw->{ngx}{port}";
$scrape =~ s{/etc/prometheus/smarty-operator\.key}{$dir/operator.key}g;
$scrape =~ s{/etc/prometheus/smarty-rules\.yml}{$dir/rules.yml}g;
$scrape =~ s{127\.0\.0\.1:8080}{$target}g;
$scrape =~ s{scrape_interval: \S+}{scrape_interval: 1s}g;
$scrape =~ s{evaluation_interval: \S+}{evaluation_interval: 1s}g;
# a second job, without a key
$scrape .= <<"EOF";
  - job_name: smarty-nokey
    metrics_path: /metrics
    static_configs:
      - targets: ['$target']
EOF
SmartyTest::spew("$dir/prometheus.yml", $scrape);

my $out = `promtool check rules $dir/rules.yml 2>&1`;
is($?, 0, 'promtool check rules: the alert rules are valid') or diag($out);
$out = `promtool check config $dir/prometheus.yml 2>&1`;
is($?, 0, 'promtool check config: the scrape configuration is valid')
    or diag($out);

my $prom = SmartyTest::spawn('prometheus', "$dir/prometheus.log", undef,
    'prometheus', "--config.file=$dir/prometheus.yml",
    "--storage.tsdb.path=$dir/data", "--web.listen-address=127.0.0.1:$port");
ok(SmartyTest::wait_until(sub { SmartyTest::port_open($port) }, $WAIT),
   'prometheus is up') or diag(SmartyTest::slurp("$dir/prometheus.log"));

sub escape {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub query {
    my ($q) = @_;
    my $r = SmartyTest::http('GET', "http://127.0.0.1:$port/api/v1/query?query="
                                    . escape($q));
    return $r->{json}{data}{result} // [];
}

my $res;
ok(SmartyTest::wait_until(sub {
       $res = query('sum(smarty_requests_total{job="smarty"})');
       @$res && $res->[0]{value}[1] == $N
   }, $WAIT), "Prometheus stores the gateway's $N requests")
    or diag(JSON::PP->new->encode($res), SmartyTest::slurp("$dir/prometheus.log"));

my %up;
SmartyTest::wait_until(sub {
    %up = map { $_->{metric}{job} => $_->{value}[1] } @{ query('up') };
    defined $up{smarty} && defined $up{'smarty-nokey'}
}, $WAIT);
is($up{smarty}, 1, 'the target with the operator\'s key is up');
is($up{'smarty-nokey'}, 0, 'the one without a key is down: 401');

$res = query('sum(smarty_cache_hit_images_total{job="smarty"})');
is($res->[0]{value}[1], $hits, 'the cache\'s hits: every image the client '
   . 'was told was a hit');

$res = query('smarty_token_fetches_total{job="smarty"}');
ok(@$res && $res->[0]{value}[1] >= 1,
   'the OAuth source\'s token fetches')
    or diag(JSON::PP->new->encode($res));
like($res->[0]{metric}{source} // '', qr{^http://127\.0\.0\.1:\d+/},
     'labelled with its endpoint');
$res = query('smarty_token_age_seconds{job="smarty"}');
ok(@$res && $res->[0]{value}[1] >= 0, 'the token\'s age');

$res = query('histogram_quantile(0.5, sum by (le) '
             . '(smarty_request_duration_seconds_bucket{job="smarty"}))');
ok(@$res && $res->[0]{value}[1] ne 'NaN',
   'the latency histogram makes a quantile');

# the rules were loaded and are evaluated (none fires on a healthy gateway)
my $r = SmartyTest::http('GET', "http://127.0.0.1:$port/api/v1/rules");
my @rules = map { @{ $_->{rules} } } @{ $r->{json}{data}{groups} // [] };
ok(@rules >= 4, scalar(@rules) . ' alert rules loaded');
ok(SmartyTest::wait_until(sub {
       $r = SmartyTest::http('GET', "http://127.0.0.1:$port/api/v1/rules");
       my @h = map { $_->{health} // '' }
               map { @{ $_->{rules} } } @{ $r->{json}{data}{groups} // [] };
       @h && !grep { $_ ne 'ok' } @h
   }, $WAIT), 'every rule evaluates');
my @firing = grep { ($_->{state} // '') eq 'firing' }
             map { @{ $_->{rules} } } @{ $r->{json}{data}{groups} // [] };
is(scalar @firing, 0, 'none fires');

SmartyTest::stop_proc($prom);

done_testing();
