#!/usr/bin/env bash
# The whole test suite: unit, integration, UI (trybuild) and doc tests, against the real
# services (Redis, PostgreSQL), which are started first when they are not running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
scripts/ensure-postgres.sh
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
