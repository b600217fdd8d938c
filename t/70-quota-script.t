# The quota scripts (src/lua/quota.lua, quota_refund.lua) against a real
# Redis: the scenarios of t/unit/test_quota.c, the keys and their expiry,
# a differential test (random sequences through the C core, via
# $SMARTY_BUILD/unit/quota_driver, and through the script, with the same
# explicit clock: identical answers line by line), and exactness under
# concurrency (forked clients against one limit admit exactly the limit).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use IO::Socket::INET;
use IPC::Open2;
use POSIX qw(floor);
use Time::HiRes qw(time);

plan skip_all => 'redis-server is needed'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my $redis = SmartyTest::start_redis();
my $PORT = $redis->{port};

# --- a RESP client -------------------------------------------------------------

sub conn {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT,
                                  Proto => 'tcp', Timeout => 10)
        or die "connect to redis: $!";
    binmode $s;
    return $s;
}

sub send_cmd {
    my ($s, @a) = @_;
    my $m = '*' . scalar(@a) . "\r\n";
    $m .= '$' . length($_) . "\r\n$_\r\n" for @a;
    print $s $m;
}

sub read_reply {
    my ($s) = @_;
    local $/ = "\r\n";
    my $line = <$s>;
    die "redis closed the connection" unless defined $line;
    chomp $line;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest + 0 if $type eq ':';
    return $rest if $type eq '+';
    return { err => $rest } if $type eq '-';
    if ($type eq '$') {
        return undef if $rest < 0;
        my $data = '';
        while (length($data) < $rest + 2) {
            my $n = read($s, $data, $rest + 2 - length($data), length($data));
            die "short read" unless $n;
        }
        return substr($data, 0, $rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { read_reply($s) } 1 .. $rest ];
    }
    die "bad reply: $line";
}

my $R = conn();

sub cmd { send_cmd($R, @_); return read_reply($R) }

my %SHA;
for my $name (qw(quota quota_refund)) {
    my $text = SmartyTest::lua_script($name);
    $SHA{$name} = cmd('SCRIPT', 'LOAD', $text);
    like($SHA{$name}, qr/^[0-9a-f]{40}$/, "$name.lua loads");
}

# both scripts share one core, src/lua/lib/quota_core.lua
for my $name (qw(quota quota_refund)) {
    like(SmartyTest::slurp("src/lua/$name.lua"), qr/^--\@include quota_core$/m,
         "$name.lua includes the quota core");
    like(SmartyTest::lua_script($name), qr/^local function quota_check\b/m,
         "$name.lua, expanded, holds quota_check");
}

# check(keys, specs, now, requests, images) -> the reply array
sub check {
    my ($keys, $specs, $now, $req, $img) = @_;
    return cmd('EVALSHA', $SHA{quota}, scalar(@$keys), @$keys, $now, $req,
               $img, @$specs);
}

sub refund {
    my ($keys, $specs, $now, $at, $req, $img) = @_;
    return cmd('EVALSHA', $SHA{quota_refund}, scalar(@$keys), @$keys, $now,
               $at, $req, $img, @$specs);
}

my $T0 = 1700000000000;
my $MIN = 60000;
my $DAY = 86400000;
my $n = 0;

# fresh keys for each scenario
sub keys_for { my @k = map { "t$n:{s1}:q:s:$_" } @_; $n++; return \@k }

# --- scenarios -------------------------------------------------------------------

{
    my $k = keys_for('rs');
    my $s = ['rs:10:10'];
    my $admitted = 0;
    my $r;
    for (1 .. 11) { $r = check($k, $s, $T0, 1, 0); $admitted++ if $r->[0] == 0 }
    is($admitted, 10, 'gcra 10r/s: 10 of 11 at one instant');
    is_deeply($r, [1, 100, $T0, 0, 1000], '  refused by 1, retry 100 ms, '
              . 'remaining 0, reset 1000 ms');
    is_deeply(check($k, $s, $T0 + 99, 1, 0)->[1], 1, '  +99: retry 1 ms');
    is(check($k, $s, $T0 + 100, 1, 0)->[0], 0, '  +100: admitted');
    is(check($k, $s, $T0 + 100, 1, 0)->[1], 100, '  then 100 ms again');
    my $pttl = cmd('PTTL', $k->[0]);
    ok($pttl > 60000 && $pttl <= 61000, "  the key expires after drain + "
       . "60 s ($pttl ms)");
    like(cmd('GET', $k->[0]), qr/^\d+:\d+$/, '  it holds "t:v"');
}

{
    my $k = keys_for('rs');
    my $s = ['rs:10:1'];
    my $admitted = 0;
    for my $t (0 .. 9999) {
        $admitted++ if check($k, $s, $T0 + $t, 1, 0)->[0] == 0;
    }
    is($admitted, 100, 'gcra 10r/s burst=1: 100 in 10 s of 1/ms, not 101');
}

{
    my $k = keys_for('rs');
    my $s = ['rs:3:3'];
    my ($t, $admitted, $guard) = ($T0, 0, 0);
    while ($admitted < 300 && $guard++ < 1000) {
        my $r = check($k, $s, $t, 1, 0);
        if ($r->[0] == 0) { $admitted++ } else { $t += $r->[1] }
    }
    is($t - $T0, 99000, 'gcra 3r/s burst=3 obeying retry: 300 in 297000/3 '
       . 'ms, no drift');
}

{
    my $m0 = $T0 - $T0 % $MIN;
    my $k = keys_for('rm');
    my $s = ['rm:5:5'];
    my $admitted = 0;
    my $r;
    for (1 .. 7) { $r = check($k, $s, $m0 + $MIN - 10, 1, 0); $admitted++ unless $r->[0] }
    is($admitted, 5, 'window 5r/m: 5 of 7 in the last 10 ms');
    is_deeply($r, [1, 10, $m0 + $MIN - 10, 0, 10], '  retry 10 ms, reset 10');
    $admitted = 0;
    for (1 .. 7) { $r = check($k, $s, $m0 + $MIN, 1, 0); $admitted++ unless $r->[0] }
    is($admitted, 5, '  the next minute: 5 more');
    is($r->[4], $MIN, '  reset a whole minute');

    my $d0 = (int($T0 / $DAY) + 1) * $DAY;
    $k = keys_for('id');
    $s = ['id:3:3'];
    is(check($k, $s, $d0 - 1, 1, 3)->[0], 0, 'window 3i/d: 3 in the last ms');
    is_deeply(check($k, $s, $d0 - 1, 1, 1), [1, 1, $d0 - 1, 0, 1],
              '  a 4th waits 1 ms');
    is_deeply(check($k, $s, $d0, 1, 3), [0, 0, $d0, 0, $DAY],
              '  00:00 UTC: 3 again, reset 24 h');
    my $pttl = cmd('PTTL', $k->[0]);
    ok($pttl > $DAY && $pttl <= $DAY + 60000, '  the key lives to the '
       . 'day\'s end + 60 s');

    $k = keys_for('rm');
    $s = ['rm:2:2'];
    check($k, $s, $m0 + $MIN, 1, 0) for 1 .. 2;
    is_deeply(check($k, $s, $m0 + 5, 1, 0), [1, 2 * $MIN - 5, $m0 + 5, 0,
              2 * $MIN - 5], 'window, clock back: the later window stays');
}

{
    my $k = keys_for('rs', 'is');
    my $s = ['rs:2:2', 'is:10:10'];
    is(check($k, $s, $T0, 1, 6)->[0], 0, 'r+i: 1 request of 6 images');
    my $before = join ',', map { cmd('GET', $_) } @$k;
    is_deeply(check($k, $s, $T0, 1, 6), [2, 200, $T0, 1, 500, 4, 600],
              '  6 more refused by the images limit, 200 ms');
    is(join(',', map { cmd('GET', $_) } @$k), $before,
       '  a refused request writes nothing');
    is(check($k, $s, $T0, 1, 4)->[0], 0, '  4 fit');
    is(check($k, $s, $T0, 1, 0)->[0], 1, '  then the requests limit');

    $k = keys_for('rs', 'is');
    $s = ['rs:5:5', 'is:1:1'];
    check($k, $s, $T0, 1, 1);
    is(check($k, $s, $T0, 1, 0)->[0], 0, 'a call without images passes');
}

{
    my $m0 = $T0 - $T0 % $MIN;
    my @k = (map({ "sp$n:{s2}:q:s:$_" } qw(im)),
             map({ "sp$n:{s2}:q:c:frontdesk:$_" } qw(im)));
    $n++;
    my $s = ['im:100:100', 'im:10:10'];
    is(check(\@k, $s, $m0, 1, 10)->[0], 0, 'space+client: 10 images');
    is_deeply(check(\@k, $s, $m0, 1, 1), [2, $MIN, $m0, 90, $MIN, 0, $MIN],
              '  the client\'s budget refuses, the space spent nothing');

    my $k = keys_for('rs', 'im', 'cm');
    $s = ['rs:10:1', 'im:100:100', 'rm:1:1'];
    check($k, $s, $T0, 1, 1);
    my $r = check($k, $s, $T0, 1, 1);
    is_deeply([@$r[0, 1]], [3, $MIN - $T0 % $MIN],
              'the longest wait names the limit');

    $k = keys_for('rm', 'is');
    $s = ['rm:1:1', 'is:5:5'];
    check($k, $s, $T0, 1, 0);
    is_deeply([@{ check($k, $s, $T0, 1, 6) }[0, 1]], [2, -1],
              '6 images on a burst of 5: never (-1), over any wait');

    $k = keys_for('is', 'im');
    $s = ['is:100:200', 'im:1000:1000'];
    is_deeply([@{ check($k, $s, $T0, 1, 201) }[0, 1]], [1, -1],
              '201 on a burst of 200: never');
    is(cmd('EXISTS', @$k), 0, '  no key written');
    is_deeply([@{ check($k, $s, $T0, 1, '1' . '0' x 30) }[0, 1]], [1, -1],
              '  10^30 images: never');
}

{
    my $m0 = $T0 - $T0 % $MIN;
    my $k = keys_for('im', 'rs');
    my $s = ['im:100:100', 'rs:10:10'];
    my $r = check($k, $s, $m0 + 10, 1, 40);
    is_deeply(refund($k, $s, $m0 + 20, $r->[2], 0, 40),
              [1, $m0 + 20, 100, $MIN - 20, 9, 90],
              'refund: 40 images back, the request stays');
    check($k, $s, $m0 + 30, 1, 40);
    is(refund($k, $s, $m0 + 40, $m0 + 30, 0, 400)->[2], 100,
       '  never below zero');
    check($k, $s, $m0 + 50, 1, 40);
    check($k, $s, $m0 + $MIN, 1, 5);
    $r = refund($k, $s, $m0 + $MIN + 1, $m0 + 50, 0, 40);
    is_deeply([@$r[0, 2]], [0, 95], '  a rolled-over window is not refunded');

    $k = keys_for('is');
    $s = ['is:10:10'];
    check($k, $s, $T0 + 500, 1, 10);
    is(refund($k, $s, $T0 + 700, $T0 + 500, 0, 3)->[2], 5,
       'refund gcra: 2 drained + 3 back');
    is(refund($k, $s, $T0 + 700, $T0 + 500, 0, '1' . '0' x 20)->[2], 10,
       '  a huge refund: the bucket whole, no more');
}

{
    my $k = keys_for('rs');
    my $s = ['rs:1:1'];
    is(check($k, $s, 10000000, 1, 0)->[0], 0, 'gcra, clock back: admitted');
    is_deeply(check($k, $s, 5000000, 1, 0), [1, 5001000, 5000000, 0,
              5001000], '  5000 s earlier: wait until back + 1 s');

    $k = keys_for('rs', 'id');
    $s = ['rs:1000000000:1000000000', 'id:1000000000:1000000000'];
    is_deeply(check($k, $s, 253402300799999, 1000000000, 1000000000),
              [0, 0, 253402300799999, 0, 1000, 0, 1],
              'huge: 10^9 at once in the year 9999');
}

{
    my $k = keys_for('rs');
    my $s = ['rs:10:10'];
    my $t0 = time;
    my $r = check($k, $s, '', 1, 0);
    ok(abs($r->[2] - $t0 * 1000) < 5000, "ARGV[1] \"\": Redis's TIME "
       . "($r->[2])");
    is($r->[0], 0, '  admitted');

    my $e = cmd('EVALSHA', $SHA{quota}, 1, $k->[0], $T0, 1, 0);
    like($e->{err} // '', qr/ARGV must be/, 'a missing limit: an error');
    $e = check($k, ['rs:0:1'], $T0, 1, 0);
    like($e->{err} // '', qr/count and burst/, 'a count of 0: an error');
    $e = check($k, ['xs:1:1'], $T0, 1, 0);
    like($e->{err} // '', qr/a limit is/, 'a bad spec: an error');
    $e = check($k, $s, $T0, -1, 0);
    like($e->{err} // '', qr/requests must be an integer/, 'requests -1');
    $e = check($k, $s, $T0, 1, 1.5);
    like($e->{err} // '', qr/images must be an integer/, 'images 1.5');
}

# --- differential: the C core and the script, same commands -------------------

my $driver = "$SmartyTest::BUILD/unit/quota_driver";
unless (-x $driver) {
    # not built by `make unit`: build it here
    $driver = SmartyTest::tempdir() . '/quota_driver';
    system('cc', '-O2', '-Isrc', '-o', $driver, 't/unit/quota_driver.c',
           'src/smarty_quota.c') == 0
        or BAIL_OUT("cannot build quota_driver");
}

sub driver_run {
    my ($policies, $cmds) = @_;
    my $pid = open2(my $out, my $in, $driver, @$policies);
    print $in "specs\n";
    print $in "$_\n" for @$cmds;
    close $in;
    my @lines = <$out>;
    close $out;
    waitpid($pid, 0);
    chomp @lines;
    return @lines;
}

# a reproducible random sequence: checks and refunds over time that mostly
# advances (steps from 0 ms to hours, sometimes backwards)
sub sequence {
    my ($seed, $count) = @_;
    srand($seed);
    my $t = $T0 - $T0 % $DAY + int(rand($DAY));
    my @cmds;
    my @nows;
    for (1 .. $count) {
        my $x = rand();
        if ($x < 0.35) { }
        elsif ($x < 0.75) { $t += int(rand(300)) }
        elsif ($x < 0.90) { $t += int(rand(5000)) }
        elsif ($x < 0.95) { $t += int(rand(3 * 3600000)) }
        elsif ($x < 0.98) { $t -= int(rand(120000)) }
        else { $t += $DAY - $t % $DAY - int(rand(3)) }      # around 00:00
        $t = 0 if $t < 0;
        if (@nows && rand() < 0.12) {
            my $at = $nows[int(rand(@nows))];
            push @cmds, sprintf('r %d %d %d %d', $t, $at, rand() < 0.2 ? 1 : 0,
                                int(rand(60)));
        } else {
            my $img = rand() < 0.2 ? 0 : 1 + int(rand(rand() < 0.1 ? 300 : 40));
            push @cmds, sprintf('c %d %d %d', $t, rand() < 0.05 ? 0 : 1, $img);
            push @nows, $t;
        }
    }
    return \@cmds;
}

my @configs = (
    ['10r/s burst=20; 100i/s burst=200; 1000i/m; 5000r/h; 100000i/d',
     '2r/s burst=5; 30i/s burst=60; 300i/m; 50r/h'],
    ['3r/s; 7i/s burst=11; 20r/m; 100i/h; 1000i/d'],
    ['1r/s burst=1; 1i/s burst=250'],
    ['999999999r/s burst=1000000000; 500i/m; 1r/d', '1000000000i/d'],
    ['5r/m; 50i/m', '7i/s burst=300; 3r/h; 40i/d'],
);

my $seq_seed = $ENV{SMARTY_QUOTA_SEED} // 7;
my $total = 0;
my ($admitted, $refused, $never, $refunded) = (0, 0, 0, 0);

for my $ci (0 .. $#configs) {
    my $policies = $configs[$ci];
    my $cmds = sequence($seq_seed * 100 + $ci, 1500);
    my @c = driver_run($policies, $cmds);
    my @specs = split ' ', shift @c;
    my @keys;
    my $i = 0;
    for my $p (0 .. $#$policies) {
        my $scope = $p == 0 ? 's' : "c:client$p";
        my @set = split /[\s;]+/, $policies->[$p];
        @set = grep { !/^burst=/ && length } @set;
        push @keys, map { sprintf('d%d:{s3}:q:%s:%s', $ci, $scope,
                                  substr($specs[$i++], 0, 2)) } @set;
    }

    # the same commands through the script, pipelined
    my @l;
    my $batch = 200;
    for (my $b = 0; $b < @$cmds; $b += $batch) {
        my @part = @$cmds[$b .. ($b + $batch - 1 < $#$cmds ? $b + $batch - 1
                                                           : $#$cmds)];
        for my $c (@part) {
            my @f = split ' ', $c;
            if ($f[0] eq 'c') {
                send_cmd($R, 'EVALSHA', $SHA{quota}, scalar(@keys), @keys,
                         @f[1 .. 3], @specs);
            } else {
                send_cmd($R, 'EVALSHA', $SHA{quota_refund}, scalar(@keys),
                         @keys, @f[1 .. 4], @specs);
            }
        }
        for (@part) {
            my $r = read_reply($R);
            push @l, ref $r eq 'ARRAY' ? join(' ', @$r)
                                       : 'error ' . ($r->{err} // '?');
        }
    }

    my $first_diff;
    for my $j (0 .. $#$cmds) {
        if (($c[$j] // '') ne ($l[$j] // '')) { $first_diff = $j; last }
        my @f = split ' ', $c[$j];
        if ($cmds->[$j] =~ /^c/) {
            if ($f[0] == 0) { $admitted++ } else { $refused++ }
            $never++ if $f[1] == -1;
        } else {
            $refunded++ if $f[0] > 0;
        }
    }
    $total += @$cmds;
    ok(!defined $first_diff && @c == @$cmds && @l == @$cmds,
       "differential, config $ci: " . scalar(@$cmds) . ' commands, C and '
       . 'Lua agree on every answer')
        or diag("first difference at command $first_diff: $cmds->[$first_diff]\n"
                . "  C:   $c[$first_diff]\n  Lua: $l[$first_diff]");
}
note("differential: $total commands, $admitted admitted, $refused refused "
     . "($never never admissible), $refunded refunds that changed a state");
ok($admitted > 500 && $refused > 500 && $never > 10 && $refunded > 50,
   'the sequences exercise admissions, refusals, never and refunds')
    or diag("admitted $admitted refused $refused never $never refunded $refunded");

# --- concurrency ------------------------------------------------------------------

# each child: $tries checks on its own connection; exits with its admitted
# count
sub race {
    my ($children, $tries, $body) = @_;
    my @pids;
    for my $c (1 .. $children) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $s = conn();
            my $got = 0;
            for (1 .. $tries) { $got++ if $body->($s, $c) }
            POSIX::_exit($got);
        }
        push @pids, $pid;
    }
    my @got;
    for my $pid (@pids) { waitpid($pid, 0); push @got, $? >> 8 }
    return @got;
}

sub eval_on {
    my ($s, $keys, $specs, @args) = @_;
    send_cmd($s, 'EVALSHA', $SHA{quota}, scalar(@$keys), @$keys, @args,
             @$specs);
    my $r = read_reply($s);
    return ref $r eq 'ARRAY' && $r->[0] == 0;
}

{
    my @got = race(20, 50, sub {
        my ($s) = @_;
        return eval_on($s, ['cc1:{s1}:q:s:rd'], ['rd:300:300'], $T0, 1, 0);
    });
    my $sum = 0;
    $sum += $_ for @got;
    is($sum, 300, '20 clients x 50 against 300r/d (one clock): exactly 300');

    @got = race(20, 50, sub {
        my ($s) = @_;
        return eval_on($s, ['cc2:{s1}:q:s:rs'], ['rs:1:300'], $T0, 1, 0);
    });
    $sum = 0;
    $sum += $_ for @got;
    is($sum, 300, '20 clients x 50 against a GCRA burst of 300: exactly 300');

    my $day0 = int(cmd('TIME')->[0] / 86400);
    @got = race(20, 50, sub {
        my ($s) = @_;
        return eval_on($s, ['cc3:{s1}:q:s:rd'], ['rd:250:250'], '', 1, 0);
    });
    $sum = 0;
    $sum += $_ for @got;
    SKIP: {
        skip 'the UTC day changed during the race', 1
            if int(cmd('TIME')->[0] / 86400) != $day0;
        is($sum, 250, '20 clients x 50 against 250r/d on Redis TIME: '
           . 'exactly 250');
    }

    @got = race(20, 40, sub {
        my ($s, $c) = @_;
        return eval_on($s, ['cc4:{s1}:q:s:im', "cc4:{s1}:q:c:c$c:im"],
                       ['im:500:500', 'im:100:100'], $T0, 1, 7);
    });
    $sum = 0;
    $sum += $_ for @got;
    is($sum, 71, 'space 500i/m + 20 clients of 100i/m, 7 images each: '
       . '71 requests (497 images)');
    is(cmd('GET', 'cc4:{s1}:q:s:im'), ($T0 - $T0 % $MIN) . ':497',
       '  the space spent exactly 497');
    my $all = 1;
    for my $c (1 .. 20) {
        my $v = cmd('GET', "cc4:{s1}:q:c:c$c:im") // '';
        my $want = $got[$c - 1] ? ($T0 - $T0 % $MIN) . ':' . 7 * $got[$c - 1]
                                : '';
        $all = 0 unless $v eq $want;
        $all = 0 if $got[$c - 1] > 14;
    }
    ok($all, '  every client spent exactly 7 per admitted request, at most '
       . '14 requests');
}

# --- the cache lookup decides the quota in the same script ---------------------

{
    my $sha = cmd('SCRIPT', 'LOAD', SmartyTest::lua_script('cache_get'));
    like($sha, qr/^[0-9a-f]{40}$/, 'cache_get.lua, with the quota core, loads');

    my $base = 'cg:{s1}';
    my @qk = ("$base:q:s:rm", "$base:q:s:im");
    my @spec = ('rm:3:3', 'im:4:4');

    # every key declared: the generation, the quota's, the entries, the
    # locks (docs/cache.md, "Keys")
    my $keys = sub {
        my (@sha) = @_;
        return ("$base:gen", @qk, (map { "$base:e:P:$_" } @sha),
                (map { "$base:lock:P:$_" } @sha));
    };
    # lookup(owner, hits_spend, spent_r, spent_i, @sha) -> reply
    my $lookup = sub {
        my ($owner, $hits, $sr, $si, @sha) = @_;
        my @k = $keys->(@sha);
        return cmd('EVALSHA', $sha, scalar @k, @k, 5000, $owner, 2, $T0,
                   $hits, $sr, $si, @spec);
    };
    my $token = cmd('EVAL', SmartyTest::lua_script('cache_get'), 1,
                    "$base:gen", 0, 'T', 0)->[0];
    like($token, qr/^0 [0-9a-f]{16}$/,
         'the token: the generation and the node (its replication id)');
    # the entries, then refused, retry, now, (remaining, reset) x 2, spent
    my $tail = sub { my ($r, $n) = @_; return [ @$r[1 + $n .. $#$r] ] };

    my $r = $lookup->('A', 0, 0, 0, 'aa', 'bb');
    is_deeply([ @$r[0 .. 2] ], [ $token, 1, 1 ],
              'two misses: both locks taken');
    is_deeply($tail->($r, 2), [ 0, 0, $T0, 2, 60000 - $T0 % $MIN, 2,
                                60000 - $T0 % $MIN, 1, 2 ],
              '  admitted: 1 request and 2 images spent, 2 and 2 left');

    cmd('SET', "$base:e:P:aa", "$token " . '{"status":0}');
    cmd('SET', "$base:e:P:cc", '1 0123456789abcdef {"status":0}');
    $r = $lookup->('B', 0, 0, 0, 'aa', 'bb', 'cc');
    is_deeply([ @$r[0 .. 3] ], [ $token, '{"status":0}', 2, 1 ],
              'a hit (the answer alone), one locked by another, one miss '
              . '(stored under another token)');
    is_deeply([ @{ $tail->($r, 3) }[0, 3, 5, 7, 8] ], [ 0, 1, 0, 1, 2 ],
              '  only the two not cached are spent (none left)');

    $r = $lookup->('C', 0, 0, 0, 'aa');
    is_deeply([ @$r[0 .. 1] ], [ $token, '{"status":0}' ], 'a full hit');
    is_deeply([ @{ $tail->($r, 1) }[0, 3, 5, 7, 8] ], [ 0, 1, 0, 0, 0 ],
              '  admitted, spending nothing');

    $r = $lookup->('D', 0, 0, 0, 'dd');
    is_deeply([ @$r[0 .. 1] ], [ $token, 0 ], 'a refused miss takes no lock');
    is($r->[2], 2, '  refused by the images limit');
    is_deeply([ @{ $tail->($r, 1) }[7, 8] ], [ 0, 0 ], '  nothing spent');
    is(cmd('EXISTS', "$base:lock:P:dd"), 0, '  no lock in Redis');

    $r = $lookup->('B', 0, 1, 2, 'aa', 'bb', 'cc');
    is_deeply([ @{ $tail->($r, 3) }[0, 7, 8] ], [ 0, 0, 0 ],
              'a look again spends only what is new (nothing here)');

    $r = $lookup->('E', 1, 0, 0, 'aa');
    is($r->[2], 2, 'with hits spending, a hit is refused when the images '
       . 'are spent');

    $r = cmd('EVALSHA', $sha, 3, "$base:gen", "$base:e:P:zz",
             "$base:lock:P:zz", 0, 'F', 0);
    is_deeply($r, [ $token, 0 ], 'no quota: the lookup alone, as before');

    # cache_put stores under the token its lookup read, only if unchanged
    my $put = cmd('SCRIPT', 'LOAD', SmartyTest::lua_script('cache_put'));
    is(cmd('EVALSHA', $put, 3, "$base:gen", "$base:e:P:zz",
           "$base:lock:P:zz", $token, 60000, 'F', 'ANSWER'), 1,
       'cache_put stores under the same token');
    is(cmd('GET', "$base:e:P:zz"), "$token ANSWER",
       '  the value: the token, a space, the answer');
    cmd('INCR', "$base:gen");
    is(cmd('EVALSHA', $put, 3, "$base:gen", "$base:e:P:yy",
           "$base:lock:P:yy", $token, 60000, 'F', 'OLD'), 0,
       'cache_put after a bump stores nothing');
    $r = cmd('EVALSHA', $sha, 3, "$base:gen", "$base:e:P:zz",
             "$base:lock:P:zz", 0, 'F', 0);
    is($r->[1], 0, 'an entry of the former generation is a miss');
    like(cmd('EVAL', SmartyTest::lua_script('cache_get'), 3, "$base:gen",
             "$base:e:P:zz", "$base:lock:P:zz", 0, 'F', 0)->[0],
         qr/^1 [0-9a-f]{16}$/, 'the token names the new generation');
}

done_testing();
