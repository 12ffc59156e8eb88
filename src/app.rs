//! `App::build(config)`: the database, schema, verifier and routes, assembled once and
//! used identically by `main` and by the tests (which bind port 0). What requests share
//! is the HTTP layer's [`AppState`].

use std::{net::SocketAddr, sync::Arc, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::DatabaseConnection;

pub use crate::http::state::AppState;
use crate::{
    auth::{Verifier, cache::ContextCache, provision::Provisioner, sign_in::SignIn},
    config::{Config, SecretSource},
    db::{self, StatementCounter},
    graphql::limits::Preflight,
    graphql::{build_schema, schema::SchemaOptions},
    http::apq::ApqStore,
    metrics::Metrics,
};

/// The assembled application.
#[derive(Clone)]
pub struct App {
    pub state: Arc<AppState>,
}

impl App {
    /// Connects, migrates (unless disabled), and builds the schema and routes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let (conn, statements) = db::connect(
            &config.database.url,
            config.database.max_connections,
            config.database.acquire_timeout,
            config.database.prepared_statements,
            Some(metrics.clone()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database (COURSEGRAPH_DATABASE_URL): {e}"))?;
        // LISTEN (live updates, and dropping other processes' cached contexts) needs a session
        // of its own, which a transaction pooler does not give: refuse rather than serve stale.
        if conn.get_database_backend() == sea_orm::DbBackend::Postgres
            && config.database.listen_url.is_none()
            && db::transaction_pooled(&config.database.url, config.database.acquire_timeout).await.unwrap_or(false)
        {
            anyhow::bail!(
                "COURSEGRAPH_DATABASE_URL leads to a transaction pooler (PgBouncer in pool_mode = transaction?), \
                 where LISTEN cannot work: set COURSEGRAPH_DATABASE_LISTEN_URL to a direct connection to PostgreSQL"
            );
        }
        if config.database.auto_migrate {
            db::migrate(&conn).await.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
        }
        db::check_row_level_security(&conn, config.database.role.as_deref()).await?;
        // An assignment outlives a policy-file role removed from the file: say so once.
        match crate::domain::roles::orphaned_keys(&conn, &config.auth.policy).await {
            Ok(keys) => {
                for key in keys {
                    tracing::warn!(role = %key, "a role key is assigned to members but is neither an organization's own role \
                        nor in the policy file (COURSEGRAPH_POLICY): it grants nothing");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not check role assignments against the policy file"),
        }
        let replica = match &config.database.read_url {
            Some(url) => {
                let r = crate::db::replica::Replica::open(
                    url,
                    config.database.max_connections,
                    config.database.acquire_timeout,
                    conn.clone(),
                    config.database.read_max_lag,
                    metrics.clone(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the read replica (COURSEGRAPH_DATABASE_READ_URL): {e}"))?;
                r.spawn_monitor();
                tracing::info!(max_lag_ms = config.database.read_max_lag.as_millis() as u64, "read replica configured");
                Some(r)
            }
            None => None,
        };
        Self::from_parts(config, conn, statements, metrics, replica)
    }

    /// Builds on an already-open connection (tests that share a connection use this).
    pub fn from_parts(
        config: Config,
        conn: DatabaseConnection,
        statements: StatementCounter,
        metrics: Metrics,
        replica: Option<Arc<crate::db::replica::Replica>>,
    ) -> anyhow::Result<Self> {
        if let SecretSource::DevFile { path, .. } = &config.auth.secret_source {
            tracing::warn!(
                file = %path.display(),
                "development mode: no COURSEGRAPH_JWT_SECRET or COURSEGRAPH_JWKS_URL is set, so tokens are \
                 signed and verified with a generated secret kept in this file; mint one with `coursegraph token`"
            );
        }
        let verifier = Verifier::new(&config.auth).map_err(|e| anyhow::anyhow!(e))?;
        if let Some(jwks) = verifier.jwks().cloned() {
            tokio::spawn(async move { jwks.prefetch().await });
        }
        let schema = build_schema(&SchemaOptions {
            introspection: config.server.introspection,
            suggestions: !config.is_production(),
            limits: config.limits.clone(),
            settings: crate::graphql::schema::Settings { invitations: config.invitations },
        });
        // On PostgreSQL the cache serves only while this replica hears the others' changes,
        // and live events reach this process's subscribers through the same listener.
        let postgres = conn.get_database_backend() == sea_orm::DbBackend::Postgres;
        let cache = Arc::new(ContextCache::new(config.auth.context_cache_ttl, !postgres));
        let bus = Arc::new(crate::live::Bus::new(conn.get_database_backend()));
        if postgres {
            let url = config.database.listen_url.clone().unwrap_or_else(|| config.database.url.clone());
            tokio::spawn(crate::live::listen::run(cache.clone(), bus.clone(), url, conn.clone()));
        }
        let write_lock = db::WriteLock::for_backend(conn.get_database_backend());
        let audit = Arc::new(crate::domain::audit::RateLimited::new(conn.clone(), write_lock.clone()));
        let provisioner = Provisioner::new(
            conn.clone(),
            crate::auth::provision::ProvisionerSettings {
                role_source: config.auth.role_source,
                default_role: config.auth.default_role,
                policy: config.auth.policy.clone(),
                invitations: config.invitations,
                record_writes: replica.is_some(),
            },
            metrics.clone(),
            cache,
            write_lock.clone(),
            audit.clone(),
        );
        let db_role = config.database.role.as_deref().map(Arc::from);
        let sign_in = SignIn::new(&config, verifier, provisioner, metrics.clone());
        let apq = ApqStore::new(config.server.apq_cache_size);
        let preflight = Preflight::new(config.limits.clone());
        let probe = crate::graphql::schema::build_probe_schema();
        Ok(Self {
            state: Arc::new(AppState {
                config,
                conn,
                statements,
                write_lock,
                replica,
                db_role,
                schema,
                sign_in,
                bus,
                hub: Arc::default(),
                audit,
                metrics,
                apq,
                preflight,
                probe,
            }),
        })
    }

    /// Binds the configured address; returns the bound address and the server future.
    pub async fn bind(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>> + Send + 'static)> {
        let addr = self.state.config.server.listen;
        let acceptor = TcpListener::bind(addr)
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (COURSEGRAPH_LISTEN): {e}"))?;
        let bound = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(addr);
        let routes = crate::http::routes(self.state.clone());
        let server = Server::new_with_acceptor(acceptor)
            .idle_timeout(Duration::from_secs(60))
            .run_with_graceful_shutdown(routes, shutdown, Some(Duration::from_secs(10)));
        Ok((bound, server))
    }
}
