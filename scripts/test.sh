#!/usr/bin/env bash
# The whole test suite: unit, integration, UI (trybuild) and doc tests, against the real
# services (Redis, PostgreSQL), which are started first when they are not running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
scripts/ensure-postgres.sh
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
# The core, reliability, priority and batch suites again, on a Redis Cluster of their own
# (three masters, three replicas, on free loopback ports), stopped afterwards.
cluster_dir=$(mktemp -d)/cluster
trap 'scripts/redis-cluster.sh stop "$cluster_dir"' EXIT
cluster_url=$(scripts/redis-cluster.sh start "$cluster_dir")
REDIS_URL=$cluster_url cargo test -p redisq-tests --test core --test reliability --test priority --test batch "$@"
