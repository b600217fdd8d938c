# The upstream's OAuth token, owned by the gateway (docs/token.md): fetched
# from the emulator's /auth/oauth/v1/token (no service token accepted),
# shared by workers and, through Redis, by instances; refreshed ahead of
# its expiry; replaced and the request sent again when the upstream refuses
# it; the endpoint down or refusing; never in an answer or a log line.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/lib";
use SmartyTest;

# valgrind makes everything several times slower: token lifetimes and
# waits grow with it, or the tokens would expire before they are used
my $SLOW = $ENV{SMARTY_VALGRIND} ? 5 : 1;

my $meta = { space => '1', images => [ { name => 'file_0' } ] };
my $photo = SmartyTest::alone_photo('ross');

sub recognize {
    my ($gw, %o) = @_;
    return SmartyTest::call($gw->{url}, 'persons/recognize',
                            key => $gw->{keys}{demo}, meta => $meta,
                            images => [ [ 'file_0', $photo ] ], %o);
}

sub tokens { return SmartyTest::emulator_stats($_[0])->{tokens} }

sub faults {
    my ($emu, $q) = @_;
    my $r = SmartyTest::http('POST', "$emu->{url}/_emulator/faults?$q");
    die "faults: $r->{status}" unless $r->{status} == 200;
}

# Requests from $n processes, each to its gateway in turn, until $secs
# are over (or $until->() holds, polled between requests).  Returns the
# count of answers by status, and the bodies of those that were not 200.
sub traffic {
    my (%o) = @_;
    my @gws = @{ $o{gateways} };
    my $n = $o{procs} // 2;
    my $dir = SmartyTest::tempdir_path() . '/traffic-' . SmartyTest::random_hex(4);
    mkdir $dir;
    my $end = time() + $o{seconds};
    my @pids;
    for my $i (1 .. $n) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my (%count, @bad);
            my $k = $i;
            while (time() < $end && !-e "$dir/stop") {
                my $r = recognize($gws[$k++ % @gws]);
                $count{$r->{status}}++;
                push @bad, "$r->{status} " . ($r->{content} // '')
                    if $r->{status} != 200 && @bad < 5;
            }
            SmartyTest::spew("$dir/$i", JSON::PP->new->encode(
                { count => \%count, bad => \@bad }));
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    $o{during}->($dir) if $o{during};
    waitpid($_, 0) for @pids;
    my (%count, @bad);
    for my $i (1 .. $n) {
        my $j = JSON::PP->new->decode(SmartyTest::slurp("$dir/$i"));
        $count{$_} += $j->{count}{$_} for keys %{ $j->{count} };
        push @bad, @{ $j->{bad} };
    }
    return (\%count, \@bad);
}

# the tokens the gateway sent upstream, from a log of the upstream
# location's query strings (a test's own: no gateway log holds them)
my $uplog = <<'EOF';
            log_subrequest on;
            access_log %%DIR%%/upstream-args.log upargs;
EOF
my $uplogfmt = "    log_format upargs '\$args';\n";

sub sent_tokens {
    my ($ngx) = @_;
    my %t;
    for (split /\n/, SmartyTest::slurp("$ngx->{dir}/upstream-args.log")) {
        $t{$1} = 1 if /oauth_token=([^&\s]+)/;
    }
    return keys %t;
}

# the gateway holds its Redis connection (under valgrind, the first
# connect may time out, and the first requests go without Redis)
sub redis_connected {
    my ($gw) = @_;
    return SmartyTest::wait_until(sub {
        SmartyTest::error_log($gw->{ngx}) =~ /smarty_redis: connected to/
    }, 30);
}

sub no_secret_in {
    my ($name, $text, @secrets) = @_;
    my @found = grep { index($text, $_) >= 0 } @secrets;
    ok(!@found, "no token or secret in $name") or diag("found: @found");
}

# --- configuration ------------------------------------------------------------

subtest 'nginx -t' => sub {
    my $dir = SmartyTest::tempdir_path() . '/oauth-conf';
    mkdir $dir;
    SmartyTest::spew("$dir/id", "proj\n");
    SmartyTest::spew("$dir/secret", "s3cret\n");
    chmod 0600, "$dir/id", "$dir/secret";
    my $ok = "client_id_file=$dir/id client_secret_file=$dir/secret";
    my @cases = (
        [ "smarty_upstream_oauth http://127.0.0.1:1/t $ok;", 0, qr/successful/ ],
        [ "smarty_upstream_oauth http://127.0.0.1:1/t $ok timeout=3s wait=1s "
          . "shared=off ca_file=/etc/ssl/certs/ca-certificates.crt;",
          0, qr/successful/ ],
        [ "smarty_upstream_oauth ftp://x/t $ok;", 1,
          qr/not an http:\/\/ or https:\/\/ URL/ ],
        [ "smarty_upstream_oauth https://u:p\@x/t $ok;", 1,
          qr/holds no credentials/ ],
        [ "smarty_upstream_oauth https://x/t client_id_file=$dir/id;", 1,
          qr/needs client_id_file= and client_secret_file=/ ],
        [ "smarty_upstream_oauth https://x/t $ok wait=never;", 1,
          qr/invalid parameter "wait=never"/ ],
        [ "smarty_upstream_oauth https://x/t $ok colour=blue;", 1,
          qr/invalid parameter "colour=blue"/ ],
        [ "smarty_upstream_oauth https://x/t client_id_file=$dir/none "
          . "client_secret_file=$dir/secret;", 1, qr/OAuth client id/ ],
        [ "smarty_upstream_oauth https://x/t $ok;\n"
          . "    smarty_upstream_token_file $dir/secret;", 1,
          qr/is duplicate: a context has one upstream token/ ],
        [ "smarty_upstream_oauth https://x/t $ok;\n"
          . "    server { listen 127.0.0.1:%%PORT%%; location / {\n"
          . "    smarty_upstream_oauth https://x/t $ok wait=1s; } }", 1,
          qr/already configured with other settings/ ],
    );
    for my $c (@cases) {
        my ($rc, $out) = SmartyTest::nginx_test(http => "    $c->[0]\n");
        is($rc, $c->[1], "exit $c->[1]: $c->[0]");
        like($out, $c->[2], 'says so') or diag($out);
        unlike($out, qr/s3cret/, 'never the secret');
    }
};

# --- one instance -------------------------------------------------------------

subtest 'the first request waits for the token; one token serves' => sub {
    my $gw = SmartyTest::start_gateway(oauth => {}, workers => 2,
                                       http => $uplogfmt,
                                       upstream_log => $uplog);
    my @r = map { recognize($gw) } 1 .. 6;
    is_deeply([ map { $_->{status} } @r ], [ (200) x 6 ], 'all 200');
    my $t = tokens($gw->{emu});
    is($t->{issued}, 1, 'one token issued for two workers');
    is($t->{refused}, 0, 'nothing refused');

    SKIP: {
        # nginx's single-process mode (valgrind's) starts no thread pool
        # for a reloaded configuration
        skip 'a reload under valgrind (master_process off)', 3
            if $ENV{SMARTY_VALGRIND};
        my ($rc, $out) = SmartyTest::nginx_reload($gw->{ngx});
        is($rc, 0, 'reload');
        SmartyTest::wait_until(sub {
            SmartyTest::error_log($gw->{ngx}) =~ /gracefully shutting down/
        }, 10);
        is(recognize($gw)->{status}, 200, 'a request after the reload');
        is(tokens($gw->{emu})->{issued}, 1, 'the token outlived the reload');
    }

    my @sent = sent_tokens($gw->{ngx});
    is(scalar @sent, 1, 'one token sent upstream');
    my $all = join '', map { $_->{content} . JSON::PP->new->encode($_->{headers}) } @r;
    no_secret_in('the answers', $all, @sent, $gw->{oauth}{secret});
    no_secret_in('the error log', SmartyTest::error_log($gw->{ngx}),
                 @sent, $gw->{oauth}{secret});
    no_secret_in('the access log',
                 SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log"),
                 @sent, $gw->{oauth}{secret});
};

subtest 'wrong secret: 502 upstream_auth_failed, a clear error' => sub {
    my $gw = SmartyTest::start_gateway(
        oauth => { gateway_secret => 'not-the-secret-42',
                   params => 'wait=60s' });
    my $r = recognize($gw);
    SmartyTest::is_error($r, 502, 'upstream_auth_failed', 'refused');
    my $log = SmartyTest::error_log($gw->{ngx});
    like($log, qr/no upstream token before the token endpoint's next try/,
         'at once after the refusal, not after the whole wait');
    like($log, qr/token endpoint \S+ failed: HTTP 401 invalid_client/,
         'the cause in the error log');
    like($log, qr/check smarty_upstream_oauth's client_id_file and client_secret_file/,
         'what to check');
    no_secret_in('the error log', $log, 'not-the-secret-42',
                 $gw->{oauth}{secret});
    $r = recognize($gw);
    is($r->{status}, 502, 'the next request too');
    cmp_ok(tokens($gw->{emu})->{refused}, '<=', 2,
           'the endpoint is not hammered (backoff)');
};

subtest '50 concurrent requests at the expiry: one refresh' => sub {
    my $gw = SmartyTest::start_gateway(
        oauth => { emu_args => [ '--token-lifetime', 2 * $SLOW ] },
        workers => 2);
    my $t0 = time();
    is(recognize($gw)->{status}, 200, 'a first token');
    is(tokens($gw->{emu})->{issued}, 1, 'issued');
    # the token the gateway holds expires 2 s after it was asked for
    SmartyTest::wait_until(sub { time() > $t0 + 2 * $SLOW + 0.3 }, 60);
    my @pids;
    my $dir = SmartyTest::tempdir_path() . '/fifty';
    mkdir $dir;
    for my $i (1 .. 50) {
        my $pid = fork();
        if ($pid == 0) {
            my $r = recognize($gw);
            SmartyTest::spew("$dir/$i", $r->{status});
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my @s = map { SmartyTest::slurp("$dir/$_") } 1 .. 50;
    is(scalar(grep { $_ eq '200' } @s), 50, 'all 50 answered 200');
    my $t = tokens($gw->{emu});
    is($t->{issued}, 2, 'one more token, for all of them');
    is($t->{refreshed}, 1, 'by the refresh grant');
    is($t->{max_active}, 1, 'never two active');
};

subtest 'revoked mid-traffic: one retry, all 200' => sub {
    my $gw = SmartyTest::start_gateway(oauth => {});
    is(recognize($gw)->{status}, 200, 'a token');
    my ($count, $bad) = traffic(gateways => [ $gw ], seconds => 4,
        during => sub {
            my $n0 = SmartyTest::emulator_stats($gw->{emu})->{requests};
            SmartyTest::wait_until(sub {
                SmartyTest::emulator_stats($gw->{emu})->{requests} >= $n0 + 5
            }, 10);
            my $r = SmartyTest::http('POST',
                "$gw->{emu}{url}/_emulator/tokens/revoke");
            is($r->{status}, 200, 'every token revoked');
        });
    cmp_ok($count->{200} // 0, '>', 10, 'traffic went on');
    is_deeply([ grep { $_ != 200 } keys %$count ], [], 'no other status')
        or diag(explain($count), explain($bad));
    my $t = tokens($gw->{emu});
    is($t->{issued}, 2, 'one new token');
    is($t->{refused}, 1, 'the revoked refresh token refused once');
    my $log = SmartyTest::error_log($gw->{ngx});
    like($log, qr/the upstream refused the gateway's token/, 'logged');
    like($log, qr/client credentials, the refresh token refused/,
         'the client credentials after the refresh token');
};

subtest 'the endpoint down: the token serves to its expiry, then 502, then recovery' => sub {
    my $gw = SmartyTest::start_gateway(
        oauth => { emu_args => [ '--token-lifetime', 3 * $SLOW ] });
    my $t0 = time();
    is(recognize($gw)->{status}, 200, 'a token');
    faults($gw->{emu}, 'token_fail=1');
    my @early;
    push @early, recognize($gw)->{status} while time() < $t0 + 2.6 * $SLOW;
    is_deeply([ grep { $_ != 200 } @early ], [],
              scalar(@early) . ' requests before the expiry: all 200');
    my $r;
    ok(SmartyTest::wait_until(sub { $r = recognize($gw); $r->{status} == 502 }, 10 * $SLOW),
       'after the expiry: 502');
    SmartyTest::is_error($r, 502, 'upstream_auth_failed', 'the error');
    my $log = SmartyTest::error_log($gw->{ngx});
    like($log, qr/token endpoint \S+ failed: HTTP 503 service_unavailable/,
         'the cause logged');
    like($log, qr/requests get 502 upstream_auth_failed/, 'after');
    faults($gw->{emu}, 'token_fail=0');
    my $t1 = time();
    ok(SmartyTest::wait_until(sub { recognize($gw)->{status} == 200 }, 15 * $SLOW),
       'recovered');
    cmp_ok(time() - $t1, '<', 8 * $SLOW, 'within the backoff\'s cap');
};

subtest 'the endpoint hangs: requests wait no longer than wait=' => sub {
    my $gw = SmartyTest::start_gateway(
        oauth => { params => 'wait=1s timeout=3s',
                   emu_args => [ '--token-hang', '1' ] });
    my $t0 = time();
    my $r = recognize($gw);
    SmartyTest::is_error($r, 502, 'upstream_auth_failed', 'no token');
    my $took = time() - $t0;
    cmp_ok($took, '>=', 0.9, "it waited (${\ sprintf '%.1f', $took} s)");
    cmp_ok($took, '<', 3 * $SLOW,
           "and no longer than wait=, before the call's own timeout= ended");
    like(SmartyTest::error_log($gw->{ngx}),
         qr/no upstream token within smarty_upstream_oauth's wait/, 'logged');
};

subtest 'a retried request spends its quota once and is cached once' => sub {
    my $redis = SmartyTest::start_redis();
    my $gw = SmartyTest::start_gateway(
        oauth => {},
        http => "    smarty_redis 127.0.0.1:$redis->{port};\n"
                . "    smarty_redis_timeout ${\ (1 * $SLOW) }s;\n",
        gateway => 'smarty_cache on; smarty_quota_client * "1000r/h";');
    ok(redis_connected($gw), 'Redis connected');
    my $r = recognize($gw);
    is($r->{status}, 200, 'a token');
    like($r->{headers}{ratelimit}, qr/remaining=999\b/, 'one request spent');
    SmartyTest::http('POST', "$gw->{emu}{url}/_emulator/tokens/revoke");
    my $before = SmartyTest::emulator_stats($gw->{emu})->{requests_total};
    $r = recognize($gw, images => [ [ 'file_0',
                                      SmartyTest::alone_photo('monica') ] ]);
    is($r->{status}, 200, 'after the revocation: 200');
    like($r->{headers}{'cache-status'}, qr/fwd=miss; stored/,
         'a miss, stored');
    like($r->{headers}{ratelimit}, qr/remaining=998\b/,
         'one more request spent, not two');
    is(SmartyTest::emulator_stats($gw->{emu})->{requests_total} - $before, 2,
       'two calls upstream: refused, then answered');
    like(SmartyTest::error_log($gw->{ngx}),
         qr/the upstream answered 401 to the gateway's token: the request is sent again/,
         'the retry logged');
    $r = recognize($gw, images => [ [ 'file_0',
                                      SmartyTest::alone_photo('monica') ] ]);
    like($r->{headers}{'cache-status'}, qr/hit/, 'the answer was cached');
};

subtest 'the upstream refuses every token: 502 after one retry, nothing cached' => sub {
    # the token from one emulator, the calls to another, which knows none
    my $redis = SmartyTest::start_redis();
    my $issuer = SmartyTest::start_emulator(args => [
        '--client-id', 'gw-x', '--client-secret', 'sec-x' ]);
    my $dir = SmartyTest::tempdir_path() . '/refusing';
    mkdir $dir;
    SmartyTest::spew("$dir/id", "gw-x\n");
    SmartyTest::spew("$dir/secret", "sec-x\n");
    chmod 0600, "$dir/id", "$dir/secret";
    my $gw = SmartyTest::start_gateway(
        http => "    smarty_redis 127.0.0.1:$redis->{port};\n",
        gateway => 'smarty_cache on;',
        token_directive => "smarty_upstream_oauth "
            . "$issuer->{url}/auth/oauth/v1/token client_id_file=$dir/id "
            . "client_secret_file=$dir/secret wait=${\ (5 * $SLOW) }s;");
    my $r = recognize($gw);
    SmartyTest::is_error($r, 502, 'upstream_auth_failed', 'refused twice');
    my $calls = SmartyTest::emulator_stats($gw->{emu})->{requests_total};
    is($calls, 2, 'one call and one retry upstream');
    is(tokens($issuer)->{issued}, 2, 'a new token for the retry');
    $r = recognize($gw);
    is($r->{status}, 502, 'the next request: 502 again');
    ok(!defined $r->{headers}{'cache-status'}
       || $r->{headers}{'cache-status'} !~ /hit/, 'not from the cache');
    like(SmartyTest::error_log($gw->{ngx}),
         qr/a token that new refused: check smarty_upstream_provider and the account/,
         'the log says what to check');
};

subtest 'TLS to the token endpoint: verified, ca_file' => sub {
    my $dir = SmartyTest::tempdir_path() . '/oauth-tls';
    mkdir $dir;
    my $ssl = sub {
        my $out = `openssl @_ 2>&1`;
        die "openssl @_: $out" if $?;
    };
    $ssl->('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
           '-subj', '/CN=smarty-oauth-test-ca', '-keyout', "$dir/ca.key",
           '-out', "$dir/ca.crt");
    $ssl->('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1',
           '-addext', 'subjectAltName=IP:127.0.0.1',
           '-keyout', "$dir/server.key", '-out', "$dir/server.csr");
    $ssl->('x509', '-req', '-in', "$dir/server.csr", '-CA', "$dir/ca.crt",
           '-CAkey', "$dir/ca.key", '-CAcreateserial', '-days', '2',
           '-copy_extensions', 'copyall', '-out', "$dir/server.crt");

    my $emu = SmartyTest::start_emulator(args => [
        '--client-id', 'gw-tls', '--client-secret', 'sec-tls' ]);
    my $tls = SmartyTest::start_nginx(http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%% ssl;
        ssl_certificate $dir/server.crt;
        ssl_certificate_key $dir/server.key;
        location / { proxy_pass http://127.0.0.1:$emu->{port}; }
    }
EOF
    SmartyTest::spew("$dir/id", "gw-tls\n");
    SmartyTest::spew("$dir/secret", "sec-tls\n");
    chmod 0600, "$dir/id", "$dir/secret";
    my $url = "https://127.0.0.1:$tls->{port}/auth/oauth/v1/token";
    my $files = "client_id_file=$dir/id client_secret_file=$dir/secret";

    my $gw = SmartyTest::start_gateway(emu => $emu,
        token_directive => "smarty_upstream_oauth $url $files wait=30s;");
    my $r = recognize($gw);
    SmartyTest::is_error($r, 502, 'upstream_auth_failed',
                         'a certificate of an unknown CA: refused');
    my $log = SmartyTest::error_log($gw->{ngx});
    like($log, qr/token endpoint \S+ failed: SSL certificate problem/,
         'the cause in the error log');
    like($log, qr/check smarty_upstream_oauth's URL and ca_file/,
         'what to check');
    like($log, qr/no upstream token before the token endpoint's next try/,
         'the request did not wait for a certificate that will not change');
    is(tokens($emu)->{issued}, 0, 'the secret never went out');

    $gw = SmartyTest::start_gateway(emu => $emu,
        token_directive => "smarty_upstream_oauth $url $files "
                           . "ca_file=$dir/ca.crt wait=30s;");
    is(recognize($gw)->{status}, 200, 'its CA in ca_file: 200');
    is(tokens($emu)->{issued}, 1, 'a token over TLS');
};

# --- two instances, one token -------------------------------------------------

subtest 'two instances share one token through Redis' => sub {
    my $redis = SmartyTest::start_redis();
    my $http = "    smarty_redis 127.0.0.1:$redis->{port};\n"
        . "    smarty_redis_timeout ${\ (1 * $SLOW) }s;\n$uplogfmt";
    my $life = 3 * $SLOW;
    my $a = SmartyTest::start_gateway(
        oauth => { emu_args => [ '--token-lifetime', $life ] },
        http => $http, upstream_log => $uplog);
    my $b = SmartyTest::start_gateway(
        emu => $a->{emu},
        oauth => { client_id => $a->{oauth}{id},
                   client_secret => $a->{oauth}{secret} },
        http => $http, upstream_log => $uplog);

    ok(redis_connected($_), 'Redis connected') for $a, $b;
    is(recognize($a)->{status}, 200, 'a: a token');
    is(recognize($b)->{status}, 200, 'b: the same');
    is(tokens($a->{emu})->{issued}, 1, 'one token for both instances');

    my $t0 = time();
    my $issued0 = tokens($a->{emu})->{issued};
    my ($count, $bad) = traffic(gateways => [ $a, $b ], procs => 3,
                                seconds => $ENV{SMARTY_OAUTH_SECONDS} // 30);
    my $secs = time() - $t0;
    my $t = tokens($a->{emu});
    cmp_ok($count->{200} // 0, '>', 50, "traffic: " . ($count->{200} // 0)
           . " requests in ${\ int $secs} s");
    is_deeply([ grep { $_ != 200 } keys %$count ], [], 'no failed request')
        or diag(explain($count), explain($bad));
    my $lifetimes = int($secs / $life);
    cmp_ok($t->{issued} - $issued0, '<=', $lifetimes + 2,
           "tokens issued ($t->{issued}) <= lifetimes elapsed + 2");
    cmp_ok($t->{max_active}, '<=', 2, "never more than 2 active "
           . "($t->{max_active})");

    my $again = () = (SmartyTest::error_log($a->{ngx})
                      . SmartyTest::error_log($b->{ngx}))
                     =~ /sent again with a new one/g;
    diag("requests sent again after a refused token: $again");

    my @sent = (sent_tokens($a->{ngx}), sent_tokens($b->{ngx}));
    my $stored = `redis-cli -p $redis->{port} --no-raw HGETALL 'smarty:oauth:*' 2>&1`
        . join '', map { `redis-cli -p $redis->{port} HGETALL '$_'` }
                   split /\n/, `redis-cli -p $redis->{port} --scan --pattern 'smarty:oauth:*'`;
    like($stored, qr/seal/, 'the token is in Redis');
    no_secret_in('Redis (sealed)', $stored, @sent, $a->{oauth}{secret});
    for my $gw ($a, $b) {
        no_secret_in('an error log', SmartyTest::error_log($gw->{ngx}),
                     @sent, $a->{oauth}{secret});
    }
};

subtest 'Redis away: each instance fetches its own' => sub {
    my $port = SmartyTest::free_port();
    my $gw = SmartyTest::start_gateway(
        oauth => {}, http => "    smarty_redis 127.0.0.1:$port;\n");
    is(recognize($gw)->{status}, 200, '200 without Redis');
    is(tokens($gw->{emu})->{issued}, 1, 'its own token');
};

SmartyTest::stop_all();
done_testing();
