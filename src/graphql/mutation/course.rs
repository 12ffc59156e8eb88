//! `createCourse`, `updateCourse` (publishing included) and `deleteCourse`.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object};
use chrono::{SubsecRound as _, Utc};
use entity::{AuditAction, course};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryTrait, Set, TryIntoModel};
use serde_json::Value;
use uuid::Uuid;

use super::not_null;
use crate::{
    authz::{Action, policy},
    domain::{audit::Event, membership::can_teach},
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup,
        types::{
            course::Course,
            parse_id,
            scalars::{Decimal, Difficulty},
        },
        validate, visibility,
    },
    live::LiveEvent,
};

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

/// Whether `user` may teach in `org`. The viewer's own stored grants come with their
/// context, as every other decision about them does (no statement); anyone else's are read.
async fn teaches(ctx: &Context<'_>, user: Uuid, org: Uuid) -> AppResult<bool> {
    let viewer = ctx.viewer()?;
    if user == viewer.user.id {
        return Ok(viewer.membership(org).is_some_and(|m| m.is_active && policy::may_teach(m.grants)));
    }
    Ok(can_teach(ctx.db()?, &viewer.policy, user, org).await?)
}

/// BAD_USER_INPUT unless `instructor` may teach in `org`.
async fn must_teach(ctx: &Context<'_>, instructor: Uuid, org: Uuid) -> AppResult<()> {
    if teaches(ctx, instructor, org).await? {
        return Ok(());
    }
    Err(AppError::bad_input(
        "input.instructorId",
        "the instructor must be an active ADMIN or INSTRUCTOR of the course's organization \
         (a member whose roles hold UPDATE_COURSE)",
    ))
}

/// FORBIDDEN unless the viewer may choose someone else as a course's instructor (ADMIN).
fn may_assign(ctx: &Context<'_>, action: Action, org: Uuid) -> AppResult<()> {
    let d = policy::check_assign_instructor(ctx.viewer()?.as_ref(), action, org);
    if d.allowed { Ok(()) } else { Err(ctx.refuse(d)) }
}

/// The validated fields of a new course of `org`.
async fn new_course(ctx: &Context<'_>, input: CreateCourseInput, org: Uuid) -> AppResult<course::ActiveModel> {
    let viewer = ctx.viewer()?;
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
    let instructor = match &input.instructor_id {
        Some(id) => {
            let id = parse_id("input.instructorId", id)?;
            if id != viewer.user.id {
                may_assign(ctx, Action::CreateCourse, org)?;
            }
            must_teach(ctx, id, org).await?;
            Some(id)
        }
        // The creator teaches it — unless they cannot (a platform admin from outside).
        None => teaches(ctx, viewer.user.id, org).await?.then_some(viewer.user.id),
    };
    let now = Utc::now();
    Ok(course::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
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
    })
}

/// `current` with `input` applied, validated.
async fn changed_course(
    ctx: &Context<'_>,
    current: &course::Model,
    input: UpdateCourseInput,
) -> AppResult<course::ActiveModel> {
    let mut am: course::ActiveModel = current.clone().into();
    if let Some(t) = not_null("input.title", input.title)? {
        am.title = Set(validate::name("input.title", &t)?);
    }
    if !input.description.is_undefined() {
        am.description = Set(validate::description("input.description", input.description.as_opt_deref().flatten())?);
    }
    if !input.category.is_undefined() {
        am.category = Set(validate::optional("input.category", input.category.as_opt_deref().flatten(), 500)?);
    }
    if let Some(d) = not_null("input.difficultyLevel", input.difficulty_level)? {
        am.difficulty_level = Set(d);
    }
    if !input.estimated_duration.is_undefined() {
        let d = input.estimated_duration.as_opt_ref().flatten().copied();
        am.estimated_duration = Set(d.map(|d| validate::non_negative("input.estimatedDuration", d)).transpose()?);
    }
    if !input.duration_unit.is_undefined() {
        let unit = input.duration_unit.as_opt_deref().flatten();
        am.duration_unit = Set(validate::optional("input.durationUnit", unit, 32)?);
    }
    if let Some(p) = not_null("input.price", input.price)? {
        am.price = Set(validate::price("input.price", &p)?);
    }
    if let Some(p) = not_null("input.isPublished", input.is_published)? {
        am.is_published = Set(p);
    }
    if !input.instructor_id.is_undefined() {
        let next = input.instructor_id.as_opt_ref().flatten().map(|i| parse_id("input.instructorId", i)).transpose()?;
        if next != current.instructor_id {
            may_assign(ctx, Action::UpdateCourse, current.organization_id)?;
            if let Some(i) = next {
                must_teach(ctx, i, current.organization_id).await?;
            }
            am.instructor_id = Set(next);
        }
    }
    if !input.metadata.is_undefined() {
        am.metadata = Set(input.metadata.as_opt_ref().flatten().map(|j| j.0.clone()));
    }
    am.updated_at = Set(Utc::now().trunc_subsecs(6));
    Ok(am)
}

#[derive(Default)]
pub struct CourseMutation;

#[Object]
impl CourseMutation {
    /// Creates a course (a draft unless `isPublished: true`). ADMIN and INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_create_course")]
    async fn create_course(&self, ctx: &Context<'_>, input: CreateCourseInput) -> AppResult<Course> {
        let field = "input.organizationId";
        let org = lookup::target_organization(ctx, field, input.organization_id.as_ref(), Action::CreateCourse).await?;
        let row = new_course(ctx, input, org.id).await?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let c = row.insert(&work).await?;
        work.live([LiveEvent::course_created(&c)]);
        request.commit(work).await?;
        Ok(Course(Arc::new(c)))
    }

    /// Updates (and publishes or unpublishes) a course. ADMIN, or its own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_update_course")]
    async fn update_course(&self, ctx: &Context<'_>, id: ID, input: UpdateCourseInput) -> AppResult<Course> {
        let id = parse_id("id", &id)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let current = lookup::course_locked(ctx, &work, id, Action::UpdateCourse).await?;
        let row = changed_course(ctx, &current, input).await?;
        // The row as the database will hold it (the course is locked: nothing else changes
        // it before this commits), so the write need not read it back.
        let mut updated = row.clone().try_into_model()?;
        updated.price.rescale(2);
        work.at_commit(course::Entity::update_many().set(row).filter(course::Column::Id.eq(id)).as_query());
        work.live([LiveEvent::course_updated(&current, &updated)]);
        request.commit(work).await?;
        Ok(Course(Arc::new(updated)))
    }

    /// Deletes a course and its tracks. ADMIN only.
    #[graphql(visible = "visibility::mutation_delete_course")]
    async fn delete_course(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        let id = parse_id("id", &id)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let c = lookup::course_locked(ctx, &work, id, Action::DeleteCourse).await?;
        work.at_commit(course::Entity::delete_by_id(c.id).as_query());
        work.audit(
            Event::new(AuditAction::CourseDeleted, Some(c.organization_id), Some(ctx.viewer()?.user.id))
                .target("course", c.id)
                .details(serde_json::json!({ "title": c.title, "wasPublished": c.is_published })),
        );
        work.live([LiveEvent::course_deleted(&c)]);
        request.commit(work).await?;
        Ok(crate::graphql::types::id(c.id))
    }
}
