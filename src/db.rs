//! Database access: connecting (SQLite pragmas, pool limits), migrating, counting
//! statements, and [`RequestDb`], the one handle resolvers get their queries through.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use migration::MigratorTrait as _;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    IsolationLevel, QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

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
    metrics: Option<Metrics>,
) -> Result<(DatabaseConnection, StatementCounter), DbErr> {
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

/// Applies every pending migration. On PostgreSQL a session advisory lock, held on a
/// connection of its own, serialises replicas that start at the same moment.
pub async fn migrate(conn: &DatabaseConnection) -> Result<(), DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        // SQLite: one write transaction (DDL is transactional there). A second process
        // starting at the same moment waits on the busy timeout, then finds nothing to do.
        let txn = begin_write(conn).await?;
        migration::Migrator::up(&txn, None).await?;
        return txn.commit().await;
    }
    use sqlx::Connection as _;
    const LOCK: i64 = 0x636f_7572_7365_6772; // "coursegr"
    let opts = conn.get_postgres_connection_pool().connect_options();
    let mut lock = sqlx::postgres::PgConnection::connect_with(&opts)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::Internal(format!("migration lock connection: {e}"))))?;
    let lock_err = |e: sqlx::Error| DbErr::Custom(format!("migration lock: {e}"));
    sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK).execute(&mut lock).await.map_err(lock_err)?;
    let result = migration::Migrator::up(conn, None).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut lock).await.map_err(lock_err)?;
    let _ = lock.close().await;
    result
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
pub async fn begin_write<C: TransactionTrait + ConnectionTrait>(conn: &C) -> Result<C::Transaction, DbErr> {
    let options = match conn.get_database_backend() {
        DbBackend::Sqlite => {
            TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() }
        }
        _ => TransactionOptions {
            isolation_level: Some(IsolationLevel::ReadCommitted),
            access_mode: Some(AccessMode::ReadWrite),
            sqlite_transaction_mode: None,
        },
    };
    conn.begin_with_options(options).await
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

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
}

/// [`begin_write`], after taking this process's write turn (SQLite).
pub async fn begin_write_queued(conn: &DatabaseConnection, lock: &WriteLock) -> Result<WriteTxn, DbErr> {
    let turn = match &lock.0 {
        Some(m) => Some(m.clone().lock_owned().await),
        None => None,
    };
    Ok(WriteTxn { txn: begin_write(conn).await?, _turn: turn })
}

/// The database handle of one request. Every resolver and loader queries through it,
/// so request-wide concerns (a per-request transaction, session settings) live here.
#[derive(Clone)]
pub struct RequestDb {
    conn: DatabaseConnection,
    write_lock: WriteLock,
}

impl RequestDb {
    pub fn new(conn: DatabaseConnection, write_lock: WriteLock) -> Self {
        Self { conn, write_lock }
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// A transaction for a mutation's unit of work (every write goes through one).
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        begin_write_queued(&self.conn, &self.write_lock).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for RequestDb {
    fn get_database_backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.conn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.conn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.conn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.conn.query_all_raw(stmt).await
    }
}

/// Whether a database error is a unique-key violation (on either backend).
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}
