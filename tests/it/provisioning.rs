//! Provisioning: get-or-create is idempotent, race-safe and atomic.

use serde_json::json;

use crate::helpers::*;

const ME: &str = "{ me { user { id email } activeOrganization { id name slug } activeRole } }";

#[tokio::test]
async fn first_request_provisions_user_org_and_membership_once() {
    let app = TestApp::spawn().await;
    let t = app.token("alice", Some("acme"), Some("admin"));
    let d = app.data(&t, ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "ADMIN");
    assert_eq!(d["me"]["activeOrganization"]["slug"], "acme");
    assert_eq!(d["me"]["user"]["email"], "alice@example.com");
    let first_id = d["me"]["user"]["id"].clone();
    for _ in 0..3 {
        let d = app.data(&t, ME, json!({})).await;
        assert_eq!(d["me"]["user"]["id"], first_id);
    }
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("organizations", "").await, 1);
    assert_eq!(app.count("memberships", "").await, 1);
    let row = app.count("organizations", "storage_bucket = 'org-acme' AND external_id = 'acme'").await;
    assert_eq!(row, 1);
}

#[tokio::test]
async fn concurrent_first_requests_create_exactly_one_of_each() {
    let app = TestApp::spawn().await;
    let t = app.token("racer", Some("race-org"), Some("member"));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, t) = (app.client.clone(), app.url("/graphql"), t.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(t).json(&json!({ "query": ME })).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        ids.insert(body["data"]["me"]["user"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every request saw the same user");
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("organizations", "").await, 1);
    assert_eq!(app.count("memberships", "").await, 1);
    assert_eq!(app.count("audit_events", "action = 'MEMBERSHIP_PROVISIONED'").await, 1);
}

/// A new organization whose name's slug is taken gets a suffixed slug, and its first
/// member, in the same first request.
#[tokio::test]
async fn a_new_organization_whose_slug_is_taken_gets_another_with_its_member() {
    let app = TestApp::spawn().await;
    app.data(&app.token("founder", Some("acme"), Some("admin")), ME, json!({})).await;
    let mut args = token_args("second", Some("acme-eu"), Some("admin"));
    args.org_name = Some("Acme".into());
    let d = app.data(&app.token_with(args), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "ADMIN", "{d}");
    assert_eq!(d["me"]["activeOrganization"]["name"], "Acme");
    let slug = d["me"]["activeOrganization"]["slug"].as_str().unwrap();
    assert!(slug.starts_with("acme-") && slug.len() > "acme-".len(), "{slug}");
    assert_eq!(app.count("organizations", &format!("external_id = 'acme-eu' AND slug = '{slug}'")).await, 1);
    assert_eq!(app.count("memberships", "").await, 2);
    assert_eq!(app.count("audit_events", "action = 'MEMBERSHIP_PROVISIONED'").await, 2);
}

#[tokio::test]
async fn many_new_users_joining_one_new_org_concurrently() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let t = app.token(&format!("joiner-{i}"), Some("crowd"), Some("student"));
        let (client, url) = (app.client.clone(), app.url("/graphql"));
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(t).json(&json!({ "query": ME })).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["me"]["activeRole"], "MEMBER", "{body}");
    }
    assert_eq!(app.count("users", "").await, 40);
    assert_eq!(app.count("organizations", "").await, 1);
    assert_eq!(app.count("memberships", "").await, 40);
}

#[tokio::test]
async fn a_token_without_an_organization_provisions_only_the_user() {
    let app = TestApp::spawn().await;
    let t = app.token("loner", None, None);
    let d = app.data(&t, ME, json!({})).await;
    assert_eq!(d["me"]["activeOrganization"], serde_json::Value::Null);
    assert_eq!(d["me"]["activeRole"], serde_json::Value::Null);
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("organizations", "").await, 0);
}

#[tokio::test]
async fn a_provisioned_user_costs_one_statement_and_no_write() {
    let app = TestApp::spawn_with(|c| c.auth.context_cache_ttl = std::time::Duration::ZERO).await;
    let t = app.token("warm", Some("acme"), Some("member"));
    app.data(&t, ME, json!({})).await;
    let updated = app.count("users", "updated_at = created_at").await;
    let before = app.statements();
    let d = app.data(&t, "{ me { user { id } activeRole isPlatformAdmin } }", json!({})).await;
    assert_eq!(d["me"]["activeRole"], "MEMBER");
    assert_eq!(app.statements() - before, 1, "identity is one SELECT, and nothing else runs");
    assert_eq!(app.count("users", "updated_at = created_at").await, updated, "no write");
}

#[tokio::test]
async fn two_servers_on_one_database_provision_exactly_once() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let server = if i % 2 == 0 { &a } else { &b };
        let t = server.token(&format!("u{}", i % 6), Some("shared"), Some("member"));
        let (client, url) = (server.client.clone(), server.url("/graphql"));
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(t).json(&json!({ "query": ME })).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(a.count("users", "").await, 6);
    assert_eq!(a.count("organizations", "").await, 1);
    assert_eq!(a.count("memberships", "").await, 6);
}

/// Two real server processes on one database, each receiving half of the first requests
/// (64 for one new user, and 40 new users joining one new organization).
#[tokio::test]
async fn two_server_processes_provision_exactly_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let envs = [("COURSEGRAPH_DATABASE_URL", db.url()), ("COURSEGRAPH_JWT_SECRET", SECRET)];
    // Both start at once: their migrations must not trip over each other.
    let (mut a, mut b) = std::thread::scope(|s| {
        let a = s.spawn(|| ServerProcess::start(dir.path(), &envs));
        let b = s.spawn(|| ServerProcess::start(dir.path(), &envs));
        (a.join().unwrap(), b.join().unwrap())
    });
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..104 {
        let token = if i < 64 {
            mint("one-user", Some("proc-org"), Some("member"))
        } else {
            mint(&format!("crowd-{i}"), Some("proc-org"), Some("member"))
        };
        let url = if i % 2 == 0 { a.url("/graphql") } else { b.url("/graphql") };
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(token).json(&json!({ "query": ME })).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let conn = sea_orm::Database::connect(db.url()).await.unwrap();
    let count = |t: &'static str| {
        let conn = conn.clone();
        async move {
            use sea_orm::ConnectionTrait as _;
            let row = conn
                .query_one_raw(sea_orm::Statement::from_string(
                    conn.get_database_backend(),
                    format!("SELECT COUNT(*) AS n FROM {t}"),
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    assert_eq!(count("users").await, 41);
    assert_eq!(count("organizations").await, 1);
    assert_eq!(count("memberships").await, 41);
    // The audit log agrees: each row was created exactly once, by one of the two processes.
    // Every request's line is logged (each process answered 52), then the events are counted.
    let finished =
        |logs: &[serde_json::Value]| logs.iter().filter(|l| l["fields"]["message"] == "request finished").count();
    let la = a.logs_until("52 requests", |l| finished(l) >= 52);
    let lb = b.logs_until("52 requests", |l| finished(l) >= 52);
    let created = |ev: &str| la.iter().chain(&lb).filter(|l| l["fields"]["event"] == ev).count();
    assert_eq!(created("user.created"), 41);
    assert_eq!(created("organization.created"), 1);
    assert_eq!(created("membership.created"), 41);
    assert_eq!(count("audit_events").await, 41, "one MEMBERSHIP_PROVISIONED event each");
    conn.close().await.ok();
}

#[tokio::test]
async fn with_the_context_cache_a_warm_request_costs_no_statement_for_identity() {
    let app = TestApp::spawn().await;
    let t = app.token("warm", Some("acme"), Some("member"));
    app.data(&t, ME, json!({})).await;
    // On PostgreSQL the cache serves once this replica's change listener is connected.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = app.statements();
        let d = app.data(&t, "{ me { user { id } activeRole } }", json!({})).await;
        assert_eq!(d["me"]["activeRole"], "MEMBER");
        let n = app.statements() - before;
        if n == 0 {
            break;
        }
        assert!(n == 1 && std::time::Instant::now() < deadline, "{n} statements and the cache never served");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Everything a viewer is made of, as the API shows it.
const WHOLE_ME: &str = "{ me { user { id name email avatarUrl lastLoginAt createdAt } activeRole \
    activeOrganization { id slug name createdAt viewerRole } \
    memberships { id role isActive joinedAt organization { id slug name createdAt } } } }";

/// What the first request answers — built from what provisioning wrote, not read again —
/// is what a server that never saw the user reads back from the database: for a new user
/// of an organization that exists, of a new organization, and of none.
#[tokio::test]
async fn a_first_sight_answers_what_the_database_holds() {
    let a = TestApp::spawn().await;
    let fresh = TestApp::spawn_on(a.db.clone(), |c| c.auth.context_cache_ttl = std::time::Duration::ZERO).await;
    a.data(&a.token("founder", Some("acme"), Some("admin")), ME, json!({})).await;
    let cases =
        [("joiner", Some("acme"), Some("instructor")), ("pioneer", Some("new-co"), None), ("loner", None, None)];
    for (sub, org, role) in cases {
        let t = a.token(sub, org, role);
        let first = a.data(&t, WHOLE_ME, json!({})).await;
        assert!(first["me"]["user"]["createdAt"].is_string(), "{first}");
        let stored = fresh.data(&t, WHOLE_ME, json!({})).await;
        assert_eq!(first, stored, "{sub}: the first answer differs from the stored rows");
    }
    assert_eq!(a.count("memberships", "").await, 3);
}

/// The first sight of a new user of an organization that exists (or of a new one) is, on
/// PostgreSQL, one statement that looks the user up, checks for invitations and writes the
/// organization if new, the user, the membership and its audit event; SQLite runs the
/// identity SELECT and the transaction (the user, the pending invitations of the verified
/// email, the organization, the membership, its event).
/// Neither reads the user again; both then run the query's own read of the organization
/// (after the tenancy settings when PostgreSQL row-level security is enforced).
#[tokio::test]
async fn a_first_sight_writes_in_one_statement_on_postgres() {
    let app = TestApp::spawn().await;
    app.data(&app.token("founder", Some("acme"), Some("admin")), ME, json!({})).await;
    let before = app.statements();
    let d = app.data(&app.token("newcomer", Some("acme"), Some("member")), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "MEMBER");
    let rls = u64::from(app.app.state.db_role.is_some());
    let expected = if app.backend() == sea_orm::DbBackend::Postgres { 1 + rls + 1 } else { 1 + 5 + 1 };
    assert_eq!(app.statements() - before, expected);
    let user = "user_id IN (SELECT id FROM users WHERE external_id = 'newcomer')";
    assert_eq!(app.count("memberships", &format!("{user} AND role = 'member' AND is_active")).await, 1);
    let event = format!(
        "action = 'MEMBERSHIP_PROVISIONED' AND target_type = 'user' AND {}",
        user.replace("user_id", "actor_id")
    );
    assert_eq!(app.count("audit_events", &event).await, 1);

    // A new organization too: one statement on PostgreSQL; SQLite also looks for the
    // organization and inserts it.
    let before = app.statements();
    let d = app.data(&app.token("pioneer", Some("new-co"), Some("admin")), ME, json!({})).await;
    assert_eq!(d["me"]["activeOrganization"]["slug"], "new-co");
    let expected = if app.backend() == sea_orm::DbBackend::Postgres { 1 + rls + 1 } else { 1 + 6 + 1 };
    assert_eq!(app.statements() - before, expected);
    assert_eq!(app.count("memberships", "role = 'admin'").await, 2);
}

/// Racing first requests of one new user into an organization that exists, and of many
/// new users into it at once: one user and one membership each, and one audit event per
/// membership — whichever of them took the single-statement path.
#[tokio::test]
async fn concurrent_first_sights_into_an_existing_organization_write_each_row_once() {
    let app = TestApp::spawn().await;
    app.data(&app.token("founder", Some("acme"), Some("admin")), ME, json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let sub = if i % 2 == 0 { "racer".to_owned() } else { format!("crowd-{i}") };
        let t = app.token(&sub, Some("acme"), Some("member"));
        let (client, url) = (app.client.clone(), app.url("/graphql"));
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(t).json(&json!({ "query": ME })).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["me"]["activeRole"], "MEMBER", "{body}");
    }
    assert_eq!(app.count("users", "").await, 1 + 1 + 32);
    assert_eq!(app.count("organizations", "").await, 1);
    assert_eq!(app.count("memberships", "").await, 1 + 1 + 32);
    assert_eq!(app.count("audit_events", "action = 'MEMBERSHIP_PROVISIONED'").await, 1 + 1 + 32);
}

/// An invitation waiting for a new user whose token names the same organization wins
/// over the token's role: the single-statement path must leave this user to the
/// transaction that accepts it.
#[tokio::test]
async fn an_invitation_to_the_token_s_organization_is_accepted_at_first_sight() {
    let app = TestApp::spawn().await;
    let admin = app.token("founder", Some("acme"), Some("admin"));
    app.data(&admin, ME, json!({})).await;
    let invite = "mutation { inviteMember(input: { email: \"nina@example.com\", role: INSTRUCTOR }) { id } }";
    app.data(&admin, invite, json!({})).await;
    let nina = app.token("nina", Some("acme"), Some("member"));
    let d = app.data(&nina, ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "INSTRUCTOR", "{d}");
    assert_eq!(app.count("invitations", "status = 'accepted'").await, 1);
    assert_eq!(app.count("memberships", "").await, 2);
    assert_eq!(app.count("audit_events", "action = 'INVITATION_ACCEPTED'").await, 1);
}

/// A user the server has not cached is read by the same statement that would create them
/// (on PostgreSQL): for a known user it writes nothing, and what the user lacks — an
/// invitation waiting for their email, an organization their token names that is new —
/// is still provisioned, once.
#[tokio::test]
async fn a_known_user_the_server_has_not_cached_gets_what_they_lack_and_nothing_else() {
    let a = TestApp::spawn().await;
    let fresh = TestApp::spawn_on(a.db.clone(), |c| c.auth.context_cache_ttl = std::time::Duration::ZERO).await;
    let alice = a.token("alice", Some("acme"), Some("admin"));
    a.data(&alice, ME, json!({})).await;
    let rows = || async {
        (a.count("organizations", "").await, a.count("memberships", "").await, a.count("audit_events", "").await)
    };
    let before = rows().await;
    for _ in 0..2 {
        let d = fresh.data(&alice, ME, json!({})).await;
        assert_eq!(d["me"]["activeRole"], "ADMIN", "{d}");
    }
    assert_eq!(rows().await, before, "a known user's read wrote rows");

    // An invitation to another organization waits for alice's email: accepted on her next request.
    let bob = a.token("bob", Some("beta"), Some("admin"));
    a.data(&bob, ME, json!({})).await;
    let invite = "mutation { inviteMember(input: { email: \"alice@example.com\", role: INSTRUCTOR }) { id } }";
    a.data(&bob, invite, json!({})).await;
    fresh.data(&alice, ME, json!({})).await;
    assert_eq!(a.count("invitations", "status = 'accepted'").await, 1);
    let alice_in = |org: &str| {
        format!(
            "user_id IN (SELECT id FROM users WHERE external_id = 'alice') AND organization_id IN \
             (SELECT id FROM organizations WHERE external_id = '{org}')"
        )
    };
    assert_eq!(a.count("memberships", &format!("{} AND role = 'instructor'", alice_in("beta"))).await, 1);

    // A token naming an organization nobody has seen: created once, with her membership.
    let gamma = a.token("alice", Some("gamma"), Some("member"));
    for _ in 0..2 {
        let d = fresh.data(&gamma, ME, json!({})).await;
        assert_eq!(d["me"]["activeOrganization"]["slug"], "gamma", "{d}");
    }
    assert_eq!(a.count("organizations", "external_id = 'gamma'").await, 1);
    assert_eq!(a.count("memberships", &alice_in("gamma")).await, 1);
    assert_eq!(a.count("users", "").await, 2);
}
