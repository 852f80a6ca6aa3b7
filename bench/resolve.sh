#!/usr/bin/env bash
# The resolution engine alone, side by side with Splink 5 and plain SQL on
# DuckDB, on the same generated contacts (see README.md, "Benchmarks").
#
#   bench/resolve.sh [ROWS [SEED]]      default 1000000 rows, seed 1
#
# Environment: THREADS (default 2, for BOS and DuckDB alike), REPEAT (runs of
# the BOS stages, default 9: a run is short, and the median of more of them
# is less at the mercy of a noisy second on a shared host) and
# REPEAT_BASELINES (runs of each DuckDB engine, default 3) whose medians are
# reported, BENCH_DIR
# (default target/bench-resolve), SPLINK_VENV (default BENCH_DIR/venv: a
# virtualenv with bench/splink/requirements.txt, created when missing),
# CARGO_TARGET_DIR as for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-1000000}
SEED=${2:-1}
THREADS=${THREADS:-2}
WORK=${BENCH_DIR:-target/bench-resolve}
VENV=${SPLINK_VENV:-$WORK/venv}
BOS=${CARGO_TARGET_DIR:-target}/release/bos-bench
mkdir -p "$WORK"

echo "==> release build"
cargo build --release -p bos-bench

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> virtualenv for Splink: $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/splink/requirements.txt
fi

CSV=$WORK/contacts-$ROWS-$SEED.csv
echo "==> generate $ROWS rows (seed $SEED)"
"$BOS" gen-contacts --rows "$ROWS" --seed "$SEED" --out "$CSV"

# The generated files (~120 MB) would otherwise be written back to disk
# while BOS is timed, by a kernel thread on one of the two cores.
sync

echo "==> bos-bench resolve"
"$BOS" resolve --csv "$CSV" --limits both --threads "$THREADS" \
  --out-partition "$WORK/bos" --write-normalized "$CSV.normalized.csv" \
  --check-reference --repeat "${REPEAT:-9}" | tee "$WORK/bos.out"

echo "==> Splink 5 and plain SQL on DuckDB ($THREADS threads), same normalized identifiers"
"$VENV/bin/python" bench/splink/run_splink.py "$CSV.normalized.csv" --threads "$THREADS" --repeat "${REPEAT_BASELINES:-3}" \
  --splink-out "$WORK/splink.csv" --sql-out "$WORK/sql.csv" | tee "$WORK/baselines.out"

echo "==> compare"
"$VENV/bin/python" bench/splink/compare.py --csv "$CSV" --normalized "$CSV.normalized.csv" \
  --truth "$CSV.truth" --bos-off "$WORK/bos.limits-off.csv" --bos-on "$WORK/bos.limits-on.csv" \
  --splink "$WORK/splink.csv" --sql "$WORK/sql.csv" \
  --bos-json "$WORK/bos.out" --baselines-json "$WORK/baselines.out"
