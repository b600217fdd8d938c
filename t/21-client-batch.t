# The batch commands of build/smarty (recognize, enroll, delete, truncate)
# through the gateway: a folder of 250 photos in requests of at most 100
# images, one result line per image with the right persons, JSON lines and
# CSV, an interrupted run resumed (the emulator's counters show that only
# the rest was sent), a cut last line, retries of 5xx and of temporary
# image errors, quotas that refuse (429: the run waits; 413: the batches
# are split), cache hits, the progress line on a pseudo-terminal (script),
# delete and truncate.  Servers and the client are waited for by polling
# with a deadline, never by sleeping.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time);

my $smarty = SmartyTest::client_path();
plan skip_all => "no client at $smarty (make client)" unless -x $smarty;
plan skip_all => 'no emulator or module (make)'
    unless -x SmartyTest::emulator_path() && -f SmartyTest::module_path();

my $tmp = SmartyTest::tempdir();
my $HAVE_REDIS = grep { -x "$_/redis-server" } split /:/, $ENV{PATH};
my $HAVE_SCRIPT = grep { -x "$_/script" } split /:/, $ENV{PATH};
my $SLOW = $ENV{SMARTY_VALGRIND} ? 20 : 1;
my $runs = 0;

# --- the photos ----------------------------------------------------------------
#
# 250 JPEGs in three folders.  Photo i shows, for i % 10 == 0, staff<i/10>
# alone; for i % 10 == 5, staff<(i-5)/10> and a visitor; else no annotated
# face (the emulator then shows 0 to 3 faces of its own, all unknown).  The
# 25 staff members each have a portrait in staff/<k+1>/ for enroll.

my $photos = "$tmp/photos";
my @DIRS = ($photos, "$photos/team-a", "$photos/team-b/2024");
mkdir $_ for $photos, "$photos/team-a", "$photos/team-b", "$photos/team-b/2024",
             "$tmp/staff";

my %expect;                  # path => [ tags ] once staff is enrolled

for my $i (0 .. 249) {
    my $path = sprintf '%s/img%03d.jpg', $DIRS[$i % 3], $i;
    my $k = int($i / 10);
    my @faces;
    if ($i % 10 == 0) {
        @faces = ("staff$k\@40,40,140,160");
        $expect{$path} = [ 'person' . ($k + 1) ];
    } elsif ($i % 10 == 5) {
        @faces = ("staff$k\@40,40,140,160", "visitor$i\@200,40,300,160");
        $expect{$path} = [ 'person' . ($k + 1), 'undefined' ];
    } else {
        $expect{$path} = undef;         # unknown faces only
    }
    SmartyTest::spew($path, SmartyTest::jpeg(faces => \@faces, seed => $i));
}
SmartyTest::spew("$photos/README.txt", "the team's photos\n");
SmartyTest::spew("$photos/team-a/.DS_Store", "\0\0\0\1Bud1");

for my $k (0 .. 24) {
    mkdir "$tmp/staff/" . ($k + 1);
    SmartyTest::spew("$tmp/staff/" . ($k + 1) . "/portrait.jpg",
                     SmartyTest::alone_photo("staff$k", seed => 1000 + $k));
}

my @ALL = sort keys %expect;

# --- helpers --------------------------------------------------------------------

# Runs the client; %o: args, env (on top of a clean one), stdin (bytes).
# Returns {rc, out, err, time}.
sub client {
    my (%o) = @_;
    my $p = start_client(%o);
    return finish_client($p, $o{timeout} // 120);
}

sub start_client {
    my (%o) = @_;
    my $n = ++$runs;
    my ($in, $out, $err) = map { "$tmp/run$n.$_" } qw(in out err);
    SmartyTest::spew($in, $o{stdin} // '');
    my $t0 = time;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $in or POSIX::_exit(126);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        delete @ENV{qw(SMARTY_KEY SMARTY_URL http_proxy https_proxy
                       HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY)};
        %ENV = (%ENV, %{ $o{env} // {} });
        exec(SmartyTest::wrap_cmd($smarty, @{ $o{args} // [] }))
            or POSIX::_exit(127);
    }
    return { pid => $pid, out => $out, err => $err, t0 => $t0 };
}

sub finish_client {
    my ($p, $timeout) = @_;
    my $done = SmartyTest::wait_until(
        sub { waitpid($p->{pid}, WNOHANG) == $p->{pid} }, $timeout * $SLOW);
    unless ($done) {
        kill 'KILL', $p->{pid};
        waitpid($p->{pid}, 0);
        return { rc => -1, out => '', err => 'the client did not end' };
    }
    return { rc => ($? & 127) ? -1 : $? >> 8, time => time - $p->{t0},
             out => SmartyTest::slurp($p->{out}),
             err => SmartyTest::slurp($p->{err}) };
}

# The lines of a JSON-lines file (or text); dies on one that is not JSON.
sub lines_of {
    my ($text) = @_;
    my @l;
    for my $line (split /\n/, $text) {
        my $o = eval { decode_json($line) };
        die "not a JSON line: $line" unless $o;
        push @l, $o;
    }
    return \@l;
}

sub by_file { my ($l) = @_; return { map { $_->{file} => $_ } @$l } }

sub tags_of { my ($o) = @_; return [ map { $_->{tag} } @{ $o->{persons} } ] }

# Every line right for the enrolled staff: status 0 and the expected tags.
sub check_persons {
    my ($lines, $what) = @_;
    my ($bad, $n) = (0, 0);
    for my $o (@$lines) {
        my $want = $expect{ $o->{file} };
        my $tags = tags_of($o);
        my $ok = $o->{status} == 0
            && (defined $want ? join(',', @$tags) eq join(',', @$want)
                              : !grep { $_ ne 'undefined' } @$tags);
        $n++ if defined $want;
        unless ($ok) {
            $bad++;
            diag("$o->{file}: " . encode_json($o)) if $bad < 5;
        }
    }
    is($bad, 0, "$what: every image has the right persons ($n with staff)");
}

# RFC 4180 records of a CSV text: [ [fields], ... ]
sub csv_records {
    my ($text) = @_;
    my (@rec, @f, $cur, $q);
    $cur = '';
    $q = 0;
    for (my $i = 0; $i < length $text; $i++) {
        my $c = substr($text, $i, 1);
        if ($q) {
            if ($c eq '"') {
                if (substr($text, $i + 1, 1) eq '"') { $cur .= '"'; $i++ }
                else { $q = 0 }
            } else { $cur .= $c }
        } elsif ($c eq '"') { $q = 1 }
        elsif ($c eq ',') { push @f, $cur; $cur = '' }
        elsif ($c eq "\r" && substr($text, $i + 1, 1) eq "\n") { }
        elsif ($c eq "\n") { push @f, $cur; push @rec, [ @f ]; @f = (); $cur = '' }
        else { $cur .= $c }
    }
    return \@rec;
}

sub stats { return SmartyTest::emulator_stats($_[0]) }

sub faults {
    my ($emu, $q) = @_;
    my $r = SmartyTest::http('POST', "$emu->{url}/_emulator/faults?$q");
    die "faults: $r->{status}" unless $r->{status} == 200;
}

# the gateway's access log lines after byte $from: [ {status, images, ...} ]
sub gateway_log {
    my ($gw, $from) = @_;
    my $log = SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log");
    my @l;
    for (split /\n/, substr($log, $from // 0)) {
        my ($st) = /" (\d{3}) client=/ or next;
        my %f = /(\w+)=(\S*)/g;
        push @l, { status => $st, %f };
    }
    return \@l;
}

sub log_size { return length SmartyTest::slurp("$_[0]{ngx}{dir}/gateway.log") }

# --- the stack -------------------------------------------------------------------

my $gw = SmartyTest::start_gateway(emu_args => [ '--per-image-ms', '0' ]);
my $emu = $gw->{emu};
my $key = $gw->{keys}{demo};
my %env = (SMARTY_KEY => $key);
my @url = ('-u', $gw->{url});

# --- help and usage ----------------------------------------------------------------

subtest 'help' => sub {
    my $r = client(args => [ '--help' ]);
    is($r->{rc}, 0, 'exit 0');
    for my $f (qw(recognize enroll delete truncate SMARTY_URL SMARTY_KEY
                  --space --create-new --out --format --resume --parallel
                  --batch-images --batch-bytes --retries --backoff --quiet
                  --progress-interval --yes))
    {
        like($r->{out}, qr/(?<![\w-])\Q$f\E(?![\w-])/, "mentions $f");
    }
    like($r->{out}, qr/^\s+130\s+\S|130 interrupted/m, 'exit status 130');
    is(client(args => [ 'recognize', '--help' ])->{out}, $r->{out},
       'recognize --help');
};

subtest 'usage errors exit 2 and send nothing' => sub {
    my $n = stats($emu)->{requests_total};
    SmartyTest::spew("$tmp/full.jsonl", qq({"file":"x","status":0}\n));
    my @cases = (
        [ 'no --space', 'recognize', $photos, @url ],
        [ 'a bad --space', 'recognize', $photos, @url, '--space', '12' ],
        [ 'no path', 'recognize', @url, '--space', '1' ],
        [ 'no URL', 'recognize', $photos, '--space', '1' ],
        [ 'a method URL', 'recognize', $photos, '--space', '1',
          '-u', "$gw->{url}/api/v1/persons/recognize" ],
        [ 'an ftp URL', 'recognize', $photos, '--space', '1',
          '-u', 'ftp://127.0.0.1/' ],
        [ 'a missing path', 'recognize', "$tmp/nothing", '--space', '1',
          @url ],
        [ '--resume without --out', 'recognize', $photos, '--space', '1',
          @url, '--resume' ],
        [ 'an --out with results', 'recognize', $photos, '--space', '1',
          @url, '--out', "$tmp/full.jsonl" ],
        [ 'a bad --format', 'recognize', $photos, '--space', '1', @url,
          '--format', 'xml' ],
        [ 'a bad --parallel', 'recognize', $photos, '--space', '1', @url,
          '--parallel', '0' ],
        [ 'more than 100 images a batch', 'recognize', $photos, '--space',
          '1', @url, '--batch-images', '101' ],
        [ 'a tiny --batch-bytes', 'recognize', $photos, '--space', '1', @url,
          '--batch-bytes', '1k' ],
        [ '--create-new for enroll', 'enroll', "$tmp/staff", '--space', '1',
          @url, '--create-new' ],
        [ 'enroll of a file', 'enroll', "$photos/README.txt", '--space', '1',
          @url ],
        [ 'delete of a name', 'delete', 'bob', '--space', '1', @url ],
        [ 'truncate unconfirmed', 'truncate', '--space', '1', @url ],
        [ 'truncate with --out', 'truncate', '--space', '1', @url, '--yes',
          '--out', "$tmp/t.jsonl" ],
    );
    for my $c (@cases) {
        my ($what, @args) = @$c;
        my $r = client(args => \@args, env => \%env);
        is($r->{rc}, 2, "$what: exit 2");
        like($r->{err}, qr/^smarty: \S/, "$what: says why")
            or diag($r->{err});
    }
    is(stats($emu)->{requests_total}, $n, 'nothing was sent');
    is(SmartyTest::slurp("$tmp/full.jsonl"), qq({"file":"x","status":0}\n),
       'the --out file is untouched');
};

# --- enroll, then recognize the folder ------------------------------------------------

subtest 'enroll DIR/<person_id>/' => sub {
    my $s0 = stats($emu);
    my $r = client(args => [ 'enroll', "$tmp/staff", '--space', '1', @url,
                             '--out', "$tmp/enroll.jsonl" ], env => \%env);
    is($r->{rc}, 0, 'exit 0') or diag($r->{err});
    my $l = lines_of(SmartyTest::slurp("$tmp/enroll.jsonl"));
    is(scalar @$l, 25, '25 lines');
    is(scalar(grep { $_->{status} == 0 } @$l), 25, 'all linked');
    is(scalar(grep { $_->{file} =~ m{/staff/(\d+)/portrait\.jpg$}
                     && $1 == $_->{person_id} } @$l), 25,
       'each to its folder\'s person id');
    my $s1 = stats($emu);
    is($s1->{by_path}{'persons/set'} // 0, 1, 'in one persons/set');
    is($s1->{images} - $s0->{images}, 25, '25 images');
    unlike($r->{err}, qr/warning/, 'SMARTY_KEY: no warning');
    like($r->{err}, qr/^smarty: enroll: 25 images: 25 ok, 0 errors/m,
         'a summary');
};

my $rec_time;

subtest 'recognize 250 photos: 3 requests, one line per image' => sub {
    my $s0 = stats($emu);
    my $from = log_size($gw);
    my $r = client(args => [ 'recognize', $photos, '--space', '1', @url,
                             '--out', "$tmp/rec.jsonl" ], env => \%env);
    is($r->{rc}, 0, 'exit 0') or diag($r->{err});
    $rec_time = $r->{time};
    my $s1 = stats($emu);
    is($s1->{requests} - $s0->{requests}, 3, 'the emulator got 3 requests');
    is($s1->{images} - $s0->{images}, 250, 'and 250 images');
    my @reqs = grep { $_->{method} eq 'persons/recognize' }
               @{ gateway_log($gw, $from) };
    is(scalar @reqs, 3, 'the gateway saw 3 recognize requests');
    is(scalar(grep { $_->{images} <= 100 && $_->{status} == 200 } @reqs), 3,
       'each of at most 100 images, answered 200');
    my $sum = 0;
    $sum += $_->{images} for @reqs;
    is($sum, 250, '250 images in all');

    my $text = SmartyTest::slurp("$tmp/rec.jsonl");
    my $l = lines_of($text);
    is(scalar @$l, 250, '250 lines');
    is_deeply([ sort map { $_->{file} } @$l ], \@ALL,
              'one line per photo, named by its path');
    check_persons($l, 'recognize');
    ok(!grep({ exists $_->{cache} } @$l), 'no cache, no cache field');

    # within a request, the lines are in the order of the walk (here the
    # paths' order): the file is at most 3 ascending runs
    my $descents = grep { $l->[$_]{file} lt $l->[$_ - 1]{file} } 1 .. $#$l;
    ok($descents <= 2, "each request's lines in walk order ($descents "
       . 'breaks between requests)');

    like($r->{err}, qr/^smarty: recognize: 250 images: 250 ok, 0 errors; (\d+) persons found \(50 known\); 0 cache hits; 2 skipped \(not images\); 3 requests; [\d.]+ s, [\d.]+ images\/s$/m,
         'the summary: images, persons, hits, skipped, requests, time');
    my ($rate) = $r->{err} =~ /([\d.]+) images\/s$/m;
    note(sprintf '250 photos through the stack: %.2f s (%s images/s by '
         . 'the client)', $r->{time}, $rate // '?');
};

subtest 'CSV on stdout, SMARTY_URL, -k warns, --key-file does not' => sub {
    my $r = client(args => [ 'recognize', "$photos/team-a", '--space', '1',
                             '--format', 'csv', '-q' ],
                   env => { %env, SMARTY_URL => $gw->{url} });
    is($r->{rc}, 0, 'exit 0') or diag($r->{err});
    is($r->{err}, '', '--quiet: nothing on stderr');
    my $rec = csv_records($r->{out});
    is_deeply($rec->[0], [ qw(file status error code faces tags persons
                              cache) ], 'the header');
    my @rows = @{ $rec }[1 .. $#$rec];
    my @want = grep { m{/team-a/} } @ALL;
    is(scalar @rows, scalar @want, 'one row per image');
    my ($bad, $staff) = (0, 0);
    for my $row (@rows) {
        my ($file, $status, $error, $code, $faces, $tags, $persons) = @$row;
        my $p = eval { decode_json($persons) } // [];
        my $want = $expect{$file};
        $staff++ if defined $want;
        $bad++ unless $status eq '0' && $faces == @$p
            && $tags eq join(';', map { $_->{tag} } @$p)
            && (!defined $want || $tags eq join(';', @$want));
    }
    is($bad, 0, "status, faces, tags and the persons' JSON agree ($staff "
       . 'with staff)');

    $r = client(args => [ 'recognize', "$photos/img000.jpg", '--space', '1',
                          @url, '-k', $key ]);
    is($r->{rc}, 0, '-k: exit 0');
    like($r->{err}, qr/warning: .*visible to other users in the process list.*SMARTY_KEY.*--key-file/,
         '-k: a warning on stderr');
    is(tags_of(lines_of($r->{out})->[0])->[0], 'person1', '-k works');

    SmartyTest::spew("$tmp/key", "$key\n");
    $r = client(args => [ 'recognize', "$photos/img000.jpg", '--space', '1',
                          @url, '--key-file', "$tmp/key" ]);
    is($r->{rc}, 0, '--key-file: exit 0');
    unlike($r->{err}, qr/warning/, '--key-file: no warning');

    $r = client(args => [ 'recognize', "$photos/img000.jpg", '--space', '1',
                          @url ]);
    is($r->{rc}, 1, 'no key: the gateway refuses the run, exit 1');
    like($r->{err}, qr/refused the run: HTTP 401.*missing_key/, 'says so');
};

subtest 'odd files: too large, other types, not images' => sub {
    my $odd = "$tmp/odd";
    mkdir $odd;
    SmartyTest::spew("$odd/big.jpg", SmartyTest::jpeg(pad => 4_300_000));
    SmartyTest::spew("$odd/small.png", "\x89PNG\r\n\x1a\n" . "\0" x 32);
    SmartyTest::spew("$odd/anim.gif", "GIF89a" . "\0" x 32);
    SmartyTest::spew("$odd/old.bmp", "BM" . "\0" x 32);
    SmartyTest::spew("$odd/new.webp", "RIFF\0\0\0\0WEBPVP8 " . "\0" x 32);
    SmartyTest::spew("$odd/jpeg.txt", SmartyTest::jpeg(seed => 77));
    SmartyTest::spew("$odd/notes.jpg", "not a photo at all");
    SmartyTest::spew("$odd/empty.jpg", '');
    my $s0 = stats($emu);
    my $r = client(args => [ 'recognize', $odd, '--space', '1', @url ],
                   env => \%env);
    is($r->{rc}, 4, 'an image failed: exit 4');
    my $l = by_file(lines_of($r->{out}));
    is_deeply([ sort keys %$l ],
              [ map { "$odd/$_" } qw(anim.gif big.jpg jpeg.txt new.webp
                                     old.bmp small.png) ],
              'a line for every image by its content, whatever its name');
    is($l->{"$odd/big.jpg"}{status}, 1, 'over 4 MB: status 1');
    is($l->{"$odd/big.jpg"}{code}, 'image_too_large', 'image_too_large');
    is(stats($emu)->{images} - $s0->{images}, 5, 'and not sent');
    is($l->{"$odd/jpeg.txt"}{status}, 0, 'a JPEG named .txt is sent');
    like($r->{err}, qr/; 2 skipped \(not images\);/, '2 skipped');
    like($r->{err}, qr/recognize: 6 images: 5 ok, 1 error;/, 'counted');
};

# --- interrupted, resumed -----------------------------------------------------------

subtest 'Ctrl-C, then the resume command: only the rest is sent' => sub {
    faults($emu, 'per_image_ms=20');
    my $out = "$tmp/int.jsonl";
    my $s0 = stats($emu);
    my $p = start_client(args => [ 'recognize', $photos, '--space', '2',
                                   @url, '--out', $out, '--batch-images',
                                   '20', '--parallel', '2' ], env => \%env);
    my $some = SmartyTest::wait_until(sub {
        my @n = split /\n/, SmartyTest::slurp($out);
        return @n >= 40;
    }, 60 * $SLOW);
    ok($some, 'some lines were written');
    kill 'INT', $p->{pid};
    my $r = finish_client($p, 60);
    faults($emu, 'per_image_ms=0');

    is($r->{rc}, 130, 'exit 130');
    my $text = SmartyTest::slurp($out);
    like($text, qr/\n\z/, 'the file ends with a whole line');
    my $l = lines_of($text);
    my $n1 = @$l;
    ok($n1 >= 40 && $n1 < 250, "$n1 lines, a valid file");
    is(stats($emu)->{images} - $s0->{images}, $n1,
       'every image sent is recorded (the requests in flight ended)');
    like($r->{err}, qr/^smarty: interrupted$/m, 'says it was interrupted');
    my ($cmd) = $r->{err} =~ /to resume, run:\n  (.+)\n/;
    ok($cmd, 'and how to resume') or diag($r->{err});
    like($cmd // '', qr/ --resume$/, 'the same command with --resume');
    unlike($cmd // '', qr/\Q$key\E/, 'no key in it');

    # the hint, run as it is
    my $s1 = stats($emu);
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDOUT, '>', "$tmp/resume.out";
        open STDERR, '>', "$tmp/resume.err";
        $ENV{SMARTY_KEY} = $key;
        exec('/bin/sh', '-c', $cmd) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    is($? >> 8, 0, 'the resume command: exit 0')
        or diag(SmartyTest::slurp("$tmp/resume.err"));
    my $s2 = stats($emu);
    is($s2->{images} - $s1->{images}, 250 - $n1,
       'the emulator got only the rest: ' . (250 - $n1) . ' images');
    like(SmartyTest::slurp("$tmp/resume.err"),
         qr/; $n1 done before \(--resume\);/,
         'the summary counts what was done before');
    $l = lines_of(SmartyTest::slurp($out));
    is(scalar @$l, 250, '250 lines now');
    is_deeply([ sort map { $_->{file} } @$l ], \@ALL,
              'exactly one line per image');
};

subtest 'a cut last line is dropped and written again' => sub {
    my $whole = SmartyTest::slurp("$tmp/rec.jsonl");
    SmartyTest::spew("$tmp/cut.jsonl", substr($whole, 0, -15));
    my $s0 = stats($emu);
    my $r = client(args => [ 'recognize', $photos, '--space', '1', @url,
                             '--out', "$tmp/cut.jsonl", '--resume' ],
                   env => \%env);
    is($r->{rc}, 0, 'exit 0') or diag($r->{err});
    like($r->{err}, qr/cut short/, 'says so');
    is(stats($emu)->{images} - $s0->{images}, 1, 'one image sent');
    my $l = lines_of(SmartyTest::slurp("$tmp/cut.jsonl"));
    is(scalar @$l, 250, '250 lines');
    is_deeply([ sort map { $_->{file} } @$l ], \@ALL, 'one per image');

    # CSV: the same with quoted fields
    $r = client(args => [ 'recognize', "$photos/team-a", '--space', '1',
                          @url, '--out', "$tmp/cut.csv" ], env => \%env);
    is($r->{rc}, 0, 'CSV by the extension: exit 0');
    my $csv = SmartyTest::slurp("$tmp/cut.csv");
    my $rows = scalar(@{ csv_records($csv) }) - 1;
    SmartyTest::spew("$tmp/cut.csv", substr($csv, 0, -20));
    $s0 = stats($emu);
    $r = client(args => [ 'recognize', "$photos/team-a", '--space', '1',
                          @url, '--out', "$tmp/cut.csv", '--resume' ],
                env => \%env);
    is($r->{rc}, 0, 'CSV resumed: exit 0');
    is(stats($emu)->{images} - $s0->{images}, 1, 'CSV: one image sent');
    is(scalar(@{ csv_records(SmartyTest::slurp("$tmp/cut.csv")) }) - 1,
       $rows, 'CSV: one row per image');
};

# --- retries ------------------------------------------------------------------------

subtest '5xx and temporary image errors: tried again, then given up' => sub {
    faults($emu, 'fail_5xx=0.2&temp_error=0.2');
    my $s0 = stats($emu);
    my $r = client(args => [ 'recognize', $photos, '--space', '1', @url,
                             '--batch-images', '25', '--retries', '12',
                             '--backoff', '0.005' ], env => \%env);
    my $s1 = stats($emu);
    is($r->{rc}, 0, 'exit 0') or diag($r->{err});
    my $l = lines_of($r->{out});
    is(scalar @$l, 250, '250 lines');
    check_persons($l, 'after retries');
    ok($s1->{faults}{fail_5xx} > $s0->{faults}{fail_5xx}, 'there were 5xx');
    ok($s1->{faults}{temp_error} > $s0->{faults}{temp_error},
       'and temporary image errors');
    like($r->{err}, qr/, \d+ retried;/, 'the summary counts the retries');

    faults($emu, 'fail_5xx=0&temp_error=1');
    my @b = grep { m{/team-b/} } @ALL;
    $s0 = $s1;
    $r = client(args => [ 'recognize', "$photos/team-b", '--space', '1',
                          @url, '--retries', '2', '--backoff', '0.005',
                          '--out', "$tmp/temp.jsonl" ], env => \%env);
    $s1 = stats($emu);
    is($r->{rc}, 4, 'always temporary: exit 4');
    $l = lines_of(SmartyTest::slurp("$tmp/temp.jsonl"));
    is(scalar(grep { $_->{status} == 2
                     && $_->{error} =~ /^gave up after 3 attempts: / } @$l),
       scalar @b, 'status 2, given up after 3 attempts');
    is($s1->{images} - $s0->{images}, 3 * @b, 'each image sent 3 times');

    faults($emu, 'temp_error=0');
    $r = client(args => [ 'recognize', "$photos/team-b", '--space', '1',
                          @url, '--out', "$tmp/temp.jsonl", '--resume' ],
                env => \%env);
    is($r->{rc}, 0, '--resume sends status 2 again: exit 0');
    is(stats($emu)->{images} - $s1->{images}, scalar @b, 'all of them');
    $l = lines_of(SmartyTest::slurp("$tmp/temp.jsonl"));
    is(scalar(grep { $_->{status} == 0 } @$l), scalar @b,
       'each has a line with status 0 now');
};

subtest 'the gateway out of reach: exit 3 and the resume hint' => sub {
    my $port = SmartyTest::free_port();
    my $r = client(args => [ 'recognize', "$photos/team-a", '--space', '1',
                             '-u', "http://127.0.0.1:$port", '--retries',
                             '1', '--backoff', '0.005', '--out',
                             "$tmp/down.jsonl" ], env => \%env);
    is($r->{rc}, 3, 'exit 3');
    like($r->{err}, qr/gave up after 2 attempts: transport failure/,
         'says why');
    like($r->{err}, qr/to resume, run:/, 'and how to go on');
    is(SmartyTest::slurp("$tmp/down.jsonl"), '', 'no line written');
};

subtest 'directly against the emulator: a query string in the base URL' => sub {
    my $s0 = stats($emu);
    my $r = client(args => [ 'recognize', "$photos/img000.jpg", '--space',
                             '1', '-u', "$emu->{url}/?oauth_provider=mcs&"
                             . "oauth_token=$gw->{token}" ]);
    is($r->{rc}, 0, 'exit 0') or diag($r->{err});
    is(tags_of(lines_of($r->{out})->[0])->[0], 'person1', 'person1');
    my $last = SmartyTest::http('GET', "$emu->{url}/_emulator/last")->{json};
    is($last->{path}, 'persons/recognize', 'the method appended');
    is($last->{query}, "oauth_provider=mcs&oauth_token=$gw->{token}",
       'the query kept');
    is(stats($emu)->{images} - $s0->{images}, 1, 'one image');
};

# --- progress --------------------------------------------------------------------------

subtest 'progress: plain lines when stderr is no terminal, --quiet' => sub {
    faults($emu, 'per_image_ms=5');
    my $r = client(args => [ 'recognize', $photos, '--space', '1', @url,
                             '--batch-images', '10', '--parallel', '1',
                             '--progress-interval', '0.05', '--out',
                             "$tmp/plain.jsonl" ], env => \%env);
    faults($emu, 'per_image_ms=0');
    is($r->{rc}, 0, 'exit 0');
    like($r->{err}, qr{^smarty: recognize: \d+/250 images \(\d+%\), [\d.]+/s, ETA [\d:-]+, 0 errors$}m,
         'plain progress lines');
    unlike($r->{err}, qr/\r|\e/, 'no terminal controls');

    $r = client(args => [ 'recognize', "$photos/team-a", '--space', '1',
                          @url, '-q', '--progress-interval', '0.01' ],
                env => \%env);
    is($r->{rc}, 0, '--quiet: exit 0');
    is($r->{err}, '', '--quiet: nothing on stderr');
};

subtest 'progress on a pseudo-terminal (script)' => sub {
    plan skip_all => 'no script(1) (bsdutils)' unless $HAVE_SCRIPT;
    faults($emu, 'per_image_ms=3');
    my $cmd = join ' ', map { "'$_'" } $smarty, 'recognize', $photos,
        '--space', '1', @url, '--batch-images', '10', '--parallel', '1',
        '--out', "$tmp/tty.jsonl";
    my $r = client_script($cmd);
    faults($emu, 'per_image_ms=0');
    is($r->{rc}, 0, 'exit 0') or diag($r->{out});
    my $t = $r->{out};
    like($t, qr{\rrecognize: \d+/250 images \(\d+%\), [\d.]+/s, ETA [\d:-]+, 0 errors\e\[K},
         'a line redrawn in place: images done of total, rate, ETA, errors');
    my @draws = $t =~ m{\rrecognize: (\d+)/250}g;
    ok(@draws >= 3, scalar(@draws) . ' redraws');
    ok((grep { $_ > 0 && $_ < 250 } @draws), 'with images in between');
    like($t, qr/\r\e\[Ksmarty: recognize: 250 images: 250 ok/,
         'wiped before the summary');
    is(scalar @{ lines_of(SmartyTest::slurp("$tmp/tty.jsonl")) }, 250,
       'and 250 lines in the file');
};

# Runs a shell command under script(1), a pseudo-terminal for its stdin,
# stdout and stderr; returns {rc, out} (out: what the terminal showed).
sub client_script {
    my ($cmd, %o) = @_;
    my $n = ++$runs;
    my ($in, $out) = ("$tmp/script$n.in", "$tmp/script$n.out");
    SmartyTest::spew($in, $o{stdin} // '');
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDIN, '<', $in;
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        $ENV{SMARTY_KEY} = $key;
        $ENV{TERM} = 'xterm';
        exec('script', '-qefc', $cmd, '/dev/null') or POSIX::_exit(127);
    }
    my $done = SmartyTest::wait_until(sub { waitpid($pid, WNOHANG) == $pid },
                                      120 * $SLOW);
    unless ($done) { kill 'KILL', $pid; waitpid($pid, 0) }
    return { rc => $done ? $? >> 8 : -1, out => SmartyTest::slurp($out) };
}

# --- quotas and the cache ----------------------------------------------------------------

SKIP: {
    skip 'redis-server is needed for quotas and the cache', 3
        unless $HAVE_REDIS;

    my $redis = SmartyTest::start_redis();
    my $gq = SmartyTest::start_gateway(
        http => "    smarty_redis 127.0.0.1:$redis->{port};\n",
        gateway => 'smarty_cache on; '
                 . 'smarty_quota_prefix "t21-' . SmartyTest::random_hex(3)
                 . ':"; '
                 . 'smarty_quota_client 1 "2r/s burst=2"; '
                 . 'smarty_quota_client 2 "60i/s burst=60";',
        emu_args => [ '--per-image-ms', '0' ]);
    my %qenv = (SMARTY_KEY => $gq->{keys}{demo}, SMARTY_URL => $gq->{url});

    subtest 'a quota that refuses (429): the run waits and finishes' => sub {
        my $from = log_size($gq);
        my $s0 = stats($gq->{emu});
        my $r = client(args => [ 'recognize', $photos, '--space', '1',
                                 '--batch-images', '50', '--parallel', '4',
                                 '--out', "$tmp/q429.jsonl" ],
                       env => \%qenv);
        is($r->{rc}, 0, 'exit 0') or diag($r->{err});
        my $log = gateway_log($gq, $from);
        my $refused = grep { $_->{status} == 429 } @$log;
        ok($refused > 0, "the gateway refused $refused requests (429)");
        is(scalar(grep { $_->{status} == 200 } @$log), 5,
           '5 requests of 50 went through');
        is(stats($gq->{emu})->{images} - $s0->{images}, 250,
           'the emulator got each image once');
        my $l = lines_of(SmartyTest::slurp("$tmp/q429.jsonl"));
        is(scalar @$l, 250, '250 lines');
        ok(!grep({ $_->{status} != 0 } @$l), 'all with status 0');
        like($r->{err}, qr/a quota is reached \(quota_client_requests_second\): waiting 1 s/,
             'says it waits');
        like($r->{err}, qr/; \d+ requests, $refused quota waits?;/,
             'the summary counts the waits');
        ok($r->{time} >= 1, sprintf('it took %.1f s (2 requests a second)',
                                    $r->{time}));
    };

    subtest 'a batch larger than a quota (413): split, then waits' => sub {
        my $from = log_size($gq);
        my $s0 = stats($gq->{emu});
        my $r = client(args => [ 'recognize', $photos, '--space', '2',
                                 '--out', "$tmp/q413.jsonl" ],
                       env => \%qenv);
        is($r->{rc}, 0, 'exit 0') or diag($r->{err});
        my $log = gateway_log($gq, $from);
        ok((grep { $_->{status} == 413 && $_->{error} eq
                   'quota_batch_too_large' } @$log),
           'the gateway refused 100 images (413 quota_batch_too_large)');
        ok(!grep({ $_->{status} == 200 && $_->{images} > 60 } @$log),
           'no batch over 60 images went through');
        like($r->{err}, qr/a batch of 100 images was refused \(quota_batch_too_large\): sending batches of at most 50 images/,
             'says it splits');
        like($r->{err}, qr/, \d+ splits?[,;]/, 'the summary counts splits');
        is(stats($gq->{emu})->{images} - $s0->{images}, 250,
           'the emulator got each image once');
        is(scalar @{ lines_of(SmartyTest::slurp("$tmp/q413.jsonl")) }, 250,
           '250 lines');
    };

    subtest 'cache hits are reported' => sub {
        my $s0 = stats($gq->{emu});
        my $r = client(args => [ 'recognize', $photos, '--space', '3',
                                 '--out', "$tmp/c1.jsonl" ], env => \%qenv);
        is($r->{rc}, 0, 'first: exit 0') or diag($r->{err});
        like($r->{err}, qr/; 0 cache hits;/, 'first: no hits');
        my $s1 = stats($gq->{emu});
        is($s1->{images} - $s0->{images}, 250, 'first: 250 images upstream');
        my $l = lines_of(SmartyTest::slurp("$tmp/c1.jsonl"));
        ok(!grep({ ($_->{cache} // '') ne 'miss' } @$l), 'first: "miss"');

        $r = client(args => [ 'recognize', $photos, '--space', '3',
                              '--out', "$tmp/c2.jsonl" ], env => \%qenv);
        is($r->{rc}, 0, 'again: exit 0') or diag($r->{err});
        like($r->{err}, qr/; 250 cache hits;/, 'again: 250 hits');
        is(stats($gq->{emu})->{images}, $s1->{images}, 'again: no upstream');
        my $l2 = lines_of(SmartyTest::slurp("$tmp/c2.jsonl"));
        ok(!grep({ ($_->{cache} // '') ne 'hit' } @$l2), 'again: "hit"');
        my $js = JSON::PP->new->canonical(1);
        my %p1 = map { $_->{file} => $js->encode($_->{persons}) } @$l;
        my %p2 = map { $_->{file} => $js->encode($_->{persons}) } @$l2;
        is_deeply(\%p2, \%p1, 'the same persons');
    };
}

# --- delete, truncate ----------------------------------------------------------------------

subtest 'delete and truncate' => sub {
    my $r = client(args => [ 'delete', '1', '2', '099', '--space', '1',
                             @url, '--out', "$tmp/del.jsonl" ],
                   env => \%env);
    is($r->{rc}, 4, 'a person not found: exit 4');
    my %l = map { $_->{person_id} => $_ }
            @{ lines_of(SmartyTest::slurp("$tmp/del.jsonl")) };
    is($l{1}{status}, 0, 'person 1 deleted');
    is($l{2}{status}, 0, 'person 2 deleted');
    is($l{99}{status}, 1, 'person 99: status 1');
    is($l{99}{error}, 'person not found', 'not found');
    like($r->{err}, qr/^smarty: delete: 3 persons: 2 ok, 1 error;/m,
         'a summary');

    $r = client(args => [ 'recognize', "$photos/img000.jpg",
                         "$photos/img030.jpg", '--space', '1', @url ],
                env => \%env);
    my $l = by_file(lines_of($r->{out}));
    is_deeply(tags_of($l->{"$photos/img000.jpg"}), [ 'undefined' ],
              'person 1 is gone');
    is_deeply(tags_of($l->{"$photos/img030.jpg"}), [ 'person4' ],
              'person 4 is still there');

    my $n = stats($emu)->{by_path}{'persons/truncate'} // 0;
    $r = client(args => [ 'truncate', '--space', '1', @url ], env => \%env);
    is($r->{rc}, 2, 'truncate, stdin no terminal, no --yes: exit 2');
    like($r->{err}, qr/--yes/, 'asks for --yes');

    SKIP: {
        skip 'no script(1)', 4 unless $HAVE_SCRIPT;
        my $cmd = join ' ', map { "'$_'" } $smarty, 'truncate', '--space',
                  '1', @url;
        $r = client_script($cmd, stdin => "no\n");
        is($r->{rc}, 2, 'on a terminal, "no": exit 2');
        like($r->{out}, qr/Type "yes" to go on: /, 'it asked');
        $r = client_script($cmd, stdin => "yes\n");
        is($r->{rc}, 0, 'on a terminal, "yes": exit 0') or diag($r->{out});
        like($r->{out}, qr/space 1 is empty now/, 'says so');
    }

    $r = client(args => [ 'truncate', '--space', '1', @url, '--yes' ],
                env => \%env);
    is($r->{rc}, 0, 'truncate --yes: exit 0');
    ok((stats($emu)->{by_path}{'persons/truncate'} // 0) > $n,
       'truncate was sent');

    $r = client(args => [ 'recognize', "$photos/img030.jpg", '--space', '1',
                          @url ], env => \%env);
    is_deeply(tags_of(lines_of($r->{out})->[0]), [ 'undefined' ],
              'the space is empty');
};

note(sprintf 'the first recognize of 250 photos took %.2f s', $rec_time)
    if defined $rec_time;

done_testing();
