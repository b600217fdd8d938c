# Credentials in the query string (docs/reference.md, "Query string"): the
# upstream query is built from scratch, so no client can smuggle a token of
# its own past the gateway in any spelling, nor poison the shared cache
# with an answer made with it; the allow-list; the key under an encoded
# name; the right to enroll.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);

my $redis = SmartyTest::start_redis();

# the emulator accepts the gateway's token and another account's
my $other = 'other-account-' . SmartyTest::random_hex(8);
my $token = 'upstream-' . SmartyTest::random_hex(16);
my $emu = SmartyTest::start_emulator(token => $token,
                                     args => [ '--token', $other,
                                               '--per-image-ms', '0' ]);

my $gw = SmartyTest::start_gateway(
    emu => $emu, token => $token,
    http => "    smarty_redis 127.0.0.1:$redis->{port};\n",
    gateway => "            smarty_cache on;\n",
    clients => [
        { name => 'demo' },
        { name => 'reader', spaces => ['1'], methods => ['persons/recognize'] },
        { name => 'enroller', spaces => ['1'],
          methods => ['persons/recognize', 'persons/enroll'] },
        { name => 'setter', spaces => ['1'],
          methods => ['persons/recognize', 'persons/set'] },
    ],
    server => <<'EOF');
        location /allow/api/v1/ {
            smarty_gateway on;
            smarty_api_prefix /allow/api/v1/;
            smarty_upstream /_smarty_upstream/;
            smarty_upstream_token_file %%TOKEN_FILE%%;
            smarty_clients_file %%CLIENTS_FILE%%;
            smarty_upstream_args lang Model;
            smarty_cache on;
        }
EOF
my $url = $gw->{url};
my $key = $gw->{keys}{demo};

sub unescape { my ($s) = @_; $s =~ tr/+/ /; $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $s }
sub escape { my ($s) = @_; $s =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge; $s }

# the query the upstream got, its names decoded as an HTTP stack decodes them
sub upstream_query {
    my $last = SmartyTest::http('GET', "$emu->{url}/_emulator/last")->{json};
    my @pairs;
    for my $p (split /&/, $last->{query} // '') {
        my ($n, $v) = split /=/, $p, 2;
        push @pairs, [ unescape($n), unescape($v // '') ];
    }
    return \@pairs;
}

sub credentials {
    my ($pairs) = @_;
    return [ map { "$_->[0]=$_->[1]" }
             grep { lc($_->[0]) =~ /^oauth_(token|provider)$/ } @$pairs ];
}

my $seq = 0;

sub rec {
    my (%o) = @_;
    my $img = delete $o{img} // SmartyTest::jpeg(seed => 'c38-' . ++$seq,
                                                  faces => ['ross@1,1,9,9']);
    my $base = delete $o{base} // $url;
    return SmartyTest::call($base, 'persons/recognize',
        meta => { space => '1', images => [ { name => 'file_0' } ],
                  %{ delete $o{meta} // {} } },
        images => [ [ 'file_0', $img ] ], %o);
}

# --- 1. smuggled credentials, every spelling -------------------------------------

for my $q ('oauth%5Ftoken=bogus', 'oauth%5ftoken=bogus', 'OAUTH_TOKEN=bogus',
           '%6Fauth_token=bogus', 'Oauth%5FToken=bogus', 'oauth_token=bogus',
           "oauth%5Ftoken=$other", 'oauth%5Fprovider=evil',
           'OAuth_Provider=evil', "oauth%5Ftoken=$other&oauth%5Fprovider=x")
{
    my $r = rec(key => $key, query => $q);
    is($r->{status}, 200, "?$q: 200, from the gateway's own token")
        or diag $r->{content};
    is_deeply(credentials(upstream_query()),
              [ 'oauth_provider=mcs', "oauth_token=$token" ],
              "?$q: the upstream got the gateway's credentials, only them");
}

# the repro of the report, word for word
{
    my $r = rec(key => $key, query => 'oauth%5Ftoken=bogus');
    is($r->{status}, 200, 'the reported request: 200');
    is_deeply(upstream_query(), [ [ 'oauth_provider', 'mcs' ],
                                  [ 'oauth_token', $token ] ],
              'the upstream query is built from scratch: nothing else');
    unlike(SmartyTest::error_log($gw->{ngx}), qr/upstream_auth_failed|rejected the gateway/,
           'no error line blames the token file');
}

# the cache cannot be poisoned with another account's answer: a photo first
# asked with a smuggled token is a miss for the next client, answered with
# the gateway's token, and a hit only after that
{
    my $img = SmartyTest::jpeg(seed => 'poison', faces => ['rachel@1,1,9,9']);
    my $before = SmartyTest::emulator_stats($emu)->{requests};
    my $a = rec(key => $key, img => $img, query => "oauth%5Ftoken=$other");
    is($a->{status}, 200, 'a smuggled token: 200');
    like($a->{headers}{'cache-status'} // '', qr/fwd=miss; stored/,
         'it was stored: made with the gateway token, so it may be');
    is(credentials(upstream_query())->[1], "oauth_token=$token",
       '... and the upstream saw the gateway token');
    my $b = rec(key => $gw->{keys}{reader}, img => $img);
    is($b->{headers}{'cache-status'} // '', 'smarty-gateway; hit',
       'another client: a hit of an answer the gateway token made');
    is(SmartyTest::emulator_stats($emu)->{requests}, $before + 1,
       'one upstream call in all');
}

# --- the key under an encoded name, as the API would read it ----------------------

{
    my $r = rec(query => 'oauth_provider=mcs&oauth%5Ftoken='
                         . escape($key));
    is($r->{status}, 200, 'the key as oauth%5Ftoken: accepted, as the API would')
        or diag $r->{content};
    unlike(join('&', map { "$_->[0]=$_->[1]" } @{ upstream_query() }), qr/\Q$key\E/,
           'and it did not go upstream');
    is_error(rec(query => "OAUTH_TOKEN=$key"), 401, 'missing_key',
             'OAUTH_TOKEN is not the API\'s parameter: no key');
}

# --- the allow-list ----------------------------------------------------------------

{
    my $r = rec(key => $key, query => 'x=1&lang=en');
    is($r->{status}, 200, 'other parameters: 200');
    is_deeply(upstream_query(), [ [ 'oauth_provider', 'mcs' ],
                                  [ 'oauth_token', $token ] ],
              'without smarty_upstream_args, none goes upstream');

    $r = rec(base => "$url/allow", key => $key,
             query => 'x=1&lang=en&MODEL=2&oauth%5Ftoken=bogus');
    is($r->{status}, 200, 'smarty_upstream_args lang Model: 200');
    is_deeply(upstream_query(), [ [ 'oauth_provider', 'mcs' ],
                                  [ 'oauth_token', $token ],
                                  [ 'lang', 'en' ], [ 'MODEL', '2' ] ],
              'the allowed ones go upstream after the credentials, in order; '
              . 'x and the smuggled token do not');

    # the cache key depends on exactly what is forwarded
    my $img = SmartyTest::jpeg(seed => 'lang', faces => ['joey@1,1,9,9']);
    my $en = rec(base => "$url/allow", key => $key, img => $img,
                 query => 'lang=en');
    like($en->{headers}{'cache-status'} // '', qr/fwd=miss/, 'lang=en: miss');
    my $ru = rec(base => "$url/allow", key => $key, img => $img,
                 query => 'lang=ru');
    like($ru->{headers}{'cache-status'} // '', qr/fwd=miss/,
         'lang=ru: a miss too, not lang=en\'s answer');
    my $en2 = rec(base => "$url/allow", key => $key, img => $img,
                  query => 'lang=en&x=2');
    is($en2->{headers}{'cache-status'} // '', 'smarty-gateway; hit',
       'lang=en again, x not forwarded: a hit');
    my $none = rec(base => "$url/allow", key => $key, img => $img,
                   query => 'x=3');
    like($none->{headers}{'cache-status'} // '', qr/fwd=miss/,
         'no lang: its own entry');
}

# nginx -t: a credential on the allow-list is refused
for my $name ('oauth_token', 'OAuth_Provider', 'oauth%5Ftoken') {
    my ($rc, $out) = SmartyTest::nginx_test(http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { smarty_upstream_args lang $name; }
    }
EOF
    isnt($rc, 0, "nginx -t refuses smarty_upstream_args $name");
    like($out, qr/cannot be passed: the gateway sets oauth_token/,
         '... and says why');
}

# --- 2. enrolling is a write ---------------------------------------------------------

{
    my $before = SmartyTest::emulator_stats($emu)->{requests};
    my $r = rec(key => $gw->{keys}{reader}, meta => { create_new => JSON::PP::true });
    is_error($r, 403, 'write_forbidden', 'a recognize-only client with create_new');
    like($r->{json}{body}{error} // '', qr/persons\/enroll/, 'the sentence names the right');
    is_error(rec(key => $gw->{keys}{reader},
                 meta => { update_embedding => JSON::PP::true }),
             403, 'write_forbidden', 'a recognize-only client with update_embedding');
    is(SmartyTest::emulator_stats($emu)->{requests}, $before,
       'neither reached the upstream');

    is(rec(key => $gw->{keys}{reader}, meta => { create_new => JSON::PP::false,
                                                 update_embedding => JSON::PP::false })
           ->{status}, 200, 'create_new and update_embedding false: a read, 200');
    is(rec(key => $gw->{keys}{enroller}, meta => { create_new => JSON::PP::true })
           ->{status}, 200, 'with persons/enroll: create_new 200');
    is(rec(key => $gw->{keys}{setter}, meta => { update_embedding => JSON::PP::true })
           ->{status}, 200, 'with persons/set: update_embedding 200');
    is(rec(key => $key, meta => { create_new => JSON::PP::true })->{status}, 200,
       'with "methods": "*": 200');
}

done_testing;
