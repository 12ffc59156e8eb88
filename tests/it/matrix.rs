//! The permission matrix, end to end: every Action × every role × own organization /
//! other organization / own course / someone else's course. Each cell runs the real
//! guarded operation and checks the outcome, the error code and reason, that
//! `explainAccess` and `viewerCan` agree with it, and that a refused write changed nothing.

use coursegraph::authz::{Action, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{fixtures, helpers::*};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Target {
    /// The viewer's organization (or a course there that someone else teaches).
    OwnOrg,
    /// A course of the viewer's organization that the viewer teaches.
    OwnCourse,
    /// Another organization (or a course there).
    OtherOrg,
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    allowed: bool,
    code: Option<String>,
    reason: Option<String>,
}

fn yes() -> Outcome {
    Outcome { allowed: true, code: None, reason: None }
}

fn no(code: &str, reason: &str) -> Outcome {
    Outcome { allowed: false, code: Some(code.into()), reason: Some(reason.into()) }
}

/// The documented matrix, written out by hand, with the error each refusal must carry.
fn expected(role: Role, action: Action, target: Target) -> Outcome {
    use Action::*;
    use Role::*;
    if target == Target::OtherOrg {
        return no("NOT_FOUND", "NOT_FOUND");
    }
    let own = target == Target::OwnCourse;
    let allowed = match action {
        ReadOrganization | ReadCourse => true,
        ReadOrganizationSettings | UpdateOrganization | ManageMembers | ManageRoles | DeleteCourse | ReadAuditLog => {
            role == Admin
        }
        ReadMembers | CreateCourse | ReadDraftCourse => matches!(role, Admin | Instructor),
        ReadCourseMetadata | UpdateCourse | ManageTracks => role == Admin || (role == Instructor && own),
        ReadUserPrivate => role == Admin || own,
        AcceptInvitation => unreachable!("decided by the invitation, not the role: tests/it/lifecycle.rs"),
    };
    if allowed {
        return yes();
    }
    match action {
        // A draft below INSTRUCTOR is invisible: indistinguishable from missing.
        ReadDraftCourse => no("NOT_FOUND", "NOT_FOUND"),
        ReadCourseMetadata | UpdateCourse | ManageTracks if role == Instructor => no("FORBIDDEN", "NOT_OWNER"),
        ReadUserPrivate => no("FORBIDDEN", "NOT_SELF"),
        _ => no("FORBIDDEN", "INSUFFICIENT_ROLE"),
    }
}

/// The expected reason when allowed, for `explainAccess`.
fn granted_reason(role: Role, action: Action, target: Target) -> &'static str {
    match action {
        Action::ReadUserPrivate if target == Target::OwnCourse => "GRANTED_AS_SELF",
        Action::ReadCourseMetadata | Action::UpdateCourse | Action::ManageTracks
            if role == Role::Instructor && target == Target::OwnCourse =>
        {
            "GRANTED_AS_OWNER"
        }
        _ => "GRANTED_BY_ROLE",
    }
}

struct World {
    app: TestApp,
    token: String,
    viewer: Uuid,
    org_a: Uuid,
    org_b: Uuid,
    teacher_a: Uuid,
    teacher_b: Uuid,
    newcomer: Uuid,
}

impl World {
    async fn new(role: Role) -> Self {
        let app = TestApp::spawn().await;
        let id_of = |d: &Value| Uuid::parse_str(d["me"]["user"]["id"].as_str().unwrap()).unwrap();
        const ME: &str = "{ me { user { id } activeOrganization { id } } }";
        // Org A has an admin and a teacher besides the viewer; org B the same.
        let a = app.data(&app.token("admin-a", Some("org-a"), Some("admin")), ME, json!({})).await;
        let org_a = Uuid::parse_str(a["me"]["activeOrganization"]["id"].as_str().unwrap()).unwrap();
        let teacher_a =
            id_of(&app.data(&app.token("teacher-a", Some("org-a"), Some("instructor")), ME, json!({})).await);
        let b = app.data(&app.token("admin-b", Some("org-b"), Some("admin")), ME, json!({})).await;
        let org_b = Uuid::parse_str(b["me"]["activeOrganization"]["id"].as_str().unwrap()).unwrap();
        let teacher_b =
            id_of(&app.data(&app.token("teacher-b", Some("org-b"), Some("instructor")), ME, json!({})).await);
        let newcomer = id_of(&app.data(&app.token("newcomer", None, None), ME, json!({})).await);
        let token = app.token(&format!("viewer-{}", role.as_str()), Some("org-a"), Some(role.as_str()));
        let viewer = id_of(&app.data(&token, ME, json!({})).await);
        Self { app, token, viewer, org_a, org_b, teacher_a, teacher_b, newcomer }
    }

    fn org(&self, t: Target) -> Uuid {
        if t == Target::OtherOrg { self.org_b } else { self.org_a }
    }

    /// A fresh course for the target: taught by the viewer for OwnCourse.
    async fn course(&self, t: Target, published: bool) -> Uuid {
        let (org, teacher) = match t {
            Target::OwnOrg => (self.org_a, self.teacher_a),
            Target::OwnCourse => (self.org_a, self.viewer),
            Target::OtherOrg => (self.org_b, self.teacher_b),
        };
        let c = fixtures::course(self.app.conn(), org, Some(teacher), &format!("Course {}", Uuid::now_v7()), published)
            .await;
        fixtures::track(self.app.conn(), &c, "First", 0).await;
        c.id
    }

    async fn run(&self, q: &str, vars: Value) -> Value {
        let (status, body, _) = self.app.gql(Some(&self.token), q, vars).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Row counts of every table, and a fingerprint of the rows a write may touch.
    async fn snapshot(&self) -> Vec<i64> {
        let mut v = Vec::new();
        for t in ["users", "organizations", "memberships", "courses", "tracks"] {
            v.push(self.app.count(t, "").await);
        }
        for f in ["title LIKE 'Changed%'", "is_published = true"] {
            v.push(self.app.count("courses", f).await);
        }
        v.push(self.app.count("organizations", "name = 'Renamed'").await);
        v
    }
}

fn first_error(body: &Value) -> (Option<String>, Option<String>) {
    let e = &body["errors"][0];
    (e["extensions"]["code"].as_str().map(str::to_owned), e["extensions"]["reason"].as_str().map(str::to_owned))
}

fn outcome(allowed: bool, body: &Value) -> Outcome {
    if allowed {
        assert!(body.get("errors").is_none(), "allowed, yet errors: {body}");
        return yes();
    }
    let (code, reason) = first_error(body);
    // NOT_FOUND carries no reason in the error; its explanation is NOT_FOUND.
    let reason = if code.as_deref() == Some("NOT_FOUND") { Some("NOT_FOUND".into()) } else { reason };
    Outcome { allowed: false, code, reason }
}

/// Creates what the cell needs: a fresh course for course-level actions. Returns the
/// course (if any) and the id `explainAccess` is asked about.
async fn setup(w: &World, action: Action, target: Target) -> (Option<Uuid>, Uuid) {
    use Action::*;
    match action {
        ReadCourse | ReadDraftCourse | ReadCourseMetadata | UpdateCourse | DeleteCourse | ManageTracks => {
            let c = w.course(target, action != ReadDraftCourse).await;
            (Some(c), c)
        }
        ReadUserPrivate => {
            let c = w.course(target, true).await;
            let instructor = match target {
                Target::OwnOrg => w.teacher_a,
                Target::OwnCourse => w.viewer,
                Target::OtherOrg => w.teacher_b,
            };
            (Some(c), instructor)
        }
        _ => (None, w.org(target)),
    }
}

/// Runs the guarded operation of `action` on `target`; returns the outcome and the
/// `viewerCan` field that answers for the same action.
async fn perform(w: &World, action: Action, target: Target, course: Option<Uuid>) -> (Outcome, Option<&'static str>) {
    use Action::*;
    let org = w.org(target).to_string();
    let c = course.unwrap_or_default();
    match action {
        ReadOrganization => {
            let b = w.run("query($id: ID!) { organization(id: $id) { id name } }", json!({ "id": org })).await;
            (outcome(b["data"]["organization"]["id"] == json!(org), &b), None)
        }
        ReadOrganizationSettings => {
            let b = w.run("query($id: ID!) { organization(id: $id) { id storageBucket } }", json!({ "id": org })).await;
            (outcome(b["data"]["organization"]["storageBucket"].is_string(), &b), Some("readSettings"))
        }
        ReadMembers => {
            let b = w
                .run("query($id: ID!) { organization(id: $id) { id members { totalCount } } }", json!({ "id": org }))
                .await;
            (outcome(b["data"]["organization"]["members"]["totalCount"].is_number(), &b), Some("readMembers"))
        }
        UpdateOrganization => {
            let b = w
                .run(
                    "mutation($id: ID!) { updateOrganization(id: $id, input: { name: \"Renamed\" }) { name } }",
                    json!({ "id": org }),
                )
                .await;
            (outcome(b["data"]["updateOrganization"]["name"] == "Renamed", &b), Some("update"))
        }
        ManageMembers => {
            let b = w
                .run(
                    "mutation($o: ID!, $u: ID!) { addMember(input: { organizationId: $o, userId: $u, role: VIEWER }) { id isActive } }",
                    json!({ "o": org, "u": w.newcomer.to_string() }),
                )
                .await;
            (outcome(b["data"]["addMember"]["isActive"] == true, &b), Some("manageMembers"))
        }
        ManageRoles => {
            let key = format!("r{}", Uuid::now_v7().simple());
            let b = w
                .run(
                    "mutation($o: ID!, $k: String!) { createRole(input: { organizationId: $o, key: $k, name: \"R\", grants: [{ action: READ_COURSE }] }) { id } }",
                    json!({ "o": org, "k": key }),
                )
                .await;
            (outcome(b["data"]["createRole"]["id"].is_string(), &b), Some("manageRoles"))
        }
        CreateCourse => {
            let b = w
                .run(
                    "mutation($o: ID!) { createCourse(input: { organizationId: $o, title: \"New\", difficultyLevel: BEGINNER }) { id } }",
                    json!({ "o": org }),
                )
                .await;
            (outcome(b["data"]["createCourse"]["id"].is_string(), &b), Some("createCourse"))
        }
        ReadCourse | ReadDraftCourse => {
            let b = w.run("query($id: ID!) { course(id: $id) { id title } }", json!({ "id": c.to_string() })).await;
            (outcome(b["data"]["course"]["id"].is_string(), &b), None)
        }
        ReadCourseMetadata => {
            let b = w.run("query($id: ID!) { course(id: $id) { id metadata } }", json!({ "id": c.to_string() })).await;
            (outcome(b["data"]["course"]["metadata"].is_object(), &b), Some("readMetadata"))
        }
        UpdateCourse => {
            let b = w
                .run(
                    "mutation($id: ID!) { updateCourse(id: $id, input: { title: \"Changed\" }) { title } }",
                    json!({ "id": c.to_string() }),
                )
                .await;
            (outcome(b["data"]["updateCourse"]["title"] == "Changed", &b), Some("update"))
        }
        DeleteCourse => {
            let b = w.run("mutation($id: ID!) { deleteCourse(id: $id) }", json!({ "id": c.to_string() })).await;
            (outcome(b["data"]["deleteCourse"] == json!(c.to_string()), &b), Some("delete"))
        }
        ManageTracks => {
            let b = w
                .run(
                    "mutation($id: ID!) { createTrack(input: { courseId: $id, name: \"Extra\" }) { id position } }",
                    json!({ "id": c.to_string() }),
                )
                .await;
            (outcome(b["data"]["createTrack"]["position"] == 1, &b), Some("manageTracks"))
        }
        ReadUserPrivate => {
            let b = w
                .run("query($id: ID!) { course(id: $id) { instructor { id email } } }", json!({ "id": c.to_string() }))
                .await;
            (outcome(b["data"]["course"]["instructor"]["email"].is_string(), &b), None)
        }
        ReadAuditLog => {
            let b = w
                .run("query($id: ID!) { organization(id: $id) { id auditLog { totalCount } } }", json!({ "id": org }))
                .await;
            (outcome(b["data"]["organization"]["auditLog"]["totalCount"].is_number(), &b), Some("readAuditLog"))
        }
        AcceptInvitation => unreachable!("not in the role matrix"),
    }
}

async fn check_role(role: Role) {
    let w = World::new(role).await;
    for action in Action::ALL.into_iter().filter(|a| *a != Action::AcceptInvitation) {
        let course_level = matches!(
            action,
            Action::ReadCourse
                | Action::ReadDraftCourse
                | Action::ReadCourseMetadata
                | Action::UpdateCourse
                | Action::DeleteCourse
                | Action::ManageTracks
                | Action::ReadUserPrivate
        );
        let targets: &[Target] = if course_level {
            &[Target::OwnOrg, Target::OwnCourse, Target::OtherOrg]
        } else {
            &[Target::OwnOrg, Target::OtherOrg]
        };
        for &target in targets {
            let cell = format!("{role:?} × {action:?} × {target:?}");
            let want = expected(role, action, target);
            let (course, resource) = setup(&w, action, target).await;

            // explainAccess, asked first, answers what the operation then does.
            let b = w
                .run(
                    "query($a: Action!, $id: ID) { explainAccess(action: $a, resourceId: $id) { allowed reason action requiredRoles viewerRole } }",
                    json!({ "a": action_name(action), "id": resource.to_string() }),
                )
                .await;
            let d = b["data"]["explainAccess"].clone();

            let before = w.snapshot().await;
            let (got, can_field) = perform(&w, action, target, course).await;
            assert_eq!(got, want, "{cell}");
            assert_eq!(d["allowed"], json!(want.allowed), "{cell}: explainAccess disagrees: {d}");
            let reason =
                if want.allowed { granted_reason(role, action, target) } else { want.reason.as_deref().unwrap() };
            assert_eq!(d["reason"], json!(reason), "{cell}: explainAccess reason: {d}");
            let is_write = matches!(
                action,
                Action::UpdateOrganization
                    | Action::ManageMembers
                    | Action::CreateCourse
                    | Action::UpdateCourse
                    | Action::DeleteCourse
                    | Action::ManageTracks
            );
            if is_write && !got.allowed {
                assert_eq!(before, w.snapshot().await, "{cell}: a refused write changed rows");
            }

            // viewerCan answers the same, wherever the resource is visible.
            if let Some(field) = can_field
                && target != Target::OtherOrg
            {
                let b = if matches!(
                    action,
                    Action::UpdateCourse | Action::DeleteCourse | Action::ManageTracks | Action::ReadCourseMetadata
                ) {
                    let c = w.course(target, true).await;
                    w.run(
                        &format!("query($id: ID!) {{ course(id: $id) {{ viewerCan {{ {field} }} }} }}"),
                        json!({ "id": c.to_string() }),
                    )
                    .await["data"]["course"]["viewerCan"][field]
                        .clone()
                } else {
                    w.run(
                        &format!("query($id: ID!) {{ organization(id: $id) {{ viewerCan {{ {field} }} }} }}"),
                        json!({ "id": w.org_a.to_string() }),
                    )
                    .await["data"]["organization"]["viewerCan"][field]
                        .clone()
                };
                assert_eq!(b, json!(want.allowed), "{cell}: viewerCan.{field} disagrees");
            }
        }
    }
}

fn action_name(a: Action) -> &'static str {
    a.as_str()
}

#[tokio::test]
async fn matrix_admin() {
    check_role(Role::Admin).await;
}

#[tokio::test]
async fn matrix_instructor() {
    check_role(Role::Instructor).await;
}

#[tokio::test]
async fn matrix_member() {
    check_role(Role::Member).await;
}

#[tokio::test]
async fn matrix_viewer() {
    check_role(Role::Viewer).await;
}
