# The upstream down, slow, failing, resetting, or refusing the gateway's
# token: the client gets an error in the envelope, never an nginx page.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);

my $gw = SmartyTest::start_gateway(read_timeout => '1s');
my $url = $gw->{url};
my $key = $gw->{keys}{demo};
my $img = SmartyTest::alone_photo('rachel');

sub rec {
    return SmartyTest::call($url, 'persons/recognize', key => $key,
        meta => { space => '1', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ]);
}

sub faults {
    my ($q) = @_;
    my $r = SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?$q");
    is($r->{status}, 200, "emulator faults: $q");
}


is(rec()->{status}, 200, 'healthy upstream: 200');

faults('fail_5xx=1');
is_error(rec(), 502, 'upstream_error', 'upstream 5xx');

faults('fail_5xx=0&hang=1');
my $t0 = Time::HiRes::time();
is_error(rec(), 504, 'upstream_timeout', 'upstream slower than proxy_read_timeout');
my $took = Time::HiRes::time() - $t0;
ok($took < 8, "the timeout is the configured one, not the client's (${took}s)");

faults('hang=0&reset=1');
is_error(rec(), 502, 'upstream_unavailable', 'upstream resets the connection');

faults('reset=0&temp_error=1');
my $r = rec();
is($r->{status}, 200, 'per-image temporary errors pass as the API answers them');
is(SmartyTest::objects_by_name($r)->{file_0}{status}, 2, 'image status 2');

faults('temp_error=0');
is(rec()->{status}, 200, 'healthy again');

# the gateway's token refused upstream
{
    my $bad = SmartyTest::start_gateway(emu => $gw->{emu}, token => 'not-the-token');
    $r = SmartyTest::call($bad->{url}, 'persons/recognize', key => $bad->{keys}{demo},
        meta => { space => '1', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ]);
    is_error($r, 502, 'upstream_auth_failed', 'the upstream refuses the gateway token');
    like(SmartyTest::error_log($bad->{ngx}), qr/rejected the gateway's token/,
         'and the error log says why');
}

# upstream down
SmartyTest::stop_proc($gw->{emu});
is_error(rec(), 502, 'upstream_unavailable', 'upstream down');

done_testing;
