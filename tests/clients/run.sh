#!/usr/bin/env bash
# Runs the real-client suites against a freshly started coursegraph:
#   graphql-http's audit, Apollo Client in Node, subscriptions with graphql-ws and Apollo's
#   GraphQLWsLink, GraphiQL in headless Chromium (a query and a subscription), the /doctor
#   page in Chromium, schemathesis.
# Usage: tests/clients/run.sh [path/to/coursegraph]   (default: target/debug/coursegraph)
# Needs: node + `npm ci` here, /usr/bin/chromium, and `schemathesis` on PATH (.ci/run installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$(realpath "${1:-$root/target/debug/coursegraph}")
work=$(mktemp -d)
log=$work/server.log
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export COURSEGRAPH_JWT_SECRET=client-suite-secret-0123456789abcdef0123
export COURSEGRAPH_DATABASE_URL="sqlite://$work/clients.db?mode=rwc"
export COURSEGRAPH_LOG_FORMAT=json
unset COURSEGRAPH_ENV COURSEGRAPH_JWKS_URL

(cd "$work" && exec "$bin" serve --listen 127.0.0.1:0) 2>"$log" &
pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(grep -o '"addr":"[0-9.:]*"' "$log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }
export COURSEGRAPH_URL="http://$addr"
echo "coursegraph at $COURSEGRAPH_URL"

(cd "$work" && "$bin" seed) >"$work/tokens.txt"
token() { sed -n "/^# $1 /{n;p}" "$work/tokens.txt"; }
export ADMIN_TOKEN=$(token alice) INSTRUCTOR_TOKEN=$(token ian) MEMBER_TOKEN=$(token mia)

cd "$here"
echo "== graphql-http audit"
node audit.mjs
echo "== Apollo Client"
node apollo.mjs
echo "== subscriptions: graphql-ws and Apollo Client's GraphQLWsLink"
node subscriptions.mjs
echo "== GraphiQL in headless Chromium"
node graphiql.mjs
echo "== the /doctor page in headless Chromium"
node doctor.mjs
echo "== schemathesis"
"$here/schemathesis.sh"
echo "client suites passed"
