# The C unit tests of the pure cores (t/unit/test_*.c, built by `make unit`
# into $SMARTY_BUILD/unit/): each binary is one subtest, each of its TAP
# lines one assertion here, so prove shows a failure with its description.
# A binary fails as a whole if it exits non-zero, dies of a signal, prints
# no plan or a plan its tests do not match.  With SMARTY_VALGRIND set, the
# binaries run under valgrind (leaks and errors fail them).
use strict;
use warnings;
use Test::More;

my $build = $ENV{SMARTY_BUILD} // 'build';
my @bins = grep { -f $_ && -x _ } sort glob("$build/unit/test_*");

if (!@bins) {
    fail("no unit test binaries in $build/unit: run `make unit`");
    done_testing();
    exit;
}

my @valgrind = $ENV{SMARTY_VALGRIND}
    ? ('valgrind', '-q', '--error-exitcode=99', '--leak-check=full',
       '--errors-for-leak-kinds=definite,indirect')
    : ();

for my $bin (@bins) {
    (my $name = $bin) =~ s{.*/}{};

    subtest $name => sub {
        my $pid = open(my $out, '-|');
        defined $pid or die "fork: $!";

        if ($pid == 0) {
            open(STDERR, '>&', \*STDOUT) or die "dup: $!";
            exec(@valgrind, $bin) or die "exec $bin: $!";
        }

        my ($plan, $count) = (undef, 0);

        while (my $line = <$out>) {
            chomp $line;

            if ($line =~ /^1\.\.(\d+)/) {
                $plan = $1;

            } elsif ($line =~ /^(not )?ok (\d+)(?: - (.*))?$/) {
                $count++;
                ok(!defined $1, $3 // "test $2");

            } elsif ($line =~ /^#/) {
                # a binary's diagnostics follow the line they explain
                diag($line);

            } elsif (length $line) {
                note($line);
            }
        }

        close($out);
        my $status = $?;

        is($status & 127, 0, "$name was not killed by a signal");
        is($status >> 8, 0, "$name exits with status 0");
        ok(defined $plan, "$name prints a plan");
        is($count, $plan // -1, "$name ran the tests it planned")
            if defined $plan;
    };
}

done_testing();
