#!/usr/bin/env perl
# Renders a copy of the Debian example site (conf/debian/sites-available/
# smarty-gateway, or the installed /etc/nginx/sites-available/smarty-gateway)
# for a test: every option replaces one line or path of the site, and a
# replacement that does not match is an error, so that a site which drifted
# from what the tests expect fails them instead of passing untested.
#
#   render-site.pl [options] SITE > COPY
#     --listen ADDR:PORT     the server's listen address (127.0.0.1:8080)
#     --upstream HOST:PORT   the upstream server (smarty.mail.ru:443)
#     --plain-http           proxy_pass over http:// (the emulator), the TLS
#                            lines kept (nginx ignores them then)
#     --redis HOST:PORT      smarty_redis (127.0.0.1:6379)
#     --token-url URL        smarty_upstream_oauth's token endpoint
#                            (https://mcs.mail.ru/auth/oauth/v1/token)
#     --etc DIR              instead of /etc/smarty (OAuth client, clients)
#     --logs DIR             instead of /var/log/nginx
use strict;
use warnings;
use Getopt::Long;

my %o;
GetOptions(\%o, 'listen=s', 'upstream=s', 'plain-http', 'redis=s',
           'token-url=s', 'etc=s', 'logs=s') && @ARGV == 1
    or die "usage: $0 [--listen A:P] [--upstream H:P] [--plain-http] "
         . "[--redis H:P] [--token-url URL] [--etc DIR] [--logs DIR] SITE\n";

open my $fh, '<', $ARGV[0] or die "$ARGV[0]: $!\n";
my $site = do { local $/; <$fh> };
close $fh;

# replaces $re in $site exactly $n times (at least once when $n is undef)
sub subst {
    my ($what, $re, $to, $n) = @_;
    my $count = () = $site =~ /$re/g;
    die "render-site: $what: expected " . ($n // 'at least 1')
        . " match(es) of $re, found $count\n"
        if $count == 0 || (defined $n && $count != $n);
    $site =~ s/$re/$to/g;
}

subst('listen', qr/^\s*\Klisten\s+127\.0\.0\.1:8080;/m,
      "listen $o{listen};", 1)
    if defined $o{listen};
subst('upstream', qr/^\s*\Kserver\s+smarty\.mail\.ru:443;/m,
      "server $o{upstream};", 1)
    if defined $o{upstream};
subst('proxy_pass', qr{proxy_pass https://smarty_api/},
      'proxy_pass http://smarty_api/', 1)
    if $o{'plain-http'};
subst('smarty_redis', qr/^\s*\Ksmarty_redis\s+127\.0\.0\.1:6379;/m,
      "smarty_redis $o{redis};", 1)
    if defined $o{redis};
subst('smarty_upstream_oauth',
      qr{^\s*smarty_upstream_oauth\s+\Khttps://mcs\.mail\.ru/auth/oauth/v1/token(?=\s)}m,
      $o{'token-url'}, 1)
    if defined $o{'token-url'};
subst('/etc/smarty', qr{/etc/smarty/(?=\w)}, "$o{etc}/")
    if defined $o{etc};
subst('/var/log/nginx', qr{/var/log/nginx/(?=\w)}, "$o{logs}/")
    if defined $o{logs};

print $site;
