//! Snapshots (insta) of what the binary prints for people to read: the SDL, the
//! permission matrix and the access doctor's checklist, with the parts that change from
//! run to run (ids, times, durations) redacted. `cargo insta review` accepts a change.

use serde_json::json;

use crate::helpers::*;

#[test]
fn the_schema_and_the_permissions_as_printed() {
    let run = |cmd: &str| {
        let out = std::process::Command::new(BIN).arg(cmd).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    insta::assert_snapshot!("schema", run("schema"));
    insta::assert_snapshot!("permissions", run("permissions"));
}

/// The doctor's text for a member's token with a guarded field denied, a fresh user's first
/// token, and a refused one.
#[tokio::test]
async fn the_doctor_s_checklist() {
    let app = TestApp::spawn().await;
    app.data(&app.token("ada", Some("acme"), Some("admin")), "{ me { user { id } } }", json!({})).await;
    let mia = app.token("mia", Some("acme"), Some("member"));
    app.data(&mia, "{ me { user { id } } }", json!({})).await;
    let fresh = app.token("fay", Some("globex"), Some("instructor"));
    let forged = mint_with_secret("mia", "another-secret-that-is-long-enough-0123456789");
    let query = r#"mutation { createCourse(input: { title: "x", difficultyLevel: BEGINNER }) { id metadata } }"#;
    for (name, token, query) in
        [("member", &mia, Some(query)), ("first_sight", &fresh, None), ("refused", &forged, Some(query))]
    {
        let input =
            coursegraph::doctor::Input { token: token.clone(), query: query.map(str::to_owned), ..Default::default() };
        let state = &app.app.state;
        let doctor = coursegraph::doctor::Doctor {
            verifier: &state.sign_in.verifier,
            config: &state.config,
            conn: Some(&state.conn),
        };
        let text = coursegraph::doctor::text::render(&doctor.run(&input).await.unwrap());
        insta::with_settings!({ filters => vec![
            (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]"),
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[time]"),
            (r"in \d+ (s|min|h|days)", "in [duration]"),
        ]}, {
            insta::assert_snapshot!(format!("doctor_{name}"), text);
        });
    }
}

/// A token for `sub` of acme signed with another secret than the server's.
fn mint_with_secret(sub: &str, secret: &str) -> String {
    let config = coursegraph::config::Config::for_tests("sqlite::memory:", secret);
    coursegraph::token::mint(&config, &token_args(sub, Some("acme"), Some("member"))).unwrap()
}
