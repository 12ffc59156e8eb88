//! Roles as data: `roles` (an organization's own roles, each a named set of grants) and
//! `membership_roles` (the custom or policy-file roles assigned to a membership, by key:
//! a policy-file role has no row, and a key that has left the file grants nothing).
//! On PostgreSQL both are under row-level security like every tenant table, and drafts
//! become visible by grants, not by tenancy alone: the viewer's transaction names the
//! organizations whose drafts it reads (`app.draft_org_ids`) and those where only the
//! drafts of the courses it teaches (`app.own_draft_org_ids`), and the policies on
//! `courses` and `tracks` hold every other draft back.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{Memberships, Organizations};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Roles {
    Table,
    Id,
    OrganizationId,
    Key,
    Name,
    Description,
    Grants,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum MembershipRoles {
    Table,
    MembershipId,
    OrganizationId,
    RoleKey,
    CreatedAt,
}

const RLS_UP: &str = r#"
GRANT SELECT, INSERT, UPDATE, DELETE ON roles, membership_roles TO coursegraph_app;

CREATE FUNCTION app_draft_org_ids() RETURNS uuid[] LANGUAGE sql STABLE
  AS $$ SELECT coalesce(string_to_array(nullif(current_setting('app.draft_org_ids', true), ''), ',')::uuid[], '{}') $$;
CREATE FUNCTION app_own_draft_org_ids() RETURNS uuid[] LANGUAGE sql STABLE
  AS $$ SELECT coalesce(string_to_array(nullif(current_setting('app.own_draft_org_ids', true), ''), ',')::uuid[], '{}') $$;
GRANT EXECUTE ON FUNCTION app_draft_org_ids(), app_own_draft_org_ids() TO coursegraph_app;

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
ALTER TABLE membership_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE membership_roles FORCE ROW LEVEL SECURITY;

CREATE POLICY roles_tenant ON roles
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));

-- Assignments: those of the viewer's organizations, and the viewer's own anywhere.
CREATE POLICY membership_roles_tenant ON membership_roles
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[])
         OR membership_id IN (SELECT m.id FROM memberships m WHERE m.user_id = (SELECT app_user_id())))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));

-- Reading a course needs its organization, and for a draft READ_DRAFT_COURSE there (or,
-- at OWN scope, teaching it). Writing stays a tenancy question: the application decides
-- who may write what, and a draft written stays the writer's to read only by the rule above.
DROP POLICY courses_tenant ON courses;
CREATE POLICY courses_tenant ON courses
  USING ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]))
  WITH CHECK ((SELECT app_platform_admin()) OR organization_id = ANY ((SELECT app_org_ids())::uuid[]));
CREATE POLICY courses_drafts ON courses AS RESTRICTIVE FOR SELECT
  USING ((SELECT app_platform_admin()) OR is_published
         OR organization_id = ANY ((SELECT app_draft_org_ids())::uuid[])
         OR (organization_id = ANY ((SELECT app_own_draft_org_ids())::uuid[]) AND instructor_id = (SELECT app_user_id())));

-- A track is readable exactly when its course is (the subquery is itself under the
-- courses policies).
CREATE POLICY tracks_drafts ON tracks AS RESTRICTIVE FOR SELECT
  USING ((SELECT app_platform_admin()) OR EXISTS (SELECT 1 FROM courses c WHERE c.id = tracks.course_id));
"#;

const RLS_DOWN: &str = r#"
DROP POLICY IF EXISTS tracks_drafts ON tracks;
DROP POLICY IF EXISTS courses_drafts ON courses;
DROP POLICY IF EXISTS membership_roles_tenant ON membership_roles;
DROP POLICY IF EXISTS roles_tenant ON roles;
DROP FUNCTION IF EXISTS app_own_draft_org_ids();
DROP FUNCTION IF EXISTS app_draft_org_ids();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(pk_uuid(Roles::Id))
                    .col(uuid(Roles::OrganizationId))
                    .col(string_len(Roles::Key, 63))
                    .col(string_len(Roles::Name, 500))
                    .col(text_null(Roles::Description))
                    // The grants as a JSON array of their spellings: ["READ_COURSE", "MANAGE_TRACKS:OWN"].
                    .col(text(Roles::Grants))
                    .col(timestamp_with_time_zone(Roles::CreatedAt))
                    .col(timestamp_with_time_zone(Roles::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("roles_organization_id_fkey")
                            .from(Roles::Table, Roles::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Keys are lower-case by their syntax: one index keeps them unique, ignoring case.
        manager
            .create_index(
                Index::create()
                    .name("roles_organization_key")
                    .table(Roles::Table)
                    .col(Roles::OrganizationId)
                    .col(Roles::Key)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MembershipRoles::Table)
                    .col(uuid(MembershipRoles::MembershipId))
                    .col(uuid(MembershipRoles::OrganizationId))
                    .col(string_len(MembershipRoles::RoleKey, 63))
                    .col(timestamp_with_time_zone(MembershipRoles::CreatedAt))
                    .primary_key(Index::create().col(MembershipRoles::MembershipId).col(MembershipRoles::RoleKey))
                    .foreign_key(
                        ForeignKey::create()
                            .name("membership_roles_membership_id_fkey")
                            .from(MembershipRoles::Table, MembershipRoles::MembershipId)
                            .to(Memberships::Table, Memberships::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("membership_roles_organization_id_fkey")
                            .from(MembershipRoles::Table, MembershipRoles::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Who holds a role (deleteRole, updateRole, whoCan).
        manager
            .create_index(
                Index::create()
                    .name("membership_roles_organization_key")
                    .table(MembershipRoles::Table)
                    .col(MembershipRoles::OrganizationId)
                    .col(MembershipRoles::RoleKey)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager.get_connection().execute_unprepared(RLS_UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager.get_connection().execute_unprepared(RLS_DOWN).await?;
        }
        manager.drop_table(Table::drop().table(MembershipRoles::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Roles::Table).to_owned()).await?;
        Ok(())
    }
}
