//! What every request shares: the configuration, the database, the schema, the verifier,
//! the provisioner and this process's live-update hub, caches and metrics. Built once by
//! `App::build`; the HTTP handlers read it.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::sign_in::SignIn,
    config::Config,
    db::{self, StatementCounter},
    graphql::{AppSchema, limits::Preflight},
    http::apq::ApqStore,
    metrics::Metrics,
};

/// Everything a request needs, shared by all requests.
pub struct AppState {
    pub config: Config,
    pub conn: DatabaseConnection,
    pub statements: StatementCounter,
    pub write_lock: db::WriteLock,
    /// The streaming read replica queries may read from (COURSEGRAPH_DATABASE_READ_URL).
    pub replica: Option<Arc<crate::db::replica::Replica>>,
    /// The role requests run as under PostgreSQL row-level security, if enforced.
    pub db_role: Option<Arc<str>>,
    pub schema: AppSchema,
    /// Bearer → verified claims → identity → viewer (the verifier and provisioner inside).
    pub sign_in: SignIn,
    /// Live events for this process's subscribers.
    pub bus: Arc<crate::live::Bus>,
    /// This process's multiplexed subscriptions.
    pub hub: Arc<crate::http::multiplex::Hub>,
    /// Rate-limited audit records (ACCESS_DENIED, PLATFORM_ADMIN_ACCESS).
    pub audit: Arc<crate::domain::audit::RateLimited>,
    pub metrics: Metrics,
    pub apq: ApqStore,
    pub preflight: Preflight,
    /// The schema without a complexity limit, for measuring refused documents.
    pub probe: AppSchema,
}

impl AppState {
    /// Refreshes the gauges that are sampled rather than counted.
    pub fn sample_gauges(&self) {
        match self.conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let p = self.conn.get_postgres_connection_pool();
                self.metrics.set_pool(p.size(), p.num_idle());
            }
            sea_orm::DbBackend::Sqlite => {
                let p = self.conn.get_sqlite_connection_pool();
                self.metrics.set_pool(p.size(), p.num_idle());
            }
            _ => {}
        }
        let (groups, listening) = self.hub.counts();
        self.metrics.set_live(groups, listening);
        if let Some(j) = self.sign_in.verifier.jwks() {
            let (f, e) = j.fetch_counts();
            self.metrics.set_jwks(f, e);
        }
    }
}
