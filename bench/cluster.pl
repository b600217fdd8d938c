# The Redis topology benchmark (bench/README.md, docs/scale.md): the cache
# hit path through a gateway on one Redis and through one on a Redis
# Cluster of 3 masters and 3 replicas, in the same run, alternated; then,
# per request type, what Redis does for one request (INFO commandstats:
# commands and the microseconds Redis spent in them, summed over the
# cluster's masters) and the Redis CPU per request under load (INFO cpu).
use strict;
use warnings;
use SmartyTest;
use Wrk;
use Time::HiRes qw(time sleep);

my ($secs, $conns, $rounds) = @ARGV;
$rounds ||= 2;

my $single = SmartyTest::start_redis();
my $cl = SmartyTest::start_redis_cluster(node_timeout => 2000);
my @masters = map { $_->{port} } @{ $cl->{masters} };

# quotas that never refuse, as in bench/run.pl: five states per request
my $QUOTAS = 'smarty_quota_space * "1000000000r/s; 1000000000i/m; '
    . '1000000000i/d"; smarty_quota_client * "1000000000r/s; 1000000000i/h";';

my %common = (emu_args => [ '--per-image-ms', '0', '--quiet' ],
              gateway => "smarty_cache on; $QUOTAS",
              body_buffer => '2m', error_level => 'warn');

my $S = SmartyTest::start_gateway(%common,
    http => "smarty_redis 127.0.0.1:$single->{port};\n");
my $C = SmartyTest::start_gateway(%common, emu => $S->{emu},
    token => $S->{token},
    clients => [ map { { %$_, key => $S->{keys}{ $_->{name} } } }
                 @{ $S->{clients} } ],
    http => "smarty_redis_cluster " . join(' ', map { "127.0.0.1:$_" }
                                           @masters) . ";\n");
my $key = $S->{keys}{demo};
my $dir = SmartyTest::tempdir();

my $img = SmartyTest::alone_photo('bench', pad => 100_000, seed => 100_000);
my ($body, $ct) = SmartyTest::api_body(
    meta => { space => '1', images => [ { name => 'file_0' } ] },
    images => [ [ 'file_0', $img ] ]);
SmartyTest::spew("$dir/hit", $body);

for my $g ($S, $C) {
    for (1 .. 2) {
        my $r = SmartyTest::http('POST', "$g->{url}/api/v1/persons/recognize",
            headers => { Authorization => "Bearer $key",
                         'Content-Type' => $ct }, body => $body);
        die "warm-up: $r->{status}" unless $r->{status} == 200;
    }
    my $r = SmartyTest::http('POST', "$g->{url}/api/v1/persons/recognize",
        headers => { Authorization => "Bearer $key", 'Content-Type' => $ct },
        body => $body);
    die "not a hit" unless ($r->{headers}{'cache-status'} // '') =~ /hit/;
}

sub info {
    my ($ports, $section) = @_;
    my %v;
    for my $p (@$ports) {
        for (split /\r?\n/, SmartyTest::redis_cli($p, 'INFO', $section)) {
            if (/^cmdstat_(\S+):calls=(\d+),usec=(\d+)/) {
                $v{"calls $1"} += $2;
                $v{"usec $1"} += $3;
            }
            $v{cpu} += $1 if /^used_cpu_(?:user|sys):([\d.]+)/;
        }
    }
    return \%v;
}

sub reset_stats { SmartyTest::redis_cli($_, 'CONFIG', 'RESETSTAT') for @_ }

my $cores = `nproc`;
chomp $cores;
printf "smarty-gateway Redis topologies: %ss per run, %d connections, "
    . "%d rounds, 1 nginx worker each, wrk -t1, %s cores\n\n", $secs, $conns,
    $rounds, $cores;

# --- the hit path, alternated -------------------------------------------------

my (%rps, %cpu, %p99);
for my $round (1 .. $rounds) {
    for my $t ([ 'single', $S, [ $single->{port} ] ],
               [ 'cluster', $C, \@masters ]) {
        my ($name, $g, $ports) = @$t;
        my $c0 = info($ports, 'cpu')->{cpu};
        my $w = Wrk::run(url => "$g->{url}/api/v1/persons/recognize",
                         file => "$dir/hit", ct => $ct, key => $key,
                         conns => $conns, secs => $secs);
        my $c1 = info($ports, 'cpu')->{cpu};
        push @{ $rps{$name} }, $w->{rps};
        push @{ $p99{$name} }, $w->{p99};
        push @{ $cpu{$name} }, ($c1 - $c0) * 1e6 / $w->{requests};
    }
}

sub mean { my $s = 0; $s += $_ for @_; return $s / @_ }

printf "%-30s %10s %10s %14s\n", 'cache hit, 100 KB image', 'r/s',
    'p99 ms', 'Redis CPU us/req';
for my $name ('single', 'cluster') {
    printf "%-30s %10.0f %10.2f %14.1f\n", "$name (mean of $rounds)",
        mean(@{ $rps{$name} }), mean(@{ $p99{$name} }),
        mean(@{ $cpu{$name} });
}
printf "%-30s %10.3f   (target >= 0.95)\n\n", 'ratio cluster / single',
    mean(@{ $rps{cluster} }) / mean(@{ $rps{single} });

# --- per request type: what Redis does for one ---------------------------------

my $N = 200;
my @types = (
    [ 'hit (recognize, 1 image)', sub {
        return (persons => 'recognize', space => '1', photo => $img) } ],
    [ 'miss (recognize, 1 image)', sub {
        my ($i) = @_;
        return (persons => 'recognize', space => '2',
                photo => SmartyTest::alone_photo("miss$i." . rand)) } ],
    [ 'set (a write: bump)', sub {
        my ($i) = @_;
        return (persons => 'set', space => '3',
                photo => SmartyTest::alone_photo("set$i")) } ],
    [ 'detector hit (objects/detect)', sub {
        return (detect => 1, photo => $img) } ],
);

sub one {
    my ($g, %o) = @_;
    if ($o{detect}) {
        return SmartyTest::call($g->{url}, 'objects/detect', key => $key,
            meta => { mode => [ 'object' ], images => [ { name => 'f' } ] },
            images => [ [ 'f', $o{photo} ] ]);
    }
    my $m = { space => $o{space}, images => [ { name => 'f' } ] };
    $m->{images}[0]{person_id} = 1 if $o{persons} eq 'set';
    return SmartyTest::call($g->{url}, "persons/$o{persons}", key => $key,
                            meta => $m, images => [ [ 'f', $o{photo} ] ]);
}

printf "%-30s %-8s %9s  %s\n", "Redis per request ($N each)", 'topology',
    'Redis us', 'commands per request (+: called by the scripts)';
for my $t (@types) {
    my ($name, $gen) = @$t;
    for my $topo ([ 'single', $S, [ $single->{port} ] ],
                  [ 'cluster', $C, \@masters ]) {
        my ($tn, $g, $ports) = @$topo;
        one($g, $gen->(0)) for 1 .. 2;          # warm: a hit is a hit
        # the warm-up's stores are sent after its answer: let them land
        sleep 0.2;
        reset_stats(@$ports);
        for my $i (1 .. $N) {
            my $r = one($g, $gen->($i));
            die "$name: $r->{status}" unless $r->{status} == 200;
        }
        sleep 0.2;
        my $v = info($ports, 'commandstats');
        my @top = grep { /^(evalsha|eval|incr|cluster|ping)$/ }
                  map { /^calls (.+)$/ ? $1 : () } sort keys %$v;
        my @nested = grep { !/^(evalsha|eval|incr|cluster|ping|config|info|replconf)\b/ }
                     map { /^calls (.+)$/ ? $1 : () } sort keys %$v;
        my $usec = 0;
        $usec += $v->{"usec $_"} for @top;
        my $desc = join(' ', map { sprintf '%s %.2f', uc, $v->{"calls $_"} / $N }
                        @top) . ' | ' . join(' ', map {
                            sprintf '+%s %.2f', uc, ($v->{"calls $_"} // 0)
                                                    / $N }
                        @nested, 'info');
        printf "%-30s %-8s %9.1f  %s\n", $name, $tn, $usec / $N, $desc;
    }
}
