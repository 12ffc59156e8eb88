# bench/lib.sh — helpers for bench/run.sh, ab.sh and instructions.sh (source it; bash only).
# Builds on the peer's lib.sh (pinning, CPU accounting, PostgreSQL process list), which the
# scripts source first. Pinning: the load generator on CPU 0; the server under test and
# every PostgreSQL process on CPU 1.

# The HS256 secret every benchmark server verifies with.
BENCH_SECRET=coursegraph-bench-secret-0123456789abcdef

# w1_token BINARY -> a token of W1's viewer, member #103 of organization #3.
w1_token() {
  env -u COURSEGRAPH_DB_ROLE COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" "$1" token --sub 'auth0|user-0103' --org tenant-03 --ttl 12h
}

# check_first_sight QUERY PREFIX USERS ORGS WARMUP — after the driver's `first-sight` run with
# PREFIX, each provisioned row exists exactly once: the timed run's USERS users in ORGS
# organizations with one membership each, and the WARMUP warm-up users of their one
# organization (`PREFIX-warmup-…`), counted apart. QUERY is a command that prints the
# result of the SQL it is given (sqlite3 or psql).
check_first_sight() {
  local q=$1 p=$2 users=$3 orgs=$4 warm=$5 got want
  local timed="external_id LIKE '$p-%' AND external_id NOT LIKE '$p-warmup-%'"
  local warmup="external_id LIKE '$p-warmup-%'"
  got="$("$q" "SELECT count(*) FROM users WHERE $timed") $("$q" "SELECT count(*) FROM organizations WHERE $timed")"
  got+=" $("$q" "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.$timed")"
  got+=" $("$q" "SELECT count(*) FROM users WHERE $warmup") $("$q" "SELECT count(*) FROM organizations WHERE $warmup")"
  got+=" $("$q" "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.$warmup")"
  want="$users $orgs $users $warm $(( warm > 0 ? 1 : 0 )) $warm"
  [ "$got" = "$want" ] || {
    echo "FAIL: first sight $p left (users organizations memberships, then the warm-up's) $got, expected $want" >&2
    return 1
  }
}

# coursegraph_statements PORT -> the server's SQL statement counter (from /metrics).
coursegraph_statements() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^coursegraph_db_statements_total / {print $2; f=1} END {if (!f) print 0}'
}

# start_coursegraph NAME DATABASE_URL PORT -> SERVER_PID, pinned to CPU 1.
start_coursegraph() {
  local name=$1 url=$2 port=$3
  port_free "$port" || return 1
  # RUST_LOG=warn: no line per request, as PostGraphile in production mode logs none.
  COURSEGRAPH_DATABASE_URL="$url" COURSEGRAPH_JWT_SECRET="$BENCH_SECRET" \
    COURSEGRAPH_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
    taskset -c 1 "$CG_BIN" serve > "$OUT/server_$name.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$port/graphql" && kill -0 "$SERVER_PID" || { cat "$OUT/server_$name.log"; return 1; }
  log "coursegraph ($name) up, pid $SERVER_PID"
}

# load SYSTEM WORKLOAD URL CONC SECONDS TOKEN BODY_FILE EXPECT_LEN [METRICS_PORT]
# Runs wrk on CPU 0 against the server in SERVER_PID and appends one line of
# key=value pairs to $OUT/runs.txt: req/s, p50/p99, peak RSS, CPU per request and,
# for coursegraph (METRICS_PORT), SQL statements per request.
load() {
  local sys=$1 wl=$2 url=$3 c=$4 d=$5 token=$6 body=$7 elen=$8 mport=${9:-}
  local f rssf=/tmp/cg_bench_rss_$$ st0=0 st1=0 srv0 srv1 b0 a0 s0 b1 a1 s1
  f="$OUT/raw/${sys}_${wl}_c${c}_$(date +%s%N).txt"
  echo 0 > "$rssf"
  # RSS sampler every 0.2 s on the load generator's CPU, bash builtins only.
  ( taskset -cp 0 $BASHPID >/dev/null; peak=0
    while [ -r /proc/$SERVER_PID/status ]; do
      while read -r k v _; do
        [ "$k" = "VmRSS:" ] && { [ "$v" -gt "$peak" ] && { peak=$v; echo "$peak" > "$rssf"; }; break; }
      done < /proc/$SERVER_PID/status
      sleep 0.2; done ) & local sampler=$!
  [ -n "$mport" ] && st0=$(coursegraph_statements "$mport")
  srv0=$(proc_ticks "$SERVER_PID")
  read -r b0 a0 s0 < <(cpu_ticks 1)
  BODY_FILE="$body" TOKEN="$token" EXPECT_LEN="$elen" \
    taskset -c 0 wrk -t1 -c"$c" -d"${d}s" --latency -s "$PEERS/workloads/post.lua" "$url" > "$f" 2>&1
  read -r b1 a1 s1 < <(cpu_ticks 1)
  srv1=$(proc_ticks "$SERVER_PID")
  [ -n "$mport" ] && st1=$(coursegraph_statements "$mport")
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  local rss_kb res reqs hz
  rss_kb=$(cat "$rssf"); rm -f "$rssf"
  res=$(grep '^RESULT' "$f" | sed 's/^RESULT //')
  [ -n "$res" ] || { cat "$f" >&2; return 1; }
  reqs=$(echo "$res" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
  hz=$(getconf CLK_TCK)
  local line
  line="system=$sys workload=$wl c=$c $res rss_mb=$(awk -v k="$rss_kb" 'BEGIN{printf "%.1f", k/1024}')"
  line+=" cpu1_us_per_req=$(awk -v b=$((b1-b0)) -v n="$reqs" -v hz="$hz" 'BEGIN{printf "%.0f", n? b/hz*1e6/n : 0}')"
  line+=" server_us_per_req=$(awk -v t=$((srv1-srv0)) -v n="$reqs" -v hz="$hz" 'BEGIN{printf "%.0f", n? t/hz*1e6/n : 0}')"
  # The statement counter counts only completed requests' work; wrk's last in-flight
  # requests blur it by at most a few statements out of tens of thousands.
  [ -n "$mport" ] && line+=" statements_per_req=$(awk -v s=$((st1-st0)) -v n="$reqs" 'BEGIN{printf "%.2f", n? s/n : 0}')"
  echo "$line" | tee -a "$OUT/runs.txt" >&2
  case "$res" in *"bad=0 "*|*"bad=unchecked"*) ;; *) log "FAIL: $sys $wl c=$c had bad responses"; return 1 ;; esac
  case "$res" in *"sock_err=0 non2xx=0"*) ;; *) log "FAIL: $sys $wl c=$c had socket errors or non-2xx"; return 1 ;; esac
}

# drive SYSTEM PORT ARGS... — the W3/W4 driver (bench/driver) on CPU 0; one run line per
# phase it reports, with the server's peak RSS so far (VmHWM).
drive() {
  local sys=$1 port=$2; shift 2
  local out hwm
  out=$(taskset -c 0 "$DRIVER" --url "http://127.0.0.1:$port/graphql" --metrics "http://127.0.0.1:$port/metrics" \
    --secret "$BENCH_SECRET" "$@" 2> "$OUT/raw/driver_stderr.txt") || { cat "$OUT/raw/driver_stderr.txt" >&2; return 1; }
  hwm=$(awk '/^VmHWM:/ {print $2}' /proc/$SERVER_PID/status)
  echo "$out" | python3 "$BENCH/driver_lines.py" "$sys" "$hwm" | tee -a "$OUT/runs.txt" >&2 || { log "FAIL: $sys driver reported errors"; return 1; }
}
