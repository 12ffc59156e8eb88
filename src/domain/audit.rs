//! The tenant audit log (`audit_events`): one event per membership, invitation,
//! organization and course-deletion change, inserted in the change's own transaction (so
//! a rolled-back change leaves none and a committed one always has one), plus
//! rate-limited records of refused mutations and of platform-admin access.
//!
//! Events carry ids, roles and reasons; never a token, a secret or a claim set.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::Utc;
use entity::{AuditAction, audit_event};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement,
    sea_query::{Expr, ExprTrait, Query},
};
use serde_json::Value;
use uuid::Uuid;

use crate::db::WriteLock;

/// Rate-limited actions are recorded at most once per key within this window.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One event to record.
#[derive(Clone, Debug)]
pub struct Event {
    pub organization_id: Option<Uuid>,
    pub action: AuditAction,
    pub actor_id: Option<Uuid>,
    /// (`"membership"`, id), (`"invitation"`, id), …
    pub target: Option<(&'static str, Uuid)>,
    pub details: Value,
}

impl Event {
    pub fn new(action: AuditAction, organization_id: Option<Uuid>, actor_id: Option<Uuid>) -> Self {
        Self { organization_id, action, actor_id, target: None, details: Value::Null }
    }

    pub fn target(mut self, kind: &'static str, id: Uuid) -> Self {
        self.target = Some((kind, id));
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The `event` field of an audit event's log line: the dotted names log searches and
/// alerts are written against (`membership.created`, …); `action` carries the stored name.
pub fn log_event(action: AuditAction) -> &'static str {
    match action {
        AuditAction::MembershipProvisioned => "membership.created",
        AuditAction::MemberAdded => "membership.added",
        AuditAction::MemberRoleChanged => "membership.role_changed",
        AuditAction::MemberRemoved => "membership.removed",
        AuditAction::InvitationCreated => "invitation.created",
        AuditAction::InvitationAccepted => "invitation.accepted",
        AuditAction::InvitationRevoked => "invitation.revoked",
        AuditAction::OrganizationUpdated => "organization.updated",
        AuditAction::CourseDeleted => "course.deleted",
        AuditAction::AccessDenied => "access.denied",
        AuditAction::PlatformAdminAccess => "platform_admin.act_as",
        AuditAction::RoleCreated => "role.created",
        AuditAction::RoleUpdated => "role.updated",
        AuditAction::RoleDeleted => "role.deleted",
        AuditAction::RoleAssigned => "role.assigned",
        AuditAction::RoleUnassigned => "role.unassigned",
    }
}

/// Inserts `event` on `db` — the transaction of the change it records. A plain INSERT
/// without RETURNING: under row-level security the application role may append events it
/// could not read back.
pub async fn record(db: &impl ConnectionTrait, event: Event) -> Result<(), DbErr> {
    db.execute(&recorded(event)).await.map(|_| ())
}

/// The INSERT that records `event` (for a unit of work to send with its last writes), and
/// its log line: the same (ids, never a token or a secret), for whoever reads logs.
pub fn recorded(event: Event) -> sea_orm::sea_query::InsertStatement {
    tracing::info!(target: "audit", event = log_event(event.action), action = event.action.as_str(),
        organization_id = event.organization_id.map(tracing::field::display),
        actor_id = event.actor_id.map(tracing::field::display), target_type = event.target.map(|t| t.0),
        target_id = event.target.map(|t| tracing::field::display(t.1)), details = %event.details, "audit event");
    statement(event, None)
}

async fn insert(db: &impl ConnectionTrait, event: Event, dedup_key: Option<String>) -> Result<(), DbErr> {
    db.execute(&statement(event, dedup_key)).await?;
    Ok(())
}

fn statement(event: Event, dedup_key: Option<String>) -> sea_orm::sea_query::InsertStatement {
    let (target_type, target_id) = match event.target {
        Some((t, id)) => (Some(t.to_owned()), Some(id)),
        None => (None, None),
    };
    let details = (event.details != Value::Null).then_some(event.details);
    Query::insert()
        .into_table(audit_event::Entity)
        .columns([
            audit_event::Column::Id,
            audit_event::Column::OrganizationId,
            audit_event::Column::At,
            audit_event::Column::Action,
            audit_event::Column::ActorId,
            audit_event::Column::TargetType,
            audit_event::Column::TargetId,
            audit_event::Column::Details,
            audit_event::Column::DedupKey,
        ])
        .values_panic([
            Uuid::now_v7().into(),
            event.organization_id.into(),
            Utc::now().into(),
            event.action.as_str().into(),
            event.actor_id.into(),
            target_type.into(),
            target_id.into(),
            details.into(),
            dedup_key.into(),
        ])
        .to_owned()
}

/// Records rate-limited events (ACCESS_DENIED, PLATFORM_ADMIN_ACCESS): at most one per
/// key within [`RATE_WINDOW`], across every process sharing the database. They record
/// decisions, not changes, so each is its own small transaction on the pool.
pub struct RateLimited {
    conn: DatabaseConnection,
    write_lock: WriteLock,
    /// Keys this process recorded (or found recorded) lately: repeats cost no statement.
    recent: Mutex<HashMap<String, Instant>>,
}

impl RateLimited {
    pub fn new(conn: DatabaseConnection, write_lock: WriteLock) -> Self {
        Self { conn, write_lock, recent: Mutex::new(HashMap::new()) }
    }

    fn seen_lately(&self, key: &str) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() > 10_000 {
            recent.retain(|_, at| at.elapsed() < RATE_WINDOW);
        }
        recent.get(key).is_some_and(|at| at.elapsed() < RATE_WINDOW)
    }

    fn remember(&self, key: String) {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).insert(key, Instant::now());
    }

    /// Records `event` unless one with `key` was recorded within the window. Failures are
    /// logged, never surfaced: the request they describe has already been answered.
    pub async fn record(&self, key: String, event: Event) {
        if self.seen_lately(&key) {
            return;
        }
        match self.record_in_db(&key, event).await {
            Ok(_) => self.remember(key),
            Err(e) => tracing::warn!(error = %e, "audit: could not record a rate-limited event"),
        }
    }

    /// Returns whether it inserted. On PostgreSQL a transaction-scoped advisory lock on the
    /// key makes the check-then-insert atomic across processes; on SQLite the write
    /// transaction itself is exclusive.
    async fn record_in_db(&self, key: &str, event: Event) -> Result<bool, DbErr> {
        let txn = crate::db::begin_write_queued(&self.conn, &self.write_lock).await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 7401))",
                [key.into()],
            ))
            .await?;
        }
        let since = Utc::now() - chrono::Duration::from_std(RATE_WINDOW).unwrap_or_default();
        let recent = Query::select()
            .expr(Expr::val(1))
            .from(audit_event::Entity)
            .and_where(Expr::col(audit_event::Column::ActorId).eq(event.actor_id))
            .and_where(Expr::col(audit_event::Column::DedupKey).eq(key))
            .and_where(Expr::col(audit_event::Column::At).gt(since))
            .limit(1)
            .to_owned();
        if txn.query_one(&recent).await?.is_some() {
            return Ok(false);
        }
        insert(&txn, event, Some(key.to_owned())).await?;
        txn.commit().await?;
        Ok(true)
    }
}
