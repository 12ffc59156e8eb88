//! Benchmark load driver for W3 and W4 (see BENCHMARKS.md; bench/run.sh runs it).
//!
//! W3: `first-sight` — every request carries the token of a user the server has never
//! seen (N users across M new organizations); run again with the same tokens for the
//! warm case. W4: `writes` — an instructor creates a track, reorders the course's
//! tracks, and deletes the new track again, in a loop, one course per connection.
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let client = Arc::new(Client {
        http: reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build().expect("client"),
        url: args.url.clone(),
    });
    match args.workload {
        Workload::FirstSight { prefix, users, orgs } => {
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
            let t = Arc::new(token(&args.secret, &sub, &org, "instructor"));
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
