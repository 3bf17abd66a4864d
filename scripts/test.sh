#!/usr/bin/env bash
# The whole test suite: unit, integration, UI (trybuild) and doc tests, against the real
# services (Redis, PostgreSQL), which are started first when they are not running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
scripts/ensure-postgres.sh
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
# The core, reliability, priority and batch suites again: on a Redis Cluster of their own
# (three masters, three replicas, on free loopback ports), then over TLS as the minimal ACL
# user (scripts/redisq.acl) of a private TLS-only server; both stopped afterwards.
suites=(--test core --test reliability --test priority --test batch)
scratch=$(mktemp -d)
trap 'scripts/redis-cluster.sh stop "$scratch/cluster"; scripts/redis-tls.sh stop "$scratch/tls"; rm -rf "$scratch"' EXIT
cluster_url=$(scripts/redis-cluster.sh start "$scratch/cluster")
REDIS_URL=$cluster_url cargo test -p redisq-tests "${suites[@]}" "$@"
(
  eval "$(scripts/redis-tls.sh start "$scratch/tls" 'test-*')"
  cargo test -p redisq-tests "${suites[@]}" "$@"
)
