//! Database access: connecting (SQLite pragmas, pool limits), migrating, counting
//! statements, and [`RequestDb`], the one handle resolvers get their queries through.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use migration::MigratorTrait as _;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    IsolationLevel, QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use uuid::Uuid;

pub use crate::config::PreparedStatements;
use crate::{
    auth::{Viewer, cache::Change},
    metrics::Metrics,
    replica::Replica,
};

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

/// What PostgreSQL row-level security needs to know about the viewer (see the migration
/// `m20250101_000006_row_level_security`): written with `set_config(…, true)` as the
/// first statement of the request's transaction, so it ends with the transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tenancy {
    pub user_id: Option<Uuid>,
    /// The organizations of the viewer's active memberships.
    pub org_ids: Vec<Uuid>,
    pub platform_admin: bool,
    /// The token's email (lower-cased), whose invitations the viewer may see, and accept
    /// when it is verified.
    pub email: Option<String>,
    pub email_verified: bool,
}

impl Tenancy {
    pub fn of(viewer: Option<&Viewer>) -> Self {
        match viewer {
            None => Self::default(),
            Some(v) => Self {
                user_id: Some(v.user.id),
                org_ids: v.active_memberships().map(|m| m.organization_id).collect(),
                platform_admin: v.platform_admin,
                email: v.email.as_ref().map(|e| e.address.clone()),
                email_verified: v.email.as_ref().is_some_and(|e| e.verified),
            },
        }
    }

    fn statement(&self, role: &str) -> Statement {
        let orgs = self.org_ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('role', $1, true), set_config('app.user_id', $2, true), \
             set_config('app.org_ids', $3, true), set_config('app.platform_admin', $4, true), \
             set_config('app.email', $5, true), set_config('app.email_verified', $6, true)",
            [
                role.into(),
                self.user_id.map(|u| u.to_string()).unwrap_or_default().into(),
                orgs.into(),
                if self.platform_admin { "on" } else { "off" }.into(),
                self.email.clone().unwrap_or_default().into(),
                if self.email_verified { "on" } else { "off" }.into(),
            ],
        )
    }
}

/// The request's own transaction, when row-level security is enforced: begun on the
/// request's first statement, committed by [`RequestDb::finish`].
enum TxnState {
    Idle,
    Open(DatabaseTransaction),
    Finished,
}

struct Rls {
    role: Arc<str>,
    tenancy: std::sync::Mutex<Tenancy>,
    txn: tokio::sync::Mutex<TxnState>,
    /// Changes this request's mutations made, for the context cache to drop once more
    /// when they commit with the request (see [`RequestDb::remember_changes`]).
    changes: std::sync::Mutex<Vec<Change>>,
}

/// The database handle of one request. Every resolver and loader queries through it,
/// so request-wide concerns live here: with row-level security enforced (PostgreSQL and
/// `COURSEGRAPH_DB_ROLE`), all of a request's statements run in one transaction that
/// first switches to the application role and writes the viewer's [`Tenancy`]; mutations
/// nest their unit of work in it as a savepoint.
#[derive(Clone)]
pub struct RequestDb {
    conn: DatabaseConnection,
    write_lock: WriteLock,
    rls: Option<Arc<Rls>>,
    reads: Option<Arc<Reads>>,
    /// Whether a unit of work was begun (the viewer's write position is then recorded).
    wrote: Arc<AtomicBool>,
}

/// A query operation reading from the read replica ([`crate::replica`]).
struct Reads {
    replica: Arc<Replica>,
    /// Still reading there: false after a write began, or once a statement failed there.
    active: AtomicBool,
}

impl RequestDb {
    /// A handle without row-level security (SQLite, or no `COURSEGRAPH_DB_ROLE`).
    pub fn new(conn: DatabaseConnection, write_lock: WriteLock) -> Self {
        Self { conn, write_lock, rls: None, reads: None, wrote: Arc::default() }
    }

    /// A handle whose statements run as `role`, under the viewer's tenancy.
    pub fn with_rls(conn: DatabaseConnection, role: Arc<str>, tenancy: Tenancy) -> Self {
        let rls = Rls {
            role,
            tenancy: std::sync::Mutex::new(tenancy),
            txn: tokio::sync::Mutex::new(TxnState::Idle),
            changes: std::sync::Mutex::new(Vec::new()),
        };
        Self { conn, write_lock: WriteLock::default(), rls: Some(Arc::new(rls)), reads: None, wrote: Arc::default() }
    }

    /// Reads from `replica` (a query operation the router sent there); writes, and every
    /// statement after one, still go to the primary.
    pub fn reading_from(mut self, replica: Arc<Replica>) -> Self {
        self.reads = Some(Arc::new(Reads { replica, active: AtomicBool::new(true) }));
        self
    }

    /// Whether this request's reads still go to the replica.
    pub fn on_replica(&self) -> bool {
        self.reads.as_ref().is_some_and(|r| r.active.load(Ordering::Acquire))
    }

    /// Whether a unit of work was begun through this handle.
    pub fn wrote(&self) -> bool {
        self.wrote.load(Ordering::Acquire)
    }

    /// Where reads go now.
    fn read_conn(&self) -> &DatabaseConnection {
        match &self.reads {
            Some(r) if r.active.load(Ordering::Acquire) => r.replica.conn(),
            _ => &self.conn,
        }
    }

    /// After `e` on the replica: if it means the replica is unusable (unreachable, or a
    /// query cancelled by recovery), moves the rest of the request to the primary and
    /// says to run the statement again. A read-only transaction there is dropped.
    async fn fall_back(&self, e: &DbErr) -> bool {
        let Some(reads) = &self.reads else { return false };
        if !crate::replica::should_retry_on_primary(e) || !reads.active.swap(false, Ordering::AcqRel) {
            return false;
        }
        reads.replica.mark_down();
        if let Some(rls) = &self.rls {
            *rls.txn.lock().await = TxnState::Idle;
        }
        true
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// The request's transaction, begun (with the settings) on first use.
    async fn open<'a>(&self, rls: &'a Rls) -> Result<tokio::sync::MutexGuard<'a, TxnState>, DbErr> {
        let mut state = rls.txn.lock().await;
        match &*state {
            TxnState::Open(_) => {}
            TxnState::Idle => {
                let txn = match self.read_conn().begin().await {
                    Ok(t) => t,
                    Err(e) if self.on_replica() && crate::replica::should_retry_on_primary(&e) => {
                        if let Some(r) = &self.reads {
                            r.active.store(false, Ordering::Release);
                            r.replica.mark_down();
                        }
                        self.conn.begin().await?
                    }
                    Err(e) => return Err(e),
                };
                let stmt = rls.tenancy.lock().unwrap_or_else(|e| e.into_inner()).statement(&rls.role);
                txn.query_one_raw(stmt).await?;
                *state = TxnState::Open(txn);
            }
            TxnState::Finished => return Err(DbErr::Custom("the request's transaction has already ended".into())),
        }
        Ok(state)
    }

    /// Changes the viewer's tenancy for the rest of the request (after a mutation changed
    /// their memberships, or to admit an organization they are creating).
    pub async fn set_tenancy(&self, tenancy: Tenancy) -> Result<(), DbErr> {
        let Some(rls) = &self.rls else { return Ok(()) };
        let stmt = tenancy.statement(&rls.role);
        *rls.tenancy.lock().unwrap_or_else(|e| e.into_inner()) = tenancy;
        if let TxnState::Open(txn) = &*rls.txn.lock().await {
            txn.query_one_raw(stmt).await?;
        }
        Ok(())
    }

    /// Lets the viewer's transaction write rows of `org`, an organization they are
    /// creating (row-level security would otherwise refuse the new tenant's first rows).
    pub async fn admit_organization(&self, org: Uuid) -> Result<(), DbErr> {
        let Some(rls) = &self.rls else { return Ok(()) };
        let mut t = rls.tenancy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !t.org_ids.contains(&org) {
            t.org_ids.push(org);
        }
        self.set_tenancy(t).await
    }

    /// The pool itself, outside the viewer's tenancy, for the one lookup that must reach
    /// past it: finding a user to add to an organization by exact id or email.
    pub fn directory(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Notes what a mutation changed. Under row-level security its savepoint is released
    /// before the request's transaction commits, so a concurrent request could re-read
    /// (and re-cache) the old rows in between: [`RequestDb::finish`] returns these for the
    /// context cache to drop again after the commit.
    pub fn remember_changes(&self, changes: &[Change]) {
        if let Some(rls) = &self.rls {
            rls.changes.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(changes);
        }
    }

    /// Ends the request: commits its transaction, if one was begun, and returns the
    /// changes it committed. A failure means the request's writes are lost, so the
    /// caller must not report them as done.
    pub async fn finish(&self) -> Result<Vec<Change>, DbErr> {
        let Some(rls) = &self.rls else { return Ok(Vec::new()) };
        let mut state = rls.txn.lock().await;
        if let TxnState::Open(txn) = std::mem::replace(&mut *state, TxnState::Finished) {
            txn.commit().await?;
        }
        Ok(std::mem::take(&mut *rls.changes.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Between the events of a subscription: commits the transaction the last event's reads
    /// opened (row-level security), so none stays open while the subscription waits; the
    /// next statement begins another, under the tenancy as it is then.
    pub async fn end_unit(&self) -> Result<(), DbErr> {
        let Some(rls) = &self.rls else { return Ok(()) };
        let mut state = rls.txn.lock().await;
        if let TxnState::Open(txn) = std::mem::replace(&mut *state, TxnState::Idle) {
            txn.commit().await?;
        }
        Ok(())
    }

    /// A transaction for a mutation's unit of work (every write goes through one): a
    /// savepoint in the request's transaction under row-level security.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        self.wrote.store(true, Ordering::Release);
        if let Some(reads) = &self.reads
            && reads.active.swap(false, Ordering::AcqRel)
            && let Some(rls) = &self.rls
            && let TxnState::Open(txn) = std::mem::replace(&mut *rls.txn.lock().await, TxnState::Idle)
        {
            // The replica's read-only transaction: what it read stays read.
            txn.commit().await?;
        }
        match &self.rls {
            None => begin_write_queued(&self.conn, &self.write_lock).await,
            Some(rls) => match &*self.open(rls).await? {
                TxnState::Open(txn) => Ok(WriteTxn { txn: txn.begin().await?, _turn: None }),
                _ => unreachable!("open() returns an open transaction"),
            },
        }
    }
}

/// Runs `$call` on the request's transaction under row-level security, else on the pool
/// (the replica's, while the request reads there).
macro_rules! through {
    ($self:ident, $conn:ident => $call:expr) => {
        match &$self.rls {
            None => {
                let $conn = $self.read_conn();
                $call.await
            }
            Some(rls) => match &*$self.open(rls).await? {
                TxnState::Open($conn) => $call.await,
                _ => unreachable!("open() returns an open transaction"),
            },
        }
    };
}

/// [`through!`], run once more on the primary when the replica failed under it.
macro_rules! routed {
    ($self:ident, $stmt:ident, $conn:ident => $call:expr) => {{
        if $self.reads.is_none() {
            through!($self, $conn => $call)
        } else {
            let first = {
                let $stmt = $stmt.clone();
                through!($self, $conn => $call)
            };
            match first {
                Err(e) if $self.fall_back(&e).await => through!($self, $conn => $call),
                r => r,
            }
        }
    }};
}

#[async_trait::async_trait]
impl ConnectionTrait for RequestDb {
    fn get_database_backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        routed!(self, stmt, c => c.execute_raw(stmt))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        routed!(self, sql, c => c.execute_unprepared(sql))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        routed!(self, stmt, c => c.query_one_raw(stmt))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        routed!(self, stmt, c => c.query_all_raw(stmt))
    }
}

/// Whether a database error is a unique-key violation (on either backend).
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}
