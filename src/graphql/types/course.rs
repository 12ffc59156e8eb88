//! `Course` and `CoursePermissions`.

use std::sync::Arc;

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{organization::Organization, scalars, track::Track, user::User};
use crate::{
    authz::{Action, Resource, policy},
    error::{AppError, AppResult},
    graphql::{context::ContextExt, visibility},
};

#[derive(Clone, Debug)]
pub struct Course(pub Arc<entity::course::Model>);

impl Course {
    pub fn resource(&self) -> Resource {
        resource(&self.0)
    }
}

/// The policy's view of a course row.
pub fn resource(c: &entity::course::Model) -> Resource {
    Resource::Course {
        organization_id: c.organization_id,
        instructor_id: c.instructor_id,
        is_published: c.is_published,
    }
}

/// What the viewer may do with a course (answered by the same policy as the guards).
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct CoursePermissions {
    pub update: bool,
    pub delete: bool,
    pub manage_tracks: bool,
    pub read_metadata: bool,
}

#[Object]
impl Course {
    async fn id(&self) -> ID {
        super::id(self.0.id)
    }

    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        let o = ctx.loaders()?.organizations.load_one(self.0.organization_id).await?;
        o.map(Organization).ok_or(AppError::not_found("organization"))
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }

    async fn difficulty_level(&self) -> scalars::Difficulty {
        self.0.difficulty_level
    }

    async fn estimated_duration(&self) -> Option<f64> {
        self.0.estimated_duration
    }

    async fn duration_unit(&self) -> Option<&str> {
        self.0.duration_unit.as_deref()
    }

    async fn price(&self) -> scalars::Decimal {
        scalars::Decimal::money(self.0.price)
    }

    async fn is_published(&self) -> bool {
        self.0.is_published
    }

    /// The teaching user: an ADMIN or INSTRUCTOR of the course's organization, or null.
    async fn instructor(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(id) = self.0.instructor_id else { return Ok(None) };
        Ok(ctx.loaders()?.users.load_one(id).await?.map(|u| User::from(u.as_ref())))
    }

    /// The course's tracks, by position.
    async fn tracks(&self, ctx: &Context<'_>) -> AppResult<Vec<Track>> {
        let tracks = ctx.loaders()?.tracks_by_course.load_one(self.0.id).await?;
        Ok(tracks.map(|v| v.as_ref().clone()).unwrap_or_default())
    }

    /// Internal data. ADMIN, or the course's own INSTRUCTOR.
    #[graphql(visible = "visibility::course_metadata")]
    async fn metadata(&self, ctx: &Context<'_>) -> Option<Json<serde_json::Value>> {
        let r = ctx.viewer().and_then(|v| {
            ctx.require_as(&v, Action::ReadCourseMetadata, &self.resource())?;
            Ok(self.0.metadata.clone().map(Json))
        });
        ctx.or_null(r)
    }

    async fn viewer_can(&self, ctx: &Context<'_>) -> AppResult<CoursePermissions> {
        let v = ctx.viewer()?;
        let r = self.resource();
        Ok(CoursePermissions {
            update: policy::allows(v.as_ref(), Action::UpdateCourse, &r),
            delete: policy::allows(v.as_ref(), Action::DeleteCourse, &r),
            manage_tracks: policy::allows(v.as_ref(), Action::ManageTracks, &r),
            read_metadata: policy::allows(v.as_ref(), Action::ReadCourseMetadata, &r),
        })
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
