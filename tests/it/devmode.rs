//! The README's quickstart, for real: the binary with no configuration (dev mode),
//! `coursegraph token`, and a query — in a fresh working directory.

use std::{process::Command, time::Duration};

use serde_json::json;

use crate::helpers::{BIN, ServerProcess, TestDb, clean_command};

#[tokio::test]
async fn dev_mode_serve_token_and_query() {
    let dir = tempfile::tempdir().unwrap();
    // With COURSEGRAPH_TEST_POSTGRES_URL set the same quickstart runs on PostgreSQL,
    // on a database of its own; otherwise on the embedded SQLite default.
    let pg = match std::env::var("COURSEGRAPH_TEST_POSTGRES_URL") {
        Ok(_) => Some(TestDb::new().await),
        Err(_) => None,
    };
    let envs: Vec<(&str, &str)> = pg.iter().map(|db| ("COURSEGRAPH_DATABASE_URL", db.url())).collect();
    let mut server = ServerProcess::start(dir.path(), &envs);
    let warned = server.logs().iter().any(|l| {
        l["fields"]["message"].as_str().is_some_and(|m| m.contains("development mode")) && l["level"] == "WARN"
    });
    assert!(warned, "dev mode warns that it generated a secret");
    assert!(dir.path().join(".coursegraph/dev-secret").exists());

    // `coursegraph token` signs with the same secret.
    let out = clean_command(dir.path())
        .args(["token", "--sub", "alice", "--org", "acme", "--role", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3);

    let body: serde_json::Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { user { id email } activeOrganization { name } activeRole } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["me"]["activeRole"], "ADMIN", "{body}");
    assert_eq!(body["data"]["me"]["activeOrganization"]["name"], "acme", "{body}");

    // A second `token` run reuses the secret (it does not rotate it).
    let secret1 = std::fs::read_to_string(dir.path().join(".coursegraph/dev-secret")).unwrap();
    let out = clean_command(dir.path()).args(["token", "--sub", "bob"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(secret1, std::fs::read_to_string(dir.path().join(".coursegraph/dev-secret")).unwrap());
    // The secret never reaches the logs.
    assert!(!server.logs().iter().any(|l| l.to_string().contains(secret1.trim())));

    // SIGTERM shuts down gracefully.
    Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    let status = server.wait_exit(Duration::from_secs(10)).expect("server exits after SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    if pg.is_none() {
        assert!(dir.path().join("coursegraph.db").exists(), "the embedded SQLite default was used");
    }
}

#[test]
fn production_refuses_to_start_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_command(dir.path()).args(["serve"]).env("COURSEGRAPH_ENV", "production").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COURSEGRAPH_JWT_SECRET") && err.contains("COURSEGRAPH_JWKS_URL"), "{err}");
    assert!(!dir.path().join(".coursegraph").exists(), "production never writes a dev secret");
}

#[test]
fn invalid_config_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_command(dir.path()).args(["serve"]).env("COURSEGRAPH_JWT_SECRET", "short").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COURSEGRAPH_JWT_SECRET") && err.contains("32"), "{err}");
    assert!(!err.contains("short"), "the secret itself never appears: {err}");

    let out = clean_command(dir.path()).args(["serve"]).env("COURSEGRAPH_LISTEN", "nowhere").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COURSEGRAPH_LISTEN"));

    let out = clean_command(dir.path()).args(["serve"]).env("COURSEGRAPH_ROLE_MAP", "Teacher=BOSS").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COURSEGRAPH_ROLE_MAP"));

    // A read replica needs PostgreSQL on both sides, and a lag bound above zero.
    let replica = [("COURSEGRAPH_DATABASE_READ_URL", "postgres://user:pw-never-printed@127.0.0.1:1/db")];
    let out = clean_command(dir.path()).args(["serve"]).envs(replica).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COURSEGRAPH_DATABASE_READ_URL") && err.contains("SQLite"), "{err}");
    assert!(!err.contains("pw-never-printed"), "{err}");
    let out = clean_command(dir.path())
        .args(["serve"])
        .env("COURSEGRAPH_DATABASE_READ_URL", "mysql://127.0.0.1/db")
        .env("COURSEGRAPH_DATABASE_URL", "postgres://127.0.0.1:1/db")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("COURSEGRAPH_DATABASE_READ_URL must be a postgres://"));
    let out = clean_command(dir.path()).args(["serve"]).env("COURSEGRAPH_READ_MAX_LAG", "0s").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COURSEGRAPH_READ_MAX_LAG"));
}

#[test]
fn schema_command_prints_the_sdl() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), coursegraph::graphql::schema::sdl());
}

/// A command whose reader goes away (`coursegraph schema | head -1`) ends quietly with
/// success, as Unix tools do, instead of a panic and its backtrace on standard error.
#[test]
fn a_command_whose_reader_went_away_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["schema"][..], &["permissions"], &["token", "--sub", "alice"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = clean_command(dir.path()).args(args).stdout(writer).stderr(std::process::Stdio::piped()).output();
        let out = out.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `serve`, `token` and `doctor` agree on one development secret wherever in a checkout
/// they start (the first `.coursegraph/dev-secret` upwards, else one at the checkout's
/// top), and whichever creates it says where.
#[tokio::test]
async fn one_dev_secret_for_the_whole_checkout() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("checkout");
    let tests = root.join("tests");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(&tests).unwrap();
    let secret_file = root.join(".coursegraph/dev-secret");

    // `token` first, from a subdirectory: the secret goes to the top, and it says so.
    let out =
        clean_command(&tests).args(["token", "--sub", "alice", "--org", "acme", "--role", "admin"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&secret_file.display().to_string()), "{stderr}");
    assert!(!tests.join(".coursegraph").exists(), "no second secret below the top");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // A second run creates nothing and says nothing.
    let out = clean_command(&tests).args(["token", "--sub", "bob"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).trim().is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // `serve` from the top accepts it.
    let server = ServerProcess::start(&root, &[]);
    let body: serde_json::Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { activeRole } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["me"]["activeRole"], "ADMIN", "{body}");

    // `doctor` from yet another directory accepts it too.
    let deep = root.join("src").join("deep");
    std::fs::create_dir_all(&deep).unwrap();
    let out = clean_command(&deep).args(["doctor", "--token", &token, "--format", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signature = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "signature").unwrap().clone();
    assert_eq!(signature["status"], "pass", "{report}");
}

#[test]
fn a_subcommand_s_help_shows_its_own_options() {
    let out = Command::new(BIN).args(["token", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for own in ["--sub", "--email", "--name", "--org", "--role", "--ttl", "--jwt-secret", "--claims"] {
        assert!(help.contains(own), "{own} missing from\n{help}");
    }
    for server in ["--listen", "--max-depth", "--database-url", "--cors-origins", "--db-role"] {
        assert!(!help.contains(server), "{server} is the server's, not token's:\n{help}");
    }
    // Every option says what it is (beside it, or on the next line).
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.trim_start().starts_with("--")) {
        let beside = line.trim_start().split_once("  ").is_some_and(|(_, d)| !d.trim().is_empty());
        let below = lines.get(i + 1).is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
        assert!(beside || below, "an option without a description: {line}\n{help}");
    }
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in
        [("COURSEGRAPH_MAX_DEPTH", "deep"), ("COURSEGRAPH_CLAIMS", "okta"), ("COURSEGRAPH_READ_MAX_LAG", "soon")]
    {
        let out = clean_command(dir.path()).args(["serve"]).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
        // The token command reads the server's variables from the environment too, and says which.
        if var == "COURSEGRAPH_CLAIMS" {
            let out = clean_command(dir.path()).args(["token", "--sub", "a"]).env(var, value).output().unwrap();
            assert!(String::from_utf8_lossy(&out.stderr).contains(var));
        }
    }
}

#[test]
fn a_taken_address_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = clean_command(dir.path())
        .args(["serve", "--listen", &addr])
        .env("COURSEGRAPH_JWT_SECRET", crate::helpers::SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(err.contains("COURSEGRAPH_LISTEN"), "{err}");
}

/// A stale development secret below the checkout's top (left by an older `coursegraph
/// token` run there) signs tokens the server refuses: the refusal names the file the
/// server reads, and the doctor names the one the token was signed with.
#[tokio::test]
async fn a_token_signed_with_another_dev_secret_is_explained() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("checkout");
    let tests = root.join("tests");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(tests.join(".coursegraph")).unwrap();
    std::fs::write(tests.join(".coursegraph/dev-secret"), "a-stale-development-secret-0123456789abcdef").unwrap();
    let server = ServerProcess::start(&root, &[]);
    let served = root.join(".coursegraph/dev-secret");
    assert!(served.exists());
    // Minted from tests/: the nearer, stale secret signs it.
    let out = clean_command(&tests).args(["token", "--sub", "ana", "--org", "acme"]).output().unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = reqwest::Client::new()
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { activeRole } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    let e = &body["errors"][0];
    assert_eq!(e["extensions"]["reason"], "BAD_SIGNATURE", "{body}");
    assert!(e["message"].as_str().unwrap().contains(&served.display().to_string()), "{body}");
    // The doctor, started at the top, says which file signed it.
    let out = clean_command(&root).args(["doctor", "--token", &token, "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sig = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "signature").unwrap().clone();
    assert_eq!(sig["reason"], "BAD_SIGNATURE", "{report}");
    let hint = sig["hint"].as_str().unwrap();
    assert!(hint.contains(&served.display().to_string()), "{hint}");
    assert!(hint.contains(&tests.join(".coursegraph/dev-secret").display().to_string()), "{hint}");
    assert!(!hint.contains("COURSEGRAPH_JWT_SECRET"), "{hint}");
    // Under the refused token, decisions are what it would get if accepted.
    let out = clean_command(&root)
        .args(["doctor", "--token", &token, "--format", "json", "--query", "{ me { user { email } } }"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &report["decisions"][0];
    assert_eq!((d["hypothetical"].clone(), report["ok"].clone()), (json!(true), json!(false)), "{report}");
}
