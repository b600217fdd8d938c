# The Redis adapter (ngx_http_smarty_redis_module) through its health
# endpoint: EVALSHA and the NOSCRIPT reload, pipelining, large replies,
# Redis stopped, restarted and frozen (SIGSTOP), the circuit breaker, a
# client that goes away mid-command, AUTH and SELECT, a unix socket,
# configuration mistakes.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use IO::Select;
use IO::Socket::INET;
use Digest::SHA qw(sha1_hex);
use Time::HiRes qw(time);
use File::Temp ();

plan skip_all => 'redis-server and redis-cli are needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my $VALGRIND = $ENV{SMARTY_VALGRIND};

# the command timeout; valgrind makes nginx 20-50 times slower
my $TO = $VALGRIND ? 1000 : 100;
my $COOLDOWN = 1;               # seconds
my $FAILURES = 3;

my $dir = SmartyTest::tempdir() . '/redis-t';
mkdir $dir;

sub rcli {
    my ($port, @args) = @_;
    open my $fh, '-|', 'redis-cli', '-p', $port, @args
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

sub health {
    my ($ngx, $query) = @_;
    my $t0 = time;
    my $r = SmartyTest::http('GET', "$ngx->{url}/health" . ($query // ''),
                             timeout => 30);
    $r->{elapsed} = time - $t0;
    return $r;
}

sub up { my ($r) = @_; return $r->{status} == 200 && ($r->{json}{redis} // '') eq 'up' }

sub reason { my ($r) = @_; return $r->{json}{reason} // '(none)' }

sub cmdstat {
    my ($port, $cmd) = @_;
    my ($calls) = rcli($port, 'INFO', 'commandstats') =~ /^cmdstat_$cmd:calls=(\d+)/m;
    return $calls // 0;
}

sub nginx_health_conf {
    my (%o) = @_;
    my $extra = $o{extra} // '';
    return <<"EOF";
    smarty_redis $o{addr};
    smarty_redis_timeout ${TO}ms;
    smarty_redis_connect_timeout 500ms;
    smarty_redis_breaker failures=$FAILURES cooldown=${COOLDOWN}s;
$extra
    server {
        listen 127.0.0.1:%%PORT%%;
        location /health { smarty_redis_health allow_size=4m; }
        location /status { stub_status; }
    }
EOF
}

sub no_crash {
    my ($ngx, $name) = @_;
    my $log = SmartyTest::error_log($ngx) . SmartyTest::slurp("$ngx->{dir}/stderr.log");
    unlike($log, qr/exited on signal|AddressSanitizer|runtime error|\[alert\]|\[emerg\]/,
           "$name: no crash, no alert");
}

# --- configuration mistakes -----------------------------------------------

SmartyTest::spew("$dir/empty", "\n");
SmartyTest::spew("$dir/two-lines", "a\nb\n");
SmartyTest::spew("$dir/pw", "secret\n");
chmod 0600, "$dir/pw";

my @bad = (
    ['smarty_redis 127.0.0.1:notaport;', qr/invalid port/, 'a bad port'],
    ['smarty_redis 127.0.0.1:6379/x;', qr/invalid host in "127.0.0.1:6379\/x"/, 'a URI'],
    ['smarty_redis 127.0.0.1:1; smarty_redis 127.0.0.1:2;', qr/is duplicate/,
     'twice'],
    ["smarty_redis_password_file $dir/none;", qr/password file .* cannot be opened/,
     'a missing password file'],
    ["smarty_redis_password_file $dir/empty;", qr/password file .* is empty/,
     'an empty password file'],
    ["smarty_redis_password_file $dir/two-lines;", qr/on one line/,
     'a password file of two lines'],
    ['smarty_redis_db abc;', qr/invalid number/, 'a db not a number'],
    ['smarty_redis_db -1;', qr/invalid number/, 'a negative db'],
    ['smarty_redis_timeout 0;', qr/must be above 0/, 'a timeout of 0'],
    ['smarty_redis_timeout abc;', qr/invalid value/, 'a timeout not a time'],
    ['smarty_redis_connect_timeout 0;', qr/must be above 0/,
     'a connect timeout of 0'],
    ['smarty_redis_breaker failures=0;', qr/failures must be a number of 1/,
     'a breaker of 0 failures'],
    ['smarty_redis_breaker cooldown=soon;', qr/cooldown must be a time/,
     'a cooldown not a time'],
    ['smarty_redis_breaker failures=3 often=1;', qr/unknown parameter "often=1"/,
     'an unknown breaker parameter'],
);

for my $b (@bad) {
    my ($text, $like, $name) = @$b;
    my ($rc, $out) = SmartyTest::nginx_test(http => "$text\n"
        . "server { listen 127.0.0.1:%%PORT%%; location / { return 204; } }");
    isnt($rc, 0, "nginx -t: $name fails");
    like($out, $like, "nginx -t: $name: says why") or diag $out;
}

{
    my ($rc, $out) = SmartyTest::nginx_test(http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        smarty_redis 127.0.0.1:6379;
    }
EOF
    isnt($rc, 0, 'nginx -t: smarty_redis in a server fails');
    like($out, qr/"smarty_redis" directive is not allowed here/, 'nginx -t: says so');

    ($rc, $out) = SmartyTest::nginx_test(http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /h { smarty_redis_health allow_size=lots; }
    }
EOF
    isnt($rc, 0, 'nginx -t: a bad allow_size fails');
    like($out, qr/smarty_redis_health.*invalid "allow_size=lots"/, 'nginx -t: says why');

    ($rc, $out) = SmartyTest::nginx_test(http => <<"EOF");
    smarty_redis unix:$dir/redis.sock;
    smarty_redis_password_file $dir/pw;
    smarty_redis_db 2;
    smarty_redis_timeout 50ms;
    smarty_redis_connect_timeout 1s;
    smarty_redis_breaker off;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /h { smarty_redis_health; }
    }
EOF
    is($rc, 0, 'nginx -t: every directive, right') or diag $out;
    unlike($out, qr/secret/, 'nginx -t: never shows the password');
}

# --- no Redis configured ---------------------------------------------------

{
    my $ngx = SmartyTest::start_nginx(http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /health { smarty_redis_health; }
    }
EOF
    my $r = health($ngx);
    is($r->{status}, 503, 'no smarty_redis: 503');
    is(reason($r), 'not_configured', 'no smarty_redis: not_configured');
    SmartyTest::stop_proc($ngx);
}

# --- up, EVALSHA, NOSCRIPT, pipelining, a large reply ------------------------

my $redis = SmartyTest::start_redis();
my $rport = $redis->{port};
my $ngx = SmartyTest::start_nginx(
    http => nginx_health_conf(addr => "127.0.0.1:$rport"));

ok(SmartyTest::wait_until(sub { up(health($ngx)) }, 10), 'health: up');

{
    my $r = health($ngx);
    is($r->{status}, 200, 'health: 200');
    like($r->{content}, qr/^\{"redis":"up","latency_ms":\d+\}\n\z/,
         'health: {"redis":"up","latency_ms":N}');
    is($r->{headers}{'content-type'}, 'application/json', 'health: JSON');
    is($r->{headers}{'cache-control'}, 'no-store', 'health: no-store');

    my $head = SmartyTest::http('HEAD', "$ngx->{url}/health");
    is($head->{status}, 200, 'health: HEAD');
    my $post = SmartyTest::http('POST', "$ngx->{url}/health", body => 'x');
    is($post->{status}, 405, 'health: POST is not allowed');
}

# the SHA1s are the scripts' (computed by the module, no SCRIPT LOAD)
my $ping_sha = sha1_hex(SmartyTest::slurp('src/lua/ping.lua'));
is(rcli($rport, 'SCRIPT', 'EXISTS', $ping_sha), 1,
   'the module\'s SHA1 of ping.lua is the server\'s');

{
    rcli($rport, 'CONFIG', 'RESETSTAT');
    ok(up(health($ngx)), 'EVALSHA: up');
    is(cmdstat($rport, 'evalsha'), 1, 'EVALSHA: one EVALSHA');
    is(cmdstat($rport, 'eval'), 0, 'EVALSHA: no EVAL when the script is known');

    is(rcli($rport, 'SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
    is(rcli($rport, 'SCRIPT', 'EXISTS', $ping_sha), 0, 'the script is gone');
    rcli($rport, 'CONFIG', 'RESETSTAT');

    my $r = health($ngx);
    ok(up($r), 'NOSCRIPT: health still up') or diag explain $r;
    is(cmdstat($rport, 'evalsha'), 1, 'NOSCRIPT: EVALSHA tried');
    is(cmdstat($rport, 'eval'), 1, 'NOSCRIPT: then EVAL, once');
    is(rcli($rport, 'SCRIPT', 'EXISTS', $ping_sha), 1, 'NOSCRIPT: loaded again');

    ok(up(health($ngx)), 'NOSCRIPT: next health up');
    is(cmdstat($rport, 'eval'), 1, 'NOSCRIPT: the next one is EVALSHA alone');
    like(SmartyTest::error_log($ngx), qr/script "ping" not loaded in the server/,
         'NOSCRIPT: logged');
}

# 200 requests over 40 connections, 5 pipelined on each: every one answered,
# each with its own reply (the script echoes a per-request token)
sub burst {
    my ($port, $conns, $per) = @_;
    my (@socks, %buf);
    for my $i (1 .. $conns) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp', Timeout => 5)
            or die "connect: $!";
        binmode $s;
        my $req = '';
        for my $j (1 .. $per) {
            $req .= "GET /health HTTP/1.1\r\nHost: t\r\n"
                . ($j == $per ? "Connection: close\r\n" : '') . "\r\n";
        }
        syswrite($s, $req) == length $req or die "write: $!";
        push @socks, $s;
        $buf{"$s"} = '';
    }
    my $sel = IO::Select->new(@socks);
    my $deadline = time + 60;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $chunk, 65536);
            if (!$n) {
                $sel->remove($s);
                close $s;
                next;
            }
            $buf{"$s"} .= $chunk;
        }
    }
    my $all = join '', values %buf;
    my $ok = () = $all =~ /^HTTP\/1\.1 200 OK\r\n/mg;
    my $up = () = $all =~ /\{"redis":"up","latency_ms":\d+\}/g;
    my $any = () = $all =~ /^HTTP\/1\.1 \d+/mg;
    return ($ok, $up, $any);
}

{
    my $t0 = time;
    my ($ok, $up, $any) = burst($ngx->{port}, 40, 5);
    is($any, 200, 'burst: 200 answers');
    is($ok, 200, 'burst: 200 times 200 OK');
    is($up, 200, 'burst: 200 times up');
    note(sprintf 'burst: %.3fs', time - $t0);

    my @clients = grep { !/cmd=client/ } split /\n/, rcli($rport, 'CLIENT', 'LIST');
    is(scalar @clients, 1, 'one connection from the (one) worker');
}

{
    my $r = health($ngx, '?size=1000000');
    ok(up($r), 'a 1 MB reply: up') or diag explain $r;
    is($r->{json}{bytes}, 1000000, 'a 1 MB reply: read whole');
    cmp_ok($r->{elapsed}, '<', 2, 'a 1 MB reply: in time');

    # (Redis itself needs some 15 ms a MB to build these)
    $r = health($ngx, '?size=262145');
    is($r->{json}{bytes}, 262145, 'a 256 KB reply: read whole');

    $r = health($ngx, '?size=5000000');
    is($r->{status}, 400, 'a size above allow_size: 400');

    ok(up(health($ngx)), 'after large replies: up');
}

# --- Redis stopped, restarted ----------------------------------------------

{
    SmartyTest::stop_proc($redis);

    my $r = health($ngx);
    is($r->{status}, 503, 'Redis stopped: 503');
    like(reason($r), qr/^(not_connected|timeout)$/, 'Redis stopped: why')
        or diag explain $r;
    cmp_ok($r->{elapsed}, '<', 1 + $TO / 1000, 'Redis stopped: in bounded time');

    for my $i (1 .. 3) {
        $r = health($ngx);
        is(reason($r), 'not_connected', "Redis down ($i): not_connected");
        cmp_ok($r->{elapsed}, '<', $VALGRIND ? 2 : 0.5, "Redis down ($i): at once");
    }

    ok(SmartyTest::wait_until(sub {
           SmartyTest::error_log($ngx) =~ /cannot connect to .*Connection refused/ },
           10), 'Redis down: a reconnection failed');

    $redis = SmartyTest::start_redis(port => $rport);
    my $t0 = time;
    ok(SmartyTest::wait_until(sub { up(health($ngx)) }, 15),
       'Redis restarted: up again');
    note(sprintf 'reconnected in %.3fs', time - $t0);

    my $log = SmartyTest::error_log($ngx);
    my $lost = () = $log =~ /smarty_redis: lost the connection to 127\.0\.0\.1:$rport/g;
    my $refused = () = $log =~ /smarty_redis: cannot connect to .*Connection refused/g;
    my $connected = () = $log =~ /smarty_redis: connected to/g;
    is($lost, 1, 'the loss is logged once');
    is($refused, 1, 'the failed reconnections are logged once');
    is($connected, 2, 'each connection logged once');
}

# --- Redis frozen (SIGSTOP): timeouts, the breaker, a client gone ----------

sub writing {
    my ($ngx) = @_;
    my $s = SmartyTest::http('GET', "$ngx->{url}/status");
    my ($w) = ($s->{content} // '') =~ /Writing: (\d+)/;
    return $w // 0;
}

{
    ok(up(health($ngx)), 'before SIGSTOP: up');
    kill 'STOP', $redis->{pid};

    # a client that goes away while its command waits: the request's
    # cleanup cancels the command; its late timeout still counts (1)
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ngx->{port}, Proto => 'tcp')
        or die "connect: $!";
    print $s "GET /health?gone HTTP/1.1\r\nHost: t\r\n\r\n";
    ok(SmartyTest::wait_until(sub { writing($ngx) >= 2 }, 10),
       'client gone: its request waits on Redis');
    close $s;
    ok(SmartyTest::wait_until(sub {
           SmartyTest::access_log($ngx) =~ m{"GET /health\?gone HTTP/1.1" 499 } }, 10),
       'client gone: 499 at once');

    # (2)
    my $r = health($ngx);
    is($r->{status}, 503, 'SIGSTOP: 503');
    is(reason($r), 'timeout', 'SIGSTOP: timeout');
    cmp_ok($r->{elapsed}, '>=', 0.9 * $TO / 1000, 'SIGSTOP: after the timeout');
    cmp_ok($r->{elapsed}, '<', $VALGRIND ? 10 : 1, 'SIGSTOP: not much later');

    # (3): the breaker opens
    $r = health($ngx);
    is(reason($r), 'timeout', 'SIGSTOP: timeout again');

    $r = health($ngx);
    is($r->{status}, 503, 'breaker: 503');
    is(reason($r), 'breaker_open', 'breaker: open after 3 failures');
    cmp_ok($r->{elapsed}, '<', $VALGRIND ? 2 : 0.5 * $TO / 1000 + 0.05,
           'breaker: answered at once');
    like(SmartyTest::error_log($ngx),
         qr/circuit breaker open after 3 consecutive failures/, 'breaker: logged');

    kill 'CONT', $redis->{pid};
    my $t0 = time;
    ok(SmartyTest::wait_until(sub { up(health($ngx)) }, 15),
       'SIGCONT: up again');
    my $took = time - $t0;
    note(sprintf 'recovered in %.3fs', $took);
    like(SmartyTest::error_log($ngx), qr/circuit breaker closed/,
         'breaker: closed, logged');
    is(() = SmartyTest::error_log($ngx) =~ /circuit breaker open after/g, 1,
       'breaker: the opening logged once');

    my ($ok, $up) = burst($ngx->{port}, 10, 5);
    is($up, 50, 'after the storm: a burst all up');

    # longer: the probe times out too, the connection (maybe a black hole)
    # is dropped, and a new one comes when Redis is back
    kill 'STOP', $redis->{pid};

    # 20 clients that go away while their commands wait
    my @gone;
    for my $i (1 .. 20) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $ngx->{port}, Proto => 'tcp')
            or die "connect: $!";
        print $c "GET /health?gone$i HTTP/1.1\r\nHost: t\r\n\r\n";
        push @gone, $c;
    }
    ok(SmartyTest::wait_until(sub { writing($ngx) >= 21 }, 10),
       'a long freeze: 20 requests wait on Redis');
    close $_ for @gone;

    ok(SmartyTest::wait_until(sub { reason(health($ngx)) eq 'breaker_open' }, 10),
       'a long freeze: the breaker opens');
    ok(SmartyTest::wait_until(sub {
           health($ngx);
           SmartyTest::error_log($ngx) =~ /lost the connection to .*probe timed out/ },
           15),
       'a long freeze: the probe times out, the connection is dropped');
    kill 'CONT', $redis->{pid};
    ok(SmartyTest::wait_until(sub { up(health($ngx)) }, 15),
       'a long freeze: up again, on a new connection');
    my $gone = () = SmartyTest::access_log($ngx) =~ m{"GET /health\?gone\d+ HTTP/1.1" 499 }g;
    is($gone, 20, 'a long freeze: the 20 clients gone, 499 each');
    my @clients = grep { !/cmd=client/ } split /\n/, rcli($rport, 'CLIENT', 'LIST');
    is(scalar @clients, 1, 'a long freeze: one connection still');
}

SKIP: {
    skip 'no reload with master_process off (valgrind)', 2 if $VALGRIND;
    my ($rc, $out) = SmartyTest::nginx_reload($ngx);
    is($rc, 0, 'reload') or diag $out;
    ok(SmartyTest::wait_until(sub {
           SmartyTest::error_log($ngx) =~ /gracefully shutting down.*exit/s
               && up(health($ngx)) }, 15),
       'reload: the old worker left, the new one is up');
}

SmartyTest::stop_proc($ngx, 'QUIT');
is($ngx->{status}, 0, 'main: nginx exits 0');
no_crash($ngx, 'main');
unlike(SmartyTest::error_log($ngx), qr/open socket/, 'graceful exit: nothing left open');

# --- AUTH, SELECT, a unix socket -------------------------------------------

{
    # the workers are not root: a socket they may reach
    my $sdir = File::Temp::tempdir('smarty-redis-XXXXXX', TMPDIR => 1,
                                   CLEANUP => !$ENV{SMARTY_KEEP});
    chmod 0711, $sdir;
    my $sock = "$sdir/redis.sock";
    my $pw = 'pw-' . SmartyTest::random_hex(8);
    SmartyTest::spew("$dir/password", "$pw\n");
    chmod 0600, "$dir/password";
    SmartyTest::spew("$dir/wrong", "not-the-password\n");
    chmod 0600, "$dir/wrong";

    my $red = SmartyTest::start_redis(args => ['--requirepass', $pw,
        '--unixsocket', $sock, '--unixsocketperm', '777']);

    my $good = SmartyTest::start_nginx(error_level => 'debug',
        http => nginx_health_conf(addr => "unix:$sock", extra =>
            "    smarty_redis_password_file $dir/password;\n"
          . "    smarty_redis_db 3;\n"));
    ok(SmartyTest::wait_until(sub { up(health($good)) }, 10),
       'AUTH, SELECT, unix socket: up');

    local $ENV{REDISCLI_AUTH} = $pw;
    my @clients = grep { !/cmd=client/ } split /\n/,
        rcli($red->{port}, 'CLIENT', 'LIST');
    is(scalar @clients, 1, 'one client');
    like($clients[0] // '', qr/\bdb=3\b/, 'SELECT 3: the connection is on db 3');
    like($clients[0] // '', qr/\baddr=\/|\bladdr=\S*redis\.sock|flags=U/,
         'through the unix socket');

    my $wrong = SmartyTest::start_nginx(error_level => 'debug',
        http => nginx_health_conf(addr => "127.0.0.1:$red->{port}", extra =>
            "    smarty_redis_password_file $dir/wrong;\n"));
    my $none = SmartyTest::start_nginx(
        http => nginx_health_conf(addr => "127.0.0.1:$red->{port}"));

    ok(SmartyTest::wait_until(sub {
           SmartyTest::error_log($wrong) =~ /AUTH failed: WRONGPASS/ }, 10),
       'a wrong password: "AUTH failed" logged');
    my $r = health($wrong);
    is($r->{status}, 503, 'a wrong password: 503');
    is(reason($r), 'not_connected', 'a wrong password: not_connected');

    ok(SmartyTest::wait_until(sub {
           SmartyTest::error_log($none) =~ /PING failed: NOAUTH/ }, 10),
       'no password for a server that wants one: logged');
    is(reason(health($none)), 'not_connected', 'no password: not_connected');

    for my $n ($good, $wrong) {
        SmartyTest::stop_proc($n, 'QUIT');
    }
    SmartyTest::stop_proc($none, 'QUIT');

    my $logs = join '', map { SmartyTest::error_log($_) } $good, $wrong;
    unlike($logs, qr/\Q$pw\E/, 'the password is never logged, even at debug');
    unlike($logs, qr/not-the-password/, 'nor the wrong one');
    no_crash($good, 'password');
    no_crash($wrong, 'wrong password');
    no_crash($none, 'no password');
}

done_testing();
