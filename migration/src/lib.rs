//! Schema migrations, one concern per file; the same files run on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_users;
mod m20250101_000002_create_organizations;
mod m20250101_000003_create_memberships;
mod m20250101_000004_create_courses;
mod m20250101_000005_create_tracks;
mod m20250101_000006_row_level_security;
mod m20250201_000007_create_invitations;
mod m20250201_000008_create_audit_events;
mod m20250201_000009_rls_invitations_audit;
mod m20250301_000010_create_write_positions;
mod m20251201_000011_create_roles;
mod m20251207_000012_tracks_now;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_users::Migration),
            Box::new(m20250101_000002_create_organizations::Migration),
            Box::new(m20250101_000003_create_memberships::Migration),
            Box::new(m20250101_000004_create_courses::Migration),
            Box::new(m20250101_000005_create_tracks::Migration),
            Box::new(m20250101_000006_row_level_security::Migration),
            Box::new(m20250201_000007_create_invitations::Migration),
            Box::new(m20250201_000008_create_audit_events::Migration),
            Box::new(m20250201_000009_rls_invitations_audit::Migration),
            Box::new(m20250301_000010_create_write_positions::Migration),
            Box::new(m20251201_000011_create_roles::Migration),
            Box::new(m20251207_000012_tracks_now::Migration),
        ]
    }
}

/// Table and column names shared by the migrations.
#[derive(DeriveIden)]
pub(crate) enum Users {
    Table,
    Id,
    Issuer,
    ExternalId,
    Email,
    Name,
    AvatarUrl,
    EmailVerified,
    LastLoginAt,
    ProfileData,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Organizations {
    Table,
    Id,
    ExternalId,
    Name,
    Slug,
    StorageBucket,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Memberships {
    Table,
    Id,
    UserId,
    OrganizationId,
    Role,
    IsActive,
    JoinedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Courses {
    Table,
    Id,
    OrganizationId,
    InstructorId,
    Title,
    Description,
    Category,
    DifficultyLevel,
    EstimatedDuration,
    DurationUnit,
    Price,
    IsPublished,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Tracks {
    Table,
    Id,
    OrganizationId,
    CourseId,
    Name,
    Description,
    Position,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Invitations {
    Table,
    Id,
    OrganizationId,
    Email,
    EmailNormalized,
    Role,
    Status,
    InvitedBy,
    AcceptedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum AuditEvents {
    Table,
    Id,
    OrganizationId,
    At,
    Action,
    ActorId,
    TargetType,
    TargetId,
    Details,
    DedupKey,
}

#[derive(DeriveIden)]
pub(crate) enum WritePositions {
    Table,
    UserId,
    Lsn,
    UpdatedAt,
}
