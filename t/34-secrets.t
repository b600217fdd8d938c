# The upstream token appears in no answer and no log line at info level;
# the client key appears in no log line the module writes or gives context
# to, in any spelling of oauth_token; at notice, the level the docs
# prescribe, not even in nginx's own lines about requests it refuses.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;

my $gw = SmartyTest::start_gateway(read_timeout => '1s', error_level => 'info');
my $url = $gw->{url};
my $key = $gw->{keys}{demo};
my $img = SmartyTest::alone_photo('rachel');
my @answers;

sub go {
    my (%o) = @_;
    my $r = SmartyTest::call($url, $o{path} // 'persons/recognize',
        meta => $o{meta} // { space => '1', images => [ { name => 'file_0' } ] },
        images => $o{images} // [ [ 'file_0', $img ] ], %o);
    push @answers, join("\n", map { "$_: $r->{headers}{$_}" } keys %{ $r->{headers} })
                   . "\n" . ($r->{content} // '');
    return $r;
}

go(key => $key);
go(query => "oauth_provider=mcs&oauth_token=$key");
go(query => "oauth_token=$key", meta => { space => 'x' });
go(key => 'nope');
go();
go(key => $gw->{keys}{reader}, path => 'persons/set');
go(key => $key, path => 'persons/none');
SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?fail_5xx=1");
go(key => $key);
SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?fail_5xx=0&hang=1");
go(key => $key);
SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?hang=0&reset=1");
go(query => "oauth_token=$key");
# the upstream times out: nginx's error line carries the request line,
# the key under an encoded name in it
SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?reset=0&hang=1");
go(query => "oauth%5Ftoken=$key");
go(query => "OAUTH_TOKEN=$key", key => $key);
SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?hang=0");
like(SmartyTest::error_log($gw->{ngx}), qr/upstream timed out.*oauth%5Ftoken=\*\*\*/,
     'an error line with the request line: the encoded oauth_token redacted');

my $token = $gw->{token};
is(scalar(grep { index($_, $token) >= 0 } @answers), 0,
   'the upstream token is in no answer (' . scalar(@answers) . ' answers)');

my $logs = join '', map { SmartyTest::slurp("$gw->{ngx}{dir}/$_") }
    qw(error.log access.log gateway.log stderr.log);
ok(length $logs, 'the logs are not empty');
is(index($logs, $token), -1, 'the upstream token is in no log line');
is(index($logs, $key), -1, 'the client key is in no log line');
like(SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log"), qr/oauth_token=\*\*\*/,
     '$smarty_redacted_args shows a redacted oauth_token');
like(SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log"), qr/oauth%5Ftoken=\*\*\*/,
     '... under an encoded name too');
like(SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log"), qr/OAUTH_TOKEN=\*\*\*/,
     '... in any case');

# --- requests nginx refuses before the module sees them ------------------------
#
# nginx logs them at info, with what the client sent ("client sent duplicate
# header line: \"Authorization: Bearer ...\"") and the request line (a key
# in its query string): the docs prescribe notice.  At notice none of them
# shows a key; at info they would, which is why.

my @refused = (
    [ 'a duplicate Authorization',
      "POST /api/v1/persons/recognize HTTP/1.1\r\nHost: gw\r\n"
      . "Authorization: Bearer KEY\r\nAuthorization: Bearer KEY\r\n"
      . "Content-Length: 0\r\nConnection: close\r\n\r\n", 400 ],
    [ 'a bad header line',
      "POST /api/v1/persons/recognize?oauth_token=KEY HTTP/1.1\r\n"
      . "Host: gw\r\nX-A\x01: b\r\nConnection: close\r\n\r\n", 400 ],
    [ 'a header over the buffer',
      "POST /api/v1/persons/recognize?oauth_token=KEY HTTP/1.1\r\n"
      . "Host: gw\r\nX-Pad: " . ('p' x 9000) . "\r\nConnection: close\r\n\r\n",
      400 ],
    [ 'no Host',
      "POST /api/v1/persons/recognize?oauth_token=KEY HTTP/1.1\r\n"
      . "Connection: close\r\n\r\n", 400 ],
    [ 'two Hosts',
      "POST /api/v1/persons/recognize?oauth_token=KEY HTTP/1.1\r\n"
      . "Host: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400 ],
    [ '%00 in the URI',
      "POST /api/v1/%00?oauth_token=KEY HTTP/1.1\r\nHost: gw\r\n"
      . "Connection: close\r\n\r\n", 400 ],
    [ 'a URI over the limit',
      "POST /api/v1/persons/recognize?oauth_token=KEY&p=" . ('u' x 9000)
      . " HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 414 ],
);

for my $level (qw(notice info)) {
    my $g = SmartyTest::start_gateway(error_level => $level,
                                      emu => $gw->{emu}, token => $token);
    my $k = $g->{keys}{demo};

    for my $case (@refused) {
        my ($what, $bytes, $status) = @$case;
        $bytes =~ s/KEY/$k/g;
        my $r = SmartyTest::raw_request($g->{ngx}{port}, $bytes);
        is($r->{status}, $status, "$level: $what: HTTP $status");
        unlike($r->{content} // '', qr/\Q$k\E/, "$level: $what: not in the answer");
    }

    # the log lines of the requests above are written when they end
    my $log = SmartyTest::error_log($g->{ngx});

    if ($level eq 'notice') {
        is(index($log, $k), -1, 'notice: the key is in no error log line');
        is(index(SmartyTest::slurp("$g->{ngx}{dir}/gateway.log"), $k), -1,
           'notice: nor in the access log');
    } else {
        like($log, qr/client sent duplicate header line: "Authorization: Bearer \Q$k\E/,
             'info: nginx\'s own line shows the key a client sent: why the docs '
             . 'prescribe notice');
    }
}

done_testing;
