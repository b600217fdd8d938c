package Wrk;

# Runs wrk with bench/post.lua and reads its own summary: requests/s, the
# latency distribution (--latency), answers that were not 2xx or 3xx, and
# socket errors.  A run with any of the last two is refused: a benchmark of
# errors measures nothing.

use strict;
use warnings;

# milliseconds from wrk's "1.23ms", "456.00us", "1.01s", "2.00m"
sub ms {
    my ($v) = @_;
    my ($n, $u) = $v =~ /^([\d.]+)(us|ms|s|m)$/ or return undef;
    return $n / 1000 if $u eq 'us';
    return $n if $u eq 'ms';
    return $n * 1000 if $u eq 's';
    return $n * 60000;
}

# the numbers of a wrk summary
sub parse {
    my ($out) = @_;
    my %r;
    ($r{rps}) = $out =~ /^Requests\/sec:\s+([\d.]+)/m;
    ($r{requests}) = $out =~ /^\s*(\d+) requests in /m;
    ($r{non2xx}) = $out =~ /^\s*Non-2xx or 3xx responses:\s+(\d+)/m;
    $r{non2xx} //= 0;
    if ($out =~ /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m) {
        $r{errors} = $1 + $2 + $3 + $4;
    }
    $r{errors} //= 0;
    for my $p (50, 75, 90, 99) {
        my ($v) = $out =~ /^\s+$p%\s+(\S+)/m;
        $r{"p$p"} = defined $v ? ms($v) : undef;
    }
    return \%r;
}

# wrk on $url for $secs seconds with $conns connections and $threads
# threads, posting $file as $ct (and $key as a Bearer key; vary: every
# request with bytes of its own, bench/post.lua)
sub run {
    my (%o) = @_;
    local $ENV{VARY} = $o{vary} ? 1 : '';
    local $ENV{BODY_FILE} = $o{file};
    local $ENV{CONTENT_TYPE} = $o{ct};
    local $ENV{KEY} = $o{key} // '';
    my $t = $o{threads} // 1;
    my $out = `wrk -t$t -c$o{conns} -d$o{secs}s --latency -s bench/post.lua '$o{url}' 2>&1`;
    # an error of the script is printed, and wrk goes on without it
    die "wrk's script failed:\n$out" if $out =~ /^\S*post\.lua: /m;
    my $r = parse($out);
    die "wrk failed:\n$out" unless defined $r->{rps};
    die "wrk saw $r->{non2xx} answers that were not 2xx on $o{url}\n"
        if $r->{non2xx} && !$o{allow_errors};
    die "wrk saw $r->{errors} socket errors on $o{url}\n"
        if $r->{errors} && !$o{allow_errors};
    $r->{out} = $out;
    return $r;
}

1;
