//! `app_tracks_now(course)`: a course's tracks as committed when the function runs, not
//! when the calling statement began (PostgreSQL only). A write to a course's tracks locks
//! the course (`FOR UPDATE`) and reads its tracks in one statement; at READ COMMITTED a
//! statement that waited for the lock still sees its tracks as of its start, which misses
//! what the writer it waited for committed. A VOLATILE function takes a fresh snapshot for
//! each query it runs, after the lock is held. SECURITY INVOKER (the default): row-level
//! security applies to the caller as everywhere else.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE FUNCTION app_tracks_now(course uuid) RETURNS SETOF tracks LANGUAGE sql VOLATILE
  AS $$ SELECT * FROM tracks WHERE course_id = course $$;
GRANT EXECUTE ON FUNCTION app_tracks_now(uuid) TO coursegraph_app;
"#;

const DOWN: &str = "DROP FUNCTION IF EXISTS app_tracks_now(uuid);";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager.get_connection().execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager.get_connection().execute_unprepared(DOWN).await?;
        }
        Ok(())
    }
}
