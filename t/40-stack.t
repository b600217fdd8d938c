# `make run` / `make stop` (scripts/stack.sh) as the README gives them: the
# stack comes up on loopback, the printed examples work, a second start does
# not start a second copy, stop stops everything.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use JSON::PP;

# the stack runs the normal build as `make run` does
plan skip_all => 'make run is tested with the normal build'
    if $ENV{SMARTY_ASAN} || $ENV{SMARTY_VALGRIND};

my $run = SmartyTest::tempdir() . '/run';
my %port = (gw => SmartyTest::free_port(), emu => SmartyTest::free_port(),
            redis => SmartyTest::free_port());
local $ENV{SMARTY_RUN_DIR} = $run;
local $ENV{SMARTY_GATEWAY_PORT} = $port{gw};
local $ENV{SMARTY_EMULATOR_PORT} = $port{emu};
local $ENV{SMARTY_REDIS_PORT} = $port{redis};
# tokens that live 2 s: the examples keep working as the gateway renews them
local $ENV{SMARTY_EMULATOR_ARGS} = '--per-image-ms 0 --token-lifetime 2';
local $ENV{SMARTY_BUILD} = $SmartyTest::BUILD;

my $out = `scripts/stack.sh start 2>&1`;
is($?, 0, 'stack.sh start') or diag $out;
END { system("scripts/stack.sh stop >/dev/null 2>&1") if $run }

ok(SmartyTest::port_open($port{$_}), "$_ listens") for sort keys %port;
for my $f (qw(oauth-client-id oauth-client-secret)) {
    ok(-s "$run/$f", "$f was generated");
    is((stat "$run/$f")[2] & 077, 0, "$f: readable by its owner only");
}
ok(-s "$run/demo.key", 'a demo key was generated');
my $key = SmartyTest::slurp("$run/demo.key");
chomp $key;
unlike(SmartyTest::slurp("$run/clients.json"), qr/\Q$key\E/, 'the clients file holds no key');

# the printed curl example, as printed
my ($curl) = $out =~ /^(  curl .*?group\.jpg)$/ms;
ok($curl, 'a curl example is printed') or diag $out;
$curl =~ s/\\\n//g;
my $answer = `$curl`;
my $j = eval { decode_json($answer) };
is($j->{status}, 200, 'the curl example answers 200') or diag $answer;
is(scalar @{ $j->{body}{objects}[0]{persons} // [] }, 6, 'six faces on the group photo');

ok(-s "$run/oauth-issuer.key", 'an OAuth signing key was generated');
is((stat "$run/oauth-issuer.key")[2] & 077, 0, 'readable by its owner only');

# the printed OAuth example: a token for demo's name and key, the call
my ($oauth) = $out =~ /^(  TOKEN=.*?group\.jpg)$/ms;
ok($oauth, 'an OAuth example is printed') or diag $out;
$oauth //= '';
$answer = do {           # as printed: two commands, lines continued
    my $f = "$run/oauth-example.sh";
    SmartyTest::spew($f, "$oauth\n");
    `bash $f 2>&1`;
};
$j = eval { decode_json($answer) };
is($j->{status}, 200, 'the OAuth example answers 200') or diag $answer;
is(scalar @{ $j->{body}{objects}[0]{persons} // [] }, 6,
   'six faces, with the access token');

my ($smarty) = $out =~ /^(  SMARTY_KEY=.*?\/smarty -u .*?\}')$/ms;
ok($smarty, 'a smarty example is printed') or diag $out;
$smarty =~ s/\\\n//g;
$answer = `$smarty`;
is($?, 0, 'the smarty example exits 0') or diag $answer;
$j = eval { decode_json($answer) };
is($j->{status}, 200, 'the smarty example answers 200');

# the printed quota view: the two answers above were counted in Redis
my ($view) = $out =~ /^  (curl -s '\S+\/quota\?space=1' \\\n.*)$/m;
ok($view, 'a quota example is printed') or diag $out;
$view =~ s/\\\n//g if $view;
$answer = $view ? `$view` : '';
$j = eval { decode_json($answer) };
is($j->{source}, 'redis', 'the quota view reads Redis') or diag $answer;
my ($demo) = grep { ($_->{client} // '') eq 'demo'
                    && $_->{code} eq 'client_images_hour' } @{ $j->{limits} // [] };
ok($demo && $demo->{used} >= 1, "the demo client's images were counted")
    or diag $answer;

# the upstream's token came from the emulator's OAuth endpoint, and a new
# one when it expired
my $tokens = SmartyTest::http('GET', "http://127.0.0.1:$port{emu}/_emulator/stats")
    ->{json}{tokens};
cmp_ok($tokens->{issued}, '>=', 1, 'the gateway fetched the upstream token');
my $issued = $tokens->{issued};
SmartyTest::wait_until(sub {
    SmartyTest::http('GET', "http://127.0.0.1:$port{emu}/_emulator/stats")
        ->{json}{tokens}{active} == 0
}, 10);
# (a photo not in the cache: the call goes upstream)
my $r = SmartyTest::call("http://127.0.0.1:$port{gw}", 'persons/recognize',
    key => $key, meta => { space => '1', images => [ { name => 'f' } ] },
    images => [ [ 'f', SmartyTest::alone_photo('joey') ] ]);
is($r->{status}, 200, 'a call after the token expired: 200')
    or diag $r->{content};
cmp_ok(SmartyTest::http('GET', "http://127.0.0.1:$port{emu}/_emulator/stats")
       ->{json}{tokens}{issued}, '>', $issued, 'with a new token');
my $secret = SmartyTest::slurp("$run/oauth-client-secret");
$secret =~ s/\s+\z//;
ok(index(SmartyTest::slurp("$run/nginx-error.log"), $secret) < 0,
   'the client secret is in no log line');

my $again = `scripts/stack.sh start 2>&1`;
is($?, 0, 'a second start');
like($again, qr/already running/, 'says it is already running');

$out = `scripts/stack.sh stop 2>&1`;
is($?, 0, 'stack.sh stop') or diag $out;
ok(SmartyTest::wait_until(sub { !grep { SmartyTest::port_open($port{$_}) } keys %port }, 10),
   'nothing listens any more');
ok(!-e "$run/$_.pid", "no $_.pid left") for qw(nginx emulator redis);

done_testing;
