//! When two subscribers may share one execution: the same document and variables, and a
//! viewer the policy cannot tell apart for what the document asks.
//!
//! A subscription's payload depends on the viewer only through the policy. For most
//! fields the policy looks at nothing but the viewer's memberships (organization, role,
//! active or not), whether they are a platform admin, and their active organization —
//! and, for an INSTRUCTOR, which courses they teach. [`ViewerClass`] is exactly that, and
//! [`role_determined`] says whether every field a document selects is of that kind (a
//! user's private email, for one, is not: it depends on who is asking). Subscribers of one
//! class get byte-identical payloads, so the server renders each event once per class
//! instead of once per subscriber (Hasura calls this multiplexing).

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use std::collections::HashMap;
use uuid::Uuid;

use crate::{
    auth::Viewer,
    authz::{Role, grants::GrantSet},
};

/// The fields whose value the policy decides from the viewer's class alone, by type:
/// (field, the type it leads to; `None` for a leaf).
fn allowed(ty: &str, field: &str) -> Option<Option<&'static str>> {
    let leaf = Some(None);
    match (ty, field) {
        (_, "__typename") => leaf,
        ("CourseChange", "kind" | "courseId" | "organizationId") => leaf,
        ("CourseChange", "course") => Some(Some("Course")),
        ("TrackChange", "kind" | "trackId" | "courseId") => leaf,
        ("TrackChange", "track") => Some(Some("Track")),
        (
            "Course",
            "id" | "title" | "description" | "category" | "difficultyLevel" | "estimatedDuration" | "durationUnit"
            | "price" | "isPublished" | "createdAt" | "updatedAt" | "metadata",
        ) => leaf,
        ("Course", "viewerCan") => Some(Some("CoursePermissions")),
        ("Course", "tracks") => Some(Some("Track")),
        ("Course", "instructor") => Some(Some("User")),
        ("Course", "organization") => Some(Some("Organization")),
        ("CoursePermissions", "update" | "delete" | "manageTracks" | "readMetadata") => leaf,
        ("Track", "id" | "name" | "description" | "position" | "createdAt" | "updatedAt") => leaf,
        // Not email or lastLoginAt: those depend on who asks.
        ("User", "id" | "name" | "avatarUrl" | "createdAt") => leaf,
        ("Organization", "id" | "name" | "slug" | "createdAt" | "viewerRole" | "storageBucket") => leaf,
        ("Organization", "viewerCan") => Some(Some("OrganizationPermissions")),
        (
            "OrganizationPermissions",
            "update" | "readSettings" | "readMembers" | "manageMembers" | "createCourse" | "readAuditLog"
            | "manageRoles",
        ) => leaf,
        _ => None,
    }
}

/// Whether every field the subscription operation `name` selects is decided by the
/// viewer's class alone.
pub fn role_determined(doc: &ExecutableDocument, name: Option<&str>) -> bool {
    let op = match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(n)) => match ops.get(n) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => match ops.values().next() {
            Some(op) => op,
            None => return false,
        },
        _ => return false,
    };
    let mut seen = Vec::new();
    op.node.selection_set.node.items.iter().all(|item| match &item.node {
        Selection::Field(f) => {
            let ty = match f.node.name.node.as_str() {
                "courseChanges" => "CourseChange",
                "trackChanges" => "TrackChange",
                "__typename" => return true,
                _ => return false,
            };
            walk(&f.node.selection_set.node, ty, &doc.fragments, &mut seen)
        }
        _ => false,
    })
}

fn walk(
    set: &SelectionSet,
    ty: &str,
    fragments: &HashMap<async_graphql::Name, async_graphql::Positioned<FragmentDefinition>>,
    seen: &mut Vec<String>,
) -> bool {
    set.items.iter().all(|item| match &item.node {
        Selection::Field(f) => match allowed(ty, f.node.name.node.as_str()) {
            Some(None) => true,
            Some(Some(next)) => walk(&f.node.selection_set.node, next, fragments, seen),
            None => false,
        },
        Selection::InlineFragment(f) => {
            f.node.type_condition.as_ref().is_none_or(|c| c.node.on.node.as_str() == ty)
                && walk(&f.node.selection_set.node, ty, fragments, seen)
        }
        Selection::FragmentSpread(s) => {
            let name = s.node.fragment_name.node.to_string();
            // A cycle is refused by validation; here it only must not loop.
            if seen.contains(&name) {
                return true;
            }
            let Some(frag) = fragments.get(s.node.fragment_name.node.as_str()) else { return false };
            if frag.node.type_condition.node.on.node.as_str() != ty {
                return false;
            }
            seen.push(name);
            let ok = walk(&frag.node.selection_set.node, ty, fragments, seen);
            seen.pop();
            ok
        }
    })
}

/// Everything the policy can see of a viewer, for a document that `role_determined`:
/// two viewers of one class get the same answer to every such field. Otherwise (or for a
/// viewer holding some grant only at OWN scope, whose powers depend on which courses they
/// teach) the user is part of the class, and nobody else shares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewerClass {
    platform_admin: bool,
    active_organization: Option<Uuid>,
    removed_from: Option<Uuid>,
    /// (organization, role, effective grants, active), sorted.
    memberships: Vec<(Uuid, Role, GrantSet, bool)>,
    user: Option<Uuid>,
}

impl ViewerClass {
    pub fn of(v: &Viewer, role_determined: bool) -> Self {
        let mut memberships: Vec<(Uuid, Role, GrantSet, bool)> = v
            .memberships
            .iter()
            .map(|m| (m.organization_id, m.role, v.grants_in(m.organization_id), m.is_active))
            .collect();
        memberships.sort_by_key(|(o, ..)| *o);
        let teaches = memberships.iter().any(|(_, _, g, active)| *active && g.owns_something());
        Self {
            platform_admin: v.platform_admin,
            active_organization: v.active_organization,
            removed_from: v.removed_from,
            memberships,
            user: (!role_determined || teaches).then_some(v.user.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn documents_of_role_decided_fields_are_shared_others_are_not() {
        for q in [
            "subscription { courseChanges { kind courseId course { id title metadata viewerCan { update } } } }",
            "subscription S($o: ID) { courseChanges(organizationId: $o) { ...C } } fragment C on CourseChange { kind course { instructor { id name } organization { viewerRole viewerCan { readAuditLog } } } }",
            "subscription { trackChanges(courseId: \"x\") { __typename kind track { ... on Track { name position } } } }",
        ] {
            assert!(role_determined(&doc(q), None), "{q}");
        }
        for q in [
            // Private fields depend on who asks.
            "subscription { courseChanges { course { instructor { email } } } }",
            "subscription { courseChanges { course { organization { members { nodes { id } } } } } }",
            "subscription { courseChanges { course { organization { courses { nodes { viewerCan { update } } } } } } }",
            "subscription { courseChanges { ...F } } fragment F on CourseChange { course { instructor { lastLoginAt } } }",
        ] {
            assert!(!role_determined(&doc(q), None), "{q}");
        }
        let two = doc(
            "subscription A { courseChanges { kind } } subscription B { courseChanges { course { instructor { email } } } }",
        );
        assert!(role_determined(&two, Some("A")));
        assert!(!role_determined(&two, Some("B")));
        assert!(!role_determined(&two, None), "ambiguous: not shared");
    }
}
