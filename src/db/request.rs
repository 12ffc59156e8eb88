//! The database handle of one request ([`RequestDb`]): every resolver and loader queries
//! through it, so request-wide concerns live here — the transaction PostgreSQL row-level
//! security runs in, under the viewer's [`Tenancy`], and reads routed to the replica.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    TransactionTrait,
};
use uuid::Uuid;

use super::{Change, WriteLock, WriteTxn, begin_write_queued, replica::Replica};

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
    /// The organizations whose drafts the viewer reads (READ_DRAFT_COURSE held there), and
    /// those where only the drafts of the courses they teach (READ_DRAFT_COURSE:OWN).
    pub draft_org_ids: Vec<Uuid>,
    pub own_draft_org_ids: Vec<Uuid>,
}

impl Tenancy {
    fn statement(&self, role: &str) -> Statement {
        let list = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('role', $1, true), set_config('app.user_id', $2, true), \
             set_config('app.org_ids', $3, true), set_config('app.platform_admin', $4, true), \
             set_config('app.email', $5, true), set_config('app.email_verified', $6, true), \
             set_config('app.draft_org_ids', $7, true), set_config('app.own_draft_org_ids', $8, true)",
            [
                role.into(),
                self.user_id.map(|u| u.to_string()).unwrap_or_default().into(),
                list(&self.org_ids).into(),
                if self.platform_admin { "on" } else { "off" }.into(),
                self.email.clone().unwrap_or_default().into(),
                if self.email_verified { "on" } else { "off" }.into(),
                list(&self.draft_org_ids).into(),
                list(&self.own_draft_org_ids).into(),
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

/// A query operation reading from the read replica ([`crate::db::replica`]).
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
        if !crate::db::replica::should_retry_on_primary(e) || !reads.active.swap(false, Ordering::AcqRel) {
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
                    Err(e) if self.on_replica() && crate::db::replica::should_retry_on_primary(&e) => {
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
