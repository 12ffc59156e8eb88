//! The membership lifecycle: invitations accepted at provisioning or
//! explicitly, re-activation by invitation, expiry and revocation, and the tenant audit
//! log written in the same transaction as each change.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::{fixtures, helpers::*};

const INVITE: &str = "mutation($e: String!, $r: OrgRole!) { inviteMember(input: { email: $e, role: $r }) { id email role status expiresAt invitedBy { id } organization { slug } } }";
const ME: &str =
    "{ me { user { id } activeRole activeOrganization { slug } memberships { role organization { slug } } } }";
const LOG: &str = "query($a: AuditAction, $first: Int, $after: String) { organization { auditLog(action: $a, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id at action targetType targetId details actor { id } } } } }";

/// A token for `sub` with `email` (verified or not) and no organization claim.
fn invitee(app: &TestApp, sub: &str, email: &str, verified: bool) -> String {
    let mut args = token_args(sub, None, None);
    args.email = Some(email.to_owned());
    if !verified {
        args.extra_claims.push("email_verified=false".into());
    }
    app.token_with(args)
}

async fn invite(app: &TestApp, admin: &str, email: &str, role: &str) -> Value {
    app.data(admin, INVITE, json!({ "e": email, "r": role })).await["inviteMember"].clone()
}

async fn log(app: &TestApp, admin: &str, action: Option<&str>) -> Vec<Value> {
    let d = app.data(admin, LOG, json!({ "a": action, "first": 50 })).await;
    d["organization"]["auditLog"]["nodes"].as_array().unwrap().clone()
}

fn actions(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

/// An ADMIN of `acme` and their token.
async fn acme(app: &TestApp) -> String {
    let admin = app.token("ada", Some("acme"), Some("admin"));
    app.data(&admin, ME, json!({})).await;
    admin
}

#[tokio::test]
async fn an_invited_person_s_first_request_already_has_the_invited_role() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let inv = invite(&app, &admin, "Nina@Example.com", "INSTRUCTOR").await;
    assert_eq!(inv["status"], "PENDING");
    assert_eq!(inv["email"], "Nina@Example.com");
    assert_eq!(inv["organization"]["slug"], "acme");
    assert!(inv["invitedBy"]["id"].is_string());

    // A brand-new user whose verified email matches, case-insensitively, and whose token
    // names no organization at all.
    let nina = invitee(&app, "nina", "nina@example.com", true);
    let me = app.data(&nina, ME, json!({})).await;
    assert_eq!(me["me"]["activeRole"], "INSTRUCTOR", "{me}");
    assert_eq!(me["me"]["activeOrganization"]["slug"], "acme");
    assert_eq!(app.count("memberships", "role = 'instructor'").await, 1);

    let list = app
        .data(&admin, "{ organization { invitations { totalCount nodes { id status acceptedAt } } } }", json!({}))
        .await;
    let node = &list["organization"]["invitations"]["nodes"][0];
    assert_eq!((node["id"].clone(), node["status"].clone()), (inv["id"].clone(), json!("ACCEPTED")));
    assert!(node["acceptedAt"].is_string());
    let events = log(&app, &admin, None).await;
    assert_eq!(actions(&events)[..2], ["INVITATION_ACCEPTED", "INVITATION_CREATED"], "newest first: {events:?}");
    assert_eq!(events[0]["actor"]["id"], me["me"]["user"]["id"]);
    assert_eq!(events[0]["targetId"], inv["id"]);
    assert_eq!(events[0]["details"]["role"], "INSTRUCTOR");
    // Nothing left to accept.
    let pending = app.data(&nina, "{ me { invitations { id } } }", json!({})).await;
    assert_eq!(pending["me"]["invitations"], json!([]));
}

#[tokio::test]
async fn many_concurrent_first_requests_of_an_invited_user_create_one_membership_and_one_event() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    invite(&app, &admin, "rush@example.com", "MEMBER").await;
    let t = invitee(&app, "rush", "rush@example.com", true);
    let mut tasks = Vec::new();
    for _ in 0..48 {
        let (client, url, t) = (app.client.clone(), app.url("/graphql"), t.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(t).json(&json!({ "query": ME })).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        // Every request, even the losers of the race, sees the membership.
        assert_eq!(body["data"]["me"]["activeRole"], "MEMBER", "{body}");
    }
    assert_eq!(app.count("users", "external_id = 'rush'").await, 1);
    assert_eq!(app.count("memberships", "role = 'member'").await, 1);
    assert_eq!(app.count("audit_events", "action = 'INVITATION_ACCEPTED'").await, 1);
    assert_eq!(app.count("invitations", "status = 'accepted'").await, 1);
}

#[tokio::test]
async fn an_invitation_brings_a_removed_member_back_which_a_token_never_does() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let rex = app.token("rex", Some("acme"), Some("member"));
    let me = app.data(&rex, "{ me { memberships { id } } }", json!({})).await;
    let m = me["me"]["memberships"][0]["id"].clone();
    app.data(&admin, "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }", json!({ "m": m })).await;
    // The token alone does not bring Rex back, and says so.
    let (_, again, _) = app.gql(Some(&rex), ME, json!({})).await;
    assert_eq!(again["data"]["me"]["activeRole"], Value::Null, "{again}");
    assert!(again["errors"].as_array().unwrap().iter().all(|e| e["extensions"]["reason"] == "MEMBERSHIP_INACTIVE"));
    // An invitation does, with the invited role.
    invite(&app, &admin, "rex@example.com", "VIEWER").await;
    let back = app.data(&rex, ME, json!({})).await;
    assert_eq!(back["me"]["activeRole"], "VIEWER", "{back}");
    assert_eq!(app.count("memberships", "is_active = true AND role = 'viewer'").await, 1);
    let accepted = log(&app, &admin, Some("INVITATION_ACCEPTED")).await;
    assert_eq!(accepted[0]["details"]["reactivated"], true);
    assert_eq!(actions(&log(&app, &admin, Some("MEMBER_REMOVED")).await), ["MEMBER_REMOVED"]);
}

#[tokio::test]
async fn an_unverified_email_is_forbidden_and_someone_else_s_invitation_is_not_found() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let inv = invite(&app, &admin, "uma@example.com", "MEMBER").await;
    // Unverified: not accepted on sign-in, not listed, and refused with the reason.
    let uma = invitee(&app, "uma", "uma@example.com", false);
    let me = app.data(&uma, "{ me { activeRole invitations { id } } }", json!({})).await;
    assert_eq!(me["me"]["activeRole"], Value::Null);
    assert_eq!(me["me"]["invitations"], json!([]));
    let accept = "mutation($i: ID!) { acceptInvitation(id: $i) { role isActive } }";
    let (_, body, _) = app.gql(Some(&uma), accept, json!({ "i": inv["id"] })).await;
    let e = only_error(&body);
    assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{body}");
    assert_eq!(e["extensions"]["reason"], "EMAIL_NOT_VERIFIED");
    assert_eq!(e["extensions"]["action"], "ACCEPT_INVITATION");
    assert_eq!(e["extensions"]["policy"], "invitation.accept:invitee_verified_email");
    let explained = app
        .data(
            &uma,
            "query($i: ID) { explainAccess(action: ACCEPT_INVITATION, resourceId: $i) { allowed reason } }",
            json!({ "i": inv["id"] }),
        )
        .await;
    assert_eq!(explained["explainAccess"], json!({ "allowed": false, "reason": "EMAIL_NOT_VERIFIED" }));
    // Someone else: the same answer as an invitation that does not exist.
    let eve = invitee(&app, "eve", "eve@example.com", true);
    let (_, theirs, _) = app.gql(Some(&eve), accept, json!({ "i": inv["id"] })).await;
    let (_, missing, _) = app.gql(Some(&eve), accept, json!({ "i": uuid::Uuid::new_v4().to_string() })).await;
    assert_eq!(error_code(&theirs), "NOT_FOUND");
    assert_eq!(theirs, missing);
    assert_eq!(app.count("memberships", "").await, 1, "only the admin's");
    // Bad ids are bad input.
    let (_, bad, _) = app.gql(Some(&eve), accept, json!({ "i": "nope" })).await;
    assert_eq!(
        (error_code(&bad), only_error(&bad)["extensions"]["field"].clone()),
        ("BAD_USER_INPUT".into(), json!("id"))
    );
}

#[tokio::test]
async fn expired_and_revoked_invitations_cannot_be_accepted() {
    let app = TestApp::spawn_with(|c| c.invitations.auto_accept = false).await;
    let admin = acme(&app).await;
    let org = app.data(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    let org_id = uuid::Uuid::parse_str(org.as_str().unwrap()).unwrap();
    let old = fixtures::invitation(
        app.conn(),
        org_id,
        "old@example.com",
        entity::MembershipRole::Member,
        chrono::Duration::seconds(-1),
    )
    .await;
    let revoked = invite(&app, &admin, "gone@example.com", "MEMBER").await;
    let r = app
        .data(&admin, "mutation($i: ID!) { revokeInvitation(id: $i) { status } }", json!({ "i": revoked["id"] }))
        .await;
    assert_eq!(r["revokeInvitation"]["status"], "REVOKED");
    let accept = "mutation($i: ID!) { acceptInvitation(id: $i) { id } }";
    for (sub, email, id) in
        [("old", "old@example.com", json!(old.id.to_string())), ("gone", "gone@example.com", revoked["id"].clone())]
    {
        let t = invitee(&app, sub, email, true);
        let (_, body, _) = app.gql(Some(&t), accept, json!({ "i": id })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{sub}: {body}");
    }
    // Revoking again, or revoking an expired one, is a conflict.
    for id in [revoked["id"].clone(), json!(old.id.to_string())] {
        let (_, body, _) =
            app.gql(Some(&admin), "mutation($i: ID!) { revokeInvitation(id: $i) { id } }", json!({ "i": id })).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
    }
    let by = |s: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let q = "query($s: InvitationStatus) { organization { invitations(status: $s) { totalCount nodes { email status } } } }";
            app.data(admin, q, json!({ "s": s })).await["organization"]["invitations"].clone()
        }
    };
    assert_eq!(by("EXPIRED").await["nodes"], json!([{ "email": "old@example.com", "status": "EXPIRED" }]));
    assert_eq!(by("REVOKED").await["totalCount"], 1);
    assert_eq!(by("PENDING").await["totalCount"], 0);
    // An expired invitation no longer blocks a fresh one to the same address.
    let fresh = invite(&app, &admin, "OLD@example.com", "ADMIN").await;
    assert_eq!(fresh["status"], "PENDING");
    assert_eq!(by("PENDING").await["totalCount"], 1);
    assert_eq!(app.count("memberships", "").await, 1);
}

#[tokio::test]
async fn without_auto_accept_the_invitee_lists_and_accepts_explicitly_once() {
    let app = TestApp::spawn_with(|c| c.invitations.auto_accept = false).await;
    let admin = acme(&app).await;
    let inv = invite(&app, &admin, "ivy@example.com", "INSTRUCTOR").await;
    let ivy = invitee(&app, "ivy", "ivy@example.com", true);
    let me = app
        .data(
            &ivy,
            "{ me { activeRole invitations { id role status organization { name slug viewerRole } } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["activeRole"], Value::Null, "not accepted on sign-in");
    let listed = &me["me"]["invitations"][0];
    assert_eq!(listed["id"], inv["id"]);
    assert_eq!(listed["organization"]["slug"], "acme", "the invitee sees who invites them: {me}");
    assert_eq!(listed["organization"]["viewerRole"], Value::Null);
    let accept = "mutation($i: ID!) { acceptInvitation(id: $i) { id role isActive organization { slug } } }";
    let first = app.data(&ivy, accept, json!({ "i": inv["id"] })).await["acceptInvitation"].clone();
    assert_eq!((first["role"].clone(), first["isActive"].clone()), (json!("INSTRUCTOR"), json!(true)));
    assert_eq!(first["organization"]["slug"], "acme");
    let me = app.data(&ivy, "{ me { activeRole invitations { id } } }", json!({})).await;
    assert_eq!(me["me"]["activeRole"], "INSTRUCTOR");
    assert_eq!(me["me"]["invitations"], json!([]));
    // Accepting again answers the same membership and records nothing more.
    let second = app.data(&ivy, accept, json!({ "i": inv["id"] })).await["acceptInvitation"].clone();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(app.count("audit_events", "action = 'INVITATION_ACCEPTED'").await, 1);
    assert_eq!(app.count("memberships", "").await, 2);
}

#[tokio::test]
async fn inviting_a_member_or_twice_is_a_conflict_and_bad_addresses_are_bad_input() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let (_, body, _) = app.gql(Some(&admin), INVITE, json!({ "e": "ADA@example.com", "r": "MEMBER" })).await;
    assert_eq!(error_code(&body), "CONFLICT", "ada is an active member: {body}");
    assert_eq!(only_error(&body)["extensions"]["field"], "input.email");
    invite(&app, &admin, "twice@example.com", "MEMBER").await;
    let (_, body, _) = app.gql(Some(&admin), INVITE, json!({ "e": " Twice@Example.com ", "r": "ADMIN" })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    for bad in ["", "nobody", "a b@example.com", "x@"] {
        let (_, body, _) = app.gql(Some(&admin), INVITE, json!({ "e": bad, "r": "MEMBER" })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad:?}: {body}");
        assert_eq!(only_error(&body)["extensions"]["field"], "input.email");
    }
    assert_eq!(app.count("invitations", "").await, 1);
    assert_eq!(app.count("audit_events", "action = 'INVITATION_CREATED'").await, 1);
}

#[tokio::test]
async fn concurrent_invitations_of_one_address_leave_one_pending() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, t) = (app.client.clone(), app.url("/graphql"), admin.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "query": INVITE, "variables": { "e": "same@example.com", "r": "MEMBER" } });
            client.post(url).bearer_auth(t).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let body = t.await.unwrap();
        if body.get("errors").is_none() {
            ok += 1;
        } else {
            assert_eq!(error_code(&body), "CONFLICT", "{body}");
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(app.count("invitations", "status = 'pending'").await, 1);
    assert_eq!(app.count("audit_events", "action = 'INVITATION_CREATED'").await, 1);
}

#[tokio::test]
async fn every_lifecycle_denial_says_why() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let inv = invite(&app, &admin, "someone@example.com", "MEMBER").await;
    for role in ["instructor", "member", "viewer"] {
        let t = app.token(&format!("u-{role}"), Some("acme"), Some(role));
        app.data(&t, ME, json!({})).await;
        let cases = [
            (INVITE, json!({ "e": "x@example.com", "r": "MEMBER" }), "MANAGE_MEMBERS", vec!["inviteMember"]),
            (
                "mutation($i: ID!) { revokeInvitation(id: $i) { id } }",
                json!({ "i": inv["id"] }),
                "MANAGE_MEMBERS",
                vec!["revokeInvitation"],
            ),
            (
                "{ organization { name invitations { totalCount } } }",
                json!({}),
                "MANAGE_MEMBERS",
                vec!["organization", "invitations"],
            ),
            (
                "{ organization { name auditLog { totalCount } } }",
                json!({}),
                "READ_AUDIT_LOG",
                vec!["organization", "auditLog"],
            ),
        ];
        for (q, vars, action, path) in cases {
            let (status, body, _) = app.gql(Some(&t), q, vars).await;
            assert_eq!(status, 200);
            let e = only_error(&body);
            assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{role} {q}: {body}");
            assert_eq!(e["extensions"]["reason"], "INSUFFICIENT_ROLE");
            assert_eq!(e["extensions"]["action"], action);
            assert_eq!(e["extensions"]["requiredRoles"], json!(["ADMIN"]));
            assert_eq!(e["extensions"]["viewerRole"], role.to_uppercase());
            assert_eq!(e["path"], json!(path));
            if path.len() == 2 {
                assert_eq!(body["data"]["organization"]["name"], "acme", "siblings survive");
            }
        }
    }
    assert_eq!(app.count("invitations", "").await, 1);
    assert_eq!(app.count("invitations", "status = 'pending'").await, 1);
}

#[tokio::test]
async fn access_denied_is_recorded_once_per_user_action_and_reason_per_minute() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let mia = app.token("mia", Some("acme"), Some("member"));
    app.data(&mia, ME, json!({})).await;
    let rename = "mutation($o: ID!) { updateOrganization(id: $o, input: { name: \"Mine\" }) { id } }";
    let org = app.data(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    for _ in 0..5 {
        let (_, body, _) = app.gql(Some(&mia), rename, json!({ "o": org })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    // A query's denial is not a mutation's: not recorded.
    app.gql(Some(&mia), "{ organization { storageBucket } }", json!({})).await;
    // Another action is another key.
    app.gql(Some(&mia), INVITE, json!({ "e": "x@example.com", "r": "ADMIN" })).await;
    let denied = log(&app, &admin, Some("ACCESS_DENIED")).await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    let d = &denied[1]["details"];
    assert_eq!(
        (d["action"].clone(), d["reason"].clone(), d["viewerRole"].clone()),
        (json!("UPDATE_ORGANIZATION"), json!("INSUFFICIENT_ROLE"), json!("MEMBER"))
    );
    assert_eq!(denied[0]["details"]["action"], "MANAGE_MEMBERS");
    // Also across servers sharing the database (the check is in the database).
    let other = TestApp::spawn_on(app.db.clone(), |_| {}).await;
    other.gql(Some(&mia), rename, json!({ "o": org })).await;
    assert_eq!(app.count("audit_events", "action = 'ACCESS_DENIED'").await, 2);
    // The log never carries the token.
    let all = log(&app, &admin, None).await;
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&mia) && !text.contains(&admin) && !text.contains(SECRET));
}

#[tokio::test]
async fn the_audit_log_is_newest_first_paginated_and_tenant_isolated() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    for i in 0..5 {
        invite(&app, &admin, &format!("p{i}@example.com"), "MEMBER").await;
    }
    let bob = app.token("bob", Some("globex"), Some("admin"));
    app.data(&bob, ME, json!({})).await;
    invite(&app, &bob, "g@example.com", "MEMBER").await;

    let page = |after: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.data(admin, LOG, json!({ "a": "INVITATION_CREATED", "first": 2, "after": after })).await["organization"]
                ["auditLog"]
                .clone()
        }
    };
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let p = page(after).await;
        assert_eq!(p["totalCount"], 5);
        for n in p["nodes"].as_array().unwrap() {
            seen.push((n["at"].as_str().unwrap().to_owned(), n["details"]["email"].as_str().unwrap().to_owned()));
        }
        if p["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = p["pageInfo"]["endCursor"].clone();
    }
    let emails: Vec<&str> = seen.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(emails, ["p4@example.com", "p3@example.com", "p2@example.com", "p1@example.com", "p0@example.com"]);
    // Globex's admin sees only Globex's events, and acme's log is not reachable at all.
    let theirs = log(&app, &bob, None).await;
    assert!(theirs.iter().all(|e| e["details"]["email"] != json!("p0@example.com")), "{theirs:?}");
    let acme_id = app.data(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    let (_, body, _) = app
        .gql(
            Some(&bob),
            "query($o: ID) { organization(id: $o) { auditLog { totalCount } invitations { totalCount } } }",
            json!({ "o": acme_id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    // And nothing in the API edits it: no mutation touches audit events.
    let sdl = coursegraph::graphql::schema::sdl();
    assert!(!sdl.contains("AuditEventInput") && !sdl.to_lowercase().contains("deleteaudit"));
}

/// Makes the next UPDATE of `table` fail inside the database (a trigger), on either backend.
async fn fail_updates_of(app: &TestApp, table: &str) {
    let sql = match app.backend() {
        DbBackend::Sqlite => vec![format!(
            "CREATE TRIGGER fail_{table} BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )],
        _ => vec![
            "CREATE OR REPLACE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$".to_owned(),
            format!("CREATE TRIGGER fail_{table} BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION injected_failure()"),
        ],
    };
    for s in sql {
        app.conn().execute_raw(Statement::from_string(app.backend(), s)).await.unwrap();
    }
}

#[tokio::test]
async fn a_change_that_rolls_back_leaves_no_event_and_a_committed_one_always_has_one() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let ian = app.token("ian", Some("acme"), Some("instructor"));
    let me = app.data(&ian, "{ me { user { id } memberships { id } } }", json!({})).await;
    let m = me["me"]["memberships"][0]["id"].clone();
    let ian_id = uuid::Uuid::parse_str(me["me"]["user"]["id"].as_str().unwrap()).unwrap();
    let org = app.data(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    let org_id = uuid::Uuid::parse_str(org.as_str().unwrap()).unwrap();
    fixtures::course(app.conn(), org_id, Some(ian_id), "Ian's", true).await;

    // Removing Ian also unassigns his course; that step fails after the membership row and
    // its MEMBER_REMOVED event were written: all of it rolls back.
    fail_updates_of(&app, "courses").await;
    let remove = "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }";
    let (_, body, _) = app.gql(Some(&admin), remove, json!({ "m": m })).await;
    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    assert!(!body.to_string().contains("injected"), "details stay in the log: {body}");
    assert_eq!(app.count("memberships", "is_active = true").await, 2);
    assert_eq!(app.count("audit_events", "action = 'MEMBER_REMOVED'").await, 0);

    // A committed change has its event.
    let demote = "mutation($m: ID!) { updateMemberRole(membershipId: $m, role: MEMBER) { role } }";
    let d = app
        .data(
            &admin,
            "mutation($m: ID!) { updateMemberRole(membershipId: $m, role: ADMIN) { role } }",
            json!({ "m": m }),
        )
        .await;
    assert_eq!(d["updateMemberRole"]["role"], "ADMIN");
    let changed = log(&app, &admin, Some("MEMBER_ROLE_CHANGED")).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0]["details"]["from"].clone(), changed[0]["details"]["to"].clone()),
        (json!("INSTRUCTOR"), json!("ADMIN"))
    );
    assert_eq!(changed[0]["targetType"], "membership");
    assert_eq!(changed[0]["targetId"], m);
    // Demoting to MEMBER unassigns courses again, which fails: the role stays ADMIN, and
    // no second event appears.
    let (_, body, _) = app.gql(Some(&admin), demote, json!({ "m": m })).await;
    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    assert_eq!(app.count("memberships", "role = 'admin'").await, 2);
    assert_eq!(log(&app, &admin, Some("MEMBER_ROLE_CHANGED")).await.len(), 1);
}

#[tokio::test]
async fn each_kind_of_change_records_its_event() {
    let app = TestApp::spawn().await;
    let admin = acme(&app).await;
    let org = app.data(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    app.data(
        &admin,
        "mutation($o: ID!) { updateOrganization(id: $o, input: { name: \"Acme 2\" }) { id } }",
        json!({ "o": org }),
    )
    .await;
    let newbie = app.token("newbie", None, None);
    let uid = app.data(&newbie, "{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    app.data(
        &admin,
        "mutation($u: ID!) { addMember(input: { userId: $u, role: VIEWER }) { id } }",
        json!({ "u": uid }),
    )
    .await;
    let c = app
        .data(
            &admin,
            "mutation { createCourse(input: { title: \"Doomed\", difficultyLevel: BEGINNER }) { id } }",
            json!({}),
        )
        .await["createCourse"]["id"]
        .clone();
    app.data(&admin, "mutation($c: ID!) { deleteCourse(id: $c) }", json!({ "c": c })).await;
    let all = actions(&log(&app, &admin, None).await);
    assert_eq!(all, ["COURSE_DELETED", "MEMBER_ADDED", "ORGANIZATION_UPDATED", "MEMBERSHIP_PROVISIONED"], "{all:?}");
    let renamed = &log(&app, &admin, Some("ORGANIZATION_UPDATED")).await[0];
    assert_eq!(renamed["details"]["name"], json!({ "from": "acme", "to": "Acme 2" }));
}

#[tokio::test]
async fn platform_admin_access_is_in_the_tenant_s_log() {
    let app = TestApp::spawn_with(|c| c.auth.platform_admin_role = Some("superadmin".into())).await;
    let admin = acme(&app).await;
    let org = app.data(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    let root = app.token("root", None, Some("superadmin"));
    let rename = "mutation($o: ID!) { updateOrganization(id: $o, input: { name: \"By root\" }) { name } }";
    for _ in 0..3 {
        let (_, body, _) =
            app.gql_with(Some(&root), &[("x-organization-id", "acme")], rename, json!({ "o": org })).await;
        assert_eq!(body["data"]["updateOrganization"]["name"], "By root", "{body}");
    }
    let access = log(&app, &admin, Some("PLATFORM_ADMIN_ACCESS")).await;
    let mut what: Vec<String> = access
        .iter()
        .map(|e| e["details"]["action"].as_str().or(e["details"]["via"].as_str()).unwrap().to_owned())
        .collect();
    what.sort();
    // Once per minute each: the switch into the tenant, and the power used there.
    assert_eq!(what, ["UPDATE_ORGANIZATION", "X-Organization-Id"], "{access:?}");
    let root_id = app.data(&root, "{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    assert!(access.iter().all(|e| e["actor"].is_null() || e["actor"]["id"] == root_id));
    assert_eq!(log(&app, &admin, Some("ORGANIZATION_UPDATED")).await.len(), 3);
}
