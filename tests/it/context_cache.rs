//! The context cache stays correct: changes through any server invalidate at once —
//! across replicas on PostgreSQL (LISTEN/NOTIFY) — and the TTL bounds everything else.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const ME: &str = "{ me { activeRole activeOrganization { slug } } }";

/// POSTs one operation to a server process and returns the whole response body.
async fn post(client: &reqwest::Client, url: &str, token: &str, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables });
    client.post(url).bearer_auth(token).json(&body).send().await.unwrap().json().await.unwrap()
}

async fn me(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let body = post(client, url, token, ME, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["me"].clone()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn role_changes_and_removals_reach_another_replica_at_once() {
    assert!(
        std::env::var("COURSEGRAPH_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()),
        "PostgreSQL's: set COURSEGRAPH_TEST_POSTGRES_URL"
    );
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // A TTL of ten minutes: only an invalidation can explain a fresh answer below.
    let envs = [
        ("COURSEGRAPH_DATABASE_URL", db.url()),
        ("COURSEGRAPH_JWT_SECRET", SECRET),
        ("COURSEGRAPH_CONTEXT_CACHE_TTL", "10m"),
    ];
    let a = ServerProcess::start(dir.path(), &envs);
    let b = ServerProcess::start(dir.path(), &envs);
    let client = reqwest::Client::new();
    let admin = mint("boss", Some("acme"), Some("admin"));
    let ivy = mint("ivy", Some("acme"), Some("instructor"));
    let (ua, ub) = (a.url("/graphql"), b.url("/graphql"));
    me(&client, &ua, &admin).await;
    assert_eq!(me(&client, &ub, &ivy).await["activeRole"], "INSTRUCTOR");
    // B serves Ivy from its cache: a request that costs B no statement at all.
    let statements = |p: &ServerProcess| {
        let (client, url) = (client.clone(), p.url("/metrics"));
        async move {
            let text = client.get(url).send().await.unwrap().text().await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("coursegraph_db_statements_total "))
                .map(|n| n.trim().parse::<f64>().unwrap())
                .unwrap_or(0.0)
        }
    };
    until(Duration::from_secs(10), "a warm request", || async {
        let before = statements(&b).await;
        let r =
            client.post(&ub).bearer_auth(&ivy).json(&json!({ "query": "{ me { activeRole } }" })).send().await.unwrap();
        assert_eq!(r.status(), 200);
        statements(&b).await == before
    })
    .await;

    let members =
        post(&client, &ua, &admin, "{ organization { members { nodes { id user { name } } } } }", json!({})).await;
    let ivy_m = members["data"]["organization"]["members"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["user"]["name"] == "User ivy")
        .unwrap()["id"]
        .clone();

    // Renamed through A: B answers the new name (the organization's row comes with the
    // cached viewer) within moments.
    let org_name = || async {
        post(&client, &ub, &ivy, "{ organization { name } }", json!({})).await["data"]["organization"]["name"].clone()
    };
    assert!(org_name().await.is_string());
    let org =
        post(&client, &ua, &admin, "{ organization { id } }", json!({})).await["data"]["organization"]["id"].clone();
    let rename = "mutation($o: ID!) { updateOrganization(id: $o, input: { name: \"Acme Renamed\" }) { name } }";
    let r = post(&client, &ua, &admin, rename, json!({ "o": org })).await;
    assert_eq!(r["data"]["updateOrganization"]["name"], "Acme Renamed", "{r}");
    until(Duration::from_secs(3), "the rename", || async { org_name().await == "Acme Renamed" }).await;

    // Demoted through A …
    let demote = "mutation($m: ID!) { updateMemberRole(membershipId: $m, role: VIEWER) { role } }";
    let r = post(&client, &ua, &admin, demote, json!({ "m": ivy_m })).await;
    assert_eq!(r["data"]["updateMemberRole"]["role"], "VIEWER", "{r}");
    // … and B knows within moments, although its cached entry had ten minutes left.
    let within = Duration::from_secs(3);
    until(within, "the change", || async { me(&client, &ub, &ivy).await["activeRole"] == "VIEWER" }).await;
    // Removed through A: B stops serving the organization, and says why.
    let remove = "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }";
    let r = post(&client, &ua, &admin, remove, json!({ "m": ivy_m })).await;
    assert_eq!(r["data"]["removeMember"]["isActive"], false, "{r}");
    until(within, "the change", || async {
        let body = post(&client, &ub, &ivy, ME, json!({})).await;
        body["data"]["me"]["activeOrganization"].is_null()
            && body["errors"][0]["extensions"]["reason"] == "MEMBERSHIP_INACTIVE"
    })
    .await;
}

#[tokio::test]
async fn without_notifications_the_ttl_bounds_staleness() {
    // SQLite replicas (or changes made behind coursegraph's back) rely on the TTL alone.
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("COURSEGRAPH_DATABASE_URL", db.url()),
        ("COURSEGRAPH_JWT_SECRET", SECRET),
        ("COURSEGRAPH_CONTEXT_CACHE_TTL", "1s"),
    ];
    let a = ServerProcess::start(dir.path(), &envs);
    let client = reqwest::Client::new();
    let t = mint("edna", Some("acme"), Some("member"));
    assert_eq!(me(&client, &a.url("/graphql"), &t).await["activeRole"], "MEMBER");
    // An operator edits the role directly in the database.
    let conn = sea_orm::Database::connect(db.url()).await.unwrap();
    use sea_orm::{EntityTrait, sea_query::Expr};
    entity::membership::Entity::update_many()
        .col_expr(entity::membership::Column::Role, Expr::value("viewer"))
        .exec(&conn)
        .await
        .unwrap();
    let took = until(Duration::from_secs(5), "the TTL", || async {
        me(&client, &a.url("/graphql"), &t).await["activeRole"] == "VIEWER"
    })
    .await;
    assert!(took <= Duration::from_millis(1500), "stale for {took:?}, beyond the 1 s TTL");
    conn.close().await.ok();
}
