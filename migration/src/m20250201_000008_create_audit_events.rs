//! `audit_events`: the tenant audit log, newest first per organization.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{AuditEvents, Organizations, Users};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(pk_uuid(AuditEvents::Id))
                    .col(uuid_null(AuditEvents::OrganizationId))
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string_len(AuditEvents::Action, 32))
                    .col(uuid_null(AuditEvents::ActorId))
                    .col(string_len_null(AuditEvents::TargetType, 32))
                    .col(uuid_null(AuditEvents::TargetId))
                    .col(json_null(AuditEvents::Details))
                    // Rate-limited actions (ACCESS_DENIED, PLATFORM_ADMIN_ACCESS): what makes
                    // two events "the same" within the window.
                    .col(string_len_null(AuditEvents::DedupKey, 200))
                    .foreign_key(
                        ForeignKey::create()
                            .name("audit_events_organization_id_fkey")
                            .from(AuditEvents::Table, AuditEvents::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("audit_events_actor_id_fkey")
                            .from(AuditEvents::Table, AuditEvents::ActorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The organization_id foreign key's index, in the log's order (at, id: newest first
        // is a backward scan).
        manager
            .create_index(
                Index::create()
                    .name("audit_events_organization_id_idx")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrganizationId)
                    .col(AuditEvents::At)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        // The actor foreign key's index; it also finds an actor's recent events of one kind
        // (the rate limit).
        manager
            .create_index(
                Index::create()
                    .name("audit_events_actor_id_idx")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::ActorId)
                    .col(AuditEvents::DedupKey)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditEvents::Table).to_owned()).await
    }
}
