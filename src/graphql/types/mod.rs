//! API types: what the schema shows of each row. Never entity Models with a derive
//! (that would skip field guards and couple the tables to the API).

pub mod access;
pub mod audit;
pub mod connection;
pub mod course;
pub mod embedded;
pub mod invitation;
pub mod membership;
pub mod organization;
pub mod role;
pub mod scalars;
pub mod track;
pub mod user;
pub mod viewer;

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// A row id as a GraphQL `ID`: the canonical lowercase hyphenated UUID.
pub fn id(u: Uuid) -> ID {
    ID(u.hyphenated().to_string())
}

/// Parses a GraphQL `ID` argument; a malformed one is BAD_USER_INPUT naming `field`.
pub fn parse_id(field: &str, id: &ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str().trim())
        .map_err(|_| AppError::bad_input(field, format!("`{field}` is not a valid ID (a UUID)")))
}
