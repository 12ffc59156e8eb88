//! The walking skeleton: schema file, tables, keys, cascades, indexes, health, GraphiQL.

use entity::{MembershipRole, course, membership, track, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ModelTrait, QueryFilter, Statement};
use serde_json::{Value, json};

use crate::{fixtures, helpers::*};

#[test]
fn schema_graphql_is_current() {
    let expected = coursegraph::graphql::schema::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "schema.graphql is stale: regenerate it with `cargo run -q -- schema > schema.graphql` and commit it"
    );
}

/// Column names of `table`, from the catalog of either backend.
async fn columns(app: &TestApp, table: &str) -> Vec<String> {
    let sql = match app.backend() {
        DbBackend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name"),
        _ => format!(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY column_name"
        ),
    };
    app.conn()
        .query_all_raw(Statement::from_string(app.backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect()
}

#[tokio::test]
async fn migrations_create_the_documented_tables() {
    let app = TestApp::spawn().await;
    let expect = |cols: &[&str]| {
        let mut v: Vec<String> = cols.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        columns(&app, "users").await,
        expect(&[
            "id",
            "issuer",
            "external_id",
            "email",
            "name",
            "avatar_url",
            "email_verified",
            "last_login_at",
            "profile_data",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(
        columns(&app, "organizations").await,
        expect(&["id", "external_id", "name", "slug", "storage_bucket", "created_at", "updated_at"])
    );
    assert_eq!(
        columns(&app, "memberships").await,
        expect(&["id", "user_id", "organization_id", "role", "is_active", "joined_at", "updated_at"])
    );
    assert_eq!(
        columns(&app, "courses").await,
        expect(&[
            "id",
            "organization_id",
            "instructor_id",
            "title",
            "description",
            "category",
            "difficulty_level",
            "estimated_duration",
            "duration_unit",
            "price",
            "is_published",
            "metadata",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(
        columns(&app, "tracks").await,
        expect(&["id", "organization_id", "course_id", "name", "description", "position", "created_at", "updated_at"])
    );
    // Running the migrations again is a no-op.
    coursegraph::db::migrate(app.conn()).await.expect("second migrate");
}

#[tokio::test]
async fn every_foreign_key_leads_an_index() {
    let app = TestApp::spawn().await;
    let fks = [
        ("memberships", "user_id"),
        ("memberships", "organization_id"),
        ("courses", "organization_id"),
        ("courses", "instructor_id"),
        ("tracks", "organization_id"),
        ("tracks", "course_id"),
    ];
    for (table, col) in fks {
        let sql = match app.backend() {
            DbBackend::Sqlite => format!(
                "SELECT COUNT(*) AS n FROM pragma_index_list('{table}') il \
                 JOIN pragma_index_info(il.name) ii ON ii.seqno = 0 WHERE ii.name = '{col}'"
            ),
            _ => format!(
                "SELECT COUNT(*) AS n FROM pg_index i JOIN pg_attribute a \
                   ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = '{table}'::regclass AND a.attname = '{col}'"
            ),
        };
        let row = app.conn().query_one_raw(Statement::from_string(app.backend(), sql)).await.unwrap().unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        assert!(n >= 1, "{table}.{col} is not the leading column of any index");
    }
}

#[tokio::test]
async fn foreign_keys_cascade_as_documented() {
    let app = TestApp::spawn().await;
    let db = app.conn();
    let org = fixtures::org(db, "acme").await;
    let teacher = fixtures::user(db, "teacher").await;
    let student = fixtures::user(db, "student").await;
    fixtures::membership(db, teacher.id, org.id, MembershipRole::Instructor, true).await;
    fixtures::membership(db, student.id, org.id, MembershipRole::Member, true).await;
    let c = fixtures::course(db, org.id, Some(teacher.id), "Rust", true).await;
    fixtures::track(db, &c, "One", 0).await;
    fixtures::track(db, &c, "Two", 1).await;

    // Deleting a user removes their memberships and clears their courses' instructor.
    teacher.clone().delete(db).await.unwrap();
    assert_eq!(
        membership::Entity::find().filter(membership::Column::UserId.eq(teacher.id)).all(db).await.unwrap().len(),
        0
    );
    let c2 = course::Entity::find_by_id(c.id).one(db).await.unwrap().expect("course survives");
    assert_eq!(c2.instructor_id, None);

    // Deleting a course removes its tracks.
    let other = fixtures::course(db, org.id, None, "Other", true).await;
    fixtures::track(db, &other, "T", 0).await;
    other.clone().delete(db).await.unwrap();
    assert_eq!(app.count("tracks", "").await, 2);

    // Deleting the organization removes memberships, courses and tracks; users stay.
    org.delete(db).await.unwrap();
    for t in ["memberships", "courses", "tracks", "organizations"] {
        assert_eq!(app.count(t, "").await, 0, "{t} should be empty");
    }
    assert_eq!(user::Entity::find().all(db).await.unwrap().len(), 1);
    let _ = track::Entity::find();
}

#[tokio::test]
async fn unique_keys_hold() {
    let app = TestApp::spawn().await;
    let db = app.conn();
    let org = fixtures::org(db, "acme").await;
    let u = fixtures::user(db, "alice").await;
    fixtures::membership(db, u.id, org.id, MembershipRole::Admin, true).await;

    let dup = |sql: String| {
        let backend = app.backend();
        async move { db.execute_raw(Statement::from_string(backend, sql)).await }
    };
    // Same (issuer, external_id).
    let e = sea_orm::ActiveModelTrait::insert(
        user::ActiveModel {
            id: sea_orm::Set(uuid::Uuid::now_v7()),
            issuer: sea_orm::Set("coursegraph".into()),
            external_id: sea_orm::Set("alice".into()),
            email_verified: sea_orm::Set(false),
            created_at: sea_orm::Set(chrono::Utc::now()),
            updated_at: sea_orm::Set(chrono::Utc::now()),
            ..Default::default()
        },
        db,
    )
    .await
    .expect_err("duplicate identity");
    assert!(coursegraph::db::is_unique_violation(&e), "{e}");
    // The same sub from another issuer is another user.
    let mut other = fixtures::user(db, "bob").await;
    other.external_id = "alice".into();
    let am = user::ActiveModel {
        id: sea_orm::Set(uuid::Uuid::now_v7()),
        issuer: sea_orm::Set("https://other-idp.example".into()),
        external_id: sea_orm::Set("alice".into()),
        email_verified: sea_orm::Set(false),
        created_at: sea_orm::Set(chrono::Utc::now()),
        updated_at: sea_orm::Set(chrono::Utc::now()),
        ..Default::default()
    };
    sea_orm::ActiveModelTrait::insert(am, db).await.expect("other issuer is fine");

    // Slug and external id are unique.
    let e = dup(format!(
        "INSERT INTO organizations (id, external_id, name, slug, storage_bucket, created_at, updated_at) \
         VALUES ({}, 'other', 'x', 'acme', 'org-acme', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
        uuid_literal(app.backend())
    ))
    .await
    .expect_err("duplicate slug");
    assert!(coursegraph::db::is_unique_violation(&e), "{e}");
    let e = dup(format!(
        "INSERT INTO organizations (id, external_id, name, slug, storage_bucket, created_at, updated_at) \
         VALUES ({}, 'acme', 'x', 'acme-2', 'org-acme-2', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
        uuid_literal(app.backend())
    ))
    .await
    .expect_err("duplicate external id");
    assert!(coursegraph::db::is_unique_violation(&e), "{e}");
    // Two organizations without an external id are fine.
    for slug in ["api-1", "api-2"] {
        dup(format!(
            "INSERT INTO organizations (id, external_id, name, slug, storage_bucket, created_at, updated_at) \
             VALUES ({}, NULL, 'x', '{slug}', 'org-{slug}', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
            uuid_literal(app.backend())
        ))
        .await
        .expect("null external ids do not collide");
    }
    // One membership per (user, organization).
    let e = sea_orm::ActiveModelTrait::insert(
        membership::ActiveModel {
            id: sea_orm::Set(uuid::Uuid::now_v7()),
            user_id: sea_orm::Set(u.id),
            organization_id: sea_orm::Set(org.id),
            role: sea_orm::Set(MembershipRole::Member),
            is_active: sea_orm::Set(true),
            joined_at: sea_orm::Set(chrono::Utc::now()),
            updated_at: sea_orm::Set(chrono::Utc::now()),
        },
        db,
    )
    .await
    .expect_err("duplicate membership");
    assert!(coursegraph::db::is_unique_violation(&e), "{e}");
}

/// A fresh UUID as an SQL literal of the backend's storage (SQLite keeps UUIDs as blobs).
fn uuid_literal(backend: DbBackend) -> String {
    let u = uuid::Uuid::now_v7();
    match backend {
        DbBackend::Sqlite => format!("X'{}'", u.simple()),
        _ => format!("'{u}'"),
    }
}

#[tokio::test]
async fn roles_outside_the_enum_are_refused_by_the_database() {
    let app = TestApp::spawn().await;
    let db = app.conn();
    let org = fixtures::org(db, "acme").await;
    let u = fixtures::user(db, "alice").await;
    let m = fixtures::membership(db, u.id, org.id, MembershipRole::Member, true).await;
    let sql = match app.backend() {
        DbBackend::Sqlite => format!("UPDATE memberships SET role = 'owner' WHERE id = X'{}'", m.id.simple()),
        _ => format!("UPDATE memberships SET role = 'owner' WHERE id = '{}'", m.id),
    };
    db.execute_raw(Statement::from_string(app.backend(), sql)).await.expect_err("CHECK constraint");
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Some traffic, then the counters show it.
    let (status, _, _) = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(status, 200);
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(text.contains("coursegraph_http_requests_total{route=\"/graphql\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("coursegraph_db_pool_connections"), "{text}");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.conn().close_by_ref().await.unwrap();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // The process is still up.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("/graphiql/graphiql.min.js"));
    // No external origin anywhere in the page: it must work offline.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "{html}");
    for asset in
        ["graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js", "init.js"]
    {
        let r = app.client.get(app.url(&format!("/graphiql/{asset}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.bytes().await.unwrap().len() > 100, "{asset}");
    }
    let r = app.client.get(app.url("/graphiql/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn anonymous_requests_may_only_ask_typename_and_introspect() {
    let app = TestApp::spawn().await;
    let (status, body, _) = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["__typename"], "Query");
    let (status, body, _) = app.gql(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    let (status, body, headers) = app.gql(None, "{ me { user { id } } }", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(only_error(&body)["extensions"]["reason"], "TOKEN_MISSING");
    assert_eq!(body["data"], Value::Null);
}

#[tokio::test]
async fn seed_is_idempotent_and_its_users_can_sign_in() {
    let app = TestApp::spawn().await;
    // A demo user who signed in before seeding keeps their row.
    let t = app.token("alice", Some("acme"), Some("admin"));
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    for _ in 0..2 {
        coursegraph::seed::seed_demo(app.conn(), "coursegraph").await.expect("seed");
    }
    assert_eq!(app.count("organizations", "").await, 2);
    assert_eq!(app.count("users", "").await, 8);
    assert_eq!(app.count("memberships", "").await, 8);
    assert_eq!(app.count("courses", "").await, 8);
    assert_eq!(app.count("courses", "is_published = false").await, 2);
    assert_eq!(app.count("tracks", "").await, 24);
    let t = app.token("mark", Some("globex"), Some("member"));
    let d = app.data(&t, "{ me { activeRole activeOrganization { slug name } } }", json!({})).await;
    assert_eq!(d["me"]["activeRole"], "MEMBER");
    assert_eq!(d["me"]["activeOrganization"]["name"], "Globex Institute");
}

#[tokio::test]
async fn the_bundled_sqlite_keeps_no_memory_statistics() {
    // `.cargo/config.toml` builds SQLite with SQLITE_DEFAULT_MEMSTATUS=0 (a global mutex per
    // allocation otherwise; see BENCHMARKS.md). Losing that setting fails here, not in a benchmark.
    let conn = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let options: Vec<String> = conn
        .query_all_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA compile_options"))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "compile options: {options:?}");
}
