# Client keys and rights: 401 and 403 in the envelope, keys in the header or
# the query, the read-only client, reload of the clients file.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);
use Digest::SHA qw(sha256_hex);

my $gw = SmartyTest::start_gateway();
my $url = $gw->{url};
my $img = SmartyTest::alone_photo('rachel');
my @one = ([ 'file_0', $img ]);
my $stats = sub { SmartyTest::emulator_stats($gw->{emu})->{requests_total} };

sub rec {
    my (%o) = @_;
    my $space = delete $o{space} // '1';
    return SmartyTest::call($url, 'persons/recognize',
        meta => { space => $space, images => [ { name => 'file_0' } ] },
        images => \@one, %o);
}

sub set {
    my (%o) = @_;
    return SmartyTest::call($url, 'persons/set',
        meta => { space => '1', images => [ { name => 'file_0', person_id => 7 } ] },
        images => \@one, %o);
}


my $before = $stats->();

my $r = rec();
is_error($r, 401, 'missing_key', 'no key');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer /, 'WWW-Authenticate: Bearer');
is_error(rec(key => 'sgw_not_a_key'), 401, 'unknown_key', 'an unknown key');
is_error(rec(headers => { Authorization => "Basic " . $gw->{keys}{demo} }),
         401, 'missing_key', 'a Basic authorization is no key');
is_error(rec(query => 'oauth_provider=mcs&oauth_token=wrong'),
         401, 'unknown_key', 'an unknown key in the query');
is_error(rec(key => $gw->{token}), 401, 'unknown_key',
         'the upstream token is no client key');

# the read-only client
is_error(set(key => $gw->{keys}{reader}), 403, 'method_forbidden',
         'the reader may not set');
is_error(SmartyTest::call($url, 'persons/truncate', key => $gw->{keys}{reader},
                          meta => { space => '1' }),
         403, 'method_forbidden', 'the reader may not truncate');
is_error(rec(key => $gw->{keys}{reader}, space => '2'), 403, 'space_forbidden',
         'the reader may not use space 2');
is_error(rec(key => $gw->{keys}{space2}, space => '1'), 403, 'space_forbidden',
         'a client of space 2 may not use space 1');
is($stats->(), $before, 'no refused request reached the upstream');

$r = rec(key => $gw->{keys}{reader});
is($r->{status}, 200, 'the reader may recognize in space 1');
$r = rec(key => $gw->{keys}{space2}, space => '2');
is($r->{status}, 200, 'the space 2 client may recognize in space 2');

# key in the query, as scripts written for the API send it
$r = rec(query => "oauth_provider=mcs&oauth_token=$gw->{keys}{demo}&x=1");
is($r->{status}, 200, 'the key as oauth_token in the query');
my $last = SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json};
unlike($last->{query}, qr/\Q$gw->{keys}{demo}\E/, 'the client key did not go upstream');
is(scalar(() = $last->{query} =~ /oauth_token=/g), 1, 'one oauth_token upstream');
is(scalar(() = $last->{query} =~ /oauth_provider=/g), 1, 'one oauth_provider upstream');
unlike($last->{query}, qr/(^|&)x=1(&|$)/,
       'other query parameters do not pass (no smarty_upstream_args)');

# the header wins over the query
$r = rec(key => $gw->{keys}{demo}, query => 'oauth_token=nonsense');
is($r->{status}, 200, 'Authorization is used before oauth_token');

# reload picks up a changed clients file (a reload needs nginx's master
# process, which the valgrind runs do without)
SKIP: {
    skip 'no master process under valgrind: nothing to reload', 4
        if $ENV{SMARTY_VALGRIND};

    my $newkey = 'sgw_new_' . SmartyTest::random_hex(16);
    my @clients = grep { $_->{name} ne 'space2' } @{ $gw->{clients} };
    SmartyTest::clients_file("$gw->{dir}/clients.json",
        @clients, { name => 'newcomer', key => $newkey, spaces => ['1'],
                    methods => ['persons/recognize'] });
    is_error(rec(key => $newkey), 401, 'unknown_key', 'a new key before reload');
    my ($rc, $out) = SmartyTest::nginx_reload($gw->{ngx});
    is($rc, 0, 'nginx -s reload') or diag $out;
    ok(SmartyTest::wait_until(sub { rec(key => $newkey)->{status} == 200 }, 10),
       'the new key works after reload');
    ok(SmartyTest::wait_until(sub { rec(key => $gw->{keys}{space2}, space => '2')->{status} == 401 }, 10),
       'a removed client is refused after reload');
}

done_testing;
