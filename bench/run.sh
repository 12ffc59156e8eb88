#!/usr/bin/env bash
# bench/run.sh — the benchmark in one command: coursegraph (SQLite and PostgreSQL) beside
# the PostGraphile peer and the no-database ceiling from ../shared/peers, on the same data
# set and workloads, then the table (medians) printed and written into BENCHMARKS.md.
#
#   bench/run.sh                  # REPS=3 DURATION=10 (about 20 minutes with the builds)
#   REPS=5 DURATION=15 bench/run.sh
#   NO_WRITE=1 bench/run.sh       # print the table, leave BENCHMARKS.md alone
#   CG_BIN=/path/to/coursegraph bench/run.sh   # measure that build (e.g. an older commit's
#                                              # release binary) instead of building this tree
#
# Pinning: wrk and the W3/W4 driver on CPU 0; the server under test and every PostgreSQL
# process on CPU 1. Needs root (pinning PostgreSQL, psql as the postgres user), wrk (installed
# from Debian if missing), Node (for the peer) and the peers folder (PEERS_DIR, default
# ../shared/peers beside this repository). Everything it builds or writes stays under
# bench/target except BENCHMARKS.md.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
PEERS_SRC="${PEERS_DIR:-$ROOT/../shared/peers}"
REPS=${REPS:-3}
DURATION=${DURATION:-10}
OUT=${OUT:-$BENCH/target/results/$(date +%Y%m%d-%H%M%S)}
BUILD_CG=${CG_BIN:+no}
CG_BIN="${CG_BIN:-$ROOT/target/release/coursegraph}"
DRIVER="$BENCH/target/release/cg-bench-driver"
CG_PG_URL="postgres://postgres@127.0.0.1:5432/coursegraph_bench?sslmode=disable"
CG_SQLITE="$BENCH/target/bench.db"
COMMAND="${BENCH_COMMAND:-REPS=$REPS DURATION=$DURATION bench/run.sh}"
mkdir -p "$OUT/raw"
: > "$OUT/runs.txt"

[ -d "$PEERS_SRC" ] || { echo "the peers folder is missing: $PEERS_SRC (set PEERS_DIR)" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# A private copy of the peers folder: its npm install, its ceiling build and the response
# file its check rewrites stay out of the shared folder.
PEERS="$BENCH/target/peers"
mkdir -p "$PEERS"
rsync -a --delete --exclude node_modules/ --exclude target/ "$PEERS_SRC/" "$PEERS/"
chmod -R u+w "$PEERS"
# The copy lies inside this repository's workspace; keep the ceiling a crate of its own.
grep -q '^\[workspace\]' "$PEERS/ceiling/Cargo.toml" || printf '\n[workspace]\n' >> "$PEERS/ceiling/Cargo.toml"
export CEIL_BIN="$BENCH/target/release/ceiling"
# shellcheck source=/dev/null
source "$PEERS/lib.sh"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

log "building (release): coursegraph, the W3/W4 driver, the ceiling"
[ "${BUILD_CG:-yes}" = no ] || (cd "$ROOT" && cargo build --release --locked -q)
CARGO_TARGET_DIR="$BENCH/target" cargo build --release --locked -q --manifest-path "$BENCH/driver/Cargo.toml"
CARGO_TARGET_DIR="$BENCH/target" cargo build --release --locked -q --manifest-path "$PEERS/ceiling/Cargo.toml"

log "databases: the peer's (peerbench) and coursegraph's (fresh SQLite file, fresh coursegraph_bench)"
ensure_pg
ensure_db
ensure_node_modules
# The peer's data set gets the same maintenance after its load as coursegraph's (`seed --bench`
# runs VACUUM ANALYZE): this machine kind's PostgreSQL may run with autovacuum off.
psql_su "-d peerbench -c 'VACUUM (ANALYZE)'"
rm -f "$CG_SQLITE" "$CG_SQLITE-wal" "$CG_SQLITE-shm"
COURSEGRAPH_DATABASE_URL="sqlite://$CG_SQLITE?mode=rwc" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$CG_BIN" seed --bench >&2
psql_su "-c 'DROP DATABASE IF EXISTS coursegraph_bench' -c 'CREATE DATABASE coursegraph_bench'"
COURSEGRAPH_DATABASE_URL="$CG_PG_URL" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$CG_BIN" seed --bench >&2

trap 'stop_server; pin_pg 0-1 || true' EXIT
pin_pg 1

# ---- PostGraphile (W1, W2)
start_peer
( cd "$PG_DIR" && "$NODE" check_workloads.mjs ) > "$OUT/postgraphile_check.txt" || { cat "$OUT/postgraphile_check.txt"; exit 1; }
grep -E '^(PASS|FAIL)' "$OUT/postgraphile_check.txt" >&2
PGL_TOKEN=$(cd "$PG_DIR" && "$NODE" mint_token.mjs 103 3)
PGL_W1_LEN=$(stat -c %s "$PEERS/workloads/w1_response.json")
python3 -c 'import json,sys; print(json.dumps({"query": open(sys.argv[1]).read(), "variables": {"id": sys.argv[2]}}))' \
  "$PEERS/workloads/w2.graphql" "ac438ddf-1b9e-dfce-9e43-034331f0faaf" > "$OUT/postgraphile_w2.json"
w2=$(curl -s -H "authorization: Bearer $PGL_TOKEN" -H 'content-type: application/json' --data @"$OUT/postgraphile_w2.json" "$PEER_URL")
[ "$w2" = '{"data":{"courseByRowId":null}}' ] || { echo "PostGraphile W2 answered $w2" >&2; exit 1; }
(BODY_FILE="$PEERS/workloads/w1.json" TOKEN="$PGL_TOKEN" taskset -c 0 wrk -t1 -c8 -d5s -s "$PEERS/workloads/post.lua" "$PEER_URL") >/dev/null
for _ in $(seq "$REPS"); do
  load postgraphile W1-20 "$PEER_URL" 8 "$DURATION" "$PGL_TOKEN" "$PEERS/workloads/w1.json" "$PGL_W1_LEN"
  load postgraphile W2 "$PEER_URL" 8 "$DURATION" "$PGL_TOKEN" "$OUT/postgraphile_w2.json" "${#w2}"
done
stop_server

# ---- the ceiling (W1 only: no database, no auth)
start_ceiling
[ "$(curl -s -H 'content-type: application/json' --data @"$PEERS/workloads/w1.json" "$CEIL_URL")" = "$(cat "$PEERS/workloads/w1_response.json")" ] \
  || { echo "the ceiling's W1 response differs from PostGraphile's" >&2; exit 1; }
(BODY_FILE="$PEERS/workloads/w1.json" taskset -c 0 wrk -t1 -c8 -d3s -s "$PEERS/workloads/post.lua" "$CEIL_URL") >/dev/null
for _ in $(seq "$REPS"); do
  load ceiling W1-20 "$CEIL_URL" 8 "$DURATION" "" "$PEERS/workloads/w1.json" "$PGL_W1_LEN"
done
stop_server

# ---- coursegraph, on each database
# rows SYSTEM SQL -> one number from coursegraph's own database.
rows() {
  case $1 in
    *sqlite) sqlite3 "$CG_SQLITE" "$2" ;;
    *) su postgres -c "psql -X -At -d coursegraph_bench -c \"$2\"" ;;
  esac
}
rows_coursegraph-sqlite() { rows sqlite "$1"; }
rows_coursegraph-postgres() { rows postgres "$1"; }

bench_coursegraph() {
  local sys=$1 url=$2 port=$3 token lens
  start_coursegraph "$sys" "$url" "$port"
  [ "${QUICK:-}" != rls ] || { bench_rls_only "$sys" "$port"; return; }
  [ "${QUICK:-}" != custom ] || { bench_custom_role_only "$sys" "$port"; return; }
  local gql="http://127.0.0.1:$port/graphql"
  token=$(w1_token "$CG_BIN")
  lens=$(python3 "$BENCH/check.py" "$gql" "$token" "$BENCH/workloads" pg:peerbench 2> "$OUT/${sys}_check.txt") \
    || { cat "$OUT/${sys}_check.txt" >&2; exit 1; }
  cat "$OUT/${sys}_check.txt" >&2
  len() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$lens" "$1"; }
  (BODY_FILE="$BENCH/workloads/w1_first20.json" TOKEN="$token" taskset -c 0 wrk -t1 -c8 -d5s -s "$PEERS/workloads/post.lua" "$gql") >/dev/null
  for _ in $(seq "$REPS"); do
    for first in 5 20 100; do
      load "$sys" "W1-$first" "$gql" 8 "$DURATION" "$token" "$BENCH/workloads/w1_first$first.json" "$(len "w1_first$first")" "$port"
    done
    for c in 1 32; do
      load "$sys" W1-20 "$gql" "$c" "$DURATION" "$token" "$BENCH/workloads/w1_first20.json" "$(len w1_first20)" "$port"
    done
    load "$sys" W2 "$gql" 8 "$DURATION" "$token" "$BENCH/workloads/w2.json" "$(len w2)" "$port"
  done
  # W3: 1,000 never-seen users in 50 new organizations, then the same tokens again.
  local r prefix
  for r in $(seq "$REPS"); do
    prefix="w3-$sys-$r-$(date +%s)"
    drive "$sys" "$port" first-sight --prefix "$prefix" --users 1000 --orgs 50 --warmup 64
    check_first_sight "rows_$sys" "$prefix" 1000 50 64 || exit 1
  done
  # W4: an instructor of organization #5 creates, reorders and deletes tracks.
  for _ in $(seq "$REPS"); do
    drive "$sys" "$port" writes --sub 'auth0|user-0025' --org tenant-05 --seconds "$DURATION"
  done
  local bad
  bad=$(rows "$sys" "SELECT count(*) FROM (SELECT course_id FROM tracks GROUP BY course_id HAVING count(*) <> 5 OR count(DISTINCT position) <> 5) x")
  [ "$bad" = 0 ] || { log "FAIL: after W4, $bad courses do not have 5 tracks at distinct positions"; exit 1; }
  stop_server
}

# The cost of PostgreSQL row-level security (one transaction per request that first
# switches role and writes the viewer's tenancy): W1, W2 and W4 again with it enforced.
bench_rls_only() {
  local sys=$1 port=$2 token lens
  local gql="http://127.0.0.1:$port/graphql"
  token=$(w1_token "$CG_BIN")
  lens=$(python3 "$BENCH/check.py" "$gql" "$token" "$BENCH/workloads" pg:peerbench 2> "$OUT/${sys}_check.txt") \
    || { cat "$OUT/${sys}_check.txt" >&2; exit 1; }
  len() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$lens" "$1"; }
  (BODY_FILE="$BENCH/workloads/w1_first20.json" TOKEN="$token" taskset -c 0 wrk -t1 -c8 -d5s -s "$PEERS/workloads/post.lua" "$gql") >/dev/null
  for _ in $(seq "$REPS"); do
    load "$sys" W1-20 "$gql" 8 "$DURATION" "$token" "$BENCH/workloads/w1_first20.json" "$(len w1_first20)" "$port"
    load "$sys" W2 "$gql" 8 "$DURATION" "$token" "$BENCH/workloads/w2.json" "$(len w2)" "$port"
    drive "$sys" "$port" writes --sub 'auth0|user-0025' --org tenant-05 --seconds "$DURATION"
  done
  stop_server
}

# The cost of roles as data: W1 and W3 for members holding a custom role — the policy
# file's `reviewer`, assigned to W1's viewer, and given to W3's new members by the role map
# (`member=reviewer`: their memberships are seeded with it, in the transaction).
bench_custom_role_only() {
  local sys=$1 port=$2 token lens r prefix
  local gql="http://127.0.0.1:$port/graphql"
  rows "$sys" "INSERT INTO membership_roles (membership_id, organization_id, role_key, created_at)
    SELECT m.id, m.organization_id, 'reviewer', now() FROM memberships m JOIN users u ON u.id = m.user_id
    JOIN organizations o ON o.id = m.organization_id WHERE u.external_id = 'auth0|user-0103' AND o.external_id = 'tenant-03'
    ON CONFLICT DO NOTHING" >/dev/null
  token=$(w1_token "$CG_BIN")
  lens=$(python3 "$BENCH/check.py" "$gql" "$token" "$BENCH/workloads" pg:peerbench 2> "$OUT/${sys}_check.txt") \
    || { cat "$OUT/${sys}_check.txt" >&2; exit 1; }
  len() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$lens" "$1"; }
  [ "$(curl -s -H "authorization: Bearer $token" -H 'content-type: application/json' \
       -d '{"query":"{ me { grants { action scope } } }"}' "$gql" | grep -c MANAGE_TRACKS)" = 1 ] \
    || { log "FAIL: W1's viewer does not hold the reviewer role"; exit 1; }
  (BODY_FILE="$BENCH/workloads/w1_first20.json" TOKEN="$token" taskset -c 0 wrk -t1 -c8 -d5s -s "$PEERS/workloads/post.lua" "$gql") >/dev/null
  for r in $(seq "$REPS"); do
    load "$sys" W1-20 "$gql" 8 "$DURATION" "$token" "$BENCH/workloads/w1_first20.json" "$(len w1_first20)" "$port"
    prefix="w3-$sys-$r-$(date +%s)"
    drive "$sys" "$port" first-sight --prefix "$prefix" --users 1000 --orgs 50 --warmup 64
    check_first_sight "rows_$sys" "$prefix" 1000 50 64 || exit 1
    [ "$(rows "$sys" "SELECT count(*) FROM membership_roles mr JOIN users u ON u.id = (SELECT user_id FROM memberships WHERE id = mr.membership_id) WHERE u.external_id LIKE '$prefix-%'")" = 1064 ] \
      || { log "FAIL: W3's new members were not seeded with the reviewer role"; exit 1; }
  done
  stop_server
}
rows_coursegraph-postgres-custom-role() { rows postgres "$1"; }

bench_coursegraph coursegraph-sqlite "sqlite://$CG_SQLITE" 8021
bench_coursegraph coursegraph-postgres "$CG_PG_URL" 8022
COURSEGRAPH_DB_ROLE=coursegraph_app QUICK=rls bench_coursegraph coursegraph-postgres-rls "$CG_PG_URL" 8023
COURSEGRAPH_POLICY="$BENCH/policy.toml" COURSEGRAPH_ROLE_MAP=member=reviewer QUICK=custom \
  bench_coursegraph coursegraph-postgres-custom-role "$CG_PG_URL" 8024

# ---- the table
machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
args=("$OUT/runs.txt" --machine "$machine" --command "$COMMAND" --reps "$REPS" --duration "$DURATION")
[ -n "${NO_WRITE:-}" ] || args+=(--write "$ROOT/BENCHMARKS.md")
python3 "$BENCH/report.py" "${args[@]}"
log "raw results: $OUT"
