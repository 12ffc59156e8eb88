//! The access doctor (`POST /doctor`, `coursegraph doctor`) and `whoCan`: every check
//! failing alone names the reason the server answers for the same token; nothing is
//! written; nothing secret is printed; field decisions match the server's errors.

use coursegraph::config::Environment;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    fixtures,
    helpers::*,
    jwks_server::JwksServer,
    keys::{self, TestKey, claims, hs256, jwks, now, raw_token},
};

const ISS: &str = "https://idp.test/";
const AUD: &str = "coursegraph-api";
const ME: &str = "{ me { user { id } } }";

async fn doctor(app: &TestApp, body: Value) -> Value {
    let r = app.client.post(app.url("/doctor")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{report}"))
}

fn failed(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["reason"].as_str().unwrap_or("").to_owned()))
        .collect()
}

async fn rows(app: &TestApp) -> [i64; 5] {
    [
        app.count("users", "").await,
        app.count("organizations", "").await,
        app.count("memberships", "").await,
        app.count("invitations", "").await,
        app.count("audit_events", "").await,
    ]
}

/// The server's answer to `token` (and `X-Organization-Id`): (code, reason) of its error.
async fn server_says(app: &TestApp, token: &str, org: Option<&str>, query: &str) -> (String, String) {
    let headers: Vec<(&str, &str)> = org.map(|o| vec![("x-organization-id", o)]).unwrap_or_default();
    let (_, body, _) = app.gql_with(Some(token), &headers, query, json!({})).await;
    let e = &body["errors"][0]["extensions"];
    (e["code"].as_str().unwrap_or("").to_owned(), e["reason"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn each_token_check_failing_alone_names_the_reason_the_server_answers() {
    let rsa = TestKey::rsa1();
    let server = JwksServer::start(jwks(std::slice::from_ref(&rsa))).await;
    let url = server.url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.auth.jwks_url = Some(url);
        c.auth.issuer = Some(ISS.into());
        c.auth.audience = vec![AUD.into()];
    })
    .await;
    let good = || claims("patient", json!({ "iss": ISS, "aud": AUD, "org_id": "clinic", "roles": ["member"] }));
    let set = |k: &str, v: Value| {
        let mut c = good();
        c[k] = v;
        c
    };
    let drop = |k: &str| {
        let mut c = good();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let valid = rsa.sign(&good());
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[1] = keys::b64(set("roles", json!(["admin"])).to_string().as_bytes());
    let tampered = parts.join(".");

    let cases: Vec<(&str, String, &str)> = vec![
        ("format", "not-a-jwt".into(), "TOKEN_MALFORMED"),
        ("algorithm", raw_token(&json!({ "alg": "none" }), &good(), b""), "ALGORITHM_NOT_ALLOWED"),
        ("key", rsa.sign_as("rotated-away", &good()), "UNKNOWN_KEY"),
        ("signature", tampered, "BAD_SIGNATURE"),
        ("signature", hs256(b"some-other-secret-that-is-long-enough!!", None, &good()), "BAD_SIGNATURE"),
        ("expiry", rsa.sign(&set("exp", json!(now() - 3600))), "TOKEN_EXPIRED"),
        ("expiry", rsa.sign(&set("iat", json!(now() + 3600))), "TOKEN_NOT_YET_VALID"),
        ("expiry", rsa.sign(&drop("exp")), "MISSING_CLAIM"),
        ("issuer", rsa.sign(&set("iss", json!("https://elsewhere.test/"))), "BAD_ISSUER"),
        ("issuer", rsa.sign(&drop("iss")), "MISSING_CLAIM"),
        ("audience", rsa.sign(&set("aud", json!("another-api"))), "BAD_AUDIENCE"),
        ("audience", rsa.sign(&drop("aud")), "MISSING_CLAIM"),
        ("subject", rsa.sign(&set("sub", json!(""))), "MISSING_CLAIM"),
    ];
    let before = rows(&app).await;
    let mut reports = Vec::new();
    for (name, token, reason) in &cases {
        let r = doctor(&app, json!({ "token": token })).await;
        assert_eq!(failed(&r), vec![((*name).to_owned(), (*reason).to_owned())], "{name}: {r}");
        assert!(!check(&r, name)["hint"].as_str().unwrap().is_empty(), "{name} has a hint");
        assert_eq!(r["ok"], false);
        assert_eq!(r["answer"]["reason"], *reason, "{name}: {r}");
        // Past a failure the doctor goes on: the claims and mapping are shown, marked unverified.
        if *name != "format" && *name != "algorithm" {
            assert_eq!(r["identity"]["verified"], false, "{r}");
            assert_eq!(r["viewer"]["hypothetical"], true, "{r}");
        }
        reports.push(r);
    }
    assert_eq!(rows(&app).await, before, "the doctor wrote nothing");
    // …and the server answers exactly that reason for each token.
    for (name, token, reason) in &cases {
        let (code, got) = server_says(&app, token, None, ME).await;
        assert_eq!((code.as_str(), got.as_str()), ("UNAUTHENTICATED", *reason), "{name}");
    }
    // No token at all: the server answers TOKEN_MISSING to an operation that needs a user.
    let r = doctor(&app, json!({ "token": "" })).await;
    assert_eq!(failed(&r), vec![("format".to_owned(), "TOKEN_MISSING".to_owned())], "{r}");
    assert_eq!(r["answer"]["reason"], "TOKEN_MISSING", "{r}");
    let (_, body, _) = app.gql(None, ME, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["reason"], "TOKEN_MISSING", "{body}");

    // The valid token: every check passes, nothing is created by asking.
    let r = doctor(&app, json!({ "token": valid })).await;
    assert_eq!(failed(&r), vec![], "{r}");
    assert_eq!(r["ok"], true);
    let names: Vec<&str> = r["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, coursegraph::doctor::CHECKS.to_vec(), "the checks come in the documented order");
    assert_eq!(r["viewer"]["wouldCreate"], json!(["user", "organization", "membership"]));
    assert_eq!(r["identity"]["mappedRole"], "MEMBER");
    assert_eq!(rows(&app).await, before);
    // Nothing secret: not the token, not its signature.
    let text = r.to_string();
    assert!(!text.contains(&valid) && !text.contains(valid.rsplit('.').next().unwrap()));
}

/// Acme with an admin, a member who was removed, and an outsider of another organization.
async fn acme() -> (TestApp, String, String, String, Uuid) {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let gone = app.token("gus", Some("acme"), Some("member"));
    let outsider = app.token("oli", Some("globex"), Some("admin"));
    let org =
        app.data(&admin, "{ me { activeOrganization { id } } }", json!({})).await["me"]["activeOrganization"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    app.data(&gone, ME, json!({})).await;
    app.data(&outsider, ME, json!({})).await;
    let members = app.data(&admin, "{ organization { members { nodes { id role } } } }", json!({})).await;
    let m =
        members["organization"]["members"]["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "MEMBER").unwrap()
            ["id"]
            .clone();
    app.data(&admin, "mutation($m: ID!) { removeMember(membershipId: $m) { isActive } }", json!({ "m": m })).await;
    (app, admin, gone, outsider, org)
}

#[tokio::test]
async fn each_database_check_failing_alone_names_the_reason_the_server_answers() {
    let (app, _admin, gone, outsider, org) = acme().await;
    let before = rows(&app).await;

    // membership: removed; the server answers MEMBERSHIP_INACTIVE for the organization, named
    // or (the token's, acted in without one) not.
    let r = doctor(&app, json!({ "token": gone })).await;
    let inactive = ("MEMBERSHIP_INACTIVE".to_owned(), "MEMBERSHIP_INACTIVE".to_owned());
    assert_eq!(
        failed(&r),
        vec![("membership".to_owned(), inactive.0.clone()), ("active_organization".to_owned(), inactive.1.clone())],
        "{r}"
    );
    assert!(check(&r, "membership")["hint"].as_str().unwrap().contains("inviteMember"));
    assert!(check(&r, "active_organization")["hint"].as_str().unwrap().contains("inviteMember"));
    assert_eq!(r["answer"]["reason"], "MEMBERSHIP_INACTIVE", "{r}");
    let q = format!("{{ organization(id: \"{org}\") {{ name }} }}");
    assert_eq!(server_says(&app, &gone, None, &q).await, ("FORBIDDEN".into(), "MEMBERSHIP_INACTIVE".into()));
    assert_eq!(
        server_says(&app, &gone, None, "{ organization { name } }").await,
        ("FORBIDDEN".into(), "MEMBERSHIP_INACTIVE".into())
    );

    // active_organization: the header names an organization where the membership was removed…
    let r = doctor(&app, json!({ "token": gone, "organization": "acme" })).await;
    assert_eq!(check(&r, "active_organization")["reason"], "MEMBERSHIP_INACTIVE", "{r}");
    assert_eq!(r["answer"]["reason"], "MEMBERSHIP_INACTIVE");
    assert_eq!(server_says(&app, &gone, Some("acme"), ME).await, ("FORBIDDEN".into(), "MEMBERSHIP_INACTIVE".into()));

    // …or one the viewer never belonged to (the same answer as one that does not exist).
    for header in ["acme", "no-such-org"] {
        let r = doctor(&app, json!({ "token": outsider, "organization": header })).await;
        assert_eq!(failed(&r), vec![("active_organization".to_owned(), "NOT_A_MEMBER".to_owned())], "{r}");
        assert!(check(&r, "active_organization")["hint"].as_str().unwrap().contains("addMember"));
        assert_eq!(server_says(&app, &outsider, Some(header), ME).await, ("FORBIDDEN".into(), "NOT_A_MEMBER".into()));
    }
    assert_eq!(rows(&app).await, before, "the doctor wrote nothing");
}

#[tokio::test]
async fn an_organization_at_a_path_the_preset_does_not_read_is_a_warning_that_names_it() {
    let app = TestApp::spawn().await;
    let token = hs256(SECRET.as_bytes(), None, &claims("fran", json!({ "iss": "coursegraph", "tenantId": "t-42" })));
    let r = doctor(&app, json!({ "token": token })).await;
    let c = check(&r, "organization_claim");
    assert_eq!(c["status"], "warn", "{r}");
    assert!(c["detail"].as_str().unwrap().contains("`tenantId`"), "{c}");
    let hint = c["hint"].as_str().unwrap();
    assert!(hint.contains("COURSEGRAPH_CLAIM_ORG=tenantId") && hint.contains("frontegg"), "{hint}");
    assert_eq!(r["ok"], true, "a warning alone does not refuse");

    let token = hs256(SECRET.as_bytes(), None, &claims("gil", json!({ "org_id": "x", "groups": ["admin"] })));
    let c = check(&doctor(&app, json!({ "token": token })).await, "roles_claim").clone();
    assert_eq!(c["status"], "warn");
    assert!(c["hint"].as_str().unwrap().contains("COURSEGRAPH_CLAIM_ROLES=groups"), "{c}");
}

#[tokio::test]
async fn field_decisions_match_what_the_server_denies() {
    let app = TestApp::spawn().await;
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let member = app.token("meg", Some("acme"), Some("member"));
    let org: Uuid =
        app.data(&admin, "{ me { activeOrganization { id } } }", json!({})).await["me"]["activeOrganization"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    app.data(&member, ME, json!({})).await;
    let course = fixtures::course(app.conn(), org, None, "Published", true).await.id;
    let before = rows(&app).await;

    let query = format!(
        "{{ organization {{ name storageBucket members {{ totalCount }} }} course(id: \"{course}\") {{ title metadata }} }}"
    );
    let r = doctor(&app, json!({ "token": member, "query": query })).await;
    assert_eq!(r["ok"], false);
    let denied: Vec<(String, String)> = r["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["allowed"] == false)
        .map(|d| (d["path"].as_str().unwrap().to_owned(), d["reason"].as_str().unwrap().to_owned()))
        .collect();
    let paths: Vec<&str> = r["decisions"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["organization", "organization.storageBucket", "organization.members", "course", "course.metadata"],
        "one decision per guarded field, in document order"
    );
    let (_, body, _) = app.gql(Some(&member), &query, json!({})).await;
    let mut served: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let path: Vec<String> = e["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().map(str::to_owned).unwrap_or_default())
                .collect();
            (path.join("."), e["extensions"]["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    served.sort();
    let mut denied_sorted = denied.clone();
    denied_sorted.sort();
    assert_eq!(denied_sorted, served, "the doctor denies exactly what the server denies, for the same reasons");

    // A mutation: a MEMBER may not create courses; an ADMIN may.
    let m = r#"mutation { createCourse(input: { title: "x", difficultyLevel: BEGINNER }) { id } }"#;
    let r = doctor(&app, json!({ "token": member, "query": m })).await;
    assert_eq!(r["decisions"][0]["reason"], "INSUFFICIENT_ROLE");
    assert_eq!(r["decisions"][0]["requiredRoles"], json!(["ADMIN", "INSTRUCTOR"]));
    assert_eq!(rows(&app).await, before, "the doctor wrote nothing");
    assert_eq!(server_says(&app, &member, None, m).await, ("FORBIDDEN".into(), "INSUFFICIENT_ROLE".into()));
    // (The server's refusal wrote its ACCESS_DENIED event.)
    let before = rows(&app).await;
    let r = doctor(&app, json!({ "token": admin, "query": m })).await;
    assert_eq!((r["ok"].clone(), r["decisions"][0]["reason"].clone()), (json!(true), json!("GRANTED_BY_ROLE")));
    assert_eq!(rows(&app).await, before, "the doctor did not run the mutation");

    // A document that does not parse is BAD_USER_INPUT naming the field.
    let resp = app.client.post(app.url("/doctor")).json(&json!({ "token": admin, "query": "{" })).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "query");
    let resp = app.client.post(app.url("/doctor")).body("not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // Nor does one that does not validate: the server's validation error, not a decision.
    let invalid = r#"mutation { createCourse(input: { title: "x" }) { id } }"#;
    let resp =
        app.client.post(app.url("/doctor")).json(&json!({ "token": member, "query": invalid })).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("difficultyLevel"), "{body}");
    let (_, served, _) = app.gql(Some(&member), invalid, json!({})).await;
    assert!(served["errors"][0]["message"].as_str().unwrap().contains("difficultyLevel"), "{served}");
}

#[tokio::test]
async fn the_doctor_is_not_served_in_production_unless_enabled() {
    for (production, enabled, status) in [(true, false, 404), (true, true, 200), (false, true, 200)] {
        let app = TestApp::spawn_with(|c| {
            if production {
                c.environment = Environment::Production;
            }
            c.server.doctor = enabled;
        })
        .await;
        let page = app.client.get(app.url("/doctor")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), status);
        let script = app.client.get(app.url("/doctor/doctor.js")).send().await.unwrap();
        assert_eq!(script.status().as_u16(), status);
        let post = app.client.post(app.url("/doctor")).json(&json!({ "token": "x" })).send().await.unwrap();
        assert_eq!(post.status().as_u16(), status);
        if status == 200 {
            assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
        }
    }
}

#[test]
fn the_cli_exits_0_1_2_reads_every_token_source_writes_nothing_and_prints_no_secret() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cli.db?mode=rwc", dir.path().display());
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut c = clean_command(dir.path());
        c.env("COURSEGRAPH_DATABASE_URL", &url).env("COURSEGRAPH_JWT_SECRET", SECRET).args(args);
        c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let token = mint("cli-user", Some("acme"), Some("member"));
    // A fresh machine: no database file yet. The doctor diagnoses as against the empty
    // database `serve` would create, and does not create the file.
    let (code, out, err) = run(&["doctor", "--token", &token, "--format", "json"], None);
    assert_eq!(code, 0, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["viewer"]["wouldCreate"], json!(["user", "organization", "membership"]));
    assert!(!dir.path().join("cli.db").exists(), "the doctor created the database file");

    assert_eq!(run(&["migrate"], None).0, 0);

    let (code, out, _) = run(&["doctor", "--token", &token, "--format", "json"], None);
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["viewer"]["wouldCreate"], json!(["user", "organization", "membership"]));
    // Twice: the first run created nothing.
    let (_, out2, _) = run(&["doctor", "--token", &token, "--format", "json"], None);
    assert_eq!(serde_json::from_str::<Value>(&out2).unwrap()["viewer"]["wouldCreate"], r["viewer"]["wouldCreate"]);

    // stdin and --token-file, text format.
    let (code, text, _) = run(&["doctor"], Some(&format!("Bearer {token}\n")));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok   expiry") && text.contains("\nOK\n"), "{text}");
    let file = dir.path().join("token.txt");
    std::fs::write(&file, &token).unwrap();
    assert_eq!(run(&["doctor", "--token-file", file.to_str().unwrap()], None).0, 0);

    // A denied field is exit 1; so is a refused token.
    let (code, text, _) = run(&["doctor", "--token", &token, "--query", "mutation { deleteCourse(id: \"x\") }"], None);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DENY") && text.contains("deleteCourse"), "{text}");
    assert_eq!(run(&["doctor", "--token", "a.b.c"], None).0, 1);
    // Usage errors are exit 2.
    assert_eq!(run(&["doctor", "--token", &token, "--format", "yaml"], None).0, 2);
    assert_eq!(run(&["doctor", "--token", &token, "--query", "{"], None).0, 2);
    let (code, _, err) = run(
        &["doctor", "--token", &token, "--query", r#"mutation { createCourse(input: { title: "x" }) { id } }"#],
        None,
    );
    assert_eq!(code, 2, "a document that does not validate is a usage error");
    assert!(err.contains("difficultyLevel"), "{err}");
    assert_eq!(run(&["doctor", "--token-file", "/nonexistent/token"], None).0, 2);

    for (_, out, err) in
        [run(&["doctor", "--token", &token, "--format", "json"], None), run(&["doctor", "--token", &token], None)]
    {
        for secret in [SECRET, token.as_str(), token.rsplit('.').next().unwrap()] {
            assert!(!out.contains(secret) && !err.contains(secret), "the report printed a secret");
        }
    }

    // The database cannot be read (the file is not a database): the token checks still
    // run, `user` fails.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let mut c = clean_command(dir.path());
    c.env("COURSEGRAPH_DATABASE_URL", format!("sqlite://{}", garbage.display()))
        .env("COURSEGRAPH_JWT_SECRET", SECRET)
        .args(["doctor", "--token", &token, "--format", "json"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check(&r, "expiry")["status"], "pass");
    assert_eq!(check(&r, "user")["reason"], "DATABASE_UNAVAILABLE");
    assert_eq!(r["answer"]["status"], 503, "{r}");
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![b'x'; 8192], "the doctor wrote to the file");
}

#[tokio::test]
async fn who_can_lists_the_members_the_policy_grants_and_why() {
    let app = TestApp::spawn().await;
    let tok = |sub: &str, role: &str| app.token(sub, Some("acme"), Some(role));
    let (admin, owner, other, member) =
        (tok("ada", "admin"), tok("ivo", "instructor"), tok("ian", "instructor"), tok("meg", "member"));
    let mut ids = Vec::new();
    for t in [&admin, &owner, &other, &member] {
        let d = app.data(t, "{ me { user { id } activeOrganization { id } } }", json!({})).await;
        ids.push((d["me"]["user"]["id"].as_str().unwrap().to_owned(), d["me"]["activeOrganization"]["id"].clone()));
    }
    let org: Uuid = ids[0].1.as_str().unwrap().parse().unwrap();
    let course = fixtures::course(app.conn(), org, Some(ids[1].0.parse().unwrap()), "Owned", false).await.id;
    let q = "query($a: Action!, $r: ID!) { whoCan(action: $a, resourceId: $r) { reason role policy membership { user { id } } } }";
    let who = |d: &Value| -> Vec<(String, String)> {
        d["whoCan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (g["membership"]["user"]["id"].as_str().unwrap().to_owned(), g["reason"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let d = app.data(&admin, q, json!({ "a": "UPDATE_COURSE", "r": course.to_string() })).await;
    assert_eq!(
        who(&d),
        vec![(ids[0].0.clone(), "GRANTED_BY_ROLE".into()), (ids[1].0.clone(), "GRANTED_AS_OWNER".into())]
    );
    let d = app.data(&admin, q, json!({ "a": "READ_MEMBERS", "r": org.to_string() })).await;
    assert_eq!(who(&d).len(), 3, "ADMIN and both INSTRUCTORs: {d}");

    // The same policy as explainAccess: each member's own answer agrees with the list.
    for action in ["UPDATE_COURSE", "MANAGE_TRACKS", "DELETE_COURSE", "READ_COURSE_METADATA", "READ_DRAFT_COURSE"] {
        let listed: Vec<String> = who(&app.data(&admin, q, json!({ "a": action, "r": course.to_string() })).await)
            .into_iter()
            .map(|w| w.0)
            .collect();
        for (t, (id, _)) in [&admin, &owner, &other, &member].iter().zip(&ids) {
            let e = app
                .data(
                    t,
                    "query($a: Action!, $r: ID) { explainAccess(action: $a, resourceId: $r) { allowed } }",
                    json!({ "a": action, "r": course.to_string() }),
                )
                .await;
            assert_eq!(e["explainAccess"]["allowed"] == true, listed.contains(id), "{action} for {id}");
        }
    }

    // Only an ADMIN may ask: it lists people.
    let (_, body, _) = app.gql(Some(&owner), q, json!({ "a": "UPDATE_COURSE", "r": course.to_string() })).await;
    let e = only_error(&body);
    assert_eq!(
        (e["extensions"]["code"].as_str(), e["extensions"]["reason"].as_str()),
        (Some("FORBIDDEN"), Some("INSUFFICIENT_ROLE"))
    );
    assert_eq!(e["extensions"]["action"], "MANAGE_MEMBERS");
    // Another tenant's admin: NOT_FOUND, as for anything of another organization.
    let outsider = app.token("oli", Some("globex"), Some("admin"));
    for r in [course.to_string(), org.to_string()] {
        let (_, body, _) = app.gql(Some(&outsider), q, json!({ "a": "UPDATE_COURSE", "r": r })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    }
    // Invitations are their invitee's business alone.
    let (_, body, _) = app.gql(Some(&admin), q, json!({ "a": "ACCEPT_INVITATION", "r": org.to_string() })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}
