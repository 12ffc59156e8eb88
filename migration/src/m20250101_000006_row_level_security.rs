//! PostgreSQL row-level security behind the application's own tenant filters (defense in
//! depth): every tenant table has RLS enabled and FORCED, with policies on transaction-local
//! settings the server writes at the start of each request's transaction, and a non-owner
//! role `coursegraph_app` (no superuser, no BYPASSRLS) that requests run as when the server
//! is told to (`COURSEGRAPH_DB_ROLE`). SQLite has no RLS: nothing happens there.
//!
//! The settings (all `set_config(…, true)`, so they end with the transaction and never leak
//! to the next user of a pooled connection):
//! - `app.user_id`: the viewer's user id;
//! - `app.org_ids`: the organizations of the viewer's active memberships, comma-separated;
//! - `app.platform_admin`: `on` for a platform admin (ADMIN in every organization).
//!
//! Without settings a session sees and may write nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The application role. Roles are cluster-wide, so creating it tolerates a concurrent
/// creator (several databases on one server migrating at once).
const ROLE: &str = r#"
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'coursegraph_app') THEN
    BEGIN
      CREATE ROLE coursegraph_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
  -- The server switches to it per transaction (set_config('role', …)), which needs
  -- membership unless it connects as a superuser.
  IF NOT pg_has_role(current_user, 'coursegraph_app', 'MEMBER') THEN
    BEGIN
      EXECUTE format('GRANT coursegraph_app TO %I', current_user);
    EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL;
    END;
  END IF;
END
$$;
"#;

const UP: &str = r#"
GRANT USAGE ON SCHEMA public TO coursegraph_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, organizations, memberships, courses, tracks TO coursegraph_app;

CREATE FUNCTION app_user_id() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;
CREATE FUNCTION app_org_ids() RETURNS uuid[] LANGUAGE sql STABLE
  AS $$ SELECT coalesce(string_to_array(nullif(current_setting('app.org_ids', true), ''), ',')::uuid[], '{}') $$;
CREATE FUNCTION app_platform_admin() RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT coalesce(current_setting('app.platform_admin', true), '') = 'on' $$;
GRANT EXECUTE ON FUNCTION app_user_id(), app_org_ids(), app_platform_admin() TO coursegraph_app;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE courses ENABLE ROW LEVEL SECURITY;
ALTER TABLE courses FORCE ROW LEVEL SECURITY;
ALTER TABLE tracks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tracks FORCE ROW LEVEL SECURITY;

-- (SELECT f()) makes each setting an InitPlan: read once per statement, not per row.

-- Organizations: those the viewer is an active member of; read-only also those where
-- they hold an inactive membership (so "your membership is inactive" can be explained).
CREATE POLICY organizations_tenant ON organizations
  USING ((SELECT app_platform_admin()) OR id = ANY ((SELECT app_org_ids())::uuid[])
         OR id IN (SELECT m.organization_id FROM memberships m WHERE m.user_id = (SELECT app_user_id())))
  WITH CHECK ((SELECT app_platform_admin()) OR id = ANY ((SELECT app_org_ids())::uuid[]));

-- Memberships: those of the viewer's organizations, and the viewer's own anywhere.
CREATE POLICY memberships_tenant ON memberships
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[])
         OR user_id = (SELECT app_user_id()))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));

-- Users: the viewer, and the members of the viewer's organizations; only the viewer's own
-- row may be written.
CREATE POLICY users_tenant ON users
  USING ((SELECT app_platform_admin()) OR id = (SELECT app_user_id())
         OR id IN (SELECT m.user_id FROM memberships m WHERE m.organization_id = ANY ((SELECT app_org_ids())::uuid[])))
  WITH CHECK ((SELECT app_platform_admin()) OR id = (SELECT app_user_id()));

CREATE POLICY courses_tenant ON courses
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));

CREATE POLICY tracks_tenant ON tracks
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));
"#;

const DOWN: &str = r#"
DROP POLICY IF EXISTS tracks_tenant ON tracks;
DROP POLICY IF EXISTS courses_tenant ON courses;
DROP POLICY IF EXISTS users_tenant ON users;
DROP POLICY IF EXISTS memberships_tenant ON memberships;
DROP POLICY IF EXISTS organizations_tenant ON organizations;
ALTER TABLE tracks NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tracks DISABLE ROW LEVEL SECURITY;
ALTER TABLE courses NO FORCE ROW LEVEL SECURITY;
ALTER TABLE courses DISABLE ROW LEVEL SECURITY;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users DISABLE ROW LEVEL SECURITY;
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships DISABLE ROW LEVEL SECURITY;
ALTER TABLE organizations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE organizations DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS app_platform_admin();
DROP FUNCTION IF EXISTS app_org_ids();
DROP FUNCTION IF EXISTS app_user_id();
REVOKE ALL ON users, organizations, memberships, courses, tracks FROM coursegraph_app;
REVOKE ALL ON SCHEMA public FROM coursegraph_app;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(ROLE).await?;
        db.execute_unprepared(UP).await?;
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
