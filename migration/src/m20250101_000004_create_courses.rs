//! `courses`: cascade with their organization; an instructor's deletion only clears `instructor_id`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{Courses, Organizations, Users};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Courses::Table)
                    .col(pk_uuid(Courses::Id))
                    .col(uuid(Courses::OrganizationId))
                    .col(uuid_null(Courses::InstructorId))
                    .col(string_len(Courses::Title, 500))
                    .col(text_null(Courses::Description))
                    .col(string_len_null(Courses::Category, 500))
                    .col(string_len(Courses::DifficultyLevel, 16).check(Expr::col(Courses::DifficultyLevel).is_in([
                        "beginner",
                        "intermediate",
                        "advanced",
                    ])))
                    .col(double_null(Courses::EstimatedDuration))
                    .col(string_len_null(Courses::DurationUnit, 32))
                    .col(decimal_len(Courses::Price, 10, 2).default(0))
                    .col(boolean(Courses::IsPublished).default(false))
                    .col(json_null(Courses::Metadata))
                    .col(timestamp_with_time_zone(Courses::CreatedAt))
                    .col(timestamp_with_time_zone(Courses::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("courses_organization_id_fkey")
                            .from(Courses::Table, Courses::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("courses_instructor_id_fkey")
                            .from(Courses::Table, Courses::InstructorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The organization_id foreign key's index, in the API's course order
        // (title, id) so that a page of courses is an index range scan.
        manager
            .create_index(
                Index::create()
                    .name("courses_organization_id_idx")
                    .table(Courses::Table)
                    .col(Courses::OrganizationId)
                    .col(Courses::Title)
                    .col(Courses::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("courses_instructor_id_idx")
                    .table(Courses::Table)
                    .col(Courses::InstructorId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Courses::Table).to_owned()).await
    }
}
