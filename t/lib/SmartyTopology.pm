package SmartyTopology;

# What t/51-redis-cluster.t and t/52-redis-sentinel.t check on their
# topology, with two gateway instances sharing it: the walkthrough, the
# cache (hits across instances, invalidation by each cause), the quotas
# (exact across both instances), traffic in the background while servers
# are moved or killed, and a bump a failover lost.  Core Perl only.

use strict;
use warnings;

use Test::More ();
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time);

use SmartyTest;

my $FALSE = JSON::PP::false;
my $TRUE = JSON::PP::true;

sub cs { my ($r) = @_; return $r->{headers}{'cache-status'} // '' }

sub rec {
    my ($url, $key, $space, $imgs, %o) = @_;
    my $extra = delete $o{meta} // {};
    return SmartyTest::call($url, 'persons/recognize', key => $key,
        meta => { space => "$space",
                  images => [ map { { name => $_->[0] } } @$imgs ],
                  %$extra },
        images => $imgs, %o);
}

# A hit of what an earlier request stored: the store follows that one's
# answer, so a request right behind it may wait for it ("collapsed")
sub is_hit {
    my ($cs, $name) = @_;
    return Test::More::like($cs, qr/^smarty-gateway; hit(?:; collapsed)?$/,
                            $name);
}

sub tags_of {
    my ($r, $name) = @_;
    return SmartyTest::tags(SmartyTest::objects_by_name($r)->{$name // 'f'});
}

# Two gateways on one emulator, one token, the same clients: the demo
# client (everything) and "metered" (6 requests a day in any space, from
# the clients file).  $redis: the http{} lines of the topology.
sub two_gateways {
    my ($redis) = @_;
    my $http = $redis . "    smarty_redis_timeout 300ms;\n"
        . "    smarty_redis_connect_timeout 500ms;\n"
        . "    smarty_redis_breaker failures=3 cooldown=1s;\n";
    my $gw = "smarty_cache on; smarty_cache_wait 2s;";
    my @clients = (
        { name => 'demo', spaces => '*', methods => '*' },
        { name => 'metered', spaces => '*', methods => '*',
          quota => { '*' => '6r/d' } },
    );
    my $a = SmartyTest::start_gateway(http => $http, gateway => $gw,
                                      clients => \@clients,
                                      emu_args => [ '--per-image-ms', '0' ]);
    my @again = map { { %$_, key => $a->{keys}{ $_->{name} } } } @clients;
    my $b = SmartyTest::start_gateway(http => $http, gateway => $gw,
                                      emu => $a->{emu}, token => $a->{token},
                                      clients => \@again);
    return ($a, $b);
}

# The walkthrough of upstream-api.md, its steps alternating between the two
# instances: a change made through one is seen through the other.
sub walkthrough {
    my ($A, $B) = @_;
    my $key = $A->{keys}{demo};
    my $group = SmartyTest::group_photo();
    my $rachel = SmartyTest::alone_photo('rachel');

    my $r = rec($A->{url}, $key, 1, [ [ 'f', $group ] ]);
    Test::More::is($r->{status}, 200, 'walkthrough 1: 200 (A)');
    Test::More::is_deeply(tags_of($r), [ ('undefined') x 6 ],
                          'walkthrough 1: six undefined faces');
    is_hit(cs(rec($B->{url}, $key, 1, [ [ 'g', $group ] ])),
           'walkthrough 1: B hits what A '
                   . 'stored');

    $r = SmartyTest::call($B->{url}, 'persons/set', key => $key,
        meta => { space => '1',
                  images => [ { name => 'f', person_id => 1 } ] },
        images => [ [ 'f', $rachel ] ]);
    Test::More::is($r->{status}, 200, 'walkthrough 2: set through B');

    $r = rec($A->{url}, $key, 1, [ [ 'f', $group ] ]);
    Test::More::like(cs($r), qr/fwd=miss/, 'walkthrough 3: A misses: B\'s '
                     . 'set invalidated the space');
    Test::More::is_deeply(tags_of($r), [ 'person1', ('undefined') x 5 ],
                          'walkthrough 3: Rachel is person1');

    $r = rec($B->{url}, $key, 3, [ [ 'f', $group ] ],
             meta => { create_new => $TRUE });
    Test::More::is_deeply([ sort @{ tags_of($r) } ],
                          [ map { "person$_" } 1 .. 6 ],
                          'walkthrough 4: create_new makes six persons (B)');

    $r = SmartyTest::call($A->{url}, 'persons/delete', key => $key,
        meta => { space => '1',
                  images => [ { name => 'd', person_id => 1 } ] });
    Test::More::is($r->{status}, 200, 'walkthrough 6: delete through A');
    Test::More::is_deeply(tags_of(rec($B->{url}, $key, 1,
                                      [ [ 'f', $group ] ])),
                          [ ('undefined') x 6 ],
                          'walkthrough 6: B sees Rachel undefined again');

    $r = SmartyTest::call($B->{url}, 'persons/truncate', key => $key,
                          meta => { space => '3' });
    Test::More::is($r->{status}, 200, 'walkthrough 6: truncate through B');
    Test::More::is_deeply(tags_of(rec($A->{url}, $key, 3,
                                      [ [ 'f', $group ] ])),
                          [ ('undefined') x 6 ],
                          'walkthrough 6: after truncate A knows nobody');
}

# Invalidation by each cause, made through one instance, seen by the other.
sub invalidation {
    my ($A, $B, $space) = @_;
    my $key = $A->{keys}{demo};
    my $emu = $A->{emu};
    my $photo = SmartyTest::group_photo();
    my @causes = (
        [ 'set', sub {
            SmartyTest::call($_[0], 'persons/set', key => $key,
                meta => { space => $space,
                          images => [ { name => 'f', person_id => 2 } ] },
                images => [ [ 'f', SmartyTest::alone_photo('ross') ] ]);
        } ],
        [ 'delete', sub {
            SmartyTest::call($_[0], 'persons/delete', key => $key,
                meta => { space => $space,
                          images => [ { name => 'd', person_id => 2 } ] });
        } ],
        [ 'create_new', sub {
            rec($_[0], $key, $space,
                [ [ 'n', SmartyTest::alone_photo('new' . rand) ] ],
                meta => { create_new => $TRUE });
        } ],
        [ 'truncate', sub {
            SmartyTest::call($_[0], 'persons/truncate', key => $key,
                             meta => { space => $space });
        } ],
        [ 'aliases_changed', sub {
            SmartyTest::http('POST',
                             "$emu->{url}/_emulator/faults?aliases_changed=1");
            rec($_[0], $key, $space,
                [ [ 'q', SmartyTest::alone_photo('monica') ] ]);
            SmartyTest::http('POST',
                             "$emu->{url}/_emulator/faults?aliases_changed=0");
        } ],
    );
    my $i = 0;
    for my $c (@causes) {
        my ($from, $to) = $i++ % 2 ? ($A, $B) : ($B, $A);
        rec($to->{url}, $key, $space, [ [ 'f', $photo ] ]);
        is_hit(cs(rec($to->{url}, $key, $space, [ [ 'f', $photo ] ])),
               "$c->[0]: cached before");
        $c->[1]->($from->{url});
        Test::More::like(cs(rec($to->{url}, $key, $space,
                                [ [ 'f', $photo ] ])),
                         qr/fwd=miss/, "$c->[0] through one instance: the "
                         . 'other misses');
    }
}

# The metered client's "6r/d" in a space, spent from both instances at
# once: exactly 6 admitted, every other request 429.  Returns the statuses.
sub quota_exact {
    my ($A, $B, $space, $n, $label) = @_;
    my $key = $A->{keys}{metered};
    my @kids;
    my $dir = SmartyTest::tempdir();
    for my $i (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $g = $i % 2 ? $A : $B;
            my $r = rec($g->{url}, $key, $space,
                        [ [ 'f', SmartyTest::alone_photo("m$i." . rand) ] ]);
            SmartyTest::spew("$dir/q-$space-$i", $r->{status});
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    waitpid($_, 0) for @kids;
    my %n;
    $n{ SmartyTest::slurp("$dir/q-$space-$_") }++ for 1 .. $n;
    return \%n;
}

# Traffic in the background: recognizes of a few photos in every space,
# alternating the instances, until stop_traffic(); every status is kept.
sub start_traffic {
    my ($A, $B, @spaces) = @_;
    my $dir = SmartyTest::tempdir();
    my $file = "$dir/traffic-" . int(rand(1e9));
    my $stop = "$file.stop";
    my $key = $A->{keys}{demo};
    my @photos = map { SmartyTest::alone_photo("traffic$_") } 1 .. 4;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open my $out, '>>', $file or die;
        $out->autoflush(1);
        my $deadline = time + 90;
        my $i = 0;
        while (!-e $stop && time < $deadline) {
            my $g = $i % 2 ? $A : $B;
            my $sp = $spaces[$i % @spaces];
            my $r = rec($g->{url}, $key, $sp,
                        [ [ 'f', $photos[$i % @photos] ] ], timeout => 10);
            print $out "$r->{status} $sp " . cs($r) . "\n";
            $i++;
        }
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file, stop => $stop };
}

sub traffic_lines {
    my ($t) = @_;
    return grep { length } split /\n/, SmartyTest::slurp($t->{file});
}

sub stop_traffic {
    my ($t) = @_;
    SmartyTest::spew($t->{stop}, '');
    waitpid($t->{pid}, 0);
    return [ traffic_lines($t) ];
}

# Waits until the traffic has made $n more requests (a deadline of 30 s).
sub traffic_goes_on {
    my ($t, $n) = @_;
    my $from = () = traffic_lines($t);
    return SmartyTest::wait_until(sub {
        my $now = () = traffic_lines($t);
        return $now >= $from + $n;
    }, 30);
}

sub summary {
    my ($lines) = @_;
    my %s;
    $s{ (split / /, $_)[0] }++ for @$lines;
    return join ', ', map { "$s{$_} x $_" } sort keys %s;
}

# A set the upstream applied but whose bump the master took without
# passing it on (a script with replication off: what a master that dies
# right after an INCR leaves behind).  The set goes to the emulator
# directly, the bump to the master at $port.  Returns the generation the
# master now holds.
# The sentinels' master killed under traffic through $A and $B (started
# from SmartyTest::start_redis_sentinels as $st), $before seconds in: the
# sentinels promote the replica, both gateways follow it without a reload,
# and the traffic goes on $after seconds more.  Returns the traffic's
# lines; tests that none failed.
sub sentinel_failover {
    my ($st, $A, $B, $before, $after) = @_;
    my $rport = $st->{replica}{port};
    my $t = start_traffic($A, $B, 0 .. 9);
    traffic_goes_on($t, $before);
    kill 'KILL', $st->{master}{pid};
    waitpid($st->{master}{pid}, 0);
    $st->{master}{pid} = 0;
    Test::More::ok(SmartyTest::wait_until(sub {
           SmartyTest::redis_cli($st->{sentinels}[0]{port}, 'SENTINEL',
                                 'get-master-addr-by-name', 'mymaster')
               =~ /\b$rport$/
       }, 60), 'the sentinels promoted the replica');
    my $new = qr/the master "mymaster" is 127\.0\.0\.1:$rport/;
    Test::More::ok(SmartyTest::wait_until(sub {
           SmartyTest::error_log($A->{ngx}) =~ $new
           && SmartyTest::error_log($B->{ngx}) =~ $new
       }, 30), 'both gateways follow it, without a reload');
    Test::More::ok(traffic_goes_on($t, $after), 'the traffic goes on');
    my $lines = stop_traffic($t);
    my @bad = grep { !/^200 / } @$lines;
    Test::More::is(scalar @bad, 0, 'no request failed while the master died '
                   . 'and the sentinels promoted its replica: '
                   . summary($lines))
        or Test::More::diag(join "\n", grep { defined } @bad[0 .. 4]);
    return $lines;
}

# Slot $slot moved key by key from master $src to master $dst of a cluster
# whose masters' ports are @$masters, the way redis-cli --cluster reshard
# does it (IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE on every master),
# $pace seconds between keys.  Returns how many keys moved.
sub move_slot {
    my ($masters, $slot, $src, $dst, $pace) = @_;
    my $src_id = SmartyTest::redis_cli($src, 'CLUSTER', 'MYID');
    my $dst_id = SmartyTest::redis_cli($dst, 'CLUSTER', 'MYID');
    SmartyTest::redis_cli($dst, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING',
                          $src_id);
    SmartyTest::redis_cli($src, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING',
                          $dst_id);
    my $moved = 0;
    while (1) {
        my ($k) = split /\n/, SmartyTest::redis_cli($src, 'CLUSTER',
                                                    'GETKEYSINSLOT', $slot, 1);
        last unless defined $k && length $k;
        SmartyTest::redis_cli($src, 'MIGRATE', '127.0.0.1', $dst, '', 0, 5000,
                              'KEYS', $k);
        $moved++;
        Time::HiRes::sleep($pace) if $pace;
    }
    SmartyTest::redis_cli($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $dst_id)
        for @$masters;
    return $moved;
}

# Whether $n workers listen to the sentinels of $st for +switch-master,
# within 10 s.
sub switch_master_subscribed {
    my ($st, $n) = @_;
    return SmartyTest::wait_until(sub {
        my $subs = 0;
        for my $x (@{ $st->{sentinels} }) {
            $subs += () = SmartyTest::redis_cli($x->{port}, 'CLIENT', 'LIST')
                          =~ /\bsub=1\b/g;
        }
        $subs >= $n;
    }, 10);
}

# After a failover that lost the bump of a set in space $s (SmartyTopology::
# lost_bump), $group through both instances: 200, not the entry stored
# before the failover, and the set's answer; $before: the tags before it.
sub never_stale {
    my ($A, $B, $key, $s, $group, $before) = @_;
    my @tags;
    for my $g ($A, $B) {
        my $r = rec($g->{url}, $key, $s, [ [ 'f', $group ] ]);
        Test::More::is($r->{status}, 200, "space $s after the failover: 200");
        Test::More::unlike(cs($r), qr/^smarty-gateway; hit$/,
                           '... not the entry stored before the failover')
            if !@tags;
        push @tags, tags_of($r);
    }
    Test::More::isnt($before->[0], 'person4',
                     'before the set, Rachel was not person4');
    Test::More::is($tags[0][0], 'person4',
                   'never stale: the answer knows the set whose bump was lost');
    Test::More::is_deeply($tags[1], $tags[0], '... through both instances');
}

sub lost_bump {
    my ($gw, $port, $space, $person, $photo) = @_;
    my $r = SmartyTest::call($gw->{emu}{url}, 'persons/set',
        query => "oauth_token=$gw->{token}&oauth_provider=mcs",
        meta => { space => "$space",
                  images => [ { name => 'f', person_id => $person } ] },
        images => [ [ 'f', $photo ] ]);
    die "the emulator refused the set: $r->{content}" unless $r->{status} == 200;
    return SmartyTest::redis_cli($port, 'EVAL',
        "redis.set_repl(redis.REPL_NONE) return redis.call('INCR', KEYS[1])",
        1, "smarty:{s$space}:gen");
}

1;
