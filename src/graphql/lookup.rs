//! Loading the row an operation is about, with one answer for every entry point:
//! NOT_FOUND when the viewer cannot see it at all (missing and another tenant's look
//! the same), FORBIDDEN with the policy's explanation when they can see it but the
//! action is refused.

use std::sync::Arc;

use async_graphql::{Context, ID};
use entity::{course, invitation, membership, organization, track};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, sea_query::Query,
};
use uuid::Uuid;

use super::{context::ContextExt, types::parse_id};
use crate::{
    authz::{Action, Decision, Resource, Subject as _, policy, scope},
    domain::roles,
    error::{AppError, AppResult},
};

/// An organization the viewer is (or was) a member of, with `action` granted.
/// A removed member hears MEMBERSHIP_INACTIVE: they know the organization already.
pub async fn organization(ctx: &Context<'_>, id: Uuid, action: Action) -> AppResult<Arc<organization::Model>> {
    let viewer = ctx.viewer()?;
    let res = Resource::Organization { id };
    match ctx.loaders()?.organization_now(id).await? {
        Some(o) => {
            ctx.require_as(&viewer, action, &res)?;
            Ok(o)
        }
        None if viewer.membership(id).is_some() => Err(ctx.require_as(&viewer, action, &res).err().unwrap_or_else(
            // Unreachable in practice: a visible organization is found by the loader.
            || AppError::not_found("organization"),
        )),
        None => Err(AppError::not_found("organization")),
    }
}

/// The organization a write goes to: `organization_id` when given (the Hasura-style
/// insert preset, never trusted blindly), else the active organization.
pub async fn target_organization(
    ctx: &Context<'_>,
    field: &str,
    organization_id: Option<&ID>,
    action: Action,
) -> AppResult<Arc<organization::Model>> {
    let id = match organization_id {
        Some(id) => parse_id(field, id)?,
        None => ctx.fallback_organization()?.ok_or_else(|| {
            AppError::bad_input(field, format!("no active organization: pass `{field}` or send X-Organization-Id"))
        })?,
    };
    organization(ctx, id, action).await
}

/// A course the viewer can read, with `action` granted.
pub async fn course(ctx: &Context<'_>, id: Uuid, action: Action) -> AppResult<Arc<course::Model>> {
    let c = ctx.loaders()?.course_now(id).await?.ok_or(AppError::not_found("course"))?;
    ctx.require(action, &super::types::course::resource(&c))?;
    Ok(c)
}

/// A track the viewer can read (through its course), with `action` granted on the course.
pub async fn track(ctx: &Context<'_>, id: Uuid, action: Action) -> AppResult<(Arc<track::Model>, Arc<course::Model>)> {
    let t = ctx.loaders()?.tracks.load_one(id).await?.ok_or(AppError::not_found("track"))?;
    let c = course(ctx, t.course_id, action).await.map_err(|e| match e {
        AppError::NotFound { .. } => AppError::not_found("track"),
        e => e,
    })?;
    Ok((t, c))
}

/// Which course a write to its tracks is about: the course itself, or one of its tracks'.
#[derive(Clone, Copy, Debug)]
pub enum CourseOf {
    Course(Uuid),
    Track(Uuid),
}

/// The select list of [`course_for_write`] on PostgreSQL: the course's columns as `c_…`,
/// its tracks' as `t_…` (built once).
static COURSE_AND_TRACK_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let c = course::Column::iter().map(|c| format!("c.\"{0}\" AS \"c_{0}\"", c.as_str()));
    let t = track::Column::iter().map(|c| format!("t.\"{0}\" AS \"t_{0}\"", c.as_str()));
    c.chain(t).collect::<Vec<_>>().join(", ")
});
const TRACKS_NOW: &str = "LEFT JOIN LATERAL app_tracks_now(c.id) t ON true ORDER BY t.position, t.id";

/// For a write to a course's tracks, inside its unit of work: the course, locked until
/// the write commits (FOR UPDATE on PostgreSQL, so concurrent writes to one course's
/// tracks take turns and positions stay dense; SQLite's writer holds the whole database),
/// and its tracks in order — in one statement. The same answers as [`course`] and
/// [`track`]: NOT_FOUND when the viewer cannot read it, FORBIDDEN unless `action` is granted.
pub async fn course_for_write(
    ctx: &Context<'_>,
    work: &impl ConnectionTrait,
    of: CourseOf,
    action: Action,
) -> AppResult<(Arc<course::Model>, Vec<track::Model>)> {
    let viewer = ctx.viewer()?;
    let missing = || match of {
        CourseOf::Course(_) => AppError::not_found("course"),
        CourseOf::Track(_) => AppError::not_found("track"),
    };
    let which = match of {
        CourseOf::Course(id) => course::Column::Id.eq(id),
        CourseOf::Track(id) => course::Column::Id.in_subquery(
            Query::select()
                .column(track::Column::CourseId)
                .from(track::Entity)
                .and_where(track::Column::Id.eq(id))
                .to_owned(),
        ),
    };
    let course = course::Entity::find().filter(scope::courses(viewer.as_ref())).filter(which);
    let rows: Vec<(course::Model, Option<track::Model>)> = match work.get_database_backend() {
        // The lock, then the tracks as committed once it is held (`app_tracks_now`, a
        // VOLATILE function, reads with a fresh snapshot): a statement that waited for the
        // lock would otherwise see the tracks as they were when it began.
        DbBackend::Postgres => {
            let locked = DbBackend::Postgres.build(course.lock_exclusive().as_query());
            let sql = format!("SELECT {} FROM ({}) c {TRACKS_NOW}", *COURSE_AND_TRACK_COLUMNS, locked.sql);
            let stmt = Statement { sql, ..locked };
            work.query_all_raw(stmt)
                .await?
                .iter()
                .map(|r| {
                    Ok((course::Model::from_query_result(r, "c_")?, track::Model::from_query_result_optional(r, "t_")?))
                })
                .collect::<Result<_, DbErr>>()?
        }
        // SQLite: the write transaction (BEGIN IMMEDIATE) already holds the database.
        _ => {
            course
                .find_also_related(track::Entity)
                .order_by_asc(track::Column::Position)
                .order_by_asc(track::Column::Id)
                .all(work)
                .await?
        }
    };
    let Some((c, _)) = rows.first() else { return Err(missing()) };
    let c = Arc::new(c.clone());
    let tracks: Vec<track::Model> = rows.into_iter().filter_map(|(_, t)| t).collect();
    if let CourseOf::Track(id) = of
        && !tracks.iter().any(|t| t.id == id)
    {
        return Err(missing());
    }
    ctx.require_as(&viewer, action, &super::types::course::resource(&c)).map_err(|e| match (e, of) {
        (AppError::NotFound { .. }, CourseOf::Track(_)) => missing(),
        (e, _) => e,
    })?;
    Ok((c, tracks))
}

/// For a write to a course, inside its unit of work: the course as it is now, locked until
/// the write commits (FOR UPDATE; SQLite's writer holds the whole database), in one
/// statement. The same answers as [`course`].
pub async fn course_locked(
    ctx: &Context<'_>,
    work: &impl ConnectionTrait,
    id: Uuid,
    action: Action,
) -> AppResult<Arc<course::Model>> {
    let viewer = ctx.viewer()?;
    let c = course::Entity::find_by_id(id)
        .filter(scope::courses(viewer.as_ref()))
        .lock_exclusive()
        .one(work)
        .await?
        .ok_or(AppError::not_found("course"))?;
    ctx.require_as(&viewer, action, &super::types::course::resource(&c))?;
    Ok(Arc::new(c))
}

/// A membership in one of the viewer's organizations, with `action` granted there.
pub async fn membership(ctx: &Context<'_>, id: Uuid, action: Action) -> AppResult<Arc<membership::Model>> {
    let m = ctx.loaders()?.memberships.load_one(id).await?.ok_or(AppError::not_found("membership"))?;
    ctx.require(action, &Resource::Organization { id: m.organization_id })?;
    Ok(m)
}

/// An invitation of one of the viewer's organizations, with `action` granted there
/// (MANAGE_MEMBERS): NOT_FOUND when it is not one of theirs, FORBIDDEN when it is but
/// their role does not manage members.
pub async fn invitation(ctx: &Context<'_>, id: Uuid, action: Action) -> AppResult<invitation::Model> {
    let viewer = ctx.viewer()?;
    let inv = invitation::Entity::find_by_id(id)
        .filter(scope::invitations_of_members(viewer.as_ref()))
        .one(ctx.db()?)
        .await?
        .ok_or(AppError::not_found("invitation"))?;
    ctx.require_as(&viewer, action, &invitation_resource(&viewer, &inv))?;
    Ok(inv)
}

/// An invitation addressed to the viewer's email (from the token), for ACCEPT_INVITATION.
/// Anyone else's is missing to them.
pub async fn invitation_for_invitee(ctx: &Context<'_>, id: Uuid) -> AppResult<invitation::Model> {
    let viewer = ctx.viewer()?;
    let Some(email) = viewer.email.as_ref() else { return Err(AppError::not_found("invitation")) };
    invitation::Entity::find_by_id(id)
        .filter(invitation::Column::EmailNormalized.eq(email.address.as_str()))
        .one(ctx.db()?)
        .await?
        .ok_or(AppError::not_found("invitation"))
}

/// The policy's view of an invitation for this viewer.
pub fn invitation_resource(viewer: &crate::auth::Viewer, inv: &invitation::Model) -> Resource {
    let email = viewer.email.as_ref();
    Resource::Invitation {
        organization_id: inv.organization_id,
        addressed_to_subject: email.is_some_and(|e| e.address == inv.email_normalized),
        email_verified: email.is_some_and(|e| e.verified),
    }
}

/// `explainAccess`: the decision the guarded operation would reach, without doing it.
/// `resource_id` names an organization, a course or a user, depending on the action;
/// without it, the active organization (or, for READ_USER_PRIVATE, the viewer).
pub async fn explain(ctx: &Context<'_>, action: Action, resource_id: Option<Uuid>) -> AppResult<Decision> {
    let viewer = ctx.viewer()?;
    let loaders = ctx.loaders()?;
    // An organization the viewer is or was a member of (any, for a platform admin).
    let v = viewer.clone();
    let known_org = |id: Uuid| async move {
        if v.membership(id).is_some() {
            return Ok::<_, AppError>(true);
        }
        Ok(v.is_platform_admin() && loaders.organizations.load_one(id).await?.is_some())
    };
    let resource = match (action.target(), resource_id) {
        (policy::Target::Invitation, None) => return Ok(policy::not_found(action)),
        (policy::Target::Invitation, Some(id)) => match invitation_for_invitee(ctx, id).await {
            Ok(inv) => invitation_resource(&viewer, &inv),
            Err(AppError::NotFound { .. }) => return Ok(policy::not_found(action)),
            Err(e) => return Err(e),
        },
        (policy::Target::User, id) => {
            let id = id.unwrap_or(viewer.user.id);
            let organization_ids = if id == viewer.user.id {
                Vec::new()
            } else {
                loaders.shared_organizations.load_one(id).await?.map(|v| v.as_ref().clone()).unwrap_or_default()
            };
            if id != viewer.user.id && organization_ids.is_empty() && !viewer.is_platform_admin() {
                return Ok(policy::not_found(action));
            }
            Resource::User { id, organization_ids }
        }
        // The organization the viewer acts in — or, when the token names one they were
        // removed from, that one: its decision says MEMBERSHIP_INACTIVE, as the operation does.
        (target, None) => match viewer.active_organization.or(viewer.removed_from) {
            Some(org) if target == policy::Target::Course => policy::generic_course(org, action),
            Some(org) => Resource::Organization { id: org },
            // No organization to act in.
            None => {
                let d = policy::check(viewer.as_ref(), action, &Resource::Organization { id: Uuid::nil() });
                return Ok(Decision { organization_id: None, ..d });
            }
        },
        (target, Some(id)) => {
            if let Some(c) = loaders.courses.load_one(id).await? {
                match target {
                    policy::Target::Course => super::types::course::resource(&c),
                    _ => Resource::Organization { id: c.organization_id },
                }
            } else if known_org(id).await? {
                match target {
                    policy::Target::Course => policy::generic_course(id, action),
                    _ => Resource::Organization { id },
                }
            } else {
                return Ok(policy::not_found(action));
            }
        }
    };
    Ok(policy::check(viewer.as_ref(), action, &resource))
}

/// `whoCan`: the active members of the resource's organization whom the policy grants
/// `action` on it, each with the decision. ADMIN only (MANAGE_MEMBERS there): the answer
/// lists people and their roles. `resource_id` is a course or an organization (for
/// READ_USER_PRIVATE: a user of the active organization).
pub async fn who_can(
    ctx: &Context<'_>,
    action: Action,
    resource_id: Uuid,
) -> AppResult<Vec<(membership::Model, Decision)>> {
    let viewer = ctx.viewer()?;
    let (org, resource) = match action.target() {
        policy::Target::Invitation => {
            return Err(AppError::bad_input(
                "action",
                "whoCan answers organization, course and user actions; an invitation is only ever its invitee's",
            ));
        }
        policy::Target::User => {
            let org = ctx
                .fallback_organization()?
                .ok_or_else(|| AppError::bad_input("resourceId", "no active organization: send X-Organization-Id"))?;
            organization(ctx, org, Action::ManageMembers).await?;
            let member = membership::Entity::find()
                .filter(membership::Column::OrganizationId.eq(org))
                .filter(membership::Column::UserId.eq(resource_id))
                .one(ctx.db()?)
                .await?;
            if member.is_none() {
                return Err(AppError::not_found("user"));
            }
            (org, Resource::User { id: resource_id, organization_ids: vec![org] })
        }
        target => match ctx.loaders()?.course_now(resource_id).await? {
            Some(c) => {
                organization(ctx, c.organization_id, Action::ManageMembers).await?;
                let r = match target {
                    policy::Target::Course => super::types::course::resource(&c),
                    _ => Resource::Organization { id: c.organization_id },
                };
                (c.organization_id, r)
            }
            None => {
                let o = organization(ctx, resource_id, Action::ManageMembers).await?;
                let r = match target {
                    policy::Target::Course => policy::generic_course(o.id, action),
                    _ => Resource::Organization { id: o.id },
                };
                (o.id, r)
            }
        },
    };
    let db = ctx.db()?;
    let members = membership::Entity::find()
        .filter(scope::memberships(viewer.as_ref()))
        .filter(membership::Column::OrganizationId.eq(org))
        .filter(membership::Column::IsActive.eq(true))
        .all(db)
        .await?;
    // Each member's stored grants: the built-in role's and the assigned roles'.
    let catalogue = roles::catalogue(db, org).await?;
    let mut assigned = roles::assignments(db, org).await?;
    let mut allowed: Vec<_> = members
        .into_iter()
        .filter_map(|m| {
            let who = policy::Member {
                user_id: m.user_id,
                organization_id: org,
                role: m.role,
                roles: assigned.remove(&m.id).unwrap_or_default(),
                policy: &viewer.policy,
                catalogue: &catalogue,
            };
            let d = policy::check(&who, action, &resource);
            d.allowed.then_some((m, d))
        })
        .collect();
    allowed.sort_by(|(a, _), (b, _)| b.role.cmp(&a.role).then(a.joined_at.cmp(&b.joined_at)));
    Ok(allowed)
}
