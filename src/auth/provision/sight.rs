//! First sight in one statement on PostgreSQL (`SIGHT`): the user as `load` reads them
//! when they exist; else — no invitation waiting for them — the organization if it is new,
//! the user, the membership and its audit event, inserted and read back in the one round
//! trip. One statement is atomic on its own.

use chrono::{DateTime, Utc};
use entity::AuditAction;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use super::{
    Provisioner,
    load::{found_from_rows, membership_from_row, user_from_row},
    plan::new_organization,
};
use crate::{
    auth::{Identity, cache::Found},
    config::RoleSource,
    domain::audit,
    error::{AppError, AppResult},
};

/// What [`Provisioner::sight`] found or did.
pub(super) enum Sight {
    /// The user exists; their rows as `load` reads them.
    Existing(Found),
    /// The user was new and is written, with the organization if new and the membership.
    Created(Found),
    /// The user was new and nothing was written: the transaction path's case.
    Absent,
    /// Not PostgreSQL or no organization in the token: `load`, then the transaction.
    NotApplicable,
}

impl Provisioner {
    /// A cache miss on PostgreSQL whose token names an organization, in one statement:
    /// the user as `load` reads them when they exist; else — no invitation waiting for
    /// them — the organization if it is new, the user, the membership and its audit event
    /// are inserted and read back, in the one round trip instead of a SELECT, a
    /// transaction of five to six statements and a reload. One statement is atomic on its
    /// own. A new user it could not create (the organization's slug is taken, a concurrent
    /// request created the organization or the user first, an invitation waits) inserts
    /// nothing and is [`Sight::Absent`]: [`Self::provision`] takes over.
    pub(super) async fn sight(
        &self,
        identity: &Identity,
        invited: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Sight> {
        let Some(org) = &identity.organization else { return Ok(Sight::NotApplicable) };
        if self.conn.get_database_backend() != DbBackend::Postgres {
            return Ok(Sight::NotApplicable);
        }
        // Custom roles a new membership is seeded with are the transaction's to assign.
        if self.role_source == RoleSource::Database && !identity.custom_roles.is_empty() {
            return Ok(Sight::NotApplicable);
        }
        let role = identity.role.unwrap_or(self.default_role);
        let stored_role = role.stored();
        let details = serde_json::json!({ "role": role.as_str(), "source": "token" });
        let (name, slug) = new_organization(org);
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
            let found = found_from_rows(&rows, true, &self.policy)?.ok_or_else(|| AppError::internal("no row"))?;
            return Ok(Sight::Existing(found));
        }
        let user = user_from_row(row)?;
        let membership = membership_from_row(row, &self.policy)?
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
        // As `audit::record` logs the event the statement inserted.
        tracing::info!(target: "audit", event = audit::log_event(AuditAction::MembershipProvisioned),
            action = AuditAction::MembershipProvisioned.as_str(),
            organization_id = %membership.organization_id, actor_id = %user.id, target_type = "user",
            target_id = %user.id, role = role.as_str(), source = "token", "audit event");
        Ok(Sight::Created(Found { user, memberships: vec![membership], pending_invitations: false }))
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
           o.storage_bucket AS o_bucket, o.created_at AS o_created, o.updated_at AS o_updated,
           (SELECT string_agg(mr.role_key, ',') FROM membership_roles mr WHERE mr.membership_id = m.id) AS m_roles,
           (SELECT json_agg(json_build_array(r.key, r.grants))::text FROM roles r WHERE r.organization_id = m.organization_id) AS o_roles
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
       o.storage_bucket, o.created_at, o.updated_at, NULL::text,
       (SELECT json_agg(json_build_array(r.key, r.grants))::text FROM roles r WHERE r.organization_id = o.id),
       false, false, EXISTS (SELECT 1 FROM created)
FROM u, m, o";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::roles;

    #[test]
    fn the_statement_reads_roles_as_the_viewer_statement_does() {
        let keys = roles::assigned_keys_sql(DbBackend::Postgres, "m.id");
        let catalogue = roles::catalogue_sql(DbBackend::Postgres, "m.organization_id");
        assert!(SIGHT.contains(&format!("{keys} AS m_roles")), "{keys}");
        assert!(SIGHT.contains(&format!("{catalogue} AS o_roles")), "{catalogue}");
        assert!(SIGHT.contains(&roles::catalogue_sql(DbBackend::Postgres, "o.id")));
    }
}
