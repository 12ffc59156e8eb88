//! First-sight provisioning: get-or-create the user, organization and membership a
//! verified identity names — idempotent, race-safe and atomic.
//!
//! The warm path is one SELECT (user ⟕ memberships ⟕ organizations) and no write.
//! Anything missing is created in one transaction with INSERT … ON CONFLICT DO NOTHING
//! RETURNING, and a SELECT on the unique key when the row was there already, so any
//! number of concurrent first requests, from any number of server processes, converge on
//! exactly one row each. On PostgreSQL a first sight (a new user whose token names an
//! organization, new or not) is one statement instead (`SIGHT`), the same one that reads the
//! user when they exist, and a first sight is never read back: what it inserted is what
//! the viewer is made of.

use chrono::{DateTime, Duration, Utc};
use entity::{AuditAction, InvitationStatus, invitation, membership, organization, user};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement,
    sea_query::{Alias, Expr, ExprTrait, JoinType, OnConflict, Query},
};
use uuid::Uuid;

use std::sync::Arc;

use super::{
    Identity,
    cache::{Change, ContextCache, Found},
    claims::OrgClaim,
    viewer::{EmailClaim, MembershipRecord, UserRecord, Viewer},
};
use crate::{
    authz::{AccessReason, Action, Decision, Role, policy},
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
}

/// How the provisioner is set up (all from the configuration).
pub struct ProvisionerSettings {
    pub role_source: RoleSource,
    pub default_role: Role,
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
        let ProvisionerSettings { role_source, default_role, invitations, record_writes } = settings;
        Self { conn, role_source, default_role, metrics, cache, write_lock, invitations, audit, record_writes }
    }

    /// The verified address whose pending invitations provisioning accepts, if it does.
    fn auto_accept_email(&self, identity: &Identity) -> Option<String> {
        if !self.invitations.auto_accept || !identity.email_verified {
            return None;
        }
        EmailClaim::from_identity(identity.email.as_deref(), true).map(|e| e.address)
    }

    pub fn cache(&self) -> &Arc<ContextCache> {
        &self.cache
    }

    /// The viewer for `identity`, creating whatever is missing. `active_header` is the
    /// `X-Organization-Id` header (uuid or slug), if sent.
    pub async fn viewer(&self, identity: &Identity, active_header: Option<&str>) -> AppResult<Viewer> {
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
                Sight::NotApplicable => load(&self.conn, Key::Identity(identity), invited.as_deref()).await?,
            },
        };
        let found = match found {
            Some(mut f) if !self.needs_transaction(identity, &f) => {
                let wrote = self.touch_if_stale(identity, &mut f, now).await?;
                if cached.is_none() || wrote {
                    self.cache.put(&identity.issuer, &identity.subject, Arc::new(f.clone()));
                }
                f
            }
            _ => {
                let provisioned = match created {
                    Some(f) => Some(f),
                    None => self.provision(identity, invited.as_deref(), now).await?,
                };
                let f = match provisioned {
                    Some(f) => f,
                    None => load(&self.conn, Key::Identity(identity), invited.as_deref())
                        .await?
                        .ok_or_else(|| AppError::internal("provisioned user vanished"))?,
                };
                if self.record_writes {
                    crate::db::replica::record_write(&self.conn, f.user.id).await?;
                }
                self.cache.put(&identity.issuer, &identity.subject, Arc::new(f.clone()));
                f
            }
        };
        let mut viewer = Viewer {
            user: found.user,
            memberships: found.memberships,
            active_organization: None,
            platform_admin: identity.platform_admin,
            email: EmailClaim::from_identity(identity.email.as_deref(), identity.email_verified),
        };
        viewer.active_organization = self.active_organization(&viewer, identity, active_header).await?;
        if viewer.platform_admin {
            tracing::info!(target: "audit", event = "platform_admin.request", user_id = %viewer.user.id,
                organization_id = viewer.active_organization.map(tracing::field::display), "platform admin authenticated");
        }
        Ok(viewer)
    }

    /// Whether the warm path cannot serve this identity without creating or changing rows.
    fn needs_transaction(&self, identity: &Identity, f: &Found) -> bool {
        if f.pending_invitations {
            return true;
        }
        let Some(org) = &identity.organization else { return false };
        match f.memberships.iter().find(|m| m.organization_external_id.as_deref() == Some(&org.external_id)) {
            None => true,
            Some(m) => {
                self.role_source == RoleSource::Token && m.is_active && identity.role.is_some_and(|r| r != m.role)
            }
        }
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

    /// A cache miss on PostgreSQL whose token names an organization, in one statement:
    /// the user as `load` reads them when they exist; else — no invitation waiting for
    /// them — the organization if it is new, the user, the membership and its audit event
    /// are inserted and read back, in the one round trip instead of a SELECT, a
    /// transaction of five to six statements and a reload. One statement is atomic on its
    /// own. A new user it could not create (the organization's slug is taken, a concurrent
    /// request created the organization or the user first, an invitation waits) inserts
    /// nothing and is [`Sight::Absent`]: [`Self::provision`] takes over.
    async fn sight(&self, identity: &Identity, invited: Option<&str>, now: DateTime<Utc>) -> AppResult<Sight> {
        let Some(org) = &identity.organization else { return Ok(Sight::NotApplicable) };
        if self.conn.get_database_backend() != DbBackend::Postgres {
            return Ok(Sight::NotApplicable);
        }
        let role = identity.role.unwrap_or(self.default_role);
        let stored_role = role.stored();
        let details = serde_json::json!({ "role": role.as_str(), "source": "token" });
        let name = org_name(org);
        let slug = slugify(&name);
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            SIGHT,
            [
                org.external_id.clone().into(),
                invited.map(str::to_owned).into(),
                now.into(),
                Uuid::now_v7().into(),
                identity.issuer.clone().into(),
                identity.subject.clone().into(),
                identity.email.clone().into(),
                identity.name.clone().into(),
                identity.picture.clone().into(),
                identity.email_verified.into(),
                serde_json::json!({ "idp_roles": identity.idp_roles }).into(),
                Uuid::now_v7().into(),
                stored_role.into(),
                Uuid::now_v7().into(),
                AuditAction::MembershipProvisioned.as_str().into(),
                details.into(),
                Uuid::now_v7().into(),
                name.into(),
                slug.clone().into(),
                format!("org-{slug}").into(),
            ],
        );
        let rows = match self.conn.query_all_raw(stmt).await {
            Ok(rows) => rows,
            // A concurrent first request inserted this user (and this statement waited for
            // it to commit): everything here is rolled back; the transaction path finds it.
            Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
                return Ok(Sight::Absent);
            }
            Err(e) => return Err(e.into()),
        };
        let Some(row) = rows.first() else { return Ok(Sight::Absent) };
        if row.try_get::<bool>("", "existed")? {
            let found = found_from_rows(&rows, true)?.ok_or_else(|| AppError::internal("no row"))?;
            return Ok(Sight::Existing(found));
        }
        let user = user_from_row(row)?;
        let membership = membership_from_row(row)?
            .ok_or_else(|| AppError::internal("first sight returned a user without the membership"))?;
        if row.try_get::<bool>("", "org_created")? {
            self.metrics.provisioned("organization");
            tracing::info!(target: "audit", event = "organization.created", organization_id = %membership.organization_id,
                external_id = %org.external_id, slug = %membership.organization_slug, "provisioned organization");
        }
        self.metrics.provisioned("user");
        self.metrics.provisioned("membership");
        tracing::info!(target: "audit", event = "user.created", user_id = %user.id,
            issuer = %identity.issuer, subject = %identity.subject, "provisioned user");
        tracing::info!(target: "audit", event = "membership.created", user_id = %user.id,
            organization_id = %membership.organization_id, role = role.as_str(), source = "token", "provisioned membership");
        Ok(Sight::Created(Found { user, memberships: vec![membership], pending_invitations: false }))
    }

    /// Creates the user, organization and membership that are missing, and accepts the
    /// pending invitations addressed to `invited` (the verified email) — all or nothing.
    ///
    /// A true first sight (this transaction created the user, and with it every membership
    /// the user has) returns what it wrote, as the rows' RETURNING clauses read it back, so
    /// the caller need not load it again; anything else returns `None` and the caller loads.
    /// Each statement saved is a round trip on the path every new user takes.
    async fn provision(
        &self,
        identity: &Identity,
        invited: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Found>> {
        let txn = crate::db::begin_write_queued(&self.conn, &self.write_lock).await?;

        // 1. The user.
        let new_id = Uuid::now_v7();
        let insert = Query::insert()
            .into_table(user::Entity)
            .columns([
                user::Column::Id,
                user::Column::Issuer,
                user::Column::ExternalId,
                user::Column::Email,
                user::Column::Name,
                user::Column::AvatarUrl,
                user::Column::EmailVerified,
                user::Column::LastLoginAt,
                user::Column::ProfileData,
                user::Column::CreatedAt,
                user::Column::UpdatedAt,
            ])
            .values_panic([
                new_id.into(),
                identity.issuer.clone().into(),
                identity.subject.clone().into(),
                identity.email.clone().into(),
                identity.name.clone().into(),
                identity.picture.clone().into(),
                identity.email_verified.into(),
                now.into(),
                serde_json::json!({ "idp_roles": identity.idp_roles }).into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(OnConflict::columns([user::Column::Issuer, user::Column::ExternalId]).do_nothing().to_owned())
            .returning(Query::returning().columns(USER_COLUMNS))
            .to_owned();
        // A row back: this transaction created the user. None: the user exists (another
        // request got here first), and the SELECT on the unique key reads it.
        let (created_user, row) = match txn.query_one(&insert).await? {
            Some(row) => (true, row),
            None => (
                false,
                txn.query_one(
                    &Query::select()
                        .columns(USER_COLUMNS)
                        .from(user::Entity)
                        .and_where(Expr::col(user::Column::Issuer).eq(identity.issuer.as_str()))
                        .and_where(Expr::col(user::Column::ExternalId).eq(identity.subject.as_str()))
                        .to_owned(),
                )
                .await?
                .ok_or_else(|| AppError::internal("user row missing after insert-on-conflict"))?,
            ),
        };
        let user_record = user_from_row(&row)?;
        let user_id = user_record.id;
        // What this request knows the user has: exact only while nothing but this
        // transaction can have given them a membership.
        let mut known = created_user.then(Vec::new);
        if created_user {
            self.metrics.provisioned("user");
            tracing::info!(target: "audit", event = "user.created", user_id = %user_id,
                issuer = %identity.issuer, subject = %identity.subject, "provisioned user");
        } else if profile_changed(identity, &user_record) {
            let mut q = Query::update();
            q.table(user::Entity).and_where(Expr::col(user::Column::Id).eq(user_id));
            apply_profile(&mut q, identity, now);
            txn.execute(&q).await?;
            tracing::info!(target: "audit", event = "user.profile_refreshed", user_id = %user_id);
        }

        // Invitations first: an invited role wins over the token's for the same organization,
        // and an invitation brings a removed member back, which a token never does.
        if let Some(email) = invited {
            let pending = crate::domain::invitations::pending_for(&txn, email, now).await?;
            if !pending.is_empty() {
                known = None;
            }
            for inv in pending {
                if crate::domain::invitations::accept(&txn, &inv, user_id, now, "provisioning").await?.is_some() {
                    self.metrics.provisioned("membership");
                }
            }
        }

        // 2. The organization and 3. the membership, when the token names an organization.
        if let Some(org) = &identity.organization {
            let organization = self.get_or_create_org(&txn, org, now).await?;
            let org_id = organization.id;
            let role = identity.role.unwrap_or(self.default_role);
            let insert = Query::insert()
                .into_table(membership::Entity)
                .columns([
                    membership::Column::Id,
                    membership::Column::UserId,
                    membership::Column::OrganizationId,
                    membership::Column::Role,
                    membership::Column::IsActive,
                    membership::Column::JoinedAt,
                    membership::Column::UpdatedAt,
                ])
                .values_panic([
                    Uuid::now_v7().into(),
                    user_id.into(),
                    org_id.into(),
                    role.stored().into(),
                    true.into(),
                    now.into(),
                    now.into(),
                ])
                .on_conflict(
                    OnConflict::columns([membership::Column::UserId, membership::Column::OrganizationId])
                        .do_nothing()
                        .to_owned(),
                )
                .returning(Query::returning().columns([
                    membership::Column::Id,
                    membership::Column::Role,
                    membership::Column::IsActive,
                    membership::Column::JoinedAt,
                ]))
                .to_owned();
            if let Some(row) = txn.query_one(&insert).await? {
                if let Some(known) = known.as_mut() {
                    known.push(membership_record(
                        &row,
                        ["id", "role", "is_active", "joined_at"],
                        organization.clone(),
                    )?);
                }
                self.metrics.provisioned("membership");
                audit::record(
                    &txn,
                    audit::Event::new(AuditAction::MembershipProvisioned, Some(org_id), Some(user_id))
                        .target("user", user_id)
                        .details(serde_json::json!({ "role": role.as_str(), "source": "token" })),
                )
                .await?;
                tracing::info!(target: "audit", event = "membership.created", user_id = %user_id,
                    organization_id = %org_id, role = role.as_str(), source = "token", "provisioned membership");
            } else {
                // The membership was there already (an invitation accepted above made it):
                // what this request knows is no longer the whole story.
                known = None;
                if self.role_source == RoleSource::Token
                    && let Some(token_role) = identity.role
                {
                    // The token is authoritative for the role, but never re-activates a removed member.
                    let q = Query::update()
                        .table(membership::Entity)
                        .value(membership::Column::Role, token_role.stored())
                        .value(membership::Column::UpdatedAt, now)
                        .and_where(Expr::col(membership::Column::UserId).eq(user_id))
                        .and_where(Expr::col(membership::Column::OrganizationId).eq(org_id))
                        .and_where(Expr::col(membership::Column::IsActive).eq(true))
                        .and_where(Expr::col(membership::Column::Role).ne(token_role.stored()))
                        .to_owned();
                    if txn.execute(&q).await?.rows_affected() == 1 {
                        tracing::info!(target: "audit", event = "membership.role_changed", user_id = %user_id,
                            organization_id = %org_id, role = token_role.as_str(), source = "token", "role follows token");
                    }
                }
            }
        }
        // Other replicas may hold this user's context: let them drop it. Not a user this
        // transaction created: until it commits nobody can have loaded them. (Besides the
        // round trip, a NOTIFY serializes committing transactions in PostgreSQL.)
        if !created_user {
            crate::db::announce(&txn, &[Change::User(user_id)]).await?;
        }
        txn.commit().await?;
        if !created_user {
            self.cache.invalidate(Change::User(user_id));
        }
        Ok(known.map(|memberships| Found { user: user_record, memberships, pending_invitations: false }))
    }

    /// Finds the organization by external id, creating it with a free slug if missing.
    /// Most first sights are of an organization that exists: one SELECT finds it.
    async fn get_or_create_org(
        &self,
        txn: &impl ConnectionTrait,
        org: &OrgClaim,
        now: DateTime<Utc>,
    ) -> AppResult<entity::organization::Model> {
        let by_external_id = Query::select()
            .columns(ORGANIZATION_COLUMNS)
            .from(organization::Entity)
            .and_where(Expr::col(organization::Column::ExternalId).eq(org.external_id.as_str()))
            .to_owned();
        if let Some(row) = txn.query_one(&by_external_id).await? {
            return organization_from_row(&row);
        }
        let name = org_name(org);
        let base = slugify(&name);
        for attempt in 0..8 {
            let slug = if attempt == 0 { base.clone() } else { format!("{base}-{}", random_suffix()) };
            // No conflict target: a clash on external_id (someone else created it) and a
            // clash on slug (the name is taken) both do nothing; the SELECT tells which.
            let insert = Query::insert()
                .into_table(organization::Entity)
                .columns(ORGANIZATION_COLUMNS)
                .values_panic([
                    Uuid::now_v7().into(),
                    org.external_id.clone().into(),
                    name.clone().into(),
                    slug.clone().into(),
                    format!("org-{slug}").into(),
                    now.into(),
                    now.into(),
                ])
                .on_conflict(OnConflict::new().do_nothing().to_owned())
                .returning(Query::returning().columns(ORGANIZATION_COLUMNS))
                .to_owned();
            if let Some(row) = txn.query_one(&insert).await? {
                let created = organization_from_row(&row)?;
                self.metrics.provisioned("organization");
                tracing::info!(target: "audit", event = "organization.created", organization_id = %created.id,
                    external_id = %org.external_id, slug = %slug, "provisioned organization");
                return Ok(created);
            }
            if let Some(row) = txn.query_one(&by_external_id).await? {
                return organization_from_row(&row);
            }
        }
        Err(AppError::internal(format!("no free slug for organization {}", org.external_id)))
    }

    /// CONTRACT §3: the header, else the token's organization, else the only active membership.
    async fn active_organization(
        &self,
        viewer: &Viewer,
        identity: &Identity,
        header: Option<&str>,
    ) -> AppResult<Option<Uuid>> {
        if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
            let by_id = Uuid::parse_str(h).ok();
            let found =
                viewer.memberships.iter().find(|m| Some(m.organization_id) == by_id || m.organization_slug == h);
            return match found {
                Some(m) if m.is_active => Ok(Some(m.organization_id)),
                Some(m) => Err(header_denied(AccessReason::MembershipInactive, Some(m.role), Some(m.organization_id))),
                None if viewer.platform_admin => match self.find_org(by_id, h).await? {
                    Some(id) => {
                        tracing::info!(target: "audit", event = "platform_admin.act_as", user_id = %viewer.user.id,
                            organization_id = %id, "platform admin selected an organization they are not a member of");
                        let event = audit::Event::new(AuditAction::PlatformAdminAccess, Some(id), Some(viewer.user.id))
                            .target("organization", id)
                            .details(serde_json::json!({ "via": "X-Organization-Id" }));
                        self.audit.record(format!("platform_admin:act_as:{id}"), event).await;
                        Ok(Some(id))
                    }
                    None => Err(header_denied(AccessReason::NotAMember, None, None)),
                },
                // Unknown and not-a-member answer the same: existence never leaks.
                None => Err(header_denied(AccessReason::NotAMember, None, None)),
            };
        }
        if let Some(org) = &identity.organization
            && let Some(m) = viewer
                .memberships
                .iter()
                .find(|m| m.is_active && m.organization_external_id.as_deref() == Some(&org.external_id))
        {
            return Ok(Some(m.organization_id));
        }
        let mut active = viewer.active_memberships();
        Ok(match (active.next(), active.next()) {
            (Some(m), None) => Some(m.organization_id),
            _ => None,
        })
    }

    async fn find_org(&self, by_id: Option<Uuid>, slug: &str) -> AppResult<Option<Uuid>> {
        let mut q = Query::select();
        q.column(organization::Column::Id).from(organization::Entity);
        match by_id {
            Some(id) => q.and_where(Expr::col(organization::Column::Id).eq(id)),
            None => q.and_where(Expr::col(organization::Column::Slug).eq(slug)),
        };
        Ok(match self.conn.query_one(&q).await? {
            Some(r) => Some(r.try_get("", "id")?),
            None => None,
        })
    }
}

/// [`Provisioner::sight`]. `seen` is `load`'s read of the user ($5, $6) with every
/// membership; when there is no such user and no invitation waits for the verified email
/// ($2, NULL when none is accepted at sign-in), the organization is inserted if there is
/// none (its first slug; a taken slug, or another request creating it first, inserts
/// nothing), the user only with an organization to join, the membership and its audit
/// event only with that user. The user insert has no ON CONFLICT on purpose: a user
/// inserted concurrently fails the whole statement (unique violation), organization
/// included, so no outcome leaves an organization without its member. Rows with `existed`
/// are the user as found; one row without it means everything was written; no row or
/// that error, that nothing was. Columns as `load` names them.
const SIGHT: &str = "\
WITH seen AS (
    SELECT u.id, u.email, u.name, u.avatar_url, u.email_verified, u.last_login_at, u.created_at,
           m.id AS m_id, m.organization_id AS m_org, m.role AS m_role, m.is_active AS m_active,
           m.joined_at AS m_joined, o.slug AS o_slug, o.external_id AS o_ext, o.name AS o_name,
           o.storage_bucket AS o_bucket, o.created_at AS o_created, o.updated_at AS o_updated
    FROM users u
    LEFT JOIN memberships m ON m.user_id = u.id
    LEFT JOIN organizations o ON o.id = m.organization_id
    WHERE u.issuer = $5 AND u.external_id = $6
), pending AS (
    SELECT EXISTS (SELECT 1 FROM invitations
                   WHERE email_normalized = $2 AND status = 'pending' AND expires_at > $3) AS waiting
), go AS (
    SELECT NOT pending.waiting AND NOT EXISTS (SELECT 1 FROM seen) AS ok FROM pending
), found AS (
    SELECT id, external_id, name, slug, storage_bucket, created_at, updated_at
    FROM organizations WHERE external_id = $1
), created AS (
    INSERT INTO organizations (id, external_id, name, slug, storage_bucket, created_at, updated_at)
    SELECT $17, $1, $18, $19, $20, $3, $3 FROM go WHERE go.ok AND NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING id, external_id, name, slug, storage_bucket, created_at, updated_at
), o AS (
    SELECT * FROM found UNION ALL SELECT * FROM created
), u AS (
    INSERT INTO users (id, issuer, external_id, email, name, avatar_url, email_verified,
                       last_login_at, profile_data, created_at, updated_at)
    SELECT $4, $5, $6, $7, $8, $9, $10, $3, $11, $3, $3 FROM go WHERE go.ok AND EXISTS (SELECT 1 FROM o)
    RETURNING id, email, name, avatar_url, email_verified, last_login_at, created_at
), m AS (
    INSERT INTO memberships (id, user_id, organization_id, role, is_active, joined_at, updated_at)
    SELECT $12, u.id, o.id, $13, true, $3, $3 FROM u, o
    RETURNING id, organization_id, role, is_active, joined_at
), a AS (
    INSERT INTO audit_events (id, organization_id, at, action, actor_id, target_type, target_id, details)
    SELECT $14, m.organization_id, $3, $15, u.id, 'user', u.id, $16 FROM m, u
)
SELECT seen.*, true AS existed, pending.waiting AS pending_invitations, false AS org_created
FROM seen, pending
UNION ALL
SELECT u.id, u.email, u.name, u.avatar_url, u.email_verified, u.last_login_at, u.created_at,
       m.id, m.organization_id, m.role, m.is_active, m.joined_at, o.slug, o.external_id, o.name,
       o.storage_bucket, o.created_at, o.updated_at,
       false, false, EXISTS (SELECT 1 FROM created)
FROM u, m, o";

/// The name a new organization gets: the token's, else its external id (bounded).
fn org_name(org: &OrgClaim) -> String {
    let name = org.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&org.external_id);
    name.chars().take(500).collect()
}

/// The user's columns a viewer is built from, in the order `UserRecord` reads them.
const USER_COLUMNS: [user::Column; 7] = [
    user::Column::Id,
    user::Column::Email,
    user::Column::Name,
    user::Column::AvatarUrl,
    user::Column::EmailVerified,
    user::Column::LastLoginAt,
    user::Column::CreatedAt,
];

/// Every column of an organization (what a membership carries of it).
const ORGANIZATION_COLUMNS: [organization::Column; 7] = [
    organization::Column::Id,
    organization::Column::ExternalId,
    organization::Column::Name,
    organization::Column::Slug,
    organization::Column::StorageBucket,
    organization::Column::CreatedAt,
    organization::Column::UpdatedAt,
];

/// A user as [`USER_COLUMNS`] read it.
fn user_from_row(r: &QueryResult) -> AppResult<UserRecord> {
    Ok(UserRecord {
        id: r.try_get("", "id")?,
        email: r.try_get("", "email")?,
        name: r.try_get("", "name")?,
        avatar_url: r.try_get("", "avatar_url")?,
        email_verified: r.try_get("", "email_verified")?,
        last_login_at: r.try_get("", "last_login_at")?,
        created_at: r.try_get("", "created_at")?,
    })
}

fn organization_from_row(r: &QueryResult) -> AppResult<entity::organization::Model> {
    Ok(entity::organization::Model {
        id: r.try_get("", "id")?,
        external_id: r.try_get("", "external_id")?,
        name: r.try_get("", "name")?,
        slug: r.try_get("", "slug")?,
        storage_bucket: r.try_get("", "storage_bucket")?,
        created_at: r.try_get("", "created_at")?,
        updated_at: r.try_get("", "updated_at")?,
    })
}

/// Which user to load.
enum Key<'a> {
    Identity(&'a Identity),
    UserId(Uuid),
}

/// The single warm-path statement: the user with every membership and its organization.
/// With `invited` (a verified email provisioning would accept invitations for), it also
/// says whether any are pending — in the same statement.
async fn load(db: &impl ConnectionTrait, key: Key<'_>, invited: Option<&str>) -> AppResult<Option<Found>> {
    let (u, m, o) = (Alias::new("u"), Alias::new("m"), Alias::new("o"));
    let stmt = Query::select()
        .exprs(USER_COLUMNS.map(|c| Expr::col((u.clone(), c))))
        .expr_as(Expr::col((m.clone(), membership::Column::Id)), Alias::new("m_id"))
        .expr_as(Expr::col((m.clone(), membership::Column::OrganizationId)), Alias::new("m_org"))
        .expr_as(Expr::col((m.clone(), membership::Column::Role)), Alias::new("m_role"))
        .expr_as(Expr::col((m.clone(), membership::Column::IsActive)), Alias::new("m_active"))
        .expr_as(Expr::col((m.clone(), membership::Column::JoinedAt)), Alias::new("m_joined"))
        .expr_as(Expr::col((o.clone(), organization::Column::Slug)), Alias::new("o_slug"))
        .expr_as(Expr::col((o.clone(), organization::Column::ExternalId)), Alias::new("o_ext"))
        .expr_as(Expr::col((o.clone(), organization::Column::Name)), Alias::new("o_name"))
        .expr_as(Expr::col((o.clone(), organization::Column::StorageBucket)), Alias::new("o_bucket"))
        .expr_as(Expr::col((o.clone(), organization::Column::CreatedAt)), Alias::new("o_created"))
        .expr_as(Expr::col((o.clone(), organization::Column::UpdatedAt)), Alias::new("o_updated"))
        .from_as(user::Entity, u.clone())
        .join_as(
            JoinType::LeftJoin,
            membership::Entity,
            m.clone(),
            Expr::col((m.clone(), membership::Column::UserId)).equals((u.clone(), user::Column::Id)),
        )
        .join_as(
            JoinType::LeftJoin,
            organization::Entity,
            o.clone(),
            Expr::col((o.clone(), organization::Column::Id)).equals((m.clone(), membership::Column::OrganizationId)),
        )
        .to_owned();
    let mut stmt = stmt;
    if let Some(email) = invited {
        let pending = Query::select()
            .expr(Expr::val(1))
            .from(invitation::Entity)
            .and_where(Expr::col(invitation::Column::EmailNormalized).eq(email))
            .and_where(Expr::col(invitation::Column::Status).eq(InvitationStatus::Pending.stored()))
            .and_where(Expr::col(invitation::Column::ExpiresAt).gt(Utc::now()))
            .to_owned();
        stmt.expr_as(Expr::exists(pending), Alias::new("pending_invitations"));
    }
    match key {
        Key::Identity(identity) => stmt
            .and_where(Expr::col((u.clone(), user::Column::Issuer)).eq(identity.issuer.as_str()))
            .and_where(Expr::col((u, user::Column::ExternalId)).eq(identity.subject.as_str())),
        Key::UserId(id) => stmt.and_where(Expr::col((u, user::Column::Id)).eq(id)),
    };
    found_from_rows(&db.query_all(&stmt).await?, invited.is_some())
}

/// A user with every membership from `load`'s columns (one row per membership, or one
/// without); `pending` says whether the rows carry `pending_invitations`.
fn found_from_rows(rows: &[QueryResult], pending: bool) -> AppResult<Option<Found>> {
    let Some(first) = rows.first() else { return Ok(None) };
    let user = user_from_row(first)?;
    let pending_invitations = pending && first.try_get::<bool>("", "pending_invitations")?;
    let mut memberships = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(m) = membership_from_row(r)? {
            memberships.push(m);
        }
    }
    Ok(Some(Found { user, memberships, pending_invitations }))
}

/// What [`Provisioner::sight`] found or did.
enum Sight {
    /// The user exists; their rows as `load` reads them.
    Existing(Found),
    /// The user was new and is written, with the organization if new and the membership.
    Created(Found),
    /// The user was new and nothing was written: the transaction path's case.
    Absent,
    /// Not PostgreSQL or no organization in the token: `load`, then the transaction.
    NotApplicable,
}

/// The user `identity` names and every membership, as provisioning would find them —
/// read only, nothing created or touched (the access doctor's view).
pub async fn existing(
    db: &impl ConnectionTrait,
    identity: &Identity,
) -> AppResult<Option<(UserRecord, Vec<MembershipRecord>)>> {
    Ok(load(db, Key::Identity(identity), None).await?.map(|f| (f.user, f.memberships)))
}

/// The viewer again, after a mutation changed their memberships: same user, fresh
/// memberships; the active organization stays if it is still active.
pub async fn reload_viewer(db: &impl ConnectionTrait, v: &Viewer) -> AppResult<Viewer> {
    let found = load(db, Key::UserId(v.user.id), None).await?.ok_or(AppError::not_found("user"))?;
    let mut next = Viewer {
        user: found.user,
        memberships: found.memberships,
        active_organization: None,
        platform_admin: v.platform_admin,
        email: v.email.clone(),
    };
    next.active_organization =
        v.active_organization.filter(|o| v.platform_admin || next.membership(*o).is_some_and(|m| m.is_active));
    Ok(next)
}

fn header_denied(reason: AccessReason, viewer_role: Option<Role>, org: Option<Uuid>) -> AppError {
    let rule = policy::rule(Action::ReadOrganization);
    AppError::forbidden(Decision {
        allowed: false,
        reason,
        action: Action::ReadOrganization,
        required_roles: rule.required_roles(),
        viewer_role,
        organization_id: org,
        policy: rule.name,
    })
}

fn membership_from_row(r: &QueryResult) -> AppResult<Option<MembershipRecord>> {
    if r.try_get::<Option<Uuid>>("", "m_id")?.is_none() {
        return Ok(None);
    }
    let organization = entity::organization::Model {
        id: r.try_get("", "m_org")?,
        external_id: r.try_get("", "o_ext")?,
        name: r.try_get("", "o_name")?,
        slug: r.try_get("", "o_slug")?,
        storage_bucket: r.try_get("", "o_bucket")?,
        created_at: r.try_get("", "o_created")?,
        updated_at: r.try_get("", "o_updated")?,
    };
    membership_record(r, ["m_id", "m_role", "m_active", "m_joined"], organization).map(Some)
}

/// A membership of `organization` from the columns `[id, role, is_active, joined_at]` of `r`.
fn membership_record(
    r: &QueryResult,
    [id, role, active, joined]: [&str; 4],
    organization: entity::organization::Model,
) -> AppResult<MembershipRecord> {
    let stored: String = r.try_get("", role)?;
    let role = <entity::MembershipRole as sea_orm::ActiveEnum>::try_from_value(&stored)
        .ok()
        .ok_or_else(|| AppError::internal(format!("unknown role `{stored}` in memberships")))?;
    Ok(MembershipRecord {
        id: r.try_get("", id)?,
        organization_id: organization.id,
        organization_slug: organization.slug.clone(),
        organization_external_id: organization.external_id.clone(),
        role,
        is_active: r.try_get("", active)?,
        joined_at: r.try_get("", joined)?,
        organization: Arc::new(organization),
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

/// A slug matching `^[a-z0-9](-?[a-z0-9])*$`, short enough to take a `-xxxx` suffix.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 56 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "org".to_owned() } else { out }
}

fn random_suffix() -> String {
    let n: u16 = rand::random();
    format!("{n:04x}")
}

/// Whether `s` is a valid slug (CONTRACT §5).
pub fn is_valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    b.iter().all(|c| alnum(*c) || *c == b'-') && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_and_bounded() {
        for s in ["Acme Corp", "  --Weird__Name!! ", "", "ÄÖÜ", &"x".repeat(200), "a-b", "tenant-03"] {
            let slug = slugify(s);
            assert!(is_valid_slug(&slug), "{s:?} -> {slug:?}");
            assert!(slug.len() <= 56);
            assert!(is_valid_slug(&format!("{slug}-beef")));
        }
        assert_eq!(slugify("Acme Corp"), "acme-corp");
    }

    #[test]
    fn slug_rule_matches_the_contract_regex() {
        for ok in ["a", "a1", "a-b", "abc-123-x", &"a".repeat(63)] {
            assert!(is_valid_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a b", &"a".repeat(64)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }
}
