#!/usr/bin/env bash
# bench/ab_custom_role.sh — W1 (first 20, c=8) for one viewer with and without a custom role,
# interleaved on one server so both see the same machine, tables and caches:
# `REPS` pairs of DURATION-second wrk runs; between them the viewer's assignment of the
# policy file's `reviewer` role (bench/policy.toml) is removed or restored in SQL, and the
# context cache's TTL (5 s) is waited out. Needs what bench/run.sh left: the release build,
# the coursegraph_bench database, bench/target/peers and wrk.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS=${REPS:-6}
DURATION=${DURATION:-10}
BIN=${CG_BIN:-target/release/coursegraph}
SECRET=coursegraph-bench-secret-0123456789abcdef
URL="postgres://postgres@127.0.0.1:5432/coursegraph_bench?sslmode=disable"
PORT=8031
psqlc() { su postgres -c "psql -X -At -d coursegraph_bench -c \"$1\"" >/dev/null; }
COURSEGRAPH_POLICY=bench/policy.toml COURSEGRAPH_DATABASE_URL="$URL" COURSEGRAPH_JWT_SECRET="$SECRET" \
  COURSEGRAPH_LISTEN=127.0.0.1:$PORT RUST_LOG=warn taskset -c 1 "$BIN" serve > bench/target/ab_server.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
sleep 3
TOKEN=$(COURSEGRAPH_JWT_SECRET="$SECRET" "$BIN" token --sub 'auth0|user-0103' --org tenant-03 --ttl 12h)
MEMBERSHIP="SELECT m.id, m.organization_id FROM memberships m JOIN users u ON u.id = m.user_id
  JOIN organizations o ON o.id = m.organization_id WHERE u.external_id = 'auth0|user-0103' AND o.external_id = 'tenant-03'"
w1() {
  BODY_FILE=bench/workloads/w1_first20.json TOKEN="$TOKEN" taskset -c 0 wrk -t1 -c8 -d"${DURATION}s" \
    -s bench/target/peers/workloads/post.lua "http://127.0.0.1:$PORT/graphql" | awk '/Requests\/sec/ {print $2}'
}
w1 >/dev/null
for _ in $(seq "$REPS"); do
  psqlc "DELETE FROM membership_roles WHERE membership_id IN (SELECT id FROM ($MEMBERSHIP) x)"; sleep 6
  echo "built-in only  $(w1)"
  psqlc "INSERT INTO membership_roles (membership_id, organization_id, role_key, created_at)
    SELECT id, organization_id, 'reviewer', now() FROM ($MEMBERSHIP) x ON CONFLICT DO NOTHING"; sleep 6
  echo "with reviewer  $(w1)"
done
