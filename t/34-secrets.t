# The upstream token appears in no answer and no log line at info level;
# the client key appears in no log line.
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
SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/faults?reset=0");

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

done_testing;
