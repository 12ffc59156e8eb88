//! Production hardening: GraphQL-over-HTTP rules, abuse limits, time limits, overload
//! and database outages, observability, CORS and persisted queries.

use std::time::{Duration, Instant};

use coursegraph::config::{CorsConfig, Environment};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

async fn post_raw(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let r = app.client.post(app.url("/graphql")).header("content-type", content_type).body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn limit_error(body: &Value, kind: &str) -> (u64, u64) {
    let e = only_error(body);
    assert_eq!(e["extensions"]["code"], "QUERY_TOO_COMPLEX", "{body}");
    assert_eq!(e["extensions"]["kind"], kind, "{body}");
    assert!(e.get("locations").is_none(), "no bogus locations: {body}");
    (e["extensions"]["limit"].as_u64().unwrap(), e["extensions"]["actual"].as_u64().unwrap())
}

#[tokio::test]
async fn http_method_and_media_type_rules() {
    let app = TestApp::spawn().await;
    let t = app.token("u", Some("acme"), Some("admin"));
    // CSRF: no "simple" content type ever reaches the executor.
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""] {
        let (status, _) =
            post_raw(&app, ct, r#"{"query":"mutation { createOrganization(input: {name: \"x\"}) { id } }"}"#).await;
        assert_eq!(status, 415, "{ct:?}");
    }
    assert_eq!(app.count("organizations", "").await, 0);
    let (status, body) = post_raw(&app, "application/json", "{not json").await;
    assert_eq!(status, 400, "{body}");
    // GET runs queries, never mutations.
    let r = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { createOrganization(input: {name: \"x\"}) { id } }")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ me { activeRole } }")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["me"]["activeRole"], "ADMIN");
    // application/graphql-response+json: request errors are 400 and carry no data.
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ nope }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/graphql-response+json");
    let body: Value = r.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    let (_, body, _) = app.gql(Some(&t), "{ me { ", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED");
    let (_, body, _) =
        app.gql(Some(&t), "query($n: Int) { courses(first: $n) { totalCount } }", json!({ "n": "ten" })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn every_abuse_limit_answers_query_too_complex_with_limit_and_actual() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_depth = 4;
        c.limits.max_complexity = 50;
        c.limits.max_aliases = 3;
        c.limits.max_directives = 2;
        c.limits.max_tokens = 200;
        c.limits.max_batch = 2;
    })
    .await;
    let t = app.token("u", Some("acme"), Some("admin"));
    let (_, body, _) =
        app.gql(Some(&t), "{ organization { courses { nodes { tracks { course { id } } } } } }", json!({})).await;
    assert_eq!(limit_error(&body, "depth"), (4, 6));
    let (_, body, _) = app.gql(Some(&t), "{ courses(first: 100) { nodes { id } } }", json!({})).await;
    let (limit, actual) = limit_error(&body, "complexity");
    assert!(limit == 50 && actual > 100, "{body}");
    let (_, body, _) =
        app.gql(Some(&t), "{ a: __typename b: __typename c: __typename d: __typename }", json!({})).await;
    assert_eq!(limit_error(&body, "aliases"), (3, 4));
    let (_, body, _) =
        app.gql(Some(&t), "{ __typename @skip(if: false) @include(if: true) @skip(if: false) }", json!({})).await;
    assert_eq!(limit_error(&body, "directives"), (2, 3));
    let big = format!("{{ {} }}", "__typename ".repeat(300));
    let (_, body, _) = app.gql(Some(&t), &big, json!({})).await;
    let (limit, actual) = limit_error(&body, "tokens");
    assert!(limit == 200 && actual > 200);
    // Batches: within the limit they run, above it they are refused whole.
    let batch = |n: usize| json!((0..n).map(|_| json!({ "query": "{ __typename }" })).collect::<Vec<_>>());
    let r = app.client.post(app.url("/graphql")).json(&batch(2)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap().as_array().unwrap().len(), 2);
    let r = app.client.post(app.url("/graphql")).json(&batch(3)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(limit_error(&r.json::<Value>().await.unwrap(), "batch"), (2, 3));
    // GraphiQL's introspection query is deeper than 4 and still works.
    let (status, body, _) = app
        .gql(
            None,
            "{ __schema { types { name fields { type { ofType { ofType { ofType { name } } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn body_and_header_sizes_and_batching_off() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_body_bytes = 1024;
        c.limits.max_batch = 0;
    })
    .await;
    let (status, _) =
        post_raw(&app, "application/json", format!(r#"{{"query":"{{ __typename }}","x":"{}"}}"#, "a".repeat(2000)))
            .await;
    assert_eq!(status, 413);
    // A chunked body without a length is cut off at the limit too.
    let stream = futures_util::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100])));
    let (status, _) = post_raw(&app, "application/json", reqwest::Body::wrap_stream(stream)).await;
    assert_eq!(status, 413);
    let r = app.client.post(app.url("/graphql")).json(&json!([{ "query": "{ __typename }" }])).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(only_error(&r.json::<Value>().await.unwrap())["extensions"]["field"], "batch");
}

#[tokio::test]
async fn production_mode_hides_introspection_and_suggestions() {
    let app = TestApp::spawn_with(|c| {
        c.environment = Environment::Production;
        c.server.introspection = false;
    })
    .await;
    let t = app.token("u", Some("acme"), Some("admin"));
    let (_, body, _) =
        app.gql(Some(&t), "{ __schema { queryType { name } } __type(name: \"Course\") { name } }", json!({})).await;
    assert_eq!(body["data"], json!({ "__schema": null, "__type": null }), "introspection is off: {body}");
    let (_, body, _) = app.gql(Some(&t), "{ organizaton { id } }", json!({})).await;
    let msg = body["errors"][0]["message"].as_str().unwrap();
    assert!(!msg.contains("Did you mean"), "{msg}");
    // The same server in development suggests.
    let dev = TestApp::spawn().await;
    let (_, body, _) = dev.gql(Some(&dev.token("u", None, None)), "{ organizaton { id } }", json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Did you mean"), "{body}");
}

#[tokio::test]
async fn a_request_over_its_time_limit_is_cut_off_with_a_request_id() {
    let app = TestApp::spawn_with(|c| c.limits.request_timeout = Duration::from_millis(1)).await;
    let t = app.token("u", Some("acme"), Some("admin"));
    // Warm up the identity so the slow part is the GraphQL work.
    let big = format!(
        "{{ {} }}",
        (0..25).map(|i| format!("o{i}: organization {{ courses {{ totalCount }} }}")).collect::<Vec<_>>().join(" ")
    );
    let mut saw_timeout = false;
    for _ in 0..20 {
        let r =
            app.client.post(app.url("/graphql")).bearer_auth(&t).json(&json!({ "query": big })).send().await.unwrap();
        if r.status() == 503 {
            let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR");
            assert_eq!(body["errors"][0]["extensions"]["requestId"], json!(id));
            saw_timeout = true;
            break;
        }
    }
    assert!(saw_timeout, "a 1 ms limit never fired");
}

#[tokio::test]
async fn an_exhausted_pool_fails_fast_with_a_request_id_and_recovers() {
    let app = TestApp::spawn_with(|c| {
        c.database.max_connections = 1;
        c.database.acquire_timeout = Duration::from_millis(300);
        // Identity must come from the database for this request to need the pool.
        c.auth.context_cache_ttl = Duration::ZERO;
    })
    .await;
    let t = app.token("u", Some("acme"), Some("admin"));
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    // Hold the only connection.
    let held = sea_orm::TransactionTrait::begin(app.conn()).await.unwrap();
    let started = Instant::now();
    let r = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&t)
        .header("x-request-id", "probe-42")
        .json(&json!({ "query": "{ me { activeRole } }" }))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-request-id"], "probe-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(only_error(&body)["extensions"]["code"], "INTERNAL_SERVER_ERROR");
    assert_eq!(only_error(&body)["extensions"]["requestId"], "probe-42");
    assert_eq!(only_error(&body)["message"], "service temporarily unavailable", "no internals in the message");
    assert_eq!(only_error(&body)["extensions"]["retryable"], true);
    assert!(elapsed < Duration::from_secs(2), "failed fast: {elapsed:?}");
    held.rollback().await.unwrap();
    let d = app.data(&t, "{ me { activeRole } }", json!({})).await;
    assert_eq!(d["me"]["activeRole"], "ADMIN");
}

#[tokio::test]
async fn request_ids_metrics_and_audit_logs() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut p =
        ServerProcess::start(dir.path(), &[("COURSEGRAPH_DATABASE_URL", db.url()), ("COURSEGRAPH_JWT_SECRET", SECRET)]);
    let client = reqwest::Client::new();
    let admin = mint("ada", Some("acme"), Some("admin"));
    let member = mint("meg", Some("acme"), Some("member"));
    let send = |t: Option<String>, q: &'static str, id: &'static str| {
        let (client, url) = (client.clone(), p.url("/graphql"));
        async move {
            let mut r = client.post(url).header("x-request-id", id).json(&json!({ "query": q, "operationName": null }));
            if let Some(t) = t {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap()
        }
    };
    let r = send(Some(admin.clone()), "query AdminMe { me { activeRole } }", "req-admin-1").await;
    assert_eq!(r.headers()["x-request-id"], "req-admin-1");
    send(Some(member.clone()), "query Peek { organization { storageBucket } }", "req-member-1").await;
    send(None, "query Anon { me { activeRole } }", "req-anon-1").await;
    send(Some("garbage".into()), "{ __typename }", "req-bad-1").await;
    let r = client.get(p.url("/graphql")).query(&[("query", "{ __typename }")]).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "a fresh id when none is sent");

    let metrics = client.get(p.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "coursegraph_graphql_operations_total{operation=\"AdminMe\",outcome=\"ok\"} 1",
        "coursegraph_graphql_operations_total{operation=\"Peek\",outcome=\"error\"} 1",
        "coursegraph_http_requests_total{route=\"/graphql\",status=\"401\"} 2",
        "coursegraph_http_request_duration_seconds_bucket{route=\"/graphql\"",
        "coursegraph_authz_denials_total{action=\"READ_ORGANIZATION_SETTINGS\",reason=\"INSUFFICIENT_ROLE\"} 1",
        "coursegraph_auth_failures_total{reason=\"TOKEN_MALFORMED\"} 1",
        "coursegraph_provisioned_total{kind=\"user\"} 2",
        "coursegraph_provisioned_total{kind=\"organization\"} 1",
        "coursegraph_db_pool_connections",
        "coursegraph_db_statements_total",
        "coursegraph_jwks_fetches_total",
    ] {
        assert!(metrics.contains(needle), "missing `{needle}` in\n{metrics}");
    }

    let logs = p.logs_until("the last request", |logs| {
        logs.iter().any(|l| l["fields"]["message"] == "request finished" && l["span"]["request_id"] == "req-bad-1")
    });
    let finished: Vec<&Value> = logs.iter().filter(|l| l["fields"]["message"] == "request finished").collect();
    let admin_line =
        finished.iter().find(|l| l["span"]["request_id"] == "req-admin-1").expect("a line for the request");
    assert_eq!(admin_line["span"]["operation"], "AdminMe");
    assert!(
        admin_line["span"]["user_id"].is_string() && admin_line["span"]["organization_id"].is_string(),
        "{admin_line}"
    );
    assert!(admin_line["fields"]["duration_ms"].is_number());
    assert_eq!(admin_line["fields"]["status"], 200);
    let denied =
        logs.iter().find(|l| l["fields"]["event"] == "access.denied").expect("an audit event for the FORBIDDEN");
    assert_eq!(denied["fields"]["action"], "READ_ORGANIZATION_SETTINGS");
    assert_eq!(denied["fields"]["reason"], "INSUFFICIENT_ROLE");
    assert_eq!(denied["span"]["request_id"], "req-member-1");
    // Values, not Rust's debug spelling of them (`Some(…)`).
    assert!(uuid::Uuid::parse_str(denied["fields"]["organization_id"].as_str().unwrap_or("")).is_ok(), "{denied}");
    assert_eq!(denied["fields"]["viewer_role"], "MEMBER", "{denied}");
    assert!(!logs.iter().any(|l| l.to_string().contains("Some(")), "a log line shows an Option's debug form");
    assert!(logs.iter().any(|l| l["fields"]["event"] == "user.created"));
    assert!(logs.iter().any(|l| l["fields"]["event"] == "auth.refused" && l["span"]["request_id"] == "req-bad-1"));
    // Tokens never reach the logs.
    let all = logs.iter().map(|l| l.to_string()).collect::<String>();
    assert!(!all.contains(&admin) && !all.contains(&admin[admin.len() - 20..]), "a token was logged");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = TestApp::spawn_with(|c| {
        c.server.cors = Some(CorsConfig { origins: vec!["https://app.example.com".into()], credentials: true });
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,x-organization-id")
            .send()
    };
    let r = preflight("https://app.example.com").await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let allowed = r.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("x-organization-id") && allowed.contains("authorization"), "{allowed}");
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Without CORS configured, no CORS headers at all.
    let plain = TestApp::spawn().await;
    let r = plain
        .client
        .post(plain.url("/graphql"))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn automatic_persisted_queries() {
    let app = TestApp::spawn().await;
    let t = app.token("u", Some("acme"), Some("member"));
    let q = "query P { me { activeRole } }";
    let hash: String = Sha256::digest(q.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let send = |body: Value| app.client.post(app.url("/graphql")).bearer_auth(&t).json(&body).send();
    let body: Value = send(json!({ "extensions": ext })).await.unwrap().json().await.unwrap();
    assert_eq!(only_error(&body)["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(only_error(&body)["message"], "PersistedQueryNotFound");
    let body: Value = send(json!({ "query": q, "extensions": ext })).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["me"]["activeRole"], "MEMBER");
    let body: Value = send(json!({ "extensions": ext })).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["me"]["activeRole"], "MEMBER");
    // By GET, too; and a GET of a persisted mutation is still refused.
    let r = app
        .client
        .get(app.url("/graphql"))
        .bearer_auth(&t)
        .query(&[("extensions", ext.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["me"]["activeRole"], "MEMBER");
    let m = "mutation M { createOrganization(input: { name: \"apq\" }) { id } }";
    let mh: String = Sha256::digest(m.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let mext = json!({ "persistedQuery": { "version": 1, "sha256Hash": mh } });
    let _ = send(json!({ "query": "{ __typename }", "extensions": mext })).await.unwrap();
    let body: Value =
        send(json!({ "query": m, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } } }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(only_error(&body)["extensions"]["code"], "BAD_USER_INPUT", "hash mismatch");
    send(json!({ "query": m, "extensions": mext })).await.unwrap();
    let r = app
        .client
        .get(app.url("/graphql"))
        .bearer_auth(&t)
        .query(&[("extensions", mext.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_resolver_that_cannot_reach_the_database_answers_503_when_nothing_could_be_served() {
    // Identity comes from the context cache; the resolver still needs the pool.
    let app = TestApp::spawn_with(|c| {
        c.database.max_connections = 1;
        c.database.acquire_timeout = Duration::from_millis(300);
    })
    .await;
    let t = app.token("u", Some("acme"), Some("admin"));
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    if app.backend() == sea_orm::DbBackend::Postgres {
        // Wait until the cache serves (its change listener is connected).
        for _ in 0..100 {
            let before = app.statements();
            app.data(&t, "{ me { activeRole } }", json!({})).await;
            if app.statements() == before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let held = sea_orm::TransactionTrait::begin(app.conn()).await.unwrap();
    let r = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&t)
        .json(&json!({ "query": "{ organizations { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let e = only_error(&body);
    assert_eq!(e["extensions"]["code"], "INTERNAL_SERVER_ERROR");
    assert_eq!(e["extensions"]["retryable"], true);
    assert_eq!(e["extensions"]["requestId"], json!(id));
    held.rollback().await.unwrap();
    assert!(app.data(&t, "{ organizations { id } }", json!({})).await["organizations"].is_array());
}
