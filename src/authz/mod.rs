//! Authorization: the ordered organization roles and THE permission matrix (`policy`),
//! plus the thin adapters resolvers use to ask it (`guard`).

pub mod docs;
pub mod fields;
pub mod guard;
pub mod policy;
pub mod scope;

/// The built-in organization roles: the stored enum itself (one spelling, see `entity`).
pub use entity::MembershipRole as Role;
pub use policy::{AccessReason, Action, Decision, Resource, Subject};
