# Redis over TLS (docs/redis.md, "TLS"): hiredis 0.14 speaks no TLS, so the
# gateway reaches a TLS-only Redis through nginx's own stream proxy in the
# same nginx (Debian's libnginx-mod-stream): a loopback listener whose
# proxy_ssl verifies Redis's certificate and presents a client
# certificate.  The cache works behind it; Redis has no plaintext port; a
# certificate of another CA is refused, the API goes on without the cache,
# and no password reaches a log.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use SmartyTopology;

my $STREAM = '/usr/lib/nginx/modules/ngx_stream_module.so';
plan skip_all => "nginx's stream module is needed (libnginx-mod-stream)"
    unless -f $STREAM;
plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my $dir = SmartyTest::tempdir() . '/redis-tls';
mkdir $dir;

# a CA, Redis's certificate (redis.test) and the gateway's client
# certificate signed by it, and another CA
SmartyTest::make_certs($dir, cas => [ 'ca', 'wrong' ],
                       certs => [ [ 'server', 'redis.test' ],
                                  [ 'client', 'smarty-gateway' ] ]);
my $pw = 'tls-' . SmartyTest::random_hex(8);
SmartyTest::spew("$dir/password", "$pw\n");
chmod 0600, "$dir/password", "$dir/client.key";

# Redis on TLS only, client certificates required
my $rport = SmartyTest::free_port();
my $redis = SmartyTest::start_redis(port => $rport, args => [
    '--port', '0', '--tls-port', $rport,
    '--tls-cert-file', "$dir/server.crt", '--tls-key-file', "$dir/server.key",
    '--tls-ca-cert-file', "$dir/ca.crt", '--tls-auth-clients', 'yes',
    '--requirepass', $pw ]);

sub rcli {
    my (@args) = @_;
    local $ENV{REDISCLI_AUTH} = $pw;
    my $out = `redis-cli -p $rport --tls --cacert $dir/ca.crt --cert $dir/client.crt --key $dir/client.key --sni redis.test @args 2>&1`;
    $out =~ s/\s+$//;
    return $out;
}

is(rcli('PING'), 'PONG', 'Redis answers over TLS');
{
    local $ENV{REDISCLI_AUTH} = $pw;
    unlike(`redis-cli -p $rport PING 2>&1`, qr/^PONG/,
           '... and nothing in plaintext');
}

# a gateway whose smarty_redis is the stream proxy's loopback listener
sub gateway {
    my ($ca, %o) = @_;
    my $sport = SmartyTest::free_port();
    my $main = <<"EOF";
load_module $STREAM;
stream {
    server {
        listen 127.0.0.1:$sport;
        proxy_pass 127.0.0.1:$rport;
        proxy_ssl on;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate $dir/$ca.crt;
        proxy_ssl_name redis.test;
        proxy_ssl_server_name on;
        proxy_ssl_certificate $dir/client.crt;
        proxy_ssl_certificate_key $dir/client.key;
        proxy_ssl_session_reuse on;
        proxy_connect_timeout 1s;
    }
}
EOF
    return SmartyTest::start_gateway(%o, main => $main,
        error_level => 'notice',
        http => "    smarty_redis 127.0.0.1:$sport;\n"
              . "    smarty_redis_password_file $dir/password;\n"
              . "    smarty_redis_timeout 500ms;\n"
              . "    smarty_redis_breaker failures=3 cooldown=1s;\n",
        gateway => 'smarty_cache on; smarty_cache_wait 2s;',
        emu_args => [ '--per-image-ms', '0' ]);
}

my $gw = gateway('ca');
my $key = $gw->{keys}{demo};
my $photo = SmartyTest::alone_photo('tls');

my $r;
ok(SmartyTest::wait_until(sub {
       $r = SmartyTopology::rec($gw->{url}, $key, 1, [ [ 'f', $photo ] ]);
       SmartyTopology::cs($r) =~ /stored/
   }, 10), 'a miss is stored in Redis, through TLS')
    or diag(SmartyTopology::cs($r), SmartyTest::error_log($gw->{ngx}));
SmartyTopology::is_hit(
    SmartyTopology::cs(SmartyTopology::rec($gw->{url}, $key, 1,
                                           [ [ 'f', $photo ] ])),
    'the same image: a hit');
like(rcli('--scan', '--pattern', "'smarty:{s1}:e2:*'"), qr/^smarty:\{s1\}:e2:/m,
     'the entry is in the TLS-only Redis');
cmp_ok(scalar(grep { !/cmd=client/ } split /\n/, rcli('CLIENT', 'LIST')),
       '>=', 1, 'the gateway holds a connection, over TLS like every one');

# a set invalidates, through the same path
$r = SmartyTest::call($gw->{url}, 'persons/set', key => $key,
    meta => { space => '1', images => [ { name => 'f', person_id => 3 } ] },
    images => [ [ 'f', $photo ] ]);
is($r->{status}, 200, 'a set: 200');
unlike(SmartyTopology::cs(SmartyTopology::rec($gw->{url}, $key, 1,
                                              [ [ 'f', $photo ] ])),
       qr/hit/, 'after it: no stale hit');

# Redis's certificate from another CA: the proxy refuses it, the gateway
# goes on without the cache, and says why
my $bad = gateway('wrong', emu => $gw->{emu}, token => $gw->{token});
for my $i (1 .. 2) {
    $r = SmartyTopology::rec($bad->{url}, $bad->{keys}{demo}, 1,
                             [ [ 'f', $photo ] ]);
    is($r->{status}, 200, "another CA, request $i: 200 all the same");
    unlike(SmartyTopology::cs($r), qr/hit|stored/, '... without the cache');
}
ok(SmartyTest::wait_until(sub {
       SmartyTest::error_log($bad->{ngx}) =~ /certificate verify|verify error/i
   }, 10), 'the error log names the refused certificate');

for my $g ($gw, $bad) {
    unlike(SmartyTest::error_log($g->{ngx}), qr/\Q$pw\E/,
           'no password in the error log');
}

done_testing;
