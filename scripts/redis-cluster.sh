#!/usr/bin/env bash
# A Redis Cluster for tests, on loopback: three masters and three replicas.
#
#   scripts/redis-cluster.sh start DIR [REPLICAS]
#                                        starts six redis-server processes on free ports
#                                        (bus ports +10000), each in DIR/<port>, joins
#                                        them with `redis-cli --cluster create
#                                        --cluster-replicas 1`, waits until the cluster is
#                                        ok, and prints its URL: redis+cluster://127.0.0.1:<p>,...
#                                        REPLICAS 0 (for benchmarks): three masters only.
#   scripts/redis-cluster.sh restart DIR PORT  starts the node on PORT again (after a
#                                        kill), with its cluster config: it rejoins.
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

# One node, on port $1, in DIR/$1.
node() {
  mkdir -p "$dir/$1"
  redis-server --port "$1" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$dir/$1/nodes.conf" --cluster-node-timeout 1000 \
    --cluster-require-full-coverage no --save '' --appendonly no \
    --dir "$dir/$1" --pidfile "$dir/$1/redis.pid" --logfile "$dir/$1/redis.log" \
    --daemonize yes >/dev/null
}

# Six redis-server processes on free ports (10000-14999, bus ports +10000: both below
# the kernel's ephemeral range, so no outgoing connection holds them); fails when one
# does not answer.
launch() {
  ports=()
  while [ ${#ports[@]} -lt "$nodes_wanted" ]; do
    local p=$((10000 + RANDOM % 5000))
    if port_free "$p" && port_free $((p + 10000)) && [[ ! " ${ports[*]} " =~ " $p " ]]; then
      ports+=("$p")
    fi
  done
  for p in "${ports[@]}"; do
    node "$p"
  done
  for p in "${ports[@]}"; do
    local up=0
    for _ in $(seq 100); do
      redis-cli -p "$p" ping >/dev/null 2>&1 && { up=1; break; }
      sleep 0.05
    done
    [ "$up" = 1 ] || return 1
  done
}

start() {
  replicas=${3:-1}
  nodes_wanted=$((3 * (1 + replicas)))
  mkdir -p "$dir"
  local attempt
  for attempt in 1 2 3; do
    launch && break
    echo "a node did not start (attempt $attempt); trying other ports" >&2
    stop
    mkdir -p "$dir"
    [ "$attempt" = 3 ] && exit 1
  done
  local nodes=()
  for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 || {
    cat "$dir/create.log" >&2
    stop
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
  start) start "$@" ;;
  restart) node "${3:?usage: redis-cluster.sh restart DIR PORT}" ;;
  stop) stop ;;
  *) echo "usage: redis-cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
