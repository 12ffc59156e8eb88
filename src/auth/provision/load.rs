//! Reading a user with every membership (and its organization) in one statement: the
//! warm path, the reload after a mutation, and the access doctor's view.

use chrono::Utc;
use entity::{InvitationStatus, invitation, membership, organization, user};
use sea_orm::{
    ConnectionTrait, QueryResult,
    sea_query::{Alias, Expr, ExprTrait, JoinType, Query},
};
use uuid::Uuid;

use super::super::{
    Identity,
    cache::Found,
    viewer::{MembershipRecord, MembershipRow, UserRecord, Viewer},
};
use crate::{
    authz::roles::Policy,
    domain::roles,
    error::{AppError, AppResult},
};

/// The user's columns a viewer is built from, in the order `UserRecord` reads them.
pub(super) const USER_COLUMNS: [user::Column; 7] = [
    user::Column::Id,
    user::Column::Email,
    user::Column::Name,
    user::Column::AvatarUrl,
    user::Column::EmailVerified,
    user::Column::LastLoginAt,
    user::Column::CreatedAt,
];

/// A user as [`USER_COLUMNS`] read it.
pub(super) fn user_from_row(r: &QueryResult) -> AppResult<UserRecord> {
    Ok(UserRecord {
        id: r.try_get("", "id")?,
        email: r.try_get("", "email")?,
        name: r.try_get("", "name")?,
        avatar_url: r.try_get("", "avatar_url")?,
        email_verified: r.try_get("", "email_verified")?,
        last_login_at: r.try_get("", "last_login_at")?,
        created_at: r.try_get("", "created_at")?,
    })
}

/// Which user to load.
pub(super) enum Key<'a> {
    Identity(&'a Identity),
    UserId(Uuid),
}

/// The single warm-path statement: the user with every membership and its organization.
/// With `invited` (a verified email provisioning would accept invitations for), it also
/// says whether any are pending — in the same statement.
pub(super) async fn load(
    db: &impl ConnectionTrait,
    policy: &Policy,
    key: Key<'_>,
    invited: Option<&str>,
) -> AppResult<Option<Found>> {
    let (u, m, o) = (Alias::new("u"), Alias::new("m"), Alias::new("o"));
    let backend = db.get_database_backend();
    let stmt = Query::select()
        .exprs(USER_COLUMNS.map(|c| Expr::col((u.clone(), c))))
        .expr_as(Expr::col((m.clone(), membership::Column::Id)), Alias::new("m_id"))
        .expr_as(Expr::col((m.clone(), membership::Column::OrganizationId)), Alias::new("m_org"))
        .expr_as(Expr::col((m.clone(), membership::Column::Role)), Alias::new("m_role"))
        .expr_as(Expr::col((m.clone(), membership::Column::IsActive)), Alias::new("m_active"))
        .expr_as(Expr::col((m.clone(), membership::Column::JoinedAt)), Alias::new("m_joined"))
        .expr_as(Expr::col((o.clone(), organization::Column::Slug)), Alias::new("o_slug"))
        .expr_as(Expr::col((o.clone(), organization::Column::ExternalId)), Alias::new("o_ext"))
        .expr_as(Expr::col((o.clone(), organization::Column::Name)), Alias::new("o_name"))
        .expr_as(Expr::col((o.clone(), organization::Column::StorageBucket)), Alias::new("o_bucket"))
        .expr_as(Expr::col((o.clone(), organization::Column::CreatedAt)), Alias::new("o_created"))
        .expr_as(Expr::col((o.clone(), organization::Column::UpdatedAt)), Alias::new("o_updated"))
        // The roles assigned to each membership, and its organization's own roles.
        .expr_as(Expr::cust(roles::assigned_keys_sql(backend, "m.id")), Alias::new("m_roles"))
        .expr_as(Expr::cust(roles::catalogue_sql(backend, "m.organization_id")), Alias::new("o_roles"))
        .from_as(user::Entity, u.clone())
        .join_as(
            JoinType::LeftJoin,
            membership::Entity,
            m.clone(),
            Expr::col((m.clone(), membership::Column::UserId)).equals((u.clone(), user::Column::Id)),
        )
        .join_as(
            JoinType::LeftJoin,
            organization::Entity,
            o.clone(),
            Expr::col((o.clone(), organization::Column::Id)).equals((m.clone(), membership::Column::OrganizationId)),
        )
        .to_owned();
    let mut stmt = stmt;
    if let Some(email) = invited {
        let pending = Query::select()
            .expr(Expr::val(1))
            .from(invitation::Entity)
            .and_where(Expr::col(invitation::Column::EmailNormalized).eq(email))
            .and_where(Expr::col(invitation::Column::Status).eq(InvitationStatus::Pending.stored()))
            .and_where(Expr::col(invitation::Column::ExpiresAt).gt(Utc::now()))
            .to_owned();
        stmt.expr_as(Expr::exists(pending), Alias::new("pending_invitations"));
    }
    match key {
        Key::Identity(identity) => stmt
            .and_where(Expr::col((u.clone(), user::Column::Issuer)).eq(identity.issuer.as_str()))
            .and_where(Expr::col((u, user::Column::ExternalId)).eq(identity.subject.as_str())),
        Key::UserId(id) => stmt.and_where(Expr::col((u, user::Column::Id)).eq(id)),
    };
    found_from_rows(&db.query_all(&stmt).await?, invited.is_some(), policy)
}

/// A user with every membership from `load`'s columns (one row per membership, or one
/// without); `pending` says whether the rows carry `pending_invitations`.
pub(super) fn found_from_rows(rows: &[QueryResult], pending: bool, policy: &Policy) -> AppResult<Option<Found>> {
    let Some(first) = rows.first() else { return Ok(None) };
    let user = user_from_row(first)?;
    let pending_invitations = pending && first.try_get::<bool>("", "pending_invitations")?;
    let mut memberships = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(m) = membership_from_row(r, policy)? {
            memberships.push(m);
        }
    }
    Ok(Some(Found { user, memberships, pending_invitations }))
}

/// The user `identity` names and every membership, as provisioning would find them —
/// read only, nothing created or touched (the access doctor's view).
pub async fn existing(
    db: &impl ConnectionTrait,
    policy: &Policy,
    identity: &Identity,
) -> AppResult<Option<(UserRecord, Vec<MembershipRecord>)>> {
    Ok(load(db, policy, Key::Identity(identity), None).await?.map(|f| (f.user, f.memberships)))
}

/// The viewer again, after a mutation changed their memberships: same user, fresh
/// memberships; the active organization stays if it is still active.
pub async fn reload_viewer(db: &impl ConnectionTrait, v: &Viewer) -> AppResult<Viewer> {
    let found = load(db, &v.policy, Key::UserId(v.user.id), None).await?.ok_or(AppError::not_found("user"))?;
    let mut next = Viewer {
        user: found.user,
        memberships: found.memberships,
        active_organization: None,
        removed_from: v.removed_from,
        platform_admin: v.platform_admin,
        email: v.email.clone(),
        policy: v.policy.clone(),
        token_grants: v.token_grants.clone(),
    };
    // The organization the request acts in stays, unless the viewer was just removed from it.
    match v.active_organization {
        Some(o) if v.platform_admin || next.membership(o).is_some_and(|m| m.is_active) => {
            next.active_organization = Some(o)
        }
        Some(o) if next.membership(o).is_some() => next.removed_from = Some(o),
        _ => {}
    }
    Ok(next)
}

pub(super) fn membership_from_row(r: &QueryResult, policy: &Policy) -> AppResult<Option<MembershipRecord>> {
    if r.try_get::<Option<Uuid>>("", "m_id")?.is_none() {
        return Ok(None);
    }
    let organization = entity::organization::Model {
        id: r.try_get("", "m_org")?,
        external_id: r.try_get("", "o_ext")?,
        name: r.try_get("", "o_name")?,
        slug: r.try_get("", "o_slug")?,
        storage_bucket: r.try_get("", "o_bucket")?,
        created_at: r.try_get("", "o_created")?,
        updated_at: r.try_get("", "o_updated")?,
    };
    let stored: String = r.try_get("", "m_role")?;
    let role = <entity::MembershipRole as sea_orm::ActiveEnum>::try_from_value(&stored)
        .map_err(|_| AppError::internal(format!("unknown role `{stored}` in memberships")))?;
    let keys = roles::decode_keys(r.try_get::<Option<String>>("", "m_roles")?.as_deref());
    let catalogue = roles::decode_catalogue(r.try_get::<Option<String>>("", "o_roles")?.as_deref());
    let m = MembershipRow {
        id: r.try_get("", "m_id")?,
        role,
        is_active: r.try_get("", "m_active")?,
        joined_at: r.try_get("", "m_joined")?,
    };
    Ok(Some(MembershipRecord::new(m, organization, keys, catalogue, policy)))
}
