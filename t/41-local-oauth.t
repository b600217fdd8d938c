# OAuth for local clients (docs/oauth.md): the gateway's token endpoint in
# the shape of the API's (/auth/oauth/v1/token), client credentials (form,
# JSON, HTTP Basic) and refresh grants; its access tokens wherever a key
# works, with the client's rights, until they expire or the client's key
# changes; refresh tokens good once, for every instance (Redis); two
# instances that share the signing key take each other's tokens; errors in
# the envelope with RFC 6749's codes; no token nor secret in any other
# answer or any log line.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);
use Digest::SHA qw(sha256 sha256_hex hmac_sha256);
use MIME::Base64 qw(encode_base64 decode_base64);
use JSON::PP;

my $redis = SmartyTest::start_redis();
my $dir = SmartyTest::tempdir() . '/oauth';
mkdir $dir;
my $sign_key = SmartyTest::random_hex(32);
SmartyTest::spew("$dir/oauth-issuer.key", "$sign_key\n");
chmod 0600, "$dir/oauth-issuer.key";

my $issuer = <<'EOF';
        location = /auth/oauth/v1/token {
            smarty_oauth_issuer;
            smarty_clients_file %%CLIENTS_FILE%%;
        }

        # short lives, to see them end
        location = /short/token {
            smarty_oauth_issuer;
            smarty_oauth_token_lifetime 1s;
            smarty_oauth_refresh_lifetime 1s;
            smarty_clients_file %%CLIENTS_FILE%%;
        }

        location = /quota {
            smarty_quota_view;
            smarty_clients_file %%CLIENTS_FILE%%;
        }
EOF

my %gw_opts = (
    http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
          . "    smarty_oauth_key_file $dir/oauth-issuer.key;\n",
    server => $issuer,
    clients => [
        { name => 'demo' },
        { name => 'reader', spaces => ['1'],
          methods => ['persons/recognize'] },
        { name => 'ops', spaces => [], methods => [], operator => JSON::PP::true },
        { name => 'we:ird%name', spaces => ['1'] },
        # a key made by other means than keygen, with '+' and '%'
        { name => 'plus', spaces => ['1'],
          key => 'sgw+k%2Bey+' . SmartyTest::random_hex(16) },
    ],
);
my $gw = SmartyTest::start_gateway(%gw_opts);
my $url = $gw->{url};
my %keys = %{ $gw->{keys} };
my @secrets = ($sign_key, values %keys);   # never in an answer nor a log
my @tokens;                                # every token issued
my @answers;                               # every other answer

my $img = SmartyTest::alone_photo('rachel');

sub form {
    my (%f) = @_;
    return join '&', map {
        my $v = $f{$_};
        $v =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
        "$_=$v"
    } sort keys %f;
}

# a token request: a form body unless json => {...} or body => '...'
sub token_req {
    my (%o) = @_;
    my $base = delete $o{url} // $url;
    my $path = delete $o{path} // '/auth/oauth/v1/token';
    my %h = %{ delete $o{headers} // {} };
    my $body;
    if (exists $o{json}) {
        $body = JSON::PP->new->encode(delete $o{json});
        $h{'Content-Type'} //= 'application/json';
    } elsif (exists $o{body}) {
        $body = delete $o{body};
    } else {
        $body = form(%{ delete $o{form} // {} });
        $h{'Content-Type'} //= 'application/x-www-form-urlencoded';
    }
    my $r = SmartyTest::http($o{method} // 'POST', "$base$path",
                             headers => \%h, body => $body);
    if ($r->{status} == 200 && $r->{json}) {
        push @tokens, map { $r->{json}{$_} // () } qw(access_token refresh_token);
    } else {
        push @answers, $r;
    }
    return $r;
}

sub credentials {
    my ($name, %o) = @_;
    return token_req(form => { grant_type => 'client_credentials',
                               client_id => $name,
                               client_secret => $keys{$name} }, %o);
}

sub refresh {
    my ($token, %o) = @_;
    return token_req(form => { grant_type => 'refresh_token',
                               refresh_token => $token, %{ delete $o{form} // {} } },
                     %o);
}

sub rec {
    my (%o) = @_;
    my $base = delete $o{url} // $url;
    my $space = delete $o{space} // '1';
    my $r = SmartyTest::call($base, 'persons/recognize',
        meta => { space => $space, images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ], %o);
    push @answers, $r;
    return $r;
}

# an error of the token endpoint: the envelope, and RFC 6749's members
sub is_oauth_error {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    subtest $name => sub {
        is_error($r, $status, $code, 'in the envelope');
        is($r->{json}{error}, $code, 'RFC 6749 "error"');
        is($r->{json}{error_description}, $r->{json}{body}{error},
           'RFC 6749 "error_description"');
        is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
        ok(!exists $r->{json}{access_token}, 'no token');
    };
}

# the pids of an nginx master's children
sub workers {
    my ($master) = @_;
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = SmartyTest::slurp($stat);
        push @w, $1 if $s =~ /^(\d+) \(.*\) \S (\d+)/ && $2 == $master;
    }
    return @w;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

# --- client credentials -------------------------------------------------------

my $r = credentials('demo');
is($r->{status}, 200, 'client_credentials: 200') or diag $r->{content};
my $t = $r->{json};
like($t->{access_token}, qr/^sgat1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/,
     'an access token of the gateway');
like($t->{refresh_token}, qr/^sgrt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/,
     'a refresh token');
is($t->{token_type}, 'Bearer', 'token_type Bearer');
is($t->{expires_in}, 3600, 'expires_in: an hour by default, as the API');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is($r->{headers}{pragma}, 'no-cache', 'Pragma: no-cache');
is($r->{headers}{'content-type'}, 'application/json', 'JSON');

# the token, checked apart from the module: HMAC-SHA256 by the signing key
# over the prefix and payload, then the client key's SHA-256
{
    my ($signed, $mac) = $t->{access_token} =~ /^(.*)\.([^.]+)$/;
    is(b64url_decode($mac), hmac_sha256($signed . sha256($keys{demo}), $sign_key),
       'its mac is HMAC-SHA256(signing key, prefix.payload || SHA-256(key))');
    my $p = b64url_decode(substr($signed, 6));
    my ($ver, $iat, $exp, $nonce, $nlen) = unpack('C Q> Q> a16 C', $p);
    is($ver, 1, 'payload version 1');
    is($exp - $iat, 3600, 'it expires an hour after it was issued');
    ok(abs($iat - time) < 60, 'issued now');
    is(substr($p, 34, $nlen), 'demo', 'it names its client');
    is(length $p, 34 + $nlen, 'and nothing more');
}

isnt(credentials('demo')->{json}{access_token}, $t->{access_token},
     'every token is new');

# the API's own shape: a JSON body
$r = token_req(json => { grant_type => 'client_credentials',
                         client_id => 'demo', client_secret => $keys{demo} });
is($r->{status}, 200, 'a JSON body, as the API takes') or diag $r->{content};

# HTTP Basic, form-encoded then base64 (RFC 6749, 2.3.1)
my $basic = sub {
    my ($id, $secret) = @_;
    my $enc = sub { my $s = shift; $s =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge; $s };
    return 'Basic ' . encode_base64($enc->($id) . ':' . $enc->($secret), '');
};
$r = token_req(form => { grant_type => 'client_credentials' },
               headers => { Authorization => $basic->('demo', $keys{demo}) });
is($r->{status}, 200, 'HTTP Basic') or diag $r->{content};
$r = token_req(form => { grant_type => 'client_credentials' },
               headers => { Authorization => $basic->('we:ird%name',
                                                      $keys{'we:ird%name'}) });
is($r->{status}, 200, 'HTTP Basic, a name with ":" and "%" form-encoded')
    or diag $r->{content};
my $weird_token = $r->{json}{access_token};
$r = token_req(form => { grant_type => 'client_credentials' },
               headers => { Authorization => $basic->('plus', $keys{plus}) });
is($r->{status}, 200, "HTTP Basic, a key with '+' and '%' form-encoded")
    or diag $r->{content};
$r = token_req(form => { grant_type => 'client_credentials' },
               headers => { Authorization => 'Basic '
                            . encode_base64("plus:$keys{plus}", '') });
is($r->{status}, 200, 'HTTP Basic, the same key as it is (many clients do '
   . 'not form-encode)') or diag $r->{content};
$r = credentials('plus');
is($r->{status}, 200, "a key with '+' and '%' in a form body")
    or diag $r->{content};
$r = token_req(form => { grant_type => 'client_credentials', client_id => 'demo' },
               headers => { Authorization => $basic->('demo', $keys{demo}) });
is($r->{status}, 200, 'HTTP Basic with the same client_id in the body');

# --- using it -----------------------------------------------------------------

my $access = $t->{access_token};
my $stats = sub { SmartyTest::emulator_stats($gw->{emu})->{requests_total} };

$r = rec(key => $access);
is($r->{status}, 200, 'the access token as Authorization: Bearer') or diag $r->{content};
# (the log line is written after the answer is sent)
ok(SmartyTest::wait_until(sub { SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log")
                                    =~ /client=demo method=persons\/recognize/ }, 10),
   'the access log names the client');
$r = rec(query => "oauth_provider=mcs&oauth_token=$access");
is($r->{status}, 200, 'the access token as oauth_token, as the API takes it');
my $last = SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json};
unlike(JSON::PP->new->encode($last), qr/\Q$access\E|sgat1/,
       'the access token did not go upstream');
is(rec(key => $weird_token)->{status}, 200, 'a token of a name with odd characters');

$r = SmartyTest::http('GET', "$url/quota?space=1",
                      headers => { Authorization => 'Bearer '
                          . credentials('ops')->{json}{access_token} });
is($r->{status}, 200, "an operator's token reads the quota view") or diag $r->{content};

# rights kept: the reader's token may recognize in space 1, nothing more
my $reader = credentials('reader')->{json}{access_token};
is(rec(key => $reader)->{status}, 200, "the reader's token recognizes in space 1");
my $before = $stats->();
is_error(rec(key => $reader, space => '2'), 403, 'space_forbidden',
         "the reader's token may not use space 2");
is_error(SmartyTest::call($url, 'persons/set', key => $reader,
             meta => { space => '1', images => [ { name => 'file_0', person_id => 7 } ] },
             images => [ [ 'file_0', $img ] ]),
         403, 'method_forbidden', "the reader's token may not set");
is($stats->(), $before, 'no refused request reached the upstream');

# tokens that are not good
(my $tampered = $access) =~ s/\.(.)/'.' . ($1 eq 'A' ? 'B' : 'A')/e;
is_error(rec(key => $tampered), 401, 'invalid_token', 'a changed token');
my ($signed) = $access =~ /^(.*)\./;
is_error(rec(key => "$signed." . ('A' x 43)), 401, 'invalid_token', 'a forged mac');
is_error(rec(key => $t->{refresh_token}), 401, 'unknown_key',
         'a refresh token is no access token');
is_error(rec(key => 'sgat1.nonsense'), 401, 'invalid_token', 'a malformed token');
{
    # signed with another key
    my $p = pack('C Q> Q> a16 C', 1, time, time + 3600, 'n' x 16, 4) . 'demo';
    (my $b = encode_base64($p, '')) =~ tr{+/}{-_};
    $b =~ s/=+$//;
    my $s = "sgat1.$b";
    (my $m = encode_base64(hmac_sha256($s . sha256($keys{demo}), 'x' x 64), ''))
        =~ tr{+/}{-_};
    $m =~ s/=+$//;
    is_error(rec(key => "$s.$m"), 401, 'invalid_token', 'a token of another signing key');
    # the right key, made by the test: the format is the documented one
    ($m = encode_base64(hmac_sha256($s . sha256($keys{demo}), $sign_key), ''))
        =~ tr{+/}{-_};
    $m =~ s/=+$//;
    is(rec(key => "$s.$m")->{status}, 200,
       'a token made by the documented recipe with the signing key works');
}

# --- refresh -------------------------------------------------------------------

$r = refresh($t->{refresh_token}, form => { client_id => 'demo' });
is($r->{status}, 200, 'refresh_token grant') or diag $r->{content};
my $t2 = $r->{json};
ok($t2->{access_token} && $t2->{access_token} ne $access, 'a new access token');
ok($t2->{refresh_token} && $t2->{refresh_token} ne $t->{refresh_token},
   'a new refresh token');
is($t2->{expires_in}, 3600, 'expires_in');
is(rec(key => $t2->{access_token})->{status}, 200, 'the new access token works');
is(rec(key => $access)->{status}, 200,
   'the old access token lives on until it expires');

is_oauth_error(refresh($t->{refresh_token}), 400, 'invalid_grant',
               'a refresh token used twice');
like(refresh($t->{refresh_token})->{json}{body}{error}, qr/already used/,
     'the sentence says so');
like(SmartyTest::error_log($gw->{ngx}),
     qr/smarty oauth: client "demo": a refresh token used a second time/,
     'the error log says which client');

$r = refresh($t2->{refresh_token}, form => { client_id => 'reader' });
is_oauth_error($r, 400, 'invalid_grant', "another client's refresh token");
$r = refresh($t2->{refresh_token},
             headers => { Authorization => $basic->('demo', 'sgw_wrong') });
is_oauth_error($r, 401, 'invalid_client', 'a refresh with a wrong secret');
$r = refresh($t2->{refresh_token},
             headers => { Authorization => $basic->('demo', $keys{demo}) });
is($r->{status}, 200, 'a refresh that authenticates with HTTP Basic')
    or diag $r->{content};
my $t3 = $r->{json};
is_oauth_error(refresh($access), 400, 'invalid_grant',
               'an access token is no refresh token');
is_oauth_error(refresh('sgrt1.x.y'), 400, 'invalid_grant', 'a malformed refresh token');

# --- expiry ----------------------------------------------------------------------

$r = credentials('demo', path => '/short/token');
is($r->{json}{expires_in}, 1, 'smarty_oauth_token_lifetime 1s: expires_in 1');
my $short = $r->{json};
ok(SmartyTest::wait_until(sub { rec(key => $short->{access_token})->{status} == 401 }, 10),
   'the access token is refused once it expired');
is_error(rec(key => $short->{access_token}), 401, 'token_expired',
         'an expired access token');
like(rec(key => $short->{access_token})->{headers}{'www-authenticate'} // '',
     qr/^Bearer /, 'WWW-Authenticate: Bearer');
is_oauth_error(refresh($short->{refresh_token}), 400, 'invalid_grant',
               'an expired refresh token');
like(refresh($short->{refresh_token})->{json}{body}{error}, qr/expired/,
     'the sentence says it expired');

# --- refusals -----------------------------------------------------------------

$before = SmartyTest::error_log($gw->{ngx});
my $wrong = 'sgw_wrong_' . SmartyTest::random_hex(16);
push @secrets, $wrong;
$r = token_req(form => { grant_type => 'client_credentials', client_id => 'demo',
                         client_secret => $wrong });
is_oauth_error($r, 401, 'invalid_client', 'a wrong secret');
like($r->{json}{body}{error}, qr/wrong client_secret/, 'a clear sentence');
like($r->{headers}{'www-authenticate'} // '', qr/^Basic realm=/,
     'WWW-Authenticate: Basic');
my $log = SmartyTest::error_log($gw->{ngx});
like(substr($log, length $before),
     qr/\[warn\].*smarty oauth: client "demo": wrong client_secret.*client: 127\.0\.0\.1/,
     'a wrong secret is a warning with the client and the address');

$r = token_req(form => { grant_type => 'client_credentials',
                         client_id => $keys{demo}, client_secret => $keys{demo} });
is_oauth_error($r, 401, 'invalid_client', 'an unknown client_id (a key sent as the id)');
like(SmartyTest::error_log($gw->{ngx}), qr/\[warn\].*smarty oauth: unknown client_id/,
     'an unknown client_id is a warning, without what was sent');

is_oauth_error(token_req(form => { grant_type => 'password', username => 'demo',
                                   password => 'x' }),
               400, 'unsupported_grant_type', 'grant_type=password');
is_oauth_error(token_req(form => { client_id => 'demo', client_secret => $keys{demo} }),
               400, 'invalid_request', 'no grant_type');
is_oauth_error(token_req(form => { grant_type => 'client_credentials', client_id => 'demo' }),
               400, 'invalid_request', 'no client_secret');
is_oauth_error(token_req(form => { grant_type => 'client_credentials',
                                   client_secret => $keys{demo} }),
               400, 'invalid_request', 'no client_id');
is_oauth_error(token_req(form => { grant_type => 'refresh_token' }),
               400, 'invalid_request', 'no refresh_token');
is_oauth_error(token_req(body => 'grant_type=client_credentials&grant_type=refresh_token',
                         headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }),
               400, 'invalid_request', 'a parameter twice');
is_oauth_error(token_req(body => '{"grant_type":"client_credentials",',
                         headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid_request', 'malformed JSON');
is_oauth_error(token_req(json => [ 'client_credentials' ]),
               400, 'invalid_request', 'JSON that is not an object');
is_oauth_error(token_req(json => { grant_type => 'client_credentials',
                                   client_id => 'demo', client_secret => 7 }),
               400, 'invalid_request', 'a JSON field that is not a string');
is_oauth_error(token_req(body => form(grant_type => 'client_credentials'),
                         headers => { 'Content-Type' => 'text/plain' }),
               400, 'invalid_request', 'another Content-Type');
is_oauth_error(token_req(body => "\x00\xff&=&&==",
                         headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }),
               400, 'invalid_request', 'a body of junk');
is_oauth_error(token_req(form => { grant_type => 'client_credentials' },
                         headers => { Authorization => "Bearer $keys{demo}" }),
               400, 'invalid_request', 'a Bearer Authorization');
is_oauth_error(token_req(form => { grant_type => 'client_credentials' },
                         headers => { Authorization => 'Basic !!!' }),
               400, 'invalid_request', 'a malformed Basic header');
is_oauth_error(token_req(form => { grant_type => 'client_credentials',
                                   client_secret => $keys{demo} },
                         headers => { Authorization => $basic->('demo', $keys{demo}) }),
               400, 'invalid_request', 'two ways of authenticating');
is_oauth_error(token_req(form => { grant_type => 'client_credentials', client_id => 'reader' },
                         headers => { Authorization => $basic->('demo', $keys{demo}) }),
               400, 'invalid_request', 'a body client_id not the Basic one');
is_oauth_error(token_req(path => "/auth/oauth/v1/token?client_secret=$keys{demo}",
                         form => { grant_type => 'client_credentials', client_id => 'demo' }),
               400, 'invalid_request', 'a secret in the URI');
ok(SmartyTest::wait_until(sub { SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log")
                                    =~ /client_secret=\*\*\*/ }, 10),
   'the access log redacts it');
unlike(SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log"), qr/\Q$keys{demo}\E/,
       'the key is nowhere in it');
is_error(token_req(method => 'GET', body => ''), 405, 'method_not_allowed', 'GET');
is_error(token_req(body => 'x' x 20000,
                   headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }),
         413, 'body_too_large', 'a body over 16 KB');

# --- Redis away: no refresh (single use cannot be checked); the rest works --------

SmartyTest::stop_proc($redis);
$r = refresh($t3->{refresh_token});
is_oauth_error($r, 503, 'temporarily_unavailable', 'a refresh while Redis is away');
like($r->{json}{body}{error}, qr/client_credentials/,
     'the sentence says to use client_credentials');
$r = credentials('demo');
is($r->{status}, 200, 'client_credentials while Redis is away');
is(rec(key => $r->{json}{access_token})->{status}, 200,
   'an access token works while Redis is away');
$redis = SmartyTest::start_redis(port => $redis->{port});
ok(SmartyTest::wait_until(sub { refresh($t3->{refresh_token})->{status} == 200 }, 15),
   'the refresh works once Redis is back');

# --- two instances: one signing key, one Redis -------------------------------------

my $gw2 = SmartyTest::start_gateway(%gw_opts, emu => $gw->{emu},
                                    token => $gw->{token},
                                    clients => $gw->{clients});
$r = credentials('demo', url => $gw2->{url});
is($r->{status}, 200, 'the second instance issues tokens');
is(rec(key => $r->{json}{access_token})->{status}, 200,
   "the second instance's access token works on the first");
is(rec(key => $access, url => $gw2->{url})->{status}, 200,
   "the first instance's access token works on the second");
my $r2 = refresh($r->{json}{refresh_token});
is($r2->{status}, 200, "the first instance refreshes the second's refresh token");
is_oauth_error(refresh($r->{json}{refresh_token}, url => $gw2->{url}), 400,
               'invalid_grant', 'and the second knows it was used');

# --- no Redis at all: no refresh tokens (single use could not be enforced) ---------

my $gw3 = SmartyTest::start_gateway(%gw_opts, emu => $gw->{emu},
                                    token => $gw->{token},
                                    clients => $gw->{clients},
                                    http => "    smarty_oauth_key_file $dir/oauth-issuer.key;\n");
$r = credentials('demo', url => $gw3->{url});
is($r->{status}, 200, 'without smarty_redis, client_credentials works');
ok(!exists $r->{json}{refresh_token}, 'but no refresh token is issued')
    or diag $r->{content};
is(rec(key => $r->{json}{access_token}, url => $gw3->{url})->{status}, 200,
   'and the access token works');
$r = refresh($t3->{refresh_token}, url => $gw3->{url});
is_oauth_error($r, 400, 'unsupported_grant_type', 'a refresh without Redis');
like($r->{json}{body}{error}, qr/no Redis/, 'the sentence says why');

# --- a client's key changes: its tokens die at the reload ------------------------

SKIP: {
    skip 'no master process under valgrind: nothing to reload', 7
        if $ENV{SMARTY_VALGRIND};

    my $fresh = credentials('demo')->{json};
    is(rec(key => $fresh->{access_token})->{status}, 200, 'a token of demo works');
    my $newkey = 'sgw_new_' . SmartyTest::random_hex(16);
    push @secrets, $newkey;
    my @clients = map { $_->{name} eq 'demo' ? { %$_, key => $newkey } : $_ }
                  @{ $gw->{clients} };
    SmartyTest::clients_file("$gw->{dir}/clients.json", @clients);
    my @old = workers($gw->{ngx}{pid});
    my ($rc, $out) = SmartyTest::nginx_reload($gw->{ngx});
    is($rc, 0, 'nginx -s reload') or diag $out;
    # until the old worker is gone, either may take a connection
    ok(SmartyTest::wait_until(sub {
           my %now = map { $_ => 1 } workers($gw->{ngx}{pid});
           !grep { $now{$_} } @old }, 20),
       'the old worker is gone');
    is(rec(key => $fresh->{access_token})->{status}, 401,
       "the token is refused once demo's key changed");
    is_error(rec(key => $fresh->{access_token}), 401, 'invalid_token',
             'invalid_token');
    is_oauth_error(refresh($fresh->{refresh_token}), 400, 'invalid_grant',
                   'and so is its refresh token');
    $keys{demo} = $newkey;
    is(rec(key => credentials('demo')->{json}{access_token})->{status}, 200,
       'a token for the new key works');
}

# --- configuration -----------------------------------------------------------------

my ($rc, $out) = SmartyTest::nginx_test(http => <<"EOF");
    server { listen 127.0.0.1:%%PORT%%;
        location /t { smarty_oauth_issuer; smarty_clients_file $gw->{dir}/clients.json; } }
EOF
isnt($rc, 0, 'nginx -t: the issuer needs a signing key');
like($out, qr/"smarty_oauth_issuer" needs "smarty_oauth_key_file"/, 'and says so');
SmartyTest::spew("$dir/short.key", "0123456789\n");
($rc, $out) = SmartyTest::nginx_test(http => "    smarty_oauth_key_file $dir/short.key;\n");
isnt($rc, 0, 'nginx -t: a short signing key');
like($out, qr/holds fewer than 32 bytes/, 'and says so');
unlike($out, qr/0123456789/, 'without the key');
SmartyTest::spew("$dir/old.key", SmartyTest::random_hex(32) . "\n");
($rc, $out) = SmartyTest::nginx_test(http => <<"EOF");
    smarty_oauth_key_file $dir/oauth-issuer.key $dir/old.key;
    server { listen 127.0.0.1:%%PORT%%;
        location /t { smarty_oauth_issuer; smarty_clients_file $gw->{dir}/clients.json; } }
EOF
is($rc, 0, 'nginx -t: a key and a previous one') or diag $out;

# --- no token nor secret where it does not belong ----------------------------------

# stopped, so that every log line is written
SmartyTest::stop_proc($_->{ngx}) for $gw, $gw2, $gw3;

my %seen;
my @all = grep { !$seen{$_}++ } (@secrets, @tokens);
ok(@tokens >= 20, scalar(@tokens) . ' tokens issued in this test');
for my $ngx ($gw->{ngx}, $gw2->{ngx}, $gw3->{ngx}) {
    my $text = join '', map { SmartyTest::slurp($_) } glob("$ngx->{dir}/*.log");
    my @found = grep { index($text, $_) >= 0 } @all;
    is(scalar @found, 0, "no token nor secret in the logs of $ngx->{dir}")
        or diag "found: @found";
}
my @leaks;
for my $a (@answers) {
    my $text = ($a->{content} // '') . join("\n", map {
        my $v = $a->{headers}{$_}; ref $v ? @$v : $v } keys %{ $a->{headers} });
    push @leaks, grep { index($text, $_) >= 0 } @all;
}
is(scalar @leaks, 0, scalar(@answers) . ' other answers: no token nor secret in '
   . 'their headers or bodies') or diag "found: @leaks";
my $emu_log = SmartyTest::slurp("$gw->{emu}{dir}/emulator.log");
is(scalar(grep { index($emu_log, $_) >= 0 } @all), 0,
   'none in the emulator\'s log');

done_testing;
