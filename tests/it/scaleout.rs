//! Scale-out on PostgreSQL, on the set `scripts/scaleout.sh up` starts: a
//! primary, a streaming standby, PgBouncer in transaction mode and two `coursegraph serve`
//! processes. Read your writes across processes while the standby's replay is paused, the
//! lag bound, provisioning races and live updates across the two processes through
//! PgBouncer, a standby that dies under a running server or is down from the start, and
//! row-level security on standby reads. Ignored unless asked for (`-- --ignored`): CI's
//! scale-out step runs them with the COURSEGRAPH_SCALEOUT_* variables of
//! `scripts/scaleout.sh env` set.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use coursegraph::{config::Config, token};
use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

use crate::{helpers::*, ws};

/// The running set, from `scripts/scaleout.sh env`.
struct Set {
    primary: String,
    standby: String,
    bouncer: String,
    servers: [String; 2],
    secret: String,
    max_lag: Duration,
}

/// The set, from the environment; these tests are ignored unless asked for, and asked
/// for without the set, they fail.
fn set() -> Set {
    let var = |k: &str| std::env::var(format!("COURSEGRAPH_SCALEOUT_{k}")).ok().filter(|v| !v.is_empty());
    let primary =
        var("PRIMARY_URL").expect("no scale-out set: scripts/scaleout.sh up; eval \"$(scripts/scaleout.sh env)\"");
    let max_lag: coursegraph::config::HumanDuration = var("READ_MAX_LAG").unwrap_or("5s".into()).parse().unwrap();
    Set {
        primary,
        standby: var("STANDBY_URL").expect("COURSEGRAPH_SCALEOUT_STANDBY_URL"),
        bouncer: var("BOUNCER_URL").expect("COURSEGRAPH_SCALEOUT_BOUNCER_URL"),
        servers: [var("SERVER_1").expect("SERVER_1"), var("SERVER_2").expect("SERVER_2")],
        secret: var("JWT_SECRET").expect("COURSEGRAPH_SCALEOUT_JWT_SECRET"),
        max_lag: max_lag.0,
    }
}

/// Tests that pause the standby's replay, need it to keep up, or send traffic to the set's
/// two server processes (whose metrics another test counts) take turns.
static REPLAY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CREATE: &str =
    "mutation($t: String!) { createCourse(input: { title: $t, difficultyLevel: BEGINNER, isPublished: true }) { id } }";
const COURSE: &str = "query($c: ID!) { course(id: $c) { id title } }";
const COURSES: &str = "{ courses(first: 100) { nodes { id } } }";

impl Set {
    fn token(&self, sub: &str, org: &str, role: &str) -> String {
        let config = Config::for_tests("sqlite::memory:", &self.secret);
        token::mint(&config, &token_args(sub, Some(org), Some(role))).expect("mint")
    }
}

async fn connect(url: &str) -> DatabaseConnection {
    sea_orm::Database::connect(url).await.expect("connect")
}

async fn scalar(conn: &DatabaseConnection, sql: &str) -> Option<i64> {
    let row = conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.expect(sql)?;
    row.try_get::<Option<i64>>("", "v").expect("v")
}

/// Waits until the standby has replayed everything the primary has written so far, then
/// long enough for every server's monitor to have seen it.
async fn caught_up(primary: &DatabaseConnection, standby: &DatabaseConnection) {
    let target = scalar(primary, "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS v").await.unwrap();
    let started = Instant::now();
    loop {
        let replayed =
            scalar(standby, "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS v").await.unwrap_or(0);
        if replayed >= target {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the standby did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The standby's replay, paused until this is dropped (also when the test fails).
struct Paused(String);

impl Paused {
    async fn new(standby_url: &str) -> Self {
        let standby = connect(standby_url).await;
        standby.execute_unprepared("SELECT pg_wal_replay_pause()").await.unwrap();
        for _ in 0..200 {
            let row = standby
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT pg_get_wal_replay_pause_state() AS s",
                ))
                .await
                .unwrap()
                .unwrap();
            if row.try_get::<String>("", "s").unwrap() == "paused" {
                return Self(standby_url.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("replay did not pause");
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let url = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(c) = sea_orm::Database::connect(&url).await {
                    let _ = c.execute_unprepared("SELECT pg_wal_replay_resume()").await;
                }
            });
        })
        .join();
    }
}

async fn post(server: &str, token: &str, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables });
    let resp = reqwest::Client::new().post(format!("{server}/graphql")).bearer_auth(token).json(&body).send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON")
}

/// `coursegraph_db_reads_total{target, reason}` of a server's /metrics.
async fn reads(server: &str, target: &str, reason: &str) -> f64 {
    let text = reqwest::get(format!("{server}/metrics")).await.unwrap().text().await.unwrap();
    reads_in(&text, target, reason)
}

fn reads_in(metrics: &str, target: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("coursegraph_db_reads_total{"))
        .filter(|l| l.contains(&format!("target=\"{target}\"")) && l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn a_write_on_one_process_is_read_back_on_the_other_while_replay_is_paused() {
    let set = set();
    let _turn = REPLAY.lock().await;
    let (primary, standby) = (connect(&set.primary).await, connect(&set.standby).await);
    let [one, two] = &set.servers;
    let org = unique("ryw");
    let writer = set.token(&unique("wanda"), &org, "admin");
    let other = set.token(&unique("otto"), &org, "member");
    for t in [&writer, &other] {
        let d = post(one, t, "{ me { activeRole } }", json!({})).await;
        assert!(d["errors"].is_null(), "{d}");
    }
    caught_up(&primary, &standby).await;

    let paused = Paused::new(&set.standby).await;
    let d = post(one, &writer, CREATE, json!({ "t": "Written on one" })).await;
    let id = d["data"]["createCourse"]["id"].as_str().unwrap_or_else(|| panic!("{d}")).to_owned();

    // The writer, on the other process, reads it at once: from the primary.
    let own = reads(two, "primary", "own_write").await;
    let d = post(two, &writer, COURSE, json!({ "c": id })).await;
    assert_eq!(d["data"]["course"]["id"], id.as_str(), "{d}");
    assert_eq!(reads(two, "primary", "own_write").await, own + 1.0);

    // Another viewer, who wrote nothing, reads the standby, which has not replayed it.
    let on_replica = reads(two, "replica", "caught_up").await;
    let d = post(two, &other, COURSE, json!({ "c": id })).await;
    assert!(d["data"]["course"].is_null(), "the paused standby cannot have the course yet: {d}");
    assert_eq!(reads(two, "replica", "caught_up").await, on_replica + 1.0);

    // Past COURSEGRAPH_READ_MAX_LAG the standby is too far behind: everyone reads the
    // primary, with no error.
    tokio::time::sleep(set.max_lag + Duration::from_millis(500)).await;
    let lagging = reads(two, "primary", "replica_lag").await;
    let d = post(two, &other, COURSE, json!({ "c": id })).await;
    assert_eq!(d["data"]["course"]["id"], id.as_str(), "{d}");
    assert!(d["errors"].is_null(), "{d}");
    assert_eq!(reads(two, "primary", "replica_lag").await, lagging + 1.0);
    // Readiness follows the primary.
    assert_eq!(reqwest::get(format!("{two}/readyz")).await.unwrap().status(), 200);

    // Replay resumes: once caught up, the other viewer reads the standby again, and it has it.
    drop(paused);
    caught_up(&primary, &standby).await;
    let on_replica = reads(two, "replica", "caught_up").await;
    let d = post(two, &other, COURSE, json!({ "c": id })).await;
    assert_eq!(d["data"]["course"]["id"], id.as_str(), "{d}");
    assert_eq!(reads(two, "replica", "caught_up").await, on_replica + 1.0);
    // And the writer too, now that their write is replayed.
    let on_replica = reads(one, "replica", "caught_up").await;
    post(one, &writer, COURSE, json!({ "c": id })).await;
    assert_eq!(reads(one, "replica", "caught_up").await, on_replica + 1.0);
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn first_sight_races_across_both_processes_through_pgbouncer_create_one_of_each() {
    let set = set();
    let _turn = REPLAY.lock().await;
    let (sub, org) = (unique("racer"), unique("race-org"));
    let t = set.token(&sub, &org, "admin");
    let answers = join_all((0..24).map(|i| {
        let (server, t) = (set.servers[i % 2].clone(), t.clone());
        async move { post(&server, &t, "{ me { activeRole user { id } } }", json!({})).await }
    }))
    .await;
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|d| {
            assert_eq!(d["data"]["me"]["activeRole"], "ADMIN", "{d}");
            d["data"]["me"]["user"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one user for every answer: {ids:?}");
    let primary = connect(&set.primary).await;
    let n = |sql: String| {
        let primary = primary.clone();
        async move { scalar(&primary, &sql).await.unwrap() }
    };
    assert_eq!(n(format!("SELECT COUNT(*) AS v FROM users WHERE external_id = '{sub}'")).await, 1);
    assert_eq!(n(format!("SELECT COUNT(*) AS v FROM organizations WHERE external_id = '{org}'")).await, 1);
    assert_eq!(
        n(format!(
            "SELECT COUNT(*) AS v FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.external_id = '{sub}'"
        ))
        .await,
        1
    );
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn a_subscriber_on_one_process_hears_a_write_through_pgbouncer_on_the_other() {
    let set = set();
    let _turn = REPLAY.lock().await;
    let org = unique("live");
    let admin = set.token(&unique("ada"), &org, "admin");
    let member = set.token(&unique("mia"), &org, "member");
    let [one, two] = &set.servers;
    post(one, &admin, "{ me { activeRole } }", json!({})).await;
    post(two, &member, "{ me { activeRole } }", json!({})).await;
    let mut sub = ws::connect(two.trim_start_matches("http://"), &member).await;
    sub.subscribe("1", "subscription { courseChanges { kind courseId } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = post(one, &admin, CREATE, json!({ "t": "Heard on two" })).await;
    let p = sub.next_payload("1").await;
    assert_eq!(p["data"]["courseChanges"]["courseId"], d["data"]["createCourse"]["id"], "{p}");
    assert_eq!(p["data"]["courseChanges"]["kind"], "ADDED");
}

/// A TCP relay to the standby that can be cut, as if the standby died.
struct Relay {
    port: u16,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn to(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (target, registry) = (target.to_owned(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(relay);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { port, tasks }
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// `host:port` of a postgres:// URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let hostport = rest.split('/').next().unwrap();
    hostport.rsplit('@').next().unwrap().to_owned()
}

/// A server of this test process on its own database of the scale-out set, through
/// PgBouncer, reading from `read_url`'s server.
async fn spawn_reading_from(set: &Set, read_host: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let db = Arc::new(TestDb::postgres_on(&replace_db_name(&set.primary, "postgres")).await);
    let TestDb::Postgres { name, url, .. } = &*db else { unreachable!() };
    // The standby has the new database once it has replayed its creation.
    let standby = replace_db_name(&set.standby, name);
    let started = Instant::now();
    while sea_orm::Database::connect(&standby).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the new database did not reach the standby");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (bouncer, direct) = (replace_db_name(&set.bouncer, name), url.clone());
    let read = format!("postgres://postgres@{read_host}/{name}");
    TestApp::spawn_on(db, move |c| {
        c.database.url = bouncer;
        c.database.listen_url = Some(direct);
        c.database.read_url = Some(read);
        tweak(c);
    })
    .await
}

fn metrics_of(app: &TestApp) -> String {
    app.app.state.metrics.render()
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn a_standby_that_dies_under_a_running_server_costs_no_error() {
    let set = set();
    let _turn = REPLAY.lock().await;
    let relay = Relay::to(&host_port(&set.standby)).await;
    let app = spawn_reading_from(&set, &format!("127.0.0.1:{}", relay.port), |_| {}).await;
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let member = app.token("mia", Some("acme"), Some("member"));
    app.data(&member, "{ me { activeRole } }", json!({})).await;
    let id = app.data(&admin, CREATE, json!({ "t": "Survives" })).await["createCourse"]["id"].clone();
    let (primary, standby) =
        (connect(app.db.url()).await, connect(&replace_db_name(&set.standby, &db_name(&app))).await);
    caught_up(&primary, &standby).await;
    let d = app.data(&member, COURSE, json!({ "c": id })).await;
    assert_eq!(d["course"]["id"], id);
    assert_eq!(reads_in(&metrics_of(&app), "replica", "caught_up"), 1.0, "the member read the standby");

    // The standby goes away mid-flight: pooled connections break, new ones are refused.
    // (The first request may have read the primary too, before the monitor's first look.)
    let fell_back = |m: &str| reads_in(m, "primary", "replica_failed") + reads_in(m, "primary", "replica_down");
    let before = fell_back(&metrics_of(&app));
    relay.cut();
    let d = app.data(&member, COURSE, json!({ "c": id })).await;
    assert_eq!(d["course"]["id"], id, "answered from the primary");
    let m = metrics_of(&app);
    assert_eq!(fell_back(&m), before + 1.0, "the read fell back to the primary: {m}");
    // From now on reads go to the primary straight away, and the server stays ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.data(&member, COURSES, json!({})).await;
    assert!(reads_in(&metrics_of(&app), "primary", "replica_down") >= 1.0);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

fn db_name(app: &TestApp) -> String {
    match &*app.db {
        TestDb::Postgres { name, .. } => name.clone(),
        _ => unreachable!("scale-out tests run on PostgreSQL"),
    }
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn a_standby_that_is_down_at_start_only_means_reading_from_the_primary() {
    let set = set();
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_reading_from(&set, &closed.to_string(), |_| {}).await;
    let admin = app.token("ada", Some("acme"), Some("admin"));
    let id = app.data(&admin, CREATE, json!({ "t": "No replica" })).await["createCourse"]["id"].clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = app.data(&admin, COURSE, json!({ "c": id })).await;
    assert_eq!(d["course"]["id"], id);
    assert_eq!(reads_in(&metrics_of(&app), "replica", "caught_up"), 0.0);
    assert!(reads_in(&metrics_of(&app), "primary", "replica_down") >= 1.0);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn standby_reads_keep_row_level_security_and_tenant_isolation() {
    let set = set();
    let _turn = REPLAY.lock().await;
    let app =
        spawn_reading_from(&set, &host_port(&set.standby), |c| c.database.role = Some("coursegraph_app".into())).await;
    let mut courses = Vec::new();
    let mut members = Vec::new();
    for org in ["acme", "globex"] {
        let admin = app.token(&format!("{org}-admin"), Some(org), Some("admin"));
        let member = app.token(&format!("{org}-member"), Some(org), Some("member"));
        app.data(&member, "{ me { activeRole } }", json!({})).await;
        let id = app.data(&admin, CREATE, json!({ "t": format!("{org} course") })).await["createCourse"]["id"].clone();
        courses.push(id);
        members.push(member);
    }
    let primary = connect(app.db.url()).await;
    let standby = connect(&replace_db_name(&set.standby, &db_name(&app))).await;
    caught_up(&primary, &standby).await;
    let before = reads_in(&metrics_of(&app), "replica", "caught_up");
    for (i, member) in members.iter().enumerate() {
        let d = app.data(member, COURSES, json!({})).await;
        assert_eq!(d["courses"]["nodes"], json!([{ "id": courses[i] }]), "only their own tenant's course");
        let other = &courses[1 - i];
        let d = app.gql(Some(member), COURSE, json!({ "c": other })).await.1;
        assert!(d["data"]["course"].is_null(), "another tenant's course is not there: {d}");
    }
    assert_eq!(reads_in(&metrics_of(&app), "replica", "caught_up"), before + 4.0, "all four read the standby");
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn the_pooler_probe_tells_pgbouncer_in_transaction_mode_from_a_direct_connection() {
    let set = set();
    let t = Duration::from_secs(5);
    assert!(!coursegraph::db::transaction_pooled(&set.primary, t).await.unwrap(), "the primary, directly");
    assert!(!coursegraph::db::transaction_pooled(&set.standby, t).await.unwrap(), "the standby, directly");
    assert!(coursegraph::db::transaction_pooled(&set.bouncer, t).await.unwrap(), "PgBouncer, pool_mode = transaction");
    // Also when the pooler has idle server sessions to spare: four clients' transactions at
    // once leave it four, and it need not lend a holder the one the probe's asker had.
    use sqlx::Connection as _;
    let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&set.bouncer)
        .unwrap()
        .extra_float_digits(None)
        .statement_cache_capacity(0);
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut conn = sqlx::postgres::PgConnection::connect_with(&opts).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("SELECT pg_backend_pid()").execute(&mut conn).await.unwrap();
        busy.push(conn);
    }
    for mut conn in busy {
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    for _ in 0..5 {
        assert!(coursegraph::db::transaction_pooled(&set.bouncer, t).await.unwrap(), "PgBouncer with idle sessions");
    }
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn pointed_at_pgbouncer_concurrent_writes_and_reads_of_two_servers_work() {
    let set = set();
    // COURSEGRAPH_DB_PREPARED_STATEMENTS is left at `auto`: the probe finds the pooler and
    // statements are prepared unnamed. Two servers share the database.
    let db = Arc::new(TestDb::postgres_on(&replace_db_name(&set.primary, "postgres")).await);
    let TestDb::Postgres { name, url, .. } = &*db else { unreachable!() };
    let (bouncer, direct) = (replace_db_name(&set.bouncer, name), url.clone());
    let via_bouncer = move |c: &mut Config| {
        assert_eq!(c.database.prepared_statements, coursegraph::db::PreparedStatements::Auto);
        c.database.url = bouncer;
        c.database.listen_url = Some(direct);
    };
    let one = TestApp::spawn_on(db.clone(), via_bouncer.clone()).await;
    let two = TestApp::spawn_on(db.clone(), via_bouncer).await;
    let writes = join_all((0..16).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        let t = app.token(&format!("writer-{}", i % 4), Some(&format!("org-{}", i % 2)), Some("admin"));
        async move { app.gql(Some(&t), CREATE, json!({ "t": format!("Course {i}") })).await.1 }
    }))
    .await;
    for d in &writes {
        assert!(d["data"]["createCourse"]["id"].is_string(), "{d}");
    }
    let t = one.token("writer-0", Some("org-0"), Some("admin"));
    let d = two.data(&t, COURSES, json!({})).await;
    assert_eq!(d["courses"]["nodes"].as_array().unwrap().len(), 8, "{d}");
    assert_eq!(one.count("courses", "").await, 16);
}

#[tokio::test]
#[ignore = "needs the scale-out set: scripts/scaleout.sh up, eval \"$(scripts/scaleout.sh env)\", then cargo test --test it scaleout -- --ignored (CI does)"]
async fn behind_pgbouncer_migrate_and_seed_need_nothing_else_and_serve_asks_for_a_listen_url() {
    let set = set();
    let db = TestDb::postgres_on(&replace_db_name(&set.primary, "postgres")).await;
    let TestDb::Postgres { name, .. } = &db else { unreachable!() };
    let bouncer = replace_db_name(&set.bouncer, name);
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["migrate", "seed"] {
        let out = clean_command(dir.path())
            .arg(cmd)
            .env("COURSEGRAPH_DATABASE_URL", &bouncer)
            .env("COURSEGRAPH_JWT_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let primary = connect(db.url()).await;
    assert!(scalar(&primary, "SELECT COUNT(*) AS v FROM courses").await.unwrap() > 0, "the demo data is there");
    // Serving needs LISTEN, which the pooler cannot carry: a clear refusal, naming the fix.
    let out = clean_command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("COURSEGRAPH_DATABASE_URL", &bouncer)
        .env("COURSEGRAPH_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COURSEGRAPH_DATABASE_LISTEN_URL") && err.contains("transaction pooler"), "{err}");
}
