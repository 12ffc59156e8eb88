//! `invitations`: an ADMIN's offer of a role in an organization to an email address.
//!
//! `status` is stored as written (pending, accepted, revoked, expired); a pending row past
//! `expires_at` is EXPIRED to every reader, and is written as `expired` lazily, when the
//! same address is invited again.

use sea_orm::entity::prelude::*;

use crate::{InvitationStatus, MembershipRole};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// As the inviting ADMIN wrote it (trimmed).
    pub email: String,
    /// Lower-cased: what acceptance and the uniqueness of pending invitations compare.
    pub email_normalized: String,
    pub role: MembershipRole,
    pub status: InvitationStatus,
    pub invited_by: Option<Uuid>,
    pub accepted_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// The status a reader sees at `now`: a pending invitation past its expiry is EXPIRED.
    pub fn status_at(&self, now: DateTimeUtc) -> InvitationStatus {
        match self.status {
            InvitationStatus::Pending if self.expires_at <= now => InvitationStatus::Expired,
            s => s,
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrganizationId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
