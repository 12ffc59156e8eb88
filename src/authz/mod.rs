//! Authorization: the ordered organization roles and THE permission matrix (`policy`),
//! plus the thin adapters resolvers use to ask it (`guard`).

pub mod docs;
pub mod guard;
pub mod policy;
pub mod role;
pub mod scope;

pub use policy::{AccessReason, Action, Decision, Resource, Subject};
pub use role::Role;
