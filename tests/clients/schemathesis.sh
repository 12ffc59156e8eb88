#!/usr/bin/env bash
# schemathesis (PyPI) against the running server's GraphQL endpoint, with an admin token.
# Expects COURSEGRAPH_URL and ADMIN_TOKEN; `ST` may point at the schemathesis CLI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
st=${ST:-schemathesis}
export SCHEMATHESIS_HOOKS=schemathesis_hooks
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"
config=$(mktemp --suffix=.toml)
trap 'rm -f "$config"' EXIT
python3 schemathesis_config.py "$config"
"$st" --config-file "$config" run "$COURSEGRAPH_URL/graphql" \
  --header "Authorization: Bearer $ADMIN_TOKEN" \
  --checks coursegraph_no_server_error \
  --max-examples "${ST_EXAMPLES:-40}" \
  --seed "${ST_SEED:-20261122}" \
  --workers 1 \
  --no-shrink \
  --report junit --report-dir "${ST_REPORT_DIR:-$(mktemp -d)}"
