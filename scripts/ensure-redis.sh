#!/usr/bin/env bash
# Makes sure a Redis server answers at REDIS_URL (default redis://127.0.0.1:6379).
# If nothing answers on a loopback address, starts redis-server there. Installs Debian's
# redis-server package when it is missing (the tests also start private servers and
# clusters), faketime (tests of the server's clock run one under it) and openssl (the TLS
# tests make their certificates with it), when we are root.
set -euo pipefail

install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-redis: $1 is not installed; install Debian's $1 package (needs root)" >&2
    return 1
  fi
  echo "ensure-redis: installing $1" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq "$1" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || install redis-server
command -v faketime >/dev/null 2>&1 || install faketime || true
command -v openssl >/dev/null 2>&1 || install openssl

url="${REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#redis://}"
hostport="${hostport##*@}"
hostport="${hostport%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=6379

answers() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG
  else
    (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null
  fi
}

if answers; then
  exit 0
fi

case "$host" in
  127.*|localhost|::1) ;;
  *) echo "ensure-redis: nothing answers at $host:$port, and it is not a loopback address I may start" >&2; exit 1 ;;
esac

echo "ensure-redis: starting redis-server on $host:$port" >&2
dir="$(mktemp -d /tmp/redisq-redis.XXXXXX)"
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log"

for _ in $(seq 1 100); do
  answers && exit 0
  sleep 0.1
done
echo "ensure-redis: redis-server did not answer on $host:$port; see $dir/redis.log" >&2
exit 1
