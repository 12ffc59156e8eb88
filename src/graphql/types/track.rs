//! `Track`: a step of a course, readable exactly when its course is.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{course::Course, organization::Organization};
use crate::{
    error::{AppError, AppResult},
    graphql::context::ContextExt,
};

#[derive(Clone, Debug)]
pub struct Track {
    row: Arc<entity::track::Model>,
    /// Read with only the columns a list of tracks usually asks for (see
    /// [`Track::partial`]): the other fields come from the track loader when asked.
    partial: bool,
}

/// The fields of a partial track's row that were not read.
pub const PARTIAL_FIELDS: [&str; 3] = ["description", "createdAt", "updatedAt"];

impl Track {
    pub fn new(row: Arc<entity::track::Model>) -> Self {
        Self { row, partial: false }
    }

    /// A track whose row holds only id, organization, course, name and position (the
    /// rest are placeholders, never shown): the columns a page of courses reads when the
    /// query asks nothing else of its tracks, so the page moves and decodes less.
    pub fn partial(row: Arc<entity::track::Model>) -> Self {
        Self { row, partial: true }
    }

    pub fn row(&self) -> &Arc<entity::track::Model> {
        &self.row
    }

    /// The whole row: this one, or for a partial track the loader's (one batched
    /// statement for every partial track asked for more).
    async fn whole(&self, ctx: &Context<'_>) -> AppResult<Arc<entity::track::Model>> {
        if !self.partial {
            return Ok(self.row.clone());
        }
        ctx.loaders()?.tracks.load_one(self.row.id).await?.ok_or(AppError::not_found("track"))
    }
}

#[Object]
impl Track {
    async fn id(&self) -> ID {
        super::id(self.row.id)
    }

    async fn course(&self, ctx: &Context<'_>) -> AppResult<Course> {
        let c = ctx.loaders()?.courses.load_one(self.row.course_id).await?;
        c.map(Course).ok_or(AppError::not_found("course"))
    }

    /// Always the course's organization.
    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        let o = ctx.loaders()?.organizations.load_one(self.row.organization_id).await?;
        o.map(Organization).ok_or(AppError::not_found("organization"))
    }

    async fn name(&self) -> &str {
        &self.row.name
    }

    async fn description(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        Ok(self.whole(ctx).await?.description.clone())
    }

    async fn position(&self) -> i32 {
        self.row.position
    }

    async fn created_at(&self, ctx: &Context<'_>) -> AppResult<DateTime<Utc>> {
        Ok(self.whole(ctx).await?.created_at)
    }

    async fn updated_at(&self, ctx: &Context<'_>) -> AppResult<DateTime<Utc>> {
        Ok(self.whole(ctx).await?.updated_at)
    }
}
