//! Authorization: grants (an action at a scope), roles as named sets of them (`roles`,
//! the policy file in `policy_file`), the policy that decides by them (`policy`, every
//! field's rule in `fields`), the SQL scopes derived from it (`scope`), and the thin
//! adapters resolvers use to ask it (`guard`).

pub mod docs;
pub mod fields;
pub mod grants;
pub mod guard;
pub mod policy;
pub mod policy_file;
pub mod roles;
pub mod scope;

/// The built-in organization roles: the stored enum itself (one spelling, see `entity`).
pub use entity::MembershipRole as Role;
pub use policy::{AccessReason, Action, Decision, Resource, Subject};
