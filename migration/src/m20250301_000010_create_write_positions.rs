//! `write_positions`: how far the primary's WAL had reached when each viewer's last write
//! committed, so that any server process can tell whether the read replica has it yet.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{Users, WritePositions};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WritePositions::Table)
                    .col(pk_uuid(WritePositions::UserId))
                    // pg_current_wal_lsn() as a byte offset (PostgreSQL); never written on SQLite,
                    // which has no replicas.
                    .col(big_integer(WritePositions::Lsn))
                    .col(timestamp_with_time_zone(WritePositions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("write_positions_user_id_fkey")
                            .from(WritePositions::Table, WritePositions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WritePositions::Table).to_owned()).await
    }
}
