#!/usr/bin/env bash
# bench/scaleout.sh — S1, scale-out: W1-20 against the primary directly,
# through PgBouncer (transaction mode) and from the streaming standby, in one run, as
# ratios; on the benchmark data set and on the same set ×100 (2,000 organizations, 100,000
# users, 80,000 courses, 400,000 tracks); first-sight provisioning (W3-cold) on both sizes.
# The PostgreSQL set is the one scripts/scaleout.sh starts (its two server processes are
# not started here: this script starts one server per configuration itself).
#
#   bench/scaleout.sh                     # REPS=3 DURATION=10 SCALES="1 100"
#   REPS=1 DURATION=5 SCALES=1 bench/scaleout.sh
#
# Every W1 answer must be byte-identical to the direct configuration's on the small set (the
# ×100 set holds organization #3 unchanged), and under the standby configuration nearly every
# request must have read from the standby (its /metrics). Pinning: wrk and the driver on CPU 0;
# the server, PgBouncer and both PostgreSQL servers on CPU 1. Results: bench/target/results/.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
REPS=${REPS:-3}
DURATION=${DURATION:-10}
SCALES=${SCALES:-"1 100"}
CG_BIN="$ROOT/target/release/coursegraph"
DRIVER="$BENCH/target/release/cg-bench-driver"
PORT=8201
OUT="$BENCH/target/results/scaleout-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
log() { printf '[scaleout] %s\n' "$*" >&2; }

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --release --locked -q)
CARGO_TARGET_DIR="$BENCH/target" cargo build --release --locked -q --manifest-path "$BENCH/driver/Cargo.toml"

export CG_SERVER_PORTS=""
"$ROOT/scripts/scaleout.sh" up "$CG_BIN" > "$OUT/set.txt"
eval "$("$ROOT/scripts/scaleout.sh" env | grep SCALEOUT)"
base() { echo "${1%/*}"; }   # postgres://…:port/db -> postgres://…:port
PRIMARY=$(base "$COURSEGRAPH_SCALEOUT_PRIMARY_URL")
STANDBY=$(base "$COURSEGRAPH_SCALEOUT_STANDBY_URL")
BOUNCER=$(base "$COURSEGRAPH_SCALEOUT_BOUNCER_URL")
psql_on() { psql -X -q -At "$1" -c "$2"; }

PID=""
pin_set() {   # every process of the set (both PostgreSQL servers and their children, PgBouncer) to $1
  local d=${CG_SCALEOUT_DIR:-/tmp/coursegraph-scaleout} pm
  for node in primary standby; do
    pm=$(head -1 "$d/$node/postmaster.pid")
    for p in "$pm" $(ps -o pid= --ppid "$pm"); do taskset -acp "$1" "$p" >/dev/null 2>&1 || true; done
  done
  taskset -acp "$1" "$(cat "$d/pgbouncer.pid")" >/dev/null 2>&1 || true
}
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  pin_set 0-1
}
trap cleanup EXIT

caught_up() {   # waits until the standby has replayed all the primary has written
  local target
  target=$(psql_on "$PRIMARY/postgres" "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
  for _ in $(seq 600); do
    [ "$(psql_on "$STANDBY/postgres" "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint >= $target")" = t ] && return 0
    sleep 0.1
  done
  log "the standby did not catch up"; return 1
}

serve() {   # CONFIG DB -> PID; the server of one configuration on $PORT, pinned to CPU 1
  local config=$1 db=$2
  local -a env=(COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" COURSEGRAPH_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn)
  case "$config" in
    direct) env+=(COURSEGRAPH_DATABASE_URL="$PRIMARY/$db") ;;
    pgbouncer) env+=(COURSEGRAPH_DATABASE_URL="$BOUNCER/$db" COURSEGRAPH_DATABASE_LISTEN_URL="$PRIMARY/$db") ;;
    standby) env+=(COURSEGRAPH_DATABASE_URL="$PRIMARY/$db" COURSEGRAPH_DATABASE_READ_URL="$STANDBY/$db") ;;
  esac
  env "${env[@]}" COURSEGRAPH_AUTO_MIGRATE=false taskset -c 1 "$CG_BIN" serve > "$OUT/server_$config.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
  # The standby configuration reads there once its monitor has compared positions.
  sleep 1
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

metric() {   # NAME_WITH_LABELS -> value (0 if absent)
  curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1 == k {print $2; f=1} END {if (!f) print 0}'
}

first_sight() {   # SCALE CONFIG REP: W3 against the server on $PORT (1,000 never-seen users of 50 never-seen organizations) -> $RESULTS
  taskset -c 0 "$DRIVER" --url "http://127.0.0.1:$PORT/graphql" --metrics "http://127.0.0.1:$PORT/metrics" \
    --secret "$BENCH_SECRET" first-sight --prefix "s1-$2-$3-$(date +%s)" --users 1000 --orgs 50 | python3 -c '
import json, sys
scale, config, rep = sys.argv[1], sys.argv[2], sys.argv[3]
for line in sys.stdin:
    if line.strip():
        r = json.loads(line)
        assert r["errors"] == 0, r
        print(json.dumps({"scale": int(scale), "config": config, "workload": r["workload"], "rep": int(rep), "rps": r["rps"],
                          "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "requests": r["requests"],
                          "statements_per_req": r.get("statements_per_req")}))
' "$@" >> "$RESULTS"
  tail -2 "$RESULTS" >&2
}

pin_set 1
REFERENCE="$OUT/w1_reference.json"
for scale in $SCALES; do
  db="cg_scaleout_x$scale"
  psql_on "$PRIMARY/postgres" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  psql_on "$PRIMARY/postgres" "CREATE DATABASE $db"
  started=$(date +%s.%N)
  COURSEGRAPH_DATABASE_URL="$PRIMARY/$db" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$CG_BIN" seed --bench --scale "$scale" \
    > "$OUT/seed_x$scale.txt"
  head -1 "$OUT/seed_x$scale.txt" >&2
  log "x$scale loaded in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s"
  pin_set 1
  caught_up
  # W1's viewer: the first MEMBER of organization #3 (user #103 of the small set).
  sub=$(printf 'auth0|user-%04d' $((3 + 100 * scale)))
  token=$(COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$CG_BIN" token --sub "$sub" --org tenant-03 --ttl 12h)
  for config in direct pgbouncer standby; do
    serve "$config" "$db"
    answer="$OUT/w1_x${scale}_$config.json"
    curl -s "http://127.0.0.1:$PORT/graphql" -H "authorization: Bearer $token" -H 'content-type: application/json' \
      --data-binary "@$BENCH/workloads/w1_first20.json" > "$answer"
    grep -q '"errors"' "$answer" && { cat "$answer" >&2; exit 1; }
    [ -s "$REFERENCE" ] || cp "$answer" "$REFERENCE"
    cmp -s "$answer" "$REFERENCE" || { log "FAIL: W1 x$scale $config differs from the reference answer"; exit 1; }
    len=$(stat -c %s "$answer")
    for rep in $(seq "$REPS"); do
      st0=$(metric coursegraph_db_statements_total)
      r0=$(metric 'coursegraph_db_reads_total{reason="caught_up",target="replica"}')
      res=$(BODY_FILE="$BENCH/workloads/w1_first20.json" TOKEN="$token" EXPECT_LEN="$len" \
        taskset -c 0 wrk -t1 -c8 -d"${DURATION}s" --latency -s "$BENCH/post.lua" "http://127.0.0.1:$PORT/graphql" | grep '^RESULT')
      st1=$(metric coursegraph_db_statements_total)
      r1=$(metric 'coursegraph_db_reads_total{reason="caught_up",target="replica"}')
      case "$res" in *" bad=0 sock_err=0 non2xx=0") ;; *) log "FAIL: W1 x$scale $config: $res"; exit 1 ;; esac
      python3 - "$scale" "$config" "$rep" "$res" "$st0" "$st1" "$r0" "$r1" >> "$RESULTS" <<'PY'
import json, sys
scale, config, rep, res, st0, st1, r0, r1 = sys.argv[1:]
kv = dict(p.split("=", 1) for p in res.split()[1:])
n = int(kv["requests"])
row = {"scale": int(scale), "config": config, "workload": "W1-20", "rep": int(rep), "rps": float(kv["rps"]),
       "p50_ms": float(kv["p50_ms"]), "p99_ms": float(kv["p99_ms"]), "requests": n,
       "statements_per_req": (float(st1) - float(st0)) / n, "replica_share": (float(r1) - float(r0)) / n}
if config == "standby" and row["replica_share"] < 0.95:
    sys.exit(f"only {row['replica_share']:.0%} of the standby configuration's requests read the standby")
print(json.dumps(row))
PY
      tail -1 "$RESULTS" >&2
    done
    stop
  done
  # First sight on this data set size: 1,000 never-seen users of 50 never-seen organizations.
  for config in direct pgbouncer; do
    # REPS runs, each of its own never-seen users and organizations on a fresh server (as on
    # the machine's PostgreSQL below): a single run's p99 is the tail of 1,000 requests.
    for rep in $(seq "$REPS"); do
      serve "$config" "$db"
      first_sight "$scale" "$config" "$rep"
      stop
    done
  done
done

# First sight again on the machine's own PostgreSQL (the one bench/run.sh measures on, no
# standby replaying on the server's core), on both sizes: how the data set's size alone
# moves provisioning.
SYSTEM_PG=${SYSTEM_PG:-postgres://postgres@127.0.0.1:5432}
pin_system() {   # every process of the machine's PostgreSQL to $1
  local pm; pm=$(head -1 /var/lib/postgresql/15/main/postmaster.pid 2>/dev/null) || return 0
  for p in "$pm" $(ps -o pid= --ppid "$pm"); do taskset -acp "$1" "$p" >/dev/null 2>&1 || true; done
}
if [ "${SYSTEM_W3:-1}" = 1 ] && psql_on "$SYSTEM_PG/postgres" "SELECT 1" >/dev/null 2>&1; then
  pin_set 0-1
  for scale in $SCALES; do
    db="cg_scaleout_sys_x$scale"
    psql_on "$SYSTEM_PG/postgres" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    psql_on "$SYSTEM_PG/postgres" "CREATE DATABASE $db"
    COURSEGRAPH_DATABASE_URL="$SYSTEM_PG/$db" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$CG_BIN" seed --bench --scale "$scale" >/dev/null
    pin_system 1
    for rep in $(seq "$REPS"); do
      COURSEGRAPH_DATABASE_URL="$SYSTEM_PG/$db" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" COURSEGRAPH_LISTEN="127.0.0.1:$PORT" \
        RUST_LOG=warn COURSEGRAPH_AUTO_MIGRATE=false taskset -c 1 "$CG_BIN" serve > "$OUT/server_system.log" 2>&1 &
      PID=$!
      for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
      first_sight "$scale" system "$rep"
      stop
    done
    pin_system 0-1
    psql_on "$SYSTEM_PG/postgres" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  done
fi

python3 - "$RESULTS" "REPS=$REPS DURATION=$DURATION SCALES=\"$SCALES\" bench/scaleout.sh" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(scale, config, wl, key="rps"):
    xs = [r[key] for r in rows if (r["scale"], r["config"], r["workload"]) == (scale, config, wl)]
    return statistics.median(xs) if xs else None
print(f"Command: `{sys.argv[2]}`\n")
print("| data set | configuration | workload | req/s median (min–max) | p50 ms | p99 ms | SQL statements / request | × direct |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
for scale in sorted({r["scale"] for r in rows}):
    for wl in ["W1-20", "W3-cold", "W3-warm"]:
        for config in ["direct", "pgbouncer", "standby", "system"]:
            rs = [r for r in rows if (r["scale"], r["config"], r["workload"]) == (scale, config, wl)]
            if not rs:
                continue
            rps = [r["rps"] for r in rs]
            d = med(scale, "direct", wl)
            spr = statistics.median([r["statements_per_req"] for r in rs if r["statements_per_req"] is not None] or [0])
            ratio = f"{statistics.median(rps) / d:.2f}×" if d and config not in ("direct", "system") else ""
            size = "small (×1)" if scale == 1 else f"×{scale}"
            config = "the machine's PostgreSQL, direct" if config == "system" else config
            print(f"| {size} | {config} | {wl} | {statistics.median(rps):.0f} ({min(rps):.0f}–{max(rps):.0f}) "
                  f"| {statistics.median([r['p50_ms'] for r in rs]):.2f} | {statistics.median([r['p99_ms'] for r in rs]):.2f} "
                  f"| {spr:.2f} | {ratio} |")
print()
small, big = med(1, "direct", "W1-20"), med(100, "direct", "W1-20")
if small and big:
    change = (big - small) / small
    print(f"- {'✅' if abs(change) <= 0.10 else '❌'} W1-20 direct on ×100: {big:.0f} vs {small:.0f} req/s on the small set ({change:+.1%}; target within 10 %)")
for config, where in [("system", "the machine's PostgreSQL"), ("direct", "the scale-out primary, standby replaying on the same core")]:
    runs = [r["p99_ms"] for r in rows if (r["scale"], r["config"], r["workload"]) == (100, config, "W3-cold")]
    if runs:
        p99, small99 = statistics.median(runs), med(1, config, "W3-cold", "p99_ms")
        print(f"- {'✅' if p99 <= 10 else '❌'} first-sight provisioning (W3-cold, c=8) p99 on ×100, {where}: {p99:.2f} ms,"
              f" median of {len(runs)} runs ({min(runs):.2f}–{max(runs):.2f}; {sum(x <= 10 for x in runs)} of {len(runs)} ≤ 10 ms)"
              f" ({'' if small99 is None else f'small set: {small99:.2f} ms; '}target ≤ 10 ms)")
for scale in sorted({r["scale"] for r in rows}):
    d = med(scale, "direct", "W1-20")
    for config in ["pgbouncer", "standby"]:
        x = med(scale, config, "W1-20")
        if d and x:
            print(f"- W1-20 ×{scale}, {config} / direct: {x / d:.2f}")
PY
log "results: $OUT"
