//! PostgreSQL row-level security, the second layer behind the application's own tenant
//! filters: with those filters bypassed (raw SQL through the request's own DB handle) the
//! database itself hides and refuses other tenants' rows. PostgreSQL pass only.

use std::sync::Arc;

use coursegraph::db::{self, RequestDb, Tenancy};
use entity::MembershipRole;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use crate::{fixtures, helpers::*};

const ROLE: &str = "coursegraph_app";
const TABLES: [&str; 9] = [
    "organizations",
    "memberships",
    "users",
    "courses",
    "tracks",
    "invitations",
    "audit_events",
    "roles",
    "membership_roles",
];

/// These tests are ignored unless asked for; asked for without PostgreSQL, they fail.
fn postgres() {
    let on = std::env::var("COURSEGRAPH_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty());
    assert!(on, "row-level security is PostgreSQL's: set COURSEGRAPH_TEST_POSTGRES_URL");
}

/// Two tenants with a member, a course and a track each, inserted as the owner.
struct World {
    a: Uuid,
    b: Uuid,
    alice: Uuid,
    bob: Uuid,
    course_b: Uuid,
}

async fn world(conn: &DatabaseConnection) -> World {
    let (a, b) = (fixtures::org(conn, "tenant-a").await, fixtures::org(conn, "tenant-b").await);
    let (alice, bob) = (fixtures::user(conn, "alice").await, fixtures::user(conn, "bob").await);
    fixtures::membership(conn, alice.id, a.id, MembershipRole::Admin, true).await;
    fixtures::membership(conn, bob.id, b.id, MembershipRole::Admin, true).await;
    let ca = fixtures::course(conn, a.id, Some(alice.id), "A course", true).await;
    let cb = fixtures::course(conn, b.id, Some(bob.id), "B course", true).await;
    fixtures::track(conn, &ca, "A track", 1).await;
    fixtures::track(conn, &cb, "B track", 1).await;
    let day = chrono::Duration::days(1);
    fixtures::invitation(conn, a.id, "new-a@example.com", MembershipRole::Member, day).await;
    fixtures::invitation(conn, b.id, "new-b@example.com", MembershipRole::Member, day).await;
    for (org, actor) in [(a.id, alice.id), (b.id, bob.id)] {
        let e = coursegraph::domain::audit::Event::new(entity::AuditAction::MemberAdded, Some(org), Some(actor));
        coursegraph::domain::audit::record(conn, e).await.unwrap();
    }
    World { a: a.id, b: b.id, alice: alice.id, bob: bob.id, course_b: cb.id }
}

/// A fresh server and two tenants, on PostgreSQL only.
async fn two_tenants() -> (TestApp, World) {
    postgres();
    let app = TestApp::spawn().await;
    let w = world(app.conn()).await;
    (app, w)
}

fn as_alice(conn: &DatabaseConnection, w: &World) -> RequestDb {
    RequestDb::with_rls(
        conn.clone(),
        Arc::from(ROLE),
        Tenancy { user_id: Some(w.alice), org_ids: vec![w.a], ..Default::default() },
    )
}

async fn scalar_i64(db: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.expect(sql).expect("a row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

async fn ids(db: &impl ConnectionTrait, sql: &str) -> Vec<Uuid> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect(sql)
        .iter()
        .map(|r| r.try_get_by_index::<Uuid>(0).expect("an id"))
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn every_tenant_table_has_rls_enabled_and_forced_and_the_app_role_cannot_bypass_it() {
    postgres();
    let app = TestApp::spawn().await;
    for t in TABLES {
        let sql = format!(
            "SELECT (relrowsecurity AND relforcerowsecurity)::int::int8 FROM pg_class WHERE oid = 'public.{t}'::regclass"
        );
        assert_eq!(scalar_i64(app.conn(), &sql).await, 1, "{t}: RLS must be enabled and forced");
        let sql = format!("SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = '{t}'");
        assert!(scalar_i64(app.conn(), &sql).await >= 1, "{t}: no policy");
    }
    let sql =
        format!("SELECT (rolsuper OR rolbypassrls OR rolcreaterole)::int::int8 FROM pg_roles WHERE rolname = '{ROLE}'");
    assert_eq!(scalar_i64(app.conn(), &sql).await, 0, "{ROLE} must be neither superuser nor BYPASSRLS");
    let sql = format!(
        "SELECT count(*) FROM pg_class c WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = '{ROLE}')"
    );
    assert_eq!(scalar_i64(app.conn(), &sql).await, 0, "{ROLE} must own nothing");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn with_the_app_filters_bypassed_other_tenants_rows_are_invisible_and_unwritable() {
    let (app, w) = two_tenants().await;
    let db = as_alice(app.conn(), &w);

    // Reads with no WHERE at all: only tenant A.
    assert_eq!(ids(&db, "SELECT id FROM organizations").await, vec![w.a]);
    assert_eq!(ids(&db, "SELECT DISTINCT organization_id FROM courses").await, vec![w.a]);
    assert_eq!(ids(&db, "SELECT DISTINCT organization_id FROM tracks").await, vec![w.a]);
    assert_eq!(ids(&db, "SELECT DISTINCT organization_id FROM memberships").await, vec![w.a]);
    assert_eq!(ids(&db, "SELECT id FROM users").await, vec![w.alice]);
    assert_eq!(ids(&db, "SELECT DISTINCT organization_id FROM invitations").await, vec![w.a]);
    assert_eq!(ids(&db, "SELECT DISTINCT organization_id FROM audit_events").await, vec![w.a]);
    assert_eq!(scalar_i64(&db, &format!("SELECT count(*) FROM courses WHERE id = '{}'", w.course_b)).await, 0);

    // Writes into tenant B: refused (inserts) or touching nothing (updates, deletes).
    let insert = format!(
        "INSERT INTO courses (id, organization_id, title, difficulty_level, price, is_published, created_at, updated_at) \
         VALUES ('{}', '{}', 'planted', 'beginner', 0, true, now(), now())",
        Uuid::now_v7(),
        w.b
    );
    let sp = db.begin_write().await.unwrap();
    let err = sp.execute_unprepared(&insert).await.expect_err("a cross-tenant insert must fail");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(sp);
    for sql in [
        format!("UPDATE courses SET title = 'taken' WHERE id = '{}'", w.course_b),
        format!("UPDATE tracks SET name = 'taken' WHERE organization_id = '{}'", w.b),
        format!("UPDATE organizations SET name = 'taken' WHERE id = '{}'", w.b),
        format!("UPDATE users SET name = 'taken' WHERE id = '{}'", w.bob),
        format!("DELETE FROM memberships WHERE organization_id = '{}'", w.b),
        format!("UPDATE invitations SET role = 'admin' WHERE organization_id = '{}'", w.b),
    ] {
        assert_eq!(db.execute_unprepared(&sql).await.expect(&sql).rows_affected(), 0, "{sql}");
    }
    // The audit log is append-only for the application role, even in its own tenant.
    for sql in ["UPDATE audit_events SET action = 'MEMBER_REMOVED'", "DELETE FROM audit_events"] {
        let sp = db.begin_write().await.unwrap();
        let err = sp.execute_unprepared(sql).await.expect_err(sql);
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
        drop(sp);
    }
    // Moving one's own row into the other tenant is refused too (WITH CHECK).
    let sql = format!("UPDATE courses SET organization_id = '{}' WHERE organization_id = '{}'", w.b, w.a);
    let sp = db.begin_write().await.unwrap();
    assert!(sp.execute_unprepared(&sql).await.is_err(), "moving a course into tenant B must fail");
    drop(sp);
    db.finish().await.unwrap();

    // Nothing of B changed.
    assert_eq!(app.count("courses", &format!("organization_id = '{}' AND title = 'B course'", w.b)).await, 1);
    assert_eq!(app.count("courses", "title IN ('planted', 'taken')").await, 0);
    assert_eq!(app.count("memberships", &format!("organization_id = '{}'", w.b)).await, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn a_pooled_connection_reused_after_a_request_carries_no_tenancy() {
    let (app, w) = two_tenants().await;
    // One connection, so the second use is certainly the same session.
    let (pool, _) =
        db::connect(app.db.url(), 1, std::time::Duration::from_secs(5), Default::default(), None).await.unwrap();
    let db = as_alice(&pool, &w);
    assert_eq!(scalar_i64(&db, "SELECT count(*) FROM courses").await, 1);
    db.finish().await.unwrap();

    let row = pool
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user::text, coalesce(current_setting('app.org_ids', true), ''), \
                    coalesce(current_setting('app.user_id', true), '')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(row.try_get_by_index::<String>(0).unwrap(), ROLE, "the role must end with the request");
    assert_eq!(row.try_get_by_index::<String>(1).unwrap(), "");
    assert_eq!(row.try_get_by_index::<String>(2).unwrap(), "");
    // The same session as the application role but without settings sees nothing at all.
    let txn = pool.begin().await.unwrap();
    txn.execute_unprepared(&format!("SET LOCAL ROLE {ROLE}")).await.unwrap();
    for t in TABLES {
        assert_eq!(scalar_i64(&txn, &format!("SELECT count(*) FROM {t}")).await, 0, "{t} without settings");
    }
    txn.rollback().await.unwrap();
}

/// What each policy does: a permissive one grants the viewer's own rows of its table (for
/// an INSERT-only policy, appending one), a restrictive one (`cmd` "RESTRICTIVE") holds a
/// draft back. Dropping the policy must make its check fail, so no policy is untested.
async fn sees_own_rows(conn: &DatabaseConnection, w: &World, table: &str, cmd: &str) -> bool {
    let db = as_alice(conn, w);
    if cmd == "INSERT" {
        let sp = db.begin_write().await.unwrap();
        let e = coursegraph::domain::audit::Event::new(entity::AuditAction::MemberAdded, Some(w.a), Some(w.alice));
        let ok = coursegraph::domain::audit::record(&sp, e).await.is_ok();
        drop(sp);
        db.finish().await.unwrap();
        return ok;
    }
    if cmd == "RESTRICTIVE" {
        // A restrictive policy takes away: it holds when a draft of A alice holds no grant
        // to read (and that draft's track) stays hidden.
        let sql = match table {
            "courses" => format!("SELECT count(*) FROM courses WHERE organization_id = '{}' AND NOT is_published", w.a),
            _ => format!("SELECT count(*) FROM tracks WHERE organization_id = '{}' AND name = 'A draft track'", w.a),
        };
        let n = scalar_i64(&db, &sql).await;
        db.finish().await.unwrap();
        return n == 0;
    }
    let sql = match table {
        "users" => format!("SELECT count(*) FROM users WHERE id = '{}'", w.alice),
        "organizations" => format!("SELECT count(*) FROM organizations WHERE id = '{}'", w.a),
        t => format!("SELECT count(*) FROM {t} WHERE organization_id = '{}'", w.a),
    };
    let n = scalar_i64(&db, &sql).await;
    db.finish().await.unwrap();
    n > 0
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn each_policy_is_load_bearing() {
    let (app, w) = two_tenants().await;
    // A draft of A alice holds no grant to read (with a track), and a custom role of A
    // assigned to her: rows for the drafts' and the roles' policies to decide on.
    let draft = fixtures::course(app.conn(), w.a, None, "A draft", false).await;
    fixtures::track(app.conn(), &draft, "A draft track", 1).await;
    app.conn()
        .execute_unprepared(&format!(
            "INSERT INTO roles (id, organization_id, key, name, grants, created_at, updated_at) \
             VALUES ('{}', '{}', 'reviewer', 'Reviewer', '[\"READ_COURSE\"]', now(), now()); \
             INSERT INTO membership_roles (membership_id, organization_id, role_key, created_at) \
             SELECT id, organization_id, 'reviewer', now() FROM memberships WHERE user_id = '{}'",
            Uuid::now_v7(),
            w.a,
            w.alice
        ))
        .await
        .unwrap();
    type Policy = (String, String, String, Option<String>, Option<String>, String);
    let policies: Vec<Policy> = app
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT policyname::text, tablename::text, cmd::text, qual, with_check, permissive::text FROM pg_policies WHERE schemaname = 'public'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index(3).unwrap(),
                r.try_get_by_index(4).unwrap(),
                r.try_get_by_index(5).unwrap(),
            )
        })
        .collect();
    let mut tables: Vec<&str> = policies.iter().map(|p| p.1.as_str()).collect();
    tables.sort();
    assert_eq!(
        tables,
        [
            "audit_events",
            "audit_events",
            "courses",
            "courses",
            "invitations",
            "membership_roles",
            "memberships",
            "organizations",
            "roles",
            "tracks",
            "tracks",
            "users"
        ],
        "one policy per tenant table (the audit log: one to read, one to append; courses and tracks: \
         one more that holds drafts back)"
    );
    for (name, table, cmd, using, check, permissive) in &policies {
        let restrictive = permissive == "RESTRICTIVE";
        let probe = if restrictive { "RESTRICTIVE" } else { cmd.as_str() };
        assert!(sees_own_rows(app.conn(), &w, table, probe).await, "{table}: {name} must hold");
        app.conn().execute_unprepared(&format!("DROP POLICY {name} ON {table}")).await.unwrap();
        assert!(!sees_own_rows(app.conn(), &w, table, probe).await, "{table}: no difference without {name}");
        let using = using.as_ref().map(|u| format!(" USING ({u})")).unwrap_or_default();
        let check = check.as_ref().map(|c| format!(" WITH CHECK ({c})")).unwrap_or_default();
        let kind = if restrictive { " AS RESTRICTIVE" } else { "" };
        app.conn()
            .execute_unprepared(&format!("CREATE POLICY {name} ON {table}{kind} FOR {cmd}{using}{check}"))
            .await
            .unwrap();
        assert!(sees_own_rows(app.conn(), &w, table, probe).await, "{table}: {name} restored");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn the_api_works_under_rls_and_still_isolates_tenants() {
    postgres();
    let app = TestApp::spawn_with(|c| c.database.role = Some(ROLE.into())).await;
    // Provisioning (the narrow path) creates the viewer, organization and membership.
    let a = app.token("ada", Some("acme"), Some("admin"));
    let b = app.token("bea", Some("globex"), Some("admin"));
    let me = app.data(&a, "{ me { activeOrganization { id } activeRole } }", json!({})).await;
    assert_eq!(me["me"]["activeRole"], "ADMIN");
    let org_a = me["me"]["activeOrganization"]["id"].as_str().unwrap().to_owned();
    let course = app
        .data(
            &a,
            "mutation { createCourse(input: { title: \"Under RLS\", price: \"10.00\", difficultyLevel: BEGINNER, isPublished: true }) { id } }",
            json!({}),
        )
        .await;
    let course_id = course["createCourse"]["id"].as_str().unwrap().to_owned();
    for name in ["One", "Two"] {
        app.data(
            &a,
            "mutation($c: ID!, $n: String!) { createTrack(input: { courseId: $c, name: $n }) { id } }",
            json!({ "c": course_id, "n": name }),
        )
        .await;
    }
    let got = app
        .data(
            &a,
            "query($o: ID!) { organization(id: $o) { courses { nodes { title tracks { name } } } } }",
            json!({ "o": org_a }),
        )
        .await;
    assert_eq!(got["organization"]["courses"]["nodes"][0]["tracks"].as_array().unwrap().len(), 2, "{got}");

    // A new organization: its creator becomes ADMIN within the same request's transaction.
    let created = app
        .data(
            &a,
            "mutation { createOrganization(input: { name: \"Second\" }) { id name courses { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(created["createOrganization"]["name"], "Second", "{created}");

    // The other tenant sees none of it.
    app.data(&b, "{ me { user { id } } }", json!({})).await;
    let (_, body, _) =
        app.gql(Some(&b), "query($id: ID!) { course(id: $id) { title } }", json!({ "id": course_id })).await;
    assert_eq!(body["data"]["course"], serde_json::Value::Null, "{body}");
    assert_eq!(only_error(&body)["extensions"]["code"], "NOT_FOUND");

    // Adding a member found by email, who is not (yet) in the viewer's tenancy.
    let added = app
        .data(
            &a,
            "mutation($o: ID!) { addMember(input: { organizationId: $o, email: \"bea@example.com\", role: VIEWER }) { role } }",
            json!({ "o": org_a }),
        )
        .await;
    assert_eq!(added["addMember"]["role"], "VIEWER", "{added}");
    // ...and from their next request on, the database lets them see that tenant too.
    let got = app.data(&b, "query($id: ID!) { course(id: $id) { title } }", json!({ "id": course_id })).await;
    assert_eq!(got["course"]["title"], "Under RLS", "{got}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn an_invitee_sees_their_invitation_and_may_accept_it_only_with_a_verified_email() {
    let (app, w) = two_tenants().await;
    let stranger = fixtures::user(app.conn(), "stranger").await;
    let as_invitee = |verified: bool| {
        RequestDb::with_rls(
            app.conn().clone(),
            Arc::from(ROLE),
            Tenancy {
                user_id: Some(stranger.id),
                email: Some("new-b@example.com".into()),
                email_verified: verified,
                ..Default::default()
            },
        )
    };
    let accept = "UPDATE invitations SET status = 'accepted' WHERE email_normalized = 'new-b@example.com'";
    let db = as_invitee(false);
    assert_eq!(ids(&db, "SELECT DISTINCT organization_id FROM invitations").await, vec![w.b]);
    // The inviting organization's name is visible to them, nothing else of it.
    assert_eq!(ids(&db, "SELECT id FROM organizations").await, vec![w.b]);
    assert_eq!(scalar_i64(&db, "SELECT count(*) FROM courses").await, 0);
    let sp = db.begin_write().await.unwrap();
    assert!(sp.execute_unprepared(accept).await.is_err(), "an unverified address must not accept");
    drop(sp);
    db.finish().await.unwrap();
    let db = as_invitee(true);
    assert_eq!(db.execute_unprepared(accept).await.unwrap().rows_affected(), 1);
    db.finish().await.unwrap();
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set COURSEGRAPH_TEST_POSTGRES_URL and run with --include-ignored (CI does)"]
async fn drafts_are_visible_by_grants_even_with_the_app_filters_bypassed() {
    let (app, w) = two_tenants().await;
    let conn = app.conn();
    let carol = fixtures::user(conn, "carol").await;
    fixtures::membership(conn, carol.id, w.a, MembershipRole::Instructor, true).await;
    let mine = fixtures::course(conn, w.a, Some(w.alice), "Alice's draft", false).await;
    let theirs = fixtures::course(conn, w.a, Some(carol.id), "Carol's draft", false).await;
    fixtures::track(conn, &mine, "Mine", 1).await;
    fixtures::track(conn, &theirs, "Theirs", 1).await;
    let as_alice_with = |draft_org_ids: Vec<Uuid>, own_draft_org_ids: Vec<Uuid>| {
        RequestDb::with_rls(
            conn.clone(),
            Arc::from(ROLE),
            Tenancy {
                user_id: Some(w.alice),
                org_ids: vec![w.a],
                draft_org_ids,
                own_draft_org_ids,
                ..Default::default()
            },
        )
    };
    let drafts = "SELECT id FROM courses WHERE NOT is_published ORDER BY title";
    let draft_tracks = "SELECT t.id FROM tracks t WHERE t.course_id IN (SELECT id FROM courses WHERE NOT is_published) OR t.name IN ('Mine', 'Theirs') ORDER BY t.name";
    // READ_DRAFT_COURSE:OWN (a teaching assistant): her own draft and its track only.
    let own = as_alice_with(vec![], vec![w.a]);
    assert_eq!(ids(&own, drafts).await, vec![mine.id]);
    assert_eq!(ids(&own, draft_tracks).await.len(), 1);
    assert_eq!(scalar_i64(&own, &format!("SELECT count(*) FROM tracks WHERE course_id = '{}'", theirs.id)).await, 0);
    own.finish().await.unwrap();
    // No draft grant (a MEMBER): none, not even her own.
    let none = as_alice_with(vec![], vec![]);
    assert!(ids(&none, drafts).await.is_empty());
    assert!(ids(&none, draft_tracks).await.is_empty());
    none.finish().await.unwrap();
    // READ_DRAFT_COURSE at organization scope: both.
    let all = as_alice_with(vec![w.a], vec![]);
    assert_eq!(ids(&all, drafts).await, vec![mine.id, theirs.id]);
    assert_eq!(ids(&all, draft_tracks).await.len(), 2);
    all.finish().await.unwrap();
}
