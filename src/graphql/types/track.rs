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
pub struct Track(pub Arc<entity::track::Model>);

#[Object]
impl Track {
    async fn id(&self) -> ID {
        super::id(self.0.id)
    }

    async fn course(&self, ctx: &Context<'_>) -> AppResult<Course> {
        let c = ctx.loaders()?.courses.load_one(self.0.course_id).await?;
        c.map(Course).ok_or(AppError::not_found("course"))
    }

    /// Always the course's organization.
    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        let o = ctx.loaders()?.organizations.load_one(self.0.organization_id).await?;
        o.map(Organization).ok_or(AppError::not_found("organization"))
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn position(&self) -> i32 {
        self.0.position
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
