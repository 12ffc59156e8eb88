// Apollo Client (the core, in Node) against a running coursegraph: queries with a
// normalized cache, a mutation that updates it, an Automatic Persisted Query round trip,
// and the extensions of a FORBIDDEN and an UNAUTHENTICATED error.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const base = process.env.COURSEGRAPH_URL;
const { ADMIN_TOKEN, INSTRUCTOR_TOKEN, MEMBER_TOKEN } = process.env;
assert.ok(base && ADMIN_TOKEN && INSTRUCTOR_TOKEN && MEMBER_TOKEN, "set COURSEGRAPH_URL and the *_TOKEN variables");

/** A fetch that records what went over the wire. */
function recordingFetch(log) {
  return async (url, init) => {
    log.push({ method: init?.method ?? "GET", url: String(url), body: init?.body ? JSON.parse(init.body) : null });
    return fetch(url, init);
  };
}

function client(token, { apq = false, log = [] } = {}) {
  const http = new HttpLink({
    uri: `${base}/graphql`,
    fetch: recordingFetch(log),
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const sha256 = (q) => createHash("sha256").update(q).digest("hex");
  const link = apq ? ApolloLink.from([new PersistedQueryLink({ sha256, useGETForHashedQueries: true }), http]) : http;
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

let passed = 0;
async function test(name, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${name}`);
}

const COURSES = gql`
  query Courses {
    organization {
      id
      name
      courses(first: 10) {
        totalCount
        edges { cursor node { id title price isPublished tracks { id name position } } }
      }
    }
  }
`;

await test("a query normalizes into the cache by __typename and id", async () => {
  const c = client(INSTRUCTOR_TOKEN);
  const { data, error } = await c.query({ query: COURSES });
  assert.equal(error, undefined);
  const org = data.organization;
  assert.ok(org.courses.totalCount >= 3);
  const cache = c.cache.extract();
  assert.ok(cache[`Organization:${org.id}`], "organization normalized");
  const course = org.courses.edges[0].node;
  assert.ok(cache[`Course:${course.id}`], "course normalized");
  assert.ok(cache[`Track:${course.tracks[0].id}`], "track normalized");
});

await test("a mutation updates the normalized course in place", async () => {
  const c = client(ADMIN_TOKEN);
  const { data } = await c.query({ query: COURSES });
  const course = data.organization.courses.edges.find((e) => e.node.isPublished).node;
  const title = `Renamed ${Date.now()}`;
  const res = await c.mutate({
    mutation: gql`mutation Rename($id: ID!, $title: String!) { updateCourse(id: $id, input: { title: $title }) { id title } }`,
    variables: { id: course.id, title },
  });
  assert.equal(res.data.updateCourse.title, title);
  const cached = c.readFragment({ id: `Course:${course.id}`, fragment: gql`fragment T on Course { title }` });
  assert.equal(cached.title, title, "the cache saw the mutation's result");
  // Put it back, so the suite can run again.
  await c.mutate({
    mutation: gql`mutation Rename($id: ID!, $title: String!) { updateCourse(id: $id, input: { title: $title }) { id title } }`,
    variables: { id: course.id, title: course.title },
  });
});

await test("automatic persisted queries: hash first, full text once, then hash only", async () => {
  // A text this server has never seen, so the first hash is unknown even on a re-run.
  const query = gql(`query ApqProbe${Date.now()} { me { user { id } activeRole } }`);
  const log1 = [];
  const first = client(MEMBER_TOKEN, { apq: true, log: log1 });
  const r1 = await first.query({ query, fetchPolicy: "no-cache" });
  assert.equal(r1.data.me.activeRole, "MEMBER");
  assert.equal(log1.length, 2, "unknown hash, then retried with the query");
  const first0 = new URL(log1[0].url).searchParams;
  assert.ok(first0.get("extensions")?.includes("sha256Hash") && first0.get("query") === null, "hash-only GET first");
  assert.ok(log1[1].body?.query?.includes("ApqProbe"), "then the full text by POST");

  const log2 = [];
  const second = client(MEMBER_TOKEN, { apq: true, log: log2 });
  const r2 = await second.query({ query, fetchPolicy: "no-cache" });
  assert.equal(r2.data.me.activeRole, "MEMBER");
  assert.equal(log2.length, 1, "a known hash needs one request");
  assert.equal(log2[0].method, "GET");
  assert.equal(new URL(log2[0].url).searchParams.get("query"), null, "and it carries no query text");
});

await test("a FORBIDDEN field arrives as null with code and reason, the rest as data", async () => {
  const c = client(MEMBER_TOKEN);
  const { data, error } = await c.query({
    query: gql`query Settings { organization { id name storageBucket } }`,
    errorPolicy: "all",
  });
  assert.ok(CombinedGraphQLErrors.is(error), `expected GraphQL errors, got ${error}`);
  const e = error.errors[0];
  assert.deepEqual(e.path, ["organization", "storageBucket"]);
  assert.equal(e.extensions.code, "FORBIDDEN");
  assert.equal(e.extensions.reason, "INSUFFICIENT_ROLE");
  assert.equal(e.extensions.action, "READ_ORGANIZATION_SETTINGS");
  assert.deepEqual(e.extensions.requiredRoles, ["ADMIN"]);
  assert.equal(data.organization.storageBucket, null);
  assert.ok(data.organization.name.length > 0);
});

await test("UNAUTHENTICATED carries its reason, with and without a token", async () => {
  for (const [token, reason] of [
    [null, "TOKEN_MISSING"],
    ["not-a-jwt", "TOKEN_MALFORMED"],
    [`${ADMIN_TOKEN.slice(0, -4)}AAAA`, "BAD_SIGNATURE"],
  ]) {
    const c = client(token);
    const { error } = await c.query({ query: gql`query Me { me { user { id } } }`, errorPolicy: "all" });
    assert.ok(CombinedGraphQLErrors.is(error), `${reason}: expected GraphQL errors, got ${error}`);
    assert.equal(error.errors[0].extensions.code, "UNAUTHENTICATED");
    assert.equal(error.errors[0].extensions.reason, reason);
  }
});

console.log(`apollo client: ${passed} passed`);
