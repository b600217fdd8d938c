# Unusual but valid multipart bodies pass the gateway, byte for byte: quoted
# boundary, preamble and epilogue, lower-case header names, no Content-Type
# on meta (as curl -F and smarty.py send it), chunked transfer encoding; and
# what real clients of the API send: smarty.php's nameless placeholder
# parts, a Go SDK's parts on delete, PHP's file paths as part names.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);
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

# --- real clients -------------------------------------------------------------

sub last_sha { SmartyTest::http('GET', "$gw->{emu}{url}/_emulator/last")->{json}{body_sha256} }

sub post {
    my ($path, $body, $ct) = @_;
    return SmartyTest::http('POST', "$url/api/v1/$path",
        headers => { 'Content-Type' => $ct, Authorization => "Bearer $key" },
        body => $body);
}

# the vendor's smarty.php: delete and truncate with a part named "" holding
# placeholder content; the API skips it, as Go's form reader does
for my $m ([ 'persons/truncate', '{"space":"3"}' ],
           [ 'persons/delete', '{"space":"3","images":[{"name":"x","person_id":1}]}' ])
{
    my ($path, $meta) = @$m;
    my ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json', $meta ],
        [ '', '', 'application/octet-stream', 'placeholder' ] ]);
    my $r = post($path, $body, $ct);
    is($r->{status}, 200, "smarty.php's $path with a nameless part: 200")
        or diag $r->{content};
    is(last_sha(), sha256_hex($body), '... forwarded byte for byte');
}

# a nameless part among images is skipped too: not an image, not counted
{
    my ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json', $meta ],
        [ '', '', 'application/octet-stream', 'placeholder' ],
        [ 'file_0', 'a.jpg', 'image/jpeg', $img ] ]);
    my $r = post('persons/recognize', $body, $ct);
    is($r->{status}, 200, 'a nameless part before an image: 200') or diag $r->{content};
    is(scalar @{ $r->{json}{body}{objects} // [] }, 1, 'one image answered');
}

# a Go SDK: persons/delete with a file part for every name of meta.images
{
    my ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json',
          '{"space":"3","images":[{"name":"file_0","person_id":7},'
          . '{"name":"file_1","person_id":8}]}' ],
        [ 'file_0', 'file_0', 'application/octet-stream', $img ],
        [ 'file_1', 'file_1', 'application/octet-stream', $img ] ]);
    my $r = post('persons/delete', $body, $ct);
    is($r->{status}, 200, 'a Go SDK\'s delete with a part per name: 200')
        or diag $r->{content};
    is(scalar @{ $r->{json}{body}{objects} // [] }, 2, 'two entries answered');
    is(last_sha(), sha256_hex($body), '... forwarded byte for byte');
}

# PHP clients name the part after the photo's path
{
    my $path = '/var/www/app/storage/uploads/2026/11/28/' . ('p' x 960) . '.jpg';
    my ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json',
          qq({"space":"1","images":[{"name":"$path"}]}) ],
        [ $path, 'photo.jpg', 'image/jpeg', $img ] ]);
    my $r = post('persons/recognize', $body, $ct);
    is($r->{status}, 200, 'a 1 KB path as the part name: 200') or diag $r->{content};
    is($r->{json}{body}{objects}[0]{name}, $path, '... answered under that name');

    my $long = 'n' x 4097;
    ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json',
          qq({"space":"1","images":[{"name":"$long"}]}) ],
        [ $long, 'photo.jpg', 'image/jpeg', $img ] ]);
    $r = post('persons/recognize', $body, $ct);
    is_error($r, 400, 'bad_part_headers', 'a part name over 4096 bytes');
    like($r->{json}{body}{error} // '', qr/name is longer than 4096 bytes/,
         '... and the sentence says so');
}

# what API clients send their token as: the 401 names it
{
    my $r = SmartyTest::call($url, 'persons/recognize',
        meta => { space => '1', images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $img ] ]);
    is_error($r, 401, 'missing_key', 'no key');
    like($r->{json}{body}{error} // '', qr/Authorization: Bearer.*oauth_token/,
         'the 401 names both ways to send the key');
}

done_testing;
