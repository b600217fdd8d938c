# The walkthrough at the end of upstream-api.md, step by step, through the
# gateway, with annotated JPEGs.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;

my $gw = SmartyTest::start_gateway();
my $url = $gw->{url};
my $key = $gw->{keys}{demo};
my $group = SmartyTest::group_photo();
my $rachel = SmartyTest::alone_photo('rachel');

sub recognize {
    my ($space, $photo, %o) = @_;
    return SmartyTest::call($url, 'persons/recognize', key => $key,
        meta => { space => $space, create_new => $o{create_new} ? JSON::PP::true : JSON::PP::false,
                  images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $photo ] ]);
}

sub tags_of {
    my ($res) = @_;
    return SmartyTest::tags(SmartyTest::objects_by_name($res)->{file_0});
}

# 1. six faces, all undefined
my $r = recognize('1', $group);
is($r->{status}, 200, 'step 1: recognize answers 200');
is($r->{json}{status}, 200, 'step 1: envelope status 200');
is_deeply(tags_of($r), [ ('undefined') x 6 ], 'step 1: six undefined faces');
is($r->{headers}{'content-type'}, 'application/json', 'answer is JSON');

# 2. set Rachel as person 1 in space 1
$r = SmartyTest::call($url, 'persons/set', key => $key,
    meta => { space => '1', images => [ { name => 'file_0', person_id => 1 } ] },
    images => [ [ 'file_0', $rachel ] ]);
is($r->{status}, 200, 'step 2: set answers 200');
is(SmartyTest::objects_by_name($r)->{file_0}{status}, 0, 'step 2: image status 0');

# 3. Rachel is person1, the others undefined
$r = recognize('1', $group);
is_deeply(tags_of($r), [ 'person1', ('undefined') x 5 ],
          'step 3: Rachel is person1, five stay undefined');

# 4. on an empty space, create_new makes six persons; Rachel alone is found
$r = recognize('3', $group, create_new => 1);
is_deeply([ sort @{ tags_of($r) } ], [ map { "person$_" } 1 .. 6 ],
          'step 4: create_new makes person1..person6');
my %tag_of = map { $SmartyTest::FRIENDS[$_] => tags_of($r)->[$_] } 0 .. 5;
$r = recognize('3', $rachel);
is_deeply(tags_of($r), [ $tag_of{rachel} ], 'step 4: Rachel alone is found');

# 5. space 2 knows nobody of space 1
$r = recognize('2', $group);
is_deeply(tags_of($r), [ ('undefined') x 6 ], 'step 5: space 2 knows nobody');

# 6. delete person 1 from space 1; truncate space 3
$r = SmartyTest::call($url, 'persons/delete', key => $key,
    meta => { space => '1', images => [ { name => 'del', person_id => 1 } ] });
is($r->{status}, 200, 'step 6: delete answers 200');
is(SmartyTest::objects_by_name($r)->{del}{status}, 0, 'step 6: delete status 0');
$r = recognize('1', $group);
is_deeply(tags_of($r), [ ('undefined') x 6 ], 'step 6: Rachel undefined again');

$r = SmartyTest::call($url, 'persons/truncate', key => $key,
    meta => { space => '3' });
is($r->{status}, 200, 'step 6: truncate answers 200');
is_deeply($r->{json}{body}, {}, 'step 6: truncate body is {}');
$r = recognize('3', $group);
is_deeply(tags_of($r), [ ('undefined') x 6 ], 'step 6: after truncate nobody is known');

# the client's bytes reach the upstream unchanged
$r = recognize('1', $group);
my $last = SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json};
is($last->{body_sha256}, Digest::SHA::sha256_hex($r->{request_body}),
   'the upstream received the client body byte for byte');
if (defined $gw->{token}) {
    like($last->{query}, qr/(^|&)oauth_token=\Q$gw->{token}\E(&|$)/,
         'the gateway injected its upstream token');
} else {
    # a gateway in OAuth mode: a token of the emulator's endpoint
    like($last->{query}, qr/(^|&)oauth_token=[0-9a-f]{64}(&|$)/,
         'the gateway injected an upstream token of the OAuth endpoint');
}
unlike($last->{query}, qr/\Q$key\E/, 'not the client key');
like($last->{query}, qr/(^|&)oauth_provider=mcs(&|$)/, 'and oauth_provider');
ok(!exists $last->{headers}{authorization}, 'the client key did not go upstream');

# a stateless detector passes too
$r = SmartyTest::call($url, 'objects/detect', key => $key,
    meta => { mode => ['object', 'scene'], images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', $group ] ]);
is($r->{status}, 200, 'objects/detect passes through');
is($r->{json}{status}, 200, 'objects/detect envelope 200');

done_testing;
