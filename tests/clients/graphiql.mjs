// GraphiQL, served by coursegraph itself, in headless Chromium with no internet access:
// set the Authorization header in the Headers tab, run the default query, read the result;
// then run a subscription and see an event arrive over the WebSocket.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.COURSEGRAPH_URL;
const token = process.env.ADMIN_TOKEN;
assert.ok(base && token, "set COURSEGRAPH_URL and ADMIN_TOKEN");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  const offsite = [];
  // Prove "no CDN": any request that leaves this server fails the test.
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (`${url.protocol}//${url.host}` !== base) {
      offsite.push(url.href);
      return route.abort();
    }
    return route.continue();
  });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  await page.goto(`${base}/`, { waitUntil: "networkidle" });
  await page.waitForSelector(".graphiql-container", { timeout: 20000 });

  // The schema loaded (GraphiQL's introspection query passed the server's limits).
  await page.getByRole("button", { name: "Show Documentation Explorer" }).click();
  await page.locator(".graphiql-doc-explorer").getByText("Root Types").waitFor({ timeout: 20000 });

  // Headers tab → replace the editor's text with our Authorization header.
  await page.getByRole("button", { name: /headers/i }).click();
  const headers = page.locator(".graphiql-editor-tool .graphiql-editor").last();
  await headers.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${token}` }));

  // Run the default `Me` query.
  await page.locator("button.graphiql-execute-button").click();
  const response = page.locator(".graphiql-response");
  await response.getByText('"ADMIN"').waitFor({ timeout: 20000 });
  const text = await response.innerText();
  assert.match(text, /"activeRole": "ADMIN"/);
  assert.match(text, /"slug": "acme"/);

  // A subscription, over the WebSocket, with the same Authorization header.
  const query = page.locator(".graphiql-query-editor .CodeMirror").first();
  await query.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText("subscription Live { courseChanges { kind course { title } } }");
  // GraphiQL re-parses the document (and its operation name) after a short pause.
  await page.waitForTimeout(1000);
  await page.locator("button.graphiql-execute-button").click();
  await page.waitForTimeout(1000);
  const r = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'mutation { createCourse(input: { title: "Seen in GraphiQL", difficultyLevel: BEGINNER, isPublished: true }) { id } }',
    }),
  });
  assert.equal(r.status, 200);
  await response.getByText("Seen in GraphiQL").waitFor({ timeout: 20000 });
  const live = await response.innerText();
  assert.match(live, /"kind": "ADDED"/);
  console.log("ok - GraphiQL ran a subscription over the WebSocket and showed the event");

  assert.deepEqual(offsite, [], "GraphiQL tried to reach another origin");
  assert.deepEqual(pageErrors, [], "the page threw");
  console.log("ok - GraphiQL ran the query with the Authorization header and showed the result");
} finally {
  await browser.close();
}
