# Quotas end to end (docs/quota.md): a real nginx with
# the module, a real Redis, the emulator.  Exactness under concurrency,
# images against requests, the space's limits against a client's (and the
# clients file's override), per-second bursts and their refill, cache hits
# that spend nothing, refunds on upstream failure, the RateLimit headers and
# the 429/413 envelopes, the variables in an access log, two instances on
# one Redis, Redis stopped (local fallback, fail-closed), the operator's
# view, configuration mistakes.
#
# Timing: the counting tests use fixed windows aligned to the clock (a
# minute; an hour under valgrind, which is some 20 times slower), and each
# section starts far enough from the end of the current window that the
# window cannot roll over under it (fresh_window()).  Servers are always
# waited for by polling with a deadline; the only sleeps wait out a
# limit's own refill time, as the gateway announced it.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);
use POSIX ();
use Time::HiRes qw(time);
use JSON::PP ();

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my $VALGRIND = $ENV{SMARTY_VALGRIND};

# the window of the counting tests: unit letter, name, seconds
my ($WU, $WN, $WS) = $VALGRIND ? ('h', 'hour', 3600) : ('m', 'minute', 60);

# how long one section may take at most (seconds), for fresh_window()
my $SECTION = $VALGRIND ? 300 : 20;

my $TO = $VALGRIND ? 2000 : 500;    # smarty_redis_timeout, ms
my $CTO = $VALGRIND ? 5000 : 1000;  # smarty_redis_connect_timeout, ms

my $redis = SmartyTest::start_redis();

# --- helpers ---------------------------------------------------------------------

sub redis_conf {
    my ($port) = @_;
    return "    smarty_redis 127.0.0.1:$port;\n"
         . "    smarty_redis_timeout ${TO}ms;\n"
         . "    smarty_redis_connect_timeout ${CTO}ms;\n"
         . "    smarty_redis_breaker failures=3 cooldown=1s;\n";
}

# the quota variables, one line per request, found by the request's n=
my $LOGFMT = q{    log_format quota 'n=$arg_n status=$status q=$smarty_quota_status }
           . q{limit=$smarty_quota_limit remaining=$smarty_quota_remaining }
           . q{reset=$smarty_quota_reset error=$smarty_error';} . "\n";

# Waits, if needed, until a window of $ws seconds has at least $margin
# seconds left (the windows are aligned to the epoch, on this host's clock,
# which is Redis's too): waiting out a window, not a server.
sub fresh_window {
    my ($ws, $margin) = @_;
    $ws //= $WS;
    $margin //= $SECTION;
    my $now = time;
    my $left = $ws - ($now - $ws * int($now / $ws));
    return if $left > $margin;
    note(sprintf 'waiting %.1fs for the next %ds window', $left, $ws);
    select(undef, undef, undef, $left + 0.2);
}

my $NGW = 0;
my @ALL;

# A gateway in front of its own emulator (or %o emu/token), on a Redis,
# with its own quota key prefix (so that sections do not share state)
# unless %o prefix.  %o: quota (http-level text), gateway (API location),
# server, clients, redis_port, cache.
sub gw {
    my (%o) = @_;
    my $prefix = $o{prefix}
        // ('t80-' . ++$NGW . '-' . SmartyTest::random_hex(3) . ':');
    my %args = (
        http => redis_conf($o{redis_port} // $redis->{port})
              . "    smarty_quota_prefix $prefix;\n" . $LOGFMT
              . ($o{quota} // ''),
        gateway => "            access_log %%DIR%%/quota.log quota;\n"
                 . ($o{cache} ? "            smarty_cache on; smarty_cache_wait 3s;\n" : '')
                 . ($o{gateway} // ''),
        emu_args => [ '--per-image-ms', '0' ],
    );
    for my $k (qw(server clients emu token workers)) {
        $args{$k} = $o{$k} if defined $o{$k};
    }
    my $g = SmartyTest::start_gateway(%args);
    $g->{prefix} = $prefix;
    push @ALL, $g;
    # the worker connects to Redis as it starts: until then its quotas are
    # decided by the fallback, so wait for the connection (a server, with a
    # deadline) before a section counts on PASS
    SmartyTest::wait_until(sub {
        SmartyTest::error_log($g->{ngx}) =~ /smarty_redis: connected to/ },
        $VALGRIND ? 60 : 10)
        or diag "gateway $prefix: no Redis connection logged";
    return $g;
}

my $SEQ = 0;

# a distinct valid JPEG
sub img {
    my ($tag) = @_;
    return SmartyTest::jpeg(seed => $tag // ("u$$-" . ++$SEQ . '-' . SmartyTest::random_hex(4)));
}

# persons/recognize through $g.  %o: client (name, default demo), space
# (default 1), images ([name, bytes] list) or count (that many new images),
# url (another instance of the same stack).
sub rec {
    my ($g, %o) = @_;
    my $client = $o{client} // 'demo';
    my $key = $g->{keys}{$client} // die "no client $client";
    my $space = $o{space} // '1';
    my @imgs = $o{images} ? @{ $o{images} }
             : map { [ "file_$_", img() ] } 0 .. ($o{count} // 1) - 1;
    my $n = "$$." . ++$SEQ;
    my $r = SmartyTest::call($o{url} // $g->{url}, 'persons/recognize',
        key => $key, query => "n=$n",
        meta => { space => $space,
                  images => [ map { { name => $_->[0] } } @imgs ] },
        images => \@imgs);
    $r->{n} = $n;
    $r->{gw} = $g;
    return $r;
}

# persons/truncate: one request, no images
sub truncate_space {
    my ($g, %o) = @_;
    my $n = "$$." . ++$SEQ;
    my $r = SmartyTest::call($g->{url}, 'persons/truncate',
        key => $g->{keys}{ $o{client} // 'demo' }, query => "n=$n",
        meta => { space => $o{space} // '1' });
    $r->{n} = $n;
    $r->{gw} = $g;
    return $r;
}

# the access-log line of an answer, as a hash (empty variables are "-")
sub qlog {
    my ($r) = @_;
    my $file = "$r->{gw}{ngx}{dir}/quota.log";
    my $line;
    SmartyTest::wait_until(sub {
        ($line) = SmartyTest::slurp($file) =~ /^(n=\Q$r->{n}\E .*)$/m;
        defined $line;
    }, $VALGRIND ? 60 : 10);
    return {} unless defined $line;
    return { map { /^([a-z]+)=(.*)$/ ? ($1, $2) : () } split / /, $line };
}

sub qstatus { return qlog($_[0])->{q} // '(no log line)' }

sub calls { return SmartyTest::emulator_stats($_[0]{emu})->{requests} }
sub images_up { return SmartyTest::emulator_stats($_[0]{emu})->{images} }

sub faults {
    my ($g, $q) = @_;
    my $r = SmartyTest::http('POST', "$g->{emu}{url}/_emulator/faults?$q");
    die "emulator faults $q: $r->{status}" unless $r->{status} == 200;
}

sub hdr {
    my ($r, $name) = @_;
    my $v = $r->{headers}{lc $name};
    return ref $v ? join(', ', @$v) : $v;
}

# RateLimit: limit=L, remaining=R, reset=S  ->  {limit, remaining, reset}
sub rl {
    my ($r) = @_;
    my $h = hdr($r, 'RateLimit') // return undef;
    my %x;
    for (split /,/, $h) {
        $x{$1} = $2 if /^\s*([a-z]+)=(\d+)\s*$/;
    }
    return \%x;
}

# RateLimit-Policy: the list of its items as "<limit>;w=<window>[;burst=B]",
# white space and the extension parameter smarty-unit removed (units()
# checks it where present)
sub rlp {
    my ($r) = @_;
    my $h = hdr($r, 'RateLimit-Policy') // return undef;
    return [ map { s/\s+//gr =~ s/;smarty-unit=[^;]*//r } split /,/, $h ];
}

# { "<limit>;w=<window>..." => the item's smarty-unit, or "" }
sub units {
    my ($r) = @_;
    my %u;
    for (split /,/, hdr($r, 'RateLimit-Policy') // '') {
        my $item = s/\s+//gr;
        my ($unit) = $item =~ /;smarty-unit=([^;]*)/;
        $u{ $item =~ s/;smarty-unit=[^;]*//r } = $unit // '';
    }
    return \%u;
}

sub cs { return hdr($_[0], 'Cache-Status') // '' }

sub limit_of {
    my ($scope, $unit, $window, $policy) = @_;
    return { scope => $scope, unit => $unit, window => $window,
             policy => $policy };
}

# A 429 as docs/quota.md writes it.  $limit: the expected body.limit.
sub is_refused {
    my ($r, $code, $limit, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    subtest $name => sub {
        is_error($r, 429, $code, 'the envelope');
        my $ra = hdr($r, 'Retry-After');
        like($ra // '', qr/^[1-9][0-9]*$/, 'Retry-After: whole seconds, >= 1');
        is($r->{json}{body}{retry_after}, $ra, 'body.retry_after is Retry-After');
        is_deeply($r->{json}{body}{limit}, $limit, 'body.limit names the limit')
            or diag $r->{content};
        ok(defined hdr($r, 'RateLimit'), 'a RateLimit header');
        ok(defined hdr($r, 'RateLimit-Policy'), 'a RateLimit-Policy header');
        is($r->{json}{htmlencoded}, JSON::PP::false, 'htmlencoded false');
        is($r->{json}{last_modified}, 0, 'last_modified 0');
        ok(!defined hdr($r, 'Cache-Status'),
           'no Cache-Status: the cache neither served nor forwarded it');
    };
}

sub is_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 200, $name)
        or diag "$r->{status}: " . ($r->{content} // '');
}

# Runs $code->($i) in $n processes that start together (they wait on a
# pipe the parent then closes); returns their results (strings).
sub parallel {
    my ($n, $code) = @_;
    my $dir = SmartyTest::tempdir() . '/par-' . SmartyTest::random_hex(4);
    mkdir $dir or die "mkdir $dir: $!";
    pipe(my $rd, my $wr) or die "pipe: $!";
    my @kids;
    for my $i (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            close $wr;
            my $buf;
            sysread($rd, $buf, 1);           # EOF: go
            my $res = eval { $code->($i) } // "died: $@";
            SmartyTest::spew("$dir/$i", $res);
            POSIX::_exit(0);                 # no END blocks: the harness's
        }                                    # servers belong to the parent
        push @kids, $pid;
    }
    close $rd;
    close $wr;
    waitpid($_, 0) for @kids;
    return map { SmartyTest::slurp("$dir/$_") } 1 .. $n;
}

# =================================================================================
# 1. exactness: L admitted out of N concurrent requests
# =================================================================================

subtest "exactness: 5r/$WU, 12 concurrent requests" => sub {
    my $L = 5;
    my $N = 12;
    my $g = gw(quota => qq{    smarty_quota_space 1 "${L}r/$WU";\n});
    fresh_window();
    my $c0 = calls($g);
    my @res = parallel($N, sub {
        my $r = rec($g);
        return "$r->{status} " . ($r->{json}{body}{code} // '-');
    });
    my %by;
    $by{$_}++ for @res;
    is($by{'200 -'} // 0, $L, "exactly $L answered 200") or diag explain \%by;
    is($by{"429 quota_space_requests_$WN"} // 0, $N - $L,
       "exactly @{[ $N - $L ]} answered 429 quota_space_requests_$WN")
        or diag explain \%by;
    is(calls($g), $c0 + $L, "exactly $L calls reached the upstream");
    is_refused(rec($g), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "${L}r/$WU"),
               'and the next one is refused too');
    is(calls($g), $c0 + $L, 'a refused request never reaches the upstream');
};

subtest "exactness in the cache lookup's script: 7i/$WU, 12 concurrent, 2 workers" => sub {
    my $L = 7;
    my $N = 12;
    my $g = gw(quota => qq{    smarty_quota_space 1 "${L}i/$WU";\n}, cache => 1,
               workers => 2);
    # both workers connected: until then a worker's quota is the fallback's
    # (under valgrind nginx is one process)
    my $workers = $VALGRIND ? 1 : 2;
    SmartyTest::wait_until(sub {
        my $n = () = SmartyTest::error_log($g->{ngx}) =~ /smarty_redis: connected to/g;
        $n >= $workers }, $VALGRIND ? 60 : 10)
        or diag 'not every worker connected to Redis';
    fresh_window();
    my $i0 = images_up($g);
    my @res = parallel($N, sub {
        my $r = rec($g);
        return "$r->{status} " . ($r->{json}{body}{code} // '-') . ' '
             . (qstatus($r) // '');
    });
    my %by;
    $by{$_}++ for @res;
    is($by{'200 - PASS'} // 0, $L, "exactly $L answered 200, decided in Redis")
        or diag explain \%by;
    is($by{"429 quota_space_images_$WN REFUSED"} // 0, $N - $L,
       "exactly @{[ $N - $L ]} answered 429") or diag explain \%by;
    is(images_up($g), $i0 + $L, "exactly $L images reached the upstream");
};

# =================================================================================
# 2. images against requests; a batch that can never pass
# =================================================================================

subtest "images: 5i/$WU" => sub {
    my $g = gw(quota => qq{    smarty_quota_space 1 "5i/$WU";\n});
    fresh_window();
    my ($c0, $i0) = (calls($g), images_up($g));
    is_ok(rec($g, count => 3), '3 images pass');
    my $r = rec($g, count => 3);
    is_refused($r, "quota_space_images_$WN",
               limit_of('space', 'images', $WN, "5i/$WU"),
               '3 more are refused: 2 left');
    is(calls($g), $c0 + 1, 'the refused batch did not reach the upstream');
    is_ok(rec($g, count => 2), 'then 2 images pass');
    is(images_up($g), $i0 + 5, '5 images went upstream');

    $r = rec($g, count => 6);
    is_error($r, 413, 'quota_batch_too_large', 'a batch of 6 out of 5i/m: 413');
    ok(!defined hdr($r, 'Retry-After'), '413: no Retry-After (waiting cannot help)');
    is_deeply($r->{json}{body}{limit},
              limit_of('space', 'images', $WN, "5i/$WU"),
              '413: body.limit names the limit') or diag $r->{content};
    is_deeply(rlp($r), [ "5;w=$WS" ], '413: RateLimit-Policy (the limits were checked)')
        or diag hdr($r, 'RateLimit-Policy');
    is(calls($g), $c0 + 2, 'the batch of 6 never reached the upstream');
    is(images_up($g), $i0 + 5, 'no image of it went upstream');
    is_ok(truncate_space($g), 'a truncate (no images) passes with no image left');
};

# =================================================================================
# 3. the space's limits and a client's, the clients file's override
# =================================================================================

subtest 'per space and per client' => sub {
    my $g = gw(
        quota => qq{    smarty_quota_client 1 "2r/$WU";\n}
               . qq{    smarty_quota_space  1 "3r/$WU";\n}
               . qq{    smarty_quota_client * "2r/$WU";\n}
               . qq{    smarty_quota_space  * "3r/$WU";\n},
        clients => [
            { name => 'alice' }, { name => 'bob' }, { name => 'dave' },
            { name => 'carol', quota => { '*' => "1r/$WU" } },
        ]);
    fresh_window();
    my $c0 = calls($g);

    is_ok(rec($g, client => 'alice'), 'A: 1st passes');
    is_ok(rec($g, client => 'alice'), 'A: 2nd passes');
    is_refused(rec($g, client => 'alice'), "quota_client_requests_$WN",
               limit_of('client', 'requests', $WN, "2r/$WU"),
               'A: 3rd refused by the client limit');
    is_ok(rec($g, client => 'bob'), 'B: 1st passes (the space has 1 left)');
    is_refused(rec($g, client => 'bob'), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "3r/$WU"),
               'B: 2nd refused by the space limit');
    is(calls($g), $c0 + 3, '3 calls upstream');

    is_ok(rec($g, client => 'alice', space => '2'), 'A in space 2: passes');
    is_ok(rec($g, client => 'alice', space => '2'), 'A in space 2: passes again');
    is_refused(rec($g, client => 'alice', space => '2'), "quota_client_requests_$WN",
               limit_of('client', 'requests', $WN, "2r/$WU"),
               'A in space 2: its own 2 there, then refused');
    is_ok(rec($g, client => 'bob', space => '2'), 'B in space 2: passes');

    # the clients file's "quota" replaces smarty_quota_client for carol
    my $r = rec($g, client => 'carol', space => '3');
    is_ok($r, 'carol (1r/m from the clients file): 1st passes');
    is_deeply(rlp($r), [ "3;w=$WS", "1;w=$WS" ],
              "carol's RateLimit-Policy: the space's 3, then her own 1")
        or diag hdr($r, 'RateLimit-Policy');
    is_refused(rec($g, client => 'carol', space => '3'), "quota_client_requests_$WN",
               limit_of('client', 'requests', $WN, "1r/$WU"),
               'carol: 2nd refused, by her own policy');
    is_ok(rec($g, client => 'dave', space => '3'), 'dave (2r/m): 1st passes');
    is_ok(rec($g, client => 'dave', space => '3'), 'dave: 2nd passes');
};

# =================================================================================
# 4. per-second: burst and refill
# =================================================================================

subtest 'burst and refill: 1r/s burst=3' => sub {
    my $g = gw(quota => qq{    smarty_quota_space 4 "1r/s burst=3";\n}
                      . qq{    smarty_quota_space 5 "2i/s burst=3";\n});
    my $c0 = calls($g);
    my $t0 = time;
    my @r = map { rec($g, space => '4') } 1 .. 4;
    my $took = time - $t0;
    is_ok($r[$_], 'burst: request ' . ($_ + 1) . ' passes at once') for 0 .. 2;
    is_deeply(rlp($r[0]), [ '1;w=1;burst=3' ], 'RateLimit-Policy: 1;w=1;burst=3')
        or diag hdr($r[0], 'RateLimit-Policy');
    my $x0 = rl($r[0]) // {};
    is_deeply([ @$x0{qw(limit remaining)} ], [ 1, 2 ],
              'RateLimit after the first: limit=1, remaining=2 (up to the burst)')
        or diag hdr($r[0], 'RateLimit');
    SKIP: {
        # the 4th can only pass 1 s after the first was admitted
        skip sprintf('the four requests took %.2fs: a unit was refilled', $took), 4
            if $took >= 1;
        is_refused($r[3], 'quota_space_requests_second',
                   limit_of('space', 'requests', 'second', '1r/s burst=3'),
                   'burst: the 4th is refused');
        is(hdr($r[3], 'Retry-After'), 1, 'Retry-After: 1');
        cmp_ok(rl($r[3])->{reset} // 0, '>=', 1, 'RateLimit reset >= 1');
        is(rl($r[3])->{remaining}, 0, 'RateLimit remaining=0');
    }
    is(calls($g), $c0 + ($r[3]{status} == 200 ? 4 : 3), 'only what passed went upstream');

    # wait out the announced refill (a limit's time, not a server's)
    my $wait = hdr($r[3], 'Retry-After') // 1;
    select(undef, undef, undef, $wait);
    is_ok(rec($g, space => '4'), "after Retry-After ($wait s): one more passes");

    # more images than the burst can ever hold
    my $r = rec($g, space => '5', count => 4);
    is_error($r, 413, 'quota_batch_too_large', '4 images out of 2i/s burst=3: 413');
    ok(!defined hdr($r, 'Retry-After'), '413: no Retry-After');
    is_deeply($r->{json}{body}{limit},
              limit_of('space', 'images', 'second', '2i/s burst=3'),
              '413: body.limit') or diag $r->{content};
    is_ok(rec($g, space => '5', count => 3), '3 images (the burst) pass');
};

# =================================================================================
# 5. cache hits spend nothing (unless smarty_quota_hits on); partial hits
# =================================================================================

subtest 'cache hits do not spend' => sub {
    my $g = gw(cache => 1,
               quota => qq{    smarty_quota_space 1 "2r/$WU";\n}
                      . qq{    smarty_quota_space 2 "3i/$WU";\n});
    fresh_window();
    my $c0 = calls($g);
    my $same = [ [ 'file_0', img() ] ];
    my @r = map { rec($g, images => $same) } 1 .. 5;
    is_ok($r[$_], 'the same image, time ' . ($_ + 1) . ': 200') for 0 .. 4;
    like(cs($r[0]), qr/fwd=miss/, 'the first was a miss');
    like(cs($r[$_]), qr/^smarty-gateway; hit(; collapsed)?$/, 'then hit ' . $_) for 1 .. 4;
    is(calls($g), $c0 + 1, 'one upstream call');
    is(rl($r[4])->{remaining}, 1, 'a hit carries RateLimit too: 1 request left')
        or diag hdr($r[4], 'RateLimit');
    is_ok(rec($g), 'a miss spends the 2nd request');
    is_refused(rec($g), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "2r/$WU"),
               'a 3rd miss is refused');
    is_ok(rec($g, images => $same), 'and a hit still passes with nothing left');

    # partial hits spend only the missing images
    my ($ia, $ib, $ic, $id) = map { [ "i$_", img() ] } 1 .. 4;
    my $i0 = images_up($g);
    is_ok(rec($g, space => '2', images => [ $ia, $ib ]), '[a,b]: spends 2 of 3 images');
    my $r = rec($g, space => '2', images => [ $ia, $ib, $ic ]);
    is_ok($r, '[a,b,c]: passes, spends only c');
    like(cs($r), qr/fwd=partial/, '[a,b,c]: a partial hit');
    is(images_up($g), $i0 + 3, '3 images went upstream in all');
    is(rl($r)->{remaining}, 0, '[a,b,c]: RateLimit remaining=0')
        or diag hdr($r, 'RateLimit');
    is_refused(rec($g, space => '2', images => [ $id ]), "quota_space_images_$WN",
               limit_of('space', 'images', $WN, "3i/$WU"),
               '[d]: refused, nothing left');
    is(cs(rec($g, space => '2', images => [ $ia, $ib, $ic ])), 'smarty-gateway; hit',
       '[a,b,c] again: a full hit, passes with nothing left');

    # smarty_quota_hits on: a hit spends its request
    my $h = gw(cache => 1, gateway => "            smarty_quota_hits on;\n",
               quota => qq{    smarty_quota_space 1 "2r/$WU";\n});
    fresh_window();
    my $other = [ [ 'file_0', img() ] ];
    my $c1 = calls($h);
    is_ok(rec($h, images => $other), 'hits on: a miss passes');
    my $hit = rec($h, images => $other);
    is_ok($hit, 'hits on: a hit passes');
    is(cs($hit), 'smarty-gateway; hit', 'hits on: (it was a hit)');
    my $third = rec($h, images => $other);
    is_refused($third, "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "2r/$WU"),
               'hits on: the 3rd (a hit) is refused');
    is(calls($h), $c1 + 1, 'hits on: one upstream call');

    # identical requests in flight at once: a request that waits for the
    # first one's upstream call pays for its image when it first looks
    # (docs/quota.md), and gets it back when the answer comes as a hit
    my $co = gw(cache => 1, quota => qq{    smarty_quota_space 1 "5i/$WU";\n});
    fresh_window();
    faults($co, 'latency_ms=300');
    my $same3 = [ [ 'file_0', img() ] ];
    my $c2 = calls($co);
    my @res = parallel(4, sub { rec($co, images => $same3)->{status} });
    faults($co, 'latency_ms=0');
    is_deeply(\@res, [ (200) x 4 ], 'coalesced: 4 identical requests at once, all 200');
    is(calls($co), $c2 + 1, 'coalesced: one upstream call');
    is_ok(rec($co, count => 4), 'coalesced: 1 image spent in all, 4 more pass');
    is_refused(rec($co), "quota_space_images_$WN",
               limit_of('space', 'images', $WN, "5i/$WU"), 'coalesced: then none left');
};

# =================================================================================
# the stateless detectors have their own line; * does not cover them
# =================================================================================

subtest 'detectors' => sub {
    my $g = gw(quota => qq{    smarty_quota_space * "1r/$WU";\n}
                      . qq{    smarty_quota_space detectors "2r/$WU";\n});
    fresh_window();
    my $detect = sub {
        my $n = "$$." . ++$SEQ;
        my $r = SmartyTest::call($g->{url}, 'objects/detect', key => $g->{keys}{demo},
            query => "n=$n",
            meta => { mode => ['object'], images => [ { name => 'file_0' } ] },
            images => [ [ 'file_0', img() ] ]);
        $r->{n} = $n;
        $r->{gw} = $g;
        return $r;
    };
    is_ok($detect->(), 'detect: 1st passes (not covered by *: 1r/m)');
    my $r = $detect->();
    is_ok($r, 'detect: 2nd passes');
    is_deeply(rlp($r), [ "2;w=$WS" ], 'detect: RateLimit-Policy is the detectors\' line')
        or diag hdr($r, 'RateLimit-Policy');
    is_refused($detect->(), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "2r/$WU"), 'detect: 3rd refused');
    is_ok(rec($g), 'space 1: its own 1r/m, untouched by the detectors');
    is_refused(rec($g), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "1r/$WU"), 'space 1: then refused');
    is_ok(rec($g, space => '2'), 'space 2: * counts each space apart');
};

# =================================================================================
# 6. images given back when the upstream fails
# =================================================================================

subtest 'refund on upstream failure' => sub {
    my $g = gw(quota => qq{    smarty_quota_space 1 "3r/$WU; 2i/$WU";\n});
    fresh_window();
    faults($g, 'fail_5xx=1');
    my $f = rec($g);
    is_error($f, 502, 'upstream_error', 'upstream 5xx: 502 (1 image)');
    ok(defined hdr($f, 'RateLimit-Policy') && defined hdr($f, 'RateLimit'),
       'the 502 carries the RateLimit headers');
    faults($g, 'fail_5xx=0&reset=1');
    is_error(rec($g), 502, 'upstream_unavailable', 'upstream reset: 502 (1 image)');
    faults($g, 'reset=0');
    is_ok(rec($g, count => 2), 'then 2 images pass: the failed ones were given back');
    is_refused(truncate_space($g), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "3r/$WU"),
               'the failed requests stay counted (a 4th request is refused)');

    my $n = gw(gateway => "            smarty_quota_refund off;\n",
               quota => qq{    smarty_quota_space 1 "2i/$WU";\n});
    fresh_window();
    faults($n, 'fail_5xx=1');
    is_error(rec($n), 502, 'upstream_error', 'refund off: 502');
    is_error(rec($n), 502, 'upstream_error', 'refund off: 502 again');
    faults($n, 'fail_5xx=0');
    my $c0 = calls($n);
    is_refused(rec($n, count => 2), "quota_space_images_$WN",
               limit_of('space', 'images', $WN, "2i/$WU"),
               'refund off: the 2 images stay spent');
    is(calls($n), $c0, 'refund off: refused before the upstream');
};

# =================================================================================
# 7, 8. headers, envelopes, variables
# =================================================================================

subtest 'headers and variables' => sub {
    my $g = gw(quota => qq{    smarty_quota_space  * "3r/$WU; 100i/d";\n}
                      . qq{    smarty_quota_client * "10r/s burst=20";\n});
    fresh_window();
    my @want = ("3;w=$WS", '100;w=86400', '10;w=1;burst=20');
    for my $i (1 .. 3) {
        my $r = rec($g);
        is_ok($r, "request $i passes");
        my $p = rlp($r) // [];
        is_deeply([ sort @$p ], [ sort @want ],
                  "request $i: RateLimit-Policy lists every limit")
            or diag hdr($r, 'RateLimit-Policy');
        is($p->[-1], '10;w=1;burst=20', "request $i: the client's limit after the space's");
        my $u = units($r);
        like($u->{'100;w=86400'} // '', qr/^(images)?$/,
             "request $i: the images limit is not marked as anything but images");
        is($u->{"3;w=$WS"} // '', '', "request $i: a requests limit is not marked images");
        my $x = rl($r) // {};
        is($x->{limit}, 3, "request $i: RateLimit limit=3 (closest to exhaustion)")
            or diag hdr($r, 'RateLimit');
        is($x->{remaining}, 3 - $i, "request $i: RateLimit remaining=" . (3 - $i));
        ok(($x->{reset} // 0) > 0 && $x->{reset} <= $WS, "request $i: 0 < reset <= $WS")
            or diag hdr($r, 'RateLimit');
        ok(!defined hdr($r, 'Retry-After'), "request $i: no Retry-After on a 200");
        if ($i == 1) {
            my $l = qlog($r);
            is($l->{q}, 'PASS', '$smarty_quota_status PASS');
            is($l->{limit}, "space_requests_$WN", '$smarty_quota_limit');
            is($l->{remaining}, 2, '$smarty_quota_remaining 2');
            ok($l->{reset} > 0 && $l->{reset} <= $WS, '$smarty_quota_reset')
                or diag explain $l;
        }
    }
    my $r = rec($g);
    is_refused($r, "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "3r/$WU"), 'the 4th: 429');
    my $x = rl($r) // {};
    is($x->{limit}, 3, '429: RateLimit describes the refusing limit');
    is($x->{remaining}, 0, '429: RateLimit remaining=0');
    is(hdr($r, 'Retry-After'), $x->{reset}, '429: Retry-After is the reset, rounded up');
    cmp_ok(hdr($r, 'Retry-After') // 0, '<=', $WS, "429: Retry-After <= $WS");
    like($r->{json}{body}{error} // '', qr/\S/, '429: a sentence');
    my $l = qlog($r);
    is($l->{q}, 'REFUSED', '$smarty_quota_status REFUSED');
    is($l->{limit}, "space_requests_$WN", '$smarty_quota_limit of the refusal');
    is($l->{remaining}, 0, '$smarty_quota_remaining 0');
    is($l->{error}, "quota_space_requests_$WN", '$smarty_error is the code');

    # two limits of the same value: draft-07 forbids two policies with one
    # limit value, so only the longest window (the tightest) is listed
    my $dup = gw(quota => qq{    smarty_quota_space  * "4r/$WU";\n}
                        . qq{    smarty_quota_client * "4i/d";\n});
    my $dr = rec($dup);
    is_ok($dr, 'space 4r/m, client 4i/d: passes');
    is_deeply([ sort @{ rlp($dr) // [] } ], [ '4;w=86400' ],
              'RateLimit-Policy: one policy per limit value, the longest window')
        or diag 'RateLimit-Policy: ' . (hdr($dr, 'RateLimit-Policy') // '(none)');
    like(hdr($dr, 'RateLimit-Policy') // '', qr/^4;w=86400;smarty-unit=images$/,
         '  marked as an images limit');

    # answers before the limits are checked carry no RateLimit headers
    my $u = SmartyTest::call($g->{url}, 'persons/recognize', query => 'n=nokey',
        meta => { space => '1', images => [ { name => 'f' } ] },
        images => [ [ 'f', img() ] ]);
    is($u->{status}, 401, 'no key: 401');
    ok(!defined hdr($u, 'RateLimit') && !defined hdr($u, 'RateLimit-Policy'),
       '401: no RateLimit headers');
    my $bad = SmartyTest::call($g->{url}, 'persons/recognize', key => $g->{keys}{demo},
        meta => { space => 'x', images => [ { name => 'f' } ] },
        images => [ [ 'f', img() ] ]);
    is($bad->{status}, 400, 'a bad space: 400');
    ok(!defined hdr($bad, 'RateLimit'), '400: no RateLimit header');

    # a location without quotas
    my $off = gw(gateway => "            smarty_quota off;\n",
                 quota => qq{    smarty_quota_space * "1r/$WU";\n});
    for my $i (1 .. 3) {
        my $o = rec($off);
        is_ok($o, "smarty_quota off: request $i passes");
        ok(!defined hdr($o, 'RateLimit') && !defined hdr($o, 'RateLimit-Policy'),
           "smarty_quota off: request $i: no RateLimit headers");
        like(qlog($o)->{q} // 'none', qr/^-?$/, 'smarty_quota off: $smarty_quota_status empty')
            if $i == 1;
    }
    my $none = gw();
    my $o = rec($none);
    is_ok($o, 'no quota configured: 200');
    ok(!defined hdr($o, 'RateLimit') && !defined hdr($o, 'RateLimit-Policy'),
       'no quota configured: no RateLimit headers');
};

# =================================================================================
# 9. two instances, one Redis
# =================================================================================

subtest 'two instances share one limit' => sub {
    my $ga = gw(quota => qq{    smarty_quota_space 1 "4r/$WU";\n});
    my $gb = gw(quota => qq{    smarty_quota_space 1 "4r/$WU";\n},
                prefix => $ga->{prefix}, emu => $ga->{emu}, token => $ga->{token},
                clients => [ { name => 'demo', key => $ga->{keys}{demo} } ]);
    fresh_window();
    my $c0 = calls($ga);
    is_ok(rec($ga), 'A: 1st');
    is_ok(rec($gb), 'B: 2nd');
    is_ok(rec($ga), 'A: 3rd');
    is_ok(rec($gb), 'B: 4th');
    my $code = "quota_space_requests_$WN";
    my $lim = limit_of('space', 'requests', $WN, "4r/$WU");
    is_refused(rec($ga), $code, $lim, 'A: the 5th is refused');
    is_refused(rec($gb), $code, $lim, 'B: the 5th is refused too');
    is(calls($ga), $c0 + 4, '4 calls upstream from both');
};

# =================================================================================
# 10. Redis stopped and started again
# =================================================================================

subtest 'Redis away: local fallback, fail-closed, and back' => sub {
    # Redis keeps its data across the restart (an append-only file in its
    # directory, which start_redis derives from the port)
    my @aof = (args => [ '--appendonly', 'yes', '--appendfsync', 'always' ]);
    my $red = SmartyTest::start_redis(@aof);
    my $pol = qq{    smarty_quota_space 1 "4r/h";\n};
    my $loc = gw(redis_port => $red->{port}, quota => $pol,
                 gateway => "            smarty_quota_fallback local share=1/2;\n",
                 clients => [ { name => 'demo' },
                              { name => 'ops', spaces => [], methods => [],
                                operator => JSON::PP::true } ],
                 server => "        location = /quota {\n"
                         . "            smarty_quota_fallback local share=1/2;\n"
                         . "            smarty_quota_view;\n"
                         . "            smarty_clients_file %%CLIENTS_FILE%%;\n"
                         . "        }\n");
    my $clo = gw(redis_port => $red->{port}, quota => $pol,
                 gateway => "            smarty_quota_fallback closed;\n");
    fresh_window(3600, $VALGRIND ? 900 : 120);

    my $r = rec($loc);
    is_ok($r, 'local: Redis up, 1 request passes');
    is(qstatus($r), 'PASS', 'local: decided in Redis');
    $r = rec($clo);
    is_ok($r, 'closed: Redis up, passes');
    is(qstatus($r), 'PASS', 'closed: decided in Redis');

    SmartyTest::stop_proc($red);

    my @r = map { rec($loc) } 1 .. 4;
    is_deeply([ map { $_->{status} } @r ], [ 200, 200, 429, 429 ],
              'Redis stopped, share=1/2 of 4r/h: exactly 2 pass, no 5xx')
        or diag join "\n", map { "$_->{status} $_->{content}" } @r;
    is_deeply([ map { qstatus($_) } @r ],
              [ qw(LOCAL_PASS LOCAL_PASS LOCAL_REFUSED LOCAL_REFUSED) ],
              '$smarty_quota_status LOCAL_PASS, LOCAL_REFUSED');
    # body.limit.policy: this gateway's share of "4r/h", the limit it holds
    my $lim = $r[2]{json}{body}{limit} // {};
    is($lim->{policy} // '', '2r/h',
       "the local refusal names this gateway's share, 2r/h");
    is_refused($r[2], 'quota_space_requests_hour',
               limit_of('space', 'requests', 'hour', '2r/h'),
               'the local refusal: 429 as usual');
    like($r[2]{json}{body}{error} // '', qr/share/, 'its sentence says it was this gateway\'s share');

    my $cc = calls($clo);
    my $cl = rec($clo);
    is(calls($clo), $cc, 'closed: the 503 did not reach the upstream');
    is_error($cl, 503, 'quota_unavailable', 'closed: 503 quota_unavailable');
    is(qstatus($cl), 'CLOSED', '$smarty_quota_status CLOSED');

    # the view while Redis is away reads this instance's fallback
    my $v = SmartyTest::http('GET', "$loc->{url}/quota?space=1",
        headers => { Authorization => "Bearer $loc->{keys}{ops}" });
    is($v->{status}, 200, 'the view while Redis is away: 200');
    is($v->{json}{source}, 'local', 'the view: source local') or diag $v->{content};

    $red = SmartyTest::start_redis(port => $red->{port}, @aof);
    my @seen;
    my $back = SmartyTest::wait_until(sub {
        my $x = rec($loc);
        push @seen, "$x->{status}:" . qstatus($x);
        return $x->{status} == 200 && qstatus($x) eq 'PASS';
    }, $VALGRIND ? 120 : 20);
    ok($back, 'Redis started again: decided in Redis again (PASS)')
        or diag "@seen";
    ok(!grep({ /^5/ } @seen), 'no 5xx while waiting') or diag "@seen";
    # Redis holds 1 (before the outage) + 1 (the PASS just now) of 4
    $r = rec($loc);
    is_ok($r, 'then one more passes (3 of 4 in Redis)');
    is(qstatus($r), 'PASS', '(PASS)');
    $r = rec($loc);
    is_ok($r, 'and another (4 of 4)');
    $r = rec($loc);
    is_refused($r, 'quota_space_requests_hour',
               limit_of('space', 'requests', 'hour', '4r/h'),
               'the 5th in Redis is refused: the spend before the outage still counts');
    is(qstatus($r), 'REFUSED', '(REFUSED, by Redis)');

    ok(SmartyTest::wait_until(sub { rec($clo)->{status} == 200 }, $VALGRIND ? 120 : 20),
       'closed: passes again once Redis is back');

    # Redis black-holed (SIGSTOP): decided locally after at most a timeout;
    # this instance's share of the hour was spent during the outage
    kill 'STOP', $red->{pid};
    my @lat;
    my @st;
    for (1 .. 5) {
        my $t = time;
        my $x = rec($loc);
        push @lat, time - $t;
        push @st, "$x->{status}:" . qstatus($x);
    }
    kill 'CONT', $red->{pid};
    is_deeply(\@st, [ ('429:LOCAL_REFUSED') x 5 ],
              'Redis paused: decided by the fallback (its share is spent), no 5xx')
        or diag "@st";
    cmp_ok($lat[0], '<', $TO / 1000 + ($VALGRIND ? 10 : 1),
           sprintf('Redis paused: the first answer in %.2fs, bounded by the timeout', $lat[0]));
    ok(SmartyTest::wait_until(sub {
           my $x = rec($loc);
           $x->{status} == 429 && qstatus($x) eq 'REFUSED' }, $VALGRIND ? 120 : 20),
       'Redis resumed: Redis decides again (and its 4 are spent)');
};

# =================================================================================
# 11. the operator's view
# =================================================================================

subtest 'the operator\'s view' => sub {
    my $g = gw(
        quota => qq{    smarty_quota_space  * "5r/$WU";\n}
               . qq{    smarty_quota_client * "3i/$WU";\n},
        clients => [ { name => 'demo' }, { name => 'bob', spaces => ['1'] },
                     { name => 'eve', spaces => ['2'] },
                     { name => 'ops', spaces => [], methods => [],
                       operator => JSON::PP::true } ],
        server => "        location = /quota {\n"
                . "            allow 127.0.0.1; deny all;\n"
                . "            smarty_quota_view;\n"
                . "            smarty_clients_file %%CLIENTS_FILE%%;\n"
                . "        }\n");
    fresh_window();
    is_ok(rec($g, count => 1), 'demo: 1 image');
    is_ok(rec($g, count => 2), 'demo: 2 images');
    is_ok(rec($g, client => 'bob', count => 1), 'bob: 1 image');

    my $view = sub {
        my ($q, $who) = @_;
        return SmartyTest::http('GET', "$g->{url}/quota?$q",
            headers => { Authorization => "Bearer $g->{keys}{$who // 'ops'}" });
    };

    # only an operator reads it: every space's usage and every client's name
    my $anon = SmartyTest::http('GET', "$g->{url}/quota?space=1");
    is_error($anon, 401, 'missing_key', 'the view without a key: 401');
    unlike($anon->{content}, qr/bob|eve/, 'and no client name');
    is_error($view->('space=1', 'demo'), 403, 'operator_forbidden',
             'the view with a client key that is not an operator\'s: 403');
    is_error(SmartyTest::http('GET', "$g->{url}/quota?space=1&oauth_token=$g->{keys}{demo}"),
             403, 'operator_forbidden', 'likewise with the key as oauth_token');
    is_error(SmartyTest::http('GET', "$g->{url}/quota?space=1",
                 headers => { Authorization => 'Bearer sgw_nobody' }),
             401, 'unknown_key', 'an unknown key: 401');
    my $find = sub {
        my ($v, $client, $code) = @_;
        my @m = grep { ($_->{client} // '') eq ($client // '') && $_->{code} eq $code }
                @{ $v->{json}{limits} // [] };
        return $m[0];
    };
    my $v = $view->('space=1');
    is($v->{status}, 200, 'GET ?space=1: 200');
    like($v->{headers}{'content-type'} // '', qr{^application/json}, 'JSON');
    is($v->{json}{space}, '1', 'space "1"');
    is($v->{json}{source}, 'redis', 'source redis');
    my $s = $find->($v, undef, "space_requests_$WN");
    ok($s, "the space's limit is listed") or diag $v->{content};
    if ($s) {
        is($s->{scope}, 'space', 'space: scope');
        ok(!defined $s->{client}, 'space: client null');
        is($s->{policy}, "5r/$WU", 'space: policy');
        is($s->{limit}, 5, 'space: limit 5');
        is($s->{capacity}, 5, 'space: capacity 5');
        is($s->{used}, 3, 'space: used 3 (three requests)');
        is($s->{remaining}, 2, 'space: remaining 2');
        ok($s->{reset_ms} > 0 && $s->{reset_ms} <= $WS * 1000, 'space: 0 < reset_ms <= window')
            or diag explain $s;
    }
    my $d = $find->($v, 'demo', "client_images_$WN");
    ok($d, "demo's limit is listed") or diag $v->{content};
    if ($d) {
        is($d->{scope}, 'client', 'demo: scope client');
        is($d->{policy}, "3i/$WU", 'demo: policy');
        is($d->{used}, 3, 'demo: used 3 images');
        is($d->{remaining}, 0, 'demo: remaining 0');
    }
    my $bo = $find->($v, 'bob', "client_images_$WN");
    ok($bo, "bob's limit is listed") or diag $v->{content};
    is($bo->{used}, 1, 'bob: used 1') if $bo;
    is($bo->{remaining}, 2, 'bob: remaining 2') if $bo;
    ok(!grep({ ($_->{client} // '') eq 'eve' } @{ $v->{json}{limits} // [] }),
       'eve (space 2 only) is not listed for space 1');
    is(scalar @{ $v->{json}{limits} // [] }, 3, 'three limits in all') or diag $v->{content};

    my $again = $view->('space=1');
    is($find->($again, undef, "space_requests_$WN")->{used} // -1, 3,
       'reading the view spends nothing');

    my $one = $view->('space=1&client=bob');
    is($one->{status}, 200, '?space=1&client=bob: 200');
    ok($find->($one, 'bob', "client_images_$WN"), 'bob listed') or diag $one->{content};
    ok(!$find->($one, 'demo', "client_images_$WN"), 'demo not listed');
    ok($find->($one, undef, "space_requests_$WN"),
       "the space's own limits, which bob is held by too, are listed")
        or diag $one->{content};

    my $two = $view->('space=2');
    is($find->($two, undef, "space_requests_$WN")->{used} // -1, 0, 'space 2: used 0')
        or diag $two->{content};
    ok($find->($two, 'eve', "client_images_$WN"), 'space 2: eve listed');
    ok(!$find->($two, 'bob', "client_images_$WN"), 'space 2: bob not listed');

    is_error($view->('space=x'), 400, 'bad_space', '?space=x: 400 bad_space');
    is_error($view->('space=12'), 400, 'bad_space', '?space=12: 400 bad_space');
};

# =================================================================================
# nginx -s reload: new limits apply, what was spent is kept
# =================================================================================

subtest 'reload: new limits, the spend kept' => sub {
    plan skip_all => 'a reload needs a master process (not under valgrind)'
        if $VALGRIND;
    my $g = gw(quota => qq{    smarty_quota_space 1 "2r/$WU";\n});
    fresh_window();
    is_ok(rec($g), '2r: the 1st passes');
    is_ok(rec($g), '2r: the 2nd passes');
    is(rec($g)->{status}, 429, '2r: the 3rd is refused');

    my $conf = SmartyTest::slurp("$g->{ngx}{dir}/nginx.conf");
    $conf =~ s{smarty_quota_space 1 "2r/$WU";}{smarty_quota_space 1 "3r/$WU";}
        or fail('the policy in nginx.conf');
    SmartyTest::spew("$g->{ngx}{dir}/nginx.conf", $conf);
    my $count = sub {
        my ($re) = @_;
        my $n = () = SmartyTest::error_log($g->{ngx}) =~ /$re/g;
        return $n;
    };
    my $connected = $count->(qr/smarty_redis: connected to/);
    my $exited = $count->(qr/: exit$/m);
    my ($rc, $out) = SmartyTest::nginx_reload($g->{ngx});
    is($rc, 0, 'nginx -s reload') or diag $out;
    # the old worker gone, the new one connected to Redis (until then the
    # fallback would decide)
    ok(SmartyTest::wait_until(sub { $count->(qr/: exit$/m) > $exited }, 10),
       'the old worker exited');
    ok(SmartyTest::wait_until(sub {
        $count->(qr/smarty_redis: connected to/) > $connected }, 10),
       'the new worker connected to Redis');

    # refused answers spend nothing: ask until the new policy answers
    my $r;
    ok(SmartyTest::wait_until(sub {
        $r = rec($g);
        (hdr($r, 'RateLimit-Policy') // '') =~ /^3;/ }, 10),
       'the new policy, 3r, is in force') or diag $r->{content};
    is($r->{status}, 200, '3r with 2 spent before the reload: one more passes');
    is(qstatus($r), 'PASS', '  decided in Redis');
    is_refused(rec($g), "quota_space_requests_$WN",
               limit_of('space', 'requests', $WN, "3r/$WU"),
               'and the next is refused: the spend survived the reload');
};

# =================================================================================
# 12. configuration mistakes
# =================================================================================

subtest 'nginx -t' => sub {
    my $srv = "    server { listen 127.0.0.1:%%PORT%%; location / { return 204; } }\n";
    my $rc0 = redis_conf(1);
    my @bad = (
        [ qq{smarty_quota_space 1 "10x/m";}, qr/"10x\/m"/, 'a bad unit' ],
        [ 'smarty_quota_space 1 "10r/m"; smarty_quota_prefix "a{b:";',
          qr/"smarty_quota_prefix" must not hold "\{"/, 'a prefix with a brace' ],
        [ qq{smarty_quota_space 1 "10r/m"; smarty_quota_prefix "} . ('p' x 65) . qq{";},
          qr/"smarty_quota_prefix" is longer than 64 bytes/, 'a prefix too long' ],
        [ qq{smarty_quota_space 12 "10r/m";}, qr/"12"/, 'a bad space' ],
        [ qq{smarty_quota_client 1 "10r/m burst=20";}, qr/"burst=20"/,
          'a burst after a per-minute limit' ],
        [ qq{smarty_quota_space 1 "10r/s 20r/s";}, qr/"20r\/s"/,
          'two limits of one unit and window' ],
        [ qq{smarty_quota_space 1 "";}, qr/no limit/, 'an empty policy' ],
        [ qq{smarty_quota_space 1 "1r/s"; smarty_quota_space 1 "2r/s";}, qr/smarty_quota_space/,
          'two policies for one space' ],
        [ q{smarty_quota_fallback local share=3/2;}, qr/share=3\/2/, 'a share above 1' ],
        [ q{smarty_quota_fallback local share=0;}, qr/share=0/, 'a share of 0' ],
        [ q{smarty_quota_fallback local share=half;}, qr/share=half/, 'a share not a number' ],
        [ q{smarty_quota_fallback open;}, qr/"open"/, 'a fallback neither local nor closed' ],
    );
    for my $case (@bad) {
        my ($text, $like, $name) = @$case;
        my ($rc, $out) = SmartyTest::nginx_test(http => "$rc0    $text\n$srv");
        isnt($rc, 0, "nginx -t: $name fails");
        like($out, $like, "nginx -t: $name: names the token") or diag $out;
    }

    my ($rc, $out) = SmartyTest::nginx_test(http => $rc0 . <<"EOF" . $srv);
    smarty_quota_space  *  "20r/s burst=40; 100000i/d";
    smarty_quota_space  1  "5r/s; 20000i/d";
    smarty_quota_client *  "5r/s burst=10; 1000i/m";
    smarty_quota_space  detectors  "50r/s";
    smarty_quota_hits on;
    smarty_quota_refund off;
    smarty_quota_fallback local share=0.25;
    smarty_quota_prefix "x:";
    smarty_quota_zone 2m;
    smarty_quota on;
EOF
    is($rc, 0, 'nginx -t: every directive, right') or diag $out;

    # a bad policy in the clients file names the client and the token
    my $dir = SmartyTest::tempdir() . '/conf-' . SmartyTest::random_hex(4);
    mkdir $dir;
    SmartyTest::spew("$dir/token", "t\n");
    chmod 0600, "$dir/token";
    SmartyTest::clients_file("$dir/clients.json",
        { name => 'mallory', key => 'k', quota => { '1' => '10q/m' } });
    ($rc, $out) = SmartyTest::nginx_test(http => $rc0
        . qq{    smarty_quota_client * "5r/s";\n}
        . SmartyTest::gateway_http_conf(emu_port => 1, token_file => "$dir/token",
                                        clients_file => "$dir/clients.json"));
    isnt($rc, 0, 'nginx -t: a bad policy in the clients file fails');
    like($out, qr/mallory.*"10q\/m"|"10q\/m".*mallory/, 'and names the client and the token')
        or diag $out;
};

# =================================================================================

my $logs = join '', map { SmartyTest::error_log($_->{ngx})
                           . SmartyTest::slurp("$_->{ngx}{dir}/stderr.log") } @ALL;
unlike($logs, qr/\[alert\]|\[emerg\]|exited on signal|AddressSanitizer|runtime error/,
       'no alert, no crash in any error log');

done_testing;
