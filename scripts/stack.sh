#!/usr/bin/env bash
# Starts (or stops) the whole stack on loopback: Redis, the upstream
# emulator and nginx with the gateway module.  Run state lives in .run/.
#
#   SMARTY_REDIS_MODE     (single) single | cluster | sentinel
#   SMARTY_REDIS_PORT     (6390)  Redis; a cluster takes 6 ports from it
#                                 (3 masters, 3 replicas), sentinel mode
#                                 a master and its replica (6390, 6391)
#   SMARTY_SENTINEL_PORT  (26390) the 3 sentinels (26390..26392)
#   SMARTY_EMULATOR_PORT  (8090)  the upstream emulator
#   SMARTY_GATEWAY_PORT   (8080)  nginx with the gateway
#   SMARTY_EMULATOR_ARGS  ("--per-image-ms 100")  emulator flags, e.g.
#                         "--token-lifetime 5": a new upstream token every
#                         5 s, which the gateway fetches as it goes
#   SMARTY_RUN_DIR        (.run)  run state
#   SMARTY_BUILD          (build) where the module and programs are
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

run=${SMARTY_RUN_DIR:-$top/.run}
build=${SMARTY_BUILD:-$top/build}
redis_port=${SMARTY_REDIS_PORT:-6390}
redis_mode=${SMARTY_REDIS_MODE:-single}
sentinel_port=${SMARTY_SENTINEL_PORT:-26390}
emu_port=${SMARTY_EMULATOR_PORT:-8090}
gw_port=${SMARTY_GATEWAY_PORT:-8080}
emu_args=${SMARTY_EMULATOR_ARGS:---per-image-ms 100}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
    local port=$1 what=$2 i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$what did not come up on 127.0.0.1:$port" >&2
    return 1
}

secrets() {
    mkdir -p "$run"
    chmod 711 "$run"   # nginx workers keep temp files below it

    # the API project's OAuth client: the emulator's token endpoint knows
    # it, the gateway fetches the upstream's token with it (docs/token.md)
    if [ ! -s "$run/oauth-client-id" ] || [ ! -s "$run/oauth-client-secret" ]
    then
        (umask 077
         echo "smarty-gateway-demo" > "$run/oauth-client-id"
         openssl rand -hex 32 > "$run/oauth-client-secret")
    fi

    # the key the gateway signs its OAuth tokens for local clients with
    if [ ! -s "$run/oauth-issuer.key" ]; then
        (umask 077; openssl rand -hex 32 > "$run/oauth-issuer.key")
    fi

    # a demo client with every space and method, and an operator (the
    # quota view) that may call nothing
    if [ ! -s "$run/demo.key" ] || [ ! -s "$run/operator.key" ] \
        || [ ! -s "$run/clients.json" ]
    then
        demo=$("$build/smarty" keygen --name demo --json)
        ops=$("$build/smarty" keygen --name operator --spaces none \
                  --methods none --operator --json)
        (umask 077
         printf '%s\n%s\n' "$demo" "$ops" | perl -MJSON::PP -e '
            my @j = map { decode_json($_) } grep { /\S/ } <STDIN>;
            my @files = @ARGV[0, 1];
            for my $j (@j) {
                open my $k, ">", shift @files or die;
                print $k "$j->{key}\n";
            }
            open my $c, ">", $ARGV[2] or die;
            print $c JSON::PP->new->canonical->pretty
                ->encode({ clients => [ map { $_->{entry} } @j ] });
         ' "$run/demo.key" "$run/operator.key" "$run/clients.json")
    fi
}

start() {
    mkdir -p "$run"
    chmod 711 "$run"   # nginx workers keep temp files below it

    case "$redis_mode" in
        single|cluster|sentinel) ;;
        *) echo "SMARTY_REDIS_MODE must be single, cluster or sentinel" >&2
           return 2 ;;
    esac

    if alive "$run/nginx.pid" || alive "$run/emulator.pid" \
        || alive "$run/redis.pid" || alive "$run/redis-0.pid"
    then
        echo "the stack is already running (make stop first)"
        examples
        return 0
    fi

    secrets
    scripts/make-photos.pl "$run/photos"

    redis_line="smarty_redis 127.0.0.1:$redis_port;"

    case "$redis_mode" in
    single)
        redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
            --appendonly no --dir "$run" --daemonize yes \
            --pidfile "$run/redis.pid" --logfile "$run/redis.log"
        wait_port "$redis_port" Redis
        ;;
    cluster)
        start_cluster
        redis_line="smarty_redis_cluster 127.0.0.1:$redis_port"
        redis_line="$redis_line 127.0.0.1:$((redis_port + 1))"
        redis_line="$redis_line 127.0.0.1:$((redis_port + 2));"
        ;;
    sentinel)
        start_sentinels
        redis_line="smarty_redis_sentinel mymaster"
        for i in 0 1 2; do
            redis_line="$redis_line 127.0.0.1:$((sentinel_port + i))"
        done
        redis_line="$redis_line;"
        ;;
    esac

    # shellcheck disable=SC2086
    # OAuth only: the emulator accepts no service token, so the demo is the
    # production path (the gateway fetches, refreshes and injects a token)
    nohup "$build/smarty-emulator" --listen 127.0.0.1 --port "$emu_port" \
        --client-id-file "$run/oauth-client-id" \
        --client-secret-file "$run/oauth-client-secret" $emu_args \
        > "$run/emulator.log" 2>&1 &
    echo $! > "$run/emulator.pid"
    wait_port "$emu_port" "the emulator"

    sed -e "s|@RUN@|$run|g" \
        -e "s|@MODULE@|$build/ngx_http_smarty_module.so|g" \
        -e "s|@GATEWAY_PORT@|$gw_port|g" \
        -e "s|@EMULATOR_PORT@|$emu_port|g" \
        -e "s|@REDIS_PORT@|$redis_port|g" \
        -e "s|^\( *\)smarty_redis 127.0.0.1:[0-9]*;|\1$redis_line|" \
        -e "s|@DASHBOARD@|$top/dashboard|g" \
        conf/nginx.conf.in > "$run/nginx.conf"
    # glibc keeps freed memory at the top of its heap, where nginx puts
    # request bodies (README, "Performance")
    GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=67108864} \
        nginx -p "$run" -c "$run/nginx.conf" -e "$run/nginx-error.log"
    wait_port "$gw_port" "nginx"

    echo "smarty-gateway is up:"
    echo "  gateway   http://127.0.0.1:$gw_port  (nginx, $run/nginx.conf)"
    echo "  emulator  http://127.0.0.1:$emu_port  (the upstream)"
    case "$redis_mode" in
    single)   echo "  redis     127.0.0.1:$redis_port" ;;
    cluster)  echo "  redis     a cluster, 127.0.0.1:$redis_port to" \
                   "$((redis_port + 5)) (3 masters, 3 replicas)" ;;
    sentinel) echo "  redis     master 127.0.0.1:$redis_port, replica" \
                   "$((redis_port + 1)), sentinels $sentinel_port to" \
                   "$((sentinel_port + 2)) (\"mymaster\")" ;;
    esac
    examples
}

# one Redis of a cluster or of the sentinels' pair: redis-N.pid, -N.log
redis_node() {
    local n=$1 port=$2
    shift 2
    redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$run" --daemonize yes \
        --pidfile "$run/redis-$n.pid" --logfile "$run/redis-$n.log" "$@"
    wait_port "$port" "Redis $n"
}

# 3 masters and 3 replicas, made with redis-cli --cluster create
start_cluster() {
    local i nodes=()
    for i in 0 1 2 3 4 5; do
        rm -f "$run/nodes-$i.conf"
        redis_node "$i" "$((redis_port + i))" --cluster-enabled yes \
            --cluster-config-file "nodes-$i.conf" --cluster-node-timeout 2000
        nodes+=("127.0.0.1:$((redis_port + i))")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 \
        --cluster-yes > "$run/cluster-create.log" 2>&1 \
        || { cat "$run/cluster-create.log" >&2; return 1; }
    for i in $(seq 1 100); do
        if redis-cli -p "$redis_port" CLUSTER INFO \
            | grep -q '^cluster_state:ok'
        then
            return 0
        fi
        sleep 0.1
    done
    echo "the cluster did not come up" >&2
    return 1
}

# a master, its replica, 3 sentinels watching "mymaster"
start_sentinels() {
    local i port
    redis_node 0 "$redis_port"
    redis_node 1 "$((redis_port + 1))" --replicaof 127.0.0.1 "$redis_port"
    for i in 0 1 2; do
        port=$((sentinel_port + i))
        cat > "$run/sentinel-$i.conf" <<EOT
port $port
bind 127.0.0.1
dir $run
daemonize yes
pidfile $run/sentinel-$i.pid
logfile $run/sentinel-$i.log
sentinel monitor mymaster 127.0.0.1 $redis_port 2
sentinel down-after-milliseconds mymaster 2000
sentinel failover-timeout mymaster 10000
EOT
        redis-sentinel "$run/sentinel-$i.conf"
        wait_port "$port" "sentinel $i"
    done
}

examples() {
    cat <<EOT

Try it (the demo key is in $run/demo.key, sample photos in $run/photos):

  curl -s http://127.0.0.1:$gw_port/api/v1/persons/recognize \\
    -H "Authorization: Bearer \$(cat $run/demo.key)" \\
    -F 'meta={"space":"1","create_new":false,"images":[{"name":"file_0"}]};type=application/json' \\
    -F file_0=@$run/photos/group.jpg

  SMARTY_KEY="\$(cat $run/demo.key)" \\
  $build/smarty -u http://127.0.0.1:$gw_port/api/v1/persons/recognize \\
    -p $run/photos/group.jpg \\
    --meta '{"space":"1","create_new":false}'

In OAuth mode, as clients of the API itself do (docs/oauth.md): a token
for the demo client's name and key, then the call with it as oauth_token:

  TOKEN=\$(curl -s http://127.0.0.1:$gw_port/auth/oauth/v1/token \\
    -u "demo:\$(cat $run/demo.key)" -d grant_type=client_credentials \\
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  curl -s "http://127.0.0.1:$gw_port/api/v1/persons/recognize?oauth_provider=mcs&oauth_token=\$TOKEN" \\
    -F 'meta={"space":"1","create_new":false,"images":[{"name":"file_0"}]};type=application/json' \\
    -F file_0=@$run/photos/group.jpg

What the quotas of space 1 have left (docs/quota.md; an operator's key):

  curl -s 'http://127.0.0.1:$gw_port/quota?space=1' \\
    -H "Authorization: Bearer \$(cat $run/operator.key)"

Metrics, the audit trail (docs/metrics.md, docs/audit.md; the operator's key):

  curl -s http://127.0.0.1:$gw_port/metrics \\
    -H "Authorization: Bearer \$(cat $run/operator.key)"

  SMARTY_URL=http://127.0.0.1:$gw_port SMARTY_KEY="\$(cat $run/operator.key)" \\
  $build/smarty audit --since 1h

The dashboard (paste the operator's key, $run/operator.key, when it asks):

  http://127.0.0.1:$gw_port/dashboard/

Stop it with: make stop
EOT
}

# stops the process whose pid is in $1 (TERM, then KILL after 10 s)
stop_pid() {
    local pidfile=$1 what=$2 pid i
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        echo "stopped $what"
    fi
    rm -f "$pidfile"
}

stop() {
    # nginx: a graceful quit first (nginx then removes its pid file), and
    # stop_pid on the master's pid makes sure it is gone
    if alive "$run/nginx.pid"; then
        cp "$run/nginx.pid" "$run/nginx.stopping"
        nginx -p "$run" -c "$run/nginx.conf" -e "$run/nginx-error.log" \
            -s quit 2>/dev/null || true
        stop_pid "$run/nginx.stopping" nginx
    fi
    rm -f "$run/nginx.pid"
    stop_pid "$run/emulator.pid" "the emulator"
    stop_pid "$run/redis.pid" Redis
    for f in "$run"/sentinel-*.pid "$run"/redis-*.pid; do
        [ -e "$f" ] || continue
        stop_pid "$f" "$(basename "$f" .pid)"
    done
}

case "${1:-}" in
    start) start ;;
    secrets) secrets ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop|secrets" >&2; exit 2 ;;
esac
