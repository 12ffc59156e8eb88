//! The transactional path of provisioning: whatever the plan writes that the one-statement
//! first sight did not (or could not: SQLite, a token without an organization, a taken
//! slug, a race, a pending invitation, a role that follows the token), all or nothing.
//!
//! Every step is get-or-create with INSERT … ON CONFLICT DO NOTHING RETURNING, and a
//! SELECT on the unique key when the row was there already, so any number of concurrent
//! first requests, from any number of server processes, converge on exactly one row each.

use chrono::{DateTime, Utc};
use entity::{AuditAction, organization, user};
use sea_orm::{
    ConnectionTrait,
    sea_query::{Alias, Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::{
    Provisioner, apply_profile,
    load::{USER_COLUMNS, user_from_row},
    plan::new_organization,
    profile_changed,
};
use crate::{
    auth::{
        Identity,
        cache::{Change, Found},
        claims::OrgClaim,
        viewer::{MembershipRecord, UserRecord},
    },
    authz::roles::RoleGrants,
    config::RoleSource,
    db::WriteTxn,
    domain::{
        audit, invitations, membership,
        organization::{self as org_domain, NewOrganization, candidate_slugs},
        roles,
        user::{self as users, NewUser},
    },
    error::{AppError, AppResult},
};

impl Provisioner {
    /// Creates the user, organization and membership that are missing, and accepts the
    /// pending invitations addressed to `invited` (the verified email) — all or nothing.
    ///
    /// A true first sight (this transaction created the user, and with it every membership
    /// the user has) returns what it wrote, as the rows' RETURNING clauses read it back, so
    /// the caller need not load it again; anything else returns `None` and the caller loads.
    pub(super) async fn provision(
        &self,
        identity: &Identity,
        invited: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Found>> {
        let txn = crate::db::begin_write_queued(&self.conn, &self.write_lock).await?;
        let (user, created_user) = self.ensure_user(&txn, identity, now).await?;
        // What this request knows the user has: exact only while nothing but this
        // transaction can have given them a membership.
        let mut known = created_user.then(Vec::new);
        // Invitations first: an invited role wins over the token's for the same organization,
        // and an invitation brings a removed member back, which a token never does.
        if let Some(email) = invited {
            let pending = invitations::pending_for(&txn, email, now).await?;
            if !pending.is_empty() {
                known = None;
            }
            for inv in pending {
                if invitations::accept(&txn, &inv, user.id, now, "provisioning").await?.is_some() {
                    self.metrics.provisioned("membership");
                }
            }
        }
        if let Some(org) = &identity.organization {
            let (organization, catalogue) = self.ensure_org(&txn, org, now).await?;
            match self.ensure_membership(&txn, identity, user.id, organization, catalogue, now).await? {
                Some(m) => {
                    if let Some(k) = known.as_mut() {
                        k.push(m);
                    }
                }
                None => known = None,
            }
        }
        // Other processes may hold this user's context: let them drop it. Not a user this
        // transaction created: until it commits nobody can have loaded them. (Besides the
        // round trip, a NOTIFY serializes committing transactions in PostgreSQL.)
        if !created_user {
            crate::db::notes::send(&txn, Vec::new(), &crate::db::change_notes(&[Change::User(user.id)])).await?;
        }
        txn.commit().await?;
        if !created_user {
            self.cache.invalidate(Change::User(user.id));
        }
        Ok(known.map(|memberships| Found { user, memberships, pending_invitations: false }))
    }

    /// The user, inserted if new (or their changed profile refreshed): (row, created).
    async fn ensure_user(
        &self,
        txn: &WriteTxn,
        identity: &Identity,
        now: DateTime<Utc>,
    ) -> AppResult<(UserRecord, bool)> {
        let new = NewUser {
            id: Uuid::now_v7(),
            issuer: &identity.issuer,
            subject: &identity.subject,
            email: identity.email.as_deref(),
            name: identity.name.as_deref(),
            avatar_url: identity.picture.as_deref(),
            email_verified: identity.email_verified,
            last_login_at: Some(now),
            profile_data: Some(serde_json::json!({ "idp_roles": identity.idp_roles })),
            now,
        };
        // A row back: this transaction created the user. None: the user exists (another
        // request got here first), and the lookup on the unique key reads it.
        if let Some(row) = users::try_insert(txn, &new, &USER_COLUMNS).await? {
            let u = user_from_row(&row)?;
            self.metrics.provisioned("user");
            tracing::info!(target: "audit", event = "user.created", user_id = %u.id,
                issuer = %identity.issuer, subject = %identity.subject, "provisioned user");
            return Ok((u, true));
        }
        let row = users::find(txn, &identity.issuer, &identity.subject, &USER_COLUMNS)
            .await?
            .ok_or_else(|| AppError::internal("user row missing after insert-on-conflict"))?;
        let u = user_from_row(&row)?;
        if profile_changed(identity, &u) {
            let mut q = Query::update();
            q.table(user::Entity).and_where(Expr::col(user::Column::Id).eq(u.id));
            apply_profile(&mut q, identity, now);
            txn.execute(&q).await?;
            tracing::info!(target: "audit", event = "user.profile_refreshed", user_id = %u.id);
        }
        Ok((u, false))
    }

    /// The organization `org` names, created with a free slug if missing, with its own
    /// roles (read in the same SELECT; a new organization has none). Most first sights are
    /// of an organization that exists: one SELECT finds it.
    async fn ensure_org(
        &self,
        txn: &WriteTxn,
        org: &OrgClaim,
        now: DateTime<Utc>,
    ) -> AppResult<(organization::Model, Vec<RoleGrants>)> {
        let backend = txn.get_database_backend();
        let by_external_id = Query::select()
            .columns(org_domain::COLUMNS)
            .expr_as(Expr::cust(roles::catalogue_sql(backend, "organizations.id")), Alias::new("o_roles"))
            .from(organization::Entity)
            .and_where(Expr::col(organization::Column::ExternalId).eq(org.external_id.as_str()))
            .to_owned();
        let found = |row: &sea_orm::QueryResult| -> AppResult<_> {
            let catalogue = roles::decode_catalogue(row.try_get::<Option<String>>("", "o_roles")?.as_deref());
            Ok((org_domain::from_row(row)?, catalogue))
        };
        if let Some(row) = txn.query_one(&by_external_id).await? {
            return found(&row);
        }
        let (name, base) = new_organization(org);
        let new = NewOrganization { id: Uuid::now_v7(), external_id: Some(&org.external_id), name: &name, now };
        for slug in candidate_slugs(&base, false) {
            if let Some(created) = org_domain::try_insert(txn, &new, &slug).await? {
                self.metrics.provisioned("organization");
                tracing::info!(target: "audit", event = "organization.created", organization_id = %created.id,
                    external_id = %org.external_id, slug = %slug, "provisioned organization");
                return Ok((created, Vec::new()));
            }
            // The slug was taken — or someone else just created this organization.
            if let Some(row) = txn.query_one(&by_external_id).await? {
                return found(&row);
            }
        }
        Err(AppError::internal(format!("no free slug for organization {}", org.external_id)))
    }

    /// The membership in `organization` with the token's role, created if missing (with its
    /// audit event) and, in database mode, seeded with the custom roles the token's roles
    /// map to. Returns it when this transaction created it; `None` when it was there (then,
    /// with COURSEGRAPH_ROLE_SOURCE=token, an active one's role follows the token).
    async fn ensure_membership(
        &self,
        txn: &WriteTxn,
        identity: &Identity,
        user_id: Uuid,
        organization: organization::Model,
        catalogue: Vec<RoleGrants>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<MembershipRecord>> {
        let org_id = organization.id;
        let role = identity.role.unwrap_or(self.default_role);
        if let Some(m) = membership::insert(txn, user_id, org_id, role, now).await? {
            self.metrics.provisioned("membership");
            audit::record(
                txn,
                audit::Event::new(AuditAction::MembershipProvisioned, Some(org_id), Some(user_id))
                    .target("user", user_id)
                    .details(serde_json::json!({ "role": role.as_str(), "source": "token" })),
            )
            .await?;
            let keys = self.seed_roles(txn, identity, &m, &catalogue, now).await?;
            return Ok(Some(MembershipRecord::new(m.into(), organization, keys, catalogue, &self.policy)));
        }
        if self.role_source == RoleSource::Token
            && let Some(token_role) = identity.role
            && membership::follow_token_role(txn, user_id, org_id, token_role, now).await?
        {
            // The token is authoritative for the role, but never re-activates a removed member.
            tracing::info!(target: "audit", event = "membership.role_changed", user_id = %user_id,
                organization_id = %org_id, role = token_role.as_str(), source = "token", "role follows token");
        }
        Ok(None)
    }

    /// In database mode a new membership starts with the custom roles the token's roles
    /// map to (COURSEGRAPH_ROLE_MAP), as it starts with the mapped built-in role; keys that
    /// name no role of the organization or the policy file are skipped. Each assignment
    /// has its audit event.
    async fn seed_roles(
        &self,
        txn: &WriteTxn,
        identity: &Identity,
        m: &entity::membership::Model,
        catalogue: &[RoleGrants],
        now: DateTime<Utc>,
    ) -> AppResult<Vec<std::sync::Arc<str>>> {
        let mut keys = Vec::new();
        if self.role_source != RoleSource::Database {
            return Ok(keys);
        }
        for key in identity.custom_roles.iter().filter(|k| self.policy.grants_of(k, catalogue).is_some()) {
            if roles::assign(txn, m, key, now).await? {
                audit::record(
                    txn,
                    audit::Event::new(AuditAction::RoleAssigned, Some(m.organization_id), Some(m.user_id))
                        .target("membership", m.id)
                        .details(serde_json::json!({ "role": key, "source": "token" })),
                )
                .await?;
                keys.push(key.as_str().into());
            }
        }
        Ok(keys)
    }
}
