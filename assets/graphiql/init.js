// Starts GraphiQL against this server's /graphql. Everything is served by coursegraph
// itself: no CDN, works offline. Put your token in the Headers tab:
//   { "Authorization": "Bearer <token from `cargo run -- token ...`>" }
(function () {
  var defaultQuery = [
    "# Welcome to coursegraph.",
    "#",
    "# 1. Mint a dev token:  cargo run -- token --sub alice --org acme --role admin",
    "# 2. Open the Headers tab below and paste:",
    '#      { "Authorization": "Bearer <token>" }',
    "# 3. Run this query (Ctrl-Enter).",
    "",
    "query Me {",
    "  me {",
    "    user { id name email }",
    "    activeOrganization { id name slug }",
    "    activeRole",
    "  }",
    "}",
    "",
  ].join("\n");
  // Subscriptions go over a WebSocket to the same path (graphql-transport-ws); the Headers
  // tab's values become its connection_init payload, so the same Authorization works.
  var wsUrl = (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + "/graphql";
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql", subscriptionUrl: wsUrl });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: '{\n  "Authorization": "Bearer "\n}',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    })
  );
})();
