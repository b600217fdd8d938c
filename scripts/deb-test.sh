#!/usr/bin/env bash
# The Debian packages on this machine's own nginx (`make deb-test`, as root):
#
#   scripts/deb-test.sh DEB_DIR
#       installs libnginx-mod-http-smarty and smarty-client from DEB_DIR with
#       apt, checks what the distro's layout promises (modules-enabled link,
#       nginx -t with the stock nginx.conf, /etc/smarty's owners and modes,
#       the nginx-abi dependency, which apt enforces), enables the example
#       site as README.Debian says with the emulator as its upstream, runs
#       t/30-walkthrough.t through /usr/sbin/nginx, then removes, reinstalls
#       and purges the packages, checking each time that nginx still starts,
#       and at the end that the machine is as it was.
#   scripts/deb-test.sh --installed
#       the packages are installed already (debian/tests/control): only the
#       site, the walkthrough and a reload, then the site's files put back.
#
# nginx: reloaded if it runs, else started with the stock configuration and
# stopped at the end; through invoke-rc.d (systemd or the init script), or,
# where that is refused (a container's policy-rc.d) or fails, with the
# commands of nginx.service.  The emulator comes from $SMARTY_BUILD (make
# emulator), or is built into the temp directory.  SMARTY_KEEP=1 keeps the
# temp directory (logs, the rendered site).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

mode=full
deb_dir=
case "${1:-}" in
    --installed) mode=installed ;;
    ""|-*) echo "usage: $0 DEB_DIR | --installed" >&2; exit 2 ;;
    *) deb_dir=$(cd "$1" && pwd) ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (it installs packages)" >&2; exit 2; }

PKGS=(libnginx-mod-http-smarty smarty-client)
SITE_AVAIL=/etc/nginx/sites-available/smarty-gateway
SITE_LINK=/etc/nginx/sites-enabled/smarty-gateway
MOD_LINK=/etc/nginx/modules-enabled/50-mod-http-smarty.conf
MOD_CONF=/usr/share/nginx/modules-available/mod-http-smarty.conf
PIDFILE=/run/nginx.pid
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

# --- reporting: TAP-like lines, every failure counted -----------------------

n=0
failed=0
ok()   { n=$((n + 1)); echo "ok $n - $*"; }
nok()  { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() {   # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else nok "$what"; fi
}
step() { echo "# --- $*"; }
die()  { echo "Bail out! $*"; exit 1; }

# --- the machine's state ----------------------------------------------------

state() {
    find /etc/nginx /etc/smarty /usr/lib/nginx/modules \
         /usr/share/nginx/modules-available /var/lib/libnginx-mod-http-smarty \
         -printf '%p %y %m %u:%g %l\n' 2>/dev/null | LC_ALL=C sort || true
    find /etc/nginx /etc/smarty -type f -exec md5sum {} + 2>/dev/null \
        | LC_ALL=C sort -k2 || true
    echo "statoverrides:"
    dpkg-statoverride --list | LC_ALL=C sort
    echo "packages:"
    dpkg-query -W -f='${db:Status-Status} ${binary:Package} ${Version}\n' \
        | grep -v '^not-installed ' | LC_ALL=C sort
}

installed() {   # a package is installed (not merely its config files)
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

known() {       # dpkg knows anything of a package (installed or config-files)
    local s
    s=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
    [ -n "$s" ] && [ "$s" != not-installed ]
}
not_known() { ! known "$1"; }

field_has() {   # field_has PACKAGE FIELD WORD: a control field names WORD
    dpkg-query -W -f="\${$2}" "$1" | tr ',' '\n' | sed 's/^ *//; s/ .*//' \
        | grep -xF -- "$3" >/dev/null
}

no_statoverride() { ! dpkg-statoverride --list | grep ' /etc/smarty' >/dev/null; }
quiet() { "$@" >/dev/null 2>&1; }

# --- nginx ------------------------------------------------------------------

nginx_pid() {   # the running master's pid, from the stock pid file
    local pid exe
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    case "$exe" in /usr/sbin/nginx*) echo "$pid" ;; *) return 1 ;; esac
}

nginx_t() { /usr/sbin/nginx -t -q -g 'daemon on; master_process on;' 2>&1; }
nginx_stopped() { ! nginx_pid >/dev/null; }
nginx_restart() { nginx_ctl stop && nginx_ctl start; }
loads_module() {    # (grep -q would end nginx -T early: a SIGPIPE)
    /usr/sbin/nginx -T 2>/dev/null \
        | grep -x 'load_module modules/ngx_http_smarty_module.so;' >/dev/null
}

workers() {     # the master's children, one pid a line (no ps: procps may
    local pid f  # be missing from a minimal system)
    pid=$(nginx_pid) || return 0
    for f in /proc/[0-9]*/status; do
        grep -qx "PPid:[[:space:]]*$pid" "$f" 2>/dev/null || continue
        f=${f#/proc/}
        echo "${f%/status}"
    done | sort
}

# what nginx.service runs
nginx_direct() {
    case $1 in
        start) /usr/sbin/nginx -g 'daemon on; master_process on;' ;;
        reload) /usr/sbin/nginx -g 'daemon on; master_process on;' -s reload ;;
        stop) if nginx_pid >/dev/null; then /usr/sbin/nginx -s quit; fi ;;
    esac
}

nginx_done() {  # nginx_done ACTION [OLD_WORKERS]: the action took effect
    local i
    for i in $(seq 1 50); do
        case $1 in
            start) nginx_pid >/dev/null && return 0 ;;
            stop) nginx_pid >/dev/null || return 0 ;;
            reload) [ -n "$(comm -13 <(echo "$2") <(workers))" ] && return 0 ;;
        esac
        sleep 0.1
    done
    return 1
}

# nginx_ctl start|reload|stop: through invoke-rc.d (systemd, or the init
# script) where the policy allows it, else, or if that did nothing, with
# nginx.service's commands.  invoke-rc.d exits 0 when policy-rc.d denies an
# action: its --query says so, and nginx_done checks the effect.  Nothing
# started here may hold the lock (fd 9) nor the caller's output.
nginx_ctl() {
    local action=$1 old q=0
    old=$(workers)
    invoke-rc.d --quiet --query nginx "$action" >/dev/null 2>&1 || q=$?
    case $q in
        104|105|106)
            invoke-rc.d nginx "$action" </dev/null >/dev/null 2>&1 9>&- || true
            nginx_done "$action" "$old" && return 0 ;;
    esac
    nginx_direct "$action" </dev/null >/dev/null 2>>"$tmp/logs/nginx-ctl.log" 9>&- \
        || true
    nginx_done "$action" "$old" && return 0
    echo "# nginx: $action did not take effect" >&2
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {   # wait_port PORT open|closed
    local i
    for i in $(seq 1 100); do
        if port_open "$1"; then [ "$2" = open ] && return 0
        else [ "$2" = closed ] && return 0; fi
        sleep 0.1
    done
    return 1
}

free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                      LocalPort => 0, Proto => "tcp") or die;
        print $s->sockport, "\n";'
}

# the nginx workers' user(s), by their effective uid
workers_user() {
    local w uid
    for w in $(workers); do
        uid=$(awk '/^Uid:/ { print $3 }' "/proc/$w/status" 2>/dev/null) || continue
        [ -n "$uid" ] && getent passwd "$uid" | cut -d: -f1
    done | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# --- setup and cleanup --------------------------------------------------------

tmp=$(mktemp -d /tmp/smarty-deb-test.XXXXXX)
chmod 755 "$tmp"    # apt's _apt user reads the packages, nginx's logs land here
procs=()
nginx_was_running=no
started_nginx=no
backup_done=no
we_installed=no
# nginx -t makes an empty pid file where there is none: removed at the end
pidfile_was_there=no
[ -e "$PIDFILE" ] && pidfile_was_there=yes
forget_pidfile() {
    if [ "$pidfile_was_there" = no ] && [ -f "$PIDFILE" ] && [ ! -s "$PIDFILE" ]
    then
        rm -f "$PIDFILE"
    fi
}

mkdir -p /run/lock
exec 9>/run/lock/smarty-deb-test.lock   # one deb-test at a time
flock -n 9 || die "another deb-test runs on this machine"

cleanup() {
    local rc=$?
    set +e
    for p in "${procs[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "$we_installed" = yes ]; then
        # whatever the test left: the packages, the site's link
        if [ -L "$SITE_LINK" ]; then rm -f "$SITE_LINK"; fi
        local left=()
        for p in "${PKGS[@]}"; do known "$p" && left+=("$p"); done
        if [ ${#left[@]} -gt 0 ]; then
            echo "# cleanup: purging ${left[*]}"
            "${APT[@]}" purge "${left[@]}" >/dev/null 2>&1
        fi
    elif [ "$backup_done" = yes ]; then
        restore_site_files
    fi
    if [ "$started_nginx" = yes ] && nginx_pid >/dev/null; then
        nginx_ctl stop
    elif [ "$nginx_was_running" = yes ] && nginx_pid >/dev/null; then
        nginx_ctl reload
    fi
    forget_pidfile
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        echo "# logs in $tmp/logs (kept)"
    elif [ -z "${SMARTY_KEEP:-}" ]; then
        rm -rf "$tmp"
    else
        echo "# kept $tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "Bail out! line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# the emulator: make emulator's, or one built here
emulator=${SMARTY_BUILD:-$top/build}/smarty-emulator
if [ ! -x "$emulator" ]; then
    make -s BUILD="$tmp/build" emulator >/dev/null
    emulator=$tmp/build/smarty-emulator
fi

start_bg() {    # start_bg LOG COMMAND...: runs it, remembers its pid
    local log=$1; shift
    "$@" > "$log" 2>&1 &
    procs+=($!)
}

# --- the site and the walkthrough ---------------------------------------------
# README.Debian's steps: the OAuth client, a client from `smarty keygen`, the site
# (here rendered in place: the emulator over plain HTTP as its upstream, no
# Redis, logs into the temp directory), its link, nginx -t, a reload.  Then
# the walkthrough through /usr/sbin/nginx.

oauth_id=smarty-deb-test
oauth_secret=$(openssl rand -hex 32)
(umask 077
 printf '%s\n' "$oauth_id" > "$tmp/oauth-client-id"
 printf '%s\n' "$oauth_secret" > "$tmp/oauth-client-secret")
mkdir -p "$tmp/logs" "$tmp/photos"
scripts/make-photos.pl "$tmp/photos"

emu_port=$(free_port)
start_bg "$tmp/logs/emulator.log" "$emulator" --listen 127.0.0.1 \
    --port "$emu_port" --client-id-file "$tmp/oauth-client-id" \
    --client-secret-file "$tmp/oauth-client-secret" --quiet
# no Redis: the site's smarty_redis points at a closed port, so that every
# call reaches the emulator, as t/30-walkthrough.t checks (with a cache, its
# last recognize would be a hit); the gateway does without Redis
redis_port=$(free_port)
gw_port=$(free_port)
gw=http://127.0.0.1:$gw_port
wait_port "$emu_port" open || die "the emulator did not start"

# a client file entry: adds `smarty keygen`'s entry to /etc/smarty/clients.json
# in place (its owner and mode stay), writes the key to $tmp/NAME.key
add_client() {
    local name=$1; shift
    /usr/bin/smarty keygen --name "$name" --json "$@" > "$tmp/$name.json"
    perl -MJSON::PP -e '
        my ($new, $file, $keyfile) = @ARGV;
        local $/;
        open my $n, "<", $new or die; my $j = decode_json(<$n>);
        open my $f, "<", $file or die; my $c = decode_json(<$f>);
        push @{ $c->{clients} }, $j->{entry};
        open $f, ">", $file or die;
        print $f JSON::PP->new->canonical->pretty->encode($c);
        close $f or die;
        umask 077;
        open my $k, ">", $keyfile or die; print $k "$j->{key}\n";
    ' "$tmp/$name.json" /etc/smarty/clients.json "$tmp/$name.key"
    rm -f "$tmp/$name.json"
}

recognize_as() {    # recognize_as NAME: the installed client, space 1
    /usr/bin/smarty -u "$gw/api/v1/persons/recognize" --key-file "$tmp/$1.key" \
        -p "$tmp/photos/group.jpg" --meta '{"space":"1","create_new":false}' \
        --timeout 10 > "$tmp/logs/answer-$1.json" 2>&1
}

wait_recognize_as() {   # a reload takes effect: wait for it
    local i
    for i in $(seq 1 50); do recognize_as "$1" && return 0; sleep 0.2; done
    return 1
}

# for --installed: the site's files as the package left them
backup_site_files() {
    cp -a /etc/smarty/clients.json "$tmp/clients.json.orig"
    cp -a "$SITE_AVAIL" "$tmp/site.orig"
    backup_done=yes
}
restore_site_files() {
    rm -f "$SITE_LINK" /etc/smarty/oauth-client-id \
        /etc/smarty/oauth-client-secret
    cat "$tmp/clients.json.orig" > /etc/smarty/clients.json
    cat "$tmp/site.orig" > "$SITE_AVAIL"
}

site_and_walkthrough() {
    step "the example site, enabled as README.Debian says"
    check "the site is not enabled by the package" test ! -e "$SITE_LINK"
    cp "$SITE_AVAIL" "$tmp/site.shipped"

    for f in oauth-client-id oauth-client-secret; do
        install -m 0640 -o root -g www-data /dev/null "/etc/smarty/$f"
        cat "$tmp/$f" > "/etc/smarty/$f"
        check "$f root:www-data 0640" \
            test "$(stat -c '%a %U:%G' "/etc/smarty/$f")" = "640 root:www-data"
    done
    add_client demo
    check "clients.json still root:www-data 0640 with a client" \
        test "$(stat -c '%a %U:%G' /etc/smarty/clients.json)" = "640 root:www-data"
    ln -s ../sites-available/smarty-gateway "$SITE_LINK"

    # the site as shipped (the real API over verified TLS); only the
    # upstream's name replaced, which nginx resolves as it reads the
    # configuration and this machine may not resolve
    scripts/render-site.pl --upstream 127.0.0.1:443 "$tmp/site.shipped" \
        > "$tmp/site.t"
    cat "$tmp/site.t" > "$SITE_AVAIL"
    out=$(nginx_t) && ok "nginx -t: the site as shipped, its secret files made" \
        || { nok "nginx -t: the site as shipped"; echo "$out" | sed 's/^/# /'; }
    if grep -q '\[warn\]' <<<"$out"; then
        nok "nginx -t without warnings"; echo "$out" | sed 's/^/# /'
    else
        ok "nginx -t without warnings"
    fi

    scripts/render-site.pl --listen "127.0.0.1:$gw_port" \
        --upstream "127.0.0.1:$emu_port" --plain-http \
        --token-url "http://127.0.0.1:$emu_port/auth/oauth/v1/token" \
        --redis "127.0.0.1:$redis_port" --logs "$tmp/logs" \
        "$tmp/site.shipped" > "$tmp/site.emulator"
    cat "$tmp/site.emulator" > "$SITE_AVAIL"
    out=$(nginx_t) && ok "nginx -t: the site in front of the emulator" \
        || { nok "nginx -t: the site in front of the emulator"; echo "$out" | sed 's/^/# /'; }

    if nginx_pid >/dev/null; then
        check "nginx reloads" nginx_ctl reload
    else
        check "nginx starts" nginx_ctl start
        started_nginx=yes
    fi
    check "the gateway listens on 127.0.0.1:$gw_port" wait_port "$gw_port" open
    check "nginx's workers run as www-data" \
        test "$(workers_user)" = www-data

    step "the walkthrough through /usr/sbin/nginx"
    if SMARTY_GATEWAY_URL=$gw SMARTY_EMULATOR_URL=http://127.0.0.1:$emu_port \
       SMARTY_GATEWAY_KEY=$(cat "$tmp/demo.key") prove t/30-walkthrough.t
    then ok "t/30-walkthrough.t through the installed gateway"
    else nok "t/30-walkthrough.t through the installed gateway"; fi
    check "the installed smarty recognizes through it" recognize_as demo

    step "OAuth through the site: a token for demo's name and key, used"
    if curl -sf "$gw/auth/oauth/v1/token" -u "demo:$(cat "$tmp/demo.key")" \
           -d grant_type=client_credentials > "$tmp/logs/token.json"
    then ok "the site's token endpoint issues a token"
    else nok "the site's token endpoint issues a token"; fi
    check "the token works as oauth_token" curl -sf -o /dev/null \
        -F 'meta={"space":"1","images":[{"name":"file_0"}]};type=application/json' \
        -F "file_0=@$tmp/photos/group.jpg" \
        "$gw/api/v1/persons/recognize?oauth_provider=mcs&oauth_token=$(
            sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' "$tmp/logs/token.json")"
    rm -f "$tmp/logs/token.json"

    step "a new client after a reload"
    add_client second --spaces 1 --methods persons/recognize
    if recognize_as second; then
        nok "second's key is refused before the reload"
    else
        ok "second's key is refused before the reload"
    fi
    check "nginx reloads" nginx_ctl reload
    check "second's key works after it" wait_recognize_as second
    check "the gateway logged to the site's log" \
        grep -q 'client=second method=persons/recognize' "$tmp/logs/smarty-gateway.access.log"
}

# --- --installed: only the site --------------------------------------------

if [ "$mode" = installed ]; then
    for p in "${PKGS[@]}"; do installed "$p" || die "$p is not installed"; done
    [ ! -e "$SITE_LINK" ] || die "$SITE_LINK exists: the site is in use here"
    for f in oauth-client-id oauth-client-secret upstream.token; do
        [ ! -e "/etc/smarty/$f" ] || die "/etc/smarty/$f exists: in use here"
    done
    nginx_pid >/dev/null && nginx_was_running=yes
    backup_site_files
    site_and_walkthrough
    restore_site_files
    backup_done=no
    check "nginx -t after the site is gone" nginx_t
    echo "1..$n"
    [ "$failed" -eq 0 ] || { echo "# $failed of $n failed"; exit 1; }
    exit 0
fi

# --- full: install, test, remove, reinstall, purge ----------------------------

debs=()
for p in "${PKGS[@]}"; do
    f=$(ls "$deb_dir/${p}"_*.deb 2>/dev/null | head -1)
    [ -n "$f" ] || die "no ${p}_*.deb in $deb_dir (make deb)"
    cp "$f" "$tmp/"
    debs+=("$tmp/$(basename "$f")")
done
chmod 644 "$tmp"/*.deb

for p in "${PKGS[@]}"; do
    known "$p" && die "$p is on this machine already: the test would replace it"
done
[ ! -e /etc/smarty ] || die "/etc/smarty exists: the test would change it"
[ ! -e "$SITE_LINK" ] || die "$SITE_LINK exists"
[ -x /usr/sbin/nginx ] || die "no /usr/sbin/nginx (apt-get install nginx)"
out=$(nginx_t) || die "nginx -t fails before the test: $out"

state > "$tmp/state.before"
nginx_pid >/dev/null && nginx_was_running=yes
echo "# nginx running before the test: $nginx_was_running"

step "install"
we_installed=yes
"${APT[@]}" install --no-install-recommends "${debs[@]}" > "$tmp/logs/apt-install.log" 2>&1 \
    || { cat "$tmp/logs/apt-install.log"; die "apt-get install failed"; }
for p in "${PKGS[@]}"; do check "$p installed" installed "$p"; done
check "modules-enabled link to the modules-available snippet" \
    test "$(readlink "$MOD_LINK")" = "$MOD_CONF"
check "the snippet loads the module" \
    grep -qx 'load_module modules/ngx_http_smarty_module.so;' "$MOD_CONF"
out=$(nginx_t) && ok "nginx -t with the stock nginx.conf" \
    || { nok "nginx -t with the stock nginx.conf"; echo "$out" | sed 's/^/# /'; }
check "nginx -T: the stock configuration loads the module" loads_module
check "/etc/smarty root:www-data 0750" \
    test "$(stat -c '%a %U:%G' /etc/smarty)" = "750 root:www-data"
check "/etc/smarty/clients.json root:www-data 0640" \
    test "$(stat -c '%a %U:%G' /etc/smarty/clients.json)" = "640 root:www-data"
check "/etc/smarty/oauth-issuer.key root:www-data 0640, 64 hex digits" \
    test "$(stat -c '%a %U:%G' /etc/smarty/oauth-issuer.key)" = "640 root:www-data" \
        -a "$(grep -cxE '[0-9a-f]{64}' /etc/smarty/oauth-issuer.key)" = 1
check "smarty(1) is installed" test -f /usr/share/man/man1/smarty.1.gz
check "smarty --help" quiet /usr/bin/smarty --help

step "the nginx ABI"
abi=$(sed -n 's/^nginx:abi=//p' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars)
check "Depends: $abi" field_has libnginx-mod-http-smarty Depends "$abi"
check "the installed nginx provides $abi" field_has nginx Provides "$abi"
# an nginx of another ABI (a stand-in package, only simulated): apt removes
# the module rather than install it beside a module it cannot load
arch=$(dpkg --print-architecture)
ver=$(dpkg-query -W -f='${Version}' nginx)
mkdir -p "$tmp/fake-nginx/DEBIAN"
cat > "$tmp/fake-nginx/DEBIAN/control" <<EOF
Package: nginx
Version: ${ver}+abi.test
Architecture: $arch
Maintainer: smarty-gateway deb-test <root@localhost>
Provides: httpd, nginx-abi-0.0.0-0
Description: stand-in for an nginx of another ABI (deb-test, never installed)
EOF
dpkg-deb --root-owner-group -b "$tmp/fake-nginx" "$tmp/nginx-other-abi.deb" >/dev/null
chmod 644 "$tmp/nginx-other-abi.deb"
sim=$(apt-get -s -o Debug::NoLocking=1 install "$tmp/nginx-other-abi.deb" 2>&1 || true)
if grep -q '^Remv libnginx-mod-http-smarty' <<<"$sim"; then
    ok "apt would remove the module with an nginx of another ABI"
else
    nok "apt would remove the module with an nginx of another ABI"; echo "$sim" | sed 's/^/# /'
fi
if apt-get -s -o Debug::NoLocking=1 --no-remove install "$tmp/nginx-other-abi.deb" \
       > "$tmp/logs/apt-abi.log" 2>&1; then
    nok "apt --no-remove refuses that nginx"; sed 's/^/# /' "$tmp/logs/apt-abi.log"
else
    ok "apt --no-remove refuses that nginx"
fi

site_and_walkthrough

step "remove, the site still enabled"
"${APT[@]}" remove "${PKGS[@]}" > "$tmp/logs/apt-remove.log" 2>&1 \
    || { cat "$tmp/logs/apt-remove.log"; die "apt-get remove failed"; }
check "no modules-enabled link" test ! -e "$MOD_LINK"
check "dh_nginx's .removed link (enables it again on reinstall)" test -L "$MOD_LINK.removed"
check "the site's link is gone" test ! -e "$SITE_LINK" -a ! -L "$SITE_LINK"
check "the OAuth client's files, the issuer's key, the clients file are kept" \
    test -f /etc/smarty/oauth-client-id -a -f /etc/smarty/oauth-client-secret \
        -a -f /etc/smarty/clients.json -a -f /etc/smarty/oauth-issuer.key
out=$(nginx_t) && ok "nginx -t without the module" \
    || { nok "nginx -t without the module"; echo "$out" | sed 's/^/# /'; }
check "nginx reloads" nginx_ctl reload
check "the gateway's port is closed" wait_port "$gw_port" closed
check "nginx restarts" nginx_restart

step "install again"
"${APT[@]}" install --no-install-recommends "${debs[@]}" > "$tmp/logs/apt-reinstall.log" 2>&1 \
    || { cat "$tmp/logs/apt-reinstall.log"; die "apt-get install failed"; }
check "the modules-enabled link is back" test "$(readlink "$MOD_LINK")" = "$MOD_CONF"
check "the site's link is back" test "$(readlink "$SITE_LINK")" = ../sites-available/smarty-gateway
check "/etc/smarty still root:www-data 0750" \
    test "$(stat -c '%a %U:%G' /etc/smarty)" = "750 root:www-data"
out=$(nginx_t) && ok "nginx -t" || { nok "nginx -t"; echo "$out" | sed 's/^/# /'; }
check "nginx reloads" nginx_ctl reload
check "the gateway answers again" wait_recognize_as demo

step "purge, the site still enabled"
"${APT[@]}" purge "${PKGS[@]}" > "$tmp/logs/apt-purge.log" 2>&1 \
    || { cat "$tmp/logs/apt-purge.log"; die "apt-get purge failed"; }
for p in "${PKGS[@]}"; do check "$p purged" not_known "$p"; done
check "no smarty file left in /etc/nginx" \
    test -z "$(find /etc/nginx -name '*smarty*' -print -quit)"
check "/etc/smarty is gone" test ! -e /etc/smarty
check "no statoverride left" no_statoverride
out=$(nginx_t) && ok "nginx -t after the purge" \
    || { nok "nginx -t after the purge"; echo "$out" | sed 's/^/# /'; }
check "nginx reloads" nginx_ctl reload

step "the machine as it was"
if [ "$started_nginx" = yes ]; then
    check "nginx stops (the test started it)" nginx_ctl stop
    started_nginx=no
fi
if [ "$nginx_was_running" = yes ]; then
    check "nginx still runs" quiet nginx_pid
else
    check "nginx does not run, as before" nginx_stopped
fi
forget_pidfile
state > "$tmp/state.after"
if diff -u "$tmp/state.before" "$tmp/state.after" > "$tmp/state.diff"; then
    ok "/etc/nginx, /etc/smarty, modules, statoverrides and packages as before"
else
    nok "/etc/nginx, /etc/smarty, modules, statoverrides and packages as before"
    sed 's/^/# /' "$tmp/state.diff"
fi

echo "1..$n"
if [ "$failed" -ne 0 ]; then echo "# $failed of $n failed"; exit 1; fi
echo "# all $n passed"
