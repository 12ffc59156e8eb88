//! `Query`: the read entry points. Each one scopes its rows to the viewer in SQL.

use async_graphql::{Context, ID, Object};
use entity::{course, organization};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use super::{
    context::ContextExt,
    lookup,
    types::{
        access::{AccessDecision, AccessGrant},
        connection::{self, CourseConnection, CourseFilter},
        course::Course,
        organization::Organization,
        parse_id,
        track::Track,
        viewer::ViewerNode,
    },
    visibility,
};
use crate::{authz::Action, error::AppResult};

pub struct Query;

#[Object]
impl Query {
    /// The signed-in viewer.
    async fn me(&self, ctx: &Context<'_>) -> AppResult<ViewerNode> {
        Ok(ViewerNode(ctx.viewer()?))
    }

    /// An organization the viewer belongs to; without `id`, the active organization.
    async fn organization(&self, ctx: &Context<'_>, id: Option<ID>) -> Option<Organization> {
        let r = async {
            let org = match &id {
                Some(id) => parse_id("id", id)?,
                None => match ctx.fallback_organization()? {
                    Some(o) => o,
                    None => return Ok(None),
                },
            };
            lookup::organization(ctx, org, Action::ReadOrganization).await.map(|o| Some(Organization(o)))
        }
        .await;
        ctx.or_null(r)
    }

    /// The organizations where the viewer holds an active membership, by name.
    async fn organizations(&self, ctx: &Context<'_>) -> AppResult<Vec<Organization>> {
        let viewer = ctx.viewer()?;
        let ids: Vec<_> = viewer.active_memberships().map(|m| m.organization_id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = organization::Entity::find()
            .filter(organization::Column::Id.is_in(ids))
            .order_by_asc(organization::Column::Name)
            .order_by_asc(organization::Column::Id)
            .all(ctx.db()?)
            .await?;
        Ok(rows.into_iter().map(|o| Organization(o.into())).collect())
    }

    /// A course the viewer can read (drafts only for ADMIN and INSTRUCTOR).
    async fn course(&self, ctx: &Context<'_>, id: ID) -> Option<Course> {
        let r = async {
            let id = parse_id("id", &id)?;
            lookup::course(ctx, id, Action::ReadCourse).await.map(|c| Some(Course(c)))
        }
        .await;
        ctx.or_null(r)
    }

    /// Courses by title: of `organizationId` when given, else of the active organization,
    /// else of every organization the viewer belongs to.
    #[graphql(complexity = "(first.unwrap_or(20).clamp(1, 100) as usize) * child_complexity")]
    async fn courses(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
        filter: Option<CourseFilter>,
    ) -> AppResult<CourseConnection> {
        let org = match &organization_id {
            Some(id) => Some(lookup::organization(ctx, parse_id("organizationId", id)?, Action::ReadCourse).await?.id),
            None => ctx.fallback_organization()?,
        };
        let orgs = match org {
            Some(o) => Condition::all().add(course::Column::OrganizationId.eq(o)),
            // The tenant scope inside `course_page` already limits this to the viewer's organizations.
            None => Condition::all(),
        };
        connection::course_page(ctx, orgs, first.unwrap_or(20), after.as_deref(), filter.as_ref()).await
    }

    /// A track the viewer can read (exactly when its course is readable).
    async fn track(&self, ctx: &Context<'_>, id: ID) -> Option<Track> {
        let r = async {
            let id = parse_id("id", &id)?;
            lookup::track(ctx, id, Action::ReadCourse).await.map(|(t, _)| Some(Track::new(t)))
        }
        .await;
        ctx.or_null(r)
    }

    /// Whether the viewer may perform `action` — on `resourceId` (an organization, course
    /// or user id), else on the active organization (or, for READ_USER_PRIVATE, themself) —
    /// and why. Answered by the same policy that guards the operations.
    async fn explain_access(
        &self,
        ctx: &Context<'_>,
        action: Action,
        resource_id: Option<ID>,
    ) -> AppResult<AccessDecision> {
        let id = resource_id.as_ref().map(|r| parse_id("resourceId", r)).transpose()?;
        let d = lookup::explain(ctx, action, id).await?;
        Ok(AccessDecision::new(ctx.viewer()?.as_ref(), d))
    }

    /// Who may perform `action` on `resourceId` (a course or an organization; for
    /// READ_USER_PRIVATE, a user of the active organization): the organization's active
    /// members the policy grants it, highest role first, each with the reason. ADMIN only
    /// (MANAGE_MEMBERS). Platform admins, who are granted everything, are not listed.
    #[graphql(visible = "visibility::query_who_can")]
    async fn who_can(&self, ctx: &Context<'_>, action: Action, resource_id: ID) -> AppResult<Vec<AccessGrant>> {
        let id = parse_id("resourceId", &resource_id)?;
        Ok(lookup::who_can(ctx, action, id)
            .await?
            .into_iter()
            .map(|(m, d)| AccessGrant {
                membership: (&m).into(),
                reason: d.reason,
                role: m.role,
                policy: d.policy.to_owned(),
            })
            .collect())
    }
}
