# The dashboard (dashboard/, docs/metrics.md) in headless Chromium
# (Debian's chromium, driven over the DevTools protocol, t/lib/Chromium.pm):
# served by the gateway's nginx with Chart.js from Debian's libjs-chart.js,
# it loads without a console error, takes its key from the address and
# drops it from there, and its charts, tiles and table show the traffic
# this test sends (rates, errors, the cache's hits, latencies, the quotas
# of the space, the latest audit records).  The screenshot is kept in
# $SMARTY_BUILD/dashboard.png.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use SmartyTest;
use Chromium;
use JSON::PP ();
use Time::HiRes qw(time);

my $CHARTJS = '/usr/share/javascript/chart.js/chart.min.js';

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};
plan skip_all => 'chromium is needed (Debian\'s chromium)'
    unless Chromium::binary();
plan skip_all => "Chart.js is needed ($CHARTJS, Debian's libjs-chart.js)"
    unless -f $CHARTJS;

my $WAIT = $ENV{SMARTY_VALGRIND} ? 240 : 60;

my $redis = SmartyTest::start_redis();
my $ops = 'sgw_ops_' . SmartyTest::random_hex(16);
my $gw = SmartyTest::start_gateway(
    emu_args => [ '--per-image-ms', '0' ],
    clients => [ { name => 'demo' },
                 { name => 'ops', key => $ops, spaces => [], methods => [],
                   operator => JSON::PP::true } ],
    error_level => 'notice',
    http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
          . "    smarty_audit_stream smarty:audit;\n"
          . "    smarty_audit_instance dash;\n"
          . "    smarty_quota_space * \"300r/d; 600i/d\";\n",
    gateway => "            smarty_cache on;\n",
    server => <<"EOF");
        smarty_clients_file %%CLIENTS_FILE%%;
        location = /metrics { smarty_metrics; }
        location = /audit { smarty_audit_view; }
        location = /quota { smarty_quota_view; }
        location /dashboard/ {
            alias $SmartyTest::TOP/dashboard/;
            types {
                text/html html;
                text/css css;
                application/javascript js;
            }
        }
        location = /dashboard/chart.js {
            alias $CHARTJS;
            types { }
            default_type application/javascript;
        }
EOF

my $demo = $gw->{keys}{demo};
my @photos = map { SmartyTest::alone_photo('guest', seed => $_) } 1 .. 4;
my $sent = 0;

# a hit, a miss now and then, a request without a key
sub traffic {
    my ($i) = @_;
    my $img = $photos[$i % 4];
    $img = SmartyTest::alone_photo('new', seed => 100 + $i) if $i % 5 == 0;
    my $r = SmartyTest::call($gw->{url}, 'persons/recognize',
        key => $i % 7 == 3 ? undef : $demo,
        meta => { space => '1', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ]);
    $sent++;
    return $r->{status};
}

my $dir = SmartyTest::tempdir() . '/chromium';
mkdir $dir;
my $b = Chromium->start(dir => $dir, width => 1280, height => 1900);

$b->open("$gw->{url}/dashboard/#key=$ops&interval=400");

is($b->eval('getComputedStyle(document.querySelector("header"))'
             . '.backgroundColor'), 'rgb(29, 36, 48)',
   'the stylesheet applies (text/css)');
is($b->eval('typeof Chart'), 'function', 'Chart.js is loaded');
unlike($b->eval('location.href'), qr/\Q$ops\E/,
       'the key leaves the address at once');
is($b->eval('sessionStorage.getItem("smarty-key")'), $ops,
   'and stays in the tab');

# traffic while the page scrapes, until every chart has something
my $state;
my $deadline = time + $WAIT;
my $i = 0;
while (time < $deadline && $i < 150) {
    traffic($i++) for 1 .. 3;
    $b->pump(0.3);
    $state = $b->eval('JSON.stringify(window.smartyDashboard)');
    $state = JSON::PP->new->decode($state);
    my $c = $state->{charts};
    last if $state->{scrapes} >= 5
        && $c->{requests} && $c->{latency}
        && (grep { ($_ // 0) > 0 } @{ $c->{requests}{datasets}[1]{data} })
        && (grep { ($_ // 0) > 0 } @{ $c->{cache}{datasets}[0]{data} })
        && @{ $state->{quota} } && $state->{audit} > 0;
}

# the last scrape after the last request: the totals are exact
my $scrapes = $state->{scrapes};
ok(SmartyTest::wait_until(sub {
       $b->pump(0.2);
       $state = JSON::PP->new->decode(
           $b->eval('JSON.stringify(window.smartyDashboard)'));
       # and the audit view has every record (they are written after
       # the answers: a slow machine, valgrind)
       $state->{scrapes} >= $scrapes + 2 && $state->{audit} >= 15
   }, $WAIT), 'the page keeps scraping');

is($state->{failures}, 0, 'no scrape failed')
    or diag($state->{lastError});
is($state->{totals}{requests}, $sent, "the requests tile: $sent, as sent");
is($b->eval('document.getElementById("t-requests").textContent'),
   "$sent", 'and it says so');
my $errors = grep { $_ % 7 == 3 } 0 .. $i - 1;
is($state->{totals}{errors}, $errors, "errors: the $errors without a key");

my $c = $state->{charts};
ok((grep { ($_ // 0) > 0 } @{ $c->{requests}{datasets}[0]{data} }),
   'the request rate chart shows the traffic');
ok((grep { ($_ // 0) > 0 } @{ $c->{requests}{datasets}[1]{data} }),
   'the error rate too');
ok((grep { ($_ // 0) > 0 } @{ $c->{cache}{datasets}[0]{data} }),
   'the hit ratio chart shows hits');
ok((grep { ($_ // 0) > 0 } @{ $c->{cache}{datasets}[1]{data} }),
   'and the upstream images they saved');
ok((grep { defined } @{ $c->{latency}{datasets}[0]{data} }),
   'the latency chart has percentiles');
ok((grep { $_->{label} =~ /^space 1 · / && $_->{used} > 0 }
    @{ $state->{quota} }), 'the quota chart shows the space\'s use');
is($state->{audit}, 15, 'the audit table shows the latest 15 records');
like($b->eval('document.querySelector("#audit tbody").textContent'),
     qr/dash.*demo.*persons\/recognize/s,
     'records of this instance and client');
like($b->eval('document.getElementById("t-redis").textContent'),
     qr/^1 \/ 1 up$/, 'the Redis tile: the worker is up');
like($b->eval('document.getElementById("t-token").textContent'),
     qr/no data/, 'the token tile: a file has no data');

my $png = ($ENV{SMARTY_BUILD} // "$SmartyTest::TOP/build") . '/dashboard.png';
$b->screenshot($png);
ok(-s $png > 10_000, "a screenshot: $png");

is_deeply([ $b->errors ], [], 'no console error, exception or failed load');

# a key that is not an operator's: a message, no console error
my $b2 = Chromium->start(dir => "$dir-2");
$b2->open("$gw->{url}/dashboard/#key=$demo&interval=300");
ok(SmartyTest::wait_until(sub {
       $b2->pump(0.2);
       !$b2->eval('document.getElementById("problem").hidden')
   }, $WAIT), 'a client key: the page says so');
like($b2->eval('document.getElementById("problem").textContent'),
     qr/refused this key/, 'that the key was refused');
ok(!$b2->eval('document.getElementById("login").hidden'),
   'and asks for another');
is_deeply([ grep { !/status of 40[13]/ } $b2->errors ], [],
          'no error but the refusal itself');
$b2->stop;
$b->stop;

done_testing();
