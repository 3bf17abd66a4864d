#!/usr/bin/env bash
# A private Redis for tests that speaks TLS only, with an ACL user limited to what redisq
# needs.
#
#   scripts/redis-tls.sh start DIR PATTERN   makes a CA, a server certificate for 127.0.0.1
#                                            and a client certificate (openssl) in DIR,
#                                            starts redis-server on a free loopback port,
#                                            TLS only, client certificates required, and
#                                            makes the user `redisq` with the rules of
#                                            scripts/redisq.acl on keys PATTERN (e.g.
#                                            'test-*'), the user `outsider` (every
#                                            command, keys 'other:*' only), and turns the
#                                            default user off. Prints the environment
#                                            that points redisq at it (export lines:
#                                            REDIS_URL, REDIS_TLS_CA_FILE,
#                                            REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE).
#   scripts/redis-tls.sh stop DIR            stops it (by its pid file) and removes DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:?usage: redis-tls.sh start DIR PATTERN | stop DIR}
dir=${2:?usage: redis-tls.sh start DIR PATTERN | stop DIR}

stop() {
  if [ -e "$dir/redis.pid" ]; then
    kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

certificates() {
  local ssl="openssl"
  $ssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 2 \
    -subj "/CN=redisq test CA" 2>/dev/null
  echo "subjectAltName=IP:127.0.0.1" >"$dir/san.ext"
  for name in server client; do
    $ssl req -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -out "$dir/$name.csr" \
      -subj "/CN=$name" 2>/dev/null
    $ssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
      -CAcreateserial -out "$dir/$name.crt" -days 2 -extfile "$dir/san.ext" 2>/dev/null
  done
}

cli() {
  redis-cli --tls --cacert "$dir/ca.crt" --cert "$dir/client.crt" --key "$dir/client.key" \
    -h 127.0.0.1 -p "$port" "$@"
}

start() {
  local pattern=${3:?usage: redis-tls.sh start DIR PATTERN}
  command -v openssl >/dev/null || { echo "redis-tls.sh needs openssl" >&2; exit 1; }
  mkdir -p "$dir"
  certificates
  local attempt
  for attempt in 1 2 3 4 5; do
    port=$((15000 + RANDOM % 5000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 \
      --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
      --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients yes \
      --save '' --appendonly no --dir "$dir" --pidfile "$dir/redis.pid" \
      --logfile "$dir/redis.log" --daemonize yes >/dev/null
    for _ in $(seq 100); do
      cli ping >/dev/null 2>&1 && break 2
      sleep 0.05
    done
    [ -e "$dir/redis.pid" ] && kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true
  done
  cli ping >/dev/null 2>&1 || { echo "redis-tls.sh: the server did not start" >&2; stop; exit 1; }
  # shellcheck disable=SC2046
  cli ACL SETUSER redisq on '>redisq-pw' "~$pattern" $(cat scripts/redisq.acl) >/dev/null
  cli ACL SETUSER outsider on '>outsider-pw' '~other:*' '+@all' >/dev/null
  cli ACL SETUSER default off >/dev/null
  echo "export REDIS_URL=rediss://redisq:redisq-pw@127.0.0.1:$port"
  echo "export REDIS_TLS_CA_FILE=$dir/ca.crt"
  echo "export REDIS_TLS_CERT_FILE=$dir/client.crt"
  echo "export REDIS_TLS_KEY_FILE=$dir/client.key"
}

case "$command" in
  start) start "$@" ;;
  stop) stop ;;
  *) echo "usage: redis-tls.sh start DIR PATTERN | stop DIR" >&2; exit 2 ;;
esac
