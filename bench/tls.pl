# Redis over TLS through nginx's stream proxy (docs/redis.md, "TLS";
# bench/README.md): the cache hit path through a gateway that talks to
# Redis's plaintext port and through one whose smarty_redis is a loopback
# stream listener with proxy_ssl to the same Redis's TLS port, in the same
# run, alternated.  Each nginx has one worker, which runs the gateway and
# its own stream proxy.
use strict;
use warnings;
use SmartyTest;
use Wrk;

my ($secs, $conns, $rounds) = @ARGV;
$rounds ||= 3;

my $STREAM = '/usr/lib/nginx/modules/ngx_stream_module.so';
die "nginx's stream module is missing (libnginx-mod-stream)\n"
    unless -f $STREAM;

my $dir = SmartyTest::tempdir() . '/bench-tls';
mkdir $dir;
SmartyTest::make_certs($dir, cas => [ 'ca' ],
                       certs => [ [ 'server', 'redis.test' ] ]);

# one Redis, a plaintext port and a TLS port
my $tport = SmartyTest::free_port();
my $redis = SmartyTest::start_redis(args => [
    '--tls-port', $tport, '--tls-cert-file', "$dir/server.crt",
    '--tls-key-file', "$dir/server.key", '--tls-ca-cert-file', "$dir/ca.crt",
    '--tls-auth-clients', 'no' ]);

my $sport = SmartyTest::free_port();
my $stream = <<"EOF";
load_module $STREAM;
stream {
    server {
        listen 127.0.0.1:$sport;
        proxy_pass 127.0.0.1:$tport;
        proxy_ssl on;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate $dir/ca.crt;
        proxy_ssl_name redis.test;
        proxy_ssl_server_name on;
        proxy_connect_timeout 1s;
    }
}
EOF

my %common = (emu_args => [ '--per-image-ms', '0', '--quiet' ],
              gateway => 'smarty_cache on;', body_buffer => '2m',
              error_level => 'warn');
my $P = SmartyTest::start_gateway(%common,
    http => "smarty_redis 127.0.0.1:$redis->{port};\n");
my $T = SmartyTest::start_gateway(%common, emu => $P->{emu},
    token => $P->{token}, main => $stream,
    clients => [ map { { %$_, key => $P->{keys}{ $_->{name} } } }
                 @{ $P->{clients} } ],
    http => "smarty_redis 127.0.0.1:$sport;\n");
my $key = $P->{keys}{demo};

my $img = SmartyTest::alone_photo('bench', pad => 100_000, seed => 100_000);
my ($body, $ct) = SmartyTest::api_body(
    meta => { space => '1', images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', $img ] ]);
SmartyTest::spew("$dir/hit", $body);

for my $g ($P, $T) {
    my $cs = '';
    SmartyTest::wait_until(sub {
        my $r = SmartyTest::http('POST', "$g->{url}/api/v1/persons/recognize",
            headers => { Authorization => "Bearer $key",
                         'Content-Type' => $ct }, body => $body);
        die "warm-up: $r->{status}\n" unless $r->{status} == 200;
        $cs = $r->{headers}{'cache-status'} // '';
        return $cs =~ /hit/;
    }, 10) or die "not a hit: $cs\n";
}

my $cores = `nproc`;
chomp $cores;
my @load = split / /, SmartyTest::slurp('/proc/loadavg');
printf "smarty-gateway, Redis over TLS: %ss per run, %d connections, "
    . "%d rounds, 1 nginx worker each, wrk -t1, %s cores, load average "
    . "%s\n\n", $secs, $conns, $rounds, $cores, $load[0];

my (%rps, %p50, %p99);
for my $round (1 .. $rounds) {
    for my $t ([ 'plaintext', $P ], [ 'tls', $T ]) {
        my ($name, $g) = @$t;
        my $w = Wrk::run(url => "$g->{url}/api/v1/persons/recognize",
                         file => "$dir/hit", ct => $ct, key => $key,
                         conns => $conns, secs => $secs);
        push @{ $rps{$name} }, $w->{rps};
        push @{ $p50{$name} }, $w->{p50};
        push @{ $p99{$name} }, $w->{p99};
    }
}

sub mean { my $s = 0; $s += $_ for @_; return $s / @_ }

printf "%-42s %10s %10s %10s\n", 'cache hit, 100 KB image', 'r/s',
    'p50 ms', 'p99 ms';
for my $name ('plaintext', 'tls') {
    printf "%-42s %10.0f %10.2f %10.2f\n",
        ($name eq 'tls' ? 'Redis through the stream proxy, TLS'
                        : 'Redis directly, plaintext') . " ($rounds)",
        mean(@{ $rps{$name} }), mean(@{ $p50{$name} }),
        mean(@{ $p99{$name} });
}
printf "%-42s %10.3f   (rounds: %s)\n", 'ratio TLS / plaintext',
    mean(@{ $rps{tls} }) / mean(@{ $rps{plaintext} }),
    join(' ', map { sprintf '%.2f', $rps{tls}[$_] / $rps{plaintext}[$_] }
              0 .. $rounds - 1);
