package Chromium;

# Headless Chromium (Debian's chromium) driven over the DevTools protocol
# on a pipe (--remote-debugging-pipe: commands on fd 3, answers and events
# on fd 4, each a JSON text ended by a NUL), so that a test needs neither
# a WebSocket client nor anything from npm.  Core Perl only.
#
#   my $b = Chromium->start(dir => $tmp, width => 1280, height => 1800);
#   $b->open($url);                    # a page, its console and errors
#   my $v = $b->eval('document.title');
#   $b->screenshot("$tmp/page.png");
#   my @e = $b->errors;                # console errors, exceptions, failed
#                                      # loads
#   $b->stop;

use strict;
use warnings;

use Fcntl qw(F_DUPFD);
use File::Path ();
use IO::Handle;
use IO::Select;
use JSON::PP ();
use MIME::Base64 qw(decode_base64);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->utf8->canonical(1);

sub binary {
    for my $b (qw(chromium chromium-browser)) {
        for my $d (split /:/, $ENV{PATH}) {
            return "$d/$b" if -x "$d/$b";
        }
    }
    return undef;
}

sub start {
    my ($class, %o) = @_;
    my $bin = binary() or die "no chromium\n";
    File::Path::make_path($o{dir});
    my ($w, $h) = ($o{width} // 1280, $o{height} // 1800);

    pipe(my $cmd_r, my $cmd_w) or die "pipe: $!";
    pipe(my $ev_r, my $ev_w) or die "pipe: $!";

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$o{dir}/chromium.log";
        open STDERR, '>&', \*STDOUT;
        # fd 3: its commands, fd 4: its answers (by way of fds above 9,
        # so that neither pipe end is overwritten before it is moved)
        my $c = fcntl($cmd_r, F_DUPFD, 10) or die "fcntl: $!";
        my $e = fcntl($ev_w, F_DUPFD, 10) or die "fcntl: $!";
        POSIX::dup2($c, 3) or die "dup2: $!";
        POSIX::dup2($e, 4) or die "dup2: $!";
        exec $bin, '--headless=new', '--no-sandbox', '--disable-gpu',
            '--no-first-run', '--no-default-browser-check',
            '--disable-extensions', '--disable-background-networking',
            '--disable-component-update', '--disable-sync',
            '--remote-debugging-pipe', "--user-data-dir=$o{dir}/profile",
            "--window-size=$w,$h", 'about:blank'
            or die "exec $bin: $!";
    }
    close $cmd_r;
    close $ev_w;
    $cmd_w->autoflush(1);

    my $self = bless { pid => $pid, w => $cmd_w, r => $ev_r, buf => '',
                       id => 0, events => [], errors => [],
                       width => $w, height => $h }, $class;

    # a page of its own, attached on this pipe
    my $t = $self->call('Target.createTarget', { url => 'about:blank' });
    my $a = $self->call('Target.attachToTarget',
                        { targetId => $t->{targetId}, flatten => JSON::PP::true });
    $self->{session} = $a->{sessionId};
    $self->call($_, {}, 1) for qw(Page.enable Runtime.enable Log.enable);
    $self->call('Emulation.setDeviceMetricsOverride',
                { width => $w, height => $h, deviceScaleFactor => 1,
                  mobile => JSON::PP::false }, 1);
    return $self;
}

# sends a command (to the page's session when $page) and waits for its
# answer, collecting the events that come meanwhile
sub call {
    my ($self, $method, $params, $page, $timeout) = @_;
    my $id = ++$self->{id};
    my %m = (id => $id, method => $method, params => $params // {});
    $m{sessionId} = $self->{session} if $page;
    syswrite($self->{w}, $JSON->encode(\%m) . "\0") or die "write: $!";
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        for my $msg ($self->read(0.2)) {
            next unless defined $msg->{id} && $msg->{id} == $id;
            die "$method: $msg->{error}{message}\n" if $msg->{error};
            return $msg->{result};
        }
    }
    die "$method: no answer\n";
}

# the messages that arrive within $wait seconds; events are kept
sub read {
    my ($self, $wait) = @_;
    my @out;
    my $sel = IO::Select->new($self->{r});
    if ($sel->can_read($wait)) {
        my $n = sysread($self->{r}, my $chunk, 1 << 20);
        die "chromium is gone\n" unless $n;
        $self->{buf} .= $chunk;
    }
    while ((my $i = index($self->{buf}, "\0")) >= 0) {
        my $text = substr($self->{buf}, 0, $i);
        substr($self->{buf}, 0, $i + 1) = '';
        my $msg = eval { $JSON->decode($text) } or next;
        push @out, $msg;
        $self->event($msg) if $msg->{method};
    }
    return @out;
}

sub event {
    my ($self, $msg) = @_;
    my $p = $msg->{params} // {};
    my $m = $msg->{method};
    if ($m eq 'Runtime.exceptionThrown') {
        my $d = $p->{exceptionDetails} // {};
        push @{ $self->{errors} }, 'exception: '
            . ($d->{exception}{description} // $d->{text} // '?');
    } elsif ($m eq 'Runtime.consoleAPICalled'
             && ($p->{type} // '') =~ /^(error|assert)$/) {
        push @{ $self->{errors} }, "console.$p->{type}: "
            . join(' ', map { $_->{value} // $_->{description} // '' }
                        @{ $p->{args} // [] });
    } elsif ($m eq 'Log.entryAdded'
             && ($p->{entry}{level} // '') eq 'error') {
        push @{ $self->{errors} }, "log: $p->{entry}{text}"
            . ($p->{entry}{url} ? " ($p->{entry}{url})" : '');
    } elsif ($m eq 'Page.loadEventFired') {
        $self->{loaded} = 1;
    }
    push @{ $self->{events} }, $msg;
}

sub open {
    my ($self, $url) = @_;
    $self->{loaded} = 0;
    $self->call('Page.navigate', { url => $url }, 1);
    my $deadline = time + 30;
    $self->read(0.2) while !$self->{loaded} && time < $deadline;
    die "$url: no load event\n" unless $self->{loaded};
}

# the value of a JavaScript expression (JSON-able)
sub eval {
    my ($self, $expr) = @_;
    my $r = $self->call('Runtime.evaluate',
                        { expression => $expr,
                          returnByValue => JSON::PP::true }, 1);
    die "eval: $r->{exceptionDetails}{text}\n" if $r->{exceptionDetails};
    return $r->{result}{value};
}

# lets the page run for $secs seconds, collecting its events
sub pump {
    my ($self, $secs) = @_;
    my $deadline = time + $secs;
    $self->read(0.1) while time < $deadline;
}

sub screenshot {
    my ($self, $file) = @_;
    my $r = $self->call('Page.captureScreenshot',
                        { format => 'png', captureBeyondViewport => JSON::PP::true }, 1);
    CORE::open(my $fh, '>:raw', $file) or die "$file: $!";
    print $fh decode_base64($r->{data});
    close $fh;
}

sub errors { return @{ $_[0]{errors} } }

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    eval { $self->call('Browser.close', {}, 0, 5) };
    my $deadline = time + 10;
    while (time < $deadline) {
        last if waitpid($self->{pid}, WNOHANG) != 0;
        Time::HiRes::sleep(0.05);
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
    }
    $self->{pid} = 0;
}

sub DESTROY { $_[0]->stop }

1;
