//! Database access: connecting (SQLite pragmas, pool limits, the pooler probe), migrating,
//! counting statements, write transactions, and the changes a write announces. The
//! request's own handle is [`request::RequestDb`]; the read replica is [`replica`].

pub mod notes;
pub mod replica;
pub mod request;
pub mod rows;

pub use request::{RequestDb, Tenancy};

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use migration::MigratorTrait as _;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    IsolationLevel, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use uuid::Uuid;

pub use crate::config::PreparedStatements;
use crate::metrics::Metrics;

/// Counts every statement run on a connection (the N+1 tests and `/metrics` read it).
#[derive(Clone, Default, Debug)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Opens the pool. SQLite gets WAL, a busy timeout and foreign keys; both get
/// bounded acquire timeouts so an exhausted pool fails fast instead of hanging.
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    prepared: PreparedStatements,
    metrics: Option<Metrics>,
) -> Result<(DatabaseConnection, StatementCounter), DbErr> {
    let prepared = resolve_prepared(url, prepared, acquire_timeout).await;
    let opts = options(url, max_connections, acquire_timeout, prepared);
    // Two processes opening a fresh SQLite file at once race to switch it to WAL; the
    // loser sees SQLITE_BUSY before any busy handler applies. Retry that, briefly.
    let mut attempt = 0;
    let mut conn = loop {
        match sea_orm::Database::connect(opts.clone()).await {
            Ok(c) => break c,
            Err(e) if attempt < 10 && url.starts_with("sqlite:") && e.to_string().contains("database is locked") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    };
    check_transaction_defaults(&conn).await?;
    let counter = StatementCounter::default();
    let c = counter.0.clone();
    conn.set_metric_callback(move |info| {
        c.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &metrics {
            m.observe_statement(info.elapsed, info.failed);
        }
    });
    Ok((conn, counter))
}

/// A PostgreSQL pool that connects on first use (the read replica, which may be down
/// when the server starts).
pub async fn connect_lazy(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    prepared: PreparedStatements,
) -> Result<DatabaseConnection, DbErr> {
    let prepared = resolve_prepared(url, prepared, acquire_timeout).await;
    let mut opts = options(url, max_connections, acquire_timeout, prepared);
    opts.min_connections(0).connect_lazy(true);
    sea_orm::Database::connect(opts).await
}

/// `Auto` settled for `url`: on, unless it is PostgreSQL behind a transaction pooler (or
/// cannot be probed, when off is the choice that works everywhere).
async fn resolve_prepared(url: &str, prepared: PreparedStatements, timeout: Duration) -> PreparedStatements {
    if prepared != PreparedStatements::Auto || url.starts_with("sqlite:") {
        return prepared;
    }
    match transaction_pooled(url, timeout).await {
        Ok(false) => PreparedStatements::On,
        Ok(true) => {
            tracing::info!(
                "the database URL leads to a transaction pooler (PgBouncer?): statements are prepared unnamed"
            );
            PreparedStatements::Off
        }
        Err(e) => {
            tracing::debug!(error = %e, "transaction pooler probe failed; statements are prepared unnamed");
            PreparedStatements::Off
        }
    }
}

/// Whether successive transactions of one client connection to `url` may run on different
/// server sessions, as behind PgBouncer in `pool_mode = transaction`. One connection (the
/// asker) notes its backend pid; then, one at a time, others open a transaction and hold
/// it. A pooler lends a holder the session the asker just released (the pid is seen twice)
/// or sends the asker's next statement elsewhere (or makes it wait): pooled. Directly, and
/// behind a session pooler, every client keeps its own backend, so neither can happen.
/// Several holders, because a pooler with idle sessions to spare need not lend the asker's.
pub async fn transaction_pooled(url: &str, timeout: Duration) -> Result<bool, sqlx::Error> {
    use std::str::FromStr as _;

    use sqlx::{Connection as _, postgres::PgConnectOptions};
    const HOLDERS: usize = 4;
    const PID: &str = "SELECT pg_backend_pid()";
    let opts = PgConnectOptions::from_str(url)?.extra_float_digits(None).statement_cache_capacity(0);
    let connect = || tokio::time::timeout(timeout, sqlx::postgres::PgConnection::connect_with(&opts));
    let mut asker = connect().await.map_err(|_| sqlx::Error::PoolTimedOut)??;
    let first: i32 = sqlx::query_scalar(PID).fetch_one(&mut asker).await?;
    let mut holders = Vec::with_capacity(HOLDERS);
    let mut pooled = false;
    for _ in 0..HOLDERS {
        let mut holder = connect().await.map_err(|_| sqlx::Error::PoolTimedOut)??;
        // A plain BEGIN (not `Connection::begin`) so the open transaction can be kept
        // beside the connection it belongs to.
        sqlx::query("BEGIN").execute(&mut holder).await?;
        let held: i32 = sqlx::query_scalar(PID).fetch_one(&mut holder).await?;
        holders.push(holder);
        if held == first {
            pooled = true;
            break;
        }
        // Waiting for a held session (a pool of one) is as telling as getting another one.
        let again =
            tokio::time::timeout(Duration::from_secs(1), sqlx::query_scalar::<_, i32>(PID).fetch_one(&mut asker))
                .await
                .ok()
                .transpose()?;
        if again != Some(first) {
            pooled = true;
            break;
        }
    }
    for mut holder in holders {
        let _ = sqlx::query("ROLLBACK").execute(&mut holder).await;
        let _ = holder.close().await;
    }
    drop(asker);
    Ok(pooled)
}

fn options(url: &str, max_connections: u32, acquire_timeout: Duration, prepared: PreparedStatements) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .connect_timeout(acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        .sqlx_logging(false)
        // Ping a connection that sat idle before handing it out, so a restarted
        // database is noticed by the pool instead of by a request.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        // Not sent as a startup parameter: PgBouncer refuses unknown ones ("unsupported
        // startup parameter: extra_float_digits") unless told to ignore it, and since
        // PostgreSQL 12 the server's default already prints floats exactly.
        //
        //
        // Behind a transaction pooler, no statement cache: every statement is unnamed and
        // prepared in the sequence that runs it (vendor/sqlx-postgres/PATCHED.md), so nothing
        // relies on a server session outliving a transaction. Directly, the cache saves a
        // parse and plan per statement: W1 measured 1,630 against 1,130 req/s without it.
        .map_sqlx_postgres_opts(move |o| {
            let o = o.extra_float_digits(None);
            if prepared == PreparedStatements::Off { o.statement_cache_capacity(0) } else { o }
        })
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // sqlx runs each SQLite connection on its own thread and streams rows over a
                // bounded channel; at the default 50 a 100-row result makes the two threads
                // hand off several times per query. Room for a whole page avoids that.
                .row_buffer_size(1024)
        });
    opts
}

/// Applies every pending migration, all or nothing, in one transaction. On PostgreSQL it
/// first takes a transaction-scoped advisory lock, which serialises servers that start at
/// the same moment and, unlike a session lock, stays on one server connection behind a
/// transaction-pooling PgBouncer and ends with the transaction whatever happens.
pub async fn migrate(conn: &DatabaseConnection) -> Result<(), DbErr> {
    // SQLite: one write transaction (DDL is transactional there too). A second process
    // starting at the same moment waits on the busy timeout, then finds nothing to do.
    let txn = begin_write(conn).await?;
    if conn.get_database_backend() == DbBackend::Postgres {
        const LOCK: i64 = 0x636f_7572_7365_6772; // "coursegr"
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [LOCK.into()],
        ))
        .await?;
    }
    migration::Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// On PostgreSQL, checks at start that row-level security will do what the configuration
/// says: `role` (COURSEGRAPH_DB_ROLE) must exist, be reachable with `SET ROLE`, and be
/// subject to RLS; without it, the connecting user must bypass RLS (superuser or
/// BYPASSRLS), or every request would see nothing — refused with the fix in the message.
pub async fn check_row_level_security(conn: &DatabaseConnection, role: Option<&str>) -> anyhow::Result<()> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    match role {
        Some(role) => {
            let row = conn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT rolsuper OR rolbypassrls AS bypass, pg_has_role(current_user, oid, 'MEMBER') AS reachable \
                     FROM pg_roles WHERE rolname = $1",
                    [role.into()],
                ))
                .await?;
            let Some(row) = row else {
                anyhow::bail!(
                    "COURSEGRAPH_DB_ROLE: the role `{role}` does not exist (the migrations create `coursegraph_app`)"
                );
            };
            if row.try_get::<bool>("", "bypass")? {
                anyhow::bail!(
                    "COURSEGRAPH_DB_ROLE: the role `{role}` is a superuser or has BYPASSRLS, so row-level security would not apply"
                );
            }
            if !row.try_get::<bool>("", "reachable")? {
                anyhow::bail!(
                    "COURSEGRAPH_DB_ROLE: the database user may not switch to `{role}` (GRANT {role} TO <user>)"
                );
            }
            tracing::info!(role, "row-level security: requests run as `{role}` with the viewer's tenancy");
        }
        None => {
            let row = conn
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT current_user::text AS who, rolsuper OR rolbypassrls AS bypass FROM pg_roles WHERE rolname = current_user",
                ))
                .await?
                .ok_or_else(|| anyhow::anyhow!("the connecting role is missing from pg_roles"))?;
            let who: String = row.try_get("", "who")?;
            if !row.try_get::<bool>("", "bypass")? {
                anyhow::bail!(
                    "the database user `{who}` is subject to row-level security, so requests would see nothing: \
                     set COURSEGRAPH_DB_ROLE=coursegraph_app"
                );
            }
            tracing::info!(user = %who, "row-level security: not enforced (the database user bypasses it); set COURSEGRAPH_DB_ROLE=coursegraph_app to enforce it");
        }
    }
    Ok(())
}

/// Whether the database answers (for `/readyz`).
pub async fn ping(conn: &DatabaseConnection) -> bool {
    conn.ping().await.is_ok()
}

/// Starts a read-write transaction for a unit of work that must be all or nothing.
/// PostgreSQL runs it at READ COMMITTED (every statement sees rows committed before
/// it, which insert-on-conflict-then-select relies on); SQLite takes the write lock
/// up front (BEGIN IMMEDIATE) so two writers queue on the busy timeout instead of
/// failing to upgrade a read snapshot.
/// PostgreSQL's `SET TRANSACTION` costs a round trip, so it is left out when the server's
/// defaults already are READ COMMITTED and READ WRITE (checked as each pool connects).
pub async fn begin_write<C: TransactionTrait + ConnectionTrait>(conn: &C) -> Result<C::Transaction, DbErr> {
    let options = match conn.get_database_backend() {
        DbBackend::Sqlite => {
            TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() }
        }
        _ if PG_DEFAULTS_FIT.load(Ordering::Relaxed) => TransactionOptions::default(),
        _ => TransactionOptions {
            isolation_level: Some(IsolationLevel::ReadCommitted),
            access_mode: Some(AccessMode::ReadWrite),
            sqlite_transaction_mode: None,
        },
    };
    conn.begin_with_options(options).await
}

/// Whether every PostgreSQL server this process connected to starts transactions READ
/// COMMITTED and READ WRITE by default ([`begin_write`] then sends a bare BEGIN).
static PG_DEFAULTS_FIT: AtomicBool = AtomicBool::new(false);
/// Set once a server whose defaults differ was seen: they stay spelled out from then on.
static PG_DEFAULTS_DIFFER: AtomicBool = AtomicBool::new(false);

/// Notes whether `conn`'s server's transaction defaults are what a write needs.
async fn check_transaction_defaults(conn: &DatabaseConnection) -> Result<(), DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('default_transaction_isolation') = 'read committed' \
             AND current_setting('default_transaction_read_only') = 'off' AS fit",
        ))
        .await?;
    let fit = row.map(|r| r.try_get::<bool>("", "fit")).transpose()?.unwrap_or(false);
    if !fit {
        PG_DEFAULTS_DIFFER.store(true, Ordering::Relaxed);
    }
    PG_DEFAULTS_FIT.store(fit && !PG_DEFAULTS_DIFFER.load(Ordering::Relaxed), Ordering::Relaxed);
    Ok(())
}

/// Queues this process's write transactions on SQLite, which admits one writer at a
/// time: waiting here is first come, first served, where waiting on SQLite's busy
/// handler means sleeping in growing steps (up to 100 ms) and measured p99 latencies
/// of hundreds of milliseconds under concurrent writes (BENCHMARKS.md). Other
/// processes sharing the file still meet the busy timeout. Absent on PostgreSQL.
#[derive(Clone, Default)]
pub struct WriteLock(Option<Arc<tokio::sync::Mutex<()>>>);

impl WriteLock {
    pub fn for_backend(backend: DbBackend) -> Self {
        Self((backend == DbBackend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(()))))
    }
}

/// A write transaction, holding this process's SQLite write turn until it ends.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }
}

/// Implements sea-orm's `ConnectionTrait` for a wrapper around a transaction by running
/// every statement on its `$field`: the wrapper adds what it holds (a write turn, the
/// notes of a unit of work), never a statement of its own.
macro_rules! delegate_connection {
    ($ty:ty, $field:ident) => {
        #[async_trait::async_trait]
        impl sea_orm::ConnectionTrait for $ty {
            fn get_database_backend(&self) -> sea_orm::DbBackend {
                self.$field.get_database_backend()
            }

            async fn execute_raw(&self, stmt: sea_orm::Statement) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                self.$field.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                self.$field.execute_unprepared(sql).await
            }

            async fn query_one_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
                self.$field.query_one_raw(stmt).await
            }

            async fn query_all_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
                self.$field.query_all_raw(stmt).await
            }
        }
    };
}
pub(crate) use delegate_connection;

delegate_connection!(WriteTxn, txn);

/// [`begin_write`], after taking this process's write turn (SQLite).
pub async fn begin_write_queued(conn: &DatabaseConnection, lock: &WriteLock) -> Result<WriteTxn, DbErr> {
    let turn = match &lock.0 {
        Some(m) => Some(m.clone().lock_owned().await),
        None => None,
    };
    Ok(WriteTxn { txn: begin_write(conn).await?, _turn: turn })
}

/// Something that changes what a viewer is: announced by the write that makes it, so that
/// every process drops what it cached of the viewers concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user's profile or memberships changed.
    User(Uuid),
    /// An organization changed (its slug, which `X-Organization-Id` matches).
    Organization(Uuid),
}

/// The PostgreSQL channel processes announce [`Change`]s on.
pub const CHANGES_CHANNEL: &str = "coursegraph_context";

/// How a change travels on [`CHANGES_CHANNEL`].
pub fn change_payload(c: Change) -> String {
    match c {
        Change::User(id) => format!("user:{id}"),
        Change::Organization(id) => format!("org:{id}"),
    }
}

/// How `changes` are announced to every server process (PostgreSQL, inside the writing
/// transaction, so they hear of it only if it commits; see [`notes::send`]). SQLite's one
/// process applies them itself.
pub fn change_notes(changes: &[Change]) -> Vec<notes::Note> {
    changes.iter().map(|c| (CHANGES_CHANNEL, change_payload(*c))).collect()
}

/// Whether a database error is a unique-key violation (on either backend).
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}
