# The benchmark's wrk runner (bench/Wrk.pm) reads wrk's own summary, so a
# run that meets errors stops the benchmark: answers that are not 2xx are
# counted, p50/p99 come from wrk's latency distribution.
use strict;
use warnings;
use Test::More;
use lib 't/lib', 'bench';
use SmartyTest;
use Wrk;

plan skip_all => 'wrk is not installed' unless `which wrk` =~ /wrk/;

my $ngx = SmartyTest::start_nginx(http => <<'EOF2');
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /ok { return 200 '{}'; }
        location = /bad { return 503 '{}'; }
    }
EOF2

my $file = SmartyTest::tempdir() . '/body';
SmartyTest::spew($file, 'x' x 100);
my %o = (file => $file, ct => 'application/octet-stream', conns => 2,
         secs => 1);

my $ok = Wrk::run(%o, url => "$ngx->{url}/ok");
ok($ok->{rps} > 0, 'requests/s read');
is($ok->{non2xx}, 0, 'no answer that is not 2xx');
ok(defined $ok->{p50} && defined $ok->{p99} && $ok->{p50} <= $ok->{p99},
   'p50 and p99 from the latency distribution');

my $bad = Wrk::run(%o, url => "$ngx->{url}/bad", allow_errors => 1);
ok($bad->{non2xx} > 0, "503s counted: $bad->{non2xx}");
is($bad->{non2xx}, $bad->{requests}, 'every one of them');
ok(!eval { Wrk::run(%o, url => "$ngx->{url}/bad"); 1 },
   'a run with errors stops the benchmark');
like($@, qr/answers that were not 2xx/, '... saying why');

is(Wrk::ms('456.00us'), 0.456, 'us');
is(Wrk::ms('1.50s'), 1500, 's');

done_testing;
