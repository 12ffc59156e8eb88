//! Benchmark load driver for W3 and W4 (see BENCHMARKS.md; bench/run.sh runs it).
//!
//! W3: `first-sight` — every request carries the token of a user the server has never
//! seen (N users across M new organizations); run again with the same tokens for the
//! warm case. W4: `writes` — an instructor creates a track, reorders the course's
//! tracks, and deletes the new track again, in a loop, one course per connection.
//! L1: `live` — many subscribers of one organization's `courseChanges` over WebSocket,
//! then one course change at a time: how long until every subscriber has it.
//! Prints one JSON line: requests, errors, req/s, p50/p90/p99/max in milliseconds.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// GraphQL endpoint, e.g. http://127.0.0.1:8000/graphql
    #[arg(long)]
    url: String,
    /// HS256 secret the server verifies with.
    #[arg(long)]
    secret: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The server's Prometheus endpoint: statements per request are reported from its
    /// `coursegraph_db_statements_total` counter, read before and after each phase.
    #[arg(long)]
    metrics: Option<String>,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// W3: one request per never-seen user.
    FirstSight {
        /// Prefix of the generated subjects and organizations (use a fresh one per run).
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 1000)]
        users: usize,
        #[arg(long, default_value_t = 50)]
        orgs: usize,
        /// Never-seen users of one more organization provisioned first, untimed: the
        /// server's pool then holds `concurrency` connections with their statements
        /// prepared, as in a server that has been up for a while.
        #[arg(long, default_value_t = 64)]
        warmup: usize,
    },
    /// W4: create + reorder + delete tracks as an instructor, for a duration.
    Writes {
        /// The instructor's `sub` and organization (external id).
        #[arg(long)]
        sub: String,
        #[arg(long)]
        org: String,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// L1: subscribers of `courseChanges` (distinct members of `org`, `per_connection`
    /// subscriptions per WebSocket), then `changes` course updates, one at a time.
    Live {
        #[arg(long)]
        org: String,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 1)]
        per_connection: usize,
        #[arg(long, default_value_t = 10)]
        changes: usize,
        /// The server's pid, for its RSS.
        #[arg(long)]
        pid: Option<u32>,
    },
}

fn token(secret: &str, sub: &str, org: &str, role: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": "coursegraph", "sub": sub, "iat": now, "exp": now + 3600,
        "email": format!("{sub}@bench.example"), "name": sub,
        "organization_id": org, "org_name": org, "roles": [role],
    });
    jsonwebtoken::encode(&Default::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()))
        .expect("sign")
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    /// Sends one operation; returns the body if it succeeded without errors.
    async fn gql(&self, token: &str, query: &str, vars: Value) -> Result<Value, String> {
        let r = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": vars }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() || body.get("errors").is_some() {
            return Err(format!("{status}: {body}"));
        }
        Ok(body)
    }
}

impl Client {
    /// The server's statement counter, if a metrics endpoint was given.
    async fn statements(&self, metrics: Option<&str>) -> Option<f64> {
        let text = self.http.get(metrics?).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix("coursegraph_db_statements_total ")?.trim().parse().ok())
    }
}

struct Phase {
    name: String,
    concurrency: usize,
    statements: Option<f64>,
}

fn report(phase: Phase, mut lat: Vec<Duration>, errors: usize, elapsed: Duration) -> Value {
    lat.sort();
    let pct = |p: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i].as_secs_f64() * 1e3
    };
    let requests = lat.len() + errors;
    json!({
        "workload": phase.name, "concurrency": phase.concurrency, "requests": requests, "errors": errors,
        "statements_per_req": phase.statements.map(|s| s / requests.max(1) as f64),
        "rps": (lat.len() + errors) as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "max_ms": lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
    })
}

/// Waits for a phase's connections and reports it, with the statements it cost.
async fn finish(
    client: &Client,
    metrics: Option<&str>,
    concurrency: usize,
    name: String,
    st0: Option<f64>,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
) -> Value {
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.expect("task");
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    let st1 = client.statements(metrics).await;
    let phase = Phase { name, concurrency, statements: st0.zip(st1).map(|(a, b)| b - a) };
    report(phase, lat, errors, elapsed)
}

/// The server's resident set size and its high-water mark, in MiB.
fn rss(pid: Option<u32>) -> (Option<f64>, Option<f64>) {
    let Some(text) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok()) else {
        return (None, None);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The server's CPU time so far (user + system), in seconds (Linux: /proc/PID/stat).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A gauge from the server's /metrics.
async fn gauge(client: &Client, metrics: &str, name: &str) -> Option<f64> {
    let text = client.http.get(metrics).send().await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// L1: see [`Workload::Live`].
async fn live(
    args: &Args,
    client: &Client,
    org: &str,
    subscribers: usize,
    per_connection: usize,
    changes: usize,
    pid: Option<u32>,
) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
    let metrics = args.metrics.clone().expect("--metrics is needed to know when every subscriber listens");
    let ws_url = args.url.replacen("http", "ws", 1);
    let connections = subscribers.div_ceil(per_connection);
    let admin = token(&args.secret, "live-bench-admin", org, "admin");
    let course = client
        .gql(&admin, "{ organization { courses(first: 1, filter: { published: true }) { nodes { id } } } }", json!({}))
        .await
        .expect("a published course");
    let course = course["data"]["organization"]["courses"]["nodes"][0]["id"].as_str().expect("course id").to_owned();
    let (rss0, _) = rss(pid);
    let receipts: Arc<std::sync::Mutex<Vec<Instant>>> =
        Arc::new(std::sync::Mutex::new(Vec::with_capacity(subscribers * changes)));
    let ready = Arc::new(AtomicUsize::new(0));
    // Connections open at most 64 at a time: the first sight of each member is a write.
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let n = per_connection.min(subscribers - c * per_connection);
        let (t, url, receipts, ready, gate) = (
            token(&args.secret, &format!("live-bench-{c:05}"), org, "member"),
            ws_url.clone(),
            receipts.clone(),
            ready.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let mut req = url.into_client_request().expect("url");
            req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("connect");
            let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {t}") } });
            ws.send(Message::text(init.to_string())).await.expect("init");
            match ws.next().await {
                Some(Ok(Message::Text(m))) if m.contains("connection_ack") => {}
                other => panic!("no ack: {other:?}"),
            }
            for i in 0..n {
                let sub = json!({ "id": i.to_string(), "type": "subscribe", "payload": {
                    "query": "subscription { courseChanges { kind courseId course { id title } } }" } });
                ws.send(Message::text(sub.to_string())).await.expect("subscribe");
            }
            drop(permit);
            ready.fetch_add(n, Ordering::Relaxed);
            let mut mine = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    if t.contains("\"next\"") {
                        mine.push(Instant::now());
                        if mine.len() == n * changes {
                            break;
                        }
                    } else {
                        panic!("unexpected frame: {t}");
                    }
                }
            }
            receipts.lock().unwrap().extend(mine);
        }));
    }
    while ready.load(Ordering::Relaxed) < subscribers {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_s = started.elapsed().as_secs_f64();
    // Every subscription listens on the server before the first change.
    while gauge(client, &metrics, "coursegraph_live_subscribers").await.unwrap_or(0.0) < subscribers as f64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_idle, _) = rss(pid);
    // What the server spends with every subscriber connected and nothing happening.
    let idle0 = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cpu_ms_per_s = idle0.zip(cpu_seconds(pid)).map(|(a, b)| (b - a) * 1e3 / 2.0);
    let cpu0 = cpu_seconds(pid);
    let mut sent = Vec::new();
    for k in 0..changes {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t0 = Instant::now();
        client
            .gql(
                &admin,
                "mutation($c: ID!, $t: String!) { updateCourse(id: $c, input: { title: $t }) { id } }",
                json!({ "c": course, "t": format!("Live {k}") }),
            )
            .await
            .expect("change");
        sent.push(t0);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, t).await;
    }
    let (_, rss_peak) = rss(pid);
    // The server's CPU per change (everything it did while the changes were delivered).
    // (Less what it spends idle over the 1.5 s between changes.)
    let cpu_per_change_ms = cpu0
        .zip(cpu_seconds(pid))
        .map(|(a, b)| (b - a) * 1e3 / changes as f64 - idle_cpu_ms_per_s.unwrap_or(0.0) * 1.5);
    let receipts = receipts.lock().unwrap().clone();
    // Each receipt belongs to the latest change sent before it.
    let mut lat: Vec<Duration> =
        receipts.iter().filter_map(|r| sent.iter().rev().find(|s| *s <= r).map(|s| *r - *s)).collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    };
    println!(
        "{}",
        json!({
            "workload": "L1", "subscribers": subscribers, "connections": connections, "changes": changes,
            "expected": subscribers * changes, "received": lat.len(), "connect_s": connect_s,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": lat.last().map(|d| d.as_secs_f64() * 1e3),
            "server_cpu_ms_per_change": cpu_per_change_ms, "server_idle_cpu_ms_per_s": idle_cpu_ms_per_s, "rss_before_mib": rss0, "rss_subscribed_mib": rss_idle, "rss_peak_mib": rss_peak,
        })
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let client = Arc::new(Client {
        http: reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build().expect("client"),
        url: args.url.clone(),
    });
    match &args.workload {
        Workload::Live { org, subscribers, per_connection, changes, pid } => {
            live(&args, &client, org, *subscribers, *per_connection, *changes, *pid).await;
        }
        Workload::FirstSight { prefix, users, orgs, warmup } => {
            let (users, orgs) = (*users, *orgs);
            let warm: Arc<Vec<String>> = Arc::new(
                (0..*warmup)
                    .map(|i| {
                        token(
                            &args.secret,
                            &format!("{prefix}-warmup-{i:05}"),
                            &format!("{prefix}-warmup-org"),
                            "member",
                        )
                    })
                    .collect(),
            );
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..args.concurrency {
                let (client, warm, next) = (client.clone(), warm.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    while let Some(t) = warm.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let b = client.gql(t, "{ me { activeRole } }", json!({})).await.expect("warm-up request");
                        assert_eq!(b["data"]["me"]["activeRole"], "MEMBER", "warm-up: {b}");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("warm-up task");
            }
            let tokens: Arc<Vec<String>> = Arc::new(
                (0..users)
                    .map(|i| {
                        let org = format!("{prefix}-org-{:03}", i % orgs);
                        token(&args.secret, &format!("{prefix}-user-{i:05}"), &org, "member")
                    })
                    .collect(),
            );
            // Identity only: a warm request's statements are then exactly its identity's cost.
            const ME: &str = "{ me { user { id } activeRole } }";
            for phase in ["cold", "warm"] {
                let st0 = client.statements(args.metrics.as_deref()).await;
                let next = Arc::new(AtomicUsize::new(0));
                let started = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..args.concurrency {
                    let (client, tokens, next) = (client.clone(), tokens.clone(), next.clone());
                    tasks.push(tokio::spawn(async move {
                        let (mut lat, mut errors) = (Vec::new(), 0usize);
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(t) = tokens.get(i) else { break };
                            let t0 = Instant::now();
                            match client.gql(t, ME, json!({})).await {
                                Ok(b) if b["data"]["me"]["activeRole"] == "MEMBER" => lat.push(t0.elapsed()),
                                Ok(b) => {
                                    eprintln!("unexpected: {b}");
                                    errors += 1
                                }
                                Err(e) => {
                                    eprintln!("error: {e}");
                                    errors += 1
                                }
                            }
                        }
                        (lat, errors)
                    }));
                }
                let name = format!("W3-{phase}");
                println!(
                    "{}",
                    finish(&client, args.metrics.as_deref(), args.concurrency, name, st0, started, tasks).await
                );
            }
        }
        Workload::Writes { sub, org, seconds } => {
            let seconds = *seconds;
            let t = Arc::new(token(&args.secret, sub, org, "instructor"));
            // The courses this instructor teaches, one per connection.
            let courses = client
                .gql(&t, "{ organization { courses(first: 100) { nodes { id instructor { id } tracks { id } } } } me { user { id } } }", json!({}))
                .await
                .expect("list courses");
            let me = courses["data"]["me"]["user"]["id"].clone();
            let mine: Vec<(String, Vec<String>)> = courses["data"]["organization"]["courses"]["nodes"]
                .as_array()
                .expect("courses")
                .iter()
                .filter(|c| c["instructor"]["id"] == me)
                .map(|c| {
                    let tracks =
                        c["tracks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
                    (c["id"].as_str().unwrap().to_owned(), tracks)
                })
                .collect();
            assert!(
                mine.len() >= args.concurrency,
                "the instructor teaches {} courses, fewer than the concurrency",
                mine.len()
            );
            let st0 = client.statements(args.metrics.as_deref()).await;
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (course, mut tracks) in mine.into_iter().take(args.concurrency) {
                let (client, t) = (client.clone(), t.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut lat, mut errors) = (Vec::new(), 0usize);
                    let mut n = 0;
                    while Instant::now() < deadline {
                        n += 1;
                        let t0 = Instant::now();
                        let created = client
                            .gql(&t, "mutation($c: ID!, $n: String!) { createTrack(input: { courseId: $c, name: $n }) { id } }", json!({ "c": course, "n": format!("Bench {n}") }))
                            .await;
                        let Ok(created) = created else { errors += 1; continue };
                        lat.push(t0.elapsed());
                        tracks.push(created["data"]["createTrack"]["id"].as_str().unwrap().to_owned());
                        tracks.reverse();
                        let t1 = Instant::now();
                        match client
                            .gql(&t, "mutation($c: ID!, $t: [ID!]!) { reorderTracks(courseId: $c, trackIds: $t) { id position } }", json!({ "c": course, "t": tracks }))
                            .await
                        {
                            Ok(_) => lat.push(t1.elapsed()),
                            Err(e) => {
                                eprintln!("reorder: {e}");
                                errors += 1
                            }
                        }
                        let id = tracks.iter().position(|x| x.starts_with(created["data"]["createTrack"]["id"].as_str().unwrap())).unwrap();
                        let id = tracks.remove(id);
                        let t2 = Instant::now();
                        match client.gql(&t, "mutation($t: ID!) { deleteTrack(id: $t) }", json!({ "t": id })).await {
                            Ok(_) => lat.push(t2.elapsed()),
                            Err(e) => {
                                eprintln!("delete: {e}");
                                errors += 1
                            }
                        }
                    }
                    (lat, errors)
                }));
            }
            println!(
                "{}",
                finish(&client, args.metrics.as_deref(), args.concurrency, "W4".into(), st0, started, tasks).await
            );
        }
    }
}
