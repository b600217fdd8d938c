# The Debian package's example site (conf/debian/sites-available/
# smarty-gateway, installed as /etc/nginx/sites-available/smarty-gateway) and
# clients file are kept working by this test, against the module as built:
# the site is conf/nginx.conf.in's http{} content line for line (Debian's
# paths, the real API over TLS, certificates verified), nginx -t accepts it
# as shipped, and a copy pointed at the emulator answers.  Nothing outside
# a temp directory is touched; `make deb-test` does the same with the
# installed packages.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;

my $site_file = 'conf/debian/sites-available/smarty-gateway';
my $site = SmartyTest::slurp($site_file);
ok(length $site, "$site_file exists");

# The site is a copy of the example `make run` uses: conf/nginx.conf.in's
# http{} content, the same directives in the same order, but for Debian's
# paths, the real API over TLS (the lines commented out there), and the
# site's own logs.  A change to one is a change to the other.
sub directives {
    my ($text) = @_;
    my @d;
    for (split /\n/, $text) {
        s/#.*//;
        s/^\s+|\s+$//g;
        push @d, $_ if length;
    }
    return @d;
}
my $example = SmartyTest::slurp('conf/nginx.conf.in');
# the real upstream's lines, commented out there
$example =~ s{^\s*#\s*((?:server smarty\.mail\.ru|proxy_pass https|proxy_ssl_|proxy_set_header Host)[^#]*;)\s*$}{$1}mg;
my @example = directives($example);
my @main;
push @main, shift @example while @example && $example[0] ne 'http {';
shift @example;                         # http {
is(pop @example, '}', 'conf/nginx.conf.in ends with http{}\'s brace');
@example = grep {
    !/^(client_body|proxy|fastcgi|uwsgi|scgi)_temp_path \@RUN\@/
    && !/^access_log \@RUN\@/
    && $_ ne 'server 127.0.0.1:@EMULATOR_PORT@;'
    && $_ ne 'proxy_pass http://smarty_api/api/v1/;'
} @example;
for (@example) {
    s{\@RUN\@/(clients\.json|upstream\.token|oauth-client-id|oauth-client-secret|oauth-issuer\.key)}{/etc/smarty/$1}g;
    s{^smarty_upstream_oauth http://127\.0\.0\.1:\@EMULATOR_PORT\@/}{smarty_upstream_oauth https://mcs.mail.ru/};
    s{\@REDIS_PORT\@}{6379}g;
    s{\@GATEWAY_PORT\@}{8080}g;
    s{\@DASHBOARD\@}{/usr/share/smarty-gateway/dashboard}g;
}
my @site = grep { !m{^(access|error)_log /var/log/nginx/smarty-gateway\.} }
           directives($site);
is_deeply(\@site, \@example,
          "$site_file is conf/nginx.conf.in with Debian's paths and the real "
          . 'API: update the one with the other')
    or do {
        my $d = SmartyTest::tempdir();
        SmartyTest::spew("$d/example", join("\n", @example, ''));
        SmartyTest::spew("$d/site", join("\n", @site, ''));
        diag `diff -u $d/example $d/site`;
    };

# the upstream: the real one, over TLS, verified
for my $line ('server smarty.mail.ru:443;',
              'proxy_pass https://smarty_api/api/v1/;',
              'proxy_ssl_verify on;',
              'proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;',
              'proxy_ssl_server_name on;',
              'proxy_ssl_name smarty.mail.ru;') {
    like($site, qr/^\s*\Q$line\E$/m, "the site says: $line");
}
unlike($site, qr/^\s*(load_module|events|http)\b/m,
       'a site: no main-level directives (the stock nginx.conf has them)');

my $dir = SmartyTest::tempdir() . '/debian-site';
mkdir $dir;
mkdir "$dir/$_" for qw(etc logs);
SmartyTest::spew("$dir/etc/oauth-client-id", "gw-debian\n");
SmartyTest::spew("$dir/etc/oauth-client-secret",
                 'secret-' . SmartyTest::random_hex(16) . "\n");
chmod 0640, "$dir/etc/oauth-client-id", "$dir/etc/oauth-client-secret";
# as the package's postinst makes it
SmartyTest::spew("$dir/etc/oauth-issuer.key", SmartyTest::random_hex(32) . "\n");
chmod 0640, "$dir/etc/oauth-issuer.key";
SmartyTest::spew("$dir/etc/clients.json",
                 SmartyTest::slurp('conf/debian/clients.json'));

sub render {
    my ($name, @args) = @_;
    my $out = `scripts/render-site.pl --etc $dir/etc --logs $dir/logs @args $site_file 2>&1`;
    is($?, 0, "render-site.pl $name") or diag $out;
    SmartyTest::spew("$dir/$name", $out);
    return "$dir/$name";
}

# as shipped, inside http{} as the stock nginx.conf includes it; only the
# upstream's name is replaced (nginx resolves it when it reads the
# configuration: this machine may have no DNS)
SKIP: {
    skip 'no /etc/ssl/certs/ca-certificates.crt (ca-certificates)', 2
        unless -f '/etc/ssl/certs/ca-certificates.crt';
    my $shipped = render('site-shipped', '--upstream', '127.0.0.1:443');
    my ($rc, $out) = SmartyTest::nginx_test(
        dir => "$dir/t", http => "include $shipped;", error_level => 'notice');
    is($rc, 0, 'nginx -t accepts the site and the example clients file')
        or diag $out;
    unlike($out, qr/\[warn\]/, 'without a warning') or diag $out;
}

# a copy in front of the emulator answers the walkthrough's first step
my $key = 'sgw_debian_' . SmartyTest::random_hex(16);
SmartyTest::clients_file("$dir/etc/clients.json", { name => 'demo', key => $key });
my $emu = SmartyTest::start_emulator(args => [
    '--client-id-file', "$dir/etc/oauth-client-id",
    '--client-secret-file', "$dir/etc/oauth-client-secret" ]);
my $port = SmartyTest::free_port();
my $copy = render('site-emulator', '--listen', "127.0.0.1:$port",
                  '--upstream', "127.0.0.1:$emu->{port}", '--plain-http',
                  '--token-url', "$emu->{url}/auth/oauth/v1/token",
                  '--redis', '127.0.0.1:' . SmartyTest::free_port());
my $ngx = SmartyTest::start_nginx(dir => "$dir/n", port => $port,
                                  http => "include $copy;");
my $r = SmartyTest::call($ngx->{url}, 'persons/recognize', key => $key,
    meta => { space => '1', create_new => JSON::PP::false,
              images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', SmartyTest::group_photo() ] ]);
is($r->{status}, 200, 'recognize through the site answers 200') or diag $r->{content};
is(SmartyTest::emulator_stats($emu)->{tokens}{issued}, 1,
   'with a token of the OAuth endpoint');
is_deeply(SmartyTest::tags(SmartyTest::objects_by_name($r)->{file_0}),
          [ ('undefined') x 6 ], 'six undefined faces');
like(SmartyTest::slurp("$dir/logs/smarty-gateway.access.log"),
     qr/client=demo method=persons\/recognize/, 'the site logs in its format');

# the site's token endpoint: a token for the client's name and key
$r = SmartyTest::http('POST', "$ngx->{url}/auth/oauth/v1/token",
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
    body => "grant_type=client_credentials&client_id=demo&client_secret=$key");
is($r->{status}, 200, 'the site issues a token') or diag $r->{content};
my $at = $r->{json}{access_token} // '';
$r = SmartyTest::call($ngx->{url}, 'persons/recognize', key => $at,
    meta => { space => '1', images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', SmartyTest::group_photo() ] ]);
is($r->{status}, 200, 'a recognize with the token') or diag $r->{content};

$r = SmartyTest::call($ngx->{url}, 'persons/recognize', key => 'sgw_nobody',
    meta => { space => '1' }, images => [ [ 'file_0', SmartyTest::group_photo() ] ]);
SmartyTest::is_error($r, 401, 'unknown_key', 'an unknown key is refused');

done_testing;
