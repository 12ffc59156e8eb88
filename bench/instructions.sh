#!/usr/bin/env bash
# bench/instructions.sh — CPU instructions per W1 request (first = 20, SQLite) under
# valgrind's callgrind: unlike req/s, the count repeats exactly for the same binary and
# input whatever else the machine does, so it shows what a change saves.
#
#   bench/instructions.sh target/release/coursegraph [more builds …]
#   bench/instructions.sh --ceiling           # the peers' ceiling, as bench/run.sh built it
#
# Each build serves the data set bench/run.sh loaded (run that once first); after a 3 s
# warm-up the counters are zeroed, wrk sends requests one at a time for 10 s, and the total
# is divided by the requests answered. With CALLGRIND_KEEP=1 the profiles stay in
# bench/target/callgrind/ for callgrind_annotate.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
OUT="$BENCH/target/callgrind"
mkdir -p "$OUT"
VG=""
trap '[ -z "$VG" ] || kill "$VG" 2>/dev/null || true' EXIT

measure() {   # NAME URL BODY TOKEN COMMAND...
  local name=$1 url=$2 body=$3 token=$4; shift 4
  local file="$OUT/$name.out" requests total
  rm -f "$file"*
  valgrind --tool=callgrind --callgrind-out-file="$file" "$@" > "$OUT/$name.log" 2>&1 &
  VG=$!
  for _ in $(seq 200); do
    curl -s -o /dev/null -H 'content-type: application/json' -d '{"query":"{__typename}"}' "$url" && break
    sleep 0.5
  done
  BODY_FILE="$body" TOKEN="$token" wrk -t1 -c1 -d3s -s "$BENCH/post.lua" "$url" >/dev/null
  callgrind_control -z "$VG" >/dev/null 2>&1
  requests=$(BODY_FILE="$body" TOKEN="$token" wrk -t1 -c1 -d10s -s "$BENCH/post.lua" "$url" \
    | sed -n 's/^RESULT.* requests=\([0-9]*\).*/\1/p')
  callgrind_control -d "$VG" >/dev/null 2>&1
  kill "$VG"; wait "$VG" 2>/dev/null || true; VG=""
  total=$(awk '/^summary:/ {s += $2} END {print s}' "$file".*)
  awk -v n="$name" -v t="$total" -v r="$requests" 'BEGIN {printf "%s: %.2f M instructions per request (%d requests)\n", n, t / r / 1e6, r}'
  [ -n "${CALLGRIND_KEEP:-}" ] || rm -f "$file"*
}

if [ "$1" = --ceiling ]; then
  peers="$BENCH/target/peers"
  [ -x "$BENCH/target/release/ceiling" ] || { echo "run bench/run.sh once first (it builds the ceiling)" >&2; exit 1; }
  CEILING_FIXTURE="$peers/workloads/w1_response.json" \
    measure ceiling http://127.0.0.1:5680/graphql "$peers/workloads/w1.json" "" "$BENCH/target/release/ceiling"
  exit 0
fi
[ -f "$BENCH/target/bench.db" ] || { echo "run bench/run.sh once first (it loads bench/target/bench.db)" >&2; exit 1; }
for bin in "$@"; do
  token=$(w1_token "$bin")
  COURSEGRAPH_DATABASE_URL="sqlite://$BENCH/target/bench.db" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" \
    COURSEGRAPH_LISTEN=127.0.0.1:8038 RUST_LOG=warn \
    measure "$(basename "$(dirname "$(dirname "$bin")")")-$(basename "$bin")" http://127.0.0.1:8038/graphql \
    "$BENCH/workloads/w1_first20.json" "$token" "$bin" serve
done
