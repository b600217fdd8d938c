# docker-compose.yml and its gateway configuration are kept correct by
# reading: no Docker engine runs here, but docker-compose validates the file
# and nginx -t validates the gateway's nginx.conf.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;

my $out = `docker-compose -f docker-compose.yml config 2>&1`;
is($?, 0, 'docker-compose config accepts docker-compose.yml') or diag $out;
like($out, qr/^\s+$_:\s*$/m, "service $_") for qw(redis emulator gateway);

my $df = SmartyTest::slurp('docker/Dockerfile');
for my $target ($out =~ /target:\s*(\S+)/g) {
    like($df, qr/^FROM \S+ AS \Q$target\E$/m, "Dockerfile has the target $target");
}

# docker/nginx.conf with this machine's paths and ports
my $dir = SmartyTest::tempdir() . '/compose';
mkdir $dir;
SmartyTest::spew("$dir/oauth-client-id", "id\n");
SmartyTest::spew("$dir/oauth-client-secret", "secret\n");
chmod 0600, "$dir/oauth-client-id", "$dir/oauth-client-secret";
SmartyTest::clients_file("$dir/clients.json", { name => 'a', key => 'k' });
my $conf = SmartyTest::slurp('docker/nginx.conf');
my $module = SmartyTest::module_path();
$conf =~ s{/usr/lib/nginx/modules/ngx_http_smarty_module.so}{$module} or fail('module path');
$conf =~ s{/run/secrets/oauth_client_(id|secret)}{$dir/oauth-client-$1}g
    or fail('OAuth client paths');
$conf =~ s{/run/secrets/clients}{$dir/clients.json}g or fail('clients path');
SmartyTest::spew("$dir/oauth-issuer.key", SmartyTest::random_hex(32) . "\n");
$conf =~ s{/run/secrets/oauth_issuer_key}{$dir/oauth-issuer.key} or fail('OAuth key path');
$conf =~ s{server emulator:8090;}{server 127.0.0.1:9;} or fail('emulator address');
$conf =~ s{smarty_redis redis:6379;}{smarty_redis 127.0.0.1:9;} or fail('redis address');
$conf =~ s{/run/nginx.pid}{$dir/nginx.pid};
$conf =~ s{/dev/stdout}{$dir/access.log};
$conf =~ s{error_log stderr}{error_log $dir/error.log};
my $port = SmartyTest::free_port();
$conf =~ s{listen 8080;}{listen 127.0.0.1:$port;};
my $temps = "client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;";
$conf =~ s{^http \x7b}{http \x7b\n    $temps}m;
SmartyTest::spew("$dir/nginx.conf", $conf);
{
    local %ENV = (%ENV, %{ SmartyTest::nginx_env() });
    $out = `nginx -p $dir -c $dir/nginx.conf -t 2>&1`;
}
is($?, 0, 'nginx -t accepts docker/nginx.conf') or diag $out;

done_testing;
