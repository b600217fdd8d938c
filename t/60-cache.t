# The recognize/detector cache in Redis: hits across clients and formats,
# partial batches, invalidation by each of the five causes, two gateway
# instances sharing one Redis, coalescing, Redis stopped or paused.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use Digest::SHA qw(sha256_hex);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time);
use IO::Socket::INET;

my $redis = SmartyTest::start_redis();
my $redis_conf = "smarty_redis 127.0.0.1:$redis->{port};\n"
    . "    smarty_redis_timeout 200ms;\n"
    . "    smarty_redis_breaker failures=3 cooldown=2s;\n";
my $cache = "smarty_cache on; smarty_cache_wait 3s;";

my $gw = SmartyTest::start_gateway(http => $redis_conf, gateway => $cache,
                                   emu_args => [ '--per-image-ms', '0' ]);
my $url = $gw->{url};
my $key = $gw->{keys}{demo};
my $emu = $gw->{emu};

my $group = SmartyTest::group_photo();
my $rachel = SmartyTest::alone_photo('rachel');
my $ross = SmartyTest::alone_photo('ross');
my $monica = SmartyTest::alone_photo('monica');

sub upstream_calls { SmartyTest::emulator_stats($emu)->{requests} }
sub upstream_images { SmartyTest::emulator_stats($emu)->{images} }

sub rec {
    my ($space, $imgs, %o) = @_;
    my $base = delete $o{url} // $url;
    my $extra = delete $o{meta} // {};
    my @imgs = @$imgs;
    return SmartyTest::call($base, 'persons/recognize', key => $key,
        meta => { space => $space, images => [ map { { name => $_->[0] } } @imgs ],
                  %$extra },
        images => \@imgs, %o);
}

sub cs { my ($r) = @_; return $r->{headers}{'cache-status'} // '' }

sub tags_by_name {
    my ($r) = @_;
    my $o = SmartyTest::objects_by_name($r);
    return { map { $_ => SmartyTest::tags($o->{$_}) } keys %$o };
}

sub objects_without_names {
    my ($r) = @_;
    return [ map { my %x = %$_; delete $x{name}; \%x } @{ $r->{json}{body}{objects} } ];
}

# --- hit after miss -----------------------------------------------------------

my $n0 = upstream_calls();
my $r1 = rec('1', [ [ 'file_0', $group ] ]);
is($r1->{status}, 200, 'first recognize: 200');
like(cs($r1), qr/^smarty-gateway; fwd=miss; stored$/, 'first: Cache-Status miss, stored');
is(upstream_calls(), $n0 + 1, 'first: one upstream call');

my $r2 = rec('1', [ [ 'file_0', $group ] ]);
is($r2->{status}, 200, 'second recognize: 200');
is(cs($r2), 'smarty-gateway; hit', 'second: Cache-Status hit');
is(upstream_calls(), $n0 + 1, 'second: no upstream call');
is_deeply(objects_without_names($r2), objects_without_names($r1), 'the same answer');
is_deeply([ sort keys %{ $r2->{json} } ], [ sort keys %{ $r1->{json} } ], 'the same envelope');
is($r2->{json}{body}{aliases_changed}, JSON::PP::false, 'aliases_changed false');

# --- the same photo from other clients and formats -----------------------------

my $calls = upstream_calls();
my $r = rec('1', [ [ 'photo', $group ] ], boundary => 'XyZ', quote_boundary => 1);
is(cs($r), 'smarty-gateway; hit', 'other part name, quoted boundary: hit');
is($r->{json}{body}{objects}[0]{name}, 'photo', 'answered with the caller\'s part name');
$r = rec('1', [ [ 'a', $group ] ], preamble => "preamble\r\n", lower_headers => 1,
         epilogue => "\r\nepilogue");
is(cs($r), 'smarty-gateway; hit', 'preamble, lower-case headers, epilogue: hit');
{
    my $dir = SmartyTest::tempdir();
    SmartyTest::spew("$dir/group.jpg", $group);
    my $out = `@{[SmartyTest::client_path()]} -u $url/api/v1/persons/recognize -k $key -p $dir/group.jpg --meta '{"space":"1"}' -v 2>&1`;
    like($out, qr/cache-status: smarty-gateway; hit/i, 'the smarty client: hit');
}
{
    my $dir = SmartyTest::tempdir();
    my $out = `curl -s -D - $url/api/v1/persons/recognize -H 'Authorization: Bearer $key' -F 'meta={"space":"1","images":[{"name":"x"}]}' -F x=\@$dir/group.jpg`;
    like($out, qr/cache-status: smarty-gateway; hit/i, 'curl -F: hit');
}
is(upstream_calls(), $calls, 'no upstream call for any of them');

# --- partial batches ------------------------------------------------------------

rec('1', [ [ 'r', $rachel ], [ 'm', $monica ] ]);
$calls = upstream_calls();
my $images = upstream_images();
$r = rec('1', [ [ 'x', $ross ], [ 'y', $rachel ], [ 'z', $monica ] ]);
is($r->{status}, 200, 'partial: 200') or diag $r->{content};
like(cs($r), qr/fwd=partial; detail="2 of 3 images cached"; stored/, 'partial: Cache-Status');
is(upstream_calls(), $calls + 1, 'partial: one upstream call');
is(upstream_images(), $images + 1, 'partial: only the missing image went upstream');
is_deeply([ map { $_->{name} } @{ $r->{json}{body}{objects} } ], [qw(x y z)],
          'partial: request order');
my $last = SmartyTest::http('GET', "$emu->{url}/_emulator/last")->{json};
unlike($last->{content_type} // '', qr/^$/, 'the rebuilt body has a content type');
$r = rec('1', [ [ 'x', $ross ], [ 'y', $rachel ], [ 'z', $monica ] ]);
is(cs($r), 'smarty-gateway; hit', 'then a full hit');

# --- invalidation ------------------------------------------------------------

sub cached_then {
    my ($name, $cause, $check) = @_;
    subtest "invalidation by $name" => sub {
        rec('1', [ [ 'file_0', $group ] ]);
        is(cs(rec('1', [ [ 'file_0', $group ] ])), 'smarty-gateway; hit', 'cached before');
        $cause->();
        my $after = rec('1', [ [ 'file_0', $group ] ]);
        like(cs($after), qr/fwd=miss/, 'a miss after');
        $check->($after) if $check;
    };
}

cached_then('set', sub {
    SmartyTest::call($url, 'persons/set', key => $key,
        meta => { space => '1', images => [ { name => 'f', person_id => 1 } ] },
        images => [ [ 'f', $rachel ] ]);
}, sub {
    is(tags_by_name($_[0])->{file_0}[0], 'person1', 'Rachel is person1 now, not a stale undefined');
});
cached_then('delete', sub {
    SmartyTest::call($url, 'persons/delete', key => $key,
        meta => { space => '1', images => [ { name => 'd', person_id => 1 } ] });
}, sub {
    is(tags_by_name($_[0])->{file_0}[0], 'undefined', 'Rachel is unknown again');
});
cached_then('recognize with create_new', sub {
    rec('1', [ [ 'n', $ross ] ], meta => { create_new => JSON::PP::true });
});
cached_then('truncate', sub {
    SmartyTest::call($url, 'persons/truncate', key => $key, meta => { space => '1' });
}, sub {
    is_deeply(tags_by_name($_[0])->{file_0}, [ ('undefined') x 6 ], 'nobody known');
});
cached_then('aliases_changed', sub {
    SmartyTest::http('POST', "$emu->{url}/_emulator/faults?aliases_changed=1");
    rec('1', [ [ 'q', $monica ] ]);
    SmartyTest::http('POST', "$emu->{url}/_emulator/faults?aliases_changed=0");
});

# other spaces keep their entries
rec('2', [ [ 'file_0', $group ] ]);
SmartyTest::call($url, 'persons/truncate', key => $key, meta => { space => '1' });
is(cs(rec('2', [ [ 'file_0', $group ] ])), 'smarty-gateway; hit', 'a change of space 1 leaves space 2 cached');

# --- only pure answers are stored ------------------------------------------------

SmartyTest::http('POST', "$emu->{url}/_emulator/faults?temp_error=1");
my $tmp = SmartyTest::alone_photo('temporary');
$r = rec('4', [ [ 't', $tmp ] ]);
is($r->{json}{body}{objects}[0]{status}, 2, 'a temporary error');
unlike(cs($r), qr/stored/, 'is not stored');
SmartyTest::http('POST', "$emu->{url}/_emulator/faults?temp_error=0");
like(cs(rec('4', [ [ 't', $tmp ] ])), qr/fwd=miss/, 'and the next call goes upstream');
$r = rec('4', [ [ 'u', "not an image" ] ]);
is($r->{json}{body}{objects}[0]{status}, 1, 'a permanent error');
unlike(cs($r), qr/stored/, 'is not stored by default (smarty_cache_status1 off)');

# --- detectors -------------------------------------------------------------------

sub detect {
    my ($modes) = @_;
    return SmartyTest::call($url, 'objects/detect', key => $key,
        meta => { mode => $modes, images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $group ] ]);
}
like(cs(detect([ 'object', 'scene' ])), qr/fwd=miss; stored/, 'detect: miss');
my $d = detect([ 'scene', 'object' ]);
is(cs($d), 'smarty-gateway; hit', 'detect: the same modes in another order hit');
ok($d->{json}{body}{object_labels} && $d->{json}{body}{scene_labels}, 'detect: both lists rebuilt');
like(cs(detect([ 'object' ])), qr/fwd=miss/, 'detect: other modes miss');

# --- the key holds every meta member that changes the answer ---------------------

sub sim { my ($r) = @_; return $r->{json}{body}{objects}[0]{persons}[0]{similarity} }

{
    my $kim = SmartyTest::alone_photo('kim');
    like(cs(rec('3', [ [ 'f', $kim ] ])), qr/fwd=miss; stored/, 'plain: a miss, stored');
    my $s = rec('3', [ [ 'f', $kim ] ], meta => { searcher => 1 });
    like(cs($s), qr/fwd=miss; stored/, 'searcher 1: a miss, not the plain answer');
    ok(defined $s->{json}{body}{objects}[0]{persons}[0]{age},
       'searcher 1: the second model\'s attributes') or diag $s->{content};
    my $s2 = rec('3', [ [ 'g', $kim ] ], meta => { searcher => 1 });
    is(cs($s2), 'smarty-gateway; hit', 'searcher 1 again: a hit');
    is_deeply(objects_without_names($s2), objects_without_names($s), '... with its answer');
    my $p = rec('3', [ [ 'f', $kim ] ]);
    is(cs($p), 'smarty-gateway; hit', 'plain again: its own entry');
    ok(!defined $p->{json}{body}{objects}[0]{persons}[0]{age}, '... without the attributes');
    is(cs(rec('3', [ [ 'f', $kim ] ], meta => { searcher => 0 })), 'smarty-gateway; hit',
       'searcher 0 is the default model: the plain entry');
}

# update_embedding changes the space: never from the cache, and a bump
{
    SmartyTest::call($url, 'persons/set', key => $key,
        meta => { space => '3', images => [ { name => 'f', person_id => 5 } ] },
        images => [ [ 'f', $rachel ] ]);
    my $a = rec('3', [ [ 'f', $rachel ] ]);
    like(cs($a), qr/fwd=miss; stored/, 'a known face: a miss, stored');
    is(cs(rec('3', [ [ 'f', $rachel ] ])), 'smarty-gateway; hit', '... then a hit');
    my $n = upstream_calls();
    my $u = rec('3', [ [ 'f', $rachel ] ], meta => { update_embedding => JSON::PP::true });
    is(cs($u), 'smarty-gateway; fwd=method', 'update_embedding: forwarded as a write');
    is(upstream_calls(), $n + 1, '... to the upstream');
    isnt(sim($u), sim($a), 'the update moved the similarity');
    my $after = rec('3', [ [ 'f', $rachel ] ]);
    like(cs($after), qr/fwd=miss/, 'the next recognize: a miss, the space was bumped');
    is(sim($after), sim($u), '... answering the updated similarity, not the stale one');
}

# a member the gateway does not know: forwarded, never stored nor served
{
    my $lee = SmartyTest::alone_photo('lee');
    my $n = upstream_calls();
    my $x = rec('3', [ [ 'f', $lee ] ], meta => { threshold => 0.5 });
    is($x->{status}, 200, 'an unknown meta member: 200');
    is(cs($x), 'smarty-gateway; fwd=bypass; detail=meta', '... bypasses the cache');
    is(cs(rec('3', [ [ 'f', $lee ] ], meta => { threshold => 0.5 })),
       'smarty-gateway; fwd=bypass; detail=meta', '... every time');
    is(upstream_calls(), $n + 2, 'both went upstream');
    like(cs(rec('3', [ [ 'f', $lee ] ])), qr/fwd=miss/,
         'without the member: a miss, nothing was stored');
    $x = SmartyTest::call($url, 'persons/recognize', key => $key,
        meta => { space => '3', images => [ { name => 'f', crop => [ 0, 0, 5, 5 ] } ] },
        images => [ [ 'f', $lee ] ]);
    is(cs($x), 'smarty-gateway; fwd=bypass; detail=meta',
       'an unknown member of an image entry: bypass too');
}

# Cache-Status is on the answers the cache decided (a hit, or forwarded),
# not on those refused before it (docs/cache.md)
{
    my $x = rec('3', [ [ 'f', $group ] ], key => undef);
    is($x->{status}, 401, 'no key: 401');
    ok(!exists $x->{headers}{'cache-status'}, '401: no Cache-Status');
    $x = rec('x', [ [ 'f', $group ] ]);
    is($x->{status}, 400, 'a bad space: 400');
    ok(!exists $x->{headers}{'cache-status'}, '400: no Cache-Status');
}

# --- a client that leaves during a miss ---------------------------------------------
#
# Its request's locks go with it, so identical requests do not wait for
# smarty_cache_wait (30s here); with proxy_ignore_client_abort on (the
# example configuration) the call it paid for goes on and is stored.

{
    # locks are what is looked at: a lookup that timed out on a loaded
    # machine would forward without one (the documented fallback)
    (my $slow_conf = $redis_conf) =~ s/200ms/5s/;
    my $gwl = SmartyTest::start_gateway(http => $slow_conf, emu => $emu,
        token => $gw->{token}, clients => [ { name => 'demo', key => $key } ],
        gateway => "smarty_cache on; smarty_cache_wait 30s;",
        server => <<'EOF');
        location /noabort/api/v1/ {
            smarty_gateway on;
            smarty_api_prefix /noabort/api/v1/;
            smarty_upstream /_noabort/;
            smarty_upstream_token_file %%TOKEN_FILE%%;
            smarty_clients_file %%CLIENTS_FILE%%;
            smarty_cache on;
            smarty_cache_wait 30s;
        }
        location /_noabort/ {
            internal;
            proxy_pass http://smarty_api/api/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
EOF

    my $locks = sub {
        my ($space) = @_;
        my @k = grep { length } split /\n/,
            `redis-cli -p $redis->{port} --scan --pattern 'smarty:{s$space}:lock:*'`;
        return scalar @k;
    };

    # sends a recognize and leaves once it holds its lock
    my $leave = sub {
        my ($prefix, $space, $img) = @_;
        my ($body, $ct) = SmartyTest::api_body(
            meta => { space => $space, images => [ { name => 'f' } ] },
            images => [ [ 'f', $img ] ]);
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $gwl->{ngx}{port}) or die;
        print $sock "POST $prefix/api/v1/persons/recognize HTTP/1.1\r\nHost: gw\r\n"
            . "Authorization: Bearer $key\r\nContent-Type: $ct\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        ok(SmartyTest::wait_until(sub { $locks->($space) > 0 }, 10),
           ($prefix || 'default') . ": the first request holds a lock");
        close $sock;
    };

    SmartyTest::http('POST', "$emu->{url}/_emulator/faults?latency_ms=1500");

    my $img = SmartyTest::alone_photo('leaver');
    $leave->('/noabort', '0', $img);
    ok(SmartyTest::wait_until(sub { $locks->('0') == 0 }, 10),
       'without proxy_ignore_client_abort: the client left, its lock is released');
    my $x = rec('0', [ [ 'g', $img ] ], url => "$gwl->{url}/noabort");
    is($x->{status}, 200, 'the next identical request: 200');
    unlike(cs($x), qr/collapsed/, '... without waiting for a lock nobody fills');

    $img = SmartyTest::alone_photo('payer');
    my $n = upstream_calls();
    $leave->('', '6', $img);
    $x = rec('6', [ [ 'g', $img ] ], url => $gwl->{url});
    is($x->{status}, 200, 'with proxy_ignore_client_abort: the next request: 200');
    like(cs($x), qr/^smarty-gateway; hit; collapsed$/,
         '... a hit of the answer the leaver paid for');
    is(upstream_calls(), $n + 1, 'one upstream call for both');
    ok(SmartyTest::wait_until(sub { $locks->('6') == 0 }, 10), 'no lock is left');
    unlike(SmartyTest::error_log($gwl->{ngx}), qr/\[alert\]|exited on signal/,
           'no worker crashed on a request that went');

    SmartyTest::http('POST', "$emu->{url}/_emulator/faults?latency_ms=0");
}

# --- the stored bytes: a hit answers the upstream's bytes -----------------------

sub rcli { SmartyTest::redis_cli($redis->{port}, @_) }

# the token a lookup of space $sp reads: "<generation> <node>"
sub token {
    my ($sp) = @_;
    my $gen = rcli('GET', "smarty:{s$sp}:gen");
    $gen = '0' unless length $gen;
    my ($id) = rcli('INFO', 'replication') =~ /master_replid:([0-9a-f]+)/;
    return "$gen " . substr($id, 0, 16);
}

# persons/recognize without searcher: the parameters' id (t/unit/test_cache.c)
sub ekey { my ($sp, $img, $kind) = @_;
           return "smarty:{s$sp}:" . ($kind // 'e2') . ':fa509f0688665bf5:'
               . sha256_hex($img) }

{
    my $img = SmartyTest::alone_photo('bytes');
    my $name = "tab\there/x";        # JSON escapes the tab, not the slash
    my $miss = rec('2', [ [ $name, $img ] ]);
    like(cs($miss), qr/fwd=miss; stored/, 'an odd part name: a miss, stored');
    my $hit = rec('2', [ [ $name, $img ] ]);
    is(cs($hit), 'smarty-gateway; hit', '... then a hit');
    is($hit->{content}, $miss->{content},
       'the hit answers the upstream\'s bytes, the name escaped as it did');
    is($hit->{json}{body}{objects}[0]{name}, $name, '... the name as sent');

    my $v = rcli('GET', ekey('2', $img));
    like($v, qr/^\d+ [0-9a-f]{16} v2 1 9 \d+ \d+\n"objects"\{/,
         'the entry: the token, then format 2');
    unlike($v, qr/tab/, '... without the part name');

    # a batch whose images come back partly from the cache, partly fresh:
    # the merged answer is the upstream's own answer to the same batch
    my @b = map { [ "b$_", SmartyTest::alone_photo("batch$_") ] } 1 .. 4;
    rec('2', [ @b[0, 2] ]);
    my $part = rec('2', \@b);
    like(cs($part), qr/fwd=partial; detail="2 of 4 images cached"/,
         'a partial hit');
    my $q = "oauth_provider=mcs&oauth_token=$gw->{token}";
    my $up = SmartyTest::call($emu->{url}, 'persons/recognize', query => $q,
        meta => { space => '2', images => [ map { { name => $_->[0] } } @b ] },
        images => \@b);
    is($part->{content}, $up->{content},
       'the merged answer is the upstream\'s to the same batch, byte for byte');
}

# Entries of the format before (JSON, under <base>:e:) are never read; a
# value of another format under a format-2 key (a foreign or corrupt
# write) is a miss, never parsed as an answer, and stored over.
{
    my $img = SmartyTest::alone_photo('format-1');
    my $old = '{"objects":{"status":0,"persons":[{"tag":"person99"}]}}';
    rcli('SET', ekey('4', $img, 'e'), token('4') . " $old");
    my $r = rec('4', [ [ 'f', $img ] ]);
    like(cs($r), qr/^smarty-gateway; fwd=miss; stored$/,
         'a format-1 entry under the old key: a miss');
    is(SmartyTest::tags($r->{json}{body}{objects}[0])->[0], 'undefined',
       '... answered by the upstream, not by the old entry');
    is(rcli('GET', ekey('4', $img, 'e')), token('4') . " $old",
       '... which is left as it was (an instance of the old format may '
       . 'still read it)');
    like(rcli('GET', ekey('4', $img)), qr/^\S+ \S+ v2 /,
         'the new entry is stored under <base>:e2:');

    my $img2 = SmartyTest::alone_photo('foreign');
    for my $bad ($old, 'v2 1 9 8 12', "v2 1 9 8 99\n\"objects\"{\"name\":}") {
        rcli('SET', ekey('4', $img2), token('4') . " $bad");
        my $x = rec('4', [ [ 'g', $img2 ] ]);
        is($x->{status}, 200, 'a malformed format-2 entry: 200');
        like(cs($x), qr/fwd=miss/, '... a miss');
        is(SmartyTest::tags($x->{json}{body}{objects}[0])->[0], 'undefined',
           '... the upstream\'s answer');
        ok(SmartyTest::wait_until(sub {
               rcli('GET', ekey('4', $img2)) =~ /^\S+ \S+ v2 1 /
               && rcli('GET', ekey('4', $img2)) ne token('4') . " $bad" }, 5),
           '... and stored over');
        is(cs(rec('4', [ [ 'g', $img2 ] ])), 'smarty-gateway; hit',
           '... then a hit');
    }
    like(SmartyTest::error_log($gw->{ngx}), qr/a cached answer is malformed/,
         'a malformed entry is logged');
}

# --- two gateway instances, one Redis --------------------------------------------

my $gw2 = SmartyTest::start_gateway(http => $redis_conf, gateway => $cache,
                                    emu => $emu, token => $gw->{token},
                                    clients => [ { name => 'demo', key => $key } ]);
rec('5', [ [ 'file_0', $group ] ]);
is(cs(rec('5', [ [ 'file_0', $group ] ], url => $gw2->{url})), 'smarty-gateway; hit',
   'instance B hits what instance A stored');
SmartyTest::call($gw2->{url}, 'persons/set', key => $key,
    meta => { space => '5', images => [ { name => 'f', person_id => 3 } ] },
    images => [ [ 'f', $ross ] ]);
$r = rec('5', [ [ 'file_0', $group ] ]);
like(cs($r), qr/fwd=miss/, 'a set through B invalidates A');
is(tags_by_name($r)->{file_0}[1], 'person3', 'and A answers the new state');

# --- coalescing ------------------------------------------------------------------

SmartyTest::http('POST', "$emu->{url}/_emulator/faults?latency_ms=400");
my $fresh = SmartyTest::alone_photo('coalesced');
$calls = upstream_calls();
my @kids;
for my $i (1 .. 8) {
    my $pid = fork() // die;
    if ($pid == 0) {
        my $x = rec('6', [ [ "k$i", $fresh ] ]);
        POSIX::_exit($x->{status} == 200 ? 0 : 1);
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid($_, 0); $bad++ if $? }
is($bad, 0, '8 concurrent identical requests all answered 200');
is(upstream_calls(), $calls + 1, 'one upstream call for all of them');
SmartyTest::http('POST', "$emu->{url}/_emulator/faults?latency_ms=0");

# --- Redis away ----------------------------------------------------------------

SmartyTest::stop_proc($redis);
my $t0 = time;
$r = rec('7', [ [ 'file_0', $group ] ]);
is($r->{status}, 200, 'Redis stopped: still 200');
like(cs($r), qr/detail=unavailable/, 'Cache-Status says the cache is unavailable');
ok(time - $t0 < 2, 'Redis stopped: bounded latency');
for (1 .. 5) { is(rec('7', [ [ 'file_0', $group ] ])->{status}, 200, "Redis stopped: request $_ answered") }

$redis = SmartyTest::start_redis(port => $redis->{port});
ok(SmartyTest::wait_until(sub { cs(rec('7', [ [ 'file_0', $group ] ])) =~ /stored|hit/ }, 15),
   'the cache is used again once Redis is back');

kill 'STOP', $redis->{pid};
$t0 = time;
my @lat;
for (1 .. 6) {
    my $s = time;
    my $x = rec('7', [ [ 'file_0', $group ] ]);
    push @lat, time - $s;
    is($x->{status}, 200, "Redis paused: request $_ answered 200");
}
kill 'CONT', $redis->{pid};
ok($lat[0] < 1.5, sprintf('Redis paused: the first request waited %.2fs, bounded by the timeout', $lat[0]));
ok($lat[-1] < 0.5, sprintf('the breaker opened: the last one took %.2fs', $lat[-1]));

# a change that Redis refuses to count is counted once it accepts writes
# again (min-replicas-to-write without replicas: every write is refused)
sub redis_cli {
    system("redis-cli -p $redis->{port} @_ >/dev/null") == 0
        or die "redis-cli @_";
}
ok(SmartyTest::wait_until(sub { cs(rec('8', [ [ 'file_0', $group ] ])) =~ /stored|hit/ }, 15),
   'space 8 cached');
like(cs(rec('8', [ [ 'file_0', $group ] ])), qr/^smarty-gateway; hit(; collapsed)?$/,
     'space 8: a hit (collapsed when a slow earlier lookup still held a lock)');
redis_cli(qw(CONFIG SET min-replicas-to-write 1));
$r = SmartyTest::call($url, 'persons/set', key => $key,
    meta => { space => '8', images => [ { name => 'f', person_id => 4 } ] },
    images => [ [ 'f', $rachel ] ]);
is($r->{status}, 200, 'a set while Redis refuses writes goes through');
redis_cli(qw(CONFIG SET min-replicas-to-write 0));
ok(SmartyTest::wait_until(sub {
       my $x = rec('8', [ [ 'file_0', $group ] ]);
       cs($x) !~ /hit/ && (tags_by_name($x)->{file_0}[0] // '') eq 'person4';
   }, 15),
   'once Redis takes writes again, the retried bump makes the cached answer unreachable');

# a lookup that timed out releases the locks Redis may still give it
{
    my $slow = SmartyTest::alone_photo('slow-lookup');
    kill 'STOP', $redis->{pid};
    $r = rec('9', [ [ 'a', $slow ] ]);
    is($r->{status}, 200, 'a lookup that times out: still 200');
    like(cs($r), qr/detail=unavailable/, 'and forwarded as unavailable');
    kill 'CONT', $redis->{pid};
    my $other = SmartyTest::alone_photo('redis-is-back');
    ok(SmartyTest::wait_until(sub { cs(rec('9', [ [ 'b', $other ] ])) =~ /stored|hit/ }, 15),
       'Redis answers again');
    my $t = time;
    $r = rec('9', [ [ 'c', $slow ] ]);
    unlike(cs($r), qr/collapsed/, 'the same image does not wait for a lock nobody fills');
    ok(time - $t < 2, sprintf('and is answered in %.2fs', time - $t));
}

# a change is counted before its answer goes: no request sent after the
# answer can reach an answer cached before the change (writes paused in
# Redis: the set's answer waits for its increment)
{
    my $gw2 = SmartyTest::start_gateway(
        emu => $emu, token => $gw->{token},
        http => "smarty_redis 127.0.0.1:$redis->{port};\n"
              . "    smarty_redis_timeout 10s;\n",
        gateway => $cache);
    my $k2 = $gw2->{keys}{demo};
    my $calls = upstream_calls();
    redis_cli(qw(CLIENT PAUSE 10000 WRITE));
    my $out = SmartyTest::tempdir() . '/paused-set';
    my $pid = fork();
    if ($pid == 0) {
        my $x = SmartyTest::call($gw2->{url}, 'persons/set', key => $k2,
            meta => { space => '5', images => [ { name => 'f', person_id => 9 } ] },
            images => [ [ 'f', $monica ] ]);
        SmartyTest::spew($out, $x->{status});
        POSIX::_exit(0);
    }
    ok(SmartyTest::wait_until(sub { upstream_calls() > $calls }, 10),
       'the set reached the upstream while Redis takes no writes');
    # the gateway logs a request once its answer is sent
    ok(!SmartyTest::wait_until(sub {
           SmartyTest::slurp("$gw2->{ngx}{dir}/gateway.log") =~ /persons\/set/
       }, 2),
       'its answer waits for the change to be counted');
    ok(!-e $out, 'the client has no answer yet');
    my $gen = `redis-cli -p $redis->{port} --scan --pattern '*{s5}:gen'`;
    chomp $gen;
    my $before = `redis-cli -p $redis->{port} GET '$gen'` if length $gen;
    redis_cli(qw(CLIENT UNPAUSE));
    waitpid($pid, 0);
    is(SmartyTest::slurp($out), '200', 'then the set answers 200');
    $gen = `redis-cli -p $redis->{port} --scan --pattern '*{s5}:gen'`;
    chomp $gen;
    my $after = `redis-cli -p $redis->{port} GET '$gen'`;
    chomp $after;
    cmp_ok($after, '>', ($before // 0) + 0, 'counted by the time it answered');
}

my $log = SmartyTest::error_log($gw->{ngx});
unlike($log, qr/\[alert\]|\[emerg\]|segfault/, 'no alerts in the error log');

done_testing;
