//! First-sight provisioning: get-or-create the user, organization and membership a
//! verified identity names — idempotent, race-safe and atomic — and the viewer a request
//! runs as.
//!
//! The warm path is one SELECT (user ⟕ memberships ⟕ organizations, [`load`]) and no
//! write. What the identity lacks is a [`plan`]; carrying it out is the transaction
//! ([`txn`]) or, for a new user of a named organization on PostgreSQL, one statement
//! ([`sight`]) — the same one that reads the user when they exist. A first sight is never
//! read back: what it inserted is what the viewer is made of.

mod load;
pub mod plan;
mod sight;
mod txn;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entity::{AuditAction, organization, user};
use sea_orm::{
    ConnectionTrait, DatabaseConnection,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use load::{Key, load};
pub use load::{existing, reload_viewer};
use plan::{Invitations, PlanSettings};
use sight::Sight;

use super::{
    Identity,
    active_org::{self, Choice},
    cache::{ContextCache, Found},
    viewer::{EmailClaim, MembershipRecord, TokenGrants, UserRecord, Viewer},
};
use crate::{
    authz::{AccessReason, Role, policy::Held, roles::Policy},
    config::{InvitationConfig, RoleSource},
    db::WriteLock,
    domain::audit,
    error::{AppError, AppResult},
    metrics::Metrics,
};

/// `last_login_at` is written at most this often per user.
pub const LOGIN_TOUCH_INTERVAL: Duration = Duration::minutes(5);

/// Provisions identities into viewers.
#[derive(Clone)]
pub struct Provisioner {
    conn: DatabaseConnection,
    role_source: RoleSource,
    default_role: Role,
    metrics: Metrics,
    cache: Arc<ContextCache>,
    write_lock: WriteLock,
    invitations: InvitationConfig,
    audit: Arc<audit::RateLimited>,
    record_writes: bool,
    policy: Arc<Policy>,
}

/// How the provisioner is set up (all from the configuration).
pub struct ProvisionerSettings {
    pub role_source: RoleSource,
    pub default_role: Role,
    /// The effective policy viewers' grants are computed with.
    pub policy: Arc<Policy>,
    pub invitations: InvitationConfig,
    /// Note each provisioning's write position (a read replica is configured), so the new
    /// viewer's queries read their own rows.
    pub record_writes: bool,
}

impl Provisioner {
    pub fn new(
        conn: DatabaseConnection,
        settings: ProvisionerSettings,
        metrics: Metrics,
        cache: Arc<ContextCache>,
        write_lock: WriteLock,
        audit: Arc<audit::RateLimited>,
    ) -> Self {
        let ProvisionerSettings { role_source, default_role, policy, invitations, record_writes } = settings;
        Self { conn, role_source, default_role, metrics, cache, write_lock, invitations, audit, record_writes, policy }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// What a plan depends on.
    pub fn plan_settings(&self) -> PlanSettings {
        PlanSettings {
            role_source: self.role_source,
            default_role: self.default_role,
            auto_accept: self.invitations.auto_accept,
        }
    }

    /// The verified address whose pending invitations provisioning accepts, if it does.
    fn auto_accept_email(&self, identity: &Identity) -> Option<String> {
        accepted_email(identity, self.invitations.auto_accept)
    }

    pub fn cache(&self) -> &Arc<ContextCache> {
        &self.cache
    }

    /// The viewer for `identity`, creating whatever is missing. `active_header` is the
    /// `X-Organization-Id` header (uuid or slug), if sent.
    pub async fn viewer(&self, identity: &Identity, active_header: Option<&str>) -> AppResult<Viewer> {
        let found = self.found(identity).await?;
        let mut viewer = Viewer {
            user: found.user,
            memberships: found.memberships,
            active_organization: None,
            removed_from: None,
            platform_admin: identity.platform_admin,
            email: EmailClaim::from_identity(identity.email.as_deref(), identity.email_verified),
            policy: self.policy.clone(),
            token_grants: None,
        };
        viewer.token_grants = token_grants(&self.policy, self.role_source, identity, &viewer.memberships);
        let token_org = identity.organization.as_ref().map(|o| o.external_id.as_str());
        let choice = active_org::choose(&viewer.memberships, viewer.platform_admin, token_org, active_header)
            .map_err(AppError::forbidden)?;
        match choice {
            Choice::Active(o) => viewer.active_organization = Some(o),
            Choice::Removed(o) => viewer.removed_from = Some(o),
            Choice::None => {}
            Choice::Lookup { by_id, slug } => {
                viewer.active_organization = Some(self.act_as(&viewer, by_id, &slug).await?)
            }
        }
        if viewer.platform_admin {
            tracing::info!(target: "audit", event = "platform_admin.request", user_id = %viewer.user.id,
                organization_id = viewer.active_organization.map(tracing::field::display), "platform admin authenticated");
        }
        Ok(viewer)
    }

    /// The user and memberships of `identity`: cached, read (with what first sight wrote, on
    /// PostgreSQL in the same statement), or provisioned by the transaction when the plan
    /// writes anything the statement did not.
    async fn found(&self, identity: &Identity) -> AppResult<Found> {
        let now = Utc::now();
        let cached = self.cache.get(&identity.issuer, &identity.subject);
        let invited = self.auto_accept_email(identity);
        // What the one-statement sight created, when the user was new (nothing to load).
        let mut created = None;
        let found = match &cached {
            Some(f) => Some(f.as_ref().clone()),
            None => match self.sight(identity, invited.as_deref(), now).await? {
                Sight::Existing(f) => Some(f),
                Sight::Created(f) => {
                    created = Some(f);
                    None
                }
                Sight::Absent => None,
                Sight::NotApplicable => {
                    load(&self.conn, &self.policy, Key::Identity(identity), invited.as_deref()).await?
                }
            },
        };
        let settings = self.plan_settings();
        let writes = |f: &Found| {
            plan::plan(identity, Some(f), None, &Invitations::Waiting(f.pending_invitations), &settings).writes()
        };
        if let Some(mut f) = found.filter(|f| !writes(f)) {
            let wrote = self.touch_if_stale(identity, &mut f, now).await?;
            if cached.is_none() || wrote {
                self.cache.put(&identity.issuer, &identity.subject, Arc::new(f.clone()));
            }
            return Ok(f);
        }
        let provisioned = match created {
            Some(f) => Some(f),
            None => self.provision(identity, invited.as_deref(), now).await?,
        };
        let f = match provisioned {
            Some(f) => f,
            None => load(&self.conn, &self.policy, Key::Identity(identity), invited.as_deref())
                .await?
                .ok_or_else(|| AppError::internal("provisioned user vanished"))?,
        };
        if self.record_writes {
            crate::db::replica::record_write(&self.conn, f.user.id).await?;
        }
        self.cache.put(&identity.issuer, &identity.subject, Arc::new(f.clone()));
        Ok(f)
    }

    /// Refreshes changed profile fields and a stale `last_login_at` in one UPDATE (and in
    /// `f`, so this request already sees them); no write otherwise. Returns whether it wrote.
    async fn touch_if_stale(&self, identity: &Identity, f: &mut Found, now: DateTime<Utc>) -> AppResult<bool> {
        let profile_changed = profile_changed(identity, &f.user);
        let stale = f.user.last_login_at.is_none_or(|t| now - t >= LOGIN_TOUCH_INTERVAL);
        if !profile_changed && !stale {
            return Ok(false);
        }
        let mut q = Query::update();
        q.table(user::Entity)
            .value(user::Column::LastLoginAt, now)
            .and_where(Expr::col(user::Column::Id).eq(f.user.id));
        if profile_changed {
            apply_profile(&mut q, identity, now);
            tracing::info!(target: "audit", event = "user.profile_refreshed", user_id = %f.user.id);
        }
        let txn = crate::db::begin_write_queued(&self.conn, &self.write_lock).await?;
        txn.execute(&q).await?;
        txn.commit().await?;
        let u = &mut f.user;
        u.last_login_at = Some(now);
        if profile_changed {
            u.email = identity.email.clone().or(u.email.take());
            u.name = identity.name.clone().or(u.name.take());
            u.avatar_url = identity.picture.clone().or(u.avatar_url.take());
            if identity.email.is_some() {
                u.email_verified = identity.email_verified;
            }
        }
        Ok(true)
    }

    /// A platform admin acting in an organization they are not a member of (audited), if it
    /// exists; NOT_A_MEMBER otherwise, as for anyone.
    async fn act_as(&self, viewer: &Viewer, by_id: Option<Uuid>, slug: &str) -> AppResult<Uuid> {
        let Some(id) = find_org(&self.conn, by_id, slug).await? else {
            return Err(AppError::forbidden(active_org::refused(AccessReason::NotAMember, None, None)));
        };
        tracing::info!(target: "audit", event = "platform_admin.act_as", user_id = %viewer.user.id,
            organization_id = %id, "platform admin selected an organization they are not a member of");
        let event = audit::Event::new(AuditAction::PlatformAdminAccess, Some(id), Some(viewer.user.id))
            .target("organization", id)
            .details(serde_json::json!({ "via": "X-Organization-Id" }));
        self.audit.record(format!("platform_admin:act_as:{id}"), event).await;
        Ok(id)
    }
}

/// What the token adds to the active membership in its organization, with
/// COURSEGRAPH_ROLE_SOURCE=token: the grants its permissions map to (`[idp.permissions]`)
/// and those of the custom roles its roles map to (COURSEGRAPH_ROLE_MAP), each spelled
/// `token:<name>`. Nothing in database mode, nothing without an active membership there.
pub fn token_grants(
    policy: &Policy,
    source: RoleSource,
    identity: &Identity,
    memberships: &[MembershipRecord],
) -> Option<TokenGrants> {
    if source != RoleSource::Token {
        return None;
    }
    let org = identity.organization.as_ref()?;
    let m = memberships
        .iter()
        .find(|m| m.is_active && m.organization_external_id.as_deref() == Some(org.external_id.as_str()))?;
    let permissions = identity.permissions.iter().filter_map(|p| Some((p, policy.permission(p)?)));
    let roles = identity.custom_roles.iter().filter_map(|k| Some((k, policy.grants_of(k, &m.organization_roles)?)));
    let held: Vec<Held> =
        permissions.chain(roles).map(|(name, grants)| Held { key: format!("token:{name}"), grants }).collect();
    (!held.is_empty()).then_some(TokenGrants { organization_id: m.organization_id, held })
}

/// The verified address whose pending invitations provisioning accepts (with auto-accept).
pub fn accepted_email(identity: &Identity, auto_accept: bool) -> Option<String> {
    if !auto_accept || !identity.email_verified {
        return None;
    }
    EmailClaim::from_identity(identity.email.as_deref(), true).map(|e| e.address)
}

/// The organization `X-Organization-Id` names (by id, else by slug), if it exists.
pub async fn find_org(db: &impl ConnectionTrait, by_id: Option<Uuid>, slug: &str) -> AppResult<Option<Uuid>> {
    let mut q = Query::select();
    q.column(organization::Column::Id).from(organization::Entity);
    match by_id {
        Some(id) => q.and_where(Expr::col(organization::Column::Id).eq(id)),
        None => q.and_where(Expr::col(organization::Column::Slug).eq(slug)),
    };
    Ok(match db.query_one(&q).await? {
        Some(r) => Some(r.try_get("", "id")?),
        None => None,
    })
}

/// A profile field changed when the token carries a value that differs from the row.
/// A token that omits a field never blanks it.
fn profile_changed(identity: &Identity, u: &UserRecord) -> bool {
    let differs = |new: &Option<String>, old: &Option<String>| new.is_some() && new != old;
    differs(&identity.email, &u.email)
        || differs(&identity.name, &u.name)
        || differs(&identity.picture, &u.avatar_url)
        || (identity.email.is_some() && identity.email_verified != u.email_verified)
}

fn apply_profile(q: &mut sea_orm::sea_query::UpdateStatement, identity: &Identity, now: DateTime<Utc>) {
    if let Some(e) = &identity.email {
        q.value(user::Column::Email, e.clone());
        q.value(user::Column::EmailVerified, identity.email_verified);
    }
    if let Some(n) = &identity.name {
        q.value(user::Column::Name, n.clone());
    }
    if let Some(p) = &identity.picture {
        q.value(user::Column::AvatarUrl, p.clone());
    }
    q.value(user::Column::UpdatedAt, now);
}
