#!/usr/bin/env bash
# Refreshes the GraphiQL assets embedded in the binary (assets/graphiql/) from the npm
# registry. Run at development time only; the server never fetches anything at runtime.
set -euo pipefail
GRAPHIQL=${GRAPHIQL:-4.1.2}
REACT=${REACT:-18.3.1}
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/assets/graphiql"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
cp "graphiql-$GRAPHIQL/package/graphiql.min.js" "graphiql-$GRAPHIQL/package/graphiql.min.css" "$out/"
cp "react-$REACT/package/umd/react.production.min.js" "$out/"
cp "react-dom-$REACT/package/umd/react-dom.production.min.js" "$out/"
# The source map is not shipped; drop the reference so browsers don't ask for it.
sed -i '$ s|^//# sourceMappingURL=.*$||' "$out/graphiql.min.js"
{
  echo "GraphiQL $GRAPHIQL (graphiql.min.js, graphiql.min.css):"; cat "graphiql-$GRAPHIQL/package/LICENSE"; echo
  echo "React $REACT and ReactDOM $REACT (react*.production.min.js):"; cat "react-$REACT/package/LICENSE"
} > "$out/THIRD_PARTY_LICENSES.txt"
echo "assets/graphiql updated to graphiql@$GRAPHIQL, react@$REACT"
