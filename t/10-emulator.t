# The upstream emulator on its own: the token check, the walkthrough of
# upstream-api.md, per-image statuses, limits, /_emulator/, the OAuth
# endpoint, fault injection, keep-alive, and a clean stop.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SmartyTest;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Time::HiRes qw(time);

my $token = 'emu-token-' . SmartyTest::random_hex(16);
my $emu = SmartyTest::start_emulator(token => "$token\n",
                                     args => [ '--per-image-ms', '0' ]);
my $url = $emu->{url};
my $Q = "oauth_provider=mcs&oauth_token=$token";
my $JSON = JSON::PP->new->canonical(1);

my $group = SmartyTest::group_photo();
my $rachel = SmartyTest::alone_photo('rachel');

ok(SmartyTest::wait_until(sub {
       SmartyTest::slurp("$emu->{dir}/emulator.log")
           =~ /^smarty-emulator listening on 127\.0\.0\.1:$emu->{port}$/m }, 5),
   'the start line on stderr');

# --- helpers -------------------------------------------------------------------

sub api {
    my ($path, %o) = @_;
    my $q = exists $o{query} ? delete $o{query} : $Q;
    return SmartyTest::call($url, $path, query => $q, %o);
}

sub stats { return SmartyTest::emulator_stats($emu) }

sub last_request {
    return SmartyTest::http('GET', "$url/_emulator/last")->{json};
}

sub faults {
    my ($q) = @_;
    my $r = SmartyTest::http('POST', "$url/_emulator/faults?$q");
    is($r->{status}, 200, "faults: $q");
    return $r->{json};
}

sub recognize {
    my ($space, $photo, %o) = @_;
    return api('persons/recognize',
        meta => { space => $space,
                  create_new => $o{create_new} ? JSON::PP::true
                                               : JSON::PP::false,
                  images => [ { name => 'file_0' } ] },
        images => [ [ 'file_0', $photo ] ], %o);
}

sub set_person {
    my ($space, $photo, $id) = @_;
    return api('persons/set',
        meta => { space => $space,
                  images => [ { name => 'file_0', person_id => $id } ] },
        images => [ [ 'file_0', $photo ] ]);
}

sub tags_of {
    my ($r, $name) = @_;
    return SmartyTest::tags(SmartyTest::objects_by_name($r)->{$name // 'file_0'});
}

sub is_envelope_error {
    my ($r, $status, $code, $name) = @_;
    subtest $name => sub {
        is($r->{status}, $status, "HTTP $status");
        like($r->{content} // '',
             qr/^\{"status":$status,"body":\{"error":"(?:[^"\\]|\\.)+","code":"\Q$code\E"\},"htmlencoded":false,"last_modified":0\}$/,
             "the error envelope, code $code") or diag $r->{content};
        is($r->{headers}{'content-type'}, 'application/json', 'JSON');
    };
}

sub token_call {
    my ($e, $body) = @_;
    return SmartyTest::http('POST', "$e->{url}/auth/oauth/v1/token",
        headers => { 'Content-Type' => 'application/json' },
        body => ref $body ? $JSON->encode($body) : $body);
}

sub client_credentials {
    my ($e, %o) = @_;
    return token_call($e, { client_id => $o{id} // 'smarty-emulator',
                            client_secret => $o{secret} // 'smarty-emulator-secret',
                            grant_type => 'client_credentials' });
}

sub refresh {
    my ($e, $rt) = @_;
    return token_call($e, { client_id => 'smarty-emulator',
                            refresh_token => $rt,
                            grant_type => 'refresh_token' });
}

sub truncate_with {
    my ($e, $tok) = @_;
    return SmartyTest::call($e->{url}, 'persons/truncate',
        query => "oauth_provider=mcs&oauth_token=$tok",
        meta => { space => '9' });
}

# A multipart body of raw parts, each [ [ header lines ], data ], posted to
# the API.
sub raw_parts {
    my ($path, @parts) = @_;
    my $b = 'raw' . SmartyTest::random_hex(8);
    my $body = '';
    for my $p (@parts) {
        $body .= "--$b\r\n" . join('', map { "$_\r\n" } @{ $p->[0] })
                 . "\r\n$p->[1]\r\n";
    }
    $body .= "--$b--\r\n";
    return SmartyTest::http('POST', "$url/api/v1/$path?$Q",
        headers => { 'Content-Type' => "multipart/form-data; boundary=$b" },
        body => $body);
}

sub meta_part {
    my ($meta) = @_;
    return [ [ 'Content-Disposition: form-data; name="meta"',
               'Content-Type: application/json' ], $JSON->encode($meta) ];
}

# --- the token check -------------------------------------------------------------

{
    my $before = stats();
    is_envelope_error(recognize('1', $rachel, query => undef), 401,
                      'missing_oauth', 'no oauth parameters: 401');
    is_envelope_error(recognize('1', $rachel, query => "oauth_token=$token"),
                      401, 'missing_oauth', 'no oauth_provider: 401');
    is_envelope_error(recognize('1', $rachel,
                                query => "oauth_provider=&oauth_token=$token"),
                      401, 'missing_oauth', 'an empty oauth_provider: 401');
    is_envelope_error(recognize('1', $rachel,
                                query => 'oauth_provider=mcs&oauth_token='),
                      401, 'missing_oauth', 'an empty oauth_token: 401');
    is_envelope_error(recognize('1', $rachel,
                                query => 'oauth_provider=mcs&oauth_token=nope'),
                      401, 'invalid_token', 'a wrong token: 401');
    is_envelope_error(recognize('1', $rachel,
                                query => "oauth_provider=mcs&oauth_token=$token%0A"),
                      401, 'invalid_token',
                      'the token with the file\'s newline: 401');
    my $after = stats();
    is($after->{requests_total} - $before->{requests_total}, 6,
       'refused requests count in requests_total');
    is($after->{requests} - $before->{requests}, 0,
       'and not in requests');

    my $r = recognize('1', $rachel);
    is($r->{status}, 200, 'the service token (file, trailing newline stripped)');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON');
    like($r->{content},
         qr/^\{"status":200,"body":\{.*\},"htmlencoded":false,"last_modified":0\}$/s,
         'the success envelope');
    is(stats()->{requests} - $after->{requests}, 1, 'counted in requests');
}

# --- the walkthrough ---------------------------------------------------------------

{
    my $r = recognize('1', $group);
    is($r->{json}{status}, 200, 'step 1: envelope 200');
    is_deeply(tags_of($r), [ ('undefined') x 6 ], 'step 1: six undefined faces');
    ok(JSON::PP::is_bool($r->{json}{body}{aliases_changed})
       && !$r->{json}{body}{aliases_changed}, 'step 1: aliases_changed false');
    my @p = @{ SmartyTest::objects_by_name($r)->{file_0}{persons} };
    is_deeply($p[0]{coord}, [ 10, 20, 60, 80 ], 'step 1: the annotated box');
    ok(!(grep { $_->{confidence} <= 0.99 || $_->{confidence} > 1 } @p),
       'step 1: confidence above 0.99 for annotated faces');
    ok(!(grep { $_->{similarity} < 0 || $_->{similarity} > 1
                || $_->{awesomeness} < 0 || $_->{awesomeness} > 1 } @p),
       'step 1: similarity and awesomeness within 0..1');
    is($JSON->encode(recognize('1', $group)->{json}), $JSON->encode($r->{json}),
       'recognize without create_new is deterministic');

    $r = set_person('1', $rachel, 1);
    is($r->{status}, 200, 'step 2: set answers 200');
    is_deeply(SmartyTest::objects_by_name($r)->{file_0},
              { name => 'file_0', status => 0 }, 'step 2: image status 0');

    $r = recognize('1', $group);
    is_deeply(tags_of($r), [ 'person1', ('undefined') x 5 ],
              'step 3: Rachel is person1, the five others undefined');

    $r = recognize('3', $group, create_new => 1);
    is_deeply(tags_of($r), [ map { "person$_" } 1 .. 6 ],
              'step 4: create_new makes person1..person6');
    $r = recognize('3', $rachel);
    is_deeply(tags_of($r), [ 'person1' ], 'step 4: Rachel alone is found');
    is_deeply(tags_of(recognize('3', SmartyTest::alone_photo('phoebe'))),
              [ 'person6' ], 'step 4: and Phoebe alone');

    is_deeply(tags_of(recognize('2', $group)), [ ('undefined') x 6 ],
              'step 5: space 2 knows none of space 1');

    $r = api('persons/delete',
             meta => { space => '1', images => [ { name => 'del', person_id => 1 } ] });
    is($r->{status}, 200, 'step 6: delete answers 200');
    is_deeply(SmartyTest::objects_by_name($r)->{del}, { name => 'del', status => 0 },
              'step 6: delete status 0');
    is_deeply(tags_of(recognize('1', $group)), [ ('undefined') x 6 ],
              'step 6: Rachel is undefined again');
    $r = api('persons/delete',
             meta => { space => '1', images => [ { name => 'del', person_id => 1 } ] });
    is_deeply(SmartyTest::objects_by_name($r)->{del},
              { name => 'del', status => 1, error => 'person not found' },
              'step 6: deleting an unknown person: status 1');

    $r = api('persons/truncate', meta => { space => '3' });
    is($r->{status}, 200, 'step 6: truncate answers 200');
    is_deeply($r->{json}{body}, {}, 'step 6: truncate body is {}');
    is_deeply(tags_of(recognize('3', $group)), [ ('undefined') x 6 ],
              'step 6: after truncate nobody is known');

    # create_new numbers from one above the highest id in use
    set_person('5', $rachel, 41);
    is_deeply(tags_of(recognize('5', SmartyTest::alone_photo('ross'), create_new => 1)),
              [ 'person42' ], 'create_new takes one above the highest id');
    # set links the largest face
    set_person('5', SmartyTest::jpeg(faces => [ 'small@0,0,10,10', 'big@0,0,100,100' ]), 7);
    is_deeply(tags_of(recognize('5', SmartyTest::jpeg(faces => [ 'small@0,0,5,5', 'big@1,1,9,9' ]))),
              [ 'undefined', 'person7' ], 'set links the largest face only');
}

# --- per-image answers ---------------------------------------------------------------

my ($noface, $faces3);
{
    # unannotated photos: 0 to 3 faces from the bytes; find one with none
    # and one with some, asking the emulator
    for my $seed (1 .. 200) {
        my $img = SmartyTest::jpeg(seed => $seed);
        my $n = scalar @{ tags_of(recognize('8', $img)) };
        $noface //= $img if $n == 0;
        $faces3 //= $img if $n >= 2;
        last if $noface && $faces3;
    }
    ok($noface, 'an unannotated photo without faces exists');
    ok($faces3, 'an unannotated photo with faces exists');

    my $r = set_person('8', $noface, 3);
    is_deeply(SmartyTest::objects_by_name($r)->{file_0},
              { name => 'file_0', status => 1, error => 'no face found' },
              'set on a photo without a face: status 1, no face found');

    $r = recognize('8', $faces3, create_new => 1);
    my $tags = tags_of($r);
    ok(!(grep { !/^person\d+$/ } @$tags), "unannotated faces get persons (@$tags)");
    is_deeply(tags_of(recognize('8', $faces3)), $tags, 'the same bytes show the same persons');
    my $other = tags_of(recognize('8', $faces3 . 'x'));
    is_deeply($other, [ ('undefined') x @$other ], 'other bytes share no person');

    $r = api('persons/recognize',
             meta => { space => '1', images => [ { name => 'b' }, { name => 'text' },
                                                 { name => 'gone' }, { name => 'a' } ] },
             images => [ [ 'a', $rachel ], [ 'text', 'hello, not an image' ],
                         [ 'b', SmartyTest::alone_photo('ross') ] ]);
    is($r->{status}, 200, 'a request with bad images answers 200');
    my @o = @{ $r->{json}{body}{objects} };
    is_deeply([ map { $_->{name} } @o ], [ qw(b text gone a) ], 'objects in meta order');
    is_deeply($o[1], { name => 'text', status => 1,
                       error => 'The memory contains data of an unknown image type' },
              'an unknown image type: status 1');
    is($o[2]{status}, 1, 'an entry naming no part: status 1');
    ok(!exists $o[0]{error}, 'no error when status is 0');
    is($o[3]{persons}[0]{tag}, 'undefined', 'the others are answered');

    my %sig = (png => "\x89PNG\r\n\x1a\n", gif => 'GIF89a', bmp => 'BM',
               webp => "RIFF\0\0\0\0WEBPVP8 ");
    for my $t (sort keys %sig) {
        $r = recognize('1', $sig{$t} . 'tEXtface=monica@1,2,3,4');
        is_deeply(tags_of($r), [ 'undefined' ], "a $t with an annotation");
    }
    $r = recognize('1', "\xFF\xD8\xFF" . 'face=a@1,2,1,4 face=b@5,6,7 face=@1,2,3,4 '
                   . 'face=' . ('x' x 65) . '@1,2,3,4 face=ok@5,6,7,8');
    is_deeply([ map { $_->{coord} } @{ SmartyTest::objects_by_name($r)->{file_0}{persons} } ],
              [ [ 5, 6, 7, 8 ] ], 'malformed annotations are no faces');
}

# --- recognize: the second model (searcher) -----------------------------------------------

sub recognize_meta {
    my ($meta, @images) = @_;
    @images = ([ 'file_0', $group ]) unless @images;
    return api('persons/recognize',
        meta => { space => '0', images => [ map { { name => $_->[0] } } @images ],
                  %$meta },
        images => \@images);
}

{
    set_person('0', $rachel, 1);
    my $plain = recognize_meta({});
    is($plain->{status}, 200, 'searcher absent: 200');
    is(recognize_meta({ searcher => 0 })->{content}, $plain->{content},
       'searcher 0: the same answer, byte for byte');
    ok(!(grep { exists $_->{sex} || exists $_->{age} || exists $_->{emotion} }
         @{ $plain->{json}{body}{objects}[0]{persons} }), 'and no attributes');

    my $r = recognize_meta({ searcher => 1 });
    is($r->{status}, 200, 'searcher 1: 200');
    my @p = @{ $r->{json}{body}{objects}[0]{persons} };
    is(scalar @p, 6, 'six faces');
    my %emotions = map { $_ => 1 } qw(Neutral Happiness Sadness Surprise Anger Fear Disgust);
    ok(!(grep { $_->{sex} !~ /^(?:male|female)$/ } @p), 'sex is male or female');
    ok(!(grep { $_->{age} !~ /^\d+$/ || $_->{age} < 1 || $_->{age} > 90 } @p),
       'age is an integer from 1 to 90');
    ok(!(grep { !$emotions{ $_->{emotion} } } @p), 'emotion is one of the seven');
    like($r->{content}, qr/"age":\d+[,}]/, 'age is a JSON integer');
    my @bare = map { my %f = %$_; delete @f{qw(sex age emotion)}; \%f } @p;
    is_deeply(\@bare, $plain->{json}{body}{objects}[0]{persons},
              'the rest of every face is unchanged');
    like($r->{content}, qr/"awesomeness":[\d.]+,"sex":"\w+","age":\d+,"emotion":"\w+"\}/,
         'the attributes follow awesomeness');

    # the same person, the same attributes: in every photo, every space
    my %attr = map { $_->{tag} eq 'person1' ? (rachel => $_) : () } @p;
    my $alone = recognize_meta({ searcher => 1 }, [ 'a', $rachel ]);
    my $other = api('persons/recognize',
        meta => { space => '4', searcher => 1, create_new => JSON::PP::true,
                  images => [ { name => 'a' } ] },
        images => [ [ 'a', $rachel ] ]);
    for my $x ([ 'alone', $alone ], [ 'in another space', $other ]) {
        my $f = $x->[1]{json}{body}{objects}[0]{persons}[0];
        is_deeply([ @$f{qw(sex age emotion)} ], [ @{ $attr{rachel} }{qw(sex age emotion)} ],
                  "Rachel has the same attributes $x->[0]");
    }

    # and the attributes vary between persons
    my @many = map { [ "p$_", SmartyTest::alone_photo("someone$_") ] } 1 .. 40;
    $r = recognize_meta({ searcher => 1 }, @many);
    my @f = map { $_->{persons}[0] } @{ $r->{json}{body}{objects} };
    my (%sex, %emo, %age);
    $sex{ $_->{sex} }++, $emo{ $_->{emotion} }++, $age{ $_->{age} }++ for @f;
    is(scalar keys %sex, 2, 'both sexes among 40 persons');
    cmp_ok(scalar keys %emo, '>=', 5, 'most emotions among 40 persons');
    cmp_ok(scalar keys %age, '>=', 20, 'many ages among 40 persons');

    for my $bad (2, -1, '"1"', 'true', '1.0', 'null', '[1]') {
        my $rb = api('persons/recognize',
            meta => qq({"space":"0","searcher":$bad,"images":[{"name":"a"}]}),
            images => [ [ 'a', $rachel ] ]);
        is_envelope_error($rb, 400, 'bad_meta', "searcher $bad: 400");
        like($rb->{json}{body}{error}, qr/meta\.searcher/, 'the sentence names meta.searcher');
    }

    # only recognize takes searcher
    $r = api('persons/set',
        meta => { space => '0', searcher => 'x',
                  images => [ { name => 'a', person_id => 2 } ] },
        images => [ [ 'a', SmartyTest::alone_photo('ross') ] ]);
    is_deeply($r->{json}{body}{objects}, [ { name => 'a', status => 0 } ],
              'set ignores searcher');
    $r = api('objects/detect', meta => { searcher => 1, images => [ { name => 'a' } ] },
             images => [ [ 'a', $rachel ] ]);
    ok(!(grep { exists $_->{sex} } @{ $r->{json}{body}{object_labels}[0]{labels} }),
       'objects/detect ignores searcher');
    api('persons/truncate', meta => { space => '0' });
    api('persons/truncate', meta => { space => '4' });
}

# --- recognize: update_embedding ------------------------------------------------------------

sub faces_of {
    my ($r) = @_;
    return [ map { @{ $_->{persons} // [] } } @{ $r->{json}{body}{objects} } ];
}

sub updated {
    my ($base, $n) = @_;
    return $base + (1 - $base) * (1 - 0.5 ** $n);
}

sub near {
    my ($got, $want, $name) = @_;
    ok(defined $got && abs($got - $want) < 0.00011,
       sprintf('%s (%s, %.4f)', $name, $got // 'none', $want));
}

{
    my $T = JSON::PP::true;
    set_person('0', $rachel, 1);
    my $plain = recognize_meta({});
    my $base = faces_of($plain)->[0]{similarity};
    my @others = map { $_->{similarity} } @{ faces_of($plain) }[1 .. 5];
    my $alone_base = faces_of(recognize_meta({}, [ 'a', $rachel ]))->[0]{similarity};
    is(faces_of($plain)->[0]{tag}, 'person1', 'Rachel is person1 in space 0');

    is(recognize_meta({ update_embedding => JSON::PP::false })->{content},
       $plain->{content}, 'update_embedding false: the same answer, byte for byte');

    my $u = recognize_meta({ update_embedding => $T });
    is($u->{status}, 200, 'update_embedding true: 200');
    near(faces_of($u)->[0]{similarity}, updated($base, 1),
         'the update\'s own answer shows the similarity after it');
    cmp_ok(faces_of($u)->[0]{similarity}, '>', $base, 'higher than before');
    is_deeply([ map { [ $_->{tag}, $_->{similarity} ] } @{ faces_of($u) }[1 .. 5] ],
              [ map { [ 'undefined', $_ ] } @others ], 'unknown faces are not updated');

    my $after = recognize_meta({});
    isnt($after->{content}, $plain->{content},
         'a later recognize answers differently from before the update');
    near(faces_of($after)->[0]{similarity}, updated($base, 1),
         'with the updated similarity');
    near(faces_of(recognize_meta({ update_embedding => $T }))->[0]{similarity},
         updated($base, 2), 'a second update: halfway again to 1');

    # one update per face, in order; per identity, whatever the photo
    my $two = recognize_meta({ update_embedding => $T }, [ 'a', $rachel ], [ 'b', $rachel ]);
    near(faces_of($two)->[0]{similarity}, updated($alone_base, 3), 'the third update');
    near(faces_of($two)->[1]{similarity}, updated($alone_base, 4),
         'the fourth, by the second image of the same call');

    # every space has its own counters
    set_person('4', $rachel, 1);
    near(faces_of(api('persons/recognize',
                      meta => { space => '4', images => [ { name => 'a' } ] },
                      images => [ [ 'a', $rachel ] ]))->[0]{similarity},
         $alone_base, 'another space: no update');

    # with create_new: known faces are updated, new persons are not
    my $cn = recognize_meta({ update_embedding => $T, create_new => $T });
    is_deeply([ map { $_->{tag} } @{ faces_of($cn) } ], [ map { "person$_" } 1 .. 6 ],
              'create_new and update_embedding together');
    near(faces_of($cn)->[0]{similarity}, updated($base, 5), 'Rachel updated a fifth time');
    my $next = recognize_meta({});
    is_deeply([ map { $_->{similarity} } @{ faces_of($next) }[1 .. 5] ],
              [ map { $_->{similarity} } @{ faces_of($cn) }[1 .. 5] ],
              'the new persons were not updated by the call that made them');
    my $up = recognize_meta({ update_embedding => $T });
    ok(!(grep { faces_of($up)->[$_]{similarity} <= faces_of($next)->[$_]{similarity} } 1 .. 5),
       'the next update raises them');

    # delete forgets the person's counters, truncate the space's
    api('persons/delete', meta => { space => '0', images => [ { name => 'd', person_id => 1 } ] });
    set_person('0', $rachel, 1);
    my $again = recognize_meta({});
    is(faces_of($again)->[0]{similarity}, $base, 'after delete: Rachel\'s first similarity');
    near(faces_of($again)->[1]{similarity}, updated(faces_of($cn)->[1]{similarity}, 1),
         'the others keep theirs');
    api('persons/truncate', meta => { space => '0' });
    recognize_meta({ create_new => $T });
    is_deeply([ map { $_->{similarity} } @{ faces_of(recognize_meta({})) } ],
              [ $base, map { $_->{similarity} } @{ faces_of($cn) }[1 .. 5] ],
              'after truncate: every similarity as before any update');

    for my $bad ('1', '0', '"true"', 'null', '[]') {
        my $rb = api('persons/recognize',
            meta => qq({"space":"0","update_embedding":$bad,"images":[{"name":"a"}]}),
            images => [ [ 'a', $rachel ] ]);
        is_envelope_error($rb, 400, 'bad_meta', "update_embedding $bad: 400");
        like($rb->{json}{body}{error}, qr/meta\.update_embedding/,
             'the sentence names meta.update_embedding');
    }
    api('persons/truncate', meta => { space => '0' });
    api('persons/truncate', meta => { space => '4' });
}

# --- stateless detectors ----------------------------------------------------------------

{
    my $r = api('objects/detect', meta => { images => [ { name => 'file_0' } ] },
                images => [ [ 'file_0', $group ] ]);
    is($r->{status}, 200, 'objects/detect: 200');
    is_deeply([ keys %{ $r->{json}{body} } ], [ 'object_labels' ], 'default mode: object');
    my $labels = $r->{json}{body}{object_labels}[0]{labels};
    is(scalar(grep { $_->{eng} eq 'Person' } @$labels), 6, 'a Person per face');

    my @modes = qw(object scene car_number multiobject pedestrian);
    $r = api('objects/detect',
             meta => { mode => \@modes, images => [ { name => 'b' }, { name => 'a' } ] },
             images => [ [ 'a', $group ], [ 'b', 'not an image' ] ]);
    is_deeply([ sort keys %{ $r->{json}{body} } ], [ sort map { "${_}_labels" } @modes ],
              'one list per mode');
    is_deeply([ map { $_->{name} } @{ $r->{json}{body}{scene_labels} } ], [ 'b', 'a' ],
              'images in meta order');
    is($r->{json}{body}{scene_labels}[0]{status}, 1, 'an unknown type: status 1');
    my $again = api('objects/detect',
             meta => { mode => \@modes, images => [ { name => 'b' }, { name => 'a' } ] },
             images => [ [ 'a', $group ], [ 'b', 'not an image' ] ]);
    is($JSON->encode($again->{json}), $JSON->encode($r->{json}), 'deterministic');

    is_envelope_error(api('objects/detect', meta => { mode => ['faces'], images => [ { name => 'a' } ] },
                          images => [ [ 'a', $group ] ]),
                      400, 'bad_mode', 'an unknown mode: 400');

    for my $m (qw(docs/detect docs/recognize text/recognize adult/detect)) {
        $r = api($m, meta => { images => [ { name => 'x' } ] }, images => [ [ 'x', $group ] ]);
        is($r->{status}, 200, "$m: 200");
        is_deeply([ map { [ $_->{name}, $_->{status} ] } @{ $r->{json}{body}{objects} } ],
                  [ [ 'x', 0 ] ], "$m: one object, status 0");
    }
}

# --- request-level errors and limits ----------------------------------------------------

{
    is_envelope_error(api('persons/none', meta => { space => '1' }), 404,
                      'unknown_endpoint', 'an unknown method: 404');
    is_envelope_error(SmartyTest::http('GET', "$url/api/v1/persons/recognize?$Q"),
                      405, 'method_not_allowed', 'GET: 405');
    is_envelope_error(api('persons/recognize', images => [ [ 'file_0', $rachel ] ]),
                      400, 'missing_meta', 'no meta: 400');
    is_envelope_error(api('persons/recognize', meta => '{"space":',
                          images => [ [ 'file_0', $rachel ] ]),
                      400, 'bad_meta', 'meta not JSON: 400');
    is_envelope_error(api('persons/recognize', meta => '[1]',
                          images => [ [ 'file_0', $rachel ] ]),
                      400, 'bad_meta', 'meta not an object: 400');
    is_envelope_error(api('persons/recognize', meta => { space => '10', images => [ { name => 'file_0' } ] },
                          images => [ [ 'file_0', $rachel ] ]),
                      400, 'bad_space', 'space "10": 400');
    is_envelope_error(api('persons/recognize', meta => { space => 1, images => [ { name => 'file_0' } ] },
                          images => [ [ 'file_0', $rachel ] ]),
                      400, 'bad_space', 'space as a number: 400');
    is_envelope_error(api('persons/set', meta => { space => '1', images => [ { name => 'file_0' } ] },
                          images => [ [ 'file_0', $rachel ] ]),
                      400, 'bad_person_id', 'set without person_id: 400');
    is_envelope_error(api('persons/recognize', meta => { space => '1' },
                          images => [ [ 'file_0', $rachel ] ]),
                      400, 'bad_images', 'no meta.images: 400');
    is_envelope_error(SmartyTest::http('POST', "$url/api/v1/persons/recognize?$Q",
                          headers => { 'Content-Type' => 'application/json' }, body => '{}'),
                      400, 'bad_content_type', 'not multipart: 400');
    {
        my ($body, $ct) = SmartyTest::api_body(meta => { space => '1', images => [ { name => 'a' } ] },
                                               images => [ [ 'a', $rachel ] ]);
        $body =~ s/--\r\n\z//;
        is_envelope_error(SmartyTest::http('POST', "$url/api/v1/persons/recognize?$Q",
                              headers => { 'Content-Type' => $ct }, body => $body),
                          400, 'bad_multipart', 'no closing delimiter: 400');
    }
    {
        # quoted boundary, lower-case part headers, a preamble
        my $r = api('persons/recognize', meta => { space => '1', images => [ { name => 'a' } ] },
                    images => [ [ 'a', $rachel ] ], quote_boundary => 1, lower_headers => 1,
                    preamble => "preamble\r\n");
        is($r->{status}, 200, 'quoted boundary, lower-case headers, preamble');
    }

    my @hundred = map { [ "file_$_", $rachel ] } 0 .. 99;
    my $r = api('persons/recognize',
                meta => { space => '1', images => [ map { { name => $_->[0] } } @hundred ] },
                images => \@hundred);
    is($r->{status}, 200, '100 images: 200');
    is(scalar @{ $r->{json}{body}{objects} }, 100, '100 answers');
    my @many = map { [ "file_$_", $rachel ] } 0 .. 100;
    is_envelope_error(api('persons/recognize',
                          meta => { space => '1', images => [ map { { name => $_->[0] } } @many ] },
                          images => \@many),
                      413, 'too_many_images', '101 images: 413');
    is_envelope_error(api('persons/recognize',
                          meta => { space => '1', images => [ map { { name => $_->[0] } } @many ] },
                          images => [ $many[0] ]),
                      413, 'too_many_images', '101 entries in meta.images: 413');

    my $four = $rachel . ("\0" x (4 * 1024 * 1024 - length $rachel));
    $r = recognize('1', $four);
    is($r->{status}, 200, 'an image of exactly 4 MB: 200');
    is_deeply(tags_of($r), [ 'undefined' ], 'its face is found');
    is_envelope_error(recognize('1', $four . "\0"), 413, 'image_too_large',
                      '4 MB and one byte: 413');
    is_envelope_error(SmartyTest::http('POST', "$url/nowhere"), 404,
                      'unknown_endpoint', 'a path outside the API: 404');
}

# --- parts without a name ---------------------------------------------------------------

{
    # smarty.php sends delete and truncate with a nameless placeholder part
    my $placeholder = [ [ 'Content-Disposition: form-data; name=""; filename=""',
                          'Content-Type: application/octet-stream' ], 'placeholder' ];
    set_person('2', $rachel, 3);
    my $r = raw_parts('persons/delete',
        meta_part({ space => '2', images => [ { name => 'x', person_id => 3 } ] }),
        $placeholder);
    is($r->{status}, 200, 'delete with a part named "": 200');
    is_deeply($r->{json}{body}{objects}, [ { name => 'x', status => 0 } ],
              'and the person is deleted');
    $r = raw_parts('persons/truncate', meta_part({ space => '2' }), $placeholder);
    is($r->{status}, 200, 'truncate with a part named "": 200');
    is_deeply($r->{json}{body}, {}, 'truncate answers {}');

    # every kind of nameless part is skipped, as Go's form reader does
    my $names = [ map { { name => $_ } } qw(ok up att fdx first second) ];
    $r = raw_parts('persons/recognize',
        meta_part({ space => '1', images => $names }),
        [ [ 'Content-Disposition: form-data; name="ok"' ], $rachel ],
        [ [ 'content-disposition: FORM-DATA ; name="up"' ], $rachel ],
        [ [ 'Content-Disposition: attachment; name="att"' ], $rachel ],
        [ [ 'Content-Disposition: form-datax; name="fdx"' ], $rachel ],
        [ [ 'Content-Disposition: form-data; filename="f.jpg"' ], $rachel ],
        [ [ 'Content-Type: image/jpeg' ], $rachel ],
        [ [], $rachel ],
        [ [ 'Content-Disposition: form-data; name=""' ], 'x' ],
        [ [ 'Content-Disposition: attachment; name="first"',
            'Content-Disposition: form-data; name="first"' ], $rachel ],
        [ [ 'Content-Disposition: form-data; name="second"',
            'Content-Disposition: attachment; name="x"' ], $rachel ]);
    is($r->{status}, 200, 'nameless parts: 200');
    is_deeply([ map { [ $_->{name}, $_->{status} ] } @{ $r->{json}{body}{objects} } ],
              [ [ ok => 0 ], [ up => 0 ], [ att => 1 ], [ fdx => 1 ], [ first => 1 ],
                [ second => 0 ] ],
              'only form-data parts with a name are images; the first '
              . 'Content-Disposition counts');
    is($r->{json}{body}{objects}[2]{error}, 'the request has no image of this name',
       'a part that is not form-data is no image');

    is_envelope_error(raw_parts('persons/truncate',
                          [ [ 'Content-Disposition: attachment; name="meta"' ],
                            '{"space":"1"}' ]),
                      400, 'missing_meta', 'a meta part that is not form-data is no meta');

    # nameless parts count against no limit
    my @hundred = map { [ [ qq{Content-Disposition: form-data; name="f$_"} ], $rachel ] }
                  0 .. 99;
    $r = raw_parts('persons/recognize',
        meta_part({ space => '1', images => [ { name => 'f0' } ] }), @hundred,
        [ [ 'Content-Disposition: form-data; filename="a.jpg"' ], $rachel ]);
    is($r->{status}, 200, '100 images and a nameless part: 200');
    $r = raw_parts('persons/recognize',
        meta_part({ space => '1', images => [ { name => 'f0' } ] }), $hundred[0],
        [ [ 'Content-Disposition: form-data; name=""' ], "\0" x (4 * 1024 * 1024 + 1) ]);
    is($r->{status}, 200, 'a nameless part over 4 MB: 200');

    is_envelope_error(raw_parts('persons/truncate', meta_part({ space => '1' }),
                          [ [ 'Content-Disposition: form-data; name=""', 'no colon' ], 'x' ]),
                      400, 'bad_part_headers', 'a malformed header line: still 400');
    is_envelope_error(raw_parts('persons/truncate', meta_part({ space => '1' }),
                          [ [ ': no name' ], 'x' ]),
                      400, 'bad_part_headers', 'a header line without a name: 400');
}

# --- long part names ---------------------------------------------------------------------

{
    # PHP clients name a part by the photo's path
    my $path = substr('/var/www/uploads/' . ('photos/' x 600), 0, 4092) . '.jpg';
    is(length $path, 4096, 'a path of 4096 bytes');
    my $r = raw_parts('persons/recognize',
        meta_part({ space => '1', images => [ { name => $path } ] }),
        [ [ qq{Content-Disposition: form-data; name="$path"; filename="$path"} ],
          $rachel ]);
    is($r->{status}, 200, 'a part name and filename of 4096 bytes: 200');
    is_deeply([ map { [ $_->{name}, $_->{status} ] } @{ $r->{json}{body}{objects} } ],
              [ [ $path, 0 ] ], 'the image is found by its long name');

    my $quoted = '\\"' x 4096;
    $r = raw_parts('persons/recognize',
        meta_part({ space => '1', images => [ { name => '"' x 4096 } ] }),
        [ [ qq{Content-Disposition: form-data; name="$quoted"; filename="$quoted"} ],
          $rachel ]);
    is_deeply([ map { $_->{status} } @{ $r->{json}{body}{objects} // [] } ], [ 0 ],
              'a name and a filename of 4096 bytes, each quoted into 8192');

    for my $n (4097, 12000) {
        $r = recognize('1', $rachel, images => [ [ 'x' x $n, $rachel ] ]);
        is_envelope_error($r, 400, 'bad_part_headers', "a part name of $n bytes: 400");
        like($r->{json}{body}{error}, qr/'s name is too long: at most 4096 bytes/,
             'the sentence says the name is too long, and the limit');
    }
    $r = raw_parts('persons/recognize',
        meta_part({ space => '1', images => [ { name => 'a' } ] }),
        [ [ 'Content-Disposition: form-data; name="a"; filename="' . ('f' x 4097) . '"' ],
          $rachel ]);
    is_envelope_error($r, 400, 'bad_part_headers', 'a filename of 4097 bytes: 400');
    like($r->{json}{body}{error}, qr/filename is too long: at most 4096 bytes/,
         'the sentence says the filename is too long');
    $r = raw_parts('persons/truncate', meta_part({ space => '1' }),
        [ [ 'Content-Disposition: attachment; name="' . ('x' x 5000) . '"' ], 'x' ]);
    is($r->{status}, 200, 'a long name of a skipped part does not matter');
}

# --- delete and truncate with image parts -----------------------------------------------

{
    # a Go SDK attaches a part for every name of meta.images, to delete too
    set_person('2', $rachel, 4);
    set_person('2', SmartyTest::alone_photo('ross'), 5);
    my $s0 = stats();
    my $r = api('persons/delete',
        meta => { space => '2', images => [ { name => 'a', person_id => 4 },
                                            { name => 'b', person_id => 5 },
                                            { name => 'c', person_id => 6 } ] },
        images => [ [ 'a', $rachel ], [ 'b', 'not an image' ] ]);
    is($r->{status}, 200, 'delete with image parts: 200');
    is_deeply($r->{json}{body}{objects},
              [ { name => 'a', status => 0 }, { name => 'b', status => 0 },
                { name => 'c', status => 1, error => 'person not found' } ],
              'the parts are ignored: whatever they hold, or their absence');
    is(stats()->{images} - $s0->{images}, 0, 'delete answers no images');
    is_deeply(tags_of(recognize('2', $rachel)), [ 'undefined' ], 'Rachel is deleted');

    $r = api('persons/truncate', meta => { space => '2' },
             images => [ [ 'file_0', $rachel ], [ 'x', 'not an image' ] ]);
    is($r->{status}, 200, 'truncate with image parts: 200');
    is_deeply($r->{json}{body}, {}, 'they are ignored');
}

# --- /_emulator/: last, stats, faults, reset ----------------------------------------------

{
    my $q = "$Q&x=a%20b&y=%2F";
    my $r = recognize('1', $rachel, query => $q,
                      headers => { 'X-Test' => 'yes' });
    my $last = last_request();
    is($last->{path}, 'persons/recognize', 'last: path');
    is($last->{query}, $q, 'last: the raw query string');
    is($last->{body_sha256}, sha256_hex($r->{request_body}), 'last: body_sha256');
    is($last->{body_length}, length $r->{request_body}, 'last: body_length');
    like($last->{content_type}, qr{^multipart/form-data; boundary=}, 'last: content_type');
    is($last->{headers}{'x-test'}, 'yes', 'last: headers, lower-case names');
    is($last->{headers}{'content-type'}, $last->{content_type}, 'last: content-type header');

    # a binary body with every byte value, and CRLFs that are no delimiter
    my $bin = $rachel . join('', map { chr } 0 .. 255) . "\r\n--x\r\n" . ("\r\n" x 5);
    $r = recognize('1', $bin);
    is($r->{status}, 200, 'a binary image');
    is(last_request()->{body_sha256}, sha256_hex($r->{request_body}),
       'last: body_sha256 of binary bytes');

    my $s0 = stats();
    api('persons/truncate', meta => { space => '7' });
    recognize('1', $group);
    api('persons/recognize', meta => { space => '1', images => [ { name => 'a' }, { name => 'b' } ] },
        images => [ [ 'a', $rachel ], [ 'b', $group ] ]);
    my $s1 = stats();
    is($s1->{requests} - $s0->{requests}, 3, 'stats: requests');
    is($s1->{images} - $s0->{images}, 3, 'stats: images');
    is(($s1->{by_path}{'persons/recognize'} // 0) - ($s0->{by_path}{'persons/recognize'} // 0),
       2, 'stats: by_path persons/recognize');
    is(($s1->{by_path}{'persons/truncate'} // 0) - ($s0->{by_path}{'persons/truncate'} // 0),
       1, 'stats: by_path persons/truncate');

    my $k = SmartyTest::http('GET', "$url/_emulator/faults")->{json};
    is_deeply($k, { fail_5xx => 0, temp_error => 0, hang => 0, reset => 0,
                    aliases_changed => 0, latency_ms => 0, per_image_ms => 0,
                    token_fail => 0, token_hang => 0, token_latency_ms => 0 },
              'faults: the defaults');
    $k = faults('latency_ms=5&temp_error=0.25');
    is_deeply($k, { fail_5xx => 0, temp_error => 0.25, hang => 0, reset => 0,
                    aliases_changed => 0, latency_ms => 5, per_image_ms => 0,
                    token_fail => 0, token_hang => 0, token_latency_ms => 0 },
              'faults: changes only what is given');
    $k = faults('aliases_changed=1');
    my $ac = SmartyTest::call($url, 'persons/recognize', query => $Q,
        meta => { space => '9', images => [ { name => 'a' } ] },
        images => [ [ 'a', SmartyTest::alone_photo('zed') ] ]);
    is($ac->{json}{body}{aliases_changed}, JSON::PP::true, 'faults: aliases_changed=1');
    faults('aliases_changed=0');
    is_envelope_error(SmartyTest::http('POST', "$url/_emulator/faults?hang=2&latency_ms=0"),
                      400, 'bad_fault', 'faults: a share above 1');
    is(SmartyTest::http('GET', "$url/_emulator/faults")->{json}{latency_ms}, 5,
       'faults: nothing changed by a bad request');
    faults('latency_ms=0&temp_error=0');

    set_person('4', $rachel, 1);
    my $r2 = SmartyTest::http('POST', "$url/_emulator/reset");
    is_deeply($r2->{json}, { reset => JSON::PP::true }, 'reset answers');
    my $s = stats();
    is_deeply([ @$s{qw(requests requests_total images tokens_issued)} ], [ 0, 0, 0, 0 ],
              'reset: counters are zero');
    is_deeply($s->{by_path}, {}, 'reset: by_path empty');
    is_deeply(last_request(), {}, 'reset: no last request');
    is_deeply(tags_of(recognize('4', $rachel)), [ 'undefined' ], 'reset: spaces are empty');
}

# --- fault injection ----------------------------------------------------------------------

{
    faults('fail_5xx=1');
    my %codes;
    for (1 .. 6) {
        my $r = set_person('6', $rachel, 5);
        $codes{ $r->{status} }++;
        ok(($r->{status} == 500 && $r->{json}{body}{code} eq 'internal_error')
           || ($r->{status} == 503 && $r->{json}{body}{code} eq 'service_unavailable'),
           "fail_5xx=1: a 5xx envelope ($r->{status})");
        is($r->{json}{status}, $r->{status}, 'the envelope repeats the status');
    }
    faults('fail_5xx=0');
    is_deeply(tags_of(recognize('6', $rachel)), [ 'undefined' ],
              'a failed set changed nothing');

    faults('temp_error=1');
    my $r = api('persons/recognize', meta => { space => '6', images => [ { name => 'a' }, { name => 'b' } ] },
                images => [ [ 'a', $rachel ], [ 'b', $group ] ]);
    is($r->{status}, 200, 'temp_error=1: 200');
    is_deeply($r->{json}{body}{objects},
              [ map { { name => $_, status => 2, error => 'temporary error, retry later' } } qw(a b) ],
              'temp_error=1: every image status 2');
    $r = set_person('6', $rachel, 5);
    is(SmartyTest::objects_by_name($r)->{file_0}{status}, 2, 'temp_error=1: set status 2');
    faults('temp_error=0');
    is_deeply(tags_of(recognize('6', $rachel)), [ 'undefined' ],
              'a set answered status 2 changed nothing');

    faults('reset=1');
    my $n = stats()->{faults}{reset};
    $r = recognize('1', $rachel);
    is($r->{status}, 599, 'reset=1: no answer (connection closed)');
    is(stats()->{faults}{reset}, $n + 1, 'reset counted');
    faults('reset=0');
    is(recognize('1', $rachel)->{status}, 200, 'reset=0: answers again');

    faults('latency_ms=300');
    my $t0 = time;
    is(recognize('1', $rachel)->{status}, 200, 'latency_ms=300: 200');
    cmp_ok(time - $t0, '>=', 0.29, 'latency_ms=300: it took 300 ms');
    faults('latency_ms=0&per_image_ms=100');
    $t0 = time;
    api('persons/recognize', meta => { space => '1', images => [ map { { name => "f$_" } } 1 .. 4 ] },
        images => [ map { [ "f$_", $rachel ] } 1 .. 4 ]);
    cmp_ok(time - $t0, '>=', 0.39, 'per_image_ms=100: four images took 400 ms');
    faults('per_image_ms=0');

    # a hang ends when the client gives up
    faults('hang=1');
    $t0 = time;
    $r = recognize('1', $rachel, timeout => 1);
    is($r->{status}, 599, 'hang=1: no answer before the client gives up');
    cmp_ok(time - $t0, '<', 5, 'the client gave up after its timeout');
    ok(SmartyTest::wait_until(sub {
           SmartyTest::slurp("$emu->{dir}/emulator.log") =~ /hang over/ }, 10),
       'the hang ended when the client left');

    # a hanging request blocks no other
    my ($body, $ct) = SmartyTest::api_body(meta => { space => '1', images => [ { name => 'a' } ] },
                                           images => [ [ 'a', $rachel ] ]);
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $emu->{port},
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    binmode $s;
    print $s "POST /api/v1/persons/recognize?$Q HTTP/1.1\r\nHost: x\r\n"
           . "Content-Type: $ct\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    ok(SmartyTest::wait_until(sub { stats()->{faults}{hang} >= 2 }, 10),
       'a second request hangs');
    faults('hang=0');
    $t0 = time;
    is(recognize('1', $rachel)->{status}, 200, 'another request is answered meanwhile');
    cmp_ok(time - $t0, '<', 1, 'at once');
    close $s;
    ok(SmartyTest::wait_until(sub {
           my @l = SmartyTest::slurp("$emu->{dir}/emulator.log") =~ /hang over/g;
           @l >= 2 }, 10),
       'the second hang ended when its client closed');
}

# --- keep-alive -----------------------------------------------------------------------------

sub read_response {
    my ($s) = @_;
    my $head = '';
    while ($head !~ /\r\n\r\n\z/) {
        sysread($s, my $c, 1) or return undef;
        $head .= $c;
    }
    my ($status) = $head =~ m{^HTTP/1\.1 (\d{3})};
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    my $body = '';
    while (length $body < ($len // 0)) {
        sysread($s, my $c, $len - length $body) or last;
        $body .= $c;
    }
    return { status => $status, head => $head, content => $body };
}

{
    my ($body, $ct) = SmartyTest::api_body(meta => { space => '1', images => [ { name => 'a' } ] },
                                           images => [ [ 'a', $rachel ] ]);
    my $req = "POST /api/v1/persons/recognize?$Q HTTP/1.1\r\nHost: x\r\n"
              . "Content-Type: $ct\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    my $bad = "POST /api/v1/persons/recognize?oauth_provider=mcs&oauth_token=no HTTP/1.1\r\n"
              . "Host: x\r\nContent-Type: $ct\r\nContent-Length: " . length($body)
              . "\r\n\r\n$body";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $emu->{port},
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    binmode $s;
    local $SIG{ALRM} = sub { die "keep-alive test timed out\n" };
    alarm 20;
    my @st;
    for my $x ($req, $bad, $req) {
        print $s $x;
        my $res = read_response($s);
        push @st, $res ? $res->{status} : 'none';
    }
    alarm 0;
    close $s;
    is_deeply(\@st, [ 200, 401, 200 ], 'three requests on one connection (keep-alive)');
}

# --- the OAuth endpoint -------------------------------------------------------------------

{
    my $e = SmartyTest::start_emulator(args => [ '--quiet', '--token', 'plain-token' ]);
    is(truncate_with($e, 'plain-token')->{status}, 200, '--token TOKEN is a service token');
    my $r = client_credentials($e);
    is($r->{status}, 200, 'client_credentials: 200');
    is_deeply([ sort keys %{ $r->{json} } ], [ qw(access_token expires_in refresh_token) ],
              'access_token, refresh_token, expires_in');
    is($r->{json}{expires_in}, 3600, 'expires_in 3600 by default');
    like($r->{json}{access_token}, qr/^[0-9a-f]{64}$/, 'a random hex token');
    my ($at, $rt) = @{ $r->{json} }{qw(access_token refresh_token)};
    is(truncate_with($e, $at)->{status}, 200, 'the access token opens the API');
    is(truncate_with($e, $rt)->{status}, 401, 'the refresh token does not');

    $r = refresh($e, $rt);
    is($r->{status}, 200, 'refresh_token: 200');
    my ($at2, $rt2) = @{ $r->{json} }{qw(access_token refresh_token)};
    isnt($at2, $at, 'a new access token');
    is(truncate_with($e, $at2)->{status}, 200, 'the new access token works');
    is(truncate_with($e, $at)->{status}, 401, 'the old one is revoked');
    is_envelope_error(refresh($e, $rt), 400, 'invalid_grant', 'a used refresh token: 400');
    is_envelope_error(client_credentials($e, secret => 'wrong'), 401, 'invalid_client',
                      'a wrong client_secret: 401');
    is_envelope_error(client_credentials($e, id => 'other'), 401, 'invalid_client',
                      'a wrong client_id: 401');
    is_envelope_error(token_call($e, { client_id => 'smarty-emulator', grant_type => 'password' }),
                      400, 'unsupported_grant_type', 'another grant_type: 400');
    is_envelope_error(token_call($e, 'client_id=x'), 400, 'invalid_request', 'not JSON: 400');

    # 25 active tokens at most: one is active, 24 more
    my @ok = grep { client_credentials($e)->{status} == 200 } 1 .. 24;
    is(scalar @ok, 24, '24 more tokens (25 active)');
    is_envelope_error(client_credentials($e), 429, 'too_many_tokens', 'the 26th: 429');
    $r = refresh($e, $rt2);
    is($r->{status}, 200, 'a refresh at the cap rotates the pair');
    is(truncate_with($e, $r->{json}{access_token})->{status}, 200, 'and its token works');
    is(SmartyTest::emulator_stats($e)->{tokens_issued}, 27, 'tokens_issued');

    # no token in the log (the emulator's own log, without --quiet)
    my $log = SmartyTest::slurp("$emu->{dir}/emulator.log");
    ok(length $log, 'the emulator logs');
    is(index($log, $token), -1, 'the service token is in no log line');

    SmartyTest::stop_proc($e);
}

{
    my $e = SmartyTest::start_emulator(args => [ '--token-lifetime', '1', '--refresh-lifetime', '1',
                                                 '--max-tokens', '2' ]);
    # neither --token nor --token-file: no static token at all
    like(SmartyTest::slurp("$e->{dir}/emulator.log"),
         qr/no --token or --token-file: the API accepts only access tokens/,
         'without --token nor --token-file the start says so');
    for my $t ('plain-token', 'smarty-emulator-secret', 'smarty-emulator', 'x') {
        is_envelope_error(truncate_with($e, $t), 401, 'invalid_token',
                          "no static token: \"$t\" is refused");
    }
    my $r = client_credentials($e);
    is($r->{json}{expires_in}, 1, '--token-lifetime 1: expires_in 1');
    my $at = $r->{json}{access_token};
    is(truncate_with($e, $at)->{status}, 200, 'the token works at first');
    is(client_credentials($e)->{status}, 200, 'a second token');
    is_envelope_error(client_credentials($e), 429, 'too_many_tokens', '--max-tokens 2: the third 429');
    ok(SmartyTest::wait_until(sub { truncate_with($e, $at)->{status} == 401 }, 10),
       'the access token expires');
    ok(SmartyTest::wait_until(sub { client_credentials($e)->{status} == 200 }, 10),
       'expired tokens no longer count against the cap');
    unlike(SmartyTest::slurp("$e->{dir}/emulator.log"), qr/$at/, 'no access token in the log');
    SmartyTest::stop_proc($e);
}

# --- revoking every token at once ---------------------------------------------------------

sub revoke {
    my ($e) = @_;
    return SmartyTest::http('POST', "$e->{url}/_emulator/tokens/revoke");
}

{
    my $e = SmartyTest::start_emulator(args => [ '--token', 'plain-token' ]);
    my $first = client_credentials($e)->{json};
    my $b = client_credentials($e)->{json};
    my $c = refresh($e, $b->{refresh_token})->{json};
    is(truncate_with($e, $first->{access_token})->{status}, 200, 'a token works');

    my $r = revoke($e);
    is($r->{status}, 200, 'tokens/revoke: 200');
    is_deeply($r->{json}, { revoked => 4 },
              'two active pairs: four tokens revoked (the refreshed pair was already)');
    for my $x ([ 'first', $first ], [ 'refreshed', $c ]) {
        is_envelope_error(truncate_with($e, $x->[1]{access_token}), 401, 'invalid_token',
                          "the $x->[0] access token is refused");
        is_envelope_error(refresh($e, $x->[1]{refresh_token}), 400, 'invalid_grant',
                          "the $x->[0] refresh token is refused");
    }
    is(truncate_with($e, 'plain-token')->{status}, 200, 'the service token still works');
    my $d = client_credentials($e);
    is($d->{status}, 200, 'a new token after the revocation');
    is(truncate_with($e, $d->{json}{access_token})->{status}, 200, 'and it works');
    is_deeply(revoke($e)->{json}, { revoked => 2 }, 'one pair: two tokens revoked');
    is_deeply(revoke($e)->{json}, { revoked => 0 }, 'none left: 0');
    is_envelope_error(SmartyTest::http('GET', "$e->{url}/_emulator/tokens/revoke"), 405,
                      'method_not_allowed', 'tokens/revoke: GET is 405');
    like(SmartyTest::slurp("$e->{dir}/emulator.log"), qr/tokens revoked: 4$/m,
         'the revocation is logged');
    SmartyTest::stop_proc($e);
}

{
    # expired tokens are not counted
    my $e = SmartyTest::start_emulator(args => [ '--quiet', '--token-lifetime', '1' ]);
    my $at = client_credentials($e)->{json}{access_token};
    ok(SmartyTest::wait_until(sub { truncate_with($e, $at)->{status} == 401 }, 10),
       'the access token expires');
    is_deeply(SmartyTest::emulator_stats($e)->{tokens},
              { issued => 1, refreshed => 0, active => 0, max_active => 1, refused => 0 },
              'stats: an expired token is no longer active');
    is_deeply(revoke($e)->{json}, { revoked => 1 }, 'only its refresh token is revoked');
    SmartyTest::stop_proc($e);
}

# --- the token endpoint's stats -----------------------------------------------------------

{
    my $e = SmartyTest::start_emulator(args => [ '--quiet', '--token', 'plain-token',
                                                 '--max-tokens', '3' ]);
    my $is = sub {
        my ($want, $name) = @_;
        my %w;
        @w{qw(issued refreshed active max_active refused)} = @$want;
        my $st = SmartyTest::emulator_stats($e);
        is_deeply($st->{tokens}, \%w, "stats: $name");
        is($st->{tokens_issued}, $w{issued}, 'tokens_issued is tokens.issued');
    };
    $is->([ 0, 0, 0, 0, 0 ], 'nothing yet');

    client_credentials($e);
    my $b = client_credentials($e)->{json};
    $is->([ 2, 0, 2, 2, 0 ], 'two tokens issued');
    is(refresh($e, $b->{refresh_token})->{status}, 200, 'a refresh');
    $is->([ 3, 1, 2, 2, 0 ], 'one of them by refresh; two active still');
    is(client_credentials($e)->{status}, 200, 'a third active');
    $is->([ 4, 1, 3, 3, 0 ], 'three active at most');

    is(client_credentials($e)->{status}, 429, 'a fourth: 429');
    is(client_credentials($e, secret => 'no')->{status}, 401, 'a wrong secret: 401');
    is(refresh($e, $b->{refresh_token})->{status}, 400, 'a used refresh token: 400');
    is(token_call($e, 'x')->{status}, 400, 'not JSON: 400');
    is(SmartyTest::http('GET', "$e->{url}/auth/oauth/v1/token")->{status}, 405, 'GET: 405');
    SmartyTest::http('POST', "$e->{url}/_emulator/faults?token_fail=1");
    is(client_credentials($e)->{status}, 503, 'an injected 503');
    SmartyTest::http('POST', "$e->{url}/_emulator/faults?token_fail=0&token_hang=1");
    is(SmartyTest::http('POST', "$e->{url}/auth/oauth/v1/token", timeout => 1,
                        body => '{}')->{status}, 599, 'a hang');
    SmartyTest::http('POST', "$e->{url}/_emulator/faults?token_hang=0");
    $is->([ 4, 1, 3, 3, 6 ], 'six refused (a hang is not: it answers nothing)');

    is_deeply(revoke($e)->{json}, { revoked => 6 }, 'revoked');
    $is->([ 4, 1, 0, 3, 6 ], 'none active after the revocation, the highest kept');

    is(client_credentials($e)->{status}, 200, 'a new token');
    SmartyTest::http('POST', "$e->{url}/_emulator/reset");
    $is->([ 0, 0, 1, 1, 0 ], 'reset: zero, the highest from the one active');
    SmartyTest::http('POST', "$e->{url}/_emulator/reset?tokens=1");
    $is->([ 0, 0, 0, 0, 0 ], 'reset?tokens=1: all zero');
    SmartyTest::stop_proc($e);
}

# --- faults of the token endpoint --------------------------------------------------------

{
    my $e = SmartyTest::start_emulator(args => [ '--token', 'plain-token' ]);
    my $f = sub {
        my ($q) = @_;
        my $r = SmartyTest::http('POST', "$e->{url}/_emulator/faults?$q");
        is($r->{status}, 200, "faults: $q");
        return $r->{json};
    };

    # the API's faults never apply to the token endpoint
    $f->('fail_5xx=1&hang=1&reset=1&latency_ms=3000');
    my $t0 = time;
    is(client_credentials($e)->{status}, 200, 'fail_5xx, hang, reset, latency_ms: '
       . 'the token endpoint answers');
    cmp_ok(time - $t0, '<', 2, 'at once');
    $f->('fail_5xx=0&hang=0&reset=0&latency_ms=0');

    my $k = $f->('token_fail=1');
    is($k->{token_fail}, 1, 'token_fail is set');
    is_deeply(SmartyTest::http('GET', "$e->{url}/_emulator/faults")->{json}, $k,
              'and read back with GET');
    my $r = client_credentials($e);
    is_envelope_error($r, 503, 'service_unavailable', 'token_fail=1: 503');
    like($r->{json}{body}{error}, qr/injected/, 'an injected failure');
    is(SmartyTest::emulator_stats($e)->{faults}{token_fail}, 1, 'counted in faults');
    is(truncate_with($e, 'plain-token')->{status}, 200, 'the API is not touched');
    $f->('token_fail=0');
    my $pair = client_credentials($e);
    is($pair->{status}, 200, 'token_fail=0: 200 again');

    $f->('token_latency_ms=400');
    $t0 = time;
    is(refresh($e, $pair->{json}{refresh_token})->{status}, 200, 'token_latency_ms=400: 200');
    cmp_ok(time - $t0, '>=', 0.39, 'it took 400 ms');
    $t0 = time;
    is(truncate_with($e, 'plain-token')->{status}, 200, 'the API answers');
    cmp_ok(time - $t0, '<', 0.3, 'without that latency');
    $f->('token_latency_ms=0');

    $f->('token_hang=1');
    $t0 = time;
    $r = SmartyTest::http('POST', "$e->{url}/auth/oauth/v1/token", timeout => 1,
        headers => { 'Content-Type' => 'application/json' },
        body => $JSON->encode({ client_id => 'smarty-emulator',
                                client_secret => 'smarty-emulator-secret',
                                grant_type => 'client_credentials' }));
    is($r->{status}, 599, 'token_hang=1: no answer before the client gives up');
    cmp_ok(time - $t0, '<', 5, 'the client gave up after its timeout');
    is(SmartyTest::emulator_stats($e)->{faults}{token_hang}, 1, 'counted in faults');
    ok(SmartyTest::wait_until(sub {
           SmartyTest::slurp("$e->{dir}/emulator.log")
               =~ m{POST /auth/oauth/v1/token hang over} }, 10),
       'the hang ended when the client left');
    is(truncate_with($e, 'plain-token')->{status}, 200, 'the API answers meanwhile');
    $f->('token_hang=0');

    for my $bad ('token_fail=1.5', 'token_hang=x', 'token_latency_ms=-1') {
        is_envelope_error(SmartyTest::http('POST', "$e->{url}/_emulator/faults?$bad"),
                          400, 'bad_fault', "faults: $bad is refused");
    }
    SmartyTest::stop_proc($e);
}

{
    # the flags; a hang ends after --hang-max-s
    my $e = SmartyTest::start_emulator(args => [ '--quiet', '--token-fail', '1',
                                                 '--token-latency-ms', '50',
                                                 '--token-hang', '0', '--hang-max-s', '1' ]);
    my $k = SmartyTest::http('GET', "$e->{url}/_emulator/faults")->{json};
    is_deeply([ @$k{qw(token_fail token_hang token_latency_ms)} ], [ 1, 0, 50 ],
              '--token-fail, --token-hang, --token-latency-ms');
    is_envelope_error(client_credentials($e), 503, 'service_unavailable',
                      '--token-fail 1: 503');
    SmartyTest::http('POST', "$e->{url}/_emulator/faults?token_fail=0&token_hang=1");
    my $t0 = time;
    my $r = client_credentials($e);
    is($r->{status}, 599, 'token_hang=1: the connection closes without an answer');
    cmp_ok(time - $t0, '>=', 0.9, 'after --hang-max-s 1');
    cmp_ok(time - $t0, '<', 5, 'not later');
    SmartyTest::stop_proc($e);
}

# --- flags and a clean stop ---------------------------------------------------------------

{
    my $help = `$SmartyTest::BUILD/smarty-emulator --help`;
    is($? >> 8, 0, '--help exits 0');
    for my $f (qw(listen port token token-file client-id client-secret token-lifetime
                  refresh-lifetime max-tokens max-images max-image-bytes max-body-bytes
                  latency-ms per-image-ms fail-5xx temp-error hang hang-max-s reset
                  token-fail token-hang token-latency-ms seed
                  quiet help)) {
        like($help, qr/^\s+--\Q$f\E\b/m, "--help lists --$f");
    }
    my $out = `$SmartyTest::BUILD/smarty-emulator --fail-5xx 2 2>&1`;
    isnt($? >> 8, 0, 'a bad flag value is refused');
    for my $bad ([ '--token-fail', '2' ], [ '--token-hang', '-1' ],
                 [ '--token-latency-ms', 'x' ]) {
        $out = `$SmartyTest::BUILD/smarty-emulator @$bad 2>&1`;
        isnt($? >> 8, 0, "@$bad is refused");
    }

    my $e = SmartyTest::start_emulator(token => 't', args => [ '--hang', '1' ]);
    # a request hangs; SIGTERM stops the emulator at once anyway
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $e->{port},
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    my ($body, $ct) = SmartyTest::api_body(meta => { space => '1', images => [ { name => 'a' } ] },
                                           images => [ [ 'a', $rachel ] ]);
    print $s "POST /api/v1/persons/recognize?oauth_provider=mcs&oauth_token=t HTTP/1.1\r\n"
           . "Host: x\r\nContent-Type: $ct\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    ok(SmartyTest::wait_until(sub { SmartyTest::emulator_stats($e)->{faults}{hang} == 1 }, 10),
       'a request hangs');
    my $t0 = time;
    SmartyTest::stop_proc($e);
    cmp_ok(time - $t0, '<', 5, 'SIGTERM stops the emulator despite the hang');
    is($e->{status}, 0, 'and it exits 0');
    close $s;
}

SmartyTest::stop_proc($emu);
is($emu->{status}, 0, 'the emulator exits 0 on SIGTERM');

done_testing;
