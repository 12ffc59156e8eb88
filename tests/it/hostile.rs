//! Hostile input: a NUL character in any text input (PostgreSQL text cannot hold one,
//! SQLite would store it) is BAD_USER_INPUT naming the field on both databases, before
//! anything is written; the same inside a token's claims is a refused token.

use serde_json::{Value, json};

use super::helpers::{TestApp, only_error, token_args};

/// Rows of every table a mutation below could write.
async fn rows(app: &TestApp) -> Vec<i64> {
    let mut v = Vec::new();
    for t in ["organizations", "users", "memberships", "courses", "tracks", "invitations", "audit_events"] {
        v.push(app.count(t, "").await);
    }
    v
}

#[tokio::test]
async fn a_nul_in_any_text_input_is_bad_user_input_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.token("nul-admin", Some("nul-org"), Some("admin"));
    let course = app
        .data(
            &admin,
            "mutation { createCourse(input: {title: \"Clean\", difficultyLevel: BEGINNER}) { id organization { id } } }",
            json!({}),
        )
        .await["createCourse"]
        .clone();
    let course_id = course["id"].as_str().unwrap().to_owned();
    let org_id = course["organization"]["id"].as_str().unwrap().to_owned();
    let track = app
        .data(
            &admin,
            "mutation($c: ID!) { createTrack(input: {courseId: $c, name: \"T\"}) { id } }",
            json!({"c": course_id}),
        )
        .await["createTrack"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let nul = "a\u{0}b";
    // (document, variables, the field the refusal must name)
    let cases: Vec<(&str, Value, &str)> = vec![
        ("mutation($v: String!) { createOrganization(input: {name: $v}) { id } }", json!({"v": nul}), "input.name"),
        (
            "mutation($v: String!) { createOrganization(input: {name: \"N\", slug: $v}) { id } }",
            json!({"v": nul}),
            "input.slug",
        ),
        (
            "mutation($o: ID!, $v: String!) { updateOrganization(id: $o, input: {name: $v}) { id } }",
            json!({"o": org_id, "v": nul}),
            "input.name",
        ),
        (
            "mutation($o: ID!, $v: String!) { updateOrganization(id: $o, input: {slug: $v}) { id } }",
            json!({"o": org_id, "v": nul}),
            "input.slug",
        ),
        (
            "mutation($v: String!) { createCourse(input: {title: $v, difficultyLevel: BEGINNER}) { id } }",
            json!({"v": nul}),
            "input.title",
        ),
        (
            "mutation($v: String!) { createCourse(input: {title: \"t\", description: $v, difficultyLevel: BEGINNER}) { id } }",
            json!({"v": nul}),
            "input.description",
        ),
        (
            "mutation($v: String!) { createCourse(input: {title: \"t\", category: $v, difficultyLevel: BEGINNER}) { id } }",
            json!({"v": nul}),
            "input.category",
        ),
        (
            "mutation($v: String!) { createCourse(input: {title: \"t\", durationUnit: $v, difficultyLevel: BEGINNER}) { id } }",
            json!({"v": nul}),
            "input.durationUnit",
        ),
        (
            "mutation($m: JSON!) { createCourse(input: {title: \"t\", metadata: $m, difficultyLevel: BEGINNER}) { id } }",
            json!({"m": {"notes": ["ok", nul]}}),
            "input.metadata.notes[1]",
        ),
        (
            "mutation($m: JSON!) { createCourse(input: {title: \"t\", metadata: $m, difficultyLevel: BEGINNER}) { id } }",
            json!({"m": {nul: 1}}),
            "input.metadata",
        ),
        // Literal arguments, not only variables.
        (
            "mutation { createCourse(input: {title: \"x\\u0000y\", difficultyLevel: BEGINNER}) { id } }",
            json!({}),
            "input.title",
        ),
        (
            "mutation($c: ID!, $v: String!) { updateCourse(id: $c, input: {title: $v}) { id } }",
            json!({"c": course_id, "v": nul}),
            "input.title",
        ),
        (
            "mutation($c: ID!, $v: String!) { updateCourse(id: $c, input: {description: $v}) { id } }",
            json!({"c": course_id, "v": nul}),
            "input.description",
        ),
        (
            "mutation($c: ID!, $v: JSON!) { updateCourse(id: $c, input: {metadata: $v}) { id } }",
            json!({"c": course_id, "v": nul}),
            "input.metadata",
        ),
        (
            "mutation($c: ID!, $v: String!) { createTrack(input: {courseId: $c, name: $v}) { id } }",
            json!({"c": course_id, "v": nul}),
            "input.name",
        ),
        (
            "mutation($c: ID!, $v: String!) { createTrack(input: {courseId: $c, name: \"n\", description: $v}) { id } }",
            json!({"c": course_id, "v": nul}),
            "input.description",
        ),
        (
            "mutation($t: ID!, $v: String!) { updateTrack(id: $t, input: {name: $v}) { id } }",
            json!({"t": track, "v": nul}),
            "input.name",
        ),
        (
            "mutation($v: String!) { inviteMember(input: {email: $v, role: MEMBER}) { id } }",
            json!({"v": "x\u{0}@example.com"}),
            "input.email",
        ),
        (
            "mutation($v: String!) { addMember(input: {email: $v, role: MEMBER}) { id } }",
            json!({"v": "x\u{0}@example.com"}),
            "input.email",
        ),
        ("query($v: String!) { courses(filter: {search: $v}) { totalCount } }", json!({"v": nul}), "filter.search"),
        ("query($v: ID!) { course(id: $v) { id } }", json!({"v": nul}), "id"),
    ];
    for (query, vars, field) in cases {
        let before = rows(&app).await;
        let (status, body, _) = app.gql(Some(&admin), query, vars.clone()).await;
        assert_eq!(status, 200, "{query}: {body}");
        let e = only_error(&body);
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{query} {vars}: {body}");
        assert_eq!(e["extensions"]["field"], field, "{query} {vars}: {body}");
        assert!(e["message"].as_str().unwrap().contains("NUL"), "{body}");
        assert!(body.get("data").is_none_or(Value::is_null), "nothing ran: {body}");
        assert_eq!(rows(&app).await, before, "{query} wrote something");
    }
    // The clean values next to them were accepted all along.
    let (_, body, _) =
        app.gql(Some(&admin), "query { course(id: \"00000000-0000-0000-0000-000000000000\") { id } }", json!({})).await;
    assert_eq!(only_error(&body)["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_token_whose_claims_carry_a_nul_is_refused_before_provisioning() {
    let app = TestApp::spawn().await;
    for (name, org) in [("Eve\u{0}", "acme"), ("Eve", "ac\u{0}me")] {
        let mut args = token_args("nul-claims", Some(org), Some("admin"));
        args.name = Some(name.into());
        let token = app.token_with(args);
        let (status, body, _) = app.gql(Some(&token), "{ me { user { id } } }", json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(only_error(&body)["extensions"]["reason"], "TOKEN_MALFORMED", "{body}");
    }
    assert_eq!(app.count("users", "").await, 0);
    assert_eq!(app.count("organizations", "").await, 0);
}
