//! `Mutation`: the write entry points. Each one loads its target (NOT_FOUND across
//! tenants), asks the policy (FORBIDDEN, explained), validates its input
//! (BAD_USER_INPUT naming the field), and only then writes — in one transaction when
//! it writes more than one row, so a failure leaves nothing half-written.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, MergedObject, Object};
use chrono::Utc;
use entity::{AuditAction, MembershipRole, course, membership, organization, track, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
    sea_query::{CaseStatement, Expr, ExprTrait, Func, OnConflict, Query},
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    context::ContextExt,
    lookup,
    types::{
        course::Course,
        membership::Membership,
        organization::Organization,
        parse_id,
        scalars::{Decimal, Difficulty},
        track::Track,
    },
    validate, visibility,
};
use crate::{
    audit,
    auth::provision::slugify,
    auth::{
        Viewer,
        cache::{Change, ContextCache},
        viewer::MembershipRecord,
    },
    authz::{Action, Resource, Role, policy},
    error::{AppError, AppResult},
    live::{self, LiveEvent, Op},
};

#[derive(InputObject)]
pub struct CreateOrganizationInput {
    pub name: String,
    /// Defaults to one made from the name.
    pub slug: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateOrganizationInput {
    pub name: MaybeUndefined<String>,
    /// The storage bucket keeps its name when the slug changes.
    pub slug: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct AddMemberInput {
    /// Defaults to the active organization.
    pub organization_id: Option<ID>,
    /// The user to add: by id, or by email (exactly one of the two).
    pub user_id: Option<ID>,
    pub email: Option<String>,
    pub role: Role,
}

#[derive(InputObject)]
pub struct CreateCourseInput {
    /// Defaults to the active organization.
    pub organization_id: Option<ID>,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub difficulty_level: Difficulty,
    pub estimated_duration: Option<f64>,
    pub duration_unit: Option<String>,
    /// Defaults to "0.00".
    pub price: Option<Decimal>,
    /// Defaults to false: new courses are drafts.
    pub is_published: Option<bool>,
    /// Defaults to the creator; only an ADMIN may name someone else.
    pub instructor_id: Option<ID>,
    pub metadata: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct UpdateCourseInput {
    pub title: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
    pub category: MaybeUndefined<String>,
    pub difficulty_level: MaybeUndefined<Difficulty>,
    pub estimated_duration: MaybeUndefined<f64>,
    pub duration_unit: MaybeUndefined<String>,
    pub price: MaybeUndefined<Decimal>,
    pub is_published: MaybeUndefined<bool>,
    /// Only an ADMIN may change the instructor; `null` unassigns.
    pub instructor_id: MaybeUndefined<ID>,
    pub metadata: MaybeUndefined<Json<Value>>,
}

#[derive(InputObject)]
pub struct CreateTrackInput {
    pub course_id: ID,
    pub name: String,
    pub description: Option<String>,
    /// Where to insert it (later tracks move down); defaults to the end.
    pub position: Option<i32>,
}

#[derive(InputObject)]
pub struct UpdateTrackInput {
    pub name: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
    /// Moves the track; the others close up around it.
    pub position: MaybeUndefined<i32>,
}

/// A value that may be left out but not set to null.
fn not_null<T>(field: &str, v: MaybeUndefined<T>) -> AppResult<Option<T>> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(AppError::bad_input(field, format!("`{field}` cannot be null"))),
        MaybeUndefined::Value(v) => Ok(Some(v)),
    }
}

/// Whether `user` is an active ADMIN or INSTRUCTOR of `org` (who may be a course's instructor).
async fn can_teach(db: &impl ConnectionTrait, user: Uuid, org: Uuid) -> AppResult<bool> {
    let n = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user))
        .filter(membership::Column::OrganizationId.eq(org))
        .filter(membership::Column::IsActive.eq(true))
        .filter(membership::Column::Role.is_in([MembershipRole::Admin, MembershipRole::Instructor]))
        .count(db)
        .await?;
    Ok(n > 0)
}

/// Refuses (CONFLICT) to leave `org` without an active ADMIN when `membership` stops
/// being one. Runs after [`lock_and_recheck`], so two admins demoting each other at the
/// same moment are decided one after the other; the admin rows are locked as well.
async fn keep_an_admin(db: &impl ConnectionTrait, m: &membership::Model) -> AppResult<()> {
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

/// Serialises membership management within one organization (FOR UPDATE on its row in
/// PostgreSQL; SQLite write transactions are serialised already), then re-checks the
/// actor's own standing inside the transaction: an ADMIN demoted a moment ago by another
/// request cannot still act on a decision made before that commit.
pub(super) async fn lock_and_recheck(
    ctx: &Context<'_>,
    txn: &impl ConnectionTrait,
    viewer: &Viewer,
    org: Uuid,
    action: Action,
) -> AppResult<()> {
    organization::Entity::find_by_id(org)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(AppError::not_found("organization"))?;
    if viewer.platform_admin {
        return Ok(());
    }
    let current = membership::Entity::find()
        .filter(membership::Column::UserId.eq(viewer.user.id))
        .filter(membership::Column::OrganizationId.eq(org))
        .one(txn)
        .await?;
    let mut now = viewer.clone();
    now.memberships.retain(|m| m.organization_id != org);
    if let (Some(m), Some(old)) = (current, viewer.membership(org)) {
        now.memberships.push(MembershipRecord { role: m.role, is_active: m.is_active, ..old.clone() });
    }
    ctx.require_as(&now, action, &Resource::Organization { id: org })?;
    Ok(())
}

/// Clears `user` as instructor of the courses of `org` (when they stop being able to
/// teach); returns the live events of the courses it changed.
async fn unassign_courses(db: &impl ConnectionTrait, user: Uuid, org: Uuid) -> AppResult<Vec<LiveEvent>> {
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

/// Where each track of `course` is now.
async fn positions(db: &impl ConnectionTrait, course: Uuid) -> AppResult<HashMap<Uuid, i32>> {
    let rows: Vec<(Uuid, i32)> = track::Entity::find()
        .select_only()
        .column(track::Column::Id)
        .column(track::Column::Position)
        .filter(track::Column::CourseId.eq(course))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// A CHANGED event for every other track of `course` whose position is not what
/// `before` says (the tracks a move or an insertion shifted).
async fn moved_tracks(
    db: &impl ConnectionTrait,
    course: Uuid,
    before: &HashMap<Uuid, i32>,
    except: Uuid,
) -> AppResult<Vec<LiveEvent>> {
    let now = track::Entity::find().filter(track::Column::CourseId.eq(course)).all(db).await?;
    Ok(now
        .iter()
        .filter(|t| t.id != except && before.get(&t.id).is_some_and(|p| *p != t.position))
        .map(|t| LiveEvent::track(Op::Updated, t))
        .collect())
}

/// Moves the tracks of `course` at positions `from..` by `delta`.
async fn shift_tracks(
    db: &impl ConnectionTrait,
    course: Uuid,
    from: i32,
    to: Option<i32>,
    delta: i32,
) -> AppResult<()> {
    let mut q = track::Entity::update_many()
        .col_expr(track::Column::Position, Expr::col(track::Column::Position).add(delta))
        .filter(track::Column::CourseId.eq(course))
        .filter(track::Column::Position.gte(from));
    if let Some(to) = to {
        q = q.filter(track::Column::Position.lte(to));
    }
    q.exec(db).await?;
    Ok(())
}

async fn track_count(db: &impl ConnectionTrait, course: Uuid) -> AppResult<i32> {
    let n = track::Entity::find().filter(track::Column::CourseId.eq(course)).count(db).await?;
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

// The root `Mutation`: the core operations here and the membership lifecycle's
// (`super::lifecycle`), merged into one type.
#[derive(MergedObject, Default)]
pub struct Mutation(CoreMutation, super::lifecycle::LifecycleMutation);

#[derive(Default)]
pub struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Creates an organization; the viewer becomes its ADMIN.
    async fn create_organization(&self, ctx: &Context<'_>, input: CreateOrganizationInput) -> AppResult<Organization> {
        let viewer = ctx.viewer()?;
        let name = validate::name("input.name", &input.name)?;
        let wanted = input.slug.as_deref().map(|s| validate::slug("input.slug", s)).transpose()?;
        let db = ctx.db()?;
        let txn = db.begin_write().await?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        db.admit_organization(id).await?;
        let base = wanted.clone().unwrap_or_else(|| slugify(&name));
        let mut slug = None;
        for attempt in 0..8 {
            let candidate = if attempt == 0 { base.clone() } else { format!("{base}-{:04x}", rand::random::<u16>()) };
            let ins = Query::insert()
                .into_table(organization::Entity)
                .columns([
                    organization::Column::Id,
                    organization::Column::ExternalId,
                    organization::Column::Name,
                    organization::Column::Slug,
                    organization::Column::StorageBucket,
                    organization::Column::CreatedAt,
                    organization::Column::UpdatedAt,
                ])
                .values_panic([
                    id.into(),
                    Option::<String>::None.into(),
                    name.clone().into(),
                    candidate.clone().into(),
                    format!("org-{candidate}").into(),
                    now.into(),
                    now.into(),
                ])
                .on_conflict(OnConflict::column(organization::Column::Slug).do_nothing().to_owned())
                .to_owned();
            if txn.execute(&ins).await?.rows_affected() == 1 {
                slug = Some(candidate);
                break;
            }
            if wanted.is_some() {
                return Err(AppError::conflict(format!("the slug `{candidate}` is taken"), Some("input.slug")));
            }
        }
        let Some(slug) = slug else {
            return Err(AppError::conflict("no free slug for this name; pass `slug`", Some("input.slug")));
        };
        membership::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(viewer.user.id),
            organization_id: Set(id),
            role: Set(MembershipRole::Admin),
            is_active: Set(true),
            joined_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let org = organization::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::not_found("organization"))?;
        audit::record(
            &txn,
            audit::Event::new(AuditAction::MemberAdded, Some(id), Some(viewer.user.id))
                .target("user", viewer.user.id)
                .details(serde_json::json!({ "role": "ADMIN", "source": "createOrganization" })),
        )
        .await?;
        let changes = [Change::User(viewer.user.id)];
        ContextCache::publish(&txn, &changes).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "organization.created", organization_id = %id, slug = %slug,
            user_id = %viewer.user.id, source = "api", "organization created");
        tracing::info!(target: "audit", event = "membership.created", organization_id = %id,
            user_id = %viewer.user.id, role = "ADMIN", source = "api", "creator is ADMIN");
        ctx.request()?.after_write(&changes, Vec::new()).await?;
        Ok(Organization(Arc::new(org)))
    }

    /// Renames an organization or changes its slug. ADMIN only.
    #[graphql(visible = "visibility::mutation_update_organization")]
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateOrganizationInput,
    ) -> AppResult<Organization> {
        let id = parse_id("id", &id)?;
        let org = lookup::organization(ctx, id, Action::UpdateOrganization).await?;
        let name = not_null("input.name", input.name)?.map(|n| validate::name("input.name", &n)).transpose()?;
        let slug = not_null("input.slug", input.slug)?.map(|s| validate::slug("input.slug", &s)).transpose()?;
        let mut am: organization::ActiveModel = org.as_ref().clone().into();
        if let Some(n) = name {
            am.name = Set(n);
        }
        if let Some(s) = &slug {
            am.slug = Set(s.clone());
        }
        am.updated_at = Set(Utc::now());
        let txn = ctx.db()?.begin_write().await?;
        let updated = match am.update(&txn).await {
            Ok(o) => o,
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(AppError::conflict(
                    format!("the slug `{}` is taken", slug.unwrap_or_default()),
                    Some("input.slug"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let actor = ctx.viewer()?.user.id;
        tracing::info!(target: "audit", event = "organization.updated", organization_id = %id, user_id = %actor);
        let mut changed = serde_json::Map::new();
        if updated.name != org.name {
            changed.insert("name".into(), serde_json::json!({ "from": org.name, "to": updated.name }));
        }
        if updated.slug != org.slug {
            changed.insert("slug".into(), serde_json::json!({ "from": org.slug, "to": updated.slug }));
        }
        audit::record(
            &txn,
            audit::Event::new(AuditAction::OrganizationUpdated, Some(id), Some(actor))
                .target("organization", id)
                .details(Value::Object(changed)),
        )
        .await?;
        let changes = [Change::Organization(id)];
        ContextCache::publish(&txn, &changes).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&changes, Vec::new()).await?;
        Ok(Organization(Arc::new(updated)))
    }

    /// Adds a user (by id or email) to an organization, or re-activates a removed member.
    /// ADMIN only.
    #[graphql(visible = "visibility::mutation_add_member")]
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let org = lookup::target_organization(
            ctx,
            "input.organizationId",
            input.organization_id.as_ref(),
            Action::ManageMembers,
        )
        .await?;
        let db = ctx.db()?;
        // The person to add is by definition not yet a member: looked up in the directory,
        // outside the viewer's tenancy, by exact id or email only.
        let directory = db.directory();
        let target: user::Model = match (&input.user_id, input.email.as_deref().map(str::trim)) {
            (Some(id), None) => {
                let id = parse_id("input.userId", id)?;
                user::Entity::find_by_id(id).one(directory).await?.ok_or(AppError::not_found("user"))?
            }
            (None, Some(email)) if !email.is_empty() => {
                let mut found = user::Entity::find()
                    .filter(Expr::expr(Func::lower(Expr::col(user::Column::Email))).eq(email.to_lowercase()))
                    .limit(2)
                    .all(directory)
                    .await?;
                match found.len() {
                    0 => return Err(AppError::not_found("user")),
                    1 => found.remove(0),
                    _ => {
                        return Err(AppError::bad_input(
                            "input.email",
                            "several users have this email (from different identity providers): pass `userId`",
                        ));
                    }
                }
            }
            _ => return Err(AppError::bad_input("input.userId", "pass exactly one of `userId` and `email`")),
        };
        let txn = db.begin_write().await?;
        lock_and_recheck(ctx, &txn, &viewer, org.id, Action::ManageMembers).await?;
        let now = Utc::now();
        let existing = membership::Entity::find()
            .filter(membership::Column::UserId.eq(target.id))
            .filter(membership::Column::OrganizationId.eq(org.id))
            .one(&txn)
            .await?;
        let reactivated = existing.is_some();
        let m = match existing {
            Some(m) if m.is_active => {
                return Err(AppError::conflict("this user is already a member", Some("input.userId")));
            }
            Some(m) => {
                let mut am: membership::ActiveModel = m.into();
                am.is_active = Set(true);
                am.role = Set(input.role);
                am.updated_at = Set(now);
                am.update(&txn).await?
            }
            None => {
                membership::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    user_id: Set(target.id),
                    organization_id: Set(org.id),
                    role: Set(input.role),
                    is_active: Set(true),
                    joined_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await?
            }
        };
        audit::record(
            &txn,
            audit::Event::new(AuditAction::MemberAdded, Some(org.id), Some(viewer.user.id))
                .target("membership", m.id)
                .details(
                    serde_json::json!({ "userId": target.id, "role": input.role.as_str(), "reactivated": reactivated }),
                ),
        )
        .await?;
        let changes = [Change::User(target.id)];
        ContextCache::publish(&txn, &changes).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "membership.added", organization_id = %org.id, member_id = %target.id,
            role = input.role.as_str(), user_id = %viewer.user.id, "member added");
        ctx.request()?.after_write(&changes, Vec::new()).await?;
        Ok(Membership::from(&m))
    }

    /// Changes a member's role. ADMIN only; the last active ADMIN cannot be demoted.
    #[graphql(visible = "visibility::mutation_update_member_role")]
    async fn update_member_role(&self, ctx: &Context<'_>, membership_id: ID, role: Role) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let id = parse_id("membershipId", &membership_id)?;
        let found = lookup::membership(ctx, id, Action::ManageMembers).await?;
        let txn = ctx.db()?.begin_write().await?;
        lock_and_recheck(ctx, &txn, &viewer, found.organization_id, Action::ManageMembers).await?;
        // Re-read inside the transaction: the row may have changed since the lookup.
        let m = membership::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::not_found("membership"))?;
        if role != Role::Admin {
            keep_an_admin(&txn, &m).await?;
        }
        let previous: Role = m.role;
        let mut am: membership::ActiveModel = m.clone().into();
        am.role = Set(role);
        am.updated_at = Set(Utc::now());
        let updated = am.update(&txn).await?;
        audit::record(
            &txn,
            audit::Event::new(AuditAction::MemberRoleChanged, Some(m.organization_id), Some(viewer.user.id))
                .target("membership", m.id)
                .details(serde_json::json!({ "userId": m.user_id, "from": previous.as_str(), "to": role.as_str() })),
        )
        .await?;
        let events =
            if role < Role::Instructor { unassign_courses(&txn, m.user_id, m.organization_id).await? } else { vec![] };
        let unassigned = events.len();
        let changes = [Change::User(m.user_id)];
        ContextCache::publish(&txn, &changes).await?;
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "membership.role_changed", organization_id = %m.organization_id,
            member_id = %m.user_id, from = previous.as_str(), to = role.as_str(), courses_unassigned = unassigned,
            user_id = %viewer.user.id, "role changed");
        ctx.request()?.after_write(&changes, events).await?;
        Ok(Membership::from(&updated))
    }

    /// Removes a member: the membership is deactivated, nothing is deleted. ADMIN only;
    /// the last active ADMIN cannot be removed.
    #[graphql(visible = "visibility::mutation_remove_member")]
    async fn remove_member(&self, ctx: &Context<'_>, membership_id: ID) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let id = parse_id("membershipId", &membership_id)?;
        let found = lookup::membership(ctx, id, Action::ManageMembers).await?;
        let txn = ctx.db()?.begin_write().await?;
        lock_and_recheck(ctx, &txn, &viewer, found.organization_id, Action::ManageMembers).await?;
        let m = membership::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::not_found("membership"))?;
        keep_an_admin(&txn, &m).await?;
        let mut am: membership::ActiveModel = m.clone().into();
        am.is_active = Set(false);
        am.updated_at = Set(Utc::now());
        let updated = am.update(&txn).await?;
        // Recorded before the rest of the change: if any later step fails, the whole
        // transaction — this event included — rolls back.
        audit::record(
            &txn,
            audit::Event::new(AuditAction::MemberRemoved, Some(m.organization_id), Some(viewer.user.id))
                .target("membership", m.id)
                .details(serde_json::json!({ "userId": m.user_id, "role": m.role.as_str() })),
        )
        .await?;
        let events = unassign_courses(&txn, m.user_id, m.organization_id).await?;
        let unassigned = events.len();
        let changes = [Change::User(m.user_id)];
        ContextCache::publish(&txn, &changes).await?;
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "membership.removed", organization_id = %m.organization_id,
            member_id = %m.user_id, courses_unassigned = unassigned, user_id = %viewer.user.id, "member removed");
        ctx.request()?.after_write(&changes, events).await?;
        Ok(Membership::from(&updated))
    }

    /// Creates a course (a draft unless `isPublished: true`). ADMIN and INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_create_course")]
    async fn create_course(&self, ctx: &Context<'_>, input: CreateCourseInput) -> AppResult<Course> {
        let viewer = ctx.viewer()?;
        let org = lookup::target_organization(
            ctx,
            "input.organizationId",
            input.organization_id.as_ref(),
            Action::CreateCourse,
        )
        .await?;
        let title = validate::name("input.title", &input.title)?;
        let description = validate::description("input.description", input.description.as_deref())?;
        let category = validate::optional("input.category", input.category.as_deref(), 500)?;
        let duration_unit = validate::optional("input.durationUnit", input.duration_unit.as_deref(), 32)?;
        let estimated_duration =
            input.estimated_duration.map(|d| validate::non_negative("input.estimatedDuration", d)).transpose()?;
        let price = match &input.price {
            Some(p) => validate::price("input.price", p)?,
            None => rust_decimal::Decimal::new(0, 2),
        };
        let db = ctx.db()?;
        let instructor = match &input.instructor_id {
            Some(id) => {
                let id = parse_id("input.instructorId", id)?;
                if id != viewer.user.id {
                    let d = policy::check_assign_instructor(viewer.as_ref(), Action::CreateCourse, org.id);
                    if !d.allowed {
                        return Err(ctx.refuse(d));
                    }
                }
                Some(id)
            }
            // The creator teaches it — unless they cannot (a platform admin from outside).
            None => can_teach(db, viewer.user.id, org.id).await?.then_some(viewer.user.id),
        };
        if let Some(i) = instructor
            && !can_teach(db, i, org.id).await?
        {
            return Err(AppError::bad_input(
                "input.instructorId",
                "the instructor must be an active ADMIN or INSTRUCTOR of the course's organization",
            ));
        }
        let now = Utc::now();
        let c = course::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(org.id),
            instructor_id: Set(instructor),
            title: Set(title),
            description: Set(description),
            category: Set(category),
            difficulty_level: Set(input.difficulty_level),
            estimated_duration: Set(estimated_duration),
            duration_unit: Set(duration_unit),
            price: Set(price),
            is_published: Set(input.is_published.unwrap_or(false)),
            metadata: Set(input.metadata.map(|j| j.0)),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = db.begin_write().await?;
        let c = c.insert(&txn).await?;
        let events = vec![LiveEvent::course_created(&c)];
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        tracing::info!(course_id = %c.id, organization_id = %org.id, user_id = %viewer.user.id, "course created");
        ctx.request()?.after_write(&[], events).await?;
        Ok(Course(Arc::new(c)))
    }

    /// Updates (and publishes or unpublishes) a course. ADMIN, or its own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_update_course")]
    async fn update_course(&self, ctx: &Context<'_>, id: ID, input: UpdateCourseInput) -> AppResult<Course> {
        let viewer = ctx.viewer()?;
        let id = parse_id("id", &id)?;
        let current = lookup::course(ctx, id, Action::UpdateCourse).await?;
        let mut am: course::ActiveModel = current.as_ref().clone().into();
        if let Some(t) = not_null("input.title", input.title)? {
            am.title = Set(validate::name("input.title", &t)?);
        }
        if !input.description.is_undefined() {
            am.description =
                Set(validate::description("input.description", input.description.as_opt_deref().flatten())?);
        }
        if !input.category.is_undefined() {
            am.category = Set(validate::optional("input.category", input.category.as_opt_deref().flatten(), 500)?);
        }
        if let Some(d) = not_null("input.difficultyLevel", input.difficulty_level)? {
            am.difficulty_level = Set(d);
        }
        if !input.estimated_duration.is_undefined() {
            am.estimated_duration = Set(input
                .estimated_duration
                .as_opt_ref()
                .flatten()
                .map(|d| validate::non_negative("input.estimatedDuration", *d))
                .transpose()?);
        }
        if !input.duration_unit.is_undefined() {
            am.duration_unit =
                Set(validate::optional("input.durationUnit", input.duration_unit.as_opt_deref().flatten(), 32)?);
        }
        if let Some(p) = not_null("input.price", input.price)? {
            am.price = Set(validate::price("input.price", &p)?);
        }
        if let Some(p) = not_null("input.isPublished", input.is_published)? {
            am.is_published = Set(p);
        }
        let db = ctx.db()?;
        if !input.instructor_id.is_undefined() {
            let next =
                input.instructor_id.as_opt_ref().flatten().map(|i| parse_id("input.instructorId", i)).transpose()?;
            if next != current.instructor_id {
                let d = policy::check_assign_instructor(viewer.as_ref(), Action::UpdateCourse, current.organization_id);
                if !d.allowed {
                    return Err(ctx.refuse(d));
                }
                if let Some(i) = next
                    && !can_teach(db, i, current.organization_id).await?
                {
                    return Err(AppError::bad_input(
                        "input.instructorId",
                        "the instructor must be an active ADMIN or INSTRUCTOR of the course's organization",
                    ));
                }
                am.instructor_id = Set(next);
            }
        }
        if !input.metadata.is_undefined() {
            am.metadata = Set(input.metadata.as_opt_ref().flatten().map(|j| j.0.clone()));
        }
        am.updated_at = Set(Utc::now());
        let txn = db.begin_write().await?;
        let updated = am.update(&txn).await?;
        let events = vec![LiveEvent::course_updated(&current, &updated)];
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&[], events).await?;
        Ok(Course(Arc::new(updated)))
    }

    /// Deletes a course and its tracks. ADMIN only.
    #[graphql(visible = "visibility::mutation_delete_course")]
    async fn delete_course(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        let id = parse_id("id", &id)?;
        let c = lookup::course(ctx, id, Action::DeleteCourse).await?;
        let txn = ctx.db()?.begin_write().await?;
        course::Entity::delete_by_id(c.id).exec(&txn).await?;
        audit::record(
            &txn,
            audit::Event::new(AuditAction::CourseDeleted, Some(c.organization_id), Some(ctx.viewer()?.user.id))
                .target("course", c.id)
                .details(serde_json::json!({ "title": c.title, "wasPublished": c.is_published })),
        )
        .await?;
        let events = vec![LiveEvent::course_deleted(&c)];
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "course.deleted", course_id = %c.id, organization_id = %c.organization_id,
            user_id = %ctx.viewer()?.user.id, "course deleted");
        ctx.request()?.after_write(&[], events).await?;
        Ok(super::types::id(c.id))
    }

    /// Adds a track to a course. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_create_track")]
    async fn create_track(&self, ctx: &Context<'_>, input: CreateTrackInput) -> AppResult<Track> {
        let course_id = parse_id("input.courseId", &input.course_id)?;
        let c = lookup::course(ctx, course_id, Action::ManageTracks).await?;
        let name = validate::name("input.name", &input.name)?;
        let description = validate::description("input.description", input.description.as_deref())?;
        let position = input.position.map(|p| validate::position("input.position", p)).transpose()?;
        let txn = ctx.db()?.begin_write().await?;
        let before = positions(&txn, c.id).await?;
        let count = i32::try_from(before.len()).unwrap_or(i32::MAX);
        let position = match position {
            Some(p) if p < count => {
                shift_tracks(&txn, c.id, p, None, 1).await?;
                p
            }
            _ => count,
        };
        let now = Utc::now();
        let t = track::ActiveModel {
            id: Set(Uuid::now_v7()),
            // Always the course's organization, never taken from input.
            organization_id: Set(c.organization_id),
            course_id: Set(c.id),
            name: Set(name),
            description: Set(description),
            position: Set(position),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let mut events = vec![LiveEvent::track(Op::Created, &t)];
        events.extend(moved_tracks(&txn, c.id, &before, t.id).await?);
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&[], events).await?;
        Ok(Track::new(Arc::new(t)))
    }

    /// Renames, describes or moves a track. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_update_track")]
    async fn update_track(&self, ctx: &Context<'_>, id: ID, input: UpdateTrackInput) -> AppResult<Track> {
        let id = parse_id("id", &id)?;
        let (t, c) = lookup::track(ctx, id, Action::ManageTracks).await?;
        let name = not_null("input.name", input.name)?.map(|n| validate::name("input.name", &n)).transpose()?;
        let description = (!input.description.is_undefined())
            .then(|| validate::description("input.description", input.description.as_opt_deref().flatten()))
            .transpose()?;
        let position =
            not_null("input.position", input.position)?.map(|p| validate::position("input.position", p)).transpose()?;
        let txn = ctx.db()?.begin_write().await?;
        let t = track::Entity::find_by_id(t.id).one(&txn).await?.ok_or(AppError::not_found("track"))?;
        let before = if position.is_some() { positions(&txn, c.id).await? } else { HashMap::new() };
        let mut am: track::ActiveModel = t.clone().into();
        if let Some(n) = name {
            am.name = Set(n);
        }
        if let Some(d) = description {
            am.description = Set(d);
        }
        if let Some(p) = position {
            let last = track_count(&txn, c.id).await? - 1;
            let p = std::cmp::min(p, last);
            if p < t.position {
                shift_tracks(&txn, c.id, p, Some(t.position - 1), 1).await?;
            } else if p > t.position {
                shift_tracks(&txn, c.id, t.position + 1, Some(p), -1).await?;
            }
            am.position = Set(p);
        }
        am.updated_at = Set(Utc::now());
        let updated = am.update(&txn).await?;
        let mut events = vec![LiveEvent::track(Op::Updated, &updated)];
        if !before.is_empty() {
            events.extend(moved_tracks(&txn, c.id, &before, updated.id).await?);
        }
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&[], events).await?;
        Ok(Track::new(Arc::new(updated)))
    }

    /// Deletes a track; the later ones move up. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_delete_track")]
    async fn delete_track(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        let id = parse_id("id", &id)?;
        let (t, c) = lookup::track(ctx, id, Action::ManageTracks).await?;
        let txn = ctx.db()?.begin_write().await?;
        let before = positions(&txn, c.id).await?;
        let deleted = track::Entity::delete_by_id(t.id).exec(&txn).await?.rows_affected;
        let mut events = Vec::new();
        if deleted == 1 {
            shift_tracks(&txn, c.id, t.position + 1, None, -1).await?;
            events.push(LiveEvent::track(Op::Deleted, &t));
            events.extend(moved_tracks(&txn, c.id, &before, t.id).await?);
        }
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&[], events).await?;
        Ok(super::types::id(t.id))
    }

    /// Puts a course's tracks in the given order (positions 0, 1, …), atomically.
    /// `trackIds` must list exactly the course's tracks. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_reorder_tracks")]
    async fn reorder_tracks(&self, ctx: &Context<'_>, course_id: ID, track_ids: Vec<ID>) -> AppResult<Vec<Track>> {
        let course_id = parse_id("courseId", &course_id)?;
        let c = lookup::course(ctx, course_id, Action::ManageTracks).await?;
        let ids = track_ids.iter().map(|i| parse_id("trackIds", i)).collect::<AppResult<Vec<_>>>()?;
        let wanted: HashSet<Uuid> = ids.iter().copied().collect();
        if wanted.len() != ids.len() {
            return Err(AppError::bad_input("trackIds", "`trackIds` lists a track more than once"));
        }
        let txn = ctx.db()?.begin_write().await?;
        let current: Vec<(Uuid, i32)> = track::Entity::find()
            .select_only()
            .column(track::Column::Id)
            .column(track::Column::Position)
            .filter(track::Column::CourseId.eq(c.id))
            .lock_exclusive()
            .into_tuple()
            .all(&txn)
            .await?;
        if current.len() != ids.len() || current.iter().any(|(id, _)| !wanted.contains(id)) {
            return Err(AppError::bad_input("trackIds", "`trackIds` must list exactly the course's tracks, each once"));
        }
        if !ids.is_empty() {
            let mut case = CaseStatement::new();
            for (i, id) in ids.iter().enumerate() {
                case = case.case(Expr::col(track::Column::Id).eq(*id), Expr::val(i as i32));
            }
            let q = Query::update()
                .table(track::Entity)
                .value(track::Column::Position, case.finally(Expr::col(track::Column::Position)))
                .value(track::Column::UpdatedAt, Utc::now())
                .and_where(Expr::col(track::Column::CourseId).eq(c.id))
                .to_owned();
            txn.execute(&q).await?;
        }
        let tracks = track::Entity::find()
            .filter(track::Column::CourseId.eq(c.id))
            .order_by_asc(track::Column::Position)
            .order_by_asc(track::Column::Id)
            .all(&txn)
            .await?;
        // One CHANGED per track whose position changed.
        let before: HashMap<Uuid, i32> = current.into_iter().collect();
        let events: Vec<LiveEvent> = tracks
            .iter()
            .filter(|t| before.get(&t.id) != Some(&t.position))
            .map(|t| LiveEvent::track(Op::Updated, t))
            .collect();
        live::notify(&txn, &events).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&[], events).await?;
        Ok(tracks.into_iter().map(|t| Track::new(Arc::new(t))).collect())
    }
}
