//! `createOrganization` and `updateOrganization`.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::Utc;
use entity::{AuditAction, MembershipRole, organization};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use super::not_null;
use crate::{
    authz::Action,
    db::Change,
    domain::{
        audit::Event,
        membership,
        organization::{NewOrganization, candidate_slugs, slugify, try_insert},
    },
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup,
        types::{organization::Organization, parse_id},
        validate, visibility,
    },
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

#[derive(Default)]
pub struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Creates an organization; the viewer becomes its ADMIN.
    async fn create_organization(&self, ctx: &Context<'_>, input: CreateOrganizationInput) -> AppResult<Organization> {
        let viewer = ctx.viewer()?;
        let name = validate::name("input.name", &input.name)?;
        let wanted = input.slug.as_deref().map(|s| validate::slug("input.slug", s)).transpose()?;
        let request = ctx.request()?;
        let id = Uuid::now_v7();
        // Row-level security: the new tenant's first rows.
        request.db.admit_organization(id).await?;
        let mut work = request.begin().await?;
        let now = Utc::now();
        let new = NewOrganization { id, external_id: None, name: &name, now };
        let base = wanted.clone().unwrap_or_else(|| slugify(&name));
        let mut created = None;
        for slug in candidate_slugs(&base, wanted.is_some()) {
            if let Some(o) = try_insert(&work, &new, &slug).await? {
                created = Some(o);
                break;
            }
        }
        let Some(org) = created else {
            return Err(match wanted {
                Some(s) => AppError::conflict(format!("the slug `{s}` is taken"), Some("input.slug")),
                None => AppError::conflict("no free slug for this name; pass `slug`", Some("input.slug")),
            });
        };
        membership::insert(&work, viewer.user.id, id, MembershipRole::Admin, now).await?;
        work.audit(
            Event::new(AuditAction::MemberAdded, Some(id), Some(viewer.user.id))
                .target("user", viewer.user.id)
                .details(serde_json::json!({ "role": "ADMIN", "source": "createOrganization" })),
        );
        work.changed(Change::User(viewer.user.id));
        request.commit(work).await?;
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
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        let updated = match am.update(&work).await {
            Ok(o) => o,
            Err(e) if crate::db::is_unique_violation(&e) => {
                let taken = slug.unwrap_or_default();
                return Err(AppError::conflict(format!("the slug `{taken}` is taken"), Some("input.slug")));
            }
            Err(e) => return Err(e.into()),
        };
        let mut changed = serde_json::Map::new();
        if updated.name != org.name {
            changed.insert("name".into(), serde_json::json!({ "from": org.name, "to": updated.name }));
        }
        if updated.slug != org.slug {
            changed.insert("slug".into(), serde_json::json!({ "from": org.slug, "to": updated.slug }));
        }
        work.audit(
            Event::new(AuditAction::OrganizationUpdated, Some(id), Some(ctx.viewer()?.user.id))
                .target("organization", id)
                .details(Value::Object(changed)),
        );
        work.changed(Change::Organization(id));
        request.commit(work).await?;
        Ok(Organization(Arc::new(updated)))
    }
}
