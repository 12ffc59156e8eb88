//! What a verified identity becomes: role source, removed members, the active
//! organization, profile refresh and the last-login throttle.

use chrono::{Duration, Utc};
use coursegraph::{config::RoleSource, token::TokenArgs};
use entity::{membership, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::helpers::*;

const ME: &str = "{ me { user { id name email } memberships { role organization { slug } } activeOrganization { slug } activeRole isPlatformAdmin } }";

async fn deactivate(app: &TestApp, sub: &str) {
    let u = user::Entity::find().filter(user::Column::ExternalId.eq(sub)).one(app.conn()).await.unwrap().unwrap();
    membership::Entity::update_many()
        .col_expr(membership::Column::IsActive, Expr::value(false))
        .filter(membership::Column::UserId.eq(u.id))
        .exec(app.conn())
        .await
        .unwrap();
}

#[tokio::test]
async fn role_source_database_keeps_the_first_role() {
    let app = TestApp::spawn().await;
    let d = app.data(&app.token("dana", Some("acme"), Some("admin")), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "ADMIN");
    let d = app.data(&app.token("dana", Some("acme"), Some("viewer")), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "ADMIN", "the database is authoritative after creation");
    assert_eq!(app.count("memberships", "role = 'admin'").await, 1);
}

#[tokio::test]
async fn role_source_token_follows_the_token_every_request() {
    let app = TestApp::spawn_with(|c| {
        c.auth.role_source = RoleSource::Token;
        c.auth.context_cache_ttl = std::time::Duration::ZERO;
    })
    .await;
    let d = app.data(&app.token("tom", Some("acme"), Some("admin")), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "ADMIN");
    let d = app.data(&app.token("tom", Some("acme"), Some("instructor")), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "INSTRUCTOR");
    assert_eq!(app.count("memberships", "role = 'instructor'").await, 1);
    // A token that names no mappable role leaves the role alone.
    let d = app.data(&app.token("tom", Some("acme"), Some("unknown-role")), ME, json!({})).await;
    assert_eq!(d["me"]["activeRole"], "INSTRUCTOR");
    // Unchanged role: no write beyond the one identity SELECT.
    let t = app.token("tom", Some("acme"), Some("instructor"));
    let before = app.statements();
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    assert_eq!(app.statements() - before, 1);
}

#[tokio::test]
async fn a_removed_member_stays_removed() {
    for source in [RoleSource::Database, RoleSource::Token] {
        // The membership is deactivated behind the server's back, so no context cache here.
        let app = TestApp::spawn_with(move |c| {
            c.auth.role_source = source;
            c.auth.context_cache_ttl = std::time::Duration::ZERO;
        })
        .await;
        app.data(&app.token("admin", Some("acme"), Some("admin")), ME, json!({})).await;
        let bob = app.token("bob", Some("acme"), Some("member"));
        app.data(&bob, ME, json!({})).await;
        deactivate(&app, "bob").await;

        // Bob's token still names acme, and even claims a higher role: nothing comes back, and
        // the fields that would answer for acme say why.
        let promoted = app.token("bob", Some("acme"), Some("admin"));
        for t in [&bob, &promoted] {
            let (_, body, _) = app.gql(Some(t), ME, json!({})).await;
            let d = &body["data"];
            assert_eq!(d["me"]["activeOrganization"], Value::Null, "{source:?}");
            assert_eq!(d["me"]["activeRole"], Value::Null, "{source:?}");
            assert_eq!(d["me"]["memberships"], json!([]), "{source:?}");
            let errors = body["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 2, "{body}");
            for (e, field) in errors.iter().zip(["activeOrganization", "activeRole"]) {
                assert_eq!(e["path"], json!(["me", field]), "{body}");
                assert_eq!(e["extensions"]["reason"], "MEMBERSHIP_INACTIVE", "{body}");
                assert!(e["message"].as_str().unwrap().contains("`acme`"), "{body}");
            }
        }
        assert_eq!(app.count("memberships", "is_active = false").await, 1, "{source:?}: not re-activated");
        assert_eq!(app.count("memberships", "role = 'member' AND is_active = false").await, 1, "{source:?}");

        // Asking for acme explicitly explains why not.
        let (status, body, _) = app.gql_with(Some(&bob), &[("x-organization-id", "acme")], ME, json!({})).await;
        assert_eq!(status, 200);
        let e = only_error(&body);
        assert_eq!(e["extensions"]["code"], "FORBIDDEN");
        assert_eq!(e["extensions"]["reason"], "MEMBERSHIP_INACTIVE");
        assert_eq!(e["extensions"]["viewerRole"], "MEMBER");
    }
}

#[tokio::test]
async fn x_organization_id_selects_by_id_or_slug_and_refuses_strangers() {
    let app = TestApp::spawn().await;
    // Carol is in two organizations; her token names neither.
    app.data(&app.token("carol", Some("one"), Some("admin")), ME, json!({})).await;
    app.data(&app.token("carol", Some("two"), Some("viewer")), ME, json!({})).await;
    app.data(&app.token("eve", Some("three"), Some("admin")), ME, json!({})).await;
    let carol = app.token("carol", None, None);

    let d = app.data(&carol, ME, json!({})).await;
    assert_eq!(d["me"]["activeOrganization"], Value::Null, "two memberships and no hint: none is active");
    assert_eq!(d["me"]["memberships"].as_array().unwrap().len(), 2);

    let (_, body, _) = app.gql_with(Some(&carol), &[("x-organization-id", "two")], ME, json!({})).await;
    assert_eq!(body["data"]["me"]["activeOrganization"]["slug"], "two", "{body}");
    assert_eq!(body["data"]["me"]["activeRole"], "VIEWER");
    let one_id = app.data(&carol, "{ organizations { id slug } }", json!({})).await["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["slug"] == "one")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body, _) = app.gql_with(Some(&carol), &[("x-organization-id", &one_id)], ME, json!({})).await;
    assert_eq!(body["data"]["me"]["activeRole"], "ADMIN", "{body}");

    // Another tenant's organization, and one that does not exist, answer the same.
    for other in ["three", "does-not-exist", "00000000-0000-0000-0000-000000000000"] {
        let (status, body, _) = app.gql_with(Some(&carol), &[("x-organization-id", other)], ME, json!({})).await;
        assert_eq!(status, 200);
        let e = only_error(&body);
        assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{other}");
        assert_eq!(e["extensions"]["reason"], "NOT_A_MEMBER", "{other}");
        assert!(e["extensions"].get("organizationId").is_none(), "existence never leaks: {body}");
        assert_eq!(body["data"], Value::Null);
    }
}

#[tokio::test]
async fn the_token_organization_wins_over_the_only_membership_rule() {
    let app = TestApp::spawn().await;
    app.data(&app.token("dave", Some("first"), Some("member")), ME, json!({})).await;
    let d = app.data(&app.token("dave", Some("second"), Some("instructor")), ME, json!({})).await;
    assert_eq!(d["me"]["activeOrganization"]["slug"], "second");
    assert_eq!(d["me"]["activeRole"], "INSTRUCTOR");
    let d = app.data(&app.token("dave", Some("first"), None), ME, json!({})).await;
    assert_eq!(d["me"]["activeOrganization"]["slug"], "first");
}

#[tokio::test]
async fn profile_changes_are_refreshed_and_last_login_is_throttled() {
    // Statement counts of the database path, and a login time edited behind the server's back.
    let app = TestApp::spawn_with(|c| c.auth.context_cache_ttl = std::time::Duration::ZERO).await;
    let args = |email: &str, name: Option<&str>| TokenArgs {
        sub: "pat".into(),
        email: Some(email.into()),
        name: name.map(Into::into),
        org: Some("acme".into()),
        org_name: None,
        roles: vec![],
        permissions: vec![],
        ttl: "1h".parse().unwrap(),
        issuer: None,
        audience: None,
        extra_claims: vec![],
    };
    app.data(&app.token_with(args("pat@old.example", Some("Pat"))), ME, json!({})).await;
    let d = app.data(&app.token_with(args("pat@new.example", Some("Patricia"))), ME, json!({})).await;
    assert_eq!(d["me"]["user"]["email"], "pat@new.example");
    assert_eq!(d["me"]["user"]["name"], "Patricia");
    // A token that omits the name does not blank it.
    let d = app.data(&app.token_with(args("pat@new.example", None)), ME, json!({})).await;
    assert_eq!(d["me"]["user"]["name"], "Patricia");

    // Within five minutes of the last login: one SELECT, no write.
    let t = app.token_with(args("pat@new.example", Some("Patricia")));
    let before = app.statements();
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    assert_eq!(app.statements() - before, 1);

    // Six minutes later the login time is written once more (one UPDATE), then not again.
    let six_minutes_ago = Utc::now() - Duration::minutes(6);
    user::Entity::update_many()
        .col_expr(user::Column::LastLoginAt, Expr::value(six_minutes_ago))
        .exec(app.conn())
        .await
        .unwrap();
    let before = app.statements();
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    assert_eq!(app.statements() - before, 2);
    let u = user::Entity::find().one(app.conn()).await.unwrap().unwrap();
    assert!(u.last_login_at.unwrap() > six_minutes_ago + Duration::minutes(5));
    let before = app.statements();
    app.data(&t, "{ me { activeRole } }", json!({})).await;
    assert_eq!(app.statements() - before, 1);
}

#[tokio::test]
async fn platform_admins_are_recognised_and_may_pick_any_organization() {
    let app = TestApp::spawn_with(|c| c.auth.platform_admin_role = Some("superadmin".into())).await;
    app.data(&app.token("owner", Some("tenant-a"), Some("admin")), ME, json!({})).await;
    let root = app.token("root", None, Some("SuperAdmin"));
    let d = app.data(&root, ME, json!({})).await;
    assert_eq!(d["me"]["isPlatformAdmin"], true);
    assert_eq!(d["me"]["activeOrganization"], Value::Null);
    let (_, body, _) = app.gql_with(Some(&root), &[("x-organization-id", "tenant-a")], ME, json!({})).await;
    assert_eq!(body["data"]["me"]["activeOrganization"]["slug"], "tenant-a", "{body}");
    assert_eq!(body["data"]["me"]["activeRole"], "ADMIN");
    // Not a member, so no membership was created.
    assert_eq!(app.count("memberships", "").await, 1);
    // The same role name without the configuration is just an unknown role.
    let plain = TestApp::spawn().await;
    let d = plain.data(&plain.token("root", None, Some("SuperAdmin")), ME, json!({})).await;
    assert_eq!(d["me"]["isPlatformAdmin"], false);
}

/// A removed member whose token still names the organization hears why wherever a request
/// falls back on it — never silence, and never a quiet switch to another organization —
/// while lookups by id stay NOT_FOUND, so a former member cannot probe which ids exist.
#[tokio::test]
async fn a_removed_member_hears_why_wherever_the_token_s_organization_is_used() {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let mia = app.token("mia", Some("acme"), Some("member"));
    let org =
        app.data(&admin, "{ me { activeOrganization { id } } }", json!({})).await["me"]["activeOrganization"]["id"]
            .clone();
    let course = app
        .data(
            &admin,
            "mutation { createCourse(input: {title: \"Open\", difficultyLevel: BEGINNER, isPublished: true}) { id } }",
            json!({}),
        )
        .await["createCourse"]["id"]
        .clone();
    let mine = app.data(&mia, "{ me { memberships { id } } }", json!({})).await["me"]["memberships"][0]["id"].clone();
    // Mia also belongs to globex, actively: the token's acme must not fall through to it.
    app.data(&app.token("gil", Some("globex"), Some("admin")), "{ me { user { id } } }", json!({})).await;
    let mia_id = app.data(&mia, "{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    let gil = app.token("gil", Some("globex"), Some("admin"));
    app.data(&gil, "mutation($u: ID!) { addMember(input: {userId: $u, role: MEMBER}) { id } }", json!({ "u": mia_id }))
        .await;
    app.data(&admin, "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }", json!({ "m": mine })).await;

    let refused = |body: &Value, path: Value| {
        let e =
            body["errors"].as_array().unwrap().iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("{body}"));
        assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{body}");
        assert_eq!(e["extensions"]["reason"], "MEMBERSHIP_INACTIVE", "{body}");
        assert_eq!(e["extensions"]["organizationId"], org, "{body}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("`acme`") && m.contains("inviteMember"), "{m}");
    };
    let (_, body, _) = app.gql(Some(&mia), "{ organization { name } }", json!({})).await;
    assert_eq!(body["data"]["organization"], Value::Null);
    refused(&body, json!(["organization"]));
    let (_, body, _) = app.gql(Some(&mia), "{ courses { totalCount } }", json!({})).await;
    refused(&body, json!(["courses"]));
    let create = "mutation { createCourse(input: {title: \"Mine\", difficultyLevel: BEGINNER}) { id } }";
    let (_, body, _) = app.gql(Some(&mia), create, json!({})).await;
    refused(&body, json!(["createCourse"]));
    let (_, body, _) = app.gql(Some(&mia), "{ me { activeOrganization { id } activeRole } }", json!({})).await;
    refused(&body, json!(["me", "activeOrganization"]));
    refused(&body, json!(["me", "activeRole"]));
    // explainAccess on the organization says the same.
    let d = app
        .data(&mia, "{ explainAccess(action: READ_ORGANIZATION) { allowed reason organizationId } }", json!({}))
        .await;
    assert_eq!(d["explainAccess"], json!({ "allowed": false, "reason": "MEMBERSHIP_INACTIVE", "organizationId": org }));
    // By id: the organization explains (she knows it), a course of it is simply not there.
    let (_, body, _) =
        app.gql(Some(&mia), "query($o: ID) { organization(id: $o) { name } }", json!({ "o": org })).await;
    refused(&body, json!(["organization"]));
    let (_, body, _) = app.gql(Some(&mia), "query($c: ID!) { course(id: $c) { title } }", json!({ "c": course })).await;
    assert_eq!(only_error(&body)["extensions"]["code"], "NOT_FOUND", "{body}");
    // Globex, named, still works for her; nothing was written for acme.
    let (_, body, _) =
        app.gql_with(Some(&mia), &[("x-organization-id", "globex")], "{ organization { slug } }", json!({})).await;
    assert_eq!(body["data"]["organization"]["slug"], "globex", "{body}");
    assert_eq!(app.count("courses", "").await, 1);
}
