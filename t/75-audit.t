# The audit trail and the metrics across two instances (docs/audit.md,
# docs/metrics.md): two gateways on one Redis and one emulator, requests of
# known kinds (a miss, a hit, a partial hit, 4xx, a 429, an upstream 5xx,
# nginx's own refusals of API requests (error_page),
# set, delete, an enrolling recognize), and then exactly one record per
# request in the stream, with the right fields, the same in each
# instance's JSON log file, and exactly the matching increments of the
# metrics; the operator's audit view and its filters; no key nor token in
# any record; Redis stopped: records kept in the buffer, written when it
# is back, and what does not fit dropped and counted; promtool accepts
# the metrics.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);
use JSON::PP ();
use Digest::SHA qw(sha256_hex);
use POSIX ();

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my $VALGRIND = $ENV{SMARTY_VALGRIND};
my $WAIT = $VALGRIND ? 120 : 20;
my $JSON = JSON::PP->new->canonical(1);

# the "limited" client's quota is per day: not at the end of one
{
    my $left = 86400 - time() % 86400;
    if ($left < 120) {
        diag("waiting ${left}s for a new day (the test's daily quota)");
        sleep $left + 1;
    }
}

my $redis = SmartyTest::start_redis();
my $token = 'upstream-' . SmartyTest::random_hex(16);
my $emu = SmartyTest::start_emulator(token => $token,
                                     args => [ '--per-image-ms', '0' ]);

my %keys = map { $_ => "sgw_${_}_" . SmartyTest::random_hex(16) }
           qw(demo limited ops);
my @clients = (
    { name => 'demo', key => $keys{demo} },
    { name => 'limited', key => $keys{limited}, spaces => ['1'],
      methods => ['persons/recognize'], quota => { '1' => '2r/d' } },
    { name => 'ops', key => $keys{ops}, spaces => [], methods => [],
      operator => JSON::PP::true },
);

my $LOG = <<'EOF';
    log_format smarty_audit escape=json
        '{"time":"$smarty_time","id":"$request_id",'
        '"instance":"$smarty_instance","client":"$smarty_client",'
        '"method":"$smarty_method","space":"$smarty_space",'
        '"images":"$smarty_images","sha256":"$smarty_image_sha256",'
        '"person_ids":"$smarty_person_ids",'
        '"create_new":"$smarty_create_new",'
        '"update_embedding":"$smarty_update_embedding",'
        '"cache":"$smarty_cache_status","cache_hits":"$smarty_cache_hits",'
        '"quota":"$smarty_quota_status","quota_limit":"$smarty_quota_limit",'
        '"quota_remaining":"$smarty_quota_remaining",'
        '"upstream_status":"$smarty_upstream_status",'
        '"upstream_time":"$smarty_upstream_time",'
        '"status":"$status","error":"$smarty_error",'
        '"bytes_in":"$request_length","bytes_out":"$bytes_sent",'
        '"request_time":"$request_time"}';
EOF

sub gateway {
    my ($name, $buffer) = @_;
    return SmartyTest::start_gateway(
        emu => $emu, token => $token, clients => [ map { {%$_} } @clients ],
        error_level => 'notice',
        http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
              . "    smarty_redis_timeout 500ms;\n"
              . "    smarty_redis_breaker failures=3 cooldown=1s;\n"
              . "    smarty_audit_stream smarty:audit;\n"
              . "    smarty_audit_instance $name;\n"
              . ($buffer ? "    smarty_audit_buffer $buffer;\n" : '')
              . $LOG,
        gateway => "            smarty_cache on;\n"
                 . "            smarty_quota_space * \"100000r/d\";\n"
                 . "            access_log %%DIR%%/audit.log smarty_audit;\n",
        server => "        smarty_clients_file %%CLIENTS_FILE%%;\n"
                # nginx's own refusals of API requests (error_page): their
                # records in the file too
                . "        access_log %%DIR%%/audit.log smarty_audit "
                . "if=\$smarty_api_request;\n"
                . "        location = /metrics { smarty_metrics; }\n"
                . "        location = /audit { smarty_audit_view; }\n");
}

my $A = gateway('gw-a', '64k');
my $B = gateway('gw-b');

# --- helpers ---------------------------------------------------------------------

sub metrics {
    my ($gw) = @_;
    my $r = SmartyTest::http('GET', "$gw->{url}/metrics",
                             headers => { Authorization => "Bearer $keys{ops}" });
    die "metrics: $r->{status} $r->{content}" unless $r->{status} == 200;
    my %m;
    for (split /\n/, $r->{content}) {
        next if /^#/;
        my ($k, $v) = /^(\S+(?:\{.*\})?) (\S+)$/ or next;
        $m{$k} = $v;
    }
    return \%m;
}

# the sum of every sample of $name whose labels match %want
sub total {
    my ($m, $name, %want) = @_;
    my $sum = 0;
    for my $k (keys %$m) {
        my ($n, $l) = $k =~ /^([^{]+)(?:\{(.*)\})?$/ or next;
        next unless $n eq $name;
        my %l = ($l // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
        next if grep { !defined $l{$_} || $l{$_} ne $want{$_} } keys %want;
        $sum += $m->{$k};
    }
    return $sum;
}

sub delta {
    my ($before, $after, $name, %want) = @_;
    my $d = 0;
    for my $i (0, 1) {
        $d += total($after->[$i], $name, %want)
            - total($before->[$i], $name, %want);
    }
    return $d;
}

sub redis_cli {
    return `redis-cli -p $redis->{port} @_ 2>&1`;
}

# the stream's records, oldest first
sub stream {
    my $r = SmartyTest::http('GET', "$A->{url}/audit?order=asc&limit=1000",
                             headers => { Authorization => "Bearer $keys{ops}" });
    die "audit view: $r->{status} $r->{content}" unless $r->{status} == 200;
    return $r->{json}{records};
}

sub view {
    my ($gw, $q, $key) = @_;
    return SmartyTest::http('GET', "$gw->{url}/audit?$q",
        headers => { Authorization => 'Bearer ' . ($key // $keys{ops}) });
}

sub recognize {
    my ($gw, $space, $images, %o) = @_;
    my $i = 0;
    return SmartyTest::call($gw->{url}, 'persons/recognize',
        key => $o{key} // $keys{demo},
        meta => $o{meta} // { space => $space, %{ $o{extra} // {} },
                              images => [ map { { name => "file_$_" } }
                                          0 .. $#$images ] },
        images => [ map { [ 'file_' . $i++, $_ ] } @$images ], %o);
}

# --- requests of known kinds ---------------------------------------------------------

my $X = SmartyTest::alone_photo('ross');
my $Y = SmartyTest::alone_photo('monica');
my $Z = SmartyTest::alone_photo('joey');
my $V = SmartyTest::alone_photo('chandler');
my @W = map { SmartyTest::alone_photo('phoebe', seed => $_) } 1 .. 3;
my $G = SmartyTest::group_photo();

my @before = (metrics($A), metrics($B));
my @expect;
my $r;

# 1. A: a miss
$r = recognize($A, '1', [$X]);
is($r->{status}, 200, '1. A: a miss');
push @expect, { instance => 'gw-a', client => 'demo', space => '1',
                method => 'persons/recognize', status => 200,
                cache => 'MISS', cache_hits => 0, upstream_status => 200,
                images => 1, sha256 => [ sha256_hex($X) ], quota => 'PASS',
                quota_limit => 'space_requests_day', error => undef };

# 2. B: the same image, a hit (the cache is shared)
$r = recognize($B, '1', [$X]);
like($r->{headers}{'cache-status'} // '', qr/hit/, '2. B: a hit');
push @expect, { instance => 'gw-b', client => 'demo', space => '1',
                status => 200, cache => 'HIT', cache_hits => 1,
                upstream_status => undef, upstream_ms => undef,
                sha256 => [ sha256_hex($X) ] };

# 3. A: a partial hit
$r = recognize($A, '1', [$X, $Y]);
like($r->{headers}{'cache-status'} // '', qr/partial/, '3. A: a partial hit');
push @expect, { instance => 'gw-a', client => 'demo', space => '1',
                status => 200, cache => 'PARTIAL', cache_hits => 1,
                images => 2, sha256 => [ sha256_hex($X), sha256_hex($Y) ],
                upstream_status => 200 };

# 4. B: no key
$r = recognize($B, '1', [$X], key => undef);
is_error($r, 401, 'missing_key', '4. B: no key');
push @expect, { instance => 'gw-b', client => undef, space => undef,
                status => 401, error => 'missing_key', cache => undef,
                quota => undef, images => 0 };

# 5. A: the key as oauth_token, and meta that is not JSON
$r = SmartyTest::call($A->{url}, 'persons/recognize',
                      query => "oauth_token=$keys{demo}", meta => '{"space":',
                      images => [ [ 'file_0', $X ] ]);
is_error($r, 400, 'bad_meta', '5. A: bad meta (the key in the query)');
push @expect, { instance => 'gw-a', client => 'demo', space => undef,
                status => 400, error => 'bad_meta' };

# 6. B: set person 7 in space 2
$r = SmartyTest::call($B->{url}, 'persons/set', key => $keys{demo},
    meta => { space => '2', images => [ { name => 'file_0',
                                          person_id => 7 } ] },
    images => [ [ 'file_0', $Z ] ]);
is($r->{status}, 200, '6. B: set person 7');
push @expect, { instance => 'gw-b', client => 'demo', space => '2',
                method => 'persons/set', status => 200, person_ids => [7],
                cache => 'BYPASS', create_new => undef };

# 7. A: delete person 7
$r = SmartyTest::call($A->{url}, 'persons/delete', key => $keys{demo},
    meta => { space => '2', images => [ { name => 'p', person_id => 7 } ] });
is($r->{status}, 200, '7. A: delete person 7');
push @expect, { instance => 'gw-a', client => 'demo', space => '2',
                method => 'persons/delete', status => 200,
                person_ids => [7], images => 0 };

# 8, 9, 10: "limited" may make two requests a day
$r = recognize($A, '1', [$W[0]], key => $keys{limited});
is($r->{status}, 200, '8. A: limited, first');
push @expect, { instance => 'gw-a', client => 'limited', status => 200,
                quota => 'PASS', quota_remaining => 1 };
$r = recognize($B, '1', [$W[1]], key => $keys{limited});
is($r->{status}, 200, '9. B: limited, second');
push @expect, { instance => 'gw-b', client => 'limited', status => 200,
                quota => 'PASS', quota_remaining => 0 };
$r = recognize($A, '1', [$W[2]], key => $keys{limited});
is_error($r, 429, 'quota_client_requests_day', '10. A: limited, third: 429');
push @expect, { instance => 'gw-a', client => 'limited', status => 429,
                error => 'quota_client_requests_day', quota => 'REFUSED',
                quota_limit => 'client_requests_day', quota_remaining => 0,
                upstream_status => undef };

# 11. B: the upstream fails
SmartyTest::http('POST', "$emu->{url}/_emulator/faults?fail_5xx=1");
$r = recognize($B, '3', [$V]);
is_error($r, 502, 'upstream_error', '11. B: the upstream fails: 502');
SmartyTest::http('POST', "$emu->{url}/_emulator/faults?fail_5xx=0");
push @expect, { instance => 'gw-b', client => 'demo', space => '3',
                status => 502, error => 'upstream_error' };

# 12. A: a recognize that enrolls
$r = recognize($A, '4', [$G], extra => { create_new => JSON::PP::true });
is($r->{status}, 200, '12. A: create_new');
push @expect, { instance => 'gw-a', client => 'demo', space => '4',
                status => 200, create_new => JSON::PP::true,
                update_embedding => JSON::PP::false, cache => 'BYPASS' };

# 13. A: a body over client_max_body_size, refused by nginx before the
# gateway's handler (error_page 413): a record all the same, with the
# client its key names
$r = SmartyTest::raw_request($A->{ngx}{port},
    "POST /api/v1/persons/recognize HTTP/1.1\r\nHost: gw\r\n"
    . "Authorization: Bearer $keys{demo}\r\n"
    . "Content-Type: multipart/form-data; boundary=b\r\n"
    . "Content-Length: " . (65 * 1024 * 1024) . "\r\nConnection: close\r\n\r\n",
    half_close => 1);
is_error($r, 413, 'body_too_large', '13. A: nginx refuses a body too large');
push @expect, { instance => 'gw-a', client => 'demo', space => undef,
                method => 'persons/recognize', status => 413,
                error => 'body_too_large', cache => undef, quota => undef,
                upstream_status => undef, images => 0 };

# 14. B: a header over nginx's buffers, after the key: nginx refuses it
# (error_page 494), the record names the client
$r = SmartyTest::raw_request($B->{ngx}{port},
    "POST /api/v1/persons/truncate HTTP/1.1\r\nHost: gw\r\n"
    . "Authorization: Bearer $keys{demo}\r\n"
    . "X-Pad: " . ('p' x 9000) . "\r\nConnection: close\r\n\r\n",
    half_close => 1);
is_error($r, 400, 'headers_too_large', '14. B: nginx refuses a header');
push @expect, { instance => 'gw-b', client => 'demo',
                method => 'persons/truncate', status => 400,
                error => 'headers_too_large', images => 0 };

# not API requests: no record (nginx's refusal of a path outside the API,
# the gateway's unknown endpoint)
is_error(SmartyTest::raw_request($A->{ngx}{port},
             "GET /favicon.ico HTTP/1.1\r\nHost: gw\r\n"
             . "X-Pad: " . ('p' x 9000) . "\r\nConnection: close\r\n\r\n",
             half_close => 1),
         400, 'headers_too_large', 'outside the API: refused');
is_error(SmartyTest::http('GET', "$B->{url}/favicon.ico"), 404,
         'unknown_endpoint', 'outside the API: unknown');

my $N = @expect;

# --- exactly one record per request ---------------------------------------------------

ok(SmartyTest::wait_until(sub { redis_cli('XLEN smarty:audit') == $N },
                          $WAIT), "the stream holds $N records");

my @after;
ok(SmartyTest::wait_until(sub {
       @after = (metrics($A), metrics($B));
       delta(\@before, \@after, 'smarty_audit_written_total') == $N
   }, $WAIT), "the instances wrote $N records");
is(redis_cli('XLEN smarty:audit') + 0, $N, "still $N: none twice");

my $records = stream();
is(scalar @$records, $N, "the view reads $N records");

# the operators' answers: their type, never stored on the way
for my $v ([ '/metrics', qr{^text/plain; version=0\.0\.4} ],
           [ '/audit?limit=1', qr{^application/json$} ])
{
    my ($path, $type) = @$v;
    my $r = SmartyTest::http('GET', "$A->{url}$path",
                             headers => { Authorization => "Bearer $keys{ops}" });
    is($r->{status}, 200, "$path: 200");
    like($r->{headers}{'content-type'} // '', $type, "$path: its type");
    is($r->{headers}{'cache-control'}, 'no-store', "$path: no-store");
}

subtest 'each request has its record' => sub {
    my @left = @$records;
    for my $i (0 .. $#expect) {
        my $e = $expect[$i];
        my @match = grep {
            my $rec = $_;
            !grep {
                my $k = $_;
                my ($a, $b) = ($rec->{$k}, $e->{$k});
                !(defined $a ? defined $b && $JSON->encode([$a])
                                             eq $JSON->encode([$b])
                             : !defined $b)
            } grep { exists $rec->{$_} || die "no $_" } keys %$e
        } @left;
        is(scalar @match, 1, 'request ' . ($i + 1) . ' has one record')
            or diag($JSON->encode($e));
        @left = grep { $_ != $match[0] } @left if @match == 1;
    }
    is(scalar @left, 0, 'no record left over');
};

subtest 'every record is whole' => sub {
    for my $rec (@$records) {
        is(scalar(keys %$rec), 24, "24 members ($rec->{stream_id})");
        like($rec->{id} // '', qr/^[0-9a-f]{32}$/, 'a request id');
        like($rec->{time} // '',
             qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'a time');
        ok($rec->{bytes_in} > 0 && $rec->{bytes_out} > 0, 'bytes');
        ok(defined $rec->{duration_ms}, 'a duration');
        ok(!defined $rec->{upstream_status} || $rec->{upstream_ms} >= 0,
           'an upstream call has its latency');
    }
};

subtest 'no secret in any record' => sub {
    my $all = redis_cli('XRANGE smarty:audit - +')
            . SmartyTest::slurp("$A->{ngx}{dir}/audit.log")
            . SmartyTest::slurp("$B->{ngx}{dir}/audit.log");
    for my $s ($keys{demo}, $keys{limited}, $keys{ops}, $token) {
        unlike($all, qr/\Q$s\E/, 'a key or the token is in no record');
    }
    unlike($all, qr/face=/, 'no image bytes');
};

subtest 'the JSON log files hold the same records' => sub {
    my %ids = map { $_->{id} => $_ } @$records;
    for my $gw ($A, $B) {
        my @lines = split /\n/, SmartyTest::slurp("$gw->{ngx}{dir}/audit.log");
        my $name = $gw == $A ? 'gw-a' : 'gw-b';
        my $n = grep { $_->{instance} eq $name } @$records;
        is(scalar @lines, $n, "$name: $n lines");
        for my $line (@lines) {
            my $j = eval { JSON::PP->new->decode($line) };
            ok($j, "$name: a JSON line") or diag($line);
            next unless $j;
            my $rec = $ids{$j->{id}};
            ok($rec, "$name: the stream has a record of its id") or next;
            is($j->{instance}, $name, 'instance');
            is($j->{status}, "$rec->{status}", 'status');
            is($j->{client}, $rec->{client} // '', 'client');
            is($j->{error}, $rec->{error} // '', 'error');
            is($j->{images}, "$rec->{images}", 'images');
            is($j->{sha256}, join(',', @{ $rec->{sha256} }), 'sha256');
            is($j->{person_ids}, join(',', @{ $rec->{person_ids} }),
               'person ids');
            is($j->{cache}, $rec->{cache} // '', 'cache');
            is($j->{quota_limit}, $rec->{quota_limit} // '', 'quota limit');
        }
    }
};

# --- the metrics ------------------------------------------------------------------------

subtest 'the metrics moved by exactly these requests' => sub {
    my $d = sub { delta(\@before, \@after, @_) };
    is($d->('smarty_requests_total'), $N, "$N requests");
    is($d->('smarty_requests_total', method => 'persons/recognize',
            space => '1', client => 'demo', status => '200'), 3,
       'recognize, space 1, demo, 200: 3');
    is($d->('smarty_requests_total', client => '', status => '401'), 1,
       'no client, 401: 1');
    is($d->('smarty_requests_total', client => 'limited', status => '200'),
       2, 'limited, 200: 2');
    is($d->('smarty_requests_total', client => 'limited', status => '429'),
       1, 'limited, 429: 1');
    is($d->('smarty_requests_total', method => 'persons/set', space => '2'),
       1, 'set: 1');
    is($d->('smarty_requests_total', method => 'persons/delete'), 1,
       'delete: 1');
    is($d->('smarty_requests_total', space => '3', status => '502'), 1,
       'space 3, 502: 1');
    is($d->('smarty_images_total', method => 'persons/recognize',
            space => '1', client => 'demo', status => '200'), 4,
       'images of recognize, space 1, demo, 200: 4');
    is($d->('smarty_errors_total', code => 'missing_key'), 1, 'missing_key');
    is($d->('smarty_errors_total', code => 'bad_meta'), 1, 'bad_meta');
    is($d->('smarty_errors_total', code => 'quota_exceeded'), 1,
       'quota_exceeded');
    is($d->('smarty_errors_total', code => 'upstream_error'), 1,
       'upstream_error');
    is($d->('smarty_errors_total', code => 'body_too_large'), 1,
       'body_too_large (nginx\'s 413)');
    is($d->('smarty_errors_total', code => 'headers_too_large'), 1,
       'headers_too_large (nginx\'s 494)');
    is($d->('smarty_requests_total', method => 'persons/recognize',
            client => 'demo', status => '413'), 1,
       'recognize, demo, 413: 1');
    is($d->('smarty_errors_total'), 6, 'six errors in all');
    is($d->('smarty_cache_requests_total', result => 'hit'), 1, 'one hit');
    is($d->('smarty_cache_requests_total', result => 'partial'), 1,
       'one partial hit');
    is($d->('smarty_cache_hit_images_total'), 2,
       'two images from the cache: two upstream images saved');
    is($d->('smarty_quota_refusals_total',
            limit => 'client_requests_day'), 1, 'one quota refusal');
    is($d->('smarty_quota_refusals_total'), 1, 'and no other');
    is($d->('smarty_upstream_requests_total', status => '5xx'), 1,
       'one upstream 5xx');
    is($d->('smarty_request_duration_seconds_count'), $N,
       "$N request durations");
    is($d->('smarty_gateway_overhead_seconds_count'), $N,
       "$N overheads");
    is($d->('smarty_upstream_duration_seconds_count'),
       $d->('smarty_upstream_requests_total'),
       'an upstream latency per upstream call');
    is($d->('smarty_audit_records_total'), $N, "$N audit records made");
    is($d->('smarty_audit_dropped_total'), 0, 'none dropped');
    is(total($after[0], 'smarty_redis_workers', state => 'up'), 1,
       'A\'s worker is connected to Redis');
    my $node = "127.0.0.1:$redis->{port}";
    is(total($after[0], 'smarty_redis_node_connected_workers',
             node => $node, role => 'server'), 1,
       'and its node says so');
    ok(total($after[0], 'smarty_redis_node_commands_total', node => $node)
       >= $N, 'the commands it sent the node');
    is(total($after[0], 'smarty_redis_node_timeouts_total', node => $node),
       0, 'none timed out');
};

subtest 'promtool accepts the metrics' => sub {
    plan skip_all => 'promtool is needed (Debian\'s prometheus)'
        unless grep { -x "$_/promtool" } split /:/, $ENV{PATH};
    my $r = SmartyTest::http('GET', "$A->{url}/metrics",
        headers => { Authorization => "Bearer $keys{ops}" });
    like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
         'the text exposition format');
    my $f = SmartyTest::tempdir() . '/metrics.txt';
    SmartyTest::spew($f, $r->{content});
    my $out = `promtool check metrics < $f 2>&1`;
    is($?, 0, 'promtool check metrics: no problem') or diag($out);
};

# --- the audit view -----------------------------------------------------------------------

subtest 'the audit view' => sub {
    is_error(view($A, 'limit=1', $keys{demo}), 403, 'operator_forbidden',
             'a client that is no operator: 403');
    is_error(view($A, 'limit=1', 'nope'), 401, 'unknown_key',
             'an unknown key: 401');
    is_error(view($A, 'limit=0'), 400, 'bad_filter', 'limit=0: 400');
    is_error(view($A, 'image=abc'), 400, 'bad_filter', 'a bad digest: 400');
    is_error(view($A, 'status=6xx'), 400, 'bad_filter', 'status 6xx: 400');
    is_error(view($A, 'after=x'), 400, 'bad_filter', 'a bad id: 400');

    my $n = sub { scalar @{ view($B, $_[0])->{json}{records} // [] } };
    is($n->('client=limited'), 3, 'client=limited: 3');
    is($n->('status=4xx'), 5, 'status=4xx: 5 (two of them nginx\'s)');
    is($n->('status=429'), 1, 'status=429: 1');
    is($n->('image=' . sha256_hex($X)), 4,
       'the image X: 4 requests (the one with bad meta too)');
    is($n->('image=' . uc sha256_hex($Y)), 1, 'Y (upper case hex): 1');
    is($n->('person=7'), 2, 'person 7: set and delete');
    is($n->('method=persons/set'), 1, 'method=persons/set: 1');
    is($n->('space=1&client=demo'), 3, 'space 1 and demo: 3');
    is($n->('space=9'), 0, 'space 9: none');

    # pages, newest first
    my $p1 = view($A, 'limit=5')->{json};
    is(scalar @{ $p1->{records} }, 5, 'a page of 5');
    ok($p1->{next}, 'and where the next one starts');
    is($p1->{records}[0]{stream_id}, $records->[-1]{stream_id},
       'newest first');
    my $p2 = view($A, "limit=10&before=$p1->{next}")->{json};
    is(scalar @{ $p2->{records} }, $N - 5, 'the rest');
    ok(!defined $p2->{next}, 'and no further page');
    my @ids = map { $_->{stream_id} } @{ $p1->{records} },
                                      @{ $p2->{records} };
    is_deeply(\@ids, [ reverse map { $_->{stream_id} } @$records ],
              'the pages together: every record once, in order');
    my $p3 = view($A, "order=asc&after=$records->[-2]{stream_id}")->{json};
    is_deeply([ map { $_->{stream_id} } @{ $p3->{records} } ],
              [ $records->[-1]{stream_id} ], 'after an id, oldest first');
};

# --- smarty audit, the client ----------------------------------------------------------

subtest 'smarty audit' => sub {
    my $bin = SmartyTest::client_path();
    my $dir = SmartyTest::tempdir();
    my $run = sub {
        my ($args, $key) = @_;
        local $ENV{SMARTY_URL} = $A->{url};
        local $ENV{SMARTY_KEY} = $key // $keys{ops};
        my $out = `$bin audit $args 2>$dir/audit.err`;
        return ($? >> 8, $out, SmartyTest::slurp("$dir/audit.err"));
    };
    my $lines = sub {
        my ($args) = @_;
        my ($rc, $out) = $run->("--format jsonl $args");
        return [ map { JSON::PP->new->decode($_) } split /\n/, $out ];
    };

    my $all = $lines->('--limit 0');
    is(scalar @$all, $N, "--limit 0: all $N, one JSON line each");
    is_deeply([ map { $_->{stream_id} } @$all ],
              [ map { $_->{stream_id} } @$records ], 'oldest first');
    is(scalar @{ $lines->('') }, $N, 'the default limit (50) holds them');
    is_deeply([ map { $_->{stream_id} } @{ $lines->('--limit 2') } ],
              [ map { $_->{stream_id} } @$records[-2, -1] ],
              '--limit 2: the two newest');

    is(scalar @{ $lines->('--client limited') }, 3, '--client limited');
    is(scalar @{ $lines->('--status 4xx') }, 5, '--status 4xx');
    is(scalar @{ $lines->('--person 7') }, 2, '--person 7');
    is(scalar @{ $lines->('--space 1 --method persons/recognize') }, 6,
       '--space 1 --method persons/recognize');
    SmartyTest::spew("$dir/x.jpg", $X);
    is(scalar @{ $lines->("--image-file $dir/x.jpg") }, 4,
       '--image-file: hashed here, the four requests that sent it');
    is(scalar @{ $lines->('--image ' . sha256_hex($Y)) }, 1, '--image');
    is(scalar @{ $lines->('--since 1h') }, $N, '--since 1h: all');
    is(scalar @{ $lines->('--until 2000-01-01') }, 0, '--until 2000: none');
    is(scalar @{ $lines->('--since 2000-01-01T00:00:00Z --until now') }, $N,
       'a range of dates');

    my ($rc, $out) = $run->('--format table --client limited');
    is($rc, 0, 'a table: exit 0');
    my @rows = split /\n/, $out;
    is(scalar @rows, 4, 'a header and three rows');
    like($rows[0], qr/^TIME\s+INSTANCE\s+CLIENT\s+METHOD/, 'the header');
    ok((grep { /gw-a\s+limited\s+persons\/recognize\s+1\s+1\s+(?:\S+\s+)?
                  client_requests_day\s+429\s+quota_client_requests_day\s/x }
        @rows), 'the 429\'s row') or diag($out);

    my $err;
    ($rc, $out, $err) = $run->('--limit 1', $keys{demo});
    is($rc, 1, 'a client key that is no operator\'s: exit 1');
    like($err, qr/403.*operator_forbidden/, 'and why');
    ($rc, $out, $err) = $run->('--since yesterday');
    is($rc, 2, 'a time that is none: exit 2');
    like($err, qr/is not a time/, 'and why');
    ($rc) = $run->('--limit 1 --view /nope');
    is($rc, 1, 'no view there: exit 1');

    # --follow: the latest, then what comes
    my $log = "$dir/follow.jsonl";
    my $p = SmartyTest::spawn('smarty audit', $log,
        { SMARTY_URL => $A->{url}, SMARTY_KEY => $keys{ops} },
        $bin, 'audit', '--follow', '--format', 'jsonl', '--limit', '3',
        '--interval', '0.2', '--client', 'demo');
    my $count = sub { scalar(() = SmartyTest::slurp($log) =~ /\n/g) };
    ok(SmartyTest::wait_until(sub { $count->() == 3 }, $WAIT),
       '--follow: the latest 3 first');
    recognize($B, '1', [$X]);
    recognize($A, '1', [$X], key => undef);
    recognize($A, '1', [$Y]);
    ok(SmartyTest::wait_until(sub { $count->() == 5 }, $WAIT),
       'then the two new ones of client demo, from both instances');
    my @new = map { JSON::PP->new->decode($_) }
              (split /\n/, SmartyTest::slurp($log))[3, 4];
    is_deeply([ sort map { $_->{instance} } @new ], [ 'gw-a', 'gw-b' ],
              'one of each');
    SmartyTest::stop_proc($p);
    is($p->{status} >> 8, 0, 'stopped by TERM: exit 0');
    unlike(SmartyTest::slurp($log), qr/\Q$keys{ops}\E/, 'the key is not shown');

    # the three requests above are in the stream now
    ok(SmartyTest::wait_until(sub { redis_cli('XLEN smarty:audit') == $N + 3 },
                              $WAIT), 'three more records');
};

# --- Redis away: buffered, then written; what does not fit, dropped ---------------------------

subtest 'Redis stopped and started again' => sub {
    my $m0 = metrics($A);
    my $port = $redis->{port};
    SmartyTest::stop_proc($redis);

    my $K = 3;
    for my $i (1 .. $K) {
        my $r = recognize($A, '5', [ SmartyTest::alone_photo("k$i") ]);
        is($r->{status}, 200, "a request while Redis is away ($i)");
    }

    my $m;
    ok(SmartyTest::wait_until(sub {
           $m = metrics($A);
           total($m, 'smarty_audit_buffered_total')
               - total($m0, 'smarty_audit_buffered_total') == $K
       }, $WAIT), "$K records buffered");
    is(total($m, 'smarty_audit_pending_records'), $K, "$K pending");
    is(total($m, 'smarty_audit_dropped_total')
       - total($m0, 'smarty_audit_dropped_total'), 0, 'none dropped');
    ok(total($m, 'smarty_redis_workers', state => 'up') == 0,
       'the worker knows Redis is away');
    ok(SmartyTest::wait_until(sub {
           total(metrics($A), 'smarty_redis_node_connected_workers') == 0
       }, $WAIT), 'and its node is not connected');

    # records of a hundred digests each, until the 64k buffer is full
    my @many = map { SmartyTest::jpeg(seed => $_) } 1 .. 100;
    my $big = 0;
    for my $i (1 .. 12) {
        my $r = recognize($A, '6', \@many);
        is($r->{status}, 200, "a request of 100 images ($i)");
        $big++;
        $m = metrics($A);
        last if total($m, 'smarty_audit_dropped_total')
                - total($m0, 'smarty_audit_dropped_total') >= 2;
    }
    my $dropped = total($m, 'smarty_audit_dropped_total')
                - total($m0, 'smarty_audit_dropped_total');
    ok($dropped >= 2, "records that do not fit are dropped ($dropped)");
    my $kept = $K + $big - $dropped;
    is(total($m, 'smarty_audit_pending_records'), $kept,
       "the others are kept ($kept)");
    like(SmartyTest::error_log($A->{ngx}), qr/the buffer is full/,
         'the drops are logged');

    $redis = SmartyTest::start_redis(port => $port);
    ok(SmartyTest::wait_until(sub { redis_cli('XLEN smarty:audit') == $kept },
                              $WAIT), "Redis back: the $kept written");
    ok(SmartyTest::wait_until(sub {
           $m = metrics($A);
           total($m, 'smarty_audit_pending_records') == 0
       }, $WAIT), 'nothing pending');
    is(total($m, 'smarty_audit_written_total')
       - total($m0, 'smarty_audit_written_total'), $kept,
       "written: $kept");
    is(total($m, 'smarty_audit_buffered_total')
       - total($m0, 'smarty_audit_buffered_total'), $kept,
       "buffered: $kept, each once");
    is(total($m, 'smarty_audit_records_total')
       - total($m0, 'smarty_audit_records_total'), $K + $big,
       'made: every request\'s');
    is(redis_cli('XLEN smarty:audit') + 0, $kept, 'none twice');

    my $recs = stream();
    is(scalar(grep { $_->{space} eq '5' } @$recs), $K,
       'the small ones first, all of them');
    is(scalar(grep { $_->{images} == 100 } @$recs), $big - $dropped,
       'then the large ones that fit');
};

subtest 'retention: maxlen and keep' => sub {
    # small stream nodes, so that trimming whole nodes shows
    redis_cli('CONFIG SET stream-node-max-entries 5');
    my $C = SmartyTest::start_gateway(
        emu => $emu, token => $token, clients => [ map { {%$_} } @clients ],
        error_level => 'notice',
        http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
              . "    smarty_audit_stream trim:max maxlen=10;\n",
        server => "        smarty_clients_file %%CLIENTS_FILE%%;\n"
                . "        location = /metrics { smarty_metrics; }\n");
    for my $i (1 .. 40) {
        recognize($C, '1', [$X], key => undef);
    }
    ok(SmartyTest::wait_until(sub {
           total(metrics($C), 'smarty_audit_written_total') == 40
       }, $WAIT), '40 records written');
    my $len = redis_cli("XLEN trim:max") + 0;
    ok($len >= 10 && $len <= 15, "maxlen=10: about the last 10 kept ($len)");

    my $D = SmartyTest::start_gateway(
        emu => $emu, token => $token, clients => [ map { {%$_} } @clients ],
        error_level => 'notice',
        http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
              . "    smarty_audit_stream trim:keep keep=1s;\n",
        server => "        smarty_clients_file %%CLIENTS_FILE%%;\n"
                . "        location = /metrics { smarty_metrics; }\n");
    recognize($D, '1', [$X], key => undef) for 1 .. 10;
    ok(SmartyTest::wait_until(sub { redis_cli('XLEN trim:keep') == 10 },
                              $WAIT), '10 records');
    sleep 2;    # the retention's own time: the first ten grow old
    recognize($D, '1', [$X], key => undef) for 1 .. 10;
    ok(SmartyTest::wait_until(sub {
           total(metrics($D), 'smarty_audit_written_total') == 20
       }, $WAIT), '10 more written');
    $len = redis_cli("XLEN trim:keep") + 0;
    ok($len >= 10 && $len <= 15, "keep=1s: the older ones trimmed ($len)");
    redis_cli('CONFIG SET stream-node-max-entries 100');
    SmartyTest::stop_proc($_->{ngx}) for $C, $D;
};

subtest 'configuration' => sub {
    my ($rc, $out) = SmartyTest::nginx_test(http => <<'EOF');
    server { listen 127.0.0.1:%%PORT%%; location = /audit { smarty_audit_view; } }
EOF
    isnt($rc, 0, 'a view without a stream: nginx -t fails');
    like($out, qr/needs "smarty_audit_stream"/, 'and says why');
    ($rc, $out) = SmartyTest::nginx_test(
        http => "    smarty_audit_stream s maxlen=0;\n");
    isnt($rc, 0, 'maxlen=0 is refused');
    ($rc, $out) = SmartyTest::nginx_test(
        http => "    smarty_audit_stream s keep=7d;\n"
              . "    smarty_audit_buffer 16k;\n");
    like($out, qr/must be at least 64k/, 'a buffer too small is refused');
    ($rc, $out) = SmartyTest::nginx_test(
        http => "    smarty_audit_stream s keep=7d;\n"
              . "    smarty_metrics_zone 1m;\n");
    is($rc, 0, 'keep=7d, a metrics zone: accepted') or diag($out);
};

done_testing();
