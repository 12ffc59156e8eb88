//! TestApp: a real server on port 0 over a fresh database (SQLite always; PostgreSQL when
//! COURSEGRAPH_TEST_POSTGRES_URL is set, one new database per test, reached through the
//! PgBouncer at COURSEGRAPH_TEST_PGBOUNCER_URL when that is set), plus token minting and
//! GraphQL helpers.

use std::{net::SocketAddr, sync::Arc};

use coursegraph::{
    app::App,
    config::Config,
    token::{self, TokenArgs},
};
use reqwest::{StatusCode, header::HeaderMap};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-that-is-long-enough-0123456789";

/// A database that exists for one test.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
    /// A database the test manages itself.
    External {
        url: String,
    },
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("COURSEGRAPH_TEST_POSTGRES_URL").ok().filter(|s| !s.is_empty()) {
            Some(admin_url) => Self::postgres_on(&admin_url).await,
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                TestDb::Sqlite { _dir: dir, url }
            }
        }
    }

    /// A new database on the PostgreSQL server of `admin_url`, dropped with this value.
    pub async fn postgres_on(admin_url: &str) -> Self {
        let name = format!("cg_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url).await.expect("connect to the test PostgreSQL server");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        admin.close().await.ok();
        let url = replace_db_name(admin_url, &name);
        TestDb::Postgres { admin_url: admin_url.to_owned(), name, url }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } | TestDb::External { url } => url,
        }
    }
}

/// postgres://user@host:port/db?x → …/name?x
pub fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name, .. } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop from a fresh runtime on another thread: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                        let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub app: App,
    pub client: reqwest::Client,
    pub db: Arc<TestDb>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a tweaked config.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = Arc::new(TestDb::new().await);
        Self::spawn_on(db, tweak).await
    }

    /// Spawns another server on an existing test database (e.g. a second "process").
    pub async fn spawn_on(db: Arc<TestDb>, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests(db.url(), SECRET);
        // CI's PgBouncer pass: the server reaches each test database through a
        // transaction-pooling PgBouncer (scripts/scaleout.sh), LISTEN directly.
        if let (Ok(bouncer), TestDb::Postgres { name, url, .. }) =
            (std::env::var("COURSEGRAPH_TEST_PGBOUNCER_URL"), &*db)
            && !bouncer.is_empty()
        {
            config.database.url = replace_db_name(&bouncer, name);
            config.database.listen_url = Some(url.clone());
        }
        // CI's third pass runs the whole suite with PostgreSQL row-level security enforced.
        if let Ok(role) = std::env::var("COURSEGRAPH_TEST_DB_ROLE")
            && !role.is_empty()
            && db.url().starts_with("postgres")
        {
            config.database.role = Some(role);
        }
        tweak(&mut config);
        let app = App::build(config).await.expect("build app");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, server) = app
            .bind(async move {
                let _ = rx.await;
            })
            .await
            .expect("bind");
        tokio::spawn(server);
        // On PostgreSQL, changes and live events reach a process through its listener,
        // which connects in the background: a test starts once it hears them.
        let cache = app.state.sign_in.provisioner.cache().clone();
        until(std::time::Duration::from_secs(10), "the listener connected", || {
            let cache = cache.clone();
            async move { cache.is_live() }
        })
        .await;
        let client = reqwest::Client::builder().build().unwrap();
        Self { addr, app, client, db, shutdown: Some(tx) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.app.state.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn().get_database_backend()
    }

    /// SQL statements executed so far on the app's pool.
    pub fn statements(&self) -> u64 {
        self.app.state.statements.get()
    }

    /// A token for `sub`, member of external org `org` with IdP role `role`.
    pub fn token(&self, sub: &str, org: Option<&str>, role: Option<&str>) -> String {
        self.token_with(token_args(sub, org, role))
    }

    pub fn token_with(&self, args: TokenArgs) -> String {
        token::mint(&self.app.state.config, &args).expect("mint token")
    }

    /// POSTs a GraphQL operation; returns status, body and headers.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> (StatusCode, Value, HeaderMap) {
        self.gql_with(token, &[], query, variables).await
    }

    pub async fn gql_with(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    /// `gql` that expects no errors and returns `data`.
    pub async fn data(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body, _) = self.gql(Some(token), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Counts rows of `table` (optionally with a WHERE clause).
    pub async fn count(&self, table: &str, filter: &str) -> i64 {
        let sql = if filter.is_empty() {
            format!("SELECT COUNT(*) AS n FROM {table}")
        } else {
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}")
        };
        let row = self
            .conn()
            .query_one_raw(Statement::from_string(self.backend(), sql))
            .await
            .expect("count")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("n")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A token for the default test configuration (HS256 with [`SECRET`]), no server needed.
pub fn mint(sub: &str, org: Option<&str>, role: Option<&str>) -> String {
    let config = Config::for_tests("sqlite::memory:", SECRET);
    token::mint(&config, &token_args(sub, org, role)).expect("mint token")
}

pub fn token_args(sub: &str, org: Option<&str>, role: Option<&str>) -> TokenArgs {
    TokenArgs {
        sub: sub.into(),
        email: Some(format!("{sub}@example.com")),
        name: Some(format!("User {sub}")),
        org: org.map(Into::into),
        org_name: None,
        roles: role.map(|r| vec![r.to_owned()]).unwrap_or_default(),
        permissions: vec![],
        ttl: "1h".parse().unwrap(),
        issuer: None,
        audience: None,
        extra_claims: vec![],
    }
}

/// Polls `f` every few milliseconds until it holds; panics after `within`; returns how long
/// it took. For waiting on a condition the server exposes, instead of sleeping a guessed while.
pub async fn until<F, Fut>(within: std::time::Duration, what: &str, mut f: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    start.elapsed()
}

impl TestApp {
    /// Waits until `n` subscriptions of this server listen for live events.
    pub async fn listening(&self, n: usize) {
        let hub = self.app.state.hub.clone();
        until(std::time::Duration::from_secs(5), "subscriptions listening", || {
            let hub = hub.clone();
            async move { hub.counts().1 >= n }
        })
        .await;
    }
}

impl ServerProcess {
    /// Waits until `n` subscriptions of this server process listen for live events.
    pub async fn listening(&self, n: usize) {
        let (client, url) = (reqwest::Client::new(), self.url("/metrics"));
        until(std::time::Duration::from_secs(5), "subscriptions listening", || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let text = client.get(url).send().await.unwrap().text().await.unwrap();
                text.lines()
                    .find_map(|l| l.strip_prefix("coursegraph_live_subscribers "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|v| v >= n as f64)
            }
        })
        .await;
    }
}

/// The single error of a response, asserting there is exactly one.
pub fn only_error(body: &Value) -> &Value {
    let errs = body["errors"].as_array().unwrap_or_else(|| panic!("no errors in {body}"));
    assert_eq!(errs.len(), 1, "expected one error: {body}");
    &errs[0]
}

/// `extensions.code` of the single error.
pub fn error_code(body: &Value) -> String {
    only_error(body)["extensions"]["code"].as_str().unwrap_or_default().to_owned()
}

/// The real `coursegraph` binary, started as its own process (port 0, JSON logs).
pub struct ServerProcess {
    child: std::process::Child,
    pub addr: String,
    logs: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_coursegraph");

/// A `coursegraph` command with no COURSEGRAPH_* / DATABASE_URL inherited from the test's environment.
pub fn clean_command(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("COURSEGRAPH_") || k == "DATABASE_URL" {
            c.env_remove(k);
        }
    }
    c
}

impl ServerProcess {
    /// Starts `coursegraph serve` in `dir` with `envs`, and waits for its address.
    pub fn start(dir: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut cmd = clean_command(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("COURSEGRAPH_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start coursegraph");
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Self { child, addr: String::new(), logs, seen: Vec::new() };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // On PostgreSQL the process hears changes and live events once its listener is
        // connected: wait for that too.
        let on_postgres = envs.iter().any(|(k, v)| *k == "COURSEGRAPH_DATABASE_URL" && v.starts_with("postgres"));
        let mut hearing = !on_postgres;
        while p.addr.is_empty() || !hearing {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = p.logs.recv_timeout(left).unwrap_or_else(|_| panic!("no address logged; saw {:?}", p.seen));
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("coursegraph listening")) {
                p.addr = v["fields"]["addr"].as_str().unwrap_or_default().to_owned();
            }
            hearing |= v["fields"]["message"] == "listening for changes from every server process";
            p.seen.push(line);
        }
        p
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The log lines once `done` holds of them (they arrive through a pipe, a moment after
    /// what they describe); panics after 5 s.
    pub fn logs_until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if done(&logs) {
                return logs;
            }
            assert!(std::time::Instant::now() < deadline, "no log lines for {what} within 5 s");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Every log line so far, parsed.
    pub fn logs(&mut self) -> Vec<Value> {
        while let Ok(l) = self.logs.try_recv() {
            self.seen.push(l);
        }
        self.seen.iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit (after a signal), up to `timeout`.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
