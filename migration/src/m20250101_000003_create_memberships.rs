//! `memberships`: one row per (user, organization); removal flips `is_active`, never deletes.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{Memberships, Organizations, Users};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(pk_uuid(Memberships::Id))
                    .col(uuid(Memberships::UserId))
                    .col(uuid(Memberships::OrganizationId))
                    .col(string_len(Memberships::Role, 16).check(Expr::col(Memberships::Role).is_in([
                        "admin",
                        "instructor",
                        "member",
                        "viewer",
                    ])))
                    .col(boolean(Memberships::IsActive).default(true))
                    .col(timestamp_with_time_zone(Memberships::JoinedAt))
                    .col(timestamp_with_time_zone(Memberships::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("memberships_user_id_fkey")
                            .from(Memberships::Table, Memberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("memberships_organization_id_fkey")
                            .from(Memberships::Table, Memberships::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Leads with user_id, so it is also the index of the user_id foreign key.
        manager
            .create_index(
                Index::create()
                    .name("memberships_user_id_organization_id_key")
                    .table(Memberships::Table)
                    .col(Memberships::UserId)
                    .col(Memberships::OrganizationId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The organization_id foreign key's index, in the member list's order
        // (joined_at, id) so that keyset pages are an index range scan.
        manager
            .create_index(
                Index::create()
                    .name("memberships_organization_id_idx")
                    .table(Memberships::Table)
                    .col(Memberships::OrganizationId)
                    .col(Memberships::JoinedAt)
                    .col(Memberships::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Memberships::Table).to_owned()).await
    }
}
