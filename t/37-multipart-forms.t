# Unusual but valid multipart bodies pass the gateway, byte for byte: quoted
# boundary, preamble and epilogue, lower-case header names, no Content-Type
# on meta (as curl -F and smarty.py send it), chunked transfer encoding.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use Digest::SHA qw(sha256_hex);

my $gw = SmartyTest::start_gateway();
my $url = $gw->{url};
my $key = $gw->{keys}{demo};
my $img = SmartyTest::alone_photo('rachel');
my $meta = '{"space":"1","images":[{"name":"file_0"}]}';

sub check {
    my ($name, %o) = @_;
    my ($body, $ct) = SmartyTest::multipart(
        parts => [ [ 'meta', undef, $o{meta_ct}, $meta ],
                   [ 'file_0', $o{filename} // 'a.jpg', 'image/jpeg', $img ] ],
        %o);
    my $r = SmartyTest::http('POST', "$url/api/v1/persons/recognize",
        headers => { 'Content-Type' => $ct, Authorization => "Bearer $key" },
        body => $body);
    subtest $name => sub {
        is($r->{status}, 200, 'answers 200') or diag $r->{content};
        is(SmartyTest::objects_by_name($r)->{file_0}{persons}[0]{tag}, 'undefined',
           'the face is found');
        my $last = SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json};
        is($last->{body_sha256}, sha256_hex($body), 'forwarded byte for byte');
    };
}

check('plain');
check('quoted boundary', quote_boundary => 1);
check('preamble and epilogue', preamble => "this is a preamble\r\n",
      epilogue => "\r\nthis is an epilogue\r\n");
check('lower-case header names', lower_headers => 1);
check('meta without Content-Type', meta_ct => undef);
check('empty filename', filename => '');
check('a boundary that looks like data', boundary => '--------------------------' . 'a' x 20);
check("a boundary with ' ( ) + , - . / : = ? characters",
      boundary => "a'()+,-./:=?b", quote_boundary => 1);

# chunked transfer encoding
{
    my ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json', $meta ],
        [ 'file_0', 'a.jpg', 'image/jpeg', $img ] ]);
    my $chunked = '';
    for (my $i = 0; $i < length $body; $i += 100) {
        my $c = substr($body, $i, 100);
        $chunked .= sprintf("%x\r\n%s\r\n", length $c, $c);
    }
    $chunked .= "0\r\n\r\n";
    my $r = SmartyTest::raw_request($gw->{ngx}{port},
        "POST /api/v1/persons/recognize HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Authorization: Bearer $key\r\nContent-Type: $ct\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n$chunked");
    is($r->{status}, 200, 'a chunked body passes') or diag $r->{content};
    my $last = SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json};
    is($last->{body_sha256}, sha256_hex($body), 'and goes upstream de-chunked, byte for byte');
}

done_testing;
