//! Memberships: the one writer of `memberships` rows, and the invariants every change of
//! one keeps — an organization keeps an active ADMIN, and whoever can no longer teach stops
//! being a course's instructor in the same transaction.
//!
//! Every caller (createOrganization, addMember, updateMemberRole, removeMember, accepting
//! an invitation, first-sight provisioning) writes through these functions inside its
//! own unit of work; first sight on PostgreSQL also has its one-statement form
//! (`auth::provision`'s `SIGHT`), which inserts the same row.

use chrono::{DateTime, Utc};
use entity::{MembershipRole, course, membership};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::{
    authz::roles::Policy,
    error::{AppError, AppResult},
    live::LiveEvent,
};

/// Every column, in `Model` order: what each write reads back.
const COLUMNS: [membership::Column; 7] = [
    membership::Column::Id,
    membership::Column::UserId,
    membership::Column::OrganizationId,
    membership::Column::Role,
    membership::Column::IsActive,
    membership::Column::JoinedAt,
    membership::Column::UpdatedAt,
];

async fn returning(
    db: &impl ConnectionTrait,
    q: &impl sea_orm::StatementBuilder,
) -> Result<Option<membership::Model>, DbErr> {
    match db.query_one(q).await? {
        Some(r) => Ok(Some(<membership::Model as sea_orm::FromQueryResult>::from_query_result(&r, "")?)),
        None => Ok(None),
    }
}

/// A new active membership of `user` in `org` with `role`; `None` when they already have
/// one (active or not: a removed member is only brought back by [`reactivate`]).
pub async fn insert(
    db: &impl ConnectionTrait,
    user: Uuid,
    org: Uuid,
    role: MembershipRole,
    now: DateTime<Utc>,
) -> Result<Option<membership::Model>, DbErr> {
    let q = Query::insert()
        .into_table(membership::Entity)
        .columns(COLUMNS)
        .values_panic([
            Uuid::now_v7().into(),
            user.into(),
            org.into(),
            role.stored().into(),
            true.into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns([membership::Column::UserId, membership::Column::OrganizationId])
                .do_nothing()
                .to_owned(),
        )
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returning(db, &q).await
}

/// Brings a removed member of `org` back with `role`; `None` when `user` has no inactive
/// membership there.
pub async fn reactivate(
    db: &impl ConnectionTrait,
    user: Uuid,
    org: Uuid,
    role: MembershipRole,
    now: DateTime<Utc>,
) -> Result<Option<membership::Model>, DbErr> {
    let q = Query::update()
        .table(membership::Entity)
        .value(membership::Column::IsActive, true)
        .value(membership::Column::Role, role.stored())
        .value(membership::Column::UpdatedAt, now)
        .and_where(Expr::col(membership::Column::UserId).eq(user))
        .and_where(Expr::col(membership::Column::OrganizationId).eq(org))
        .and_where(Expr::col(membership::Column::IsActive).eq(false))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returning(db, &q).await
}

/// Gives membership `id` the role `role`.
pub async fn set_role(
    db: &impl ConnectionTrait,
    id: Uuid,
    role: MembershipRole,
    now: DateTime<Utc>,
) -> Result<membership::Model, DbErr> {
    let q = Query::update()
        .table(membership::Entity)
        .value(membership::Column::Role, role.stored())
        .value(membership::Column::UpdatedAt, now)
        .and_where(Expr::col(membership::Column::Id).eq(id))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returning(db, &q).await?.ok_or(DbErr::RecordNotFound(format!("membership {id}")))
}

/// COURSEGRAPH_ROLE_SOURCE=token: `user`'s role in `org` becomes the token's — only an
/// active membership's, only when it differs. Returns whether it changed.
pub async fn follow_token_role(
    db: &impl ConnectionTrait,
    user: Uuid,
    org: Uuid,
    role: MembershipRole,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let q = Query::update()
        .table(membership::Entity)
        .value(membership::Column::Role, role.stored())
        .value(membership::Column::UpdatedAt, now)
        .and_where(Expr::col(membership::Column::UserId).eq(user))
        .and_where(Expr::col(membership::Column::OrganizationId).eq(org))
        .and_where(Expr::col(membership::Column::IsActive).eq(true))
        .and_where(Expr::col(membership::Column::Role).ne(role.stored()))
        .to_owned();
    Ok(db.execute(&q).await?.rows_affected() == 1)
}

/// Removes a member: the membership is deactivated, nothing is deleted.
pub async fn deactivate(db: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<membership::Model, DbErr> {
    let q = Query::update()
        .table(membership::Entity)
        .value(membership::Column::IsActive, false)
        .value(membership::Column::UpdatedAt, now)
        .and_where(Expr::col(membership::Column::Id).eq(id))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returning(db, &q).await?.ok_or(DbErr::RecordNotFound(format!("membership {id}")))
}

/// `user`'s membership in `org`, if any.
pub async fn find(db: &impl ConnectionTrait, user: Uuid, org: Uuid) -> Result<Option<membership::Model>, DbErr> {
    membership::Entity::find()
        .filter(membership::Column::UserId.eq(user))
        .filter(membership::Column::OrganizationId.eq(org))
        .one(db)
        .await
}

/// Refuses (CONFLICT) to leave `m`'s organization without an active ADMIN when `m` stops
/// being one. Runs after the organization's row is locked (see the membership mutations),
/// so two admins demoting each other at once are decided one after the other; the admin
/// rows are locked as well.
pub async fn keep_an_admin(db: &impl ConnectionTrait, m: &membership::Model) -> AppResult<()> {
    if !(m.is_active && m.role == MembershipRole::Admin) {
        return Ok(());
    }
    let admins: Vec<Uuid> = membership::Entity::find()
        .select_only()
        .column(membership::Column::Id)
        .filter(membership::Column::OrganizationId.eq(m.organization_id))
        .filter(membership::Column::Role.eq(MembershipRole::Admin))
        .filter(membership::Column::IsActive.eq(true))
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?;
    if admins.iter().all(|id| *id == m.id) {
        return Err(AppError::conflict(
            "an organization keeps at least one active ADMIN: promote someone else first",
            None,
        ));
    }
    Ok(())
}

/// Whether `user` may be a course's instructor in `org`: an active member whose stored
/// grants allow it ([`crate::authz::policy::may_teach`]).
pub async fn can_teach(db: &impl ConnectionTrait, policy: &Policy, user: Uuid, org: Uuid) -> Result<bool, DbErr> {
    match find(db, user, org).await? {
        Some(m) if m.is_active => {
            Ok(crate::authz::policy::may_teach(super::roles::stored_grants(db, policy, &m).await?))
        }
        _ => Ok(false),
    }
}

/// Clears `user` as instructor of the courses of `org` (they can no longer teach there);
/// returns the live events of the courses it changed.
pub async fn end_instructorships(db: &impl ConnectionTrait, user: Uuid, org: Uuid) -> Result<Vec<LiveEvent>, DbErr> {
    let now = Utc::now();
    let taught = course::Entity::find()
        .filter(course::Column::OrganizationId.eq(org))
        .filter(course::Column::InstructorId.eq(user))
        .lock_exclusive()
        .all(db)
        .await?;
    if taught.is_empty() {
        return Ok(Vec::new());
    }
    course::Entity::update_many()
        .col_expr(course::Column::InstructorId, Expr::value(Option::<Uuid>::None))
        .col_expr(course::Column::UpdatedAt, Expr::value(now))
        .filter(course::Column::Id.is_in(taught.iter().map(|c| c.id)))
        .exec(db)
        .await?;
    Ok(taught
        .iter()
        .map(|before| {
            let after = course::Model { instructor_id: None, updated_at: now, ..before.clone() };
            LiveEvent::course_updated(before, &after)
        })
        .collect())
}
