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
