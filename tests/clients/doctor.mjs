// The /doctor page, served by coursegraph itself, in headless Chromium: paste an expired
// token and see the expiry check fail with its reason and hint; paste a member's token
// with an operation and see the denied field; no request leaves the server.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const base = process.env.COURSEGRAPH_URL;
const member = process.env.MEMBER_TOKEN;
const secret = process.env.COURSEGRAPH_JWT_SECRET;
assert.ok(base && member && secret, "set COURSEGRAPH_URL, MEMBER_TOKEN and COURSEGRAPH_JWT_SECRET");

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
function hs256(claims) {
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}
const now = Math.floor(Date.now() / 1000);
const expired = hs256({ sub: "doctor-page", iss: "coursegraph", iat: now - 7200, exp: now - 3600, org_id: "acme" });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  const offsite = [];
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

  await page.goto(`${base}/doctor`, { waitUntil: "networkidle" });
  await page.getByLabel("Token").fill(expired);
  await page.getByRole("button", { name: "Diagnose" }).click();
  const expiry = page.locator('tr[data-check="expiry"]');
  await expiry.waitFor({ timeout: 20000 });
  assert.equal(await expiry.getAttribute("data-status"), "fail");
  const row = await expiry.innerText();
  assert.match(row, /TOKEN_EXPIRED/);
  assert.match(row, /COURSEGRAPH_JWT_LEEWAY_SECS/);
  assert.equal(await page.locator('tr[data-check="signature"]').getAttribute("data-status"), "pass");
  assert.match(await page.locator("#verdict").innerText(), /UNAUTHENTICATED TOKEN_EXPIRED/);
  assert.equal(await page.locator("#checks tbody tr").count(), 14);
  console.log("ok - /doctor shows an expired token's failing check, reason and hint");

  await page.getByLabel("Token").fill(member);
  // An operation that does not validate is reported as the server would report it.
  await page.getByLabel(/Operation/).fill('mutation { createCourse(input: { title: "x" }) { id } }');
  await page.getByRole("button", { name: "Diagnose" }).click();
  await page.waitForFunction(() => /difficultyLevel/.test(document.querySelector("#verdict").textContent), null, {
    timeout: 20000,
  });
  assert.equal(await page.locator("#verdict").getAttribute("class"), "fail");
  console.log("ok - /doctor reports an operation that does not validate, with the server's words");

  await page.getByLabel(/Operation/).fill('mutation { createCourse(input: { title: "x", difficultyLevel: BEGINNER }) { id } }');
  await page.getByRole("button", { name: "Diagnose" }).click();
  const decision = page.locator('#decisions tr[data-path="createCourse"]');
  await decision.waitFor({ timeout: 20000 });
  assert.match(await decision.innerText(), /denied · INSUFFICIENT_ROLE/);
  assert.match(await page.locator("#verdict").innerText(), /^Not OK/);
  console.log("ok - /doctor explains a member's denied mutation field by field");

  assert.deepEqual(offsite, [], "the page tried to reach another origin");
  assert.deepEqual(pageErrors, [], "the page threw");
} finally {
  await browser.close();
}
