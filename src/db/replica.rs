//! The read replica (COURSEGRAPH_DATABASE_READ_URL): which query reads
//! where. A monitor compares the standby's replay position with the primary's WAL every
//! few hundred milliseconds; a query reads from the standby only while it is up, holds
//! everything the primary had committed no more than COURSEGRAPH_READ_MAX_LAG ago, and has
//! replayed the viewer's own last write. That write's position lives in the primary's
//! `write_positions` table, so a write on one server process is honoured by all of them.

use std::{
    collections::VecDeque,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use uuid::Uuid;

use crate::metrics::Metrics;

/// Where a query operation reads, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Replica,
    Primary(Why),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The monitor cannot reach the standby (or it is not in recovery).
    ReplicaDown,
    /// The standby is further behind than COURSEGRAPH_READ_MAX_LAG.
    ReplicaLag,
    /// The viewer wrote something the standby has not replayed yet.
    OwnWrite,
    /// The viewer's write position could not be read.
    PositionUnknown,
    /// A statement failed on the standby mid-request and was run again on the primary.
    ReplicaFailed,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::ReplicaDown => "replica_down",
            Why::ReplicaLag => "replica_lag",
            Why::OwnWrite => "own_write",
            Why::PositionUnknown => "position_unknown",
            Why::ReplicaFailed => "replica_failed",
        }
    }
}

/// What the monitor last saw of the standby.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// Its replay position (a WAL byte offset); `None` while it is down.
    replayed: Option<i64>,
    /// It holds every transaction the primary had committed by this instant.
    fresh_as_of: Option<Instant>,
}

/// A streaming standby and what is known of its progress.
pub struct Replica {
    conn: DatabaseConnection,
    primary: DatabaseConnection,
    max_lag: Duration,
    seen: RwLock<Seen>,
    metrics: Metrics,
}

/// The primary's WAL insert position: at or past the commit record of every transaction
/// that has committed before the statement runs (unlike the flush or write position, which
/// may trail it with `synchronous_commit = off`).
const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS lsn";
/// The standby's replay position; NULL on a server that is not in recovery.
const REPLAY_POSITION: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS lsn";

impl Replica {
    /// Opens the standby's pool without connecting: a standby that is down when the server
    /// starts only means reading from the primary until it is back.
    pub async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        primary: DatabaseConnection,
        max_lag: Duration,
        metrics: Metrics,
    ) -> Result<Arc<Self>, DbErr> {
        // Probed on its own: the primary may be behind PgBouncer while the standby is not.
        let mut conn = crate::db::connect_lazy(
            url,
            max_connections,
            acquire_timeout.min(Duration::from_secs(2)),
            crate::db::PreparedStatements::Auto,
        )
        .await?;
        // Its statements count in /metrics with the primary's (per request, the benchmark's
        // "SQL statements / request" is the sum of both).
        let m = metrics.clone();
        conn.set_metric_callback(move |info| m.observe_statement(info.elapsed, info.failed));
        Ok(Arc::new(Self { conn, primary, max_lag, seen: RwLock::new(Seen::default()), metrics }))
    }

    /// The standby's pool.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Where a query of a viewer whose last write is at `written` reads.
    pub fn route(&self, written: Option<i64>) -> Route {
        let seen = *self.seen.read().unwrap_or_else(|e| e.into_inner());
        let Some(replayed) = seen.replayed else { return Route::Primary(Why::ReplicaDown) };
        if seen.fresh_as_of.is_none_or(|t| t.elapsed() > self.max_lag) {
            return Route::Primary(Why::ReplicaLag);
        }
        if written.is_some_and(|w| w > replayed) {
            return Route::Primary(Why::OwnWrite);
        }
        Route::Replica
    }

    /// A statement failed on the standby as if it were down: read from the primary until
    /// the monitor reaches it again.
    pub fn mark_down(&self) {
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        if seen.replayed.take().is_some() {
            tracing::warn!("read replica: a statement failed on it; reading from the primary until it answers again");
        }
        self.metrics.set_replica_staleness(None);
    }

    /// Starts the monitor; it stops with the process.
    pub fn spawn_monitor(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let every = (self.max_lag / 5).clamp(Duration::from_millis(20), Duration::from_millis(200));
        tokio::spawn(async move {
            // (when sampled, the primary's position then), oldest first.
            let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { return };
                this.check(&mut samples).await;
            }
        });
    }

    /// One comparison: the primary's position first, then the standby's replay position.
    /// If the standby has replayed up to a position the primary had reached at instant
    /// `t`, it holds every commit made before `t`.
    async fn check(&self, samples: &mut VecDeque<(Instant, i64)>) {
        let at = Instant::now();
        let Ok(Some(primary)) = position(&self.primary, PRIMARY_POSITION).await else {
            // The primary is unreachable: every request fails anyway; keep what was known.
            return;
        };
        samples.push_back((at, primary));
        let replayed = match position(&self.conn, REPLAY_POSITION).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
                if seen.replayed.take().is_some() {
                    tracing::warn!("read replica: unreachable or not a standby; reading from the primary");
                }
                self.metrics.set_replica_staleness(None);
                samples.retain(|(t, _)| t.elapsed() <= self.max_lag * 2);
                return;
            }
        };
        // The newest sample the standby has caught up with; older ones are no longer needed.
        let mut fresh = None;
        while let Some(&(t, p)) = samples.front() {
            if p > replayed {
                break;
            }
            fresh = Some(t);
            samples.pop_front();
        }
        // A standby stuck for long must not grow this without bound; it is stale anyway.
        while samples.len() > 10_000 {
            samples.pop_front();
        }
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        if seen.replayed.is_none() {
            tracing::info!("read replica: reachable; queries read from it while it keeps up");
        }
        seen.replayed = Some(replayed);
        if let Some(t) = fresh {
            seen.fresh_as_of = Some(seen.fresh_as_of.map_or(t, |f| f.max(t)));
        }
        let staleness = seen.fresh_as_of.map_or(u64::MAX, |f| f.elapsed().as_millis() as u64);
        self.metrics.set_replica_staleness(Some(staleness));
    }
}

async fn position(conn: &DatabaseConnection, sql: &str) -> Result<Option<i64>, DbErr> {
    let row = conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>>("", "lsn")?,
        None => None,
    })
}

/// Notes, on the primary, that `user` has just written: their queries read from the
/// primary until the standby has replayed this far. Called after the write committed.
pub async fn record_write(primary: &DatabaseConnection, user: Uuid) -> Result<(), DbErr> {
    primary
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO write_positions (user_id, lsn, updated_at) \
             VALUES ($1, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint, now()) \
             ON CONFLICT (user_id) DO UPDATE \
             SET lsn = GREATEST(write_positions.lsn, EXCLUDED.lsn), updated_at = EXCLUDED.updated_at",
            [user.into()],
        ))
        .await
        .map(|_| ())
}

/// The position of `user`'s last write, if they have written.
pub async fn written_at(primary: &DatabaseConnection, user: Uuid) -> Result<Option<i64>, DbErr> {
    let row = primary
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT lsn FROM write_positions WHERE user_id = $1",
            [user.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<i64>("", "lsn")).transpose()
}

/// Whether a statement that failed on the standby should run again on the primary: the
/// standby is unreachable, or it cancelled the query over a conflict with recovery
/// (SQLSTATE 40001 on a hot standby).
pub fn should_retry_on_primary(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    let recovery_conflict = |r: &RuntimeErr| match r {
        RuntimeErr::SqlxError(s) => {
            matches!(s.as_ref(), sqlx::Error::Database(d) if d.code().as_deref() == Some("40001"))
        }
        _ => false,
    };
    crate::error::unreachable_db(e) || matches!(e, DbErr::Query(r) | DbErr::Exec(r) if recovery_conflict(r))
}
