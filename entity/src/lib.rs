//! SeaORM entities for the coursegraph tables and the enums stored in them.
//!
//! These are storage types only: the GraphQL layer maps them to its own API types
//! so that a column added here never leaks into the schema by accident.

pub mod audit_event;
pub mod course;
pub mod enums;
pub mod invitation;
pub mod membership;
pub mod membership_role;
pub mod organization;
pub mod role;
pub mod track;
pub mod user;

pub use enums::{AuditAction, Difficulty, InvitationStatus, MembershipRole, from_graphql_name, graphql_name};

/// `use entity::prelude::*` brings every entity in under a short name.
pub mod prelude {
    pub use super::audit_event::Entity as AuditEvent;
    pub use super::course::Entity as Course;
    pub use super::invitation::Entity as Invitation;
    pub use super::membership::Entity as Membership;
    pub use super::membership_role::Entity as RoleAssignment;
    pub use super::organization::Entity as Organization;
    pub use super::role::Entity as CustomRole;
    pub use super::track::Entity as Track;
    pub use super::user::Entity as User;
}
