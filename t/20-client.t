# The command-line client build/smarty: flags, the exact request it sends
# (against a small recording server started here), its exit statuses,
# secrets in -v, the walkthrough's first step against the emulator, and the
# keygen and hash-key subcommands.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use POSIX ();

my $smarty = SmartyTest::client_path();
plan skip_all => "no client at $smarty (make client)" unless -x $smarty;

my $tmp = SmartyTest::tempdir();
my $runs = 0;

# --- helpers ----------------------------------------------------------------

# Runs the client; %o: args, env (added to a clean environment), stdin.
# Returns {rc, out, err, json}.
sub client {
    my (%o) = @_;
    my $n = ++$runs;
    my ($in, $out, $err) = map { "$tmp/run$n.$_" } qw(in out err);
    SmartyTest::spew($in, $o{stdin} // '');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $in or POSIX::_exit(126);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        delete @ENV{qw(SMARTY_KEY http_proxy https_proxy HTTP_PROXY
                       HTTPS_PROXY all_proxy ALL_PROXY)};
        %ENV = (%ENV, %{ $o{env} // {} });
        exec(SmartyTest::wrap_cmd($smarty, @{ $o{args} // [] }))
            or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $r = { rc => ($? & 127) ? -1 : $? >> 8,
              out => SmartyTest::slurp($out), err => SmartyTest::slurp($err) };
    $r->{json} = eval { JSON::PP->new->decode($r->{out}) };
    return $r;
}

# A server that records every request it gets and answers what the test
# put in $rec->{dir}/answer ("<http status>\n<body>").
sub start_recorder {
    my $dir = "$tmp/recorder";
    mkdir $dir;
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp',
                                  ReuseAddr => 1)
        or die "listen: $!";
    my $port = $l->sockport;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $n = 0;
        while (my $c = $l->accept) {
            binmode $c;
            my $head = '';
            while (defined(my $line = <$c>)) {
                $head .= $line;
                last if $line eq "\r\n";
            }
            my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
            print $c "HTTP/1.1 100 Continue\r\n\r\n"
                if $head =~ /^expect:\s*100-continue/mi;
            my $body = '';
            while (defined $len && length($body) < $len) {
                read($c, $body, $len - length($body), length $body) or last;
            }
            $n++;
            SmartyTest::spew("$dir/$n.req", $head . $body);
            my ($status, $content) =
                split /\n/, SmartyTest::slurp("$dir/answer"), 2;
            $content //= '';
            print $c "HTTP/1.1 $status Recorded\r\n"
                . "Content-Type: application/json\r\n"
                . "Content-Length: " . length($content) . "\r\n"
                . "Connection: close\r\n\r\n" . $content;
            close $c;
        }
        POSIX::_exit(0);
    }
    close $l;
    # stopped with everything else at END
    push @SmartyTest::PROCS, { name => 'recorder', pid => $pid };
    return { port => $port, pid => $pid, dir => $dir,
             url => "http://127.0.0.1:$port" };
}

sub set_answer {
    my ($rec, $status, $content) = @_;
    $content = JSON::PP->new->canonical->encode($content) if ref $content;
    SmartyTest::spew("$rec->{dir}/answer", "$status\n$content");
}

sub recorded_count {
    my ($rec) = @_;
    my @f = glob("$rec->{dir}/*.req");
    return scalar @f;
}

# The last recorded request: {line, headers (lowercased), body, parts:
# [ {name, filename, headers, data}, ... ]}
sub last_request {
    my ($rec) = @_;
    my $raw = SmartyTest::slurp("$rec->{dir}/" . recorded_count($rec)
                                . ".req");
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($line, @h) = split /\r\n/, $head;
    my %h;
    for (@h) { my ($k, $v) = split /:\s*/, $_, 2; $h{lc $k} = $v; }
    my $req = { line => $line, headers => \%h, body => $body, parts => [] };
    my ($b) = ($h{'content-type'} // '') =~ /boundary="?([^";]+)"?/;
    return $req unless defined $b;
    my @chunks = split /\r\n--\Q$b\E/, "\r\n$body";
    shift @chunks;                      # the empty preamble
    for my $chunk (@chunks) {
        last if $chunk =~ /^--/;        # the closing delimiter
        $chunk =~ s/^\r\n//;
        my ($ph, $data) = split /\r\n\r\n/, $chunk, 2;
        my %p = (headers => {}, data => $data);
        for (split /\r\n/, $ph) {
            my ($k, $v) = split /:\s*/, $_, 2;
            $p{headers}{lc $k} = $v;
        }
        my $cd = $p{headers}{'content-disposition'} // '';
        ($p{name}) = $cd =~ /\bname="([^"]*)"/;
        ($p{filename}) = $cd =~ /\bfilename="([^"]*)"/;
        push @{ $req->{parts} }, \%p;
    }
    return $req;
}

sub envelope {
    my ($body, $status) = @_;
    return { status => $status // 200, body => $body,
             htmlencoded => JSON::PP::false, last_modified => 0 };
}

# the photos of the walkthrough: six friends, and Rachel alone
my $group = SmartyTest::group_photo();
my $rachel = SmartyTest::alone_photo('rachel');

SmartyTest::spew("$tmp/group.jpg", $group);
SmartyTest::spew("$tmp/rachel.jpg", $rachel);
SmartyTest::spew("$tmp/notes.bin", "these are not the pixels you want\n");
SmartyTest::spew("$tmp/key", "sgw_filekey_0123456789\n");

# --- --help -----------------------------------------------------------------

subtest 'help' => sub {
    my $r = client(args => [ '--help' ]);
    is($r->{rc}, 0, '--help exits 0');
    for my $f (qw(-u --url -p --photo --meta -k --key --key-file --timeout
                  -v --verbose -h --help keygen --name --spaces --methods
                  --json hash-key SMARTY_KEY))
    {
        like($r->{out}, qr/(?<![\w-])\Q$f\E(?![\w-])/, "--help mentions $f");
    }
    for my $s (0 .. 4) {
        like($r->{out}, qr/^\s+$s\s+\S/m, "--help documents exit status $s");
    }
    like($r->{out}, qr/^Example/m, '--help has an example');
    is(client(args => [ '-h' ])->{out}, $r->{out}, '-h is --help');
    is(client(args => [ 'keygen', '--help' ])->{rc}, 0, 'keygen --help');
};

# --- usage errors -----------------------------------------------------------

my $rec = start_recorder();
set_answer($rec, 200, envelope({ objects => [] }));
my $rurl = "$rec->{url}/api/v1/persons/recognize";

subtest 'usage errors exit 2 and send nothing' => sub {
    my @cases = (
        [ 'no arguments' ],
        [ 'no -u', '-p', "$tmp/group.jpg" ],
        [ '-u without a value', '-u' ],
        [ 'unknown option', '-u', $rurl, '--frobnicate' ],
        [ 'unknown short option', '-u', $rurl, '-x' ],
        [ 'stray argument', '-u', $rurl, "$tmp/group.jpg" ],
        [ 'not http', '-u', 'ftp://127.0.0.1/x' ],
        [ 'meta not JSON', '-u', $rurl, '--meta', '{"space":' ],
        [ 'meta not an object', '-u', $rurl, '--meta', '["space"]' ],
        [ 'meta with a duplicate key', '-u', $rurl,
          '--meta', '{"space":"1","space":"2"}' ],
        [ 'missing photo', '-u', $rurl, '-p', "$tmp/nonexistent.jpg" ],
        [ 'photo is a directory', '-u', $rurl, '-p', $tmp ],
        [ 'bad timeout', '-u', $rurl, '--timeout', 'soon' ],
        [ 'zero timeout', '-u', $rurl, '--timeout', '0' ],
        [ 'empty key', '-u', $rurl, '-k', '' ],
        [ 'key with a newline', '-u', $rurl, '-k', "a\r\nX-Evil: 1" ],
        [ 'missing key file', '-u', $rurl, '--key-file', "$tmp/nokey" ],
        [ '-k and --key-file', '-u', $rurl, '-k', 'x',
          '--key-file', "$tmp/key" ],
    );
    for my $c (@cases) {
        my ($what, @args) = @$c;
        my $r = client(args => \@args);
        is($r->{rc}, 2, "$what: exit 2");
        is($r->{out}, '', "$what: nothing on stdout");
        like($r->{err}, qr/^smarty: \S/, "$what: says why on stderr");
    }
    is(recorded_count($rec), 0, 'no request was sent');
    my $r = client(args => [ '-u', $rurl, '--meta', '{"space":' ]);
    like($r->{err}, qr/--meta is not valid JSON/, 'says what is wrong');
};

# --- the exact request ------------------------------------------------------

subtest 'meta.images filled in, parts in order' => sub {
    my $r = client(args => [ '-u', "$rurl?oauth_provider=mcs&oauth_token=T",
                             '-p', "$tmp/group.jpg", '-p', "$tmp/notes.bin",
                             '--meta', '{"space":"1","create_new":false}' ]);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    my $q = last_request($rec);
    is($q->{line},
       'POST /api/v1/persons/recognize?oauth_provider=mcs&oauth_token=T '
       . 'HTTP/1.1', 'the URL goes as given');
    like($q->{headers}{'content-type'}, qr{^multipart/form-data; boundary=},
         'multipart/form-data');
    ok(!exists $q->{headers}{authorization}, 'no Authorization without key');
    is_deeply([ map { $_->{name} } @{ $q->{parts} } ],
              [ qw(meta file_0 file_1) ], 'parts meta, file_0, file_1');
    my ($meta, $f0, $f1) = @{ $q->{parts} };
    is($meta->{data}, '{"space":"1","create_new":false,'
       . '"images":[{"name":"file_0"},{"name":"file_1"}]}',
       'meta: the given object plus images');
    ok(!defined $meta->{filename}, 'meta is a form field, no filename');
    is($f0->{filename}, 'group.jpg', 'file_0 filename is the base name');
    is($f0->{headers}{'content-type'}, 'image/jpeg', 'file_0 is image/jpeg');
    is($f0->{data}, $group, 'file_0 carries the file, byte for byte');
    is($f1->{filename}, 'notes.bin', 'file_1 filename');
    is($f1->{headers}{'content-type'}, 'application/octet-stream',
       'unknown extension: application/octet-stream');
    is($f1->{data}, SmartyTest::slurp("$tmp/notes.bin"), 'file_1 data');
};

subtest 'meta with images goes exactly as given' => sub {
    my $meta = '{ "space": "1",' . "\n" . '  "images": [ {"name": "file_0"} ],'
        . ' "x": 0.10 }' . "\n";
    my $r = client(args => [ '-u', $rurl, '--photo', "$tmp/rachel.jpg",
                             '--meta', $meta ]);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    my $q = last_request($rec);
    is($q->{parts}[0]{data}, $meta, 'the meta part is the --meta text');
    is($q->{parts}[1]{name}, 'file_0', 'the photo is file_0');

    $r = client(args => [ "--url=$rurl", '--meta', '{"space":"1"}' ]);
    is($r->{rc}, 0, 'no photos: exit 0');
    $q = last_request($rec);
    is_deeply([ map { $_->{name} } @{ $q->{parts} } ], [ 'meta' ],
              'no photos: meta only');
    is($q->{parts}[0]{data}, '{"space":"1"}', 'no photos: meta as given');

    $r = client(args => [ '-u', $rurl, '-p', "$tmp/rachel.jpg",
                          '--meta', " { } " ]);
    is(last_request($rec)->{parts}[0]{data}, ' {"images":[{"name":"file_0"}]}',
       'empty object: images added');

    $r = client(args => [ '-u', $rurl, '-p', "$tmp/rachel.jpg" ]);
    is(last_request($rec)->{parts}[0]{data}, '{"images":[{"name":"file_0"}]}',
       'no --meta: {} with images');
};

subtest 'the key' => sub {
    my $r = client(args => [ '-u', $rurl, '-k', 'sgw_argkey_0123456789' ]);
    is(last_request($rec)->{headers}{authorization},
       'Bearer sgw_argkey_0123456789', '-k: Authorization: Bearer');
    client(args => [ '-u', $rurl, '--key', 'sgw_long' ]);
    is(last_request($rec)->{headers}{authorization}, 'Bearer sgw_long',
       '--key');
    client(args => [ '-u', $rurl ], env => { SMARTY_KEY => 'sgw_envkey' });
    is(last_request($rec)->{headers}{authorization}, 'Bearer sgw_envkey',
       'SMARTY_KEY');
    client(args => [ '-u', $rurl, '-k', 'sgw_wins' ],
           env => { SMARTY_KEY => 'sgw_envkey' });
    is(last_request($rec)->{headers}{authorization}, 'Bearer sgw_wins',
       '-k wins over SMARTY_KEY');
    client(args => [ '-u', $rurl, '--key-file', "$tmp/key" ]);
    is(last_request($rec)->{headers}{authorization},
       'Bearer sgw_filekey_0123456789', '--key-file, first line');
};

# --- exit statuses from canned answers --------------------------------------

subtest 'exit statuses' => sub {
    my @args = ('-u', $rurl, '-p', "$tmp/rachel.jpg", '--meta',
                '{"space":"1"}');
    my $ok = envelope({ objects => [ { name => 'file_0', status => 0,
        persons => [ { tag => 'undefined', coord => [ 1, 2, 3, 4 ],
                       confidence => 0.99 } ] } ], aliases_changed =>
        JSON::PP::false });

    set_answer($rec, 200, $ok);
    my $r = client(args => \@args);
    is($r->{rc}, 0, 'all well: 0');
    is_deeply($r->{json}, $ok, 'the answer on stdout');
    like($r->{out}, qr/^\{\n  "\w+": /, 'pretty-printed');
    is($r->{err}, '', 'nothing on stderr');

    set_answer($rec, 200, envelope({ objects => [
        { name => 'file_0', status => 0 },
        { name => 'file_1', status => 2, error => 'try later' } ] }));
    $r = client(args => \@args);
    is($r->{rc}, 4, 'an image with status 2: 4');
    like($r->{err}, qr/file_1.*status 2.*try later/, 'names the image');

    set_answer($rec, 403, envelope({ error => 'no', code => 'space_forbidden' },
                                   403));
    $r = client(args => \@args);
    is($r->{rc}, 1, 'HTTP 403: 1');
    is($r->{json}{body}{code}, 'space_forbidden', 'the error on stdout');
    like($r->{err}, qr/403.*space_forbidden/, 'and a summary on stderr');

    set_answer($rec, 200, envelope({ error => 'x', code => 'y' }, 500));
    is(client(args => \@args)->{rc}, 1, 'HTTP 200, envelope 500: 1');

    set_answer($rec, 502, "<html>Bad Gateway</html>");
    $r = client(args => \@args);
    is($r->{rc}, 1, 'HTTP 502, not JSON: 1');
    is($r->{out}, '<html>Bad Gateway</html>', 'printed raw');

    set_answer($rec, 200, "not json");
    is(client(args => \@args)->{rc}, 1, 'HTTP 200, not JSON: 1');

    # a port nobody listens on
    my $port = SmartyTest::free_port();
    $r = client(args => [ '-u', "http://127.0.0.1:$port/api/v1/x",
                          '-p', "$tmp/rachel.jpg" ]);
    is($r->{rc}, 3, 'connection refused: 3');
    like($r->{err}, qr/transport/, 'says so');

    # a server that accepts and never answers
    my $l = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp');
    $r = client(args => [ '-u', 'http://127.0.0.1:' . $l->sockport . '/x',
                          '--timeout', '0.5' ]);
    is($r->{rc}, 3, 'timeout: 3');
    like($r->{err}, qr/timed out/i, 'says it timed out');
    close $l;
};

# --- -v and secrets ---------------------------------------------------------

subtest '-v shows the exchange, never the secrets' => sub {
    set_answer($rec, 200, envelope({ objects => [
        { name => 'file_0', status => 0 } ] }));
    my $key = 'sgw_VerySecretKey_do_not_print';
    my $token = 'TokenNeverPrinted42';
    my $r = client(args => [ '-u', "$rurl?oauth_provider=mcs&"
                             . "oauth_token=$token", '-k', $key, '-v',
                             '-p', "$tmp/group.jpg",
                             '--meta', '{"space":"1"}' ]);
    is($r->{rc}, 0, 'exit 0');
    my $e = $r->{err};
    unlike($e, qr/\Q$key\E/, 'the key is not shown');
    unlike($e, qr/VerySecret/, 'no part of it');
    unlike($e, qr/\Q$token\E/, 'the oauth_token is not shown');
    like($e, qr/^> Authorization: Bearer \*\*\*$/m, 'Authorization masked');
    like($e, qr{^> POST /api/v1/persons/recognize\?oauth_provider=mcs&oauth_token=\*\*\* HTTP/1\.1$}m,
         'request line, token masked');
    like($e, qr{URL: http://127\.0\.0\.1:\d+/\S*oauth_token=\*\*\*}, 'URL');
    like($e, qr/^> Content-Type: multipart\/form-data/m, 'request headers');
    like($e, qr/\Q{"space":"1","images":[{"name":"file_0"}]}\E/,
         'the meta sent');
    like($e, qr/file_0.*group\.jpg.*\b${\ length $group} bytes/,
         'part name and size');
    like($e, qr/^< HTTP\/1\.1 200/m, 'response status line');
    like($e, qr/^< Content-Type: application\/json/m, 'response headers');
    unlike($e, qr/face=rachel/, 'no image bytes');
    is(last_request($rec)->{headers}{authorization}, "Bearer $key",
       'the key was sent all the same');

    # a short token is masked too
    $r = client(args => [ '-u', "$rurl?oauth_token=T&oauth_provider=mcs",
                          '-v' ]);
    like($r->{err}, qr/oauth_token=\*\*\*&oauth_provider=mcs HTTP/,
         'a one-letter token is masked');
    unlike($r->{err}, qr/oauth_token=T/, 'and not shown');

    # a transport error does not echo the token either
    my $port = SmartyTest::free_port();
    $r = client(args => [ '-u', "http://127.0.0.1:$port/x?oauth_token=$token",
                          '-k', $key, '-v' ]);
    is($r->{rc}, 3, 'refused: 3');
    unlike($r->{err}, qr/\Q$token\E|\Q$key\E/, 'no secret in the failure');
};

# --- against the emulator: the walkthrough's first step ---------------------

subtest 'against the emulator' => sub {
    plan skip_all => 'no emulator (make emulator)'
        unless -x SmartyTest::emulator_path();
    my $emu = SmartyTest::start_emulator(token => 'T');
    my $url = "$emu->{url}/api/v1/persons/recognize"
        . "?oauth_provider=mcs&oauth_token=T";

    my $r = client(args => [ '-u', $url, '-p', "$tmp/group.jpg", '--meta',
                             '{"space":"1","create_new":false}' ]);
    is($r->{rc}, 0, 'step 1: exit 0') or diag $r->{err};
    is($r->{json}{status}, 200, 'step 1: envelope 200');
    my $o = $r->{json}{body}{objects} // [];
    is(scalar @$o, 1, 'step 1: one object');
    is($o->[0]{name}, 'file_0', 'step 1: named file_0');
    is_deeply([ map { $_->{tag} } @{ $o->[0]{persons} // [] } ],
              [ ('undefined') x 6 ], 'step 1: six undefined faces');

    my $last = SmartyTest::http('GET', "$emu->{url}/_emulator/last")->{json};
    like($last->{path} // '', qr{(?:^|/)persons/recognize$},
         'emulator saw the method');
    is($last->{query}, 'oauth_provider=mcs&oauth_token=T',
       'emulator saw the query as given');
    ok(($last->{body_length} // 0) > length $group, 'and the whole body');
    like($last->{content_type} // '', qr{^multipart/form-data},
         'emulator saw multipart');

    # images filled in from two photos
    $r = client(args => [ '-u', $url, '-p', "$tmp/group.jpg",
                          '-p', "$tmp/rachel.jpg", '--meta', '{"space":"1"}' ]);
    is($r->{rc}, 0, 'two photos: exit 0') or diag $r->{err};
    is_deeply([ map { $_->{name} } @{ $r->{json}{body}{objects} // [] } ],
              [ qw(file_0 file_1) ], 'answers file_0 and file_1');
    is(scalar @{ $r->{json}{body}{objects}[1]{persons} // [] }, 1,
       'file_1 is Rachel alone');

    # images given
    $r = client(args => [ '-u', $url, '-p', "$tmp/rachel.jpg", '--meta',
                          '{"space":"1","images":[{"name":"file_0"}]}' ]);
    is($r->{rc}, 0, 'images given: exit 0') or diag $r->{err};
    is($r->{json}{body}{objects}[0]{name}, 'file_0', 'answers file_0');

    # the key travels as a Bearer header
    $r = client(args => [ '-u', $url, '-p', "$tmp/rachel.jpg",
                          '-k', 'sgw_to_emulator', '--meta', '{"space":"1"}' ]);
    $last = SmartyTest::http('GET', "$emu->{url}/_emulator/last")->{json};
    is($last->{headers}{authorization}, 'Bearer sgw_to_emulator',
       'Authorization: Bearer KEY');

    # a wrong token: 401
    (my $bad = $url) =~ s/oauth_token=T/oauth_token=wrong/;
    $r = client(args => [ '-u', $bad, '-p', "$tmp/group.jpg",
                          '--meta', '{"space":"1"}' ]);
    is($r->{rc}, 1, 'wrong token: exit 1');
    is($r->{json}{status}, 401, 'wrong token: envelope 401');

    # not an image: status 1
    $r = client(args => [ '-u', $url, '-p', "$tmp/group.jpg",
                          '-p', "$tmp/notes.bin", '--meta', '{"space":"1"}' ]);
    is($r->{rc}, 4, 'a non-image: exit 4');
    is($r->{json}{body}{objects}[1]{status}, 1, 'file_1 has status 1');
    like($r->{err}, qr/file_1/, 'stderr names file_1');

    # -v masks the token
    $r = client(args => [ '-u', $url, '-k', 'sgw_emulator_secret', '-v',
                          '-p', "$tmp/rachel.jpg", '--meta', '{"space":"1"}' ]);
    is($r->{rc}, 0, '-v: exit 0');
    like($r->{err}, qr/oauth_token=\*\*\*/, '-v: token masked');
    unlike($r->{err}, qr/oauth_token=T\b|sgw_emulator_secret/,
           '-v: no token, no key');
};

# --- keygen and hash-key ----------------------------------------------------

subtest 'keygen' => sub {
    my $r = client(args => [ 'keygen', '--name', 'billing' ]);
    is($r->{rc}, 0, 'exit 0');
    my @lines = split /\n/, $r->{out};
    is(scalar @lines, 2, 'two lines');
    my ($key) = ($lines[0] // '') =~ /^key: (\S+)$/;
    like($key // '', qr/^sgw_[A-Za-z0-9_-]{43}$/,
         'key: sgw_ + 32 bytes of URL-safe base64');
    my ($json) = ($lines[1] // '') =~ /^entry: (.*)$/;
    my $entry = eval { decode_json($json // '') };
    ok($entry, 'entry: is JSON');
    is($entry->{name}, 'billing', 'name');
    is($entry->{key_sha256}, sha256_hex($key // ''), 'key_sha256 is right');
    is($entry->{spaces}, '*', 'spaces default *');
    is($entry->{methods}, '*', 'methods default *');
    ok(!exists $entry->{key}, 'the entry holds no key');

    my $r2 = client(args => [ 'keygen', '--name', 'billing' ]);
    isnt($r2->{out}, $r->{out}, 'a new key every time');

    $r = client(args => [ 'keygen', '--name', 'ops', '--spaces', '3, 1,1',
                          '--methods', 'persons/recognize,persons/set',
                          '--json' ]);
    is($r->{rc}, 0, '--json: exit 0');
    my $d = $r->{json};
    ok($d, '--json: one JSON object');
    like($d->{key} // '', qr/^sgw_/, '--json: key');
    is($d->{entry}{key_sha256}, sha256_hex($d->{key} // ''),
       '--json: key_sha256');
    is_deeply($d->{entry}{spaces}, [ '1', '3' ], 'spaces listed');
    is_deeply($d->{entry}{methods}, [ 'persons/set', 'persons/recognize' ],
              'methods listed');

    for my $c ([ 'bad method', '--name', 'x', '--methods', 'persons/foo' ],
               [ 'bad method in a list', '--name', 'x',
                 '--methods', 'persons/set,persons/sett' ],
               [ 'bad space', '--name', 'x', '--spaces', '10' ],
               [ 'star in a list', '--name', 'x', '--spaces', '1,*' ],
               [ 'no name' ],
               [ 'name with a space', '--name', 'a b' ],
               [ 'name with a quote', '--name', 'a"b' ],
               [ 'name too long', '--name', 'n' x 65 ],
               [ 'unknown option', '--name', 'x', '--bogus' ])
    {
        my ($what, @args) = @$c;
        my $r = client(args => [ 'keygen', @args ]);
        is($r->{rc}, 2, "keygen, $what: exit 2");
        is($r->{out}, '', "keygen, $what: no key printed");
    }
    like(client(args => [ 'keygen', '--name', 'x', '--methods', 'persons/foo' ])
         ->{err}, qr/persons\/foo/, 'names the bad method');
};

subtest 'hash-key' => sub {
    my $key = 'sgw_some_key_made_elsewhere';
    my $r = client(args => [ 'hash-key' ], stdin => "$key\n");
    is($r->{rc}, 0, 'exit 0');
    is($r->{out}, sha256_hex($key) . "\n", 'SHA-256 hex of the key');
    is(client(args => [ 'hash-key' ], stdin => $key)->{out},
       sha256_hex($key) . "\n", 'without a newline');
    is(client(args => [ 'hash-key' ], stdin => "\n")->{rc}, 2,
       'no key: exit 2');
    is(client(args => [ 'hash-key', $key ])->{rc}, 2,
       'a key as an argument: exit 2');
    my $k = client(args => [ 'keygen', '--name', 'x', '--json' ])->{json};
    is(client(args => [ 'hash-key' ], stdin => "$k->{key}\n")->{out},
       "$k->{entry}{key_sha256}\n", 'agrees with keygen');
};

done_testing();
