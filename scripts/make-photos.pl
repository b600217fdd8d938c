#!/usr/bin/env perl
# Writes the walkthrough's sample photos (annotated JPEGs, see
# ../shared/emulator.md) into a folder: group.jpg (six people) and one photo
# of each of them alone.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use SmartyTest;

my $dir = shift // die "usage: $0 DIR\n";
mkdir $dir;
SmartyTest::spew("$dir/group.jpg", SmartyTest::group_photo());
SmartyTest::spew("$dir/$_.jpg", SmartyTest::alone_photo($_))
    for @SmartyTest::FRIENDS;
