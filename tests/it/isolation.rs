//! Tenant isolation: a user of organization B probes organization A through every entry
//! point — by id, by list argument, nested traversal, X-Organization-Id, aliases,
//! fragments, explainAccess, every mutation — and learns nothing, changes nothing.

use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
use coursegraph::authz::Action;
use entity::{course, membership, organization, track};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{fixtures, helpers::*};

pub struct TwoTenants {
    pub app: TestApp,
    pub org_a: Uuid,
    /// Every id that belongs to organization A only.
    pub a_ids: Vec<Uuid>,
    pub a_course: Uuid,
    pub a_draft: Uuid,
    pub a_track: Uuid,
    pub a_membership: Uuid,
    pub a_user: Uuid,
    /// A pending invitation of A, to an address nobody in B has.
    pub a_invitation: Uuid,
    /// A custom role of A, assigned to `a_membership`.
    pub a_role: Uuid,
    pub b_course: Uuid,
    pub b_track: Uuid,
    /// A custom role of B, and B's member's membership.
    pub b_role: Uuid,
    pub b_membership: Uuid,
    pub b_admin: String,
    pub b_member: String,
}

impl TwoTenants {
    pub async fn new() -> Self {
        let app = TestApp::spawn().await;
        let me = "{ me { user { id } activeOrganization { id } memberships { id } } }";
        let uid = |d: &Value| Uuid::parse_str(d["me"]["user"]["id"].as_str().unwrap()).unwrap();
        let oid = |d: &Value| Uuid::parse_str(d["me"]["activeOrganization"]["id"].as_str().unwrap()).unwrap();
        let a_admin = app.data(&app.token("alice", Some("tenant-a"), Some("admin")), me, json!({})).await;
        let a_teacher = app.data(&app.token("tom", Some("tenant-a"), Some("instructor")), me, json!({})).await;
        let b_admin_t = app.token("bob", Some("tenant-b"), Some("admin"));
        let b_admin = app.data(&b_admin_t, me, json!({})).await;
        let b_member_t = app.token("bea", Some("tenant-b"), Some("member"));
        let b_member = app.data(&b_member_t, me, json!({})).await;
        let (org_a, org_b) = (oid(&a_admin), oid(&b_admin));
        let db = app.conn();
        let a1 = fixtures::course(db, org_a, Some(uid(&a_teacher)), "A published", true).await;
        let a2 = fixtures::course(db, org_a, Some(uid(&a_teacher)), "A draft", false).await;
        let at1 = fixtures::track(db, &a1, "A track 1", 0).await;
        let at2 = fixtures::track(db, &a1, "A track 2", 1).await;
        let b1 = fixtures::course(db, org_b, Some(uid(&b_admin)), "B published", true).await;
        let bt = fixtures::track(db, &b1, "B track", 0).await;
        let a_membership = Uuid::parse_str(a_teacher["me"]["memberships"][0]["id"].as_str().unwrap()).unwrap();
        let inv = fixtures::invitation(
            db,
            org_a,
            "carol@example.com",
            entity::MembershipRole::Member,
            chrono::Duration::days(1),
        )
        .await;
        let create_role = "mutation($k: String!) { createRole(input: { key: $k, name: $k, grants: [{ action: READ_COURSE }] }) { id } }";
        let role = |d: &Value| Uuid::parse_str(d["createRole"]["id"].as_str().unwrap()).unwrap();
        let a_admin_t = app.token("alice", Some("tenant-a"), Some("admin"));
        let a_role = role(&app.data(&a_admin_t, create_role, json!({ "k": "a_reviewer" })).await);
        let b_role = role(&app.data(&b_admin_t, create_role, json!({ "k": "b_reviewer" })).await);
        app.data(
            &a_admin_t,
            "mutation($m: ID!, $r: ID!) { assignRole(membershipId: $m, roleId: $r) { id } }",
            json!({ "m": a_membership, "r": a_role }),
        )
        .await;
        let b_membership = Uuid::parse_str(b_member["me"]["memberships"][0]["id"].as_str().unwrap()).unwrap();
        let mut a_ids =
            vec![org_a, a1.id, a2.id, at1.id, at2.id, uid(&a_admin), uid(&a_teacher), a_membership, inv.id, a_role];
        a_ids.push(Uuid::parse_str(a_admin["me"]["memberships"][0]["id"].as_str().unwrap()).unwrap());
        Self {
            org_a,
            a_course: a1.id,
            a_draft: a2.id,
            a_track: at1.id,
            a_membership,
            a_user: uid(&a_teacher),
            a_invitation: inv.id,
            a_role,
            b_course: b1.id,
            b_track: bt.id,
            b_role,
            b_membership,
            a_ids,
            b_admin: b_admin_t,
            b_member: b_member_t,
            app,
        }
    }

    /// A's rows, to prove nothing changed.
    pub async fn a_rows(&self) -> String {
        let db = self.app.conn();
        let o = organization::Entity::find_by_id(self.org_a).one(db).await.unwrap();
        let m =
            membership::Entity::find().filter(membership::Column::OrganizationId.eq(self.org_a)).all(db).await.unwrap();
        let c = course::Entity::find().filter(course::Column::OrganizationId.eq(self.org_a)).all(db).await.unwrap();
        let t = track::Entity::find().filter(track::Column::OrganizationId.eq(self.org_a)).all(db).await.unwrap();
        let i = entity::invitation::Entity::find()
            .filter(entity::invitation::Column::OrganizationId.eq(self.org_a))
            .all(db)
            .await
            .unwrap();
        let e = entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::OrganizationId.eq(self.org_a))
            .all(db)
            .await
            .unwrap();
        let r = entity::role::Entity::find()
            .filter(entity::role::Column::OrganizationId.eq(self.org_a))
            .all(db)
            .await
            .unwrap();
        let mr = entity::membership_role::Entity::find()
            .filter(entity::membership_role::Column::MembershipId.is_in(m.iter().map(|m| m.id)))
            .all(db)
            .await
            .unwrap();
        format!("{o:?}{m:?}{c:?}{t:?}{i:?}{e:?}{r:?}{mr:?}")
    }

    pub fn leaks(&self, body: &Value) -> Vec<Uuid> {
        let text = body.to_string();
        self.a_ids.iter().filter(|id| text.contains(&id.to_string())).copied().collect()
    }
}

fn code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>").to_owned()
}

#[tokio::test]
async fn reads_by_id_answer_not_found_exactly_like_missing_rows() {
    let w = TwoTenants::new().await;
    let missing = Uuid::now_v7().to_string();
    for (q, a_id) in [
        ("query($id: ID!) { course(id: $id) { id title } }", w.a_course),
        ("query($id: ID!) { course(id: $id) { id title } }", w.a_draft),
        ("query($id: ID!) { track(id: $id) { id name } }", w.a_track),
        ("query($id: ID!) { organization(id: $id) { id name } }", w.org_a),
    ] {
        let (_, theirs, _) = w.app.gql(Some(&w.b_admin), q, json!({ "id": a_id.to_string() })).await;
        let (_, absent, _) = w.app.gql(Some(&w.b_admin), q, json!({ "id": missing })).await;
        assert_eq!(code(&theirs), "NOT_FOUND", "{q}: {theirs}");
        // Same body apart from nothing: message, code and shape are identical.
        assert_eq!(theirs, absent, "{q}: another tenant's row must look missing");
        assert!(w.leaks(&theirs).is_empty());
    }
}

#[tokio::test]
async fn list_arguments_nested_paths_aliases_and_fragments_stay_in_the_tenant() {
    let w = TwoTenants::new().await;
    let t = &w.b_admin;
    // A list argument naming A.
    let (_, body, _) = w
        .app
        .gql(
            Some(t),
            "query($o: ID!) { courses(organizationId: $o) { totalCount nodes { id } } }",
            json!({ "o": w.org_a.to_string() }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert!(w.leaks(&body).is_empty());
    // Lists without arguments: only B.
    let (_, body, _) = w
        .app
        .gql(
            Some(t),
            "{ courses(first: 100) { totalCount nodes { id organization { id } tracks { id } } }
               organizations { id courses { nodes { id } } members(includeInactive: true) { nodes { id user { id } } } }
               me { memberships { id organization { id } } } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["courses"]["totalCount"], 1);
    assert!(w.leaks(&body).is_empty(), "{body}");
    // Nested traversal from B's own rows.
    let (_, body, _) = w
        .app
        .gql(
            Some(t),
            "query($c: ID!, $t: ID!) { course(id: $c) { organization { id courses { nodes { id } } } instructor { id } }
              track(id: $t) { course { id } organization { id members { nodes { user { id } } } } } }",
            json!({ "c": w.b_course.to_string(), "t": w.b_track.to_string() }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(w.leaks(&body).is_empty(), "{body}");
    // Aliases: one probe per alias, each answered on its own.
    let (_, body, _) = w
        .app
        .gql(
            Some(t),
            "query($mine: ID!, $theirs: ID!, $draft: ID!) { mine: course(id: $mine) { id } theirs: course(id: $theirs) { id } draft: course(id: $draft) { id } }",
            json!({ "mine": w.b_course.to_string(), "theirs": w.a_course.to_string(), "draft": w.a_draft.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["mine"]["id"], json!(w.b_course.to_string()));
    assert_eq!(body["data"]["theirs"], Value::Null);
    assert_eq!(body["data"]["draft"], Value::Null);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    assert!(w.leaks(&body).is_empty());
    // Fragments and inline fragments.
    let (_, body, _) = w
        .app
        .gql(
            Some(t),
            "query($a: ID!) { ...Q } fragment Q on Query { course(id: $a) { ...C ... on Course { tracks { id } } } } fragment C on Course { id title }",
            json!({ "a": w.a_course.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["course"], Value::Null);
    assert_eq!(code(&body), "NOT_FOUND");
    assert!(w.leaks(&body).is_empty());
}

#[tokio::test]
async fn x_organization_id_cannot_switch_into_another_tenant() {
    let w = TwoTenants::new().await;
    for header in [w.org_a.to_string(), "tenant-a".to_owned()] {
        let (status, body, _) = w
            .app
            .gql_with(Some(&w.b_admin), &[("x-organization-id", &header)], "{ courses { nodes { id } } }", json!({}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(code(&body), "FORBIDDEN");
        assert_eq!(body["errors"][0]["extensions"]["reason"], "NOT_A_MEMBER");
        assert_eq!(body["data"], Value::Null);
        assert!(w.leaks(&body).is_empty());
    }
}

#[tokio::test]
async fn explain_access_on_another_tenant_says_not_found() {
    let w = TwoTenants::new().await;
    for action in Action::ALL {
        for id in [w.org_a, w.a_course, w.a_draft, w.a_user, w.a_invitation] {
            let (_, body, _) = w
                .app
                .gql(
                    Some(&w.b_admin),
                    "query($a: Action!, $id: ID) { explainAccess(action: $a, resourceId: $id) { allowed reason organizationId viewerRole } }",
                    json!({ "a": action.as_str(), "id": id.to_string() }),
                )
                .await;
            let d = &body["data"]["explainAccess"];
            assert_eq!(d["allowed"], false, "{action:?} {id}: {body}");
            assert_eq!(d["reason"], "NOT_FOUND", "{action:?} {id}: {body}");
            assert!(w.leaks(&body).is_empty());
        }
    }
}

/// One call per root field, aimed at organization A. The test below fails when a root
/// field is added to the schema without an entry here.
fn operations(w: &TwoTenants) -> Vec<(&'static str, &'static str, Value)> {
    let inv = w.a_invitation.to_string();
    let (ar, br, bm) = (w.a_role.to_string(), w.b_role.to_string(), w.b_membership.to_string());
    let (org, c, d, t, m, u) = (
        w.org_a.to_string(),
        w.a_course.to_string(),
        w.a_draft.to_string(),
        w.a_track.to_string(),
        w.a_membership.to_string(),
        w.a_user.to_string(),
    );
    vec![
        ("me", "{ me { user { id } memberships { id organization { id } } activeOrganization { id } } }", json!({})),
        (
            "organization",
            "query($o: ID) { organization(id: $o) { id name courses { nodes { id } } invitations { nodes { id } } auditLog { nodes { id } } } }",
            json!({ "o": org }),
        ),
        ("organizations", "{ organizations { id courses { nodes { id } } } }", json!({})),
        ("course", "query($c: ID!) { course(id: $c) { id tracks { id } } }", json!({ "c": d })),
        ("courses", "query($o: ID) { courses(organizationId: $o) { nodes { id } } }", json!({ "o": org })),
        ("track", "query($t: ID!) { track(id: $t) { id course { id } } }", json!({ "t": t })),
        (
            "explainAccess",
            "query($c: ID) { explainAccess(action: UPDATE_COURSE, resourceId: $c) { allowed reason organizationId } }",
            json!({ "c": c }),
        ),
        (
            "whoCan",
            "query($c: ID!) { whoCan(action: UPDATE_COURSE, resourceId: $c) { reason role membership { user { id } } } }",
            json!({ "c": c }),
        ),
        ("createOrganization", "mutation { createOrganization(input: { name: \"Mine\" }) { id name } }", json!({})),
        (
            "updateOrganization",
            "mutation($o: ID!) { updateOrganization(id: $o, input: { name: \"Hijacked\" }) { id name } }",
            json!({ "o": org }),
        ),
        (
            "addMember",
            "mutation($o: ID!, $u: ID!) { addMember(input: { organizationId: $o, userId: $u, role: ADMIN }) { id } }",
            json!({ "o": org, "u": u }),
        ),
        (
            "updateMemberRole",
            "mutation($m: ID!) { updateMemberRole(membershipId: $m, role: VIEWER) { id role } }",
            json!({ "m": m }),
        ),
        ("removeMember", "mutation($m: ID!) { removeMember(membershipId: $m) { id isActive } }", json!({ "m": m })),
        (
            "createCourse",
            "mutation($o: ID!) { createCourse(input: { organizationId: $o, title: \"Planted\", difficultyLevel: BEGINNER }) { id } }",
            json!({ "o": org }),
        ),
        (
            "updateCourse",
            "mutation($c: ID!) { updateCourse(id: $c, input: { isPublished: true }) { id } }",
            json!({ "c": d }),
        ),
        ("deleteCourse", "mutation($c: ID!) { deleteCourse(id: $c) }", json!({ "c": c })),
        (
            "createTrack",
            "mutation($c: ID!) { createTrack(input: { courseId: $c, name: \"Planted\" }) { id } }",
            json!({ "c": c }),
        ),
        (
            "updateTrack",
            "mutation($t: ID!) { updateTrack(id: $t, input: { name: \"Hijacked\" }) { id } }",
            json!({ "t": t }),
        ),
        ("deleteTrack", "mutation($t: ID!) { deleteTrack(id: $t) }", json!({ "t": t })),
        (
            "inviteMember",
            "mutation($o: ID!) { inviteMember(input: { organizationId: $o, email: \"mole@example.com\", role: ADMIN }) { id } }",
            json!({ "o": org }),
        ),
        ("revokeInvitation", "mutation($i: ID!) { revokeInvitation(id: $i) { id status } }", json!({ "i": inv })),
        (
            "acceptInvitation",
            "mutation($i: ID!) { acceptInvitation(id: $i) { id organization { id } } }",
            json!({ "i": inv }),
        ),
        (
            "createRole",
            "mutation($o: ID!) { createRole(input: { organizationId: $o, key: \"mole\", name: \"Mole\", grants: [] }) { id } }",
            json!({ "o": org }),
        ),
        (
            "updateRole",
            "mutation($r: ID!) { updateRole(id: $r, input: { grants: [{ action: READ_DRAFT_COURSE }] }) { id } }",
            json!({ "r": ar }),
        ),
        ("deleteRole", "mutation($r: ID!) { deleteRole(id: $r) }", json!({ "r": ar })),
        (
            "assignRole",
            "mutation($m: ID!, $r: ID!) { assignRole(membershipId: $m, roleId: $r) { id } }",
            json!({ "m": m, "r": br }),
        ),
        (
            "assignRole",
            "mutation($m: ID!, $r: ID!) { assignRole(membershipId: $m, roleId: $r) { id roles { id } } }",
            json!({ "m": bm, "r": ar }),
        ),
        (
            "unassignRole",
            "mutation($m: ID!, $r: ID!) { unassignRole(membershipId: $m, roleId: $r) { id } }",
            json!({ "m": m, "r": ar }),
        ),
        (
            "reorderTracks",
            "mutation($c: ID!, $t: ID!) { reorderTracks(courseId: $c, trackIds: [$t]) { id } }",
            json!({ "c": c, "t": t }),
        ),
    ]
}

fn root_fields(ty: &str) -> Vec<String> {
    let doc = async_graphql::parser::parse_schema(coursegraph::graphql::schema::sdl()).unwrap();
    doc.definitions
        .into_iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) if t.node.name.node == ty => match t.node.kind {
                TypeKind::Object(o) => {
                    Some(o.fields.into_iter().map(|f| f.node.name.node.to_string()).collect::<Vec<_>>())
                }
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test]
async fn every_operation_as_tenant_b_against_tenant_a_ids_leaks_and_changes_nothing() {
    let w = TwoTenants::new().await;
    let ops = operations(&w);
    let covered: Vec<&str> = ops.iter().map(|(f, _, _)| *f).collect();
    for f in root_fields("Query").into_iter().chain(root_fields("Mutation")) {
        assert!(covered.contains(&f.as_str()), "root field `{f}` has no cross-tenant probe");
    }
    let before = w.a_rows().await;
    for token in [&w.b_admin, &w.b_member] {
        for (field, q, vars) in &ops {
            let (status, body, _) = w.app.gql(Some(token), q, vars.clone()).await;
            assert!(status == 200, "{field}: {status} {body}");
            let leaked = w.leaks(&body);
            assert!(leaked.is_empty(), "{field} leaked A's ids {leaked:?}: {body}");
        }
    }
    assert_eq!(before, w.a_rows().await, "tenant A changed");
}
