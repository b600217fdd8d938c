# Bodies that nginx spills to a temp file: parsed, hashed and forwarded where
# they lie.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use Digest::SHA qw(sha256_hex);

my $gw = SmartyTest::start_gateway(body_buffer => '16k', error_level => 'info');
my $url = $gw->{url};
my $key = $gw->{keys}{demo};

my @imgs = map { [ "file_$_", SmartyTest::alone_photo("big$_", pad => 3_000_000 + $_ * 1000) ] } 0 .. 2;
my $r = SmartyTest::call($url, 'persons/recognize', key => $key,
    meta => { space => '1', images => [ map { { name => $_->[0] } } @imgs ] },
    images => \@imgs);
is($r->{status}, 200, 'three images of 3 MB: 200') or diag $r->{content};
my $objs = SmartyTest::objects_by_name($r);
is(scalar(keys %$objs), 3, 'three answers');
is($objs->{file_2}{persons}[0]{tag}, 'undefined', 'the face of the last image is found');

like(SmartyTest::error_log($gw->{ngx}), qr/client request body is buffered to a temporary file/,
     'the body went to a temp file');

my $last = SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json};
is($last->{body_sha256}, sha256_hex($r->{request_body}), 'forwarded byte for byte');
is($last->{body_length}, length $r->{request_body}, 'length ' . length $r->{request_body});

my ($line) = grep { /method=persons\/recognize/ } split /\n/,
    SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log");
my ($digests) = ($line // '') =~ /sha256=(\S+)/;
is($digests, join(',', map { sha256_hex($_->[1]) } @imgs),
   'every image hashed across the temp file ($smarty_image_sha256)');

# a 4 MB image passes, one byte more does not
my $four = SmartyTest::alone_photo('four');
$four .= "\0" x (4 * 1024 * 1024 - length $four);
$r = SmartyTest::call($url, 'persons/recognize', key => $key,
    meta => { space => '1', images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', $four ] ]);
is($r->{status}, 200, 'an image of exactly 4 MB passes');
$r = SmartyTest::call($url, 'persons/recognize', key => $key,
    meta => { space => '1', images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', $four . "\0" ] ]);
is($r->{status}, 413, 'one byte more is too large');
is($r->{json}{body}{code}, 'image_too_large', 'image_too_large');

done_testing;
