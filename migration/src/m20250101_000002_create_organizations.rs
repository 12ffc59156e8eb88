//! `organizations`: unique slug, and a unique (nullable) identity-provider tenant id.

use sea_orm_migration::{prelude::*, schema::*};

use crate::Organizations;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(pk_uuid(Organizations::Id))
                    .col(string_len_null(Organizations::ExternalId, 512))
                    .col(string_len(Organizations::Name, 500))
                    .col(string_len(Organizations::Slug, 63))
                    .col(string_len(Organizations::StorageBucket, 80))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .col(timestamp_with_time_zone(Organizations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Both are plain unique indexes: NULL external ids (organizations created
        // through the API) never collide on either database.
        manager
            .create_index(
                Index::create()
                    .name("organizations_external_id_key")
                    .table(Organizations::Table)
                    .col(Organizations::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("organizations_slug_key")
                    .table(Organizations::Table)
                    .col(Organizations::Slug)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Organizations::Table).to_owned()).await
    }
}
