//! Prometheus metrics: requests, latency, denials, provisioning, JWKS fetches, database use.

use std::{collections::HashSet, sync::Arc, time::Duration};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The most distinct operation names we label by; later ones count as `other`, so a
/// client inventing names cannot grow the metric set without bound.
const MAX_OPERATION_LABELS: usize = 200;

/// Shared metric handles (cheap to clone).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    graphql_operations: IntCounterVec,
    denials: IntCounterVec,
    unauthenticated: IntCounterVec,
    provisioned: IntCounterVec,
    reads: IntCounterVec,
    replica_lag_ms: IntGauge,
    db_statements: IntCounter,
    db_statement_errors: IntCounter,
    db_statement_seconds: Histogram,
    db_pool_size: IntGauge,
    db_pool_idle: IntGauge,
    jwks_fetches: IntGauge,
    ws_connections: IntGauge,
    subscriptions: IntGauge,
    live_subscribers: IntGauge,
    live_groups: IntGauge,
    jwks_fetch_failures: IntGauge,
    operation_names: std::sync::Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("coursegraph".into()), None).expect("static prefix");
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone())).expect("unique metric name");
                m
            }};
        }
        let latency_buckets =
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        Self(Arc::new(Inner {
            http_requests: reg!(
                IntCounterVec::new(
                    Opts::new("http_requests_total", "HTTP requests by route and status"),
                    &["route", "status"]
                )
                .expect("valid")
            ),
            http_latency: reg!(
                HistogramVec::new(
                    HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                        .buckets(latency_buckets.clone()),
                    &["route"]
                )
                .expect("valid")
            ),
            graphql_operations: reg!(
                IntCounterVec::new(
                    Opts::new("graphql_operations_total", "GraphQL operations by name and outcome"),
                    &["operation", "outcome"]
                )
                .expect("valid")
            ),
            denials: reg!(
                IntCounterVec::new(
                    Opts::new("authz_denials_total", "FORBIDDEN answers by reason and action"),
                    &["reason", "action"]
                )
                .expect("valid")
            ),
            unauthenticated: reg!(
                IntCounterVec::new(Opts::new("auth_failures_total", "Refused tokens by reason"), &["reason"])
                    .expect("valid")
            ),
            provisioned: reg!(
                IntCounterVec::new(
                    Opts::new("provisioned_total", "Rows created by first-sight provisioning"),
                    &["kind"]
                )
                .expect("valid")
            ),
            reads: reg!(
                IntCounterVec::new(
                    Opts::new(
                        "db_reads_total",
                        "Query operations by where they read (replica or primary) and why (with a read replica)"
                    ),
                    &["target", "reason"]
                )
                .expect("valid")
            ),
            replica_lag_ms: reg!(
                IntGauge::new(
                    "db_replica_staleness_ms",
                    "How far behind the primary the read replica was last seen (-1: down)"
                )
                .expect("valid")
            ),
            db_statements: reg!(IntCounter::new("db_statements_total", "SQL statements executed").expect("valid")),
            db_statement_errors: reg!(
                IntCounter::new("db_statement_errors_total", "SQL statements that failed").expect("valid")
            ),
            db_statement_seconds: reg!(
                Histogram::with_opts(
                    HistogramOpts::new("db_statement_duration_seconds", "SQL statement latency")
                        .buckets(latency_buckets)
                )
                .expect("valid")
            ),
            db_pool_size: reg!(IntGauge::new("db_pool_connections", "Open pooled connections").expect("valid")),
            db_pool_idle: reg!(IntGauge::new("db_pool_idle_connections", "Idle pooled connections").expect("valid")),
            jwks_fetches: reg!(IntGauge::new("jwks_fetches_total", "JWKS fetch attempts").expect("valid")),
            jwks_fetch_failures: reg!(
                IntGauge::new("jwks_fetch_failures_total", "JWKS fetches that failed").expect("valid")
            ),
            ws_connections: reg!(
                IntGauge::new("ws_connections", "Open GraphQL WebSocket connections (after connection_ack)")
                    .expect("valid")
            ),
            subscriptions: reg!(
                IntGauge::new("ws_operations", "Operations running on WebSocket connections (mostly subscriptions)")
                    .expect("valid")
            ),
            live_subscribers: reg!(
                IntGauge::new("live_subscribers", "Subscriptions listening for live events in this process")
                    .expect("valid")
            ),
            live_groups: reg!(
                IntGauge::new("live_groups", "Groups of identical subscriptions, each executed once per event")
                    .expect("valid")
            ),
            operation_names: std::sync::Mutex::new(HashSet::new()),
            registry,
        }))
    }

    pub fn observe_http(&self, route: &str, status: u16, elapsed: Duration) {
        self.0.http_requests.with_label_values(&[route, itoa(status).as_str()]).inc();
        self.0.http_latency.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    pub fn observe_operation(&self, name: Option<&str>, outcome: &str) {
        let name = name.unwrap_or("anonymous");
        let label = {
            let mut seen = self.0.operation_names.lock().unwrap_or_else(|e| e.into_inner());
            let ok = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if ok && (seen.contains(name) || seen.len() < MAX_OPERATION_LABELS) {
                seen.insert(name.to_owned());
                name
            } else {
                "other"
            }
        };
        self.0.graphql_operations.with_label_values(&[label, outcome]).inc();
    }

    pub fn denied(&self, reason: &str, action: &str) {
        self.0.denials.with_label_values(&[reason, action]).inc();
    }

    pub fn unauthenticated(&self, reason: &str) {
        self.0.unauthenticated.with_label_values(&[reason]).inc();
    }

    pub fn ws_connections(&self, delta: i64) {
        self.0.ws_connections.add(delta);
    }

    pub fn subscriptions(&self, delta: i64) {
        self.0.subscriptions.add(delta);
    }

    pub fn set_live(&self, groups: usize, subscribers: usize) {
        self.0.live_groups.set(groups as i64);
        self.0.live_subscribers.set(subscribers as i64);
    }

    pub fn provisioned(&self, kind: &str) {
        self.0.provisioned.with_label_values(&[kind]).inc();
    }

    /// Where a query operation read, and why (a read replica is configured).
    pub fn read_routed(&self, target: &str, reason: &str) {
        self.0.reads.with_label_values(&[target, reason]).inc();
    }

    pub fn set_replica_staleness(&self, ms: Option<u64>) {
        self.0.replica_lag_ms.set(ms.map_or(-1, |m| m as i64));
    }

    pub fn observe_statement(&self, elapsed: Duration, failed: bool) {
        self.0.db_statements.inc();
        if failed {
            self.0.db_statement_errors.inc();
        }
        self.0.db_statement_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn set_pool(&self, size: u32, idle: usize) {
        self.0.db_pool_size.set(i64::from(size));
        self.0.db_pool_idle.set(idle as i64);
    }

    pub fn set_jwks(&self, fetches: u64, failures: u64) {
        self.0.jwks_fetches.set(fetches as i64);
        self.0.jwks_fetch_failures.set(failures as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.0.registry.gather(), &mut buf).expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn itoa(n: u16) -> String {
    n.to_string()
}
