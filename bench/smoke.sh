#!/usr/bin/env bash
# bench/smoke.sh BINARY — the benchmark's W1/W2 path in a few seconds, for CI: loads the
# benchmark data set into a fresh SQLite file and a fresh PostgreSQL database, checks the
# answers against each database (bench/check.py), then drives W1 with wrk for a few
# seconds and fails on any response that is not byte-identical to the checked one; then
# W3's first sight, a few dozen never-seen users through the benchmark's driver, with the
# same row check as bench/run.sh. It measures nothing (CI machines are noisy); bench/run.sh
# does. Needs wrk, sqlite3 and psql.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
DRIVER="$BENCH/target/debug/cg-bench-driver"
CARGO_TARGET_DIR="$BENCH/target" cargo build --locked -q --manifest-path "$BENCH/driver/Cargo.toml"
BIN="$(realpath "${1:?usage: bench/smoke.sh path/to/coursegraph}")"
SECONDS_EACH=${SMOKE_SECONDS:-3}
SECRET=coursegraph-smoke-secret-0123456789abcdef
WORK=$(mktemp -d /tmp/coursegraph-smoke.XXXX)
PID=""
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  rm -rf "$WORK"
  su postgres -c "psql -X -q -c 'DROP DATABASE IF EXISTS coursegraph_smoke'" >/dev/null 2>&1 || true
}
trap cleanup EXIT

sql_sqlite() { sqlite3 "$WORK/smoke.db" "$1"; }
sql_postgres() { su postgres -c "psql -X -At -d coursegraph_smoke -c \"$1\""; }

smoke() {   # NAME DATABASE_URL TRUTH
  local name=$1 url=$2 truth=$3 port token lens
  COURSEGRAPH_DATABASE_URL="$url" COURSEGRAPH_JWT_SECRET="$SECRET" "$BIN" seed --bench >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  COURSEGRAPH_DATABASE_URL="$url" COURSEGRAPH_JWT_SECRET="$SECRET" COURSEGRAPH_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
    "$BIN" serve > "$WORK/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  token=$(COURSEGRAPH_JWT_SECRET="$SECRET" "$BIN" token --sub 'auth0|user-0103' --org tenant-03)
  lens=$(python3 "$BENCH/check.py" "http://127.0.0.1:$port/graphql" "$token" "$BENCH/workloads" "$truth")
  for first in 5 20 100; do
    local len res
    len=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$lens" "w1_first$first")
    res=$(BODY_FILE="$BENCH/workloads/w1_first$first.json" TOKEN="$token" EXPECT_LEN="$len" \
      wrk -t1 -c8 -d"${SECONDS_EACH}s" -s "$BENCH/post.lua" "http://127.0.0.1:$port/graphql" | grep '^RESULT')
    echo "$name W1 first=$first: $res"
    case "$res" in *" bad=0 sock_err=0 non2xx=0") ;; *) echo "FAIL: $name W1 first=$first" >&2; cat "$WORK/$name.log" >&2; exit 1 ;; esac
  done
  "$DRIVER" --url "http://127.0.0.1:$port/graphql" --secret "$SECRET" \
    first-sight --prefix "smoke-$name" --users 40 --orgs 4 --warmup 8 >/dev/null
  check_first_sight "sql_$name" "smoke-$name" 40 4 8 || { cat "$WORK/$name.log" >&2; exit 1; }
  echo "$name W3 first sight: 40 users in 4 organizations and 8 warm-up users, each once"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

smoke sqlite "sqlite://$WORK/smoke.db?mode=rwc" "sqlite:$WORK/smoke.db"
su postgres -c "psql -X -q -c 'DROP DATABASE IF EXISTS coursegraph_smoke' -c 'CREATE DATABASE coursegraph_smoke'"
smoke postgres "postgres://postgres@127.0.0.1:5432/coursegraph_smoke?sslmode=disable" pg:coursegraph_smoke
echo "smoke: ok"
