//! Field-level denial: a denied nullable field is null with a FORBIDDEN error at its own
//! path, carrying the full explanation, while its siblings and parent are delivered.

use serde_json::{Value, json};

use crate::{fixtures, helpers::*};

struct Org {
    app: TestApp,
    admin: String,
    instructor: String,
    member: String,
}

async fn org_with_courses(n: usize) -> Org {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let instructor = app.token("ivo", Some("acme"), Some("instructor"));
    let member = app.token("meg", Some("acme"), Some("member"));
    let q = "{ me { user { id } activeOrganization { id } } }";
    let ivo = app.data(&instructor, q, json!({})).await;
    app.data(&member, q, json!({})).await;
    app.data(&admin, q, json!({})).await;
    let org = uuid::Uuid::parse_str(ivo["me"]["activeOrganization"]["id"].as_str().unwrap()).unwrap();
    let ivo_id = uuid::Uuid::parse_str(ivo["me"]["user"]["id"].as_str().unwrap()).unwrap();
    for i in 0..n {
        let c = fixtures::course(app.conn(), org, Some(ivo_id), &format!("Course {i:02}"), true).await;
        fixtures::track(app.conn(), &c, "T", 0).await;
    }
    Org { app, admin, instructor, member }
}

fn assert_forbidden_at(err: &Value, path: Value, action: &str, reason: &str, viewer_role: &str, required: Value) {
    assert_eq!(err["path"], path, "{err}");
    let x = &err["extensions"];
    assert_eq!(x["code"], "FORBIDDEN", "{err}");
    assert_eq!(x["reason"], reason, "{err}");
    assert_eq!(x["action"], action, "{err}");
    assert_eq!(x["viewerRole"], viewer_role, "{err}");
    assert_eq!(x["requiredRoles"], required, "{err}");
    assert!(x["policy"].as_str().is_some_and(|p| !p.is_empty()), "{err}");
    assert!(err["message"].as_str().unwrap().contains(action), "{err}");
}

#[tokio::test]
async fn storage_bucket_is_null_for_non_admins_and_the_rest_survives() {
    let o = org_with_courses(1).await;
    let (status, body, _) =
        o.app.gql(Some(&o.instructor), "{ organization { id name storageBucket slug } }", json!({})).await;
    assert_eq!(status, 200);
    let org = &body["data"]["organization"];
    assert_eq!(org["name"], "acme");
    assert_eq!(org["slug"], "acme");
    assert!(org.as_object().unwrap().contains_key("storageBucket"), "the key is present, as null: {body}");
    assert_eq!(org["storageBucket"], Value::Null);
    assert_forbidden_at(
        only_error(&body),
        json!(["organization", "storageBucket"]),
        "READ_ORGANIZATION_SETTINGS",
        "INSUFFICIENT_ROLE",
        "INSTRUCTOR",
        json!(["ADMIN"]),
    );
    let d = o.app.data(&o.admin, "{ organization { storageBucket } }", json!({})).await;
    assert_eq!(d["organization"]["storageBucket"], "org-acme");
}

#[tokio::test]
async fn members_is_null_for_members_and_viewers() {
    let o = org_with_courses(1).await;
    let (_, body, _) = o
        .app
        .gql(Some(&o.member), "{ organization { name members { totalCount } courses { totalCount } } }", json!({}))
        .await;
    assert_eq!(body["data"]["organization"]["name"], "acme");
    assert_eq!(body["data"]["organization"]["members"], Value::Null);
    assert_eq!(body["data"]["organization"]["courses"]["totalCount"], 1);
    assert_forbidden_at(
        only_error(&body),
        json!(["organization", "members"]),
        "READ_MEMBERS",
        "INSUFFICIENT_ROLE",
        "MEMBER",
        json!(["ADMIN", "INSTRUCTOR"]),
    );
}

#[tokio::test]
async fn metadata_is_denied_per_course_inside_a_list() {
    let o = org_with_courses(3).await;
    let (_, body, _) = o
        .app
        .gql(
            Some(&o.member),
            "{ organization { courses { edges { cursor node { title metadata price } } } } }",
            json!({}),
        )
        .await;
    let edges = body["data"]["organization"]["courses"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    for (i, e) in edges.iter().enumerate() {
        assert_eq!(e["node"]["metadata"], Value::Null);
        assert_eq!(e["node"]["price"], "49.90");
        assert!(e["cursor"].is_string());
        let err = errors.iter().find(|x| x["path"][3] == json!(i)).expect("an error at this index");
        assert_forbidden_at(
            err,
            json!(["organization", "courses", "edges", i, "node", "metadata"]),
            "READ_COURSE_METADATA",
            "INSUFFICIENT_ROLE",
            "MEMBER",
            json!(["ADMIN", "INSTRUCTOR"]),
        );
    }
    // The course's own instructor reads it; the admin too.
    for t in [&o.instructor, &o.admin] {
        let d = o.app.data(t, "{ organization { courses { nodes { metadata } } } }", json!({})).await;
        assert_eq!(d["organization"]["courses"]["nodes"][0]["metadata"]["secret"], "metadata");
    }
}

#[tokio::test]
async fn private_user_fields_for_self_and_admins_only() {
    let o = org_with_courses(1).await;
    let q = "{ organization { courses { nodes { instructor { id name email lastLoginAt avatarUrl } } } } }";
    let (_, body, _) = o.app.gql(Some(&o.member), q, json!({})).await;
    let u = &body["data"]["organization"]["courses"]["nodes"][0]["instructor"];
    assert_eq!(u["name"], "User ivo");
    assert_eq!(u["email"], Value::Null);
    assert_eq!(u["lastLoginAt"], Value::Null);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    for (e, field) in errors.iter().zip(["email", "lastLoginAt"]) {
        assert_forbidden_at(
            e,
            json!(["organization", "courses", "nodes", 0, "instructor", field]),
            "READ_USER_PRIVATE",
            "NOT_SELF",
            "MEMBER",
            json!(["ADMIN"]),
        );
    }
    // Self, and an ADMIN of a shared organization, read them.
    for t in [&o.instructor, &o.admin] {
        let d = o.app.data(t, q, json!({})).await;
        let u = &d["organization"]["courses"]["nodes"][0]["instructor"];
        assert_eq!(u["email"], "ivo@example.com");
        assert!(u["lastLoginAt"].is_string());
    }
    let d = o.app.data(&o.member, "{ me { user { email lastLoginAt } } }", json!({})).await;
    assert_eq!(d["me"]["user"]["email"], "meg@example.com");
}

#[tokio::test]
async fn a_denied_mutation_explains_itself_and_returns_no_data() {
    let o = org_with_courses(1).await;
    let (status, body, _) = o
        .app
        .gql(
            Some(&o.member),
            "mutation { createCourse(input: { title: \"Nope\", difficultyLevel: BEGINNER }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], Value::Null);
    assert_forbidden_at(
        only_error(&body),
        json!(["createCourse"]),
        "CREATE_COURSE",
        "INSUFFICIENT_ROLE",
        "MEMBER",
        json!(["ADMIN", "INSTRUCTOR"]),
    );
    assert_eq!(o.app.count("courses", "").await, 1);
}
