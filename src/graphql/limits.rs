//! Abuse limits, checked before execution: lexical tokens (counted before parsing),
//! aliases, directives per field and selection depth on the parsed document, and
//! complexity by async-graphql's validation. Every refusal is QUERY_TOO_COMPLEX with
//! `limit`, `actual` and `kind`. The same pass refuses input no database can store
//! ([`super::input`]).
//!
//! This runs in the HTTP layer rather than as an async-graphql extension: any extension
//! puts a boxed hook around every resolved field, which measurably slows large responses
//! (BENCHMARKS.md). Parsed documents are cached by their text for the same reason.

use std::{
    collections::HashSet,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::{
    ErrorExtensionValues, Request, ServerError, ValidationResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation},
    parser::types::{
        DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
    },
};
use lru::LruCache;

use crate::{config::Limits, error::AppError};

/// Introspection selects through the cyclic type graph (`ofType { ofType … }`), so it has
/// a depth limit of its own: deep enough for every client's standard introspection query.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

/// async-graphql's message when `limit_complexity` refuses a document.
pub const TOO_COMPLEX_MESSAGE: &str = "Query is too complex.";

/// Only documents up to this size are kept parsed.
const MAX_CACHED_QUERY: usize = 16 * 1024;

pub fn too_complex(what: &'static str, limit: usize, actual: usize) -> ServerError {
    to_server_error(AppError::TooComplex { what, limit, actual })
}

fn to_server_error(e: AppError) -> ServerError {
    let mut err = ServerError::new(e.message(), None);
    let mut ext = ErrorExtensionValues::default();
    e.write_extensions(&mut ext);
    err.extensions = Some(ext);
    err
}

/// Parses (or finds the parse of) each request's document and enforces the limits that
/// need no schema. Shared by all requests.
pub struct Preflight {
    limits: Limits,
    parsed: Mutex<LruCache<String, Arc<ExecutableDocument>>>,
}

impl Preflight {
    pub fn new(limits: Limits) -> Self {
        Self { limits, parsed: Mutex::new(LruCache::new(NonZeroUsize::new(1000).expect("non-zero"))) }
    }

    /// Attaches the parsed document to `req` and returns the type of the operation it will
    /// run (none when the operation name matches nothing), or explains why it will not run.
    pub fn check(&self, req: &mut Request) -> Result<Option<OperationType>, ServerError> {
        let hit = self.parsed.lock().unwrap_or_else(|e| e.into_inner()).get(&req.query).cloned();
        if let Some(doc) = hit {
            super::input::refuse_nul(&req.query, &doc, req.operation_name.as_deref(), &req.variables)
                .map_err(to_server_error)?;
            let ty = operation_type(&doc, req.operation_name.as_deref());
            req.set_parsed_query(doc.as_ref().clone());
            return Ok(ty);
        }
        let l = &self.limits;
        let tokens = count_tokens(&req.query, l.max_tokens);
        if tokens > l.max_tokens {
            return Err(too_complex("tokens", l.max_tokens, tokens));
        }
        let doc = async_graphql::parser::parse_query(&req.query).map_err(|e| {
            let mut err: ServerError = e.into();
            err.extensions.get_or_insert_with(Default::default).set("code", "GRAPHQL_PARSE_FAILED");
            err
        })?;
        let stats = Stats::of(&doc);
        if stats.aliases > l.max_aliases {
            return Err(too_complex("aliases", l.max_aliases, stats.aliases));
        }
        if stats.max_directives > l.max_directives {
            return Err(too_complex("directives", l.max_directives, stats.max_directives));
        }
        let max_depth = if stats.introspection_only { l.max_depth.max(INTROSPECTION_MAX_DEPTH) } else { l.max_depth };
        if stats.depth > max_depth {
            return Err(too_complex("depth", max_depth, stats.depth));
        }
        if req.query.len() <= MAX_CACHED_QUERY {
            self.parsed.lock().unwrap_or_else(|e| e.into_inner()).put(req.query.clone(), Arc::new(doc.clone()));
        }
        super::input::refuse_nul(&req.query, &doc, req.operation_name.as_deref(), &req.variables)
            .map_err(to_server_error)?;
        let ty = operation_type(&doc, req.operation_name.as_deref());
        req.set_parsed_query(doc);
        Ok(ty)
    }
}

/// The type of the operation `name` selects (the only one when there is no name).
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Stats {
    aliases: usize,
    max_directives: usize,
    /// Fields nested within fields, fragments inlined (as async-graphql counts it).
    depth: usize,
    /// Every operation selects only `__schema`, `__type` or `__typename`.
    introspection_only: bool,
}

impl Stats {
    fn of(doc: &ExecutableDocument) -> Self {
        let mut s = Stats { introspection_only: true, ..Default::default() };
        for (_, op) in doc.operations.iter() {
            let set = &op.node.selection_set.node;
            s.introspection_only &= set.items.iter().all(|i| match &i.node {
                Selection::Field(f) => f.node.name.node.starts_with("__"),
                _ => false,
            });
            s.walk(set);
            let mut visiting = HashSet::new();
            s.depth = s.depth.max(depth(set, &doc.fragments, &mut visiting));
        }
        for frag in doc.fragments.values() {
            s.walk(&frag.node.selection_set.node);
        }
        s
    }

    fn walk(&mut self, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    self.aliases += usize::from(f.node.alias.is_some());
                    self.max_directives = self.max_directives.max(f.node.directives.len());
                    self.walk(&f.node.selection_set.node);
                }
                Selection::InlineFragment(f) => {
                    self.max_directives = self.max_directives.max(f.node.directives.len());
                    self.walk(&f.node.selection_set.node);
                }
                Selection::FragmentSpread(f) => {
                    self.max_directives = self.max_directives.max(f.node.directives.len());
                }
            }
        }
    }
}

fn depth(
    set: &SelectionSet,
    fragments: &std::collections::HashMap<async_graphql::Name, async_graphql::Positioned<FragmentDefinition>>,
    visiting: &mut HashSet<String>,
) -> usize {
    let mut max = 0;
    for item in &set.items {
        let d = match &item.node {
            Selection::Field(f) => 1 + depth(&f.node.selection_set.node, fragments, visiting),
            Selection::InlineFragment(f) => depth(&f.node.selection_set.node, fragments, visiting),
            Selection::FragmentSpread(f) => {
                let name = f.node.fragment_name.node.as_str();
                // A cycle is a validation error of its own; here it just stops the walk.
                match fragments.get(name) {
                    Some(frag) if visiting.insert(name.to_owned()) => {
                        let d = depth(&frag.node.selection_set.node, fragments, visiting);
                        visiting.remove(name);
                        d
                    }
                    _ => 0,
                }
            }
        };
        max = max.max(d);
    }
    max
}

/// For the error path only: an extension that reports a document's complexity from
/// validation and stops there (in the error's message). It lives on a second schema
/// without a complexity limit, used to tell a refused client the `actual` value.
pub struct ComplexityProbe;

const PROBE_PREFIX: &str = "complexity=";

impl ExtensionFactory for ComplexityProbe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ComplexityProbe)
    }
}

#[async_trait::async_trait]
impl Extension for ComplexityProbe {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let r = next.run(ctx).await?;
        Err(vec![ServerError::new(format!("{PROBE_PREFIX}{}", r.complexity), None)])
    }
}

/// Whether `req`'s document validates against the schema (run on the probe schema, which
/// stops after validation): the validation errors as the server would answer them.
pub async fn validate(probe: &crate::graphql::AppSchema, req: Request) -> Result<(), Vec<ServerError>> {
    let resp = probe.execute(req).await;
    if resp.errors.iter().any(|e| e.message.starts_with(PROBE_PREFIX)) { Ok(()) } else { Err(resp.errors) }
}

/// The complexity of `req`'s document, measured on the probe schema.
pub async fn measure_complexity(probe: &crate::graphql::AppSchema, req: Request) -> Option<usize> {
    let resp = probe.execute(req).await;
    resp.errors.iter().find_map(|e| e.message.strip_prefix(PROBE_PREFIX)?.parse().ok())
}

/// Counts GraphQL lexical tokens, stopping a little past `stop` (the answer only has to
/// say "too many"), without allocating: this runs before the parser sees the text.
pub fn count_tokens(q: &str, stop: usize) -> usize {
    let b = q.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() && n <= stop {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | 0xEF | 0xBB | 0xBF => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                n += 1;
                if b[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if b[i..].starts_with(b"...") => {
                n += 1;
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                n += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.+-".contains(&b[i])) {
                    i += 1;
                }
            }
            _ => {
                n += 1;
                i += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_counted_like_the_lexer_would() {
        assert_eq!(count_tokens("{ me { id } }", 100), 6);
        assert_eq!(count_tokens("query Q($a: Int = 1) { f(a: $a) @skip(if: true) }", 100), 26);
        assert_eq!(count_tokens("{ a # comment { { {\n b }", 100), 4);
        assert_eq!(count_tokens(r#"{ f(s: "a { } \" b", t: """ x { } """) }"#, 100), 11);
        assert_eq!(count_tokens("{ ...F } fragment F on Q { x }", 100), 11);
        assert_eq!(count_tokens("{ f(n: -1.5e3) }", 100), 8);
        // Stops early on huge input.
        assert!(count_tokens(&"{ a ".repeat(1_000_000), 5000) <= 5001);
    }

    fn stats(q: &str) -> Stats {
        Stats::of(&async_graphql::parser::parse_query(q).unwrap())
    }

    #[test]
    fn depth_aliases_and_directives() {
        let s = stats("{ a: organization { courses { nodes { tracks { course { id } } } } } }");
        assert_eq!((s.depth, s.aliases, s.introspection_only), (6, 1, false));
        let s = stats(
            "query { ...F } fragment F on Query { me { ... on Viewer { user { id @skip(if: false) @include(if: true) } } } }",
        );
        assert_eq!((s.depth, s.max_directives), (3, 2));
        // A fragment cycle does not hang the walk.
        let s = stats("{ ...A } fragment A on Query { me { ...B } } fragment B on Viewer { user { ...A } }");
        assert!(s.depth <= 3);
        assert!(stats("{ __schema { types { name } } __typename }").introspection_only);
    }
}
