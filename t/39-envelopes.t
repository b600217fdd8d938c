# Every answer a client can get from the gateway's server is the API's
# envelope with a stable code, nginx's own refusals included (the example
# configuration's error_page lines and "smarty_error;"), never an HTML page;
# and a refused request line is not a 500.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest qw(is_error);

my $gw = SmartyTest::start_gateway(error_level => 'notice',
    # the clients file where the error location sees it too, as in the
    # example configuration: nginx's refusals name their client
    server => "        client_body_timeout 1s;\n"
            . "        smarty_clients_file %%CLIENTS_FILE%%;\n");
my $port = $gw->{ngx}{port};
my $key = $gw->{keys}{demo};

sub raw {
    my ($bytes, %o) = @_;
    return SmartyTest::raw_request($port, $bytes, %o);
}

my $api = 'POST /api/v1/persons/recognize';
my $close = "Connection: close\r\n";

my @cases = (
    [ 'a Content-Length that is no number',
      "$api HTTP/1.1\r\nHost: gw\r\nContent-Length: 12x\r\n$close\r\n",
      400, 'bad_request' ],
    [ 'Content-Length and Transfer-Encoding at once',
      "$api HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n"
      . "Transfer-Encoding: chunked\r\n$close\r\n0\r\n\r\n",
      400, 'bad_request' ],
    [ 'Transfer-Encoding: gzip, chunked',
      "$api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n"
      . "$close\r\n", 501, 'not_implemented' ],
    [ 'a bad chunked body',
      "$api?oauth_token=$key HTTP/1.1\r\nHost: gw\r\n"
      . "Content-Type: multipart/form-data; boundary=b\r\n"
      . "Transfer-Encoding: chunked\r\n$close\r\nzz\r\nxx\r\n0\r\n\r\n",
      400, 'bad_request' ],
    [ 'no Host', "$api HTTP/1.1\r\n$close\r\n", 400, 'bad_request' ],
    [ 'two Hosts', "$api HTTP/1.1\r\nHost: a\r\nHost: b\r\n$close\r\n",
      400, 'bad_request' ],
    [ 'a header over the buffer',
      "$api HTTP/1.1\r\nHost: gw\r\nX-Pad: " . ('p' x 9000) . "\r\n$close\r\n",
      400, 'headers_too_large' ],
    [ 'a URI over the limit',
      "$api?p=" . ('u' x 9000) . " HTTP/1.1\r\nHost: gw\r\n$close\r\n",
      414, 'uri_too_long' ],
    [ '%00 in the path',
      "POST /api/v1/%00?oauth_token=$key HTTP/1.1\r\nHost: gw\r\n$close\r\n",
      400, 'bad_request' ],
    [ 'a bad method name',
      "P\x01ST /api/v1/persons/recognize HTTP/1.1\r\nHost: gw\r\n$close\r\n",
      400, 'bad_request' ],
    [ 'TRACE', "TRACE /api/v1/persons/recognize HTTP/1.1\r\nHost: gw\r\n$close\r\n",
      405, 'method_not_allowed' ],
    [ 'the internal upstream location',
      "POST /_smarty_upstream/persons/recognize HTTP/1.1\r\nHost: gw\r\n"
      . "Content-Length: 0\r\n$close\r\n", 404, 'unknown_endpoint' ],
    [ 'the internal error location',
      "GET /_smarty_error/bad_request HTTP/1.1\r\nHost: gw\r\n$close\r\n",
      404, 'unknown_endpoint' ],
    [ 'a body over client_max_body_size',
      "$api?oauth_token=$key HTTP/1.1\r\nHost: gw\r\n"
      . "Content-Type: multipart/form-data; boundary=b\r\n"
      . "Content-Length: " . (65 * 1024 * 1024) . "\r\n$close\r\n",
      413, 'body_too_large' ],
);

for my $c (@cases) {
    my ($what, $bytes, $status, $code) = @$c;
    my $r = raw($bytes, half_close => 1);
    is_error($r, $status, $code, $what);
}

# a body that stops coming (client_body_timeout): nginx closes the
# connection without an answer, so no page of any kind comes
{
    my $r = raw("$api HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer $key\r\n"
                . "Content-Type: multipart/form-data; boundary=b\r\n"
                . "Content-Length: 1000\r\n$close\r\n--b\r\n");
    is($r->{status}, 0, 'a body that stops coming: the connection is closed');
    is($r->{content} // '', '', '... with no answer at all');
}

# no 500 for a request line nginx cannot read, and the error lines nginx
# writes about these requests (some at error level, the request line in
# their context) show no key
my $log = SmartyTest::error_log($gw->{ngx});
unlike($log, qr/empty URI in redirect/, 'no "empty URI in redirect" (named locations)');
unlike($log, qr/\[(crit|alert|emerg)\]/, 'nothing worse than an error line');
is(index($log, $key), -1, 'no key in the error log');
like($log, qr/request: "[^"]*oauth_token=\*\*\*/,
     'the key in a request line of an error line is redacted');

# the gateway's own answers are unchanged: its 404 and 405
is_error(SmartyTest::http('GET', "$gw->{url}/api/v1/persons/recognize"), 405,
         'method_not_allowed', 'GET on a method');
is_error(SmartyTest::http('POST', "$gw->{url}/elsewhere"), 404,
         'unknown_endpoint', 'a path outside the API');

# nginx -t: an error_page location whose URI names no code answers 500 in
# the envelope, with a line saying so
{
    my $g = SmartyTest::start_gateway(emu => $gw->{emu}, token => $gw->{token},
        server => "        location /oops/ { smarty_error; }\n");
    is_error(SmartyTest::http('GET', "$g->{url}/oops/no_such_code"), 500,
             'internal_error', 'smarty_error; on a URI that names no code');
    like(SmartyTest::error_log($g->{ngx}), qr/names no smarty error code/,
         'the error log says why');
}

# nginx's refusal of an API request is one of the gateway's: its method,
# from the URI the client sent, percent-decoded as nginx decodes paths,
# and its client, from the key (the access log's method= and client=)
{
    my $pad = 'X-Pad: ' . ('p' x 9000) . "\r\n";
    for my $c ([ '/api/v1/persons/set', 'persons/set' ],
               [ '/api/v1/persons%2Fdelete', 'persons/delete' ],
               [ '/elsewhere', '' ])
    {
        my ($path, $method) = @$c;
        my $r = raw("POST $path HTTP/1.1\r\nHost: gw\r\n"
                    . "Authorization: Bearer $key\r\n$pad$close\r\n",
                    half_close => 1);
        is_error($r, 400, 'headers_too_large', "$path: refused by nginx");
        # no record outside the API: nginx's "-" of a variable not found
        my ($who, $m) = $method ? ('demo', $method) : ('-', '-');
        ok(SmartyTest::wait_until(sub {
               SmartyTest::slurp("$gw->{ngx}{dir}/gateway.log")
                   =~ m{"GET /_smarty_error/headers_too_large\?\S*" 400 client=\Q$who\E method=\Q$m\E }
           }, 5), "$path: logged with client=$who method=$m");
        # one line at a time: the next case's line is told apart
        rename "$gw->{ngx}{dir}/gateway.log", "$gw->{ngx}{dir}/gateway.log.old";
        kill 'USR1', $gw->{ngx}{pid};
        SmartyTest::wait_until(sub { -e "$gw->{ngx}{dir}/gateway.log" }, 5);
    }
}

done_testing;
