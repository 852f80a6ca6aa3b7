#!/usr/bin/env bash
# The durable scheduler against its budgets, with graphile-worker beside it
# on the same PostgreSQL at the same concurrency (see README.md,
# "Benchmarks → Scheduler").
#
#   bench/scheduler.sh [JOBS [CONCURRENCY]]     default 200000 jobs, concurrency 16
#
# Environment: PG (default postgres://postgres@127.0.0.1:5432/test; each run
# creates a fresh database there and drops it), PREFETCH (BOS's local queue,
# default 256; graphile-worker's local queue gets the same size in its
# second run), LATENESS_JOBS (10000), SPREAD_SECONDS (30), CARGO_TARGET_DIR
# as for cargo. graphile-worker is installed with npm into
# bench/graphile/node_modules on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${1:-200000}
CONC=${2:-16}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
PREFETCH=${PREFETCH:-256}
LATENESS_JOBS=${LATENESS_JOBS:-10000}
SPREAD_SECONDS=${SPREAD_SECONDS:-30}
BOS=${CARGO_TARGET_DIR:-target}/release/bos-bench

echo "==> release build"
cargo build --release -p bos-bench

if [ ! -d bench/graphile/node_modules/graphile-worker ]; then
  echo "==> graphile-worker (npm)"
  (cd bench/graphile && npm install --no-audit --no-fund --silent)
fi

echo "==> load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
ARGS=(--jobs "$JOBS" --concurrency "$CONC" --prefetch "$PREFETCH"
      --lateness-jobs "$LATENESS_JOBS" --spread-seconds "$SPREAD_SECONDS")
echo "==> BOS on SQLite"
"$BOS" scheduler "${ARGS[@]}"
echo "==> BOS on PostgreSQL"
"$BOS" scheduler "${ARGS[@]}" --database-url "$PG"
echo "==> graphile-worker 0.17.3, defaults (no local queue)"
node bench/graphile/run.mjs --server "$PG" --jobs "$JOBS" --concurrency "$CONC"
echo "==> graphile-worker 0.17.3, local queue of $PREFETCH"
node bench/graphile/run.mjs --server "$PG" --jobs "$JOBS" --concurrency "$CONC" --local-queue "$PREFETCH"
echo "==> load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
