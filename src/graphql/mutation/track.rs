//! `createTrack`, `updateTrack`, `deleteTrack` and `reorderTracks`: a course's tracks stay
//! at dense positions 0, 1, …; every track whose position a write moves is a CHANGED event.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::Utc;
use entity::track;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
    sea_query::{CaseStatement, Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::not_null;
use crate::{
    authz::Action,
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup,
        types::{parse_id, track::Track},
        validate, visibility,
    },
    live::{LiveEvent, Op},
};

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

/// Moves the tracks of `course` at positions `from..=to` (to the end without `to`) by `delta`.
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

#[derive(Default)]
pub struct TrackMutation;

#[Object]
impl TrackMutation {
    /// Adds a track to a course. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_create_track")]
    async fn create_track(&self, ctx: &Context<'_>, input: CreateTrackInput) -> AppResult<Track> {
        let course_id = parse_id("input.courseId", &input.course_id)?;
        let c = lookup::course(ctx, course_id, Action::ManageTracks).await?;
        let name = validate::name("input.name", &input.name)?;
        let description = validate::description("input.description", input.description.as_deref())?;
        let position = input.position.map(|p| validate::position("input.position", p)).transpose()?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let before = positions(&work, c.id).await?;
        let count = i32::try_from(before.len()).unwrap_or(i32::MAX);
        let position = match position {
            Some(p) if p < count => {
                shift_tracks(&work, c.id, p, None, 1).await?;
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
        .insert(&work)
        .await?;
        work.live([LiveEvent::track(Op::Created, &t)]);
        work.live(moved_tracks(&work, c.id, &before, t.id).await?);
        request.commit(work).await?;
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
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let t = track::Entity::find_by_id(t.id).one(&work).await?.ok_or(AppError::not_found("track"))?;
        let before = if position.is_some() { positions(&work, c.id).await? } else { HashMap::new() };
        let mut am: track::ActiveModel = t.clone().into();
        if let Some(n) = name {
            am.name = Set(n);
        }
        if let Some(d) = description {
            am.description = Set(d);
        }
        if let Some(p) = position {
            let p = std::cmp::min(p, track_count(&work, c.id).await? - 1);
            if p < t.position {
                shift_tracks(&work, c.id, p, Some(t.position - 1), 1).await?;
            } else if p > t.position {
                shift_tracks(&work, c.id, t.position + 1, Some(p), -1).await?;
            }
            am.position = Set(p);
        }
        am.updated_at = Set(Utc::now());
        let updated = am.update(&work).await?;
        work.live([LiveEvent::track(Op::Updated, &updated)]);
        if !before.is_empty() {
            work.live(moved_tracks(&work, c.id, &before, updated.id).await?);
        }
        request.commit(work).await?;
        Ok(Track::new(Arc::new(updated)))
    }

    /// Deletes a track; the later ones move up. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_delete_track")]
    async fn delete_track(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        let id = parse_id("id", &id)?;
        let (t, c) = lookup::track(ctx, id, Action::ManageTracks).await?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let before = positions(&work, c.id).await?;
        let deleted = track::Entity::delete_by_id(t.id).exec(&work).await?.rows_affected;
        if deleted == 1 {
            shift_tracks(&work, c.id, t.position + 1, None, -1).await?;
            work.live([LiveEvent::track(Op::Deleted, &t)]);
            work.live(moved_tracks(&work, c.id, &before, t.id).await?);
        }
        request.commit(work).await?;
        Ok(crate::graphql::types::id(t.id))
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
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let current: Vec<(Uuid, i32)> = track::Entity::find()
            .select_only()
            .column(track::Column::Id)
            .column(track::Column::Position)
            .filter(track::Column::CourseId.eq(c.id))
            .lock_exclusive()
            .into_tuple()
            .all(&work)
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
            work.execute(&q).await?;
        }
        let tracks = track::Entity::find()
            .filter(track::Column::CourseId.eq(c.id))
            .order_by_asc(track::Column::Position)
            .order_by_asc(track::Column::Id)
            .all(&work)
            .await?;
        // One CHANGED per track whose position changed.
        let before: HashMap<Uuid, i32> = current.into_iter().collect();
        work.live(
            tracks.iter().filter(|t| before.get(&t.id) != Some(&t.position)).map(|t| LiveEvent::track(Op::Updated, t)),
        );
        request.commit(work).await?;
        Ok(tracks.into_iter().map(|t| Track::new(Arc::new(t))).collect())
    }
}
