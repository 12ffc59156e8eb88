//! The domain's writes, each with its one home: users (their insert by identity),
//! organizations (slugs), memberships (their one writer and its invariants), custom roles
//! and their assignments, invitations, the audit log, and the unit of work every mutation
//! commits through.

pub mod audit;
pub mod invitations;
pub mod membership;
pub mod organization;
pub mod roles;
pub mod user;
pub mod write;
