//! Every GraphQL field's rule, declared once: a test walks the schema and fails on a field
//! without one (deny by default); guards, introspection visibility, the doctor and
//! `docs/PERMISSIONS.md` read this table.

use super::{
    Action, Role,
    policy::{Target, rule},
};

/// How a GraphQL field is protected. Every field of every object type has one
/// (a test walks the schema registry); a field with no entry is a build failure.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FieldAccess {
    /// Any signed-in viewer (the viewer's own data, or an entry point that scopes itself).
    Authenticated,
    /// Readable by whoever could load the parent row: the parent was already checked
    /// (in SQL) against READ_ORGANIZATION / READ_COURSE of its organization.
    Parent,
    /// The resolver checks this action against the parent (or argument) resource.
    Guarded(Action),
}

/// The field table: (type, field) → access. Kept next to the matrix on purpose.
pub const FIELD_RULES: &[(&str, &str, FieldAccess)] = {
    use Action::*;
    use FieldAccess::*;
    &[
        // Query: entry points. Each one scopes its rows to the viewer in SQL.
        ("Query", "me", Authenticated),
        ("Query", "organization", Guarded(ReadOrganization)),
        ("Query", "organizations", Authenticated),
        ("Query", "course", Guarded(ReadCourse)),
        ("Query", "courses", Guarded(ReadCourse)),
        ("Query", "track", Guarded(ReadCourse)),
        ("Query", "explainAccess", Authenticated),
        ("Query", "whoCan", Guarded(ManageMembers)),
        // Mutation: operation guards.
        ("Mutation", "createOrganization", Authenticated),
        ("Mutation", "updateOrganization", Guarded(UpdateOrganization)),
        ("Mutation", "addMember", Guarded(ManageMembers)),
        ("Mutation", "updateMemberRole", Guarded(ManageMembers)),
        ("Mutation", "removeMember", Guarded(ManageMembers)),
        ("Mutation", "createCourse", Guarded(CreateCourse)),
        ("Mutation", "updateCourse", Guarded(UpdateCourse)),
        ("Mutation", "deleteCourse", Guarded(DeleteCourse)),
        ("Mutation", "createTrack", Guarded(ManageTracks)),
        ("Mutation", "updateTrack", Guarded(ManageTracks)),
        ("Mutation", "deleteTrack", Guarded(ManageTracks)),
        ("Mutation", "reorderTracks", Guarded(ManageTracks)),
        ("Mutation", "inviteMember", Guarded(ManageMembers)),
        ("Mutation", "revokeInvitation", Guarded(ManageMembers)),
        ("Mutation", "acceptInvitation", Guarded(AcceptInvitation)),
        // Subscription: entry points, each checked when it starts and at every event.
        ("Subscription", "courseChanges", Guarded(ReadCourse)),
        ("Subscription", "trackChanges", Guarded(ReadCourse)),
        // The changes: the payload is a Course / Track, guarded field by field as ever.
        ("CourseChange", "kind", Parent),
        ("CourseChange", "courseId", Parent),
        ("CourseChange", "organizationId", Parent),
        ("CourseChange", "course", Parent),
        ("TrackChange", "kind", Parent),
        ("TrackChange", "trackId", Parent),
        ("TrackChange", "courseId", Parent),
        ("TrackChange", "track", Parent),
        // Viewer: the signed-in user's own view.
        ("Viewer", "user", Authenticated),
        ("Viewer", "memberships", Authenticated),
        ("Viewer", "activeOrganization", Authenticated),
        ("Viewer", "activeRole", Authenticated),
        ("Viewer", "isPlatformAdmin", Authenticated),
        ("Viewer", "invitations", Authenticated),
        // User: public profile to anyone who can reach the row; private fields guarded.
        ("User", "id", Parent),
        ("User", "name", Parent),
        ("User", "avatarUrl", Parent),
        ("User", "createdAt", Parent),
        ("User", "email", Guarded(ReadUserPrivate)),
        ("User", "lastLoginAt", Guarded(ReadUserPrivate)),
        // Organization.
        ("Organization", "id", Parent),
        ("Organization", "name", Parent),
        ("Organization", "slug", Parent),
        ("Organization", "createdAt", Parent),
        ("Organization", "viewerRole", Parent),
        ("Organization", "storageBucket", Guarded(ReadOrganizationSettings)),
        ("Organization", "members", Guarded(ReadMembers)),
        ("Organization", "courses", Guarded(ReadCourse)),
        ("Organization", "invitations", Guarded(ManageMembers)),
        ("Organization", "auditLog", Guarded(ReadAuditLog)),
        ("Organization", "viewerCan", Parent),
        ("OrganizationPermissions", "update", Parent),
        ("OrganizationPermissions", "readSettings", Parent),
        ("OrganizationPermissions", "readMembers", Parent),
        ("OrganizationPermissions", "manageMembers", Parent),
        ("OrganizationPermissions", "createCourse", Parent),
        ("OrganizationPermissions", "readAuditLog", Parent),
        // Membership: reachable through members (READ_MEMBERS) or the viewer's own.
        ("Membership", "id", Parent),
        ("Membership", "user", Parent),
        ("Membership", "organization", Parent),
        ("Membership", "role", Parent),
        ("Membership", "isActive", Parent),
        ("Membership", "joinedAt", Parent),
        ("MembershipConnection", "edges", Parent),
        ("MembershipConnection", "nodes", Parent),
        ("MembershipConnection", "pageInfo", Parent),
        ("MembershipConnection", "totalCount", Parent),
        ("MembershipEdge", "cursor", Parent),
        ("MembershipEdge", "node", Parent),
        // Course.
        ("Course", "id", Parent),
        ("Course", "organization", Parent),
        ("Course", "title", Parent),
        ("Course", "description", Parent),
        ("Course", "category", Parent),
        ("Course", "difficultyLevel", Parent),
        ("Course", "estimatedDuration", Parent),
        ("Course", "durationUnit", Parent),
        ("Course", "price", Parent),
        ("Course", "isPublished", Parent),
        ("Course", "instructor", Parent),
        ("Course", "tracks", Parent),
        ("Course", "metadata", Guarded(ReadCourseMetadata)),
        ("Course", "viewerCan", Parent),
        ("Course", "createdAt", Parent),
        ("Course", "updatedAt", Parent),
        ("CoursePermissions", "update", Parent),
        ("CoursePermissions", "delete", Parent),
        ("CoursePermissions", "manageTracks", Parent),
        ("CoursePermissions", "readMetadata", Parent),
        ("CourseConnection", "edges", Parent),
        ("CourseConnection", "nodes", Parent),
        ("CourseConnection", "pageInfo", Parent),
        ("CourseConnection", "totalCount", Parent),
        ("CourseEdge", "cursor", Parent),
        ("CourseEdge", "node", Parent),
        ("PageInfo", "hasNextPage", Parent),
        ("PageInfo", "hasPreviousPage", Parent),
        ("PageInfo", "startCursor", Parent),
        ("PageInfo", "endCursor", Parent),
        // Track: readable exactly when its course is.
        ("Track", "id", Parent),
        ("Track", "course", Parent),
        ("Track", "organization", Parent),
        ("Track", "name", Parent),
        ("Track", "description", Parent),
        ("Track", "position", Parent),
        ("Track", "createdAt", Parent),
        ("Track", "updatedAt", Parent),
        // Invitation: reachable through Organization.invitations (MANAGE_MEMBERS) or, for
        // the invitee, Viewer.invitations and the invitation mutations.
        ("Invitation", "id", Parent),
        ("Invitation", "organization", Parent),
        ("Invitation", "email", Parent),
        ("Invitation", "role", Parent),
        ("Invitation", "status", Parent),
        ("Invitation", "invitedBy", Parent),
        ("Invitation", "createdAt", Parent),
        ("Invitation", "expiresAt", Parent),
        ("Invitation", "acceptedAt", Parent),
        ("InvitationConnection", "edges", Parent),
        ("InvitationConnection", "nodes", Parent),
        ("InvitationConnection", "pageInfo", Parent),
        ("InvitationConnection", "totalCount", Parent),
        ("InvitationEdge", "cursor", Parent),
        ("InvitationEdge", "node", Parent),
        // AuditEvent: reachable only through Organization.auditLog (READ_AUDIT_LOG).
        ("AuditEvent", "id", Parent),
        ("AuditEvent", "at", Parent),
        ("AuditEvent", "action", Parent),
        ("AuditEvent", "actor", Parent),
        ("AuditEvent", "targetType", Parent),
        ("AuditEvent", "targetId", Parent),
        ("AuditEvent", "details", Parent),
        ("AuditEventConnection", "edges", Parent),
        ("AuditEventConnection", "nodes", Parent),
        ("AuditEventConnection", "pageInfo", Parent),
        ("AuditEventConnection", "totalCount", Parent),
        ("AuditEventEdge", "cursor", Parent),
        ("AuditEventEdge", "node", Parent),
        // AccessDecision: the viewer's own question, answered.
        ("AccessDecision", "allowed", Authenticated),
        ("AccessDecision", "reason", Authenticated),
        ("AccessDecision", "action", Authenticated),
        ("AccessDecision", "requiredRoles", Authenticated),
        ("AccessDecision", "viewerRole", Authenticated),
        ("AccessDecision", "organizationId", Authenticated),
        ("AccessDecision", "policy", Authenticated),
        // Reached only through whoCan, which required MANAGE_MEMBERS.
        ("AccessGrant", "membership", Parent),
        ("AccessGrant", "reason", Parent),
        ("AccessGrant", "role", Parent),
        ("AccessGrant", "policy", Parent),
    ]
};

/// The access entry of a field, if it has one.
pub fn field_access(type_name: &str, field: &str) -> Option<FieldAccess> {
    FIELD_RULES.iter().find(|(t, f, _)| *t == type_name && *f == field).map(|(_, _, a)| *a)
}

/// Whether a field appears in introspection for a viewer whose highest role is `highest`.
/// Hiding is a courtesy, never the protection: the resolver's guard runs regardless.
pub fn field_visible_to(access: FieldAccess, highest: Option<Role>) -> bool {
    match access {
        FieldAccess::Guarded(action) => {
            let rule = rule(action);
            rule.self_grants
                || matches!(action.target(), Target::Organization | Target::Course) && rule.min_role == Role::Viewer
                || highest.is_some_and(|h| rule.required_roles().contains(&h))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rules_have_no_duplicates() {
        let mut keys: Vec<_> = FIELD_RULES.iter().map(|(t, f, _)| (*t, *f)).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }

    #[test]
    fn guarded_fields_are_hidden_only_from_roles_that_can_never_read_them() {
        let bucket = field_access("Organization", "storageBucket").unwrap();
        assert!(field_visible_to(bucket, Some(Role::Admin)));
        assert!(!field_visible_to(bucket, Some(Role::Instructor)));
        assert!(!field_visible_to(bucket, None));
        let meta = field_access("Course", "metadata").unwrap();
        assert!(field_visible_to(meta, Some(Role::Instructor)));
        assert!(!field_visible_to(meta, Some(Role::Member)));
        let email = field_access("User", "email").unwrap();
        assert!(field_visible_to(email, Some(Role::Viewer)));
        let courses = field_access("Organization", "courses").unwrap();
        assert!(field_visible_to(courses, Some(Role::Viewer)));
    }
}
