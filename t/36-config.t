# Configuration mistakes are reported by nginx -t with a clear message.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;

my $dir = SmartyTest::tempdir() . '/conf';
mkdir $dir;
SmartyTest::spew("$dir/token", "tok\n");
SmartyTest::spew("$dir/empty-token", "\n");
SmartyTest::clients_file("$dir/clients.json", { name => 'a', key => 'k' });

sub conf {
    my (%o) = @_;
    my $loc = $o{loc} // '';
    return <<"EOF";
    server {
        listen 127.0.0.1:%%PORT%%;
        location /api/v1/ {
$loc
        }
        location /_up/ { internal; proxy_pass http://127.0.0.1:9/; }
    }
EOF
}

my $good = "smarty_gateway on; smarty_upstream /_up/;"
    . " smarty_upstream_token_file $dir/token; smarty_clients_file $dir/clients.json;";

sub nginx_t {
    my ($loc, $like, $name) = @_;
    my ($rc, $out) = SmartyTest::nginx_test(http => conf(loc => $loc));
    if (defined $like) {
        isnt($rc, 0, "$name: nginx -t fails");
        like($out, $like, "$name: says why");
    } else {
        is($rc, 0, "$name: nginx -t passes") or diag $out;
    }
}

nginx_t($good, undef, 'a complete configuration');

my $clients = sub {
    my ($name, $json, $like) = @_;
    SmartyTest::spew("$dir/c.json", $json);
    (my $loc = $good) =~ s{$dir/clients.json}{$dir/c.json};
    nginx_t($loc, $like, $name);
};

$clients->('clients file not JSON', '{"clients": [', qr/clients file .*c\.json/);
$clients->('no clients array', '{"x": []}', qr/no "clients" array/);
$clients->('a plain key', '{"clients":[{"name":"a","key":"k","key_sha256":"'
    . ('0' x 64) . '","spaces":"*","methods":"*"}]}', qr/keys are never stored/);
$clients->('a short hash', '{"clients":[{"name":"a","key_sha256":"abc","spaces":"*","methods":"*"}]}',
    qr/key_sha256 must be 64 hex digits/);
$clients->('a bad space', '{"clients":[{"name":"a","key_sha256":"' . ('0' x 64)
    . '","spaces":["11"],"methods":"*"}]}', qr/spaces\[0\] must be/);
$clients->('an unknown method', '{"clients":[{"name":"a","key_sha256":"' . ('0' x 64)
    . '","spaces":"*","methods":["persons/fly"]}]}', qr/methods\[0\] is not an API method/);
$clients->('a name twice', '{"clients":[{"name":"a","key_sha256":"' . ('0' x 64)
    . '","spaces":"*","methods":"*"},{"name":"a","key_sha256":"' . ('1' x 64)
    . '","spaces":"*","methods":"*"}]}', qr/listed twice/);
$clients->('a key twice', '{"clients":[{"name":"a","key_sha256":"' . ('0' x 64)
    . '","spaces":"*","methods":"*"},{"name":"b","key_sha256":"' . ('0' x 64)
    . '","spaces":"*","methods":"*"}]}', qr/have the same key/);

nginx_t("smarty_gateway on; smarty_upstream_token_file $dir/token;"
        . " smarty_clients_file $dir/clients.json;",
        qr/needs "smarty_upstream"/, 'no smarty_upstream');
nginx_t("smarty_gateway on; smarty_upstream /_up/; smarty_clients_file $dir/clients.json;",
        qr/needs "smarty_upstream_token_file"/, 'no token file');
nginx_t("smarty_gateway on; smarty_upstream /_up/; smarty_upstream_token_file $dir/token;",
        qr/needs "smarty_clients_file"/, 'no clients file');
nginx_t("smarty_gateway on; smarty_upstream /_up/; smarty_upstream_token_file $dir/nope;"
        . " smarty_clients_file $dir/clients.json;",
        qr/token file .*nope.* cannot be opened/, 'a missing token file');
nginx_t("smarty_gateway on; smarty_upstream /_up/; smarty_upstream_token_file $dir/empty-token;"
        . " smarty_clients_file $dir/clients.json;",
        qr/token file .* is empty/, 'an empty token file');
nginx_t("$good smarty_max_images 0;", qr/must be between 1 and 10000/, 'smarty_max_images 0');
nginx_t("$good smarty_max_image_size 4x;", qr/invalid value/, 'a bad size');
nginx_t("smarty_gateway on; smarty_upstream _up; smarty_upstream_token_file $dir/token;"
        . " smarty_clients_file $dir/clients.json;",
        qr/must be a location prefix/, 'smarty_upstream not a prefix');
nginx_t("smarty_error no_such_code;", qr/unknown smarty error code/, 'an unknown smarty_error');

my ($rc, $out) = SmartyTest::nginx_test(http => conf(loc => $good));
unlike($out, qr/tok\b/, 'nginx -t does not print the token');

done_testing;
