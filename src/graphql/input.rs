//! Text every argument may carry: no NUL character (U+0000) anywhere in an operation's
//! input — names, titles, descriptions, slugs, emails, JSON metadata, its keys included.
//!
//! PostgreSQL `text` and `jsonb` cannot hold U+0000 while SQLite stores it, so the same
//! input would be a database error on one and a row on the other. Refusing it here, before
//! execution, gives both the same answer (BAD_USER_INPUT naming the argument) and keeps
//! every resolver, present and future, from ever seeing one. The common case — variables
//! and a document without the character — costs one scan of the variables and of the
//! document's text.

use async_graphql::{
    Name, Variables,
    parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet},
};
use async_graphql_value::{ConstValue, Value};

use crate::error::AppError;

/// A NUL in a variable's value or in a literal argument of the operation `operation` of
/// `doc`: BAD_USER_INPUT whose `field` is the argument's path (`input.title`,
/// `input.metadata.notes`, `trackIds[2]`), as resolvers name their inputs.
pub fn refuse_nul(
    query: &str,
    doc: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
) -> Result<(), AppError> {
    let tainted: Vec<(&Name, String)> =
        variables.iter().filter_map(|(name, value)| nul_in_const(value).map(|at| (name, at))).collect();
    // GraphQL text cannot hold a raw NUL; a literal can only carry one as `\u0000` (or the
    // braced `\u{0}`), so only a document with a unicode escape needs its literals walked.
    if tainted.is_empty() && !query.contains("\\u") && !query.contains('\0') {
        return Ok(());
    }
    let Some(op) = selected(doc, operation) else { return Ok(()) };
    let mut walk = Walk { doc, tainted: &tainted, visited: Vec::new() };
    for def in &op.variable_definitions {
        if let Some(default) = &def.node.default_value
            && let Some(at) = nul_in_const(&default.node)
        {
            return Err(refusal(&format!("${}{at}", def.node.name.node)));
        }
    }
    if let Some(field) = walk.set(&op.selection_set.node) {
        return Err(refusal(&field));
    }
    // A tainted variable no argument uses is refused all the same: nothing of it is stored,
    // but nothing says it never will be.
    match tainted.first() {
        Some((name, at)) => Err(refusal(&format!("${name}{at}"))),
        None => Ok(()),
    }
}

fn refusal(field: &str) -> AppError {
    AppError::bad_input(
        field,
        format!("`{field}` contains a NUL character (U+0000), which no text field can hold; remove it"),
    )
}

/// The operation that will run: the named one, else the only one.
fn selected<'a>(doc: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(n)) => ops.get(n).map(|o| &o.node),
        (DocumentOperations::Multiple(ops), None) => ops.values().next().map(|o| &o.node),
    }
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    tainted: &'a [(&'a Name, String)],
    /// Fragments already walked (a cycle is a validation error of its own).
    visited: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    /// The first argument of the selection set (fields, fragments, nested selections) that
    /// carries a NUL, literally or through a tainted variable.
    fn set(&mut self, set: &'a SelectionSet) -> Option<String> {
        for item in &set.items {
            let found = match &item.node {
                Selection::Field(f) => f
                    .node
                    .arguments
                    .iter()
                    .find_map(|(name, value)| self.value(&value.node, name.node.to_string()))
                    .or_else(|| self.set(&f.node.selection_set.node)),
                Selection::InlineFragment(f) => self.set(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.doc.fragments.get(name) {
                        Some(frag) if !self.visited.contains(&name) => {
                            self.visited.push(name);
                            self.set(&frag.node.selection_set.node)
                        }
                        _ => None,
                    }
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn value(&self, v: &Value, at: String) -> Option<String> {
        match v {
            Value::String(s) if s.contains('\0') => Some(at),
            Value::Variable(name) => {
                self.tainted.iter().find(|(n, _)| *n == name).map(|(_, inner)| format!("{at}{inner}"))
            }
            Value::List(items) => items.iter().enumerate().find_map(|(i, x)| self.value(x, format!("{at}[{i}]"))),
            Value::Object(map) => map.iter().find_map(|(k, x)| {
                if k.contains('\0') { Some(at.clone()) } else { self.value(x, format!("{at}.{k}")) }
            }),
            _ => None,
        }
    }
}

/// Where in `v` a NUL is, as a path suffix (`""` for `v` itself, `.notes`, `[2]`).
fn nul_in_const(v: &ConstValue) -> Option<String> {
    match v {
        ConstValue::String(s) if s.contains('\0') => Some(String::new()),
        ConstValue::List(items) => {
            items.iter().enumerate().find_map(|(i, x)| nul_in_const(x).map(|at| format!("[{i}]{at}")))
        }
        ConstValue::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') { Some(String::new()) } else { nul_in_const(x).map(|at| format!(".{k}{at}")) }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, vars: serde_json::Value) -> Result<(), String> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        refuse_nul(query, &doc, None, &Variables::from_json(vars)).map_err(|e| match e {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn clean_input_passes() {
        assert_eq!(
            check("mutation { createCourse(input: {title: \"caf\\u00e9\"}) { id } }", serde_json::json!({})),
            Ok(())
        );
        assert_eq!(
            check("query($s: String) { courses(filter: {search: $s}) { totalCount } }", serde_json::json!({"s": "x"})),
            Ok(())
        );
    }

    #[test]
    fn a_nul_is_named_by_its_argument_path() {
        assert_eq!(
            check("mutation { createCourse(input: {title: \"a\\u0000b\"}) { id } }", serde_json::json!({})),
            Err("input.title".into())
        );
        assert_eq!(
            check(
                "mutation M($i: CreateCourseInput!) { createCourse(input: $i) { id } }",
                serde_json::json!({"i": {"title": "ok", "metadata": {"notes": ["x", "y\u{0}"]}}})
            ),
            Err("input.metadata.notes[1]".into())
        );
        assert_eq!(
            check(
                "query($s: String) { organization { courses(filter: {search: $s}) { totalCount } } }",
                serde_json::json!({"s": "\u{0}"})
            ),
            Err("filter.search".into())
        );
        assert_eq!(
            check("query { ...F } fragment F on Query { course(id: \"\\u0000\") { id } }", serde_json::json!({})),
            Err("id".into())
        );
        assert_eq!(
            check("query($u: String) { me { user { id } } }", serde_json::json!({"u": "\u{0}"})),
            Err("$u".into())
        );
        assert_eq!(
            check(
                "query($s: String = \"\\u0000\") { courses(filter: {search: $s}) { totalCount } }",
                serde_json::json!({})
            ),
            Err("$s".into())
        );
        // A key of a JSON object is text too.
        assert_eq!(
            check(
                "mutation M($m: JSON) { updateCourse(id: \"x\", input: {metadata: $m}) { id } }",
                serde_json::json!({"m": {"k\u{0}": 1}})
            ),
            Err("input.metadata".into())
        );
    }
}
