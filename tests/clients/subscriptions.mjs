// Live updates with the real clients: the `graphql-ws` library (the graphql-transport-ws
// protocol's reference client) and Apollo Client's GraphQLWsLink, against a running
// coursegraph. Viewer-relative events, field policy in payloads, NOT_FOUND, and 4403 on a
// refused token.
import assert from "node:assert/strict";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const base = process.env.COURSEGRAPH_URL;
const { ADMIN_TOKEN, MEMBER_TOKEN } = process.env;
assert.ok(base && ADMIN_TOKEN && MEMBER_TOKEN, "set COURSEGRAPH_URL, ADMIN_TOKEN and MEMBER_TOKEN");
const wsUrl = `${base.replace(/^http/, "ws")}/graphql`;

let passed = 0;
async function test(name, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${name}`);
}

function wsClient(token, extra = {}) {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: false,
    ...extra,
  });
}

async function http(token, query, variables = {}) {
  const r = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await r.json();
  assert.equal(body.errors, undefined, JSON.stringify(body));
  return body.data;
}

/** The events of one subscription, awaited one by one. */
function events(client, query, variables = {}) {
  const queue = [];
  const waiters = [];
  let failure = null;
  const push = (item) => {
    const w = waiters.shift();
    if (w) w(item);
    else queue.push(item);
  };
  const dispose = client.subscribe(
    { query, variables },
    { next: (v) => push({ value: v }), error: (e) => push({ error: e }), complete: () => push({ done: true }) },
  );
  return {
    dispose,
    next(ms = 3000) {
      if (failure) throw failure;
      if (queue.length) return Promise.resolve(queue.shift());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms);
        waiters.push((item) => {
          clearTimeout(t);
          resolve(item);
        });
      });
    },
  };
}

const connected = (client) => new Promise((resolve, reject) => {
  client.on("connected", resolve);
  client.on("closed", (e) => reject(new Error(`closed ${e.code} ${e.reason}`)));
});

const closedWith = (client) => new Promise((resolve) => client.on("closed", (e) => resolve([e.code, e.reason])));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const COURSE_CHANGES = "subscription { courseChanges { kind courseId course { id title isPublished metadata } } }";
const CREATE = "mutation($t: String!, $p: Boolean) { createCourse(input: { title: $t, difficultyLevel: BEGINNER, isPublished: $p, metadata: { internal: true } }) { id } }";

await test("graphql-ws: a member hears of published courses, never of drafts, and gets no metadata", async () => {
  const client = wsClient(MEMBER_TOKEN);
  await connected(client);
  const sub = events(client, COURSE_CHANGES);
  await sleep(200);
  await http(ADMIN_TOKEN, CREATE, { t: "Draft via graphql-ws", p: false });
  const { createCourse } = await http(ADMIN_TOKEN, CREATE, { t: "Published via graphql-ws", p: true });
  const { value } = await sub.next();
  const change = value.data.courseChanges;
  assert.equal(change.kind, "ADDED");
  assert.equal(change.courseId, createCourse.id, "the draft never arrived, the published course did");
  assert.equal(change.course.title, "Published via graphql-ws");
  assert.equal(change.course.metadata, null);
  assert.equal(value.errors[0].extensions.code, "FORBIDDEN");
  assert.equal(value.errors[0].extensions.reason, "INSUFFICIENT_ROLE");
  sub.dispose();
  await client.dispose();
});

await test("graphql-ws: subscribing to a course the viewer cannot read is NOT_FOUND", async () => {
  const { createCourse } = await http(ADMIN_TOKEN, CREATE, { t: "Hidden draft", p: false });
  const client = wsClient(MEMBER_TOKEN);
  const sub = events(client, "subscription($c: ID!) { trackChanges(courseId: $c) { kind } }", { c: createCourse.id });
  const { error } = await sub.next();
  assert.ok(Array.isArray(error), `graphql-ws reports the operation's errors: ${JSON.stringify(error)}`);
  assert.equal(error[0].extensions.code, "NOT_FOUND");
  await client.dispose();
});

await test("graphql-ws: a refused token closes the socket with 4403 and the reason", async () => {
  const forged = `${MEMBER_TOKEN.slice(0, MEMBER_TOKEN.lastIndexOf(".") + 1)}${"A".repeat(43)}`;
  for (const [token, reason] of [[forged, "BAD_SIGNATURE"], [null, "TOKEN_MISSING"]]) {
    const client = wsClient(token);
    const closed = closedWith(client);
    assert.deepEqual(await closed, [4403, reason]);
    await client.dispose();
  }
});

await test("Apollo Client: GraphQLWsLink subscriptions beside HttpLink, into the normalized cache", async () => {
  const cache = new InMemoryCache();
  const ws = new GraphQLWsLink(
    createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
  );
  const httpLink = new HttpLink({ uri: `${base}/graphql`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const link = ApolloLink.split(
    ({ query }) => {
      const d = getMainDefinition(query);
      return d.kind === "OperationDefinition" && d.operation === "subscription";
    },
    ws,
    httpLink,
  );
  const client = new ApolloClient({ link, cache });
  const { data } = await client.mutate({
    mutation: gql`mutation { createCourse(input: { title: "Apollo live", difficultyLevel: BEGINNER }) { id title } }`,
  });
  const id = data.createCourse.id;
  const seen = [];
  const sub = client
    .subscribe({ query: gql`subscription { courseChanges { kind courseId course { id title } } }` })
    .subscribe({ next: (r) => seen.push(r) });
  await sleep(300);
  await client.mutate({
    mutation: gql`mutation($id: ID!) { updateCourse(id: $id, input: { title: "Apollo live, renamed" }) { id } }`,
    variables: { id },
  });
  for (let i = 0; i < 50 && seen.length === 0; i += 1) await sleep(50);
  assert.equal(seen.length, 1, JSON.stringify(seen));
  assert.equal(seen[0].data.courseChanges.kind, "CHANGED");
  assert.equal(seen[0].data.courseChanges.courseId, id);
  // The event's course landed in the cache under its normalized id.
  assert.equal(cache.extract()[`Course:${id}`].title, "Apollo live, renamed");
  sub.unsubscribe();
  client.stop();
});

console.log(`subscriptions: ${passed} passed`);
process.exit(0);
