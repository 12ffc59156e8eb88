#!/usr/bin/env bash
# bench/ab.sh — W1 requests per second of several coursegraph builds, interleaved, for a
# before/after comparison of one change on one machine (bench/run.sh measures a single build
# against the peers). Uses the data set bench/run.sh loaded (run that once first).
#
#   bench/ab.sh target/release/coursegraph /tmp/before/release/coursegraph
#   DB=postgres ROUNDS=3 bench/ab.sh A B C
#
# Each round starts every build in turn pinned to CPU 1 (PostgreSQL's processes too), warms
# it up for 3 s, then runs wrk on CPU 0 twice for DURATION seconds (W1, first = 20, c = 8,
# every response checked for the expected length). Prints one line per run.
set -euo pipefail
export LC_ALL=C   # ${#body} counts bytes
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8}
BODY=${BODY:-$BENCH/workloads/w1_first20.json}
PORT=8039
[ -f "$BENCH/target/peers/lib.sh" ] || { echo "run bench/run.sh once first" >&2; exit 1; }
# shellcheck source=/dev/null
source "$BENCH/target/peers/lib.sh"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
case "${DB:-sqlite}" in
  sqlite) URL="sqlite://$BENCH/target/bench.db"; [ -f "$BENCH/target/bench.db" ] || { echo "run bench/run.sh once first" >&2; exit 1; } ;;
  postgres) URL="postgres://postgres@127.0.0.1:5432/coursegraph_bench?sslmode=disable" ;;
  *) echo "DB is sqlite or postgres" >&2; exit 2 ;;
esac
PID=""
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  [ "${DB:-sqlite}" != postgres ] || pin_pg 0-1
}
trap cleanup EXIT
[ "${DB:-sqlite}" != postgres ] || pin_pg 1

TOKEN=$(w1_token "$1")
LEN=""
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    COURSEGRAPH_DATABASE_URL="$URL" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" COURSEGRAPH_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn \
      taskset -c 1 "$bin" serve > "$BENCH/target/ab_server.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
    body=$(curl -sf -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data @"$BODY" "http://127.0.0.1:$PORT/graphql")
    case "$body" in *'"errors"'*|'') echo "$bin answered: $body" >&2; exit 1 ;; esac
    # Every build must give the same answer: the first one's length is the expected one.
    [ -n "$LEN" ] || LEN=${#body}
    [ "${#body}" = "$LEN" ] || { echo "$bin answered ${#body} bytes, the first build $LEN" >&2; exit 1; }
    BODY_FILE="$BODY" TOKEN="$TOKEN" taskset -c 0 wrk -t1 -c8 -d3s -s "$BENCH/post.lua" "http://127.0.0.1:$PORT/graphql" >/dev/null
    for _ in 1 2; do
      res=$(BODY_FILE="$BODY" TOKEN="$TOKEN" EXPECT_LEN="$LEN" taskset -c 0 wrk -t1 -c8 -d"${DURATION}s" --latency \
        -s "$BENCH/post.lua" "http://127.0.0.1:$PORT/graphql" | grep '^RESULT')
      case "$res" in *" bad=0 sock_err=0 non2xx=0") ;; *) echo "$bin: $res" >&2; exit 1 ;; esac
      echo "round=$round bin=$bin $res"
    done
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  done
done
