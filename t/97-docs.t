# Every directive, variable, error code and metric of the module is in
# docs/: the names are read from the sources, so one added without its
# documentation fails here.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;

my (%dirs, %vars, %codes, %metrics);
for my $f (glob 'src/*.c') {
    my $c = SmartyTest::slurp($f);
    while ($c =~ /^static ngx_command_t\s+\w+\[\]\s*=\s*\{(.*?)^\};/msg) {
        my $block = $1;
        $dirs{$1} = $f while $block =~ /ngx_string\("(smarty_\w+)"\)/g;
    }
    while ($c =~ /^(?:static )?ngx_http_variable_t\s+\w+\[\]\s*=\s*\{(.*?)^\};/msg)
    {
        my $block = $1;
        $vars{$1} = $f while $block =~ /ngx_string\("(smarty_\w+)"\)/g;
    }
    if ($f =~ m{/ngx_http_smarty_metrics\.c$}) {
        $metrics{$1} = $f
            while $c =~ /"(smarty_\w+_(?:total|seconds|bytes|workers|records|failing|series|capacity))\b/g;
    }
}
{
    my $c = SmartyTest::slurp('src/smarty_errors.c');
    $codes{$1} = 1 while $c =~ /\{ \d{3}, "([a-z_]+)"/g;
    delete $codes{ok};
}
delete $metrics{$_} for keys %dirs;

cmp_ok(scalar keys %dirs, '>=', 45, scalar(keys %dirs) . ' directives found');
cmp_ok(scalar keys %vars, '>=', 20, scalar(keys %vars) . ' variables found');
cmp_ok(scalar keys %codes, '>=', 40, scalar(keys %codes) . ' error codes found');
cmp_ok(scalar keys %metrics, '>=', 30,
       scalar(keys %metrics) . ' metrics found');

my %doc = map { $_ => SmartyTest::slurp($_) } glob 'docs/*.md';
my $all = join "\n", values %doc;

# a directive: a heading of its own (or shared: "### a, b")
my @heads = $all =~ /^#{2,4} (.+)$/mg;
my %headed;
for my $h (@heads) { $headed{$1} = 1 while $h =~ /\b(smarty_\w+)\b/g }
for my $d (sort keys %dirs) {
    ok($headed{$d}, "directive $d has a heading in docs/")
        or diag "declared in $dirs{$d}";
}

# a variable: in the reference's Variables section
my ($varsec) = $doc{'docs/reference.md'} =~ /^## Variables\n(.*?)^## /ms;
for my $v (sort keys %vars) {
    like($varsec // '', qr/\$\Q$v\E\b/, "variable \$$v in docs/reference.md");
}

# an error code: named in the docs as `code`
for my $e (sort keys %codes) {
    like($all, qr/`\Q$e\E`/, "error code $e in docs/");
}

# a metric: in docs/metrics.md, by its name or as a suffix of a family
# written out before it ("`smarty_x_a_total`, `_b_total`")
my $md = $doc{'docs/metrics.md'};
for my $m (sort keys %metrics) {
    my $found = $md =~ /\b\Q$m\E\b/;
    my @w = split /_/, $m;
    for my $i (2 .. $#w) {
        last if $found;
        my ($p, $r) = (join('_', @w[0 .. $i - 1]), join('_', @w[$i .. $#w]));
        $found = $md =~ /`\Q$p\E_\w+`, (?:`_\w+`, )*?`_\Q$r\E`/;
    }
    ok($found, "metric $m in docs/metrics.md");
}

done_testing;
