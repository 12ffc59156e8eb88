//! `invitations`: at most one pending invitation per (organization, address), enforced by a
//! partial unique index so two ADMINs inviting the same person at once get one row.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{Invitations, Organizations, Users};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .col(pk_uuid(Invitations::Id))
                    .col(uuid(Invitations::OrganizationId))
                    .col(string_len(Invitations::Email, 320))
                    .col(string_len(Invitations::EmailNormalized, 320))
                    .col(string_len(Invitations::Role, 16).check(Expr::col(Invitations::Role).is_in([
                        "admin",
                        "instructor",
                        "member",
                        "viewer",
                    ])))
                    .col(
                        string_len(Invitations::Status, 16)
                            .check(Expr::col(Invitations::Status).is_in(["pending", "accepted", "revoked", "expired"])),
                    )
                    .col(uuid_null(Invitations::InvitedBy))
                    .col(uuid_null(Invitations::AcceptedBy))
                    .col(timestamp_with_time_zone(Invitations::CreatedAt))
                    .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                    .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                    .col(timestamp_with_time_zone(Invitations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("invitations_organization_id_fkey")
                            .from(Invitations::Table, Invitations::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("invitations_invited_by_fkey")
                            .from(Invitations::Table, Invitations::InvitedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("invitations_accepted_by_fkey")
                            .from(Invitations::Table, Invitations::AcceptedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The organization_id foreign key's index, in the list's order (newest first).
        manager
            .create_index(
                Index::create()
                    .name("invitations_organization_id_idx")
                    .table(Invitations::Table)
                    .col(Invitations::OrganizationId)
                    .col(Invitations::CreatedAt)
                    .col(Invitations::Id)
                    .to_owned(),
            )
            .await?;
        // Provisioning looks up the pending invitations of a verified address.
        manager
            .create_index(
                Index::create()
                    .name("invitations_email_normalized_idx")
                    .table(Invitations::Table)
                    .col(Invitations::EmailNormalized)
                    .col(Invitations::Status)
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("invitations_invited_by_idx", Invitations::InvitedBy),
            ("invitations_accepted_by_idx", Invitations::AcceptedBy),
        ] {
            manager.create_index(Index::create().name(name).table(Invitations::Table).col(col).to_owned()).await?;
        }
        // Partial indexes are the same SQL on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX invitations_one_pending_key ON invitations (organization_id, email_normalized) \
                 WHERE status = 'pending'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Invitations::Table).to_owned()).await
    }
}
