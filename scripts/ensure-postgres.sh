#!/usr/bin/env bash
# Makes sure PostgreSQL answers at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
# for user postgres without a password, and that the database exists.
# If nothing answers on a loopback address, starts the local Debian cluster, installing
# Debian's postgresql package first when it is missing and we are root. When loopback
# connections ask for a password, makes them trusted (root only: it edits pg_hba.conf).
set -euo pipefail

url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
rest="${url#*://}"
rest="${rest##*@}"
hostport="${rest%%/*}"
db="${rest#*/}"
[ "$db" = "$rest" ] && db=postgres
db="${db%%\?*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=5432
user=postgres

say() { echo "ensure-postgres: $*" >&2; }

answers() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }

connects() { psql -h "$host" -p "$port" -U "$user" -d postgres -w -Atqc 'SELECT 1' >/dev/null 2>&1; }

latest_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

case "$host" in
  127.*|localhost|::1) loopback=1 ;;
  *) loopback=0 ;;
esac

if ! command -v pg_isready >/dev/null 2>&1 || ! answers; then
  if [ "$loopback" -ne 1 ]; then
    say "nothing answers at $host:$port, and it is not a loopback address I may start"
    exit 1
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(latest_version)" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      say "PostgreSQL is not installed; install Debian's postgresql package (needs root)"
      exit 1
    fi
    say "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
  fi
  version="$(latest_version)"
  if [ -z "$version" ]; then
    say "no PostgreSQL version under /etc/postgresql"
    exit 1
  fi
  if [ ! -d "/etc/postgresql/$version/main" ]; then
    say "creating cluster $version/main on port $port"
    pg_createcluster --port "$port" "$version" main >/dev/null
  fi
  say "starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 100); do
    answers && break
    sleep 0.1
  done
  if ! answers; then
    say "PostgreSQL did not answer on $host:$port; see /var/log/postgresql/"
    exit 1
  fi
fi

if ! connects; then
  version="$(latest_version)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ "$loopback" -ne 1 ] || [ "$(id -u)" -ne 0 ] || [ ! -f "$hba" ]; then
    say "user $user cannot connect to $host:$port without a password; allow it in pg_hba.conf (trust for loopback)"
    exit 1
  fi
  say "trusting loopback connections in $hba"
  tmp="$(mktemp)"
  {
    echo "# added by redisq scripts/ensure-postgres.sh: loopback connections are trusted"
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba"
  rm -f "$tmp"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 1 50); do
    connects && break
    sleep 0.1
  done
  if ! connects; then
    say "user $user still cannot connect to $host:$port"
    exit 1
  fi
fi

exists="$(psql -h "$host" -p "$port" -U "$user" -d postgres -w -Atqc \
  "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'")"
if [ "$exists" != 1 ]; then
  say "creating database $db"
  psql -h "$host" -p "$port" -U "$user" -d postgres -w -qc "CREATE DATABASE \"${db//\"/\"\"}\"" >/dev/null
fi
