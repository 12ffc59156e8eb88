#!/usr/bin/env bash
# bench/first_sight.sh — first-sight provisioning (W3-cold) of one or more server binaries,
# interleaved run by run so that each compares with the others under the same host load
# (on a shared host the absolute numbers drift from hour to hour; the order does not).
# Runs on the scale-out primary (scripts/scaleout.sh up), on the benchmark data set
# ×SCALE, seeded once into its own database and kept.
#
#   bench/first_sight.sh                                  # target/release/coursegraph, REPS=4 SCALE=100
#   REPS=6 bench/first_sight.sh /tmp/coursegraph-before target/release/coursegraph
#
# Each run: a server pinned to CPU 1 with both PostgreSQL servers of the set, the driver
# on CPU 0, 64 untimed warm-up users, then 1,000 never-seen users of 50 never-seen
# organizations at c = 8. Prints one JSON line per run and the medians per binary.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
REPS=${REPS:-4}
SCALE=${SCALE:-100}
PORT=8202
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$ROOT/target/release/coursegraph")
DRIVER="$BENCH/target/release/cg-bench-driver"
CARGO_TARGET_DIR="$BENCH/target" cargo build --release --locked -q --manifest-path "$BENCH/driver/Cargo.toml"
for b in "${BINS[@]}"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 1; }; done

eval "$("$ROOT/scripts/scaleout.sh" env | grep SCALEOUT_PRIMARY_URL)"
PRIMARY="${COURSEGRAPH_SCALEOUT_PRIMARY_URL%/*}"
DB="$PRIMARY/cg_first_sight_x$SCALE"
psql -X -q "$PRIMARY/postgres" -c "SELECT 1" >/dev/null 2>&1 ||
  { echo "the scale-out set is not up: scripts/scaleout.sh up" >&2; exit 1; }
if ! psql -X -At "$PRIMARY/postgres" -c "SELECT 1 FROM pg_database WHERE datname = 'cg_first_sight_x$SCALE'" | grep -q 1; then
  psql -X -q "$PRIMARY/postgres" -c "CREATE DATABASE cg_first_sight_x$SCALE"
  COURSEGRAPH_DATABASE_URL="$DB" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "${BINS[0]}" seed --bench --scale "$SCALE" >/dev/null
fi
d=${CG_SCALEOUT_DIR:-/tmp/coursegraph-scaleout}
for node in primary standby; do
  pm=$(head -1 "$d/$node/postmaster.pid")
  for p in "$pm" $(ps -o pid= --ppid "$pm"); do taskset -acp 1 "$p" >/dev/null 2>&1 || true; done
done

PID=""
trap '[ -z "$PID" ] || kill "$PID" 2>/dev/null || true' EXIT
RESULTS=$(mktemp)
for rep in $(seq "$REPS"); do
  for b in "${BINS[@]}"; do
    COURSEGRAPH_DATABASE_URL="$DB" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" COURSEGRAPH_LISTEN="127.0.0.1:$PORT" \
      RUST_LOG=warn COURSEGRAPH_AUTO_MIGRATE=false taskset -c 1 "$b" serve >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
    out=$(taskset -c 0 "$DRIVER" --url "http://127.0.0.1:$PORT/graphql" --metrics "http://127.0.0.1:$PORT/metrics" \
      --secret "$BENCH_SECRET" first-sight --prefix "fs-$rep-$(date +%s%N)" --users 1000 --orgs 50)
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    line=$(echo "$out" | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); r["binary"]=sys.argv[1]; print(json.dumps(r))' "$b")
    echo "$line" | tee -a "$RESULTS"
  done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| binary | runs | req/s median | p50 ms | p99 ms (min–max) | statements / request |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for b in dict.fromkeys(r["binary"] for r in rows):
    rs = [r for r in rows if r["binary"] == b]
    assert all(r["errors"] == 0 for r in rs), rs
    med = lambda k: statistics.median(r[k] for r in rs)
    p99 = [r["p99_ms"] for r in rs]
    print(f"| {b} | {len(rs)} | {med('rps'):.0f} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} ({min(p99):.1f}–{max(p99):.1f}) "
          f"| {med('statements_per_req'):.2f} |")
PY
rm -f "$RESULTS"
