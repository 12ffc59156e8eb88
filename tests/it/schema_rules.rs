//! The schema against the policy: every field has a rule, introspection hides what a
//! role can never read (but the guard still runs), and the committed docs are current.

use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
use coursegraph::authz::{
    Role,
    grants::default_grants,
    policy::{self, FIELD_RULES, FieldAccess},
};
use serde_json::{Value, json};

use crate::helpers::*;

/// (type, field) of every field of every object type in the SDL.
fn object_fields() -> Vec<(String, String)> {
    let doc = async_graphql::parser::parse_schema(coursegraph::graphql::schema::sdl()).expect("SDL parses");
    let mut out = Vec::new();
    for def in doc.definitions {
        if let TypeSystemDefinition::Type(t) = def
            && let TypeKind::Object(o) = &t.node.kind
        {
            for f in &o.fields {
                out.push((t.node.name.node.to_string(), f.node.name.node.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_field_of_every_object_type_has_a_policy_entry() {
    let fields = object_fields();
    assert!(fields.len() > 50, "the walk found the schema's fields");
    let missing: Vec<_> = fields.iter().filter(|(t, f)| policy::field_access(t, f).is_none()).collect();
    assert!(missing.is_empty(), "fields without a policy entry (add them to FIELD_RULES): {missing:?}");
    let stale: Vec<_> = FIELD_RULES
        .iter()
        .filter(|(t, f, _)| !fields.iter().any(|(ft, ff)| ft == t && ff == f))
        .map(|(t, f, _)| format!("{t}.{f}"))
        .collect();
    assert!(stale.is_empty(), "policy entries for fields that do not exist: {stale:?}");
}

#[test]
fn permissions_doc_is_current() {
    let expected = coursegraph::authz::docs::permissions_markdown(&Default::default());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PERMISSIONS.md");
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/PERMISSIONS.md is stale: regenerate it with `cargo run -q -- permissions > docs/PERMISSIONS.md`"
    );
}

async fn visible_fields(app: &TestApp, token: Option<&str>, ty: &str) -> Vec<String> {
    let (_, body, _) =
        app.gql(token, "query($t: String!) { __type(name: $t) { fields { name } } }", json!({ "t": ty })).await;
    body["data"]["__type"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn introspection_hides_what_a_role_can_never_read_but_the_guard_still_runs() {
    let app = TestApp::spawn().await;
    let mut tokens: Vec<(Option<Role>, Option<String>)> = vec![(None, None)];
    for role in Role::ALL {
        let t = app.token(&format!("u-{}", role.as_str()), Some("acme"), Some(role.as_str()));
        app.data(&t, "{ me { activeRole } }", json!({})).await;
        tokens.push((Some(role), Some(t)));
    }
    for (highest, token) in &tokens {
        for ty in ["Query", "Mutation", "Organization", "Course", "User"] {
            let shown = visible_fields(&app, token.as_deref(), ty).await;
            for (t, f, access) in FIELD_RULES.iter().filter(|(t, _, _)| *t == ty) {
                let held = highest.map(default_grants).unwrap_or_default();
                let expect = policy::field_visible_to(*access, held, default_grants(Role::Viewer));
                assert_eq!(shown.iter().any(|s| s == f), expect, "{t}.{f} for {highest:?} ({access:?})");
            }
        }
    }
    // Hidden is not protected: a MEMBER asking for the hidden field still gets the guard's answer.
    let member = tokens.iter().find(|(r, _)| *r == Some(Role::Member)).unwrap().1.clone().unwrap();
    let (status, body, _) = app.gql(Some(&member), "{ organization { name storageBucket } }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["organization"]["name"], "acme");
    assert_eq!(body["data"]["organization"]["storageBucket"], Value::Null);
    assert_eq!(only_error(&body)["extensions"]["reason"], "INSUFFICIENT_ROLE");
    // Every guarded field with a role floor is hidden from someone.
    let hidden_somewhere = FIELD_RULES
        .iter()
        .filter(|(_, _, a)| matches!(a, FieldAccess::Guarded(_)))
        .filter(|(_, _, a)| !policy::field_visible_to(*a, default_grants(Role::Viewer), default_grants(Role::Viewer)))
        .count();
    assert!(hidden_somewhere >= 10);
}
