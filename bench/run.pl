# The benchmark driver: starts Redis, the emulator and one nginx (one
# worker) holding the gateway and the bounds, runs wrk (one thread) and
# prints tables (bench/README.md).  With BENCH_PROFILE=<dir>, the cache
# hits run under `perf record` of the nginx worker instead, and the
# profiles are summarised (bench/Profile.pm).
use strict;
use warnings;
use SmartyTest;
use Wrk;

my ($secs, $conns) = @ARGV;

my $redis = SmartyTest::start_redis();
my $build = $ENV{SMARTY_BUILD} // 'build';
my $hashbound = "$build/ngx_http_smarty_hashbound_module.so";
die "$hashbound is missing: make bench-module\n" unless -f $hashbound;
my $dir = SmartyTest::tempdir();

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
            $directives
        }
EOF
}

# the audit trail and the metrics are on where a location says so: the
# sections above measure the gateway without them
my $AUDIT = 'smarty_audit on; smarty_metrics_collect on;';

# the emulator accepts the service token of the file and the access tokens
# of its OAuth endpoint, for this client
my $odir = "$dir/oauth";
mkdir $odir;
SmartyTest::spew("$odir/id", "bench\n");
SmartyTest::spew("$odir/secret", "bench-secret\n");
chmod 0600, "$odir/id", "$odir/secret";
my $token = 'upstream-' . SmartyTest::random_hex(16);
my $emu = SmartyTest::start_emulator(token => $token,
    args => [ '--per-image-ms', '0', '--quiet', '--client-id', 'bench',
              '--client-secret', 'bench-secret' ]);
my $oauth = "smarty_upstream_oauth $emu->{url}/auth/oauth/v1/token "
    . "client_id_file=$odir/id client_secret_file=$odir/secret;";

# a multipart body of $n images of about $size bytes each, in a file ($seed:
# the filler's, "VARY0000000000000000" for bench/post.lua's VARY)
sub body {
    my ($name, $size, $n, $seed) = @_;
    $n //= 1;
    my @img = map {
        [ "file_$_", SmartyTest::alone_photo("bench$_", pad => $size,
                                            seed => $seed // $size + $_) ]
    } 0 .. $n - 1;
    my ($body, $ct) = SmartyTest::api_body(
        meta => { space => '1',
                  images => [ map { { name => $_->[0] } } @img ] },
        images => \@img);
    SmartyTest::spew("$dir/$name", $body);
    return ("$dir/$name", $ct, length $body);
}

# The cache hits, beside two bounds in the same nginx: the bound is stock
# nginx discarding the upload and answering a fixed 1 KB JSON (return 200:
# nginx takes no longer argument); the hash bound reads the upload into
# memory, SHA-256s every byte of it and answers the upstream's own answer
# to the same body, the bytes a hit answers (bench/hashbound/).
my @HITS = (
    { label => 'one 100 KB image', name => 'hit-100k', size => 100_000 },
    { label => 'one 1 MB image', name => 'hit-1m', size => 1_000_000 },
    { label => '100 images of 40 KB', name => 'hit-batch', size => 40_000,
      n => 100 });
my $bound_json = '{"status":200,"body":{"objects":[{"name":"file_0","status":0,'
    . '"persons":[{"tag":"undefined","coord":[10,20,60,80],"confidence":0.99,'
    . '"similarity":0.5,"awesomeness":0.5}]}]},"htmlencoded":false,"last_modified":0}';
$bound_json .= ' ' x (1024 - length($bound_json) - 1) . "\n";
my $bounds = <<"EOF";
        location /bound/ {
            default_type application/json;
            return 200 '$bound_json';
        }
EOF
for my $h (@HITS) {
    ($h->{file}, $h->{ct}, $h->{len}) = body($h->{name}, $h->{size}, $h->{n});
    my $up = SmartyTest::http('POST', "$emu->{url}/api/v1/persons/recognize"
                              . "?oauth_provider=mcs&oauth_token=$token",
        headers => { 'Content-Type' => $h->{ct} },
        body => SmartyTest::slurp($h->{file}));
    die "the emulator answered $up->{status}\n" unless $up->{status} == 200;
    $h->{answer} = $up->{content};
    SmartyTest::spew("$dir/$h->{name}.json", $h->{answer});
    $bounds .= <<"EOF";
        location = /hashbound/$h->{name} {
            smarty_hashbound $dir/$h->{name}.json;
        }
        location = /readbound/$h->{name} {
            smarty_hashbound $dir/$h->{name}.json nohash;
        }
EOF
}

my $extra = join('', map { api_location(@$_) }
                 [ 'quota', "smarty_cache on; $QUOTAS" ],
                 [ 'nocache-quota', $QUOTAS ],
                 [ 'nocache', '' ],
                 [ 'miss', 'smarty_cache on;' ],
                 [ 'nocache-oauth', '', $oauth ],
                 [ 'audit-on', "smarty_cache on; $AUDIT" ],
                 [ 'audit-off', 'smarty_cache on;' ]) . $bounds . <<"EOF";
        location = /metrics {
            smarty_clients_file %%CLIENTS_FILE%%;
            smarty_metrics;
        }
EOF

# Every location reads bodies of up to 8 MB into memory.  glibc gives the
# top of its heap back to the system once more than a threshold is free
# there, and faults the pages in again at the next upload: the same nginx
# (bound, hash bound, gateway) keeps up to 64 MB (README, "Performance";
# BENCH_MALLOC=default: glibc's own thresholds).
my $gw;
{
    local $ENV{GLIBC_TUNABLES} = $ENV{GLIBC_TUNABLES};
    $ENV{GLIBC_TUNABLES} = 'glibc.malloc.trim_threshold=67108864:'
        . 'glibc.malloc.mmap_threshold=67108864'
        unless ($ENV{BENCH_MALLOC} // '') eq 'default';
    $gw = SmartyTest::start_gateway(
        emu => $emu, token => $token,
        main => "load_module $hashbound;",
        http => "smarty_redis 127.0.0.1:$redis->{port};\n"
              . "smarty_audit_stream smarty:audit maxlen=100000;\n"
              . "smarty_audit_buffer 4m;\n"
              . "smarty_audit off;\n"
              . "smarty_metrics_collect off;\n",
        gateway => 'smarty_cache on;',
        body_buffer => '8m',
        listen => $ENV{BENCH_LISTEN},
        error_level => 'warn',
        server => $extra);
}

my $key = $gw->{keys}{demo};
my $hit_url = "$gw->{url}/api/v1/persons/recognize";

sub wrk {
    my ($url, $file, $ct, $k, $c, $vary) = @_;
    return Wrk::run(url => $url, file => $file, ct => $ct, key => $k,
                    conns => $c, secs => $secs, vary => $vary);
}

# a warm-up that stores the answers, then a hit: its answer
sub warm {
    my ($url, $file, $ct) = @_;
    my %h = (Authorization => "Bearer $key", 'Content-Type' => $ct);
    my $body = SmartyTest::slurp($file);
    my ($r, $cs);
    # the store goes behind the answer: a hit may wait for it (collapsed)
    SmartyTest::wait_until(sub {
        $r = SmartyTest::http('POST', $url, headers => \%h, body => $body);
        die "warm-up: $r->{status}\n" unless $r->{status} == 200;
        $cs = $r->{headers}{'cache-status'} // '';
        return $cs eq 'smarty-gateway; hit';
    }, 10) or die "not a hit: $cs\n";
    return $r;
}

for my $h (@HITS) {
    my $r = warm($hit_url, $h->{file}, $h->{ct});
    $h->{same} = $r->{content} eq $h->{answer};
}

if ($ENV{BENCH_PROFILE}) {
    require Profile;
    Profile::run($ENV{BENCH_PROFILE}, $gw->{ngx}, $secs, $conns, $key,
                 $hit_url, \@HITS, "$gw->{url}/hashbound");
    exit 0;
}

my $cores = `nproc`;
chomp $cores;
my @load = split / /, SmartyTest::slurp('/proc/loadavg');
printf "smarty-gateway benchmark: %ss per run, %d connections, 1 nginx "
    . "worker, wrk -t1, %s cores, load average %s %s %s\n\n", $secs, $conns,
    $cores, @load[0 .. 2];

# the stock bound answers a 4 MB upload before reading it, and wrk, still
# sending, waits: no bound there
printf "%-20s %7s %7s %7s %7s %6s %6s %6s %15s %15s\n", 'cache hit',
    'gw r/s', 'bound', 'read', 'hash', '/bound', '/read', '/hash',
    'gw p50 / p99', 'hash p50 / p99';
for my $h (@HITS) {
    my $g = wrk($hit_url, $h->{file}, $h->{ct}, $key, $conns);
    my $b = ($h->{n} // 1) > 1 ? undef
          : wrk("$gw->{url}/bound/$h->{name}", $h->{file}, $h->{ct}, undef,
                $conns);
    my $r = wrk("$gw->{url}/readbound/$h->{name}", $h->{file}, $h->{ct},
                undef, $conns);
    my $x = wrk("$gw->{url}/hashbound/$h->{name}", $h->{file}, $h->{ct},
                undef, $conns);
    printf "%-20s %7.0f %7s %7.0f %7.0f %6s %6.3f %6.3f %6.2f / %6.2f "
        . "%6.2f / %6.2f\n", $h->{label}, $g->{rps},
        $b ? sprintf('%.0f', $b->{rps}) : '-', $r->{rps}, $x->{rps},
        $b ? sprintf('%.3f', $g->{rps} / $b->{rps}) : '-',
        $g->{rps} / $r->{rps}, $g->{rps} / $x->{rps}, $g->{p50}, $g->{p99},
        $x->{p50}, $x->{p99};
}
for my $h (@HITS) {
    printf "  %s: a %d B body, a %d B answer, %s\n", $h->{label}, $h->{len},
        length $h->{answer}, $h->{same}
        ? "the hit's answer is the upstream's, byte for byte"
        : "the hit's answer differs from the upstream's bytes";
}
exit 0 if ($ENV{BENCH_ONLY} // '') eq 'hits';

print "\n";
printf "%-34s %12s %12s %10s %10s\n", 'miss path, 100 KB, 4 connections',
    'p50 ms', 'p99 ms', 'added p50', 'added p99';
{
    my ($file, $ct, $len) = body("miss", 100_001);
    my $q = "oauth_provider=mcs&oauth_token=$token";
    my $e = wrk("$emu->{url}/api/v1/persons/recognize?$q", $file, $ct,
                undef, 4);
    my $g = wrk("$gw->{url}/nocache/api/v1/persons/recognize", $file, $ct,
                $key, 4);
    my ($vfile, $vct) = body("vary", 100_001, 1, 'VARY0000000000000000');
    my $m = wrk("$gw->{url}/miss/api/v1/persons/recognize", $vfile, $vct,
                $key, 4, 1);
    printf "%-34s %12.2f %12.2f\n", "emulator directly", $e->{p50}, $e->{p99};
    printf "%-34s %12.2f %12.2f %10.2f %10.2f\n", "through the gateway",
        $g->{p50}, $g->{p99}, $g->{p50} - $e->{p50}, $g->{p99} - $e->{p99};
    printf "%-34s %12.2f %12.2f %10.2f %10.2f\n", "cache on, every one a miss",
        $m->{p50}, $m->{p99}, $m->{p50} - $e->{p50}, $m->{p99} - $e->{p99};
}

print "\n";
printf "%-34s %12s %12s %7s %8s %8s\n", 'quota cost, 100 KB, same run',
    'quotas r/s', 'none r/s', 'ratio', 'p50 ms', 'p99 ms';
{
    my $h = $HITS[0];
    warm("$gw->{url}/quota/api/v1/persons/recognize", $h->{file}, $h->{ct});
    my $hq = wrk("$gw->{url}/quota/api/v1/persons/recognize", $h->{file},
                 $h->{ct}, $key, $conns);
    my $hn = wrk($hit_url, $h->{file}, $h->{ct}, $key, $conns);
    printf "%-34s %12.0f %12.0f %7.2f %8.2f %8.2f\n",
        "hit path, $conns connections", $hq->{rps}, $hn->{rps},
        $hq->{rps} / $hn->{rps}, $hq->{p50}, $hq->{p99};

    my ($file, $ct, $len) = body("miss", 100_001);
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

print "\n";
printf "%-34s %12s %12s %7s %8s %8s\n", 'audit+metrics, 100 KB, same run',
    'on r/s', 'off r/s', 'ratio', 'p50 ms', 'p99 ms';
{
    # a record into the Redis stream and the counts in shared memory for
    # every request, against neither: the hit path, off and on alternated
    # in short rounds, so that what else the machine does falls on both;
    # the ratio is the median of the rounds'
    my ($file, $ct, $len) = body("hit-100000", 100_000);
    my $rounds = 6;
    my $rsecs = $secs / 2 < 2 ? 2 : int($secs / 2);
    my (@on, @off, @ratio, %cpu, %reqs);
    my $rcpu = sub {
        my $i = `redis-cli -p $redis->{port} INFO cpu`;
        my ($u) = $i =~ /used_cpu_user:([\d.]+)/;
        my ($y) = $i =~ /used_cpu_sys:([\d.]+)/;
        return ($u // 0) + ($y // 0);
    };
    # the nginx worker's CPU time (utime + stime, seconds), from /proc
    my $tick = `getconf CLK_TCK` || 100;
    my ($worker) = `pgrep -P $gw->{ngx}{pid}` =~ /(\d+)/;
    my $wcpu = sub {
        my @f = split ' ', (SmartyTest::slurp("/proc/$worker/stat")
                            =~ s/^.*\) //sr);
        return ($f[11] + $f[12]) / $tick;
    };
    my %wcpu;
    for my $round (1 .. $rounds) {
        my $w0 = $wcpu->();
        my $c0 = $rcpu->();
        my $f = Wrk::run(url => "$gw->{url}/audit-off/api/v1/persons/recognize",
                         file => $file, ct => $ct, key => $key,
                         conns => $conns, secs => $rsecs);
        my $c1 = $rcpu->();
        my $w1 = $wcpu->();
        my $o = Wrk::run(url => "$gw->{url}/audit-on/api/v1/persons/recognize",
                         file => $file, ct => $ct, key => $key,
                         conns => $conns, secs => $rsecs);
        my $c2 = $rcpu->();
        my $w2 = $wcpu->();
        $wcpu{off} += $w1 - $w0;
        $wcpu{on} += $w2 - $w1;
        $cpu{off} += $c1 - $c0;
        $cpu{on} += $c2 - $c1;
        $reqs{off} += $f->{requests};
        $reqs{on} += $o->{requests};
        push @off, $f;
        push @on, $o;
        push @ratio, $o->{rps} / $f->{rps};
    }
    my @sorted = sort { $a <=> $b } @ratio;
    my $median = ($sorted[$rounds / 2 - 1] + $sorted[$rounds / 2]) / 2;
    my ($ron, $roff) = (0, 0);
    $ron += $_->{rps} for @on;
    $roff += $_->{rps} for @off;
    printf "%-34s %12.0f %12.0f %7.2f %8.2f %8.2f\n",
        "hit path, $conns connections", $ron / $rounds, $roff / $rounds,
        $median, $on[-1]{p50}, $on[-1]{p99};
    printf "%-34s %s\n", "  each of $rounds rounds of ${rsecs}s",
        join(' ', map { sprintf '%.2f', $_ } @ratio);
    printf "%-34s on %.1f, off %.1f\n", '  nginx CPU per request, us',
        1e6 * $wcpu{on} / ($reqs{on} || 1), 1e6 * $wcpu{off} / ($reqs{off} || 1);
    printf "%-34s on %.1f, off %.1f\n", '  Redis CPU per request, us',
        1e6 * $cpu{on} / ($reqs{on} || 1), 1e6 * $cpu{off} / ($reqs{off} || 1);
    my $xlen = `redis-cli -p $redis->{port} XLEN smarty:audit`;
    chomp $xlen;
    printf "%-34s %s\n", '  records in the stream', $xlen;
}
