#!/usr/bin/env bash
# bench/live.sh — L1, live updates: S subscribers of one organization's courseChanges
# over WebSocket (C connections, S/C subscriptions each), then one course change at a
# time, 1.5 s apart: the delivery latency of every event to every subscriber (from the
# moment the mutation is sent until the subscriber's client has the frame), the server's
# CPU per change and its RSS. Each subscriber is a distinct member of organization #3 of
# the benchmark data set (provisioned on connecting).
#
#   bench/live.sh                         # SQLite; 10,000 subscribers as 100×100 and as 10,000×1
#   DB=postgres bench/live.sh             # the same on PostgreSQL (events through LISTEN/NOTIFY)
#   CONFIGS="10000:100" CHANGES=10 bench/live.sh
#
# Pinning: the driver on CPU 0, the server on CPU 1 (on PostgreSQL, its processes too).
# Results (one JSON line per configuration) go to bench/target/results/live-*.jsonl.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
CG_BIN="$ROOT/target/release/coursegraph"
DRIVER="$BENCH/target/release/cg-bench-driver"
CONFIGS=${CONFIGS:-"10000:100 10000:1"}
CHANGES=${CHANGES:-10}
PORT=8041
OUT="$BENCH/target/results/live-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$(dirname "$OUT")"

(cd "$ROOT" && cargo build --release --locked -q)
CARGO_TARGET_DIR="$BENCH/target" cargo build --release --locked -q --manifest-path "$BENCH/driver/Cargo.toml"

case "${DB:-sqlite}" in
  sqlite)
    DBFILE="$BENCH/target/live.db"
    URL="sqlite://$DBFILE?mode=rwc"
    fresh() { rm -f "$DBFILE" "$DBFILE-wal" "$DBFILE-shm"; }
    ;;
  postgres)
    URL="postgres://postgres@127.0.0.1:5432/coursegraph_live?sslmode=disable"
    fresh() { su postgres -c "psql -X -q -c 'DROP DATABASE IF EXISTS coursegraph_live WITH (FORCE)' -c 'CREATE DATABASE coursegraph_live'"; }
    ;;
  *) echo "DB is sqlite or postgres" >&2; exit 2 ;;
esac

PID=""
pg_cpus() {   # pin every PostgreSQL process (postmaster and children) to $1
  [ "${DB:-sqlite}" = postgres ] || return 0
  local pm; pm=$(head -1 /var/lib/postgresql/15/main/postmaster.pid)
  for p in "$pm" $(ps -o pid= --ppid "$pm"); do taskset -acp "$1" "$p" >/dev/null 2>&1 || true; done
}
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  pg_cpus 0-1
}
trap cleanup EXIT
pg_cpus 1

for cfg in $CONFIGS; do
  subs=${cfg%%:*}; per=${cfg##*:}
  fresh
  COURSEGRAPH_DATABASE_URL="$URL" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$CG_BIN" seed --bench >/dev/null 2>&1
  COURSEGRAPH_DATABASE_URL="$URL" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" COURSEGRAPH_LISTEN="127.0.0.1:$PORT" \
    COURSEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION="$per" RUST_LOG=warn \
    taskset -c 1 "$CG_BIN" serve > "$BENCH/target/live_server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
  line=$(taskset -c 0 "$DRIVER" --url "http://127.0.0.1:$PORT/graphql" --secret "$BENCH_SECRET" \
    --metrics "http://127.0.0.1:$PORT/metrics" live --org tenant-03 --subscribers "$subs" \
    --per-connection "$per" --changes "$CHANGES" --pid "$PID")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  if grep -q ERROR "$BENCH/target/live_server.log"; then grep ERROR "$BENCH/target/live_server.log" | head >&2; exit 1; fi
  echo "{\"db\":\"${DB:-sqlite}\",\"result\":$line}" | tee -a "$OUT"
  python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["received"] == r["expected"], f"missed events: {r['received']} of {r['expected']}"
print(f"| {r['subscribers']:,} | {r['connections']:,} | {r['changes']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
      f"| {r['server_cpu_ms_per_change']:.0f} | {r['rss_subscribed_mib']:.0f} | {r['rss_peak_mib']:.0f} |")
PY
done
echo "results: $OUT"
