//! Row-level security for `invitations` and `audit_events` (PostgreSQL), like the other
//! tenant tables, plus what an invitee may see before they are a member.
//!
//! A new setting, `app.email` (the token's email, lower-cased) with `app.email_verified`,
//! lets an invitee read invitations addressed to them — and the name of the organization
//! inviting them — and accept one only with a verified address. The audit log is
//! append-only for the application role: it may read its organizations' events and
//! insert events it is the actor of (or of its organizations), never update or delete.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
GRANT SELECT, INSERT, UPDATE ON invitations TO coursegraph_app;
GRANT SELECT, INSERT ON audit_events TO coursegraph_app;

CREATE FUNCTION app_email() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('app.email', true), '') $$;
CREATE FUNCTION app_email_verified() RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT coalesce(current_setting('app.email_verified', true), '') = 'on' $$;
GRANT EXECUTE ON FUNCTION app_email(), app_email_verified() TO coursegraph_app;

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;

-- Invitations: the organization's (its members manage them), and those addressed to the
-- viewer's email; only a verified address may write the latter (acceptance).
CREATE POLICY invitations_tenant ON invitations
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[])
         OR email_normalized = (SELECT app_email()))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[])
         OR (email_normalized = (SELECT app_email()) AND (SELECT app_email_verified())));

CREATE POLICY audit_events_read ON audit_events FOR SELECT
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));
CREATE POLICY audit_events_append ON audit_events FOR INSERT
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[])
         OR actor_id = (SELECT app_user_id()));

-- Organizations: also those with a pending invitation to the viewer's email (read-only).
DROP POLICY organizations_tenant ON organizations;
CREATE POLICY organizations_tenant ON organizations
  USING ((SELECT app_platform_admin()) OR id = ANY ((SELECT app_org_ids())::uuid[])
         OR id IN (SELECT m.organization_id FROM memberships m WHERE m.user_id = (SELECT app_user_id()))
         OR id IN (SELECT i.organization_id FROM invitations i
                   WHERE i.email_normalized = (SELECT app_email()) AND i.status = 'pending'))
  WITH CHECK ((SELECT app_platform_admin()) OR id = ANY ((SELECT app_org_ids())::uuid[]));
"#;

const DOWN: &str = r#"
DROP POLICY IF EXISTS organizations_tenant ON organizations;
CREATE POLICY organizations_tenant ON organizations
  USING ((SELECT app_platform_admin()) OR id = ANY ((SELECT app_org_ids())::uuid[])
         OR id IN (SELECT m.organization_id FROM memberships m WHERE m.user_id = (SELECT app_user_id())))
  WITH CHECK ((SELECT app_platform_admin()) OR id = ANY ((SELECT app_org_ids())::uuid[]));
DROP POLICY IF EXISTS audit_events_append ON audit_events;
DROP POLICY IF EXISTS audit_events_read ON audit_events;
DROP POLICY IF EXISTS invitations_tenant ON invitations;
ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events DISABLE ROW LEVEL SECURITY;
ALTER TABLE invitations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE invitations DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS app_email_verified();
DROP FUNCTION IF EXISTS app_email();
REVOKE ALL ON invitations, audit_events FROM coursegraph_app;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
