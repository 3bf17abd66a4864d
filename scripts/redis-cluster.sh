#!/usr/bin/env bash
# A Redis Cluster for tests, on loopback: three masters and three replicas.
#
#   scripts/redis-cluster.sh start DIR   starts six redis-server processes on free ports
#                                        (bus ports +10000), each in DIR/<port>, joins
#                                        them with `redis-cli --cluster create
#                                        --cluster-replicas 1`, waits until the cluster is
#                                        ok, and prints its URL: redis+cluster://127.0.0.1:<p>,...
#   scripts/redis-cluster.sh stop DIR    stops the processes it started there (by the pid
#                                        files in DIR), and removes DIR.
#
# Nothing is kept on disk beyond DIR (no RDB, no AOF). cluster-node-timeout is 1 s, so a
# replica takes over within a few seconds of its master's death.
set -euo pipefail

command=${1:?usage: redis-cluster.sh start|stop DIR}
dir=${2:?usage: redis-cluster.sh start|stop DIR}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop() {
  for pidfile in "$dir"/*/redis.pid; do
    [ -e "$pidfile" ] || continue
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$dir"
}

start() {
  mkdir -p "$dir"
  local ports=()
  while [ ${#ports[@]} -lt 6 ]; do
    local p=$((20000 + RANDOM % 10000))
    if port_free "$p" && port_free $((p + 10000)) && [[ ! " ${ports[*]} " =~ " $p " ]]; then
      ports+=("$p")
    fi
  done
  for p in "${ports[@]}"; do
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 1000 \
      --cluster-require-full-coverage no --save '' --appendonly no \
      --dir "$dir/$p" --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" \
      --daemonize yes >/dev/null
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$p" ping >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  local nodes=()
  for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
    cat "$dir/create.log" >&2
    exit 1
  }
  for _ in $(seq 200); do
    local ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.05
  done
  (IFS=,; echo "redis+cluster://${nodes[*]}")
}

case "$command" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: redis-cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
