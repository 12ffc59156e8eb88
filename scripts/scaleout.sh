#!/usr/bin/env bash
# Scale-out on one machine: a PostgreSQL 15 primary, a streaming standby
# made with pg_basebackup, PgBouncer (Debian's package) in pool_mode = transaction in front
# of the primary, and two `coursegraph serve` processes sharing them: writes and LISTEN go
# to the primary (through PgBouncer, LISTEN directly), queries read from the standby.
#
#   scripts/scaleout.sh up [path/to/coursegraph]   start everything (idempotent), print the URLs
#   scripts/scaleout.sh env                       print the export lines for the running set
#   scripts/scaleout.sh status                    what is running
#   scripts/scaleout.sh down                      stop everything and delete the data
#
# Ports (override with the env vars): primary 55432 (CG_PRIMARY_PORT), standby 55433
# (CG_STANDBY_PORT), PgBouncer 56432 (CG_BOUNCER_PORT), servers 8101 and 8102 (CG_SERVER_PORTS; empty: none);
# the servers' COURSEGRAPH_READ_MAX_LAG is CG_READ_MAX_LAG (default 5s).
# State lives in $CG_SCALEOUT_DIR (default /tmp/coursegraph-scaleout). PostgreSQL and
# PgBouncer refuse to run as root: as root the script runs them as the `postgres` user.
# Needs: postgresql-15 (initdb, pg_basebackup) and pgbouncer; `up` installs pgbouncer with
# apt when it is missing and the script runs as root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dir=${CG_SCALEOUT_DIR:-/tmp/coursegraph-scaleout}
pg_bin=${CG_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
primary_port=${CG_PRIMARY_PORT:-55432}
standby_port=${CG_STANDBY_PORT:-55433}
bouncer_port=${CG_BOUNCER_PORT:-56432}
read -r -a server_ports <<<"${CG_SERVER_PORTS-8101 8102}"
max_lag=${CG_READ_MAX_LAG:-5s}
db=coursegraph
secret_file=$dir/jwt-secret

# Runs a command as the database owner (postgres when we are root, else ourselves).
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

primary_url="postgres://postgres@127.0.0.1:$primary_port/$db"
standby_url="postgres://postgres@127.0.0.1:$standby_port/$db"
bouncer_url="postgres://postgres@127.0.0.1:$bouncer_port/$db"

print_env() {
  cat <<EOF
export COURSEGRAPH_DATABASE_URL=$bouncer_url
export COURSEGRAPH_DATABASE_LISTEN_URL=$primary_url
export COURSEGRAPH_DATABASE_READ_URL=$standby_url
export COURSEGRAPH_JWT_SECRET=$(cat "$secret_file" 2>/dev/null || echo unset)
export COURSEGRAPH_SCALEOUT_PRIMARY_URL=$primary_url
export COURSEGRAPH_SCALEOUT_STANDBY_URL=$standby_url
export COURSEGRAPH_SCALEOUT_BOUNCER_URL=$bouncer_url
export COURSEGRAPH_SCALEOUT_JWT_SECRET=$(cat "$secret_file" 2>/dev/null || echo unset)
export COURSEGRAPH_SCALEOUT_READ_MAX_LAG=$max_lag
EOF
  local i=1
  for p in "${server_ports[@]}"; do
    echo "export COURSEGRAPH_SCALEOUT_SERVER_$i=http://127.0.0.1:$p"
    i=$((i + 1))
  done
}

wait_ready() { # port
  for _ in $(seq 1 100); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$1" && return 0
    sleep 0.1
  done
  echo "PostgreSQL on port $1 did not become ready" >&2
  return 1
}

start_primary() {
  if [ ! -s "$dir/primary/PG_VERSION" ]; then
    as_owner "$pg_bin/initdb" -D "$dir/primary" -U postgres --auth=trust --no-instructions >/dev/null
    cat >>"$dir/primary/postgresql.conf" <<EOF
port = $primary_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 5
hot_standby = on
max_connections = 200
fsync = off
EOF
  fi
  if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$primary_port"; then
    as_owner "$pg_bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
  fi
  wait_ready "$primary_port"
  if ! as_owner "$pg_bin/psql" -h 127.0.0.1 -p "$primary_port" -U postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_owner "$pg_bin/createdb" -h 127.0.0.1 -p "$primary_port" -U postgres "$db"
  fi
}

start_standby() {
  if [ ! -s "$dir/standby/PG_VERSION" ]; then
    # -R writes primary_conninfo and standby.signal: a streaming hot standby.
    as_owner "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$dir/standby" -R -X stream -c fast
    echo "port = $standby_port" | as_owner tee -a "$dir/standby/postgresql.conf" >/dev/null
  fi
  if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$standby_port"; then
    as_owner "$pg_bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
  fi
  wait_ready "$standby_port"
  local mode
  mode=$(as_owner "$pg_bin/psql" -h 127.0.0.1 -p "$standby_port" -U postgres -Atqc "SELECT pg_is_in_recovery()")
  [ "$mode" = t ] || { echo "the standby is not in recovery" >&2; return 1; }
}

start_bouncer() {
  if ! command -v pgbouncer >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer) >/dev/null
    else
      echo "pgbouncer is not installed (apt-get install pgbouncer)" >&2
      return 1
    fi
  fi
  # The pgbouncer package starts a system instance on 6432; ours is separate.
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$db = host=127.0.0.1 port=$primary_port dbname=$db
; Any other database on the primary, by its own name (the test suite's one-per-test databases).
* = host=127.0.0.1 port=$primary_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = postgres
EOF
  echo '"postgres" ""' >"$dir/userlist.txt"
  chmod a+r "$dir/pgbouncer.ini" "$dir/userlist.txt"
  if [ -s "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
    return 0
  fi
  as_owner pgbouncer -d -q "$dir/pgbouncer.ini"
  for _ in $(seq 1 50); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$bouncer_port" && return 0
    sleep 0.1
  done
  echo "PgBouncer did not start (see $dir/pgbouncer.log)" >&2
  return 1
}

start_servers() { # binary
  local bin=$1
  [ -s "$secret_file" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file"
  # Through PgBouncer like everything else: the migrations run in one transaction under a
  # transaction-scoped advisory lock.
  COURSEGRAPH_DATABASE_URL=$bouncer_url COURSEGRAPH_JWT_SECRET=$(cat "$secret_file") "$bin" migrate
  local i=1
  for p in "${server_ports[@]}"; do
    if [ -s "$dir/server$i.pid" ] && kill -0 "$(cat "$dir/server$i.pid")" 2>/dev/null; then
      i=$((i + 1))
      continue
    fi
    (
      export COURSEGRAPH_DATABASE_URL=$bouncer_url COURSEGRAPH_DATABASE_LISTEN_URL=$primary_url
      export COURSEGRAPH_DATABASE_READ_URL=$standby_url COURSEGRAPH_READ_MAX_LAG=$max_lag
      export COURSEGRAPH_JWT_SECRET=$(cat "$secret_file") COURSEGRAPH_AUTO_MIGRATE=false COURSEGRAPH_LOG_FORMAT=json
      unset COURSEGRAPH_ENV COURSEGRAPH_JWKS_URL
      cd "$dir" && exec "$bin" serve --listen "127.0.0.1:$p"
    ) >"$dir/server$i.log" 2>&1 &
    echo $! >"$dir/server$i.pid"
    for _ in $(seq 1 100); do
      curl -fsS -o /dev/null "http://127.0.0.1:$p/healthz" 2>/dev/null && break
      sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$p/healthz" || { cat "$dir/server$i.log" >&2; return 1; }
    i=$((i + 1))
  done
}

stop_all() {
  for f in "$dir"/server*.pid; do
    [ -e "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  if [ -s "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
  fi
  for node in standby primary; do
    [ -d "$dir/$node" ] && as_owner "$pg_bin/pg_ctl" -D "$dir/$node" -m fast -w stop >/dev/null 2>&1 || true
  done
}

case "${1:-}" in
up)
  bin=$(realpath "${2:-$root/target/debug/coursegraph}")
  [ -x "$bin" ] || { echo "no coursegraph binary at $bin (cargo build)" >&2; exit 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  start_primary
  start_standby
  start_bouncer
  start_servers "$bin"
  print_env
  ;;
env) print_env ;;
status)
  for p in "$primary_port" "$standby_port" "$bouncer_port"; do
    printf 'port %s: ' "$p"
    "$pg_bin/pg_isready" -h 127.0.0.1 -p "$p" || true
  done
  for p in "${server_ports[@]}"; do
    printf 'server %s: ' "$p"
    curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$p/readyz" || echo down
  done
  ;;
down)
  stop_all
  rm -rf "$dir"
  ;;
*)
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
  ;;
esac
