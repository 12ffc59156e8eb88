//! `build_schema()`: the one schema the server, the `schema` command and the tests share.

use async_graphql::Schema;

use super::{limits::ComplexityProbe, mutation::Mutation, query::Query, subscription::Subscription};
use crate::config::{InvitationConfig, Limits};

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Options that change how the schema executes (not its shape).
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    pub introspection: bool,
    /// "Did you mean …?" hints in validation errors (off in production: they map the schema).
    pub suggestions: bool,
    pub limits: Limits,
    pub settings: Settings,
}

/// Server-wide settings resolvers read (through `ContextExt::settings`): the same for
/// every request, so they live in the schema's data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub invitations: InvitationConfig,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self { introspection: true, suggestions: true, limits: Limits::default(), settings: Settings::default() }
    }
}

pub fn build_schema(opts: &SchemaOptions) -> AppSchema {
    // Tokens, aliases, directives and depth are checked before execution by
    // `limits::Preflight`; complexity, which needs the schema, by async-graphql itself.
    let mut b = Schema::build(Query, Mutation::default(), Subscription)
        .limit_complexity(opts.limits.max_complexity)
        .data(opts.settings);
    if !opts.introspection {
        b = b.disable_introspection();
    }
    if !opts.suggestions {
        b = b.disable_suggestions();
    }
    b.finish()
}

/// The SDL `coursegraph schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    build_schema(&SchemaOptions::default()).sdl()
}

/// The same schema without a complexity limit, reporting each document's complexity:
/// used only to tell a client whose document was refused how complex it was.
pub fn build_probe_schema() -> AppSchema {
    Schema::build(Query, Mutation::default(), Subscription).extension(ComplexityProbe).finish()
}
