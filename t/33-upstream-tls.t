# The upstream over TLS, its certificate verified as the example
# configuration does it (proxy_ssl_verify, a trusted CA, the server name):
# the emulator behind a TLS terminator with a certificate of a CA this test
# makes.  The right CA: 200.  Another CA: 502 upstream_unavailable, and the
# gateway's token never leaves it (nothing reaches the terminator's HTTP
# side, nor the emulator).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);

my $dir = SmartyTest::tempdir() . '/tls';
mkdir $dir;

# a CA, a server certificate for smarty.test signed by it, and another CA
SmartyTest::make_certs($dir, cas => [ 'ca', 'wrong' ],
                       certs => [ [ 'server', 'smarty.test' ] ]);

my $emu = SmartyTest::start_emulator(token => 'tls-' . SmartyTest::random_hex(16),
                                     args => [ '--per-image-ms', '0' ]);
my $token = SmartyTest::slurp("$emu->{dir}/token");

# the TLS terminator in front of the emulator
my $tls = SmartyTest::start_nginx(http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%% ssl;
        ssl_certificate $dir/server.crt;
        ssl_certificate_key $dir/server.key;
        access_log %%DIR%%/terminator.log;
        location / {
            proxy_pass http://127.0.0.1:$emu->{port};
        }
    }
EOF

sub upstream {
    my ($name, $ca) = @_;
    return <<"EOF";
        location /$name/api/v1/ {
            smarty_gateway on;
            smarty_api_prefix /$name/api/v1/;
            smarty_upstream /_$name/;
            smarty_upstream_token_file %%TOKEN_FILE%%;
            smarty_clients_file %%CLIENTS_FILE%%;
        }
        location /_$name/ {
            internal;
            proxy_pass https://smarty_tls_$name/api/v1/;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $ca;
            proxy_ssl_verify_depth 2;
            proxy_ssl_server_name on;
            proxy_ssl_name smarty.test;
            proxy_set_header Host smarty.test;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            subrequest_output_buffer_size 1m;
        }
EOF
}

my $gw = SmartyTest::start_gateway(emu => $emu, token => $token,
    # one upstream block each: nginx resumes TLS sessions per upstream
    # server, and a resumed session is not verified again
    http => join('', map { "    upstream smarty_tls_$_ { server 127.0.0.1:$tls->{port}; }\n" }
                         qw(right wrong system)),
    server => upstream('right', "$dir/ca.crt")
            . upstream('wrong', "$dir/wrong.crt")
            . upstream('system', '/etc/ssl/certs/ca-certificates.crt'));
my $key = $gw->{keys}{demo};
my $img = SmartyTest::alone_photo('rachel');

sub rec {
    my ($name) = @_;
    return SmartyTest::call("$gw->{url}/$name", 'persons/recognize', key => $key,
        meta => { space => '1', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ]);
}

my $r = rec('right');
is($r->{status}, 200, 'the upstream\'s certificate from the trusted CA: 200')
    or diag $r->{content};
is(SmartyTest::objects_by_name($r)->{file_0}{persons}[0]{tag}, 'undefined',
   'the emulator answered through TLS');

my $terminated = () = SmartyTest::slurp("$tls->{dir}/terminator.log") =~ /\n/g;
my $calls = SmartyTest::emulator_stats($emu)->{requests_total};

for my $name (qw(wrong system)) {
    $r = rec($name);
    is_error($r, 502, 'upstream_unavailable',
             "a certificate no trusted CA signed ($name CA): 502");
}

is(() = SmartyTest::slurp("$tls->{dir}/terminator.log") =~ /\n/g, $terminated,
   'no request reached the terminator\'s HTTP side: the token never left');
is(SmartyTest::emulator_stats($emu)->{requests_total}, $calls,
   'nor the emulator');
like(SmartyTest::error_log($gw->{ngx}), qr/upstream SSL certificate verify error/,
     'the error log says why');
is(index(SmartyTest::error_log($gw->{ngx}), $token), -1,
   'and shows no token');

done_testing;
