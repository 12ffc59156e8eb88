//! The doctor's `--query`: one policy decision per guarded field, in document order.
//!
//! Each field's resource is the one its resolver would check: the row its own id
//! argument names (`id`, `courseId`, `organizationId`, `membershipId`, in `input` too),
//! else its parent field's, else the active organization — asked of `authz::policy` with
//! the viewer the server would build. Reads only.

use std::{collections::HashMap, sync::OnceLock};

use async_graphql::{
    Name, Positioned,
    parser::types::{
        BaseType, DocumentOperations, ExecutableDocument, Field, FragmentDefinition, OperationType, Selection,
        SelectionSet, TypeKind, TypeSystemDefinition,
    },
};
use sea_orm::{DatabaseConnection, EntityTrait as _};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{DecisionReport, UsageError};
use crate::{
    auth::Viewer,
    authz::{
        Action, Resource,
        policy::{self, FieldAccess, Target},
    },
};

/// (type, field) → the named type the field returns, from the schema's own SDL.
fn field_types() -> &'static HashMap<(String, String), String> {
    static TYPES: OnceLock<HashMap<(String, String), String>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let mut m = HashMap::new();
        let Ok(doc) = async_graphql::parser::parse_schema(crate::graphql::schema::sdl()) else { return m };
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else { continue };
            let TypeKind::Object(o) = &t.node.kind else { continue };
            for f in &o.fields {
                let mut ty = &f.node.ty.node.base;
                while let BaseType::List(inner) = ty {
                    ty = &inner.base;
                }
                if let BaseType::Named(n) = ty {
                    m.insert((t.node.name.node.to_string(), f.node.name.node.to_string()), n.to_string());
                }
            }
        }
        m
    })
}

/// `--query` parsed and validated against the schema, as the server validates it before
/// running anything; a document that does not is a usage error carrying the server's words.
pub async fn validated(q: &str, variables: Option<&Map<String, Value>>) -> Result<ExecutableDocument, UsageError> {
    static PROBE: OnceLock<crate::graphql::AppSchema> = OnceLock::new();
    let doc =
        async_graphql::parser::parse_query(q).map_err(|e| UsageError { field: "query", message: e.to_string() })?;
    let mut req = async_graphql::Request::new(q);
    if let Some(v) = variables {
        req = req.variables(async_graphql::Variables::from_json(Value::Object(v.clone())));
    }
    let probe = PROBE.get_or_init(crate::graphql::schema::build_probe_schema);
    crate::graphql::limits::validate(probe, req).await.map_err(|errors| UsageError {
        field: "query",
        message: errors
            .iter()
            .map(|e| match e.locations.first() {
                Some(l) => format!("{} (line {}, column {})", e.message, l.line, l.column),
                None => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    Ok(doc)
}

/// A guarded field found in the document: its response path, action and resource hint.
struct Found {
    path: String,
    action: Action,
    /// The nearest id argument on the way to it (its own first).
    id: Option<Uuid>,
    /// Whether the path starts at `me` (the viewer's own user).
    under_me: bool,
}

pub async fn decisions(
    conn: &DatabaseConnection,
    doc: &ExecutableDocument,
    variables: Option<&Map<String, Value>>,
    viewer: &Viewer,
    hypothetical: bool,
) -> Vec<DecisionReport> {
    let ops: Vec<_> = match &doc.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    let mut found = Vec::new();
    for op in ops {
        let root = match op.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        let mut walk = Walk { fragments: &doc.fragments, variables, found: &mut found, depth: 0 };
        walk.set(&op.node.selection_set.node, root, "", None, false);
    }
    let mut out = Vec::with_capacity(found.len());
    for f in found {
        let resource = resource(conn, viewer, f.action, f.id, f.under_me).await;
        let d = match resource {
            Some(r) => policy::check(viewer, f.action, &r),
            None => policy::not_found(f.action),
        };
        out.push(DecisionReport {
            path: f.path,
            action: d.action.as_str(),
            allowed: d.allowed,
            hypothetical,
            reason: d.reason.as_str(),
            required_roles: d.required_roles.to_vec(),
            granted_by: policy::granted_by(viewer, &d),
            granting_roles: policy::granting_roles(viewer, &d),
            viewer_role: d.viewer_role,
            policy: d.policy,
            organization_id: d.organization_id.filter(|id| !id.is_nil()),
        });
    }
    out
}

struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: Option<&'a Map<String, Value>>,
    found: &'a mut Vec<Found>,
    depth: usize,
}

impl Walk<'_> {
    fn set(&mut self, set: &SelectionSet, ty: &str, prefix: &str, id: Option<Uuid>, under_me: bool) {
        // Fragments may nest; a cycle is a validation error the server reports itself.
        if self.depth > 32 {
            return;
        }
        self.depth += 1;
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => self.field(&f.node, ty, prefix, id, under_me),
                Selection::InlineFragment(f) => {
                    let ty = f.node.type_condition.as_ref().map(|c| c.node.on.node.as_str()).unwrap_or(ty);
                    self.set(&f.node.selection_set.node, ty, prefix, id, under_me);
                }
                Selection::FragmentSpread(s) => {
                    if let Some(frag) = self.fragments.get(&s.node.fragment_name.node) {
                        let ty = frag.node.type_condition.node.on.node.to_string();
                        let set = frag.node.selection_set.node.clone();
                        self.set(&set, &ty, prefix, id, under_me);
                    }
                }
            }
        }
        self.depth -= 1;
    }

    fn field(&mut self, f: &Field, ty: &str, prefix: &str, inherited: Option<Uuid>, under_me: bool) {
        let name = f.name.node.as_str();
        if name.starts_with("__") {
            return;
        }
        let key = f.alias.as_ref().map(|a| a.node.as_str()).unwrap_or(name);
        let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
        let id = self.id_argument(f).or(inherited);
        let under_me = under_me || (ty == "Query" && name == "me");
        if let Some(FieldAccess::Guarded(action)) = policy::field_access(ty, name) {
            self.found.push(Found { path: path.clone(), action, id, under_me });
        }
        if let Some(next) = field_types().get(&(ty.to_owned(), name.to_owned())) {
            self.set(&f.selection_set.node, next, &path, id, under_me);
        }
    }

    /// The id the field's arguments name, in the order the resolvers read them.
    fn id_argument(&self, f: &Field) -> Option<Uuid> {
        let value = |v: &async_graphql::Value| -> Option<Uuid> { v.clone().into_json().ok()?.as_str()?.parse().ok() };
        let resolve = |v: &async_graphql::Value| value(v);
        let arg = |name: &str| -> Option<Uuid> {
            let (_, v) = f.arguments.iter().find(|(n, _)| n.node == name)?;
            let v = v.node.clone().into_const_with(|var| {
                self.variables
                    .and_then(|vars| vars.get(var.as_str()))
                    .and_then(|j| async_graphql::Value::from_json(j.clone()).ok())
                    .ok_or(())
            });
            resolve(&v.ok()?)
        };
        let input_field = |name: &str| -> Option<Uuid> {
            let (_, v) = f.arguments.iter().find(|(n, _)| n.node == "input")?;
            let v = v
                .node
                .clone()
                .into_const_with(|var| {
                    self.variables
                        .and_then(|vars| vars.get(var.as_str()))
                        .and_then(|j| async_graphql::Value::from_json(j.clone()).ok())
                        .ok_or(())
                })
                .ok()?;
            let async_graphql::Value::Object(o) = v else { return None };
            resolve(o.get(name)?)
        };
        ["id", "courseId", "organizationId", "membershipId", "resourceId"]
            .iter()
            .find_map(|n| arg(n))
            .or_else(|| ["courseId", "organizationId"].iter().find_map(|n| input_field(n)))
    }
}

/// What the resolver of `action` would ask the policy about.
async fn resource(
    conn: &DatabaseConnection,
    viewer: &Viewer,
    action: Action,
    id: Option<Uuid>,
    under_me: bool,
) -> Option<Resource> {
    let active = viewer.active_organization;
    let target = action.target();
    let Some(id) = id else {
        return match target {
            Target::User if under_me => Some(Resource::User { id: viewer.user.id, organization_ids: Vec::new() }),
            // Another member of the active organization.
            Target::User => active.map(|o| Resource::User { id: Uuid::nil(), organization_ids: vec![o] }),
            Target::Course => Some(policy::generic_course(active.unwrap_or_default(), action)),
            Target::Organization => Some(Resource::Organization { id: active.unwrap_or_default() }),
            Target::Invitation => None,
        };
    };
    let course = match entity::course::Entity::find_by_id(id).one(conn).await {
        Ok(Some(c)) => Some(c),
        _ => match entity::track::Entity::find_by_id(id).one(conn).await {
            Ok(Some(t)) => entity::course::Entity::find_by_id(t.course_id).one(conn).await.ok().flatten(),
            _ => None,
        },
    };
    if let Some(c) = course {
        // A course the viewer cannot read (another tenant's, a draft below INSTRUCTOR) is
        // NOT_FOUND whatever the action, as the resolvers answer.
        let readable = policy::allows(viewer, Action::ReadCourse, &crate::graphql::types::course::resource(&c));
        return readable.then(|| course_resource(target, &c, viewer, under_me));
    }
    if let Ok(Some(inv)) = entity::invitation::Entity::find_by_id(id).one(conn).await {
        return Some(match target {
            Target::Invitation => crate::graphql::lookup::invitation_resource(viewer, &inv),
            Target::Course => policy::generic_course(inv.organization_id, action),
            _ => Resource::Organization { id: inv.organization_id },
        });
    }
    let org = match entity::organization::Entity::find_by_id(id).one(conn).await {
        Ok(Some(o)) => Some(o.id),
        _ => match entity::membership::Entity::find_by_id(id).one(conn).await {
            Ok(Some(m)) => Some(m.organization_id),
            _ => None,
        },
    };
    // An organization the viewer is no member of is NOT_FOUND for them, as the server answers.
    let org = org.filter(|o| viewer.membership(*o).is_some() || viewer.platform_admin)?;
    Some(match target {
        Target::Course => policy::generic_course(org, action),
        Target::User => Resource::User { id: Uuid::nil(), organization_ids: vec![org] },
        Target::Organization | Target::Invitation => Resource::Organization { id: org },
    })
}

fn course_resource(target: Target, c: &entity::course::Model, viewer: &Viewer, under_me: bool) -> Resource {
    match target {
        Target::Course => crate::graphql::types::course::resource(c),
        Target::User if under_me => Resource::User { id: viewer.user.id, organization_ids: Vec::new() },
        Target::User => Resource::User { id: Uuid::nil(), organization_ids: vec![c.organization_id] },
        _ => Resource::Organization { id: c.organization_id },
    }
}
