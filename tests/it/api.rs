//! The course/track API: input validation, invariants, pagination, ordering, and the
//! statement budget of a nested read.

use std::collections::HashSet;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{fixtures, helpers::*};

struct Acme {
    app: TestApp,
    admin: String,
    instructor: String,
    member: String,
    org: Uuid,
    admin_id: Uuid,
    instructor_id: Uuid,
    member_id: Uuid,
}

async fn acme() -> Acme {
    let app = TestApp::spawn().await;
    let q = "{ me { user { id } activeOrganization { id } } }";
    let id = |d: &Value, k: &str| {
        Uuid::parse_str(
            if k == "org" { &d["me"]["activeOrganization"]["id"] } else { &d["me"]["user"]["id"] }.as_str().unwrap(),
        )
        .unwrap()
    };
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let instructor = app.token("ivo", Some("acme"), Some("instructor"));
    let member = app.token("meg", Some("acme"), Some("member"));
    let a = app.data(&admin, q, json!({})).await;
    let i = app.data(&instructor, q, json!({})).await;
    let m = app.data(&member, q, json!({})).await;
    Acme {
        org: id(&a, "org"),
        admin_id: id(&a, "user"),
        instructor_id: id(&i, "user"),
        member_id: id(&m, "user"),
        app,
        admin,
        instructor,
        member,
    }
}

/// Asserts BAD_USER_INPUT naming `field`.
fn bad_input(body: &Value, field: &str) {
    let e = only_error(body);
    assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(e["extensions"]["field"], field, "{body}");
}

async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut v = Vec::new();
    for t in ["users", "organizations", "memberships", "courses", "tracks"] {
        v.push(app.count(t, "").await);
    }
    v
}

const CREATE: &str =
    "mutation($i: CreateCourseInput!) { createCourse(input: $i) { id title price isPublished instructor { id } } }";

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_writes_nothing() {
    let a = acme().await;
    let before = snapshot(&a.app).await;
    let course = |extra: Value| {
        let mut i = json!({ "title": "Ok", "difficultyLevel": "BEGINNER" });
        for (k, v) in extra.as_object().unwrap() {
            i[k] = v.clone();
        }
        json!({ "i": i })
    };
    let long = "x".repeat(501);
    let cases: Vec<(Value, &str)> = vec![
        (course(json!({ "title": "   " })), "input.title"),
        (course(json!({ "title": long })), "input.title"),
        (course(json!({ "description": "d".repeat(10_001) })), "input.description"),
        (course(json!({ "price": "-1" })), "input.price"),
        (course(json!({ "price": "1.234" })), "input.price"),
        (course(json!({ "price": "100000000" })), "input.price"),
        (course(json!({ "price": "twelve" })), "input.price"),
        (course(json!({ "price": -0.5 })), "input.price"),
        (course(json!({ "estimatedDuration": -1.0 })), "input.estimatedDuration"),
        (course(json!({ "durationUnit": "u".repeat(33) })), "input.durationUnit"),
        (course(json!({ "organizationId": "not-a-uuid" })), "input.organizationId"),
        (course(json!({ "instructorId": "12345" })), "input.instructorId"),
    ];
    for (vars, field) in cases {
        let (status, body, _) = a.app.gql(Some(&a.admin), CREATE, vars.clone()).await;
        assert_eq!(status, 200, "{vars}");
        bad_input(&body, field);
        assert_eq!(body["data"], Value::Null);
    }
    let other: Vec<(&str, Value, &str)> = vec![
        ("query($id: ID!) { course(id: $id) { id } }", json!({ "id": "nope" }), "id"),
        ("query { courses(first: 0) { totalCount } }", json!({}), "first"),
        ("query { courses(first: 101) { totalCount } }", json!({}), "first"),
        ("query { courses(after: \"garbage\") { totalCount } }", json!({}), "after"),
        ("query { organization { courses(first: 1000) { totalCount } } }", json!({}), "first"),
        ("mutation { createOrganization(input: { name: \"  \" }) { id } }", json!({}), "input.name"),
        ("mutation { createOrganization(input: { name: \"X\", slug: \"Bad Slug\" }) { id } }", json!({}), "input.slug"),
        (
            "mutation { createOrganization(input: { name: \"X\", slug: \"trailing-\" }) { id } }",
            json!({}),
            "input.slug",
        ),
        (
            "mutation($o: ID!) { updateOrganization(id: $o, input: { name: null }) { id } }",
            json!({ "o": a.org.to_string() }),
            "input.name",
        ),
        ("mutation { reorderTracks(courseId: \"x\", trackIds: []) { id } }", json!({}), "courseId"),
        ("query { explainAccess(action: READ_COURSE, resourceId: \"x\") { allowed } }", json!({}), "resourceId"),
    ];
    for (q, vars, field) in other {
        let (status, body, _) = a.app.gql(Some(&a.admin), q, vars).await;
        assert_eq!(status, 200, "{q}");
        bad_input(&body, field);
    }
    assert_eq!(before, snapshot(&a.app).await, "a refused mutation wrote something");
    // And the valid forms work: trimmed, 2-decimal prices, numbers accepted.
    let d = a.app.data(&a.admin, CREATE, course(json!({ "title": "  Trim me  ", "price": 12.5 }))).await;
    assert_eq!(d["createCourse"]["title"], "Trim me");
    assert_eq!(d["createCourse"]["price"], "12.50");
    assert_eq!(d["createCourse"]["isPublished"], false, "new courses are drafts");
    assert_eq!(d["createCourse"]["instructor"]["id"], json!(a.admin_id.to_string()));
    let d = a.app.data(&a.admin, CREATE, course(json!({ "title": "é".repeat(500), "price": "99999999.99" }))).await;
    assert_eq!(d["createCourse"]["price"], "99999999.99");
}

#[tokio::test]
async fn instructor_assignment_rules() {
    let a = acme().await;
    let with = |instr: Uuid| json!({ "i": { "title": "T", "difficultyLevel": "BEGINNER", "instructorId": instr.to_string() } });
    // An ADMIN picks an instructor.
    let d = a.app.data(&a.admin, CREATE, with(a.instructor_id)).await;
    assert_eq!(d["createCourse"]["instructor"]["id"], json!(a.instructor_id.to_string()));
    // ... who must be an active ADMIN or INSTRUCTOR of the organization.
    let (_, body, _) = a.app.gql(Some(&a.admin), CREATE, with(a.member_id)).await;
    bad_input(&body, "input.instructorId");
    let outsider = a
        .app
        .data(&a.app.token("out", Some("elsewhere"), Some("instructor")), "{ me { user { id } } }", json!({}))
        .await;
    let outsider = Uuid::parse_str(outsider["me"]["user"]["id"].as_str().unwrap()).unwrap();
    let (_, body, _) = a.app.gql(Some(&a.admin), CREATE, with(outsider)).await;
    bad_input(&body, "input.instructorId");
    // An INSTRUCTOR creates for themself only.
    let (_, body, _) = a.app.gql(Some(&a.instructor), CREATE, with(a.admin_id)).await;
    let e = only_error(&body);
    assert_eq!(e["extensions"]["code"], "FORBIDDEN");
    assert_eq!(e["extensions"]["policy"], "course.instructor.assign:admin");
    let d = a.app.data(&a.instructor, CREATE, json!({ "i": { "title": "Mine", "difficultyLevel": "ADVANCED" } })).await;
    assert_eq!(d["createCourse"]["instructor"]["id"], json!(a.instructor_id.to_string()));
    // The owning instructor may edit, but not hand the course to someone else.
    let id = d["createCourse"]["id"].as_str().unwrap();
    let q =
        "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { title instructor { id } } }";
    let d = a
        .app
        .data(
            &a.instructor,
            q,
            json!({ "id": id, "i": { "title": "Renamed", "instructorId": a.instructor_id.to_string() } }),
        )
        .await;
    assert_eq!(d["updateCourse"]["title"], "Renamed");
    let (_, body, _) =
        a.app.gql(Some(&a.instructor), q, json!({ "id": id, "i": { "instructorId": a.admin_id.to_string() } })).await;
    assert_eq!(only_error(&body)["extensions"]["code"], "FORBIDDEN");
    let (_, body, _) = a.app.gql(Some(&a.instructor), q, json!({ "id": id, "i": { "instructorId": null } })).await;
    assert_eq!(only_error(&body)["extensions"]["code"], "FORBIDDEN");
    let (_, body, _) = a.app.gql(Some(&a.instructor), q, json!({ "id": id, "i": { "title": null } })).await;
    bad_input(&body, "input.title");
    // The admin unassigns.
    let d = a.app.data(&a.admin, q, json!({ "id": id, "i": { "instructorId": null } })).await;
    assert_eq!(d["updateCourse"]["instructor"], Value::Null);
}

#[tokio::test]
async fn course_organization_comes_from_the_active_org_or_a_checked_argument() {
    let a = acme().await;
    // Someone in two organizations, with no active one.
    let t = a.app.token("duo", Some("first"), Some("admin"));
    a.app.data(&t, "{ me { activeRole } }", json!({})).await;
    a.app.data(&a.app.token("duo", Some("second"), Some("admin")), "{ me { activeRole } }", json!({})).await;
    let duo = a.app.token("duo", None, None);
    let (_, body, _) =
        a.app.gql(Some(&duo), CREATE, json!({ "i": { "title": "T", "difficultyLevel": "BEGINNER" } })).await;
    bad_input(&body, "input.organizationId");
    let (_, body, _) = a
        .app
        .gql(
            Some(&duo),
            CREATE,
            json!({ "i": { "title": "T", "difficultyLevel": "BEGINNER", "organizationId": a.org.to_string() } }),
        )
        .await;
    assert_eq!(only_error(&body)["extensions"]["code"], "NOT_FOUND", "acme is not theirs: {body}");
    let (_, body, _) = a
        .app
        .gql_with(
            Some(&duo),
            &[("x-organization-id", "second")],
            CREATE,
            json!({ "i": { "title": "T", "difficultyLevel": "BEGINNER" } }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let d = a.app.data(&duo, "{ organizations { slug courses { totalCount } } }", json!({})).await;
    let counts: Vec<_> = d["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["slug"].clone(), o["courses"]["totalCount"].clone()))
        .collect();
    assert!(counts.contains(&(json!("second"), json!(1))), "{counts:?}");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_removed() {
    let a = acme().await;
    let members =
        a.app.data(&a.admin, "{ organization { members { nodes { id role user { id } } } } }", json!({})).await;
    let mid = |uid: Uuid| {
        members["organization"]["members"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["user"]["id"] == json!(uid.to_string()))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (admin_m, instr_m) = (mid(a.admin_id), mid(a.instructor_id));
    let demote = "mutation($m: ID!, $r: OrgRole!) { updateMemberRole(membershipId: $m, role: $r) { role } }";
    let remove = "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }";
    let (_, body, _) = a.app.gql(Some(&a.admin), demote, json!({ "m": admin_m, "r": "MEMBER" })).await;
    assert_eq!(only_error(&body)["extensions"]["code"], "CONFLICT");
    let (_, body, _) = a.app.gql(Some(&a.admin), remove, json!({ "m": admin_m })).await;
    assert_eq!(only_error(&body)["extensions"]["code"], "CONFLICT");
    assert_eq!(a.app.count("memberships", "role = 'admin' AND is_active = true").await, 1);

    // Promote the instructor; now either admin may step down — but not both at once.
    a.app.data(&a.admin, demote, json!({ "m": instr_m, "r": "ADMIN" })).await;
    let (t1, t2) = (a.admin.clone(), a.instructor.clone());
    let (c1, c2, url) = (a.app.client.clone(), a.app.client.clone(), a.app.url("/graphql"));
    let (u1, u2) = (url.clone(), url);
    let body = |m: String| json!({ "query": demote, "variables": { "m": m, "r": "MEMBER" } });
    // Each demotes the other, concurrently.
    let (b1, b2) = (body(instr_m.clone()), body(admin_m.clone()));
    let (r1, r2) = tokio::join!(
        async move { c1.post(u1).bearer_auth(t1).json(&b1).send().await.unwrap().json::<Value>().await.unwrap() },
        async move { c2.post(u2).bearer_auth(t2).json(&b2).send().await.unwrap().json::<Value>().await.unwrap() },
    );
    let ok = [&r1, &r2].iter().filter(|r| r.get("errors").is_none()).count();
    assert!(ok <= 1, "both succeeded: {r1} {r2}");
    assert_eq!(a.app.count("memberships", "role = 'admin' AND is_active = true").await, 1, "{r1} {r2}");
}

#[tokio::test]
async fn removing_a_member_deactivates_and_unassigns_their_courses() {
    let a = acme().await;
    let c = fixtures::course(a.app.conn(), a.org, Some(a.instructor_id), "Taught", true).await;
    let members = a.app.data(&a.admin, "{ organization { members { nodes { id user { id } } } } }", json!({})).await;
    let instr_m = members["organization"]["members"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["user"]["id"] == json!(a.instructor_id.to_string()))
        .unwrap()["id"]
        .clone();
    let d = a
        .app
        .data(
            &a.admin,
            "mutation($m: ID!) { removeMember(membershipId: $m) { isActive role } }",
            json!({ "m": instr_m }),
        )
        .await;
    assert_eq!(d["removeMember"]["isActive"], false);
    assert_eq!(a.app.count("memberships", "").await, 3, "nothing deleted");
    let d = a
        .app
        .data(
            &a.admin,
            "{ organization { members { totalCount } all: members(includeInactive: true) { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (d["organization"]["members"]["totalCount"].clone(), d["organization"]["all"]["totalCount"].clone()),
        (json!(2), json!(3))
    );
    // The course no longer names a teacher who cannot teach.
    let d = a
        .app
        .data(&a.admin, "query($c: ID!) { course(id: $c) { instructor { id } } }", json!({ "c": c.id.to_string() }))
        .await;
    assert_eq!(d["course"]["instructor"], Value::Null);
    // The removed member lost access at once.
    let (_, body, _) = a
        .app
        .gql(Some(&a.instructor), "query($c: ID!) { course(id: $c) { id } }", json!({ "c": c.id.to_string() }))
        .await;
    assert_eq!(only_error(&body)["extensions"]["code"], "NOT_FOUND");
    // Adding them back re-activates the same row, with the new role.
    let d = a
        .app
        .data(
            &a.admin,
            "mutation($u: ID!) { addMember(input: { userId: $u, role: VIEWER }) { id isActive role } }",
            json!({ "u": a.instructor_id.to_string() }),
        )
        .await;
    assert_eq!(d["addMember"]["id"], instr_m);
    assert_eq!(d["addMember"]["role"], "VIEWER");
    let (_, body, _) = a
        .app
        .gql(
            Some(&a.admin),
            "mutation($u: ID!) { addMember(input: { userId: $u, role: VIEWER }) { id } }",
            json!({ "u": a.instructor_id.to_string() }),
        )
        .await;
    assert_eq!(only_error(&body)["extensions"]["code"], "CONFLICT");
    // By email too.
    a.app.data(&a.app.token("newbie", None, None), "{ me { activeRole } }", json!({})).await;
    let d = a
        .app
        .data(
            &a.admin,
            "mutation { addMember(input: { email: \"NEWBIE@example.com\", role: MEMBER }) { role user { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["addMember"]["user"]["name"], "User newbie");
    let (_, body, _) = a
        .app
        .gql(
            Some(&a.admin),
            "mutation { addMember(input: { email: \"ghost@example.com\", role: MEMBER }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(only_error(&body)["extensions"]["code"], "NOT_FOUND");
    let (_, body, _) =
        a.app.gql(Some(&a.admin), "mutation { addMember(input: { role: MEMBER }) { id } }", json!({})).await;
    bad_input(&body, "input.userId");
}

#[tokio::test]
async fn create_organization_makes_the_viewer_admin_at_once() {
    let a = acme().await;
    let d = a
        .app
        .data(
            &a.member,
            "mutation { createOrganization(input: { name: \"Meg's School\" }) { slug storageBucket viewerRole viewerCan { update createCourse } members { totalCount } } }",
            json!({}),
        )
        .await;
    let o = &d["createOrganization"];
    assert_eq!(o["slug"], "meg-s-school");
    assert_eq!(o["storageBucket"], "org-meg-s-school");
    assert_eq!(o["viewerRole"], "ADMIN");
    assert_eq!(o["viewerCan"], json!({ "update": true, "createCourse": true }));
    assert_eq!(o["members"]["totalCount"], 1);
    // A taken slug is a CONFLICT when asked for, and avoided when generated.
    let (_, body, _) = a
        .app
        .gql(
            Some(&a.member),
            "mutation { createOrganization(input: { name: \"X\", slug: \"acme\" }) { id } }",
            json!({}),
        )
        .await;
    let e = only_error(&body);
    assert_eq!(
        (e["extensions"]["code"].clone(), e["extensions"]["field"].clone()),
        (json!("CONFLICT"), json!("input.slug"))
    );
    let d =
        a.app.data(&a.member, "mutation { createOrganization(input: { name: \"Acme\" }) { slug } }", json!({})).await;
    let slug = d["createOrganization"]["slug"].as_str().unwrap();
    assert!(slug.starts_with("acme-") && slug != "acme", "{slug}");
    // Renaming to a taken slug is a CONFLICT too.
    let d = a.app.data(&a.member, "{ organizations { id slug } }", json!({})).await;
    let mine =
        d["organizations"].as_array().unwrap().iter().find(|o| o["slug"] == "meg-s-school").unwrap()["id"].clone();
    let (_, body, _) = a
        .app
        .gql(
            Some(&a.member),
            "mutation($o: ID!) { updateOrganization(id: $o, input: { slug: \"acme\" }) { id } }",
            json!({ "o": mine }),
        )
        .await;
    assert_eq!(only_error(&body)["extensions"]["code"], "CONFLICT");
}

/// "NamePosition" of a course's tracks, in order.
async fn names(a: &Acme, course: &str) -> Vec<String> {
    let d = a
        .app
        .data(&a.admin, "query($c: ID!) { course(id: $c) { tracks { name position } } }", json!({ "c": course }))
        .await;
    d["course"]["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}{}", t["name"].as_str().unwrap(), t["position"]))
        .collect()
}

#[tokio::test]
async fn tracks_insert_move_delete_and_reorder_keep_positions_dense() {
    let a = acme().await;
    let c = fixtures::course(a.app.conn(), a.org, Some(a.instructor_id), "Course", true).await;
    let cid = c.id.to_string();
    let create = "mutation($c: ID!, $n: String!, $p: Int) { createTrack(input: { courseId: $c, name: $n, position: $p }) { id position organization { id } } }";
    let mut ids = Vec::new();
    for n in ["A", "B", "C"] {
        let d = a.app.data(&a.instructor, create, json!({ "c": cid, "n": n })).await;
        assert_eq!(d["createTrack"]["organization"]["id"], json!(a.org.to_string()), "a track's org is its course's");
        ids.push(d["createTrack"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(names(&a, &cid).await, ["A0", "B1", "C2"]);
    a.app.data(&a.instructor, create, json!({ "c": cid, "n": "X", "p": 1 })).await;
    assert_eq!(names(&a, &cid).await, ["A0", "X1", "B2", "C3"]);
    a.app
        .data(
            &a.instructor,
            "mutation($t: ID!) { updateTrack(id: $t, input: { position: 3 }) { id } }",
            json!({ "t": ids[0] }),
        )
        .await;
    assert_eq!(names(&a, &cid).await, ["X0", "B1", "C2", "A3"]);
    a.app.data(&a.instructor, "mutation($t: ID!) { deleteTrack(id: $t) }", json!({ "t": ids[1] })).await;
    assert_eq!(names(&a, &cid).await, ["X0", "C1", "A2"]);

    let d = a.app.data(&a.admin, "query($c: ID!) { course(id: $c) { tracks { id name } } }", json!({ "c": cid })).await;
    let current: Vec<String> =
        d["course"]["tracks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    let reorder = "mutation($c: ID!, $t: [ID!]!) { reorderTracks(courseId: $c, trackIds: $t) { name position } }";
    let reversed: Vec<String> = current.iter().rev().cloned().collect();
    let d = a.app.data(&a.instructor, reorder, json!({ "c": cid, "t": reversed })).await;
    assert_eq!(
        d["reorderTracks"],
        json!([{ "name": "A", "position": 0 }, { "name": "C", "position": 1 }, { "name": "X", "position": 2 }])
    );
    // Not exactly the course's tracks: refused, nothing moves.
    let other = fixtures::course(a.app.conn(), a.org, Some(a.instructor_id), "Other", true).await;
    let foreign = fixtures::track(a.app.conn(), &other, "F", 0).await.id.to_string();
    for bad in [
        vec![current[0].clone(), current[1].clone()],
        vec![current[0].clone(), current[0].clone(), current[1].clone()],
        vec![current[0].clone(), current[1].clone(), foreign],
        vec![current[0].clone(), current[1].clone(), current[2].clone(), Uuid::now_v7().to_string()],
    ] {
        let (_, body, _) = a.app.gql(Some(&a.instructor), reorder, json!({ "c": cid, "t": bad })).await;
        bad_input(&body, "trackIds");
    }
    assert_eq!(names(&a, &cid).await, ["A0", "C1", "X2"]);

    // Concurrent reorders: whichever wins, the positions are a permutation of 0..n.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let mut order = current.clone();
        order.rotate_left(i % 3);
        let (client, url, t, cid) = (a.app.client.clone(), a.app.url("/graphql"), a.instructor.clone(), cid.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(t)
                .json(&json!({ "query": reorder, "variables": { "c": cid, "t": order } }))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let mut positions: Vec<String> = names(&a, &cid).await.iter().map(|s| s[1..].to_owned()).collect();
    positions.sort();
    assert_eq!(positions, ["0", "1", "2"]);
}

#[tokio::test]
async fn demoting_an_instructor_unassigns_their_courses() {
    let a = acme().await;
    let c = fixtures::course(a.app.conn(), a.org, Some(a.instructor_id), "Taught", true).await;
    let m = a.app.data(&a.instructor, "{ me { memberships { id } } }", json!({})).await["me"]["memberships"][0]["id"]
        .clone();
    a.app
        .data(
            &a.admin,
            "mutation($m: ID!) { updateMemberRole(membershipId: $m, role: MEMBER) { role } }",
            json!({ "m": m }),
        )
        .await;
    let d = a
        .app
        .data(&a.admin, "query($c: ID!) { course(id: $c) { instructor { id } } }", json!({ "c": c.id.to_string() }))
        .await;
    assert_eq!(d["course"]["instructor"], Value::Null);
    // And the demoted user's next request already sees the new role.
    let d = a.app.data(&a.instructor, "{ me { activeRole } }", json!({})).await;
    assert_eq!(d["me"]["activeRole"], "MEMBER");
}

#[tokio::test]
async fn course_pages_follow_title_then_id_with_opaque_cursors() {
    let a = acme().await;
    // Titles whose order is the same under every collation either database may use.
    let titles = ["Zeta", "Alpha", "Beta", "Beta", "Gamma 100%", "Gamma_x", "Delta"];
    for (i, t) in titles.iter().enumerate() {
        fixtures::course(a.app.conn(), a.org, Some(a.instructor_id), t, i != 6).await;
    }
    let page = "query($a: String, $f: CourseFilter) { courses(first: 2, after: $a, filter: $f) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor startCursor } edges { cursor node { id title } } } }";
    let walk = |token: String, filter: Value| {
        let app = &a.app;
        async move {
            let mut after = Value::Null;
            let mut seen = Vec::new();
            loop {
                let d = app.data(&token, page, json!({ "a": after, "f": filter })).await;
                let c = &d["courses"];
                for e in c["edges"].as_array().unwrap() {
                    seen.push((
                        e["node"]["title"].as_str().unwrap().to_owned(),
                        e["node"]["id"].as_str().unwrap().to_owned(),
                    ));
                }
                assert_eq!(c["pageInfo"]["hasPreviousPage"], json!(!after.is_null()));
                if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                    return (seen, c["totalCount"].as_i64().unwrap());
                }
                after = c["pageInfo"]["endCursor"].clone();
            }
        }
    };
    let (seen, total) = walk(a.admin.clone(), Value::Null).await;
    assert_eq!(total, 7);
    assert_eq!(seen.len(), 7);
    let ids: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids.len(), 7, "no duplicates across pages");
    let titles_in_order: Vec<_> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles_in_order, ["Alpha", "Beta", "Beta", "Delta", "Gamma 100%", "Gamma_x", "Zeta"]);
    let betas: Vec<_> = seen.iter().filter(|(t, _)| t == "Beta").map(|(_, id)| id.clone()).collect();
    assert!(betas[0] < betas[1], "ties broken by id");

    // Members see no drafts; the totals agree.
    let (seen, total) = walk(a.member.clone(), Value::Null).await;
    assert_eq!((seen.len(), total), (6, 6));
    assert!(!seen.iter().any(|(t, _)| t == "Delta"));
    let (seen, _) = walk(a.member.clone(), json!({ "published": false })).await;
    assert!(seen.is_empty());
    // Filters: search is a literal, case-insensitive substring.
    let (seen, total) = walk(a.admin.clone(), json!({ "search": "100%" })).await;
    assert_eq!((seen.len(), total), (1, 1));
    let (seen, _) = walk(a.admin.clone(), json!({ "search": "a_x" })).await;
    assert_eq!(seen.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["Gamma_x"]);
    let (seen, _) = walk(a.admin.clone(), json!({ "search": "ALPHA" })).await;
    assert_eq!(seen.len(), 1);
    let (_, total) = walk(a.admin.clone(), json!({ "difficulty": "ADVANCED" })).await;
    assert_eq!(total, 0);
    // A members cursor is not a courses cursor.
    let d = a.app.data(&a.admin, "{ organization { members(first: 1) { pageInfo { endCursor } } } }", json!({})).await;
    let foreign = d["organization"]["members"]["pageInfo"]["endCursor"].clone();
    let (_, body, _) = a.app.gql(Some(&a.admin), page, json!({ "a": foreign })).await;
    bad_input(&body, "after");
}

#[tokio::test]
async fn member_pages_by_join_date() {
    let a = acme().await;
    for i in 0..4 {
        a.app
            .data(&a.app.token(&format!("extra-{i}"), Some("acme"), Some("viewer")), "{ me { activeRole } }", json!({}))
            .await;
    }
    let q = "query($a: String) { organization { members(first: 3, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id joinedAt } } } }";
    let mut after = Value::Null;
    let mut all = Vec::new();
    loop {
        let d = a.app.data(&a.admin, q, json!({ "a": after })).await;
        let m = &d["organization"]["members"];
        assert_eq!(m["totalCount"], 7);
        all.extend(
            m["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| (n["joinedAt"].as_str().unwrap().to_owned(), n["id"].as_str().unwrap().to_owned())),
        );
        if !m["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = m["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(all.len(), 7);
    let ids: HashSet<_> = all.iter().map(|(_, i)| i).collect();
    assert_eq!(ids.len(), 7);
}

/// No N+1: an organization with its courses, each with tracks and instructor, costs the
/// same number of statements for 5 courses as for 20.
#[tokio::test]
async fn nested_reads_cost_a_constant_number_of_statements() {
    let a = acme().await;
    let mut teachers = vec![a.instructor_id, a.admin_id];
    for i in 0..3 {
        let d = a
            .app
            .data(&a.app.token(&format!("t{i}"), Some("acme"), Some("instructor")), "{ me { user { id } } }", json!({}))
            .await;
        teachers.push(Uuid::parse_str(d["me"]["user"]["id"].as_str().unwrap()).unwrap());
    }
    for i in 0..20 {
        let c =
            fixtures::course(a.app.conn(), a.org, Some(teachers[i % teachers.len()]), &format!("C{i:02}"), true).await;
        for p in 0..3 {
            fixtures::track(a.app.conn(), &c, &format!("T{p}"), p).await;
        }
    }
    let q = "query($n: Int) { organization { name courses(first: $n) { edges { node { title price tracks { name position } instructor { name } } } } } }";
    // Warm the identity first (the context cache may or may not serve it; both are fine).
    a.app.data(&a.member, q, json!({ "n": 1 })).await;
    let mut costs = Vec::new();
    for n in [5, 20] {
        let before = a.app.statements();
        let d = a.app.data(&a.member, q, json!({ "n": n })).await;
        costs.push(a.app.statements() - before);
        let edges = d["organization"]["courses"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n as usize);
        assert!(edges.iter().all(|e| e["node"]["tracks"].as_array().unwrap().len() == 3));
    }
    assert_eq!(costs[0], costs[1], "statements grew with the number of courses: {costs:?}");
    // The courses with their tracks (one statement on SQLite, two on PostgreSQL), the
    // instructors (+ identity when not cached), + the tenancy settings when PostgreSQL
    // row-level security is enforced. The organization comes with the viewer.
    let rls = u64::from(a.app.app.state.db_role.is_some());
    let pages = if a.app.backend() == sea_orm::DbBackend::Postgres { 2 } else { 1 };
    assert!((pages + 1 + rls..=pages + 2 + rls).contains(&costs[1]), "{costs:?}");
}

/// A page whose tracks are asked only for name and position reads them partially; every
/// other field of those same tracks is still answered, from the whole row.
#[tokio::test]
async fn partially_read_tracks_still_answer_every_field() {
    let a = acme().await;
    let c = fixtures::course(a.app.conn(), a.org, Some(a.instructor_id), "Partial", true).await;
    for (name, description) in [("One", Some("first \"quoted\" ünï")), ("Two", None), ("Three", Some("third"))] {
        let d = a
            .app
            .data(
                &a.instructor,
                "mutation($i: CreateTrackInput!) { createTrack(input: $i) { id } }",
                json!({ "i": { "courseId": c.id, "name": name, "description": description } }),
            )
            .await;
        assert!(d["createTrack"]["id"].is_string());
    }
    let fields = "id name position description createdAt updatedAt";
    let whole = a
        .app
        .data(
            &a.member,
            &format!("query($c: ID!) {{ course(id: $c) {{ tracks {{ {fields} }} }} }}"),
            json!({ "c": c.id }),
        )
        .await;
    let truth = whole["course"]["tracks"].clone();
    assert_eq!(truth.as_array().unwrap().len(), 3);
    assert_eq!(truth[0]["description"], "first \"quoted\" ünï");
    assert!(truth[1]["description"].is_null());
    assert_eq!(truth[2]["description"], "third");
    assert!(truth[0]["createdAt"].as_str().unwrap() > "2000");
    // The page reads its tracks partially (it asks only name and position); the same
    // tracks are then asked for everything, through the page and through `course`.
    let q = format!(
        "query($c: ID!) {{ organization {{ courses(first: 5) {{ nodes {{ id tracks {{ name position }} more: tracks {{ {fields} }} }} }} }} course(id: $c) {{ tracks {{ {fields} }} }} }}"
    );
    let before = a.app.statements();
    let d = a.app.data(&a.member, &q, json!({ "c": c.id })).await;
    let spent = a.app.statements() - before;
    let node =
        d["organization"]["courses"]["nodes"].as_array().unwrap().iter().find(|n| n["id"] == json!(c.id)).unwrap();
    assert_eq!(node["more"], truth);
    assert_eq!(d["course"]["tracks"], truth);
    let names: Vec<_> = node["tracks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["One", "Two", "Three"]);
    // The missing fields cost one batched statement, not one per track.
    assert!(spent <= 6, "{spent} statements");
}

/// The organization a member reads comes with their (cached) context; a rename is seen
/// by the very next request all the same.
#[tokio::test]
async fn a_renamed_organization_is_seen_at_once() {
    let a = acme().await;
    let q = "{ organization { name } }";
    let before = a.app.data(&a.member, q, json!({})).await["organization"]["name"].clone();
    assert!(before.is_string());
    let r = a
        .app
        .data(
            &a.admin,
            "mutation($o: ID!) { updateOrganization(id: $o, input: { name: \"Acme Renamed\" }) { name } }",
            json!({ "o": a.org }),
        )
        .await;
    assert_eq!(r["updateOrganization"]["name"], "Acme Renamed");
    assert_eq!(a.app.data(&a.member, q, json!({})).await["organization"]["name"], "Acme Renamed");
    assert_eq!(a.app.data(&a.admin, q, json!({})).await["organization"]["name"], "Acme Renamed");
}

/// The keys of every object in `text` (a JSON document), in the order they appear.
fn keys_in_order(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let end = i + 1 + text[i + 1..].find('"').unwrap();
            if b.get(end + 1) == Some(&b':') {
                out.push(text[i + 1..end].to_owned());
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn response_keys_follow_the_request_order() {
    let a = acme().await;
    fixtures::course(a.app.conn(), a.org, Some(a.admin_id), "Ordered", true).await;
    // Fields answered from memory (user, activeRole) and fields that wait for the database
    // (activeOrganization, totalCount) interleaved, at the root and below, with aliases.
    let query = "{ me { user { id } activeOrganization { name } activeRole isPlatformAdmin } \
                 c: courses { totalCount nodes { title id } pageInfo { hasNextPage } } \
                 a: organizations { slug id } }";
    for _ in 0..5 {
        let resp = a
            .app
            .client
            .post(a.app.url("/graphql"))
            .bearer_auth(&a.admin)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        assert_eq!(
            keys_in_order(&text),
            [
                "data",
                "me",
                "user",
                "id",
                "activeOrganization",
                "name",
                "activeRole",
                "isPlatformAdmin",
                "c",
                "totalCount",
                "nodes",
                "title",
                "id",
                "pageInfo",
                "hasNextPage",
                "a",
                "slug",
                "id"
            ],
            "{text}"
        );
    }
}
