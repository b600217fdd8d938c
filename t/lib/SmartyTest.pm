package SmartyTest;

# The test harness: starts Redis, the emulator and nginx with the built
# module on free loopback ports, waits for them with a deadline, stops them
# at the end.  Core Perl only.

use strict;
use warnings;

use Cwd qw(abs_path getcwd);
use File::Temp ();
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use JSON::PP;
use HTTP::Tiny;
use Digest::SHA qw(sha256_hex);
use Test::More ();
use Exporter qw(import);

our @EXPORT_OK = qw(is_error);

our $TOP = abs_path(getcwd());
our $BUILD = $ENV{SMARTY_BUILD} // "$TOP/build";
our @PROCS;
our $JSON = JSON::PP->new->canonical(1);

my $tempdir;

sub tempdir_path {
    $tempdir //= File::Temp::tempdir('smarty-t-XXXXXX', TMPDIR => 1,
                         CLEANUP => !$ENV{SMARTY_KEEP});
    # nginx's workers (user nobody under a root master) write temp files
    chmod 0755, $tempdir;
    return $tempdir;
}

sub tempdir { return tempdir_path() }

sub client_path { return "$BUILD/smarty" }
sub emulator_path { return "$BUILD/smarty-emulator" }
sub module_path { return "$BUILD/ngx_http_smarty_module.so" }

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# Polls $cond until it returns true or $timeout seconds pass; returns the
# last value of $cond.
sub wait_until {
    my ($cond, $timeout) = @_;
    $timeout //= 10;
    my $deadline = time + $timeout;
    my $delay = 0.005;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $v if time > $deadline;
        sleep $delay;
        $delay *= 2 if $delay < 0.1;
    }
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub wrap_cmd {
    my (@cmd) = @_;
    if ($ENV{SMARTY_VALGRIND}) {
        my $log = tempdir_path() . "/valgrind.%p.log";
        unshift @cmd, 'valgrind', '--error-exitcode=99', '--quiet',
            "--log-file=$log", '--trace-children=no';
    }
    return @cmd;
}

# Spawns a process with stdout/stderr to $log; remembers it for stop_all.
sub spawn {
    my ($name, $log, $env, @cmd) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or die "open $log: $!";
        open STDERR, '>&', \*STDOUT;
        %ENV = (%ENV, %$env) if $env;
        exec @cmd or die "exec $cmd[0]: $!";
    }
    my $p = { name => $name, pid => $pid, log => $log };
    push @PROCS, $p;
    return $p;
}

sub stop_proc {
    my ($p, $sig) = @_;
    return unless $p && $p->{pid};
    kill($sig // 'TERM', $p->{pid});
    my $gone = wait_until(sub { waitpid($p->{pid}, WNOHANG) != 0 }, 10);
    unless ($gone) {
        kill 'KILL', $p->{pid};
        waitpid($p->{pid}, 0);
    }
    $p->{status} = $?;
    $p->{pid} = 0;
}

sub stop_all {
    for my $p (reverse @PROCS) {
        stop_proc($p) if $p->{pid};
    }
    @PROCS = ();
}

END {
    my $rc = $?;
    stop_all();
    # under valgrind, any report fails the test file
    if ($ENV{SMARTY_VALGRIND} && $tempdir) {
        for my $log (glob "$tempdir/valgrind.*.log") {
            next unless -s $log;
            print STDERR "# valgrind reported errors ($log):\n", slurp($log);
            $rc ||= 1;
        }
    }
    $? = $rc;
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    my $d = <$fh>;
    return $d // '';
}

sub spew {
    my ($f, $d) = @_;
    open my $fh, '>:raw', $f or die "open $f: $!";
    print $fh $d;
    close $fh;
}

# A Redis script as the module embeds it: "--@include NAME" lines replaced
# by src/lua/lib/NAME.lua (scripts/embed-lua.sh does the same).
sub lua_script {
    my ($name) = @_;
    my $text = slurp("$TOP/src/lua/$name.lua");
    $text =~ s{^--\@include ([a-z0-9_]+)\n}{
        my $lib = slurp("$TOP/src/lua/lib/$1.lua");
        die "no src/lua/lib/$1.lua" unless length $lib;
        $lib
    }gme;
    return $text;
}

# --- servers -----------------------------------------------------------------

sub start_redis {
    my (%o) = @_;
    my $port = $o{port} // free_port();
    my $dir = tempdir_path() . "/redis-$port";
    make_path($dir);
    my $p = spawn('redis', "$dir/redis.log", undef,
        'redis-server', '--port', $port, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', $dir,
        '--daemonize', 'no', @{ $o{args} // [] });
    wait_until(sub { port_open($port) }, 10)
        or die "redis did not start: " . slurp("$dir/redis.log");
    $p->{port} = $port;
    return $p;
}

# Certificates for the TLS tests, in $dir: a self-signed CA for each name
# of @{ $o{cas} } ($dir/<name>.crt and .key), and for each [ name, cn ] of
# @{ $o{certs} } a certificate of cn (its subjectAltName too) signed by
# the first CA ($dir/<name>.crt and .key).
sub make_certs {
    my ($dir, %o) = @_;
    my $openssl = sub {
        my $out = `openssl @_ 2>&1`;
        die "openssl @_: $out" if $?;
    };
    for my $ca (@{ $o{cas} }) {
        $openssl->('req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                   '-days', '2', '-subj', "/CN=smarty-test-$ca",
                   '-keyout', "$dir/$ca.key", '-out', "$dir/$ca.crt");
    }
    my $ca = $o{cas}[0];
    for my $c (@{ $o{certs} // [] }) {
        my ($name, $cn) = @$c;
        $openssl->('req', '-newkey', 'rsa:2048', '-nodes', '-subj', "/CN=$cn",
                   '-addext', "subjectAltName=DNS:$cn",
                   '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
        $openssl->('x509', '-req', '-in', "$dir/$name.csr",
                   '-CA', "$dir/$ca.crt", '-CAkey', "$dir/$ca.key",
                   '-CAcreateserial', '-days', '2', '-copy_extensions',
                   'copyall', '-out', "$dir/$name.crt");
    }
}

# The password of a server started with one (requirepass), by port:
# redis_cli authenticates with it.
our %REDIS_AUTH;

# A reply of redis-cli (raw output, chomped), for tests that poll a server.
sub redis_cli {
    my ($port, @args) = @_;
    my @auth = defined $REDIS_AUTH{$port}
        ? ('--no-auth-warning', '-a', $REDIS_AUTH{$port}) : ();
    open(my $fh, '-|', 'redis-cli', '-p', $port, @auth, @args)
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+$//;
    return $out;
}

# A Redis Cluster of masters x (1 + replicas) nodes on free loopback ports,
# made with redis-cli --cluster create; returns once every node sees every
# slot served.  Returns { nodes => [proc, ...], ports => [...] }, the
# masters first.  %o: masters (3), replicas (1), node_timeout (ms, 1000).
sub start_redis_cluster {
    my (%o) = @_;
    my $masters = $o{masters} // 3;
    my $replicas = $o{replicas} // 1;
    my $timeout = $o{node_timeout} // 1000;
    my @nodes;
    for (1 .. $masters * (1 + $replicas)) {
        my $port = free_port();
        push @nodes, start_redis(port => $port, args => [
            '--cluster-enabled', 'yes',
            '--cluster-config-file', tempdir_path() . "/redis-$port/nodes.conf",
            '--cluster-node-timeout', $timeout,
            # a replica cut off for a few seconds may still be promoted
            '--cluster-replica-validity-factor', '0',
            @{ $o{args} // [] } ]);
    }
    my @ports = map { $_->{port} } @nodes;
    my $out = `redis-cli --cluster create @{[ map { "127.0.0.1:$_" } @ports ]} --cluster-replicas $replicas --cluster-yes 2>&1`;
    die "redis-cli --cluster create failed:\n$out" if $?;
    wait_until(sub {
        for my $p (@ports) {
            return 0 unless redis_cli($p, 'CLUSTER', 'INFO')
                =~ /cluster_state:ok/ && redis_cli($p, 'CLUSTER', 'INFO')
                =~ /cluster_slots_ok:16384/;
        }
        return 1;
    }, 30) or die "the cluster did not come up";
    # the masters first, as redis-cli made them
    my (@m, @r);
    for my $n (@nodes) {
        my $role = redis_cli($n->{port}, 'ROLE');
        if ($role =~ /^master/) { push @m, $n } else { push @r, $n }
    }
    return { nodes => [ @m, @r ], ports => [ map { $_->{port} } @m, @r ],
             masters => \@m, replicas => \@r };
}

# The master of a cluster that serves a key's slot, as the node at $port
# sees it: its port (and, in list context, its id and the slot).
sub cluster_owner {
    my ($port, $key) = @_;
    my $slot = redis_cli($port, 'CLUSTER', 'KEYSLOT', $key);
    for my $l (split /\n/, redis_cli($port, 'CLUSTER', 'NODES')) {
        my ($id, $addr, $flags, undef, undef, undef, undef, undef, @slots)
            = split / /, $l;
        next unless $flags =~ /master/ && $flags !~ /fail/;
        for my $r (@slots) {
            next if $r =~ /^\[/;      # a slot being migrated or imported
            my ($lo, $hi) = split /-/, $r;
            $hi //= $lo;
            next unless $slot >= $lo && $slot <= $hi;
            my ($p) = $addr =~ /:(\d+)@/;
            return wantarray ? ($p, $id, $slot) : $p;
        }
    }
    return;
}

# A master, a replica and 3 sentinels watching it as "mymaster".
# Returns { master, replica, sentinels => [...], name }.
sub start_redis_sentinels {
    my (%o) = @_;
    # password: the master's and the replica's (requirepass, masterauth);
    # sentinel_password: the sentinels' own (requirepass in sentinel.conf)
    my $pw = $o{password};
    my @args = (@{ $o{args} // [] },
                defined $pw ? ('--requirepass', $pw, '--masterauth', $pw) : ());
    my $master = start_redis(args => \@args);
    $REDIS_AUTH{ $master->{port} } = $pw if defined $pw;
    my $replica = start_redis(args => [ '--replicaof', '127.0.0.1',
                                        $master->{port}, @args ]);
    $REDIS_AUTH{ $replica->{port} } = $pw if defined $pw;
    my $sp = $o{sentinel_password};
    my $auth = (defined $pw ? "sentinel auth-pass mymaster $pw\n" : '')
        . (defined $sp ? "requirepass $sp\n" : '');
    wait_until(sub { redis_cli($replica->{port}, 'INFO', 'replication')
                         =~ /master_link_status:up/ }, 20)
        or die "the replica did not sync";
    my @sentinels;
    for (1 .. ($o{sentinels} // 3)) {
        my $port = free_port();
        my $dir = tempdir_path() . "/sentinel-$port";
        make_path($dir);
        spew("$dir/sentinel.conf", <<"EOF");
port $port
bind 127.0.0.1
dir $dir
sentinel monitor mymaster 127.0.0.1 $master->{port} 2
sentinel down-after-milliseconds mymaster @{[ $o{down_after} // 1000 ]}
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
$auth
EOF
        $REDIS_AUTH{$port} = $sp if defined $sp;
        my $p = spawn('sentinel', "$dir/sentinel.log", undef,
                      'redis-sentinel', "$dir/sentinel.conf");
        wait_until(sub { port_open($port) }, 10)
            or die "sentinel did not start: " . slurp("$dir/sentinel.log");
        $p->{port} = $port;
        push @sentinels, $p;
    }
    # every sentinel knows the replica and the others
    wait_until(sub {
        for my $s (@sentinels) {
            my $m = redis_cli($s->{port}, 'SENTINEL', 'master', 'mymaster');
            return 0 unless $m =~ /num-slaves\n1\b/
                && $m =~ /num-other-sentinels\n@{[ @sentinels - 1 ]}\b/;
        }
        return 1;
    }, 30) or die "the sentinels did not find each other";
    return { master => $master, replica => $replica,
             sentinels => \@sentinels, name => 'mymaster' };
}

sub start_emulator {
    my (%o) = @_;
    my $port = $o{port} // free_port();
    my $dir = tempdir_path() . "/emulator-$port";
    make_path($dir);
    my @tok;
    if (defined $o{token}) {
        spew("$dir/token", $o{token});
        @tok = ('--token-file', "$dir/token");
    }
    my $p = spawn('emulator', "$dir/emulator.log", undef,
        wrap_cmd(emulator_path(), '--listen', '127.0.0.1', '--port', $port,
                 @tok, @{ $o{args} // [] }));
    wait_until(sub { port_open($port) }, 20)
        or die "emulator did not start: " . slurp("$dir/emulator.log");
    $p->{port} = $port;
    $p->{url} = "http://127.0.0.1:$port";
    $p->{dir} = $dir;
    return $p;
}

sub emulator_stats {
    my ($emu) = @_;
    my $r = http('GET', "$emu->{url}/_emulator/stats");
    return $r->{json};
}

# nginx.conf around an http{} block's content.  %o: port, http (text inside
# http{} after the defaults; "%%PORT%%" is replaced), main (text before
# events{}), error_level.
sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir};
    my $module = module_path();
    my $level = $o{error_level} // 'info';
    my $http = $o{http} // '';
    $http =~ s/%%PORT%%/$o{port}/g;
    $http =~ s/%%DIR%%/$dir/g;
    # under valgrind a worker runs some 20 times slower: a connection to
    # Redis would time out before its handshake (200 ms by default), and
    # the first requests would find no Redis
    $http .= "    smarty_redis_connect_timeout 5s;\n"
        if $ENV{SMARTY_VALGRIND}
           && $http =~ /^\s*smarty_redis(?:_cluster|_sentinel)?\s/m
           && $http !~ /smarty_redis_connect_timeout/;
    my $main = $o{main} // '';
    my $workers = $o{workers} // 1;
    return <<"EOF";
load_module $module;
daemon off;
master_process on;
worker_processes $workers;
error_log $dir/error.log $level;
pid $dir/nginx.pid;
$main
events { worker_connections 1024; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
$http
}
EOF
}

sub nginx_env {
    my %env;
    if ($ENV{SMARTY_ASAN}) {
        my $lib = `gcc -print-file-name=libasan.so`;
        chomp $lib;
        my $ub = `gcc -print-file-name=libubsan.so`;
        chomp $ub;
        $env{LD_PRELOAD} = "$lib $ub";
    }
    return \%env;
}

# Runs `nginx -t` on a config; returns (exit status, output).
sub nginx_test {
    my (%o) = @_;
    my $dir = $o{dir} // tempdir_path() . "/nginx-t-" . int(rand(1e9));
    make_path($dir);
    $o{dir} = $dir;
    $o{port} //= free_port();
    spew("$dir/nginx.conf", nginx_conf(%o));
    my $env = nginx_env();
    local %ENV = (%ENV, %$env);
    my $out = `nginx -p $dir -c $dir/nginx.conf -t 2>&1`;
    return ($? >> 8, $out);
}

sub start_nginx {
    my (%o) = @_;
    my $port = $o{port} // free_port();
    my $dir = $o{dir} // tempdir_path() . "/nginx-$port";
    make_path($dir);
    $o{dir} = $dir;
    $o{port} = $port;
    spew("$dir/nginx.conf", nginx_conf(%o));
    my @cmd = ('nginx', '-p', $dir, '-c', "$dir/nginx.conf");
    if ($ENV{SMARTY_VALGRIND}) {
        # one process, so that valgrind sees the worker
        my $c = slurp("$dir/nginx.conf");
        $c =~ s/master_process on;/master_process off;/;
        spew("$dir/nginx.conf", $c);
        @cmd = wrap_cmd(@cmd);
    }
    my $p = spawn('nginx', "$dir/stderr.log", nginx_env(), @cmd);
    wait_until(sub { port_open($port) }, $ENV{SMARTY_VALGRIND} ? 60 : 10)
        or die "nginx did not start: " . slurp("$dir/stderr.log")
               . slurp("$dir/error.log");
    $p->{port} = $port;
    $p->{url} = "http://127.0.0.1:$port";
    $p->{dir} = $dir;
    return $p;
}

sub nginx_reload {
    my ($ngx) = @_;
    my $env = nginx_env();
    local %ENV = (%ENV, %$env);
    my $out = `nginx -p $ngx->{dir} -c $ngx->{dir}/nginx.conf -s reload 2>&1`;
    return ($? >> 8, $out);
}

sub error_log { my ($ngx) = @_; return slurp("$ngx->{dir}/error.log") }
sub access_log { my ($ngx) = @_; return slurp("$ngx->{dir}/access.log") }

# --- content -----------------------------------------------------------------

# A valid baseline JPEG (8x8, grey), with one COM segment per face annotation
# "face=<id>@l,t,r,b" and pad bytes of filler in further COM segments.
sub jpeg {
    my (%o) = @_;
    my $out = "\xFF\xD8";
    my $com = sub {
        my ($text) = @_;
        return "\xFF\xFE" . pack('n', length($text) + 2) . $text;
    };
    for my $f (@{ $o{faces} // [] }) {
        $out .= $com->("face=$f");
    }
    my $pad = $o{pad} // 0;
    my $seed = $o{seed} // 0;
    my $chunk = 0;
    while ($pad > 0) {
        my $n = $pad > 65000 ? 65000 : $pad;
        # filler that never contains "face=" nor a multipart delimiter
        my $fill = substr(("pad$seed." . $chunk . ".") x (1 + $n / 4), 0, $n);
        $out .= $com->($fill);
        $pad -= $n;
        $chunk++;
    }
    $out .= $com->("seed=$seed") if defined $o{seed};
    # DQT: table 0, all ones
    $out .= "\xFF\xDB" . pack('n', 67) . "\x00" . ("\x01" x 64);
    # SOF0: 8 bits, 8x8, 1 component (id 1, 1x1, table 0)
    $out .= "\xFF\xC0" . pack('n', 11) . "\x08" . pack('nn', 8, 8)
        . "\x01" . "\x01\x11\x00";
    # DHT: DC table 0 and AC table 0, each one 1-bit code for symbol 0
    my $bits = "\x01" . ("\x00" x 15);
    $out .= "\xFF\xC4" . pack('n', 2 + 17 + 1) . "\x00" . $bits . "\x00";
    $out .= "\xFF\xC4" . pack('n', 2 + 17 + 1) . "\x10" . $bits . "\x00";
    # SOS: 1 component, tables 0/0, spectral 0..63, approx 0
    $out .= "\xFF\xDA" . pack('n', 8) . "\x01" . "\x01\x00" . "\x00\x3F\x00";
    # DC diff 0 (code 0), AC EOB (code 0), padded with ones
    $out .= "\x3F";
    $out .= "\xFF\xD9";
    return $out;
}

# parts: [ [name, filename|undef, content-type|undef, data], ... ]
# Returns (body, content-type header value).
sub multipart {
    my (%o) = @_;
    my $b = $o{boundary} // ('smarty' . int(rand(1e12)) . 'x');
    my $body = $o{preamble} // '';
    for my $p (@{ $o{parts} }) {
        my ($name, $fn, $ct, $data) = @$p;
        my $cdh = $o{lower_headers} ? 'content-disposition'
                                    : 'Content-Disposition';
        my $cth = $o{lower_headers} ? 'content-type' : 'Content-Type';
        $body .= "--$b\r\n";
        $body .= qq{$cdh: form-data; name="$name"};
        $body .= qq{; filename="$fn"} if defined $fn;
        $body .= "\r\n";
        $body .= "$cth: $ct\r\n" if defined $ct;
        $body .= "\r\n$data\r\n";
    }
    $body .= "--$b--\r\n" . ($o{epilogue} // '');
    my $ctype = $o{quote_boundary} ? qq{multipart/form-data; boundary="$b"}
                                   : "multipart/form-data; boundary=$b";
    return ($body, $ctype);
}

# A request body from meta and images: images => [ [name, bytes], ... ]
sub api_body {
    my (%o) = @_;
    my @parts;
    push @parts, ['meta', undef, 'application/json',
                  ref $o{meta} ? $JSON->encode($o{meta}) : $o{meta}]
        if defined $o{meta};
    for my $i (@{ $o{images} // [] }) {
        push @parts, [$i->[0], "$i->[0].jpg", 'image/jpeg', $i->[1]];
    }
    return multipart(%o, parts => \@parts);
}

# --- HTTP --------------------------------------------------------------------

sub http {
    my ($method, $url, %o) = @_;
    my $ua = HTTP::Tiny->new(timeout => $o{timeout} // 30, keep_alive => 0);
    my %args;
    $args{headers} = $o{headers} if $o{headers};
    $args{content} = $o{body} if defined $o{body};
    my $r = $ua->request($method, $url, \%args);
    my $res = { status => $r->{status}, headers => $r->{headers},
                content => $r->{content}, reason => $r->{reason} };
    $res->{json} = eval { JSON::PP->new->decode($r->{content}) }
        if defined $r->{content} && length $r->{content};
    return $res;
}

# POST an API call through the gateway: %o: key (Bearer), query, meta,
# images, and anything multipart() takes.
sub call {
    my ($base, $path, %o) = @_;
    my ($body, $ctype) = api_body(%o);
    my %h = ('Content-Type' => $ctype);
    $h{Authorization} = "Bearer $o{key}" if defined $o{key};
    %h = (%h, %{ $o{headers} }) if $o{headers};
    my $url = "$base/api/v1/$path";
    $url .= "?$o{query}" if defined $o{query};
    my $r = http('POST', $url, headers => \%h, body => $body,
                 timeout => $o{timeout});
    $r->{request_body} = $body;
    return $r;
}

# Sends raw bytes on a new connection and reads the whole answer
# (Connection: close expected).  Returns {status, headers, content, json}.
sub raw_request {
    my ($port, $bytes, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10)
        or die "connect: $!";
    binmode $s;
    print $s $bytes;
    shutdown($s, 1) if $o{half_close};
    local $/;
    my $data = <$s> // '';
    close $s;
    my ($head, $content) = split /\r\n\r\n/, $data, 2;
    my @lines = split /\r\n/, $head // '';
    my $sl = shift @lines // '';
    my ($status) = $sl =~ m{^HTTP/\d\.\d (\d+)};
    my %h;
    for (@lines) { my ($k, $v) = split /:\s*/, $_, 2; $h{lc $k} = $v; }
    my $res = { status => $status // 0, headers => \%h, content => $content };
    $res->{json} = eval { JSON::PP->new->decode($content) }
        if defined $content && length $content;
    return $res;
}

# --- clients ------------------------------------------------------------------

# Writes a clients file; entries: [ {name, key, spaces, methods}, ... ]
# (the key is hashed here).  Returns the path.
sub clients_file {
    my ($path, @clients) = @_;
    my @e;
    for my $c (@clients) {
        my %e = %$c;
        $e{key_sha256} = sha256_hex(delete $e{key}) if exists $e{key};
        $e{spaces} //= '*';
        $e{methods} //= '*';
        push @e, \%e;
    }
    spew($path, $JSON->encode({ clients => \@e }));
    return $path;
}

# --- the whole stack -----------------------------------------------------------

our @FRIENDS = qw(rachel ross monica chandler joey phoebe);

# The walkthrough's photos: six people, and each of them alone.
sub group_photo {
    my $i = 0;
    return jpeg(faces => [ map { my $l = 10 + 60 * $i++;
                                 "$_\@$l,20," . ($l + 50) . ",80" } @FRIENDS ]);
}

sub alone_photo {
    my ($who, %o) = @_;
    return jpeg(faces => ["$who\@30,30,130,150"], %o);
}

sub random_hex {
    my ($n) = @_;
    return join '', map { sprintf '%02x', int rand 256 } 1 .. $n;
}

# The http{} content of a gateway in front of the emulator.  %o: emu_port,
# token_file, clients_file, read_timeout, body_buffer, gateway (extra
# directives in the API location), server (extra server directives), http,
# listen (parameters of the listen directive: "rcvbuf=1m").
sub gateway_http_conf {
    my (%o) = @_;
    my $rt = $o{read_timeout} // '10s';
    my $bb = $o{body_buffer} // '1m';
    my $gw = $o{gateway} // '';
    my $srv = $o{server} // '';
    my $http = $o{http} // '';
    my $upstream = $o{upstream_server} // "127.0.0.1:$o{emu_port}";
    my $token = $o{token_directive}
                // "smarty_upstream_token_file $o{token_file};";
    my $uplog = $o{upstream_log} // '';
    my $listen = $o{listen} ? " $o{listen}" : '';
    for ($gw, $srv, $http) {
        s/%%TOKEN_FILE%%/$o{token_file}/g;
        s/%%CLIENTS_FILE%%/$o{clients_file}/g;
    }
    return <<"EOF";
    log_format smarty '\$remote_addr "\$request_method \$uri?\$smarty_redacted_args" '
                      '\$status client=\$smarty_client method=\$smarty_method '
                      'space=\$smarty_space images=\$smarty_images '
                      'error=\$smarty_error upstream=\$smarty_upstream_status '
                      'sha256=\$smarty_image_sha256';
    upstream smarty_api {
        server $upstream;
        keepalive 8;
    }
$http
    server {
        listen 127.0.0.1:%%PORT%%$listen;
        access_log %%DIR%%/gateway.log smarty;
        client_max_body_size 64m;
        client_body_buffer_size $bb;

        # nginx's own refusals, in the API's envelope
        error_page 400 /_smarty_error/bad_request;
        error_page 494 /_smarty_error/headers_too_large;
        error_page 404 /_smarty_error/unknown_endpoint;
        error_page 405 /_smarty_error/method_not_allowed;
        error_page 413 /_smarty_error/body_too_large;
        error_page 414 /_smarty_error/uri_too_long;
        error_page 501 /_smarty_error/not_implemented;

        location /api/v1/ {
            smarty_gateway on;
            smarty_upstream /_smarty_upstream/;
            $token
            smarty_clients_file $o{clients_file};
$gw
        }

        location /_smarty_upstream/ {
            internal;
            proxy_pass http://smarty_api/api/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 2s;
            proxy_read_timeout $rt;
            proxy_ignore_client_abort on;
            subrequest_output_buffer_size 1m;
$uplog
        }

        location /_smarty_error/ {
            internal;
            # a body over the limit comes here: not measured again
            client_max_body_size 0;
            smarty_error;
        }

        location / {
            smarty_error unknown_endpoint;
        }
$srv
    }
EOF
}

# Emulator + nginx with the gateway.  %o: token, emu_args, emu (an emulator
# already started), clients (list of {name, key, spaces, methods}), and
# gateway_http_conf()'s options.  Returns {emu, ngx, url, token, keys, dir}.
sub start_gateway {
    my (%o) = @_;
    return external_gateway(%o) if $ENV{SMARTY_GATEWAY_URL};
    my $dir = tempdir_path() . '/gw-' . random_hex(4);
    make_path($dir);
    my $token = $o{token} // 'upstream-' . random_hex(16);
    spew("$dir/upstream.token", "$token\n");
    chmod 0600, "$dir/upstream.token";

    my ($emu, $oauth);
    if ($o{oauth}) {
        # the upstream's token from the emulator's OAuth endpoint, no
        # service token: %{$o{oauth}}: client_id, client_secret,
        # gateway_secret (what the gateway is given, if not the same),
        # params (of smarty_upstream_oauth), emu_args
        my %a = %{ $o{oauth} };
        $oauth = { id => $a{client_id} // 'gw-' . random_hex(4),
                   secret => $a{client_secret}
                             // 'secret-' . random_hex(16) };
        spew("$dir/oauth.id", "$oauth->{id}\n");
        spew("$dir/oauth.secret",
             ($a{gateway_secret} // $oauth->{secret}) . "\n");
        chmod 0600, "$dir/oauth.id", "$dir/oauth.secret";
        $emu = $o{emu} // start_emulator(args => [
            '--client-id', $oauth->{id}, '--client-secret', $oauth->{secret},
            @{ $a{emu_args} // [] }, @{ $o{emu_args} // [] } ]);
        my $params = $a{params} // '';
        $o{token_directive} = "smarty_upstream_oauth "
            . "$emu->{url}/auth/oauth/v1/token "
            . "client_id_file=$dir/oauth.id "
            . "client_secret_file=$dir/oauth.secret $params;";
    } else {
        $emu = $o{emu} // start_emulator(token => $token,
                                         args => $o{emu_args} // []);
    }
    my @clients = @{ $o{clients} // [
        { name => 'demo', spaces => '*', methods => '*' },
        { name => 'reader', spaces => ['1'],
          methods => ['persons/recognize'] },
        { name => 'space2', spaces => ['2'], methods => '*' },
    ] };
    my %keys;
    for my $c (@clients) {
        $c->{key} //= "sgw_$c->{name}_" . random_hex(16);
        $keys{$c->{name}} = $c->{key};
    }
    clients_file("$dir/clients.json", @clients);

    my $ngx = start_nginx(%o, http => gateway_http_conf(
        %o, emu_port => $emu->{port},
        token_file => "$dir/upstream.token",
        clients_file => "$dir/clients.json"));
    return { emu => $emu, ngx => $ngx, url => $ngx->{url}, token => $token,
             keys => \%keys, dir => $dir, clients => \@clients,
             oauth => $oauth };
}

# A gateway already running, which start_gateway() returns instead of
# starting one when SMARTY_GATEWAY_URL is set: the installed package's, in
# front of an emulator (scripts/deb-test.sh runs t/30-walkthrough.t so).
# SMARTY_EMULATOR_URL: its upstream; SMARTY_UPSTREAM_TOKEN: the token it
# injects, when it has a token file (not with OAuth); SMARTY_GATEWAY_KEY: a
# key with every space and method ("demo").  Only for tests that take the
# default gateway.
sub external_gateway {
    my (%o) = @_;
    die "SMARTY_GATEWAY_URL: this test configures its own gateway\n" if %o;
    for (qw(SMARTY_EMULATOR_URL SMARTY_GATEWAY_KEY)) {
        die "SMARTY_GATEWAY_URL needs $_ too\n" unless length($ENV{$_} // '');
    }
    return { url => $ENV{SMARTY_GATEWAY_URL},
             emu => { url => $ENV{SMARTY_EMULATOR_URL} },
             token => $ENV{SMARTY_UPSTREAM_TOKEN},
             keys => { demo => $ENV{SMARTY_GATEWAY_KEY} } };
}

# An error answer of the gateway: the HTTP status, the same status in the
# API's envelope, the stable code, a sentence, JSON, and no nginx page.
sub is_error {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::subtest($name => sub {
        Test::More::is($r->{status}, $status, "HTTP $status");
        Test::More::is($r->{json}{status}, $status, 'envelope status')
            or Test::More::diag($r->{content});
        Test::More::is($r->{json}{body}{code}, $code, "code $code");
        Test::More::ok(length($r->{json}{body}{error} // ''), 'a sentence');
        Test::More::is($r->{headers}{'content-type'}, 'application/json',
                       'JSON');
        Test::More::unlike($r->{content} // '', qr/nginx|<html/i,
                           'no nginx error page');
    });
}

# The image objects of an answer, by name.
sub objects_by_name {
    my ($res) = @_;
    my %o;
    for my $x (@{ $res->{json}{body}{objects} // [] }) { $o{$x->{name}} = $x }
    return \%o;
}

sub tags {
    my ($obj) = @_;
    return [ map { $_->{tag} } @{ $obj->{persons} // [] } ];
}

1;
