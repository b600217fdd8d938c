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
like($out, qr/GLIBC_TUNABLES: glibc\.malloc\.trim_threshold=67108864:/,
     'the gateway keeps glibc\'s heap (README, "Performance")');

# the cluster profile: six nodes, the job that joins them, a gateway on them
my $prof = `docker-compose -f docker-compose.yml --profile cluster config 2>&1`;
is($?, 0, 'docker-compose config accepts the cluster profile') or diag $prof;
like($prof, qr/^\s+$_:\s*$/m, "cluster profile: service $_")
    for (map { "redis-node-$_" } 1 .. 6), 'redis-cluster-init',
        'gateway-cluster';
like($prof, qr/--cluster-replicas 1 --cluster-yes/,
     'redis-cluster-init makes 3 masters and 3 replicas');
{
    my $yml = SmartyTest::slurp('docker-compose.yml');
    my $n = () = $yml =~ /^    profiles: \["cluster"\]$/mg;
    is($n, 8, 'the 8 cluster services start only with the profile');
}

# docker/nginx-cluster.conf is docker/nginx.conf but for the Redis line
{
    my @a = split /\n/, SmartyTest::slurp('docker/nginx.conf');
    my @b = split /\n/, SmartyTest::slurp('docker/nginx-cluster.conf');
    is(scalar @b, scalar @a, 'nginx-cluster.conf: as many lines as nginx.conf');
    my @diff = grep { $a[$_] ne ($b[$_] // '') && $_ > 2 } 0 .. $#a;
    is_deeply([ map { $b[$_] } @diff ],
              [ '    smarty_redis_cluster redis-node-1:6379 redis-node-2:6379 '
                . 'redis-node-3:6379;' ],
              'nginx-cluster.conf differs from nginx.conf in the Redis line '
              . 'only');
}

my $df = SmartyTest::slurp('docker/Dockerfile');
for my $target ($out =~ /target:\s*(\S+)/g) {
    like($df, qr/^FROM \S+ AS \Q$target\E$/m, "Dockerfile has the target $target");
}

# what the gateway's image must hold for docker/nginx.conf: the dashboard
# where the alias points, Chart.js from the package the Dockerfile installs
{
    my $dc = SmartyTest::slurp('docker/nginx.conf');
    like($dc, qr/^\s+smarty_$_;$/m, "docker/nginx.conf: smarty_$_")
        for qw(metrics audit_view quota_view);
    like($dc, qr/^\s+smarty_audit_stream \S+/m,
         'docker/nginx.conf: the audit stream in Redis');
    my ($dash) = $dc =~ m{location /dashboard/ \{\s+alias (\S+);};
    ok($dash && $df =~ m{^COPY dashboard/ \Q$dash\E$}m,
       'the image has the dashboard where docker/nginx.conf looks for it');
    my ($chart) = $dc =~ m{location = /dashboard/chart\.js \{\s+alias (\S+);};
    like($df, qr/^\s+.*\blibjs-chart\.js\b/m,
         'the image installs libjs-chart.js');
    my $owner = `dpkg -S $chart 2>/dev/null`;
    like($owner, qr/^libjs-chart\.js: /, "$chart comes from libjs-chart.js");
    # the audit record's format is the documented one
    my ($fmt) = $dc =~ /(log_format smarty_audit .*?';)/s;
    my ($ref) = SmartyTest::slurp('conf/nginx.conf.in')
        =~ /(log_format smarty_audit .*?';)/s;
    ok($fmt && $fmt eq $ref,
       'docker/nginx.conf: the audit format of conf/nginx.conf.in');
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

# and the cluster's, its seeds here unreachable addresses
$conf =~ s{smarty_redis 127.0.0.1:9;}{smarty_redis_cluster 127.0.0.1:9 127.0.0.1:10;}
    or fail('redis line');
SmartyTest::spew("$dir/nginx.conf", $conf);
{
    local %ENV = (%ENV, %{ SmartyTest::nginx_env() });
    $out = `nginx -p $dir -c $dir/nginx.conf -t 2>&1`;
}
is($?, 0, 'nginx -t accepts the cluster form') or diag $out;

done_testing;
