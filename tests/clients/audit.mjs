// GraphQL over HTTP compliance: graphql-http's auditServer against a running server.
// Fails on any `error` result; prints every warn/notice so the README can state them.
import { auditServer } from "graphql-http";

const base = process.env.COURSEGRAPH_URL;
if (!base) throw new Error("set COURSEGRAPH_URL");
const results = await auditServer({ url: `${base}/graphql`, fetchFn: fetch });
const counts = { ok: 0, warn: 0, notice: 0, error: 0 };
for (const r of results) {
  counts[r.status] += 1;
  if (r.status !== "ok") {
    const reason = typeof r.reason === "string" ? r.reason : JSON.stringify(r.reason);
    console.log(`${r.status.toUpperCase()} ${r.id} ${r.name}: ${reason}`);
  }
}
console.log(`graphql-http audit: ${JSON.stringify(counts)}`);
if (counts.error > 0) process.exit(1);
