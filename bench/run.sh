#!/usr/bin/env bash
# Benchmarks on loopback (see bench/README.md):
#
#   1. cache hits of one 100 KB image, one 1 MB image and 100 images of
#      40 KB through the gateway, beside the bound (stock nginx answering
#      a fixed JSON), the read bound (nginx reads the upload) and the hash
#      bound (nginx reads it and SHA-256s it: bench/hashbound/), in the
#      same nginx; reported as ratios, with p50 and p99;
#   2. the miss path (no cache) against calling the emulator directly:
#      added latency at p50 and p99; and with the cache, every request a
#      miss;
#   3. the cost of quotas (five limits checked in Redis) on the hit path
#      and on the miss path: the same requests with and without quotas in
#      the same run, reported as a ratio;
#   4. the upstream token's source (OAuth or a file) on the miss path;
#   5. the Redis topologies (bench/cluster.pl): the hit path on one Redis
#      and on a 3-master cluster, alternated in the same run, and what
#      Redis does per request type (INFO commandstats, INFO cpu);
#   6. Redis over TLS through nginx's stream proxy (bench/tls.pl): the
#      hit path against plaintext Redis, alternated in the same run.
#
#   BENCH_SECONDS (10)  BENCH_CONNECTIONS (16)  SMARTY_BUILD (build)
#   BENCH_ONLY (all | gateway | cluster | tls | hits: the hit table alone)
#   BENCH_PROFILE=<dir>: perf profiles of the hits instead of 1.-4.
#   (BENCH_PROFILE_CASES, BENCH_PERF_ARGS); BENCH_MALLOC=default: glibc's
#   own heap thresholds in nginx (bench/README.md, "Memory"); BENCH_LISTEN:
#   parameters of nginx's listen directive
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export SMARTY_BUILD=${SMARTY_BUILD:-$top/build}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-16}

only=${BENCH_ONLY:-all}

if [ "$only" = all ] || [ "$only" = gateway ] || [ "$only" = hits ]; then
    perl -It/lib -Ibench bench/run.pl "$secs" "$conns"
fi

if [ "$only" = all ] || [ "$only" = cluster ]; then
    [ "$only" = all ] && echo
    perl -It/lib -Ibench bench/cluster.pl "$secs" "$conns"
fi

if [ "$only" = all ] || [ "$only" = tls ]; then
    [ "$only" = all ] && echo
    perl -It/lib -Ibench bench/tls.pl "$secs" "$conns"
fi
