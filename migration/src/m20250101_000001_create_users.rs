//! `users`, unique by (issuer, external_id): the same `sub` from two issuers is two people.

use sea_orm_migration::{prelude::*, schema::*};

use crate::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string_len(Users::Issuer, 512))
                    .col(string_len(Users::ExternalId, 512))
                    .col(string_len_null(Users::Email, 512))
                    .col(string_len_null(Users::Name, 512))
                    .col(string_len_null(Users::AvatarUrl, 2048))
                    .col(boolean(Users::EmailVerified).default(false))
                    .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                    .col(json_null(Users::ProfileData))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The provisioning hot path looks users up by this key on every request.
        manager
            .create_index(
                Index::create()
                    .name("users_issuer_external_id_key")
                    .table(Users::Table)
                    .col(Users::Issuer)
                    .col(Users::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}
