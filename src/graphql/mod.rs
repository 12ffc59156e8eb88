//! The GraphQL layer: schema, context accessors, API types, resolvers and loaders.

pub mod context;
pub mod input;
pub mod limits;
pub mod loaders;
pub mod lookup;
pub mod mutation;
pub mod query;
pub mod schema;
pub mod subscription;
pub mod types;
pub mod validate;
pub mod visibility;

pub use context::{ContextExt, RequestContext};
pub use schema::{AppSchema, build_schema};
