# Every validation rule: a 4xx in the API's envelope with a stable code, and
# nothing reaches the upstream.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);

my $limits = <<'EOF';
        location /limits/api/v1/ {
            smarty_gateway on;
            smarty_api_prefix /limits/api/v1/;
            smarty_upstream /_smarty_upstream/;
            smarty_upstream_token_file %%TOKEN_FILE%%;
            smarty_clients_file %%CLIENTS_FILE%%;
            smarty_max_images 3;
            smarty_max_image_size 64k;
            smarty_max_meta_size 512;
        }
EOF

my $gw = SmartyTest::start_gateway(server => $limits);

my $url = $gw->{url};
my $key = $gw->{keys}{demo};
my $img = SmartyTest::alone_photo('rachel');
my $emu_requests = sub { SmartyTest::emulator_stats($gw->{emu})->{requests_total} };


sub raw_post {
    my ($path, $ctype, $body, %o) = @_;
    my %h = (Authorization => "Bearer $key");
    $h{'Content-Type'} = $ctype if defined $ctype;
    return SmartyTest::http('POST', "$url$path", headers => \%h, body => $body);
}

sub call {
    my ($path, %o) = @_;
    return SmartyTest::call($url, $path, key => $key, %o);
}

my $before = $emu_requests->();

my $rec = { space => '1', images => [ { name => 'file_0' } ] };
my @one = ([ 'file_0', $img ]);

# content type and framing
is_error(raw_post('/api/v1/persons/recognize', 'application/json', '{}'),
         400, 'bad_content_type', 'JSON body instead of multipart');
is_error(raw_post('/api/v1/persons/recognize', undef, 'x'),
         400, 'bad_content_type', 'no Content-Type');
is_error(raw_post('/api/v1/persons/recognize', 'multipart/form-data', 'x'),
         400, 'bad_boundary', 'no boundary');
is_error(raw_post('/api/v1/persons/recognize',
                  'multipart/form-data; boundary=' . ('b' x 71), 'x'),
         400, 'bad_boundary', 'boundary longer than 70');
is_error(raw_post('/api/v1/persons/recognize',
                  'multipart/form-data; boundary=', 'x'),
         400, 'bad_boundary', 'empty boundary');
{
    my ($body, $ct) = SmartyTest::api_body(meta => $rec, images => \@one);
    $body =~ s/--\r\n\z//;
    is_error(raw_post('/api/v1/persons/recognize', $ct, $body),
             400, 'bad_multipart', 'no closing delimiter');
    is_error(raw_post('/api/v1/persons/recognize', $ct, 'no delimiter at all'),
             400, 'bad_multipart', 'no delimiter at all');
}
{
    my $b = 'BoUnDaRy';
    my $body = "--$b\r\nContent-Type: image/jpeg\r\n\r\n$img\r\n--$b--\r\n";
    # a nameless part is skipped, as the API's form reader skips it:
    # this body then has no meta at all
    is_error(raw_post('/api/v1/persons/recognize',
                      "multipart/form-data; boundary=$b", $body),
             400, 'missing_meta', 'a part without a name is skipped');
}
is_error(call('persons/recognize', meta => $rec,
              images => [ @one, [ 'file_0', $img ] ]),
         400, 'duplicate_part', 'two parts with one name');
{
    my ($body, $ct) = SmartyTest::multipart(parts => [
        [ 'meta', undef, 'application/json', '{"space":"1","images":[]}' ],
        [ 'meta', undef, 'application/json', '{"space":"1","images":[]}' ] ]);
    is_error(raw_post('/api/v1/persons/recognize', $ct, $body),
             400, 'duplicate_part', 'two meta parts');
}

# meta
is_error(call('persons/recognize', images => \@one),
         400, 'missing_meta', 'no meta part');
is_error(call('persons/recognize', meta => '{"space":', images => \@one),
         400, 'bad_meta', 'meta is not JSON');
is_error(call('persons/recognize', meta => '[1,2]', images => \@one),
         400, 'bad_meta', 'meta is an array');
is_error(call('persons/recognize', meta => '{"space":"1"} x', images => \@one),
         400, 'bad_meta', 'trailing garbage after meta');
for my $space ('1x', '10', '', 'a') {
    is_error(call('persons/recognize',
                  meta => { space => $space, images => [ { name => 'file_0' } ] },
                  images => \@one),
             400, 'bad_space', "space \"$space\"");
}
is_error(call('persons/recognize',
              meta => '{"space":1,"images":[{"name":"file_0"}]}', images => \@one),
         400, 'bad_space', 'space as a number');
is_error(call('persons/recognize', meta => { images => [ { name => 'file_0' } ] },
              images => \@one),
         400, 'bad_space', 'no space');
is_error(call('persons/recognize', meta => { space => '1', images => 'file_0' },
              images => \@one),
         400, 'bad_images', 'images is not an array');
is_error(call('persons/recognize', meta => { space => '1', images => [ {} ] },
              images => \@one),
         400, 'bad_images', 'an image entry without a name');
is_error(call('persons/recognize', meta => { space => '1' }, images => \@one),
         400, 'bad_images', 'no images array');
is_error(call('persons/recognize',
              meta => { space => '1', images => [ { name => 'file_0' }, { name => 'file_0' } ] },
              images => \@one),
         400, 'duplicate_image', 'one name twice in images');
is_error(call('persons/recognize',
              meta => { space => '1', images => [ { name => 'file_0' }, { name => 'file_1' } ] },
              images => \@one),
         400, 'unknown_image', 'images names a missing part');
is_error(call('persons/recognize', meta => $rec,
              images => [ @one, [ 'file_1', $img ] ]),
         400, 'unreferenced_image', 'a part not named in images');
is_error(call('persons/recognize',
              meta => '{"space":"1","create_new":"yes","images":[{"name":"file_0"}]}',
              images => \@one),
         400, 'bad_create_new', 'create_new is not a boolean');
for my $pid ('"1"', '1.5', '0', '-3', 'null') {
    is_error(call('persons/set',
                  meta => qq({"space":"1","images":[{"name":"file_0","person_id":$pid}]}),
                  images => \@one),
             400, 'bad_person_id', "person_id $pid");
}
is_error(call('persons/set', meta => $rec, images => \@one),
         400, 'bad_person_id', 'set without person_id');
is_error(call('persons/delete',
              meta => { space => '1', images => [ { name => 'x', person_id => 1 } ] },
              images => \@one),
         400, 'unexpected_image', 'delete with a part that names no entry');
is_error(call('objects/detect',
              meta => { mode => ['object', 'unicorn'], images => [ { name => 'file_0' } ] },
              images => \@one),
         400, 'bad_mode', 'an unknown detection mode');

# limits (the limits location: 3 images, 64 KB per image, 512 bytes of meta)
my $lim = "$url/limits/api/v1";
my @four = map { [ "file_$_", SmartyTest::alone_photo("p$_") ] } 0 .. 3;
is_error(SmartyTest::call("$url/limits", 'persons/recognize', key => $key,
             meta => { space => '1', images => [ map { { name => $_->[0] } } @four ] },
             images => \@four),
         413, 'too_many_images', 'more images than smarty_max_images');
is_error(SmartyTest::call("$url/limits", 'persons/recognize', key => $key,
             meta => $rec,
             images => [ [ 'file_0', SmartyTest::alone_photo('big', pad => 70000) ] ]),
         413, 'image_too_large', 'an image over smarty_max_image_size');
is_error(SmartyTest::call("$url/limits", 'persons/recognize', key => $key,
             meta => { space => '1', images => [ { name => 'file_0' } ], pad => 'x' x 600 },
             images => \@one),
         413, 'meta_too_large', 'meta over smarty_max_meta_size');
{
    my @many = map { [ "f$_", "\xFF\xD8\xFF" ] } 1 .. 101;
    is_error(call('persons/recognize',
                  meta => { space => '1', images => [ map { { name => $_->[0] } } @many ] },
                  images => \@many),
             413, 'too_many_images', '101 images (the default limit is 100)');
}
{
    my $r = SmartyTest::raw_request($gw->{ngx}{port},
        "POST /api/v1/persons/recognize HTTP/1.1\r\nHost: x\r\n"
        . "Authorization: Bearer $key\r\nConnection: close\r\n"
        . "Content-Type: multipart/form-data; boundary=b\r\n"
        . "Content-Length: 90000000\r\n\r\n--b\r\n");
    is_error($r, 413, 'body_too_large', 'a body over client_max_body_size');
}

# endpoints and methods
is_error(call('persons/unknown', meta => $rec, images => \@one),
         404, 'unknown_endpoint', 'an unknown method under the API prefix');
is_error(call('persons', meta => $rec, images => \@one),
         404, 'unknown_endpoint', 'a group without a method');
is_error(SmartyTest::http('POST', "$url/elsewhere"), 404, 'unknown_endpoint',
         'outside the API prefix');
{
    my $r = SmartyTest::http('GET', "$url/api/v1/persons/recognize",
                             headers => { Authorization => "Bearer $key" });
    is_error($r, 405, 'method_not_allowed', 'GET');
    is($r->{headers}{allow}, 'POST', 'Allow: POST');
}

is($emu_requests->(), $before, 'not one bad request reached the upstream');

# and a good request still works after all that
my $r = call('persons/recognize', meta => $rec, images => \@one);
is($r->{status}, 200, 'a valid request passes');
is($emu_requests->(), $before + 1, 'and reaches the upstream once');

done_testing;
