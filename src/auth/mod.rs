//! Authentication: verify the bearer token, map its claims to an identity, provision the
//! user/organization/membership, and build the viewer the request runs as.

pub mod active_org;
pub mod cache;
pub mod claims;
pub mod jwks;
pub mod jwt;
pub mod provision;
pub mod sign_in;
pub mod validate;
pub mod viewer;

pub use claims::Identity;
pub use jwt::{AuthError, AuthReason, Verifier};
pub use viewer::Viewer;
