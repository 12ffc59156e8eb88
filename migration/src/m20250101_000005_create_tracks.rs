//! `tracks`: cascade with their course and organization; ordered by `position` within a course.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{Courses, Organizations, Tracks};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tracks::Table)
                    .col(pk_uuid(Tracks::Id))
                    .col(uuid(Tracks::OrganizationId))
                    .col(uuid(Tracks::CourseId))
                    .col(string_len(Tracks::Name, 500))
                    .col(text_null(Tracks::Description))
                    .col(integer(Tracks::Position).check(Expr::col(Tracks::Position).gte(0)))
                    .col(timestamp_with_time_zone(Tracks::CreatedAt))
                    .col(timestamp_with_time_zone(Tracks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("tracks_organization_id_fkey")
                            .from(Tracks::Table, Tracks::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("tracks_course_id_fkey")
                            .from(Tracks::Table, Tracks::CourseId)
                            .to(Courses::Table, Courses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tracks_organization_id_idx")
                    .table(Tracks::Table)
                    .col(Tracks::OrganizationId)
                    .to_owned(),
            )
            .await?;
        // The course_id foreign key's index, in track order.
        manager
            .create_index(
                Index::create()
                    .name("tracks_course_id_idx")
                    .table(Tracks::Table)
                    .col(Tracks::CourseId)
                    .col(Tracks::Position)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Tracks::Table).to_owned()).await
    }
}
