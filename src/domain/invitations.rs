//! The membership lifecycle's shared steps: normalising invited addresses and accepting an
//! invitation, which both provisioning (a new user's first request) and `acceptInvitation`
//! run inside their own transaction.

use chrono::{DateTime, Utc};
use entity::{AuditAction, InvitationStatus, invitation};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, Query},
};
use serde_json::json;
use uuid::Uuid;

use super::{audit, membership};
use crate::error::{AppError, AppResult};

/// The longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 320;

/// Validates an invited address; returns it trimmed and its lower-cased form.
pub fn email(field: &str, raw: &str) -> AppResult<(String, String)> {
    let e = raw.trim();
    let bad = |why: &str| AppError::bad_input(field, format!("`{field}` {why}"));
    if e.is_empty() {
        return Err(bad("must not be empty"));
    }
    if e.chars().count() > MAX_EMAIL {
        return Err(bad(&format!("must be at most {MAX_EMAIL} characters")));
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return Err(bad("is not an email address"));
    };
    if local.is_empty()
        || domain.is_empty()
        || domain.starts_with('.')
        || domain.ends_with('.')
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
        || domain.contains('@')
    {
        return Err(bad("is not an email address"));
    }
    Ok((e.to_owned(), e.to_lowercase()))
}

/// What accepting did.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub membership: entity::membership::Model,
    /// A removed member was brought back.
    pub reactivated: bool,
}

/// Accepts `inv` for `user_id` in the caller's transaction: marks it accepted (only if it
/// is still pending and unexpired — of two concurrent acceptances exactly one wins, the
/// other gets `None`), gives the user the invited role (creating the membership, or
/// re-activating a removed one; an active member keeps their role), and records
/// INVITATION_ACCEPTED.
pub async fn accept(
    txn: &impl ConnectionTrait,
    inv: &invitation::Model,
    user_id: Uuid,
    now: DateTime<Utc>,
    source: &'static str,
) -> AppResult<Option<Accepted>> {
    let claim = Query::update()
        .table(invitation::Entity)
        .value(invitation::Column::Status, InvitationStatus::Accepted.stored())
        .value(invitation::Column::AcceptedAt, now)
        .value(invitation::Column::AcceptedBy, user_id)
        .value(invitation::Column::UpdatedAt, now)
        .and_where(Expr::col(invitation::Column::Id).eq(inv.id))
        .and_where(Expr::col(invitation::Column::Status).eq(InvitationStatus::Pending.stored()))
        .and_where(Expr::col(invitation::Column::ExpiresAt).gt(now))
        .to_owned();
    if txn.execute(&claim).await?.rows_affected() != 1 {
        return Ok(None);
    }
    let (m, created, reactivated) = match membership::insert(txn, user_id, inv.organization_id, inv.role, now).await? {
        Some(m) => (m, true, false),
        None => match membership::reactivate(txn, user_id, inv.organization_id, inv.role, now).await? {
            Some(m) => (m, false, true),
            // Already an active member: they keep their role.
            None => {
                let m = membership::find(txn, user_id, inv.organization_id).await?;
                (m.ok_or_else(|| AppError::internal("membership missing after accepting an invitation"))?, false, false)
            }
        },
    };
    audit::record(
        txn,
        audit::Event::new(AuditAction::InvitationAccepted, Some(inv.organization_id), Some(user_id))
            .target("invitation", inv.id)
            .details(json!({
                "membershipId": m.id,
                "role": inv.role.as_str(),
                "memberRole": m.role.as_str(),
                "created": created,
                "reactivated": reactivated,
                "source": source,
            })),
    )
    .await?;
    Ok(Some(Accepted { membership: m, reactivated }))
}

/// The pending, unexpired invitations addressed to `email` (lower-cased).
pub async fn pending_for(
    db: &impl ConnectionTrait,
    email: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<invitation::Model>> {
    Ok(invitation::Entity::find()
        .filter(invitation::Column::EmailNormalized.eq(email))
        .filter(invitation::Column::Status.eq(InvitationStatus::Pending))
        .filter(invitation::Column::ExpiresAt.gt(now))
        .all(db)
        .await?)
}

/// The role an invitation grants, as the policy spells it.
pub fn role(inv: &invitation::Model) -> crate::authz::Role {
    inv.role
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_lowercased_and_checked() {
        assert_eq!(email("e", "  Ada@Example.COM ").unwrap(), ("Ada@Example.COM".into(), "ada@example.com".into()));
        for bad in ["", "ada", "@x.org", "ada@", "a b@x.org", "ada@.x", "ada@x.", &format!("{}@x.org", "a".repeat(330))]
        {
            let e = email("input.email", bad).unwrap_err();
            assert!(matches!(e, AppError::BadUserInput { ref field, .. } if field == "input.email"), "{bad}");
        }
    }
}
