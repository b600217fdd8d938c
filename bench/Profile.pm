package Profile;

# Where the nginx worker's time goes on the cache hit path, beside the hash
# bound's: `perf record` of the worker while wrk runs the same load as
# bench/run.pl, then `perf report` per shared object and per symbol
# (BENCH_PROFILE=<dir> bench/run.sh; bench/README.md).  The perf.data files
# stay in <dir>.

use strict;
use warnings;
use Wrk;
use SmartyTest;

# the share of the samples per key (dso or symbol), from perf report
sub report {
    my ($data, $sort, $top) = @_;
    my $out = `perf report -i $data --stdio --no-children --sort $sort 2>/dev/null`;
    my @rows;
    for (split /\n/, $out) {
        next if /^#/ || !/\S/;
        my ($pct, $rest) = /^\s*([\d.]+)%\s+(.*\S)/ or next;
        push @rows, [ $pct, $rest ];
    }
    splice @rows, $top if defined $top && @rows > $top;
    return \@rows;
}

sub worker_pid {
    my ($ngx) = @_;
    my $master = SmartyTest::slurp("$ngx->{dir}/nginx.pid");
    chomp $master;
    my @kids = grep { /^\d+$/ } split /\s+/, `pgrep -P $master`;
    die "one nginx worker expected, found " . scalar(@kids) . "\n"
        unless @kids == 1;
    return $kids[0];
}

# nanoseconds the process has run on a CPU
sub cpu_ns {
    my ($pid) = @_;
    my ($ns) = split / /, SmartyTest::slurp("/proc/$pid/schedstat");
    return $ns;
}

# wrk on $url while perf records the worker (BENCH_PERF_ARGS: more
# arguments, -g say); returns wrk's numbers and the worker's CPU time per
# request (cpu_us)
sub record {
    my ($data, $pid, $secs, %wrk) = @_;
    my $args = $ENV{BENCH_PERF_ARGS} // '';
    my $perf = open(my $ph, '-|',
                    "perf record -q $args -p $pid -o $data -- sleep $secs 2>&1")
        or die "perf: $!";
    my $cpu = cpu_ns($pid);
    my $r = Wrk::run(%wrk, secs => $secs);
    $r->{cpu_us} = (cpu_ns($pid) - $cpu) / 1000 / $r->{requests};
    local $/;
    my $msg = <$ph>;
    close $ph;
    die "perf record failed: $msg\n" unless -s $data;
    return $r;
}

sub run {
    my ($dir, $ngx, $secs, $conns, $key, $hit_url, $hits, $hash_url) = @_;
    system('mkdir', '-p', $dir) == 0 or die;
    die "perf is missing: apt-get install linux-perf\n"
        unless `which perf` =~ /perf/;
    my $pid = worker_pid($ngx);
    my @load = split / /, SmartyTest::slurp('/proc/loadavg');
    printf "perf record of the nginx worker (pid %d), %ss per load, %d "
        . "connections, load average %s %s %s\n", $pid, $secs, $conns,
        @load[0 .. 2];
    my $only = $ENV{BENCH_PROFILE_CASES};     # hit-100k,hit-1m,hit-batch
    for my $h (@$hits) {
        next if $only && index(",$only,", ",$h->{name},") < 0;
        for my $side ([ 'gateway', $hit_url, $key ],
                      [ 'hash bound', "$hash_url/$h->{name}", undef ]) {
            my ($what, $url, $k) = @$side;
            (my $tag = "$h->{name}-$what") =~ s/ /-/g;
            my $data = "$dir/$tag.perf.data";
            my $r = record($data, $pid, $secs, url => $url,
                           file => $h->{file}, ct => $h->{ct}, key => $k,
                           conns => $conns);
            printf "\n%s, %s: %.0f requests/s, the worker's CPU %.1f us "
                . "per request (%s)\n", $h->{label}, $what, $r->{rps},
                $r->{cpu_us}, $data;
            printf "  %6.2f%%  %s\n", @$_ for @{ report($data, 'dso') };
            print "  top symbols:\n";
            printf "  %6.2f%%  %s\n", @$_
                for @{ report($data, 'dso,sym', 15) };
        }
    }
}

1;
