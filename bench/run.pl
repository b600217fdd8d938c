# The benchmark driver: starts Redis, the emulator and one nginx (one
# worker) holding both the gateway and the bound, runs wrk (one thread) and
# prints a table.
use strict;
use warnings;
use SmartyTest;
use Wrk;

my ($secs, $conns) = @ARGV;

my $redis = SmartyTest::start_redis();
my $bound_json = '{"status":200,"body":{"objects":[{"name":"file_0","status":0,'
    . '"persons":[{"tag":"undefined","coord":[10,20,60,80],"confidence":0.99,'
    . '"similarity":0.5,"awesomeness":0.5}]}]},"htmlencoded":false,"last_modified":0}';
$bound_json .= ' ' x (1024 - length($bound_json) - 1) . "\n";

# quotas that never refuse: a space's set of three limits and a client's
# set of two, so every request checks five states in Redis
my $QUOTAS = 'smarty_quota_space 1 "1000000000r/s; 1000000000i/m; '
    . '1000000000i/d"; smarty_quota_client 1 "1000000000r/s; 1000000000i/h";';

# a gateway location of its own under /<name>/api/v1/, with $directives
sub api_location {
    my ($name, $directives, $token) = @_;
    $token //= 'smarty_upstream_token_file %%TOKEN_FILE%%;';
    return <<"EOF";
        location /$name/api/v1/ {
            smarty_gateway on;
            smarty_api_prefix /$name/api/v1/;
            smarty_upstream /_smarty_upstream/;
            $token
            smarty_clients_file %%CLIENTS_FILE%%;
            client_body_buffer_size 2m;
            $directives
        }
EOF
}

# the emulator accepts the service token of the file and the access tokens
# of its OAuth endpoint, for this client
my $odir = SmartyTest::tempdir() . '/oauth';
mkdir $odir;
SmartyTest::spew("$odir/id", "bench\n");
SmartyTest::spew("$odir/secret", "bench-secret\n");
chmod 0600, "$odir/id", "$odir/secret";
my $emu = SmartyTest::start_emulator(
    token => 'upstream-' . SmartyTest::random_hex(16),
    args => [ '--per-image-ms', '0', '--quiet', '--client-id', 'bench',
              '--client-secret', 'bench-secret' ]);
my $oauth = "smarty_upstream_oauth $emu->{url}/auth/oauth/v1/token "
    . "client_id_file=$odir/id client_secret_file=$odir/secret;";

my $extra = join('', map { api_location(@$_) }
                 [ 'quota', "smarty_cache on; $QUOTAS" ],
                 [ 'nocache-quota', $QUOTAS ],
                 [ 'nocache', '' ],
                 [ 'nocache-oauth', '', $oauth ]) . <<"EOF";
        location = /bound {
            client_body_buffer_size 2m;
            client_max_body_size 64m;
            default_type application/json;
            return 200 '$bound_json';
        }
EOF

my $gw = SmartyTest::start_gateway(
    emu => $emu, token => SmartyTest::slurp("$emu->{dir}/token"),
    http => "smarty_redis 127.0.0.1:$redis->{port};\n",
    gateway => 'smarty_cache on;',
    body_buffer => '2m',
    error_level => 'warn',
    server => $extra);

my $key = $gw->{keys}{demo};
my $dir = SmartyTest::tempdir();

sub body {
    my ($name, $size) = @_;
    my $img = SmartyTest::alone_photo('bench', pad => $size, seed => $size);
    my ($body, $ct) = SmartyTest::api_body(
        meta => { space => '1', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ]);
    SmartyTest::spew("$dir/$name", $body);
    return ("$dir/$name", $ct, length $body);
}

sub wrk {
    my ($url, $file, $ct, $k, $c) = @_;
    return Wrk::run(url => $url, file => $file, ct => $ct, key => $k,
                    conns => $c, secs => $secs);
}

my $cores = `nproc`;
chomp $cores;
printf "smarty-gateway benchmark: %ss per run, %d connections, 1 nginx worker, "
    . "wrk -t1, %s cores\n\n", $secs, $conns, $cores;

printf "%-34s %12s %12s %7s %8s %8s\n", 'cache hit', 'gateway r/s',
    'bound r/s', 'ratio', 'p50 ms', 'p99 ms';
for my $size ([ '100 KB', 100_000 ], [ '1 MB', 1_000_000 ]) {
    my ($file, $ct, $len) = body("hit-$size->[1]", $size->[1]);
    my $url = "$gw->{url}/api/v1/persons/recognize";
    my $curl = "curl -s -H 'Authorization: Bearer $key' -H 'Content-Type: $ct'"
        . " --data-binary \@$file $url";
    my $warm = `$curl -o /dev/null -w '%{http_code}'`;
    die "warm-up: $warm" unless $warm eq '200';
    my $hit = `$curl -D - -o /dev/null`;
    die "not a hit:\n$hit" unless $hit =~ /cache-status: smarty-gateway; hit/i;
    my $g = wrk($url, $file, $ct, $key, $conns);
    my $b = wrk("$gw->{url}/bound", $file, $ct, undef, $conns);
    printf "%-34s %12.0f %12.0f %7.2f %8.2f %8.2f\n",
        "one $size->[0] image ($len B body)", $g->{rps}, $b->{rps},
        $g->{rps} / $b->{rps}, $g->{p50}, $g->{p99};
}

print "\n";
printf "%-34s %12s %12s %10s %10s\n", 'miss path, 100 KB, 4 connections',
    'p50 ms', 'p99 ms', 'added p50', 'added p99';
{
    my ($file, $ct, $len) = body("miss", 100_001);
    my $q = "oauth_provider=mcs&oauth_token=$gw->{token}";
    my $e = wrk("$gw->{emu}{url}/api/v1/persons/recognize?$q", $file, $ct,
                undef, 4);
    my $g = wrk("$gw->{url}/nocache/api/v1/persons/recognize", $file, $ct,
                $key, 4);
    printf "%-34s %12.2f %12.2f\n", "emulator directly", $e->{p50}, $e->{p99};
    printf "%-34s %12.2f %12.2f %10.2f %10.2f\n", "through the gateway",
        $g->{p50}, $g->{p99}, $g->{p50} - $e->{p50}, $g->{p99} - $e->{p99};
}

print "\n";
printf "%-34s %12s %12s %7s %8s %8s\n", 'quota cost, 100 KB, same run',
    'quotas r/s', 'none r/s', 'ratio', 'p50 ms', 'p99 ms';
{
    my ($file, $ct, $len) = body("hit-100000", 100_000);
    my $hq = wrk("$gw->{url}/quota/api/v1/persons/recognize", $file, $ct,
                 $key, $conns);
    my $h = wrk("$gw->{url}/api/v1/persons/recognize", $file, $ct, $key,
                $conns);
    printf "%-34s %12.0f %12.0f %7.2f %8.2f %8.2f\n",
        "hit path, $conns connections", $hq->{rps}, $h->{rps},
        $hq->{rps} / $h->{rps}, $hq->{p50}, $hq->{p99};

    ($file, $ct, $len) = body("miss", 100_001);
    my $mq = wrk("$gw->{url}/nocache-quota/api/v1/persons/recognize", $file,
                 $ct, $key, 4);
    my $m = wrk("$gw->{url}/nocache/api/v1/persons/recognize", $file, $ct,
                $key, 4);
    printf "%-34s %12.0f %12.0f %7.2f %8.2f %8.2f\n",
        "miss path, 4 connections", $mq->{rps}, $m->{rps},
        $mq->{rps} / $m->{rps}, $mq->{p50}, $mq->{p99};
    printf "%-34s %12s %12s %7s %8.2f %8.2f\n", "  added by the quota check",
        '', '', '', $mq->{p50} - $m->{p50}, $mq->{p99} - $m->{p99};
}

print "\n";
printf "%-34s %12s %12s %7s %8s %8s\n", 'upstream token, miss, same run',
    'OAuth r/s', 'file r/s', 'ratio', 'p50 ms', 'p99 ms';
{
    my ($file, $ct, $len) = body("miss", 100_001);
    my $o = wrk("$gw->{url}/nocache-oauth/api/v1/persons/recognize", $file,
                $ct, $key, 4);
    my $f = wrk("$gw->{url}/nocache/api/v1/persons/recognize", $file, $ct,
                $key, 4);
    printf "%-34s %12.0f %12.0f %7.2f %8.2f %8.2f\n",
        "miss path, 4 connections", $o->{rps}, $f->{rps},
        $o->{rps} / $f->{rps}, $o->{p50}, $o->{p99};
    my $t = SmartyTest::emulator_stats($emu)->{tokens};
    printf "  tokens the OAuth source fetched: %d\n", $t->{issued};
}
