//! `createTrack`, `updateTrack`, `deleteTrack` and `reorderTracks`: a course's tracks stay
//! at dense positions 0, 1, …; every track whose position a write moves is a CHANGED event.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::SubsecRound as _;
use chrono::Utc;
use entity::track;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryTrait,
    sea_query::{CaseStatement, Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::not_null;
use crate::{
    authz::Action,
    domain::write::UnitOfWork,
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup::{self, CourseOf},
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

/// Now, as the database keeps it (microseconds): a write's rows are built here and
/// answered without reading them back.
fn now() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Moves the tracks of `course` at positions `from..=to` by `delta`, and says which moved
/// (each as it is after the move) — left for the commit, with the write they make room for.
fn shift(
    work: &mut UnitOfWork,
    tracks: &[track::Model],
    course: Uuid,
    (from, to): (i32, i32),
    delta: i32,
) -> Vec<track::Model> {
    let moved: Vec<track::Model> = tracks
        .iter()
        .filter(|t| (from..=to).contains(&t.position))
        .map(|t| track::Model { position: t.position + delta, ..t.clone() })
        .collect();
    if !moved.is_empty() {
        work.at_commit(
            Query::update()
                .table(track::Entity)
                .value(track::Column::Position, Expr::col(track::Column::Position).add(delta))
                .and_where(track::Column::CourseId.eq(course))
                .and_where(track::Column::Position.between(from, to)),
        );
    }
    moved
}

fn updated(tracks: &[track::Model]) -> impl Iterator<Item = LiveEvent> + '_ {
    tracks.iter().map(|t| LiveEvent::track(Op::Updated, t))
}

#[derive(Default)]
pub struct TrackMutation;

#[Object]
impl TrackMutation {
    /// Adds a track to a course. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_create_track")]
    async fn create_track(&self, ctx: &Context<'_>, input: CreateTrackInput) -> AppResult<Track> {
        let course_id = parse_id("input.courseId", &input.course_id)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let (c, tracks) =
            lookup::course_for_write(ctx, &work, CourseOf::Course(course_id), Action::ManageTracks).await?;
        let name = validate::name("input.name", &input.name)?;
        let description = validate::description("input.description", input.description.as_deref())?;
        let position = input.position.map(|p| validate::position("input.position", p)).transpose()?;
        let count = i32::try_from(tracks.len()).unwrap_or(i32::MAX);
        let position = position.filter(|p| *p < count).unwrap_or(count);
        let moved = shift(&mut work, &tracks, c.id, (position, i32::MAX), 1);
        let now = now();
        let t = track::Model {
            id: Uuid::now_v7(),
            // Always the course's organization, never taken from input.
            organization_id: c.organization_id,
            course_id: c.id,
            name,
            description,
            position,
            created_at: now,
            updated_at: now,
        };
        work.at_commit(track::Entity::insert(track::ActiveModel::from(t.clone())).as_query());
        work.live([LiveEvent::track(Op::Created, &t)]);
        work.live(updated(&moved));
        request.commit(work).await?;
        Ok(Track::new(Arc::new(t)))
    }

    /// Renames, describes or moves a track. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_update_track")]
    async fn update_track(&self, ctx: &Context<'_>, id: ID, input: UpdateTrackInput) -> AppResult<Track> {
        let id = parse_id("id", &id)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let (c, tracks) = lookup::course_for_write(ctx, &work, CourseOf::Track(id), Action::ManageTracks).await?;
        let name = not_null("input.name", input.name)?.map(|n| validate::name("input.name", &n)).transpose()?;
        let description = (!input.description.is_undefined())
            .then(|| validate::description("input.description", input.description.as_opt_deref().flatten()))
            .transpose()?;
        let position =
            not_null("input.position", input.position)?.map(|p| validate::position("input.position", p)).transpose()?;
        let t = tracks.iter().find(|t| t.id == id).ok_or(AppError::not_found("track"))?;
        let mut next = track::Model { updated_at: now(), ..t.clone() };
        let mut set = Query::update();
        set.table(track::Entity).value(track::Column::UpdatedAt, next.updated_at);
        if let Some(n) = name {
            set.value(track::Column::Name, n.clone());
            next.name = n;
        }
        if let Some(d) = description {
            set.value(track::Column::Description, d.clone());
            next.description = d;
        }
        let mut moved = Vec::new();
        if let Some(p) = position {
            let last = i32::try_from(tracks.len()).unwrap_or(i32::MAX) - 1;
            let p = std::cmp::min(p, last);
            if p < t.position {
                moved = shift(&mut work, &tracks, c.id, (p, t.position - 1), 1);
            } else if p > t.position {
                moved = shift(&mut work, &tracks, c.id, (t.position + 1, p), -1);
            }
            set.value(track::Column::Position, p);
            next.position = p;
        }
        work.at_commit(set.and_where(track::Column::Id.eq(t.id)));
        work.live([LiveEvent::track(Op::Updated, &next)]);
        work.live(updated(&moved));
        request.commit(work).await?;
        Ok(Track::new(Arc::new(next)))
    }

    /// Deletes a track; the later ones move up. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_delete_track")]
    async fn delete_track(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        let id = parse_id("id", &id)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let (c, tracks) = lookup::course_for_write(ctx, &work, CourseOf::Track(id), Action::ManageTracks).await?;
        let t = tracks.iter().find(|t| t.id == id).ok_or(AppError::not_found("track"))?.clone();
        work.at_commit(Query::delete().from_table(track::Entity).and_where(track::Column::Id.eq(t.id)));
        let moved = shift(&mut work, &tracks, c.id, (t.position + 1, i32::MAX), -1);
        work.live([LiveEvent::track(Op::Deleted, &t)]);
        work.live(updated(&moved));
        request.commit(work).await?;
        Ok(crate::graphql::types::id(t.id))
    }

    /// Puts a course's tracks in the given order (positions 0, 1, …), atomically.
    /// `trackIds` must list exactly the course's tracks. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::mutation_reorder_tracks")]
    async fn reorder_tracks(&self, ctx: &Context<'_>, course_id: ID, track_ids: Vec<ID>) -> AppResult<Vec<Track>> {
        let course_id = parse_id("courseId", &course_id)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let (c, tracks) =
            lookup::course_for_write(ctx, &work, CourseOf::Course(course_id), Action::ManageTracks).await?;
        let ids = track_ids.iter().map(|i| parse_id("trackIds", i)).collect::<AppResult<Vec<_>>>()?;
        let wanted: HashSet<Uuid> = ids.iter().copied().collect();
        if wanted.len() != ids.len() {
            return Err(AppError::bad_input("trackIds", "`trackIds` lists a track more than once"));
        }
        if tracks.len() != ids.len() || tracks.iter().any(|t| !wanted.contains(&t.id)) {
            return Err(AppError::bad_input("trackIds", "`trackIds` must list exactly the course's tracks, each once"));
        }
        let now = now();
        let before: HashMap<Uuid, &track::Model> = tracks.iter().map(|t| (t.id, t)).collect();
        let after: Vec<track::Model> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| track::Model { position: i as i32, updated_at: now, ..before[id].clone() })
            .collect();
        if !ids.is_empty() {
            let mut case = CaseStatement::new();
            for (i, id) in ids.iter().enumerate() {
                case = case.case(Expr::col(track::Column::Id).eq(*id), Expr::val(i as i32));
            }
            work.at_commit(
                Query::update()
                    .table(track::Entity)
                    .value(track::Column::Position, case.finally(Expr::col(track::Column::Position)))
                    .value(track::Column::UpdatedAt, now)
                    .and_where(Expr::col(track::Column::CourseId).eq(c.id)),
            );
        }
        // One CHANGED per track whose position changed.
        work.live(
            after.iter().filter(|t| before[&t.id].position != t.position).map(|t| LiveEvent::track(Op::Updated, t)),
        );
        request.commit(work).await?;
        Ok(after.into_iter().map(|t| Track::new(Arc::new(t))).collect())
    }
}
