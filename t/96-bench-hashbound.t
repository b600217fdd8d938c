# The benchmark's bounds (bench/hashbound/, a module of its own): the hash
# bound reads the upload into memory, SHA-256s it and answers its file's
# bytes; with "nohash" it reads and answers; a body nginx put in a temp
# file is refused, and so is a directive it does not know.  bench/post.lua's
# VARY gives every request bytes of its own.
use strict;
use warnings;
use Test::More;
use lib 't/lib', 'bench';
use SmartyTest;
use Wrk;

my $so = "$SmartyTest::BUILD/ngx_http_smarty_hashbound_module.so";
plan skip_all => "$so is not built (make bench-module)" unless -f $so;

my $dir = SmartyTest::tempdir();
my $answer = '{"status":200,"body":{"objects":[]}}';
SmartyTest::spew("$dir/answer.json", $answer);

my $ngx = SmartyTest::start_nginx(main => "load_module $so;",
                                  http => <<"EOF2");
    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 64m;
        client_body_buffer_size 1m;
        location = /hash { smarty_hashbound $dir/answer.json; }
        location = /read { smarty_hashbound $dir/answer.json nohash; }
    }
EOF2

for my $loc (qw(hash read)) {
    my $r = SmartyTest::http('POST', "$ngx->{url}/$loc",
                             headers => { 'Content-Type' => 'x/y' },
                             body => 'x' x 100_000);
    is($r->{status}, 200, "$loc: 200");
    is($r->{content}, $answer, "$loc: the file's bytes");
    is($r->{headers}{'content-type'}, 'application/json', "$loc: JSON");
}

my $big = SmartyTest::http('POST', "$ngx->{url}/hash",
                           headers => { 'Content-Type' => 'x/y' },
                           body => 'x' x 2_000_000);
is($big->{status}, 500, 'a body in a temp file: refused');
like(SmartyTest::error_log($ngx), qr/the body is not in memory/,
     '... saying why');

is(SmartyTest::http('GET', "$ngx->{url}/hash")->{status}, 405,
   'GET: not allowed');

{
    my $bad = SmartyTest::tempdir() . '/bad.conf';
    my $conf = SmartyTest::slurp("$ngx->{dir}/nginx.conf");
    $conf =~ s/ nohash;/ sometimes;/;
    SmartyTest::spew($bad, $conf);
    my $out = `nginx -t -p $ngx->{dir} -c $bad 2>&1`;
    like($out, qr/takes "nohash" or nothing after the file/,
         'an unknown parameter: a configuration error');
}

SKIP: {
    skip 'wrk is not installed', 2 unless `which wrk` =~ /wrk/;

    # the same bytes but "VARY" and 16 digits, which every request changes
    SmartyTest::spew("$dir/vary", 'head VARY0000000000000000 tail');
    my $w = Wrk::run(url => "$ngx->{url}/read", file => "$dir/vary",
                     ct => 'x/y', conns => 1, secs => 1, vary => 1);
    ok($w->{requests} > 0, "VARY: $w->{requests} requests, no error");

    SmartyTest::spew("$dir/novary", 'no digits here');
    ok(!eval { Wrk::run(url => "$ngx->{url}/read", file => "$dir/novary",
                        ct => 'x/y', conns => 1, secs => 1, vary => 1); 1 },
       'VARY without the digits in the body: wrk stops');
}

done_testing;
