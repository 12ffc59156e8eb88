//! Every GraphQL field's rule, declared once: a test walks the schema and fails on a field
//! without one (deny by default); guards, introspection visibility, the doctor and
//! `docs/PERMISSIONS.md` read this table.

use super::{Action, grants::GrantSet, policy::Target};

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
        ("Mutation", "createRole", Guarded(ManageRoles)),
        ("Mutation", "updateRole", Guarded(ManageRoles)),
        ("Mutation", "deleteRole", Guarded(ManageRoles)),
        ("Mutation", "assignRole", Guarded(ManageRoles)),
        ("Mutation", "unassignRole", Guarded(ManageRoles)),
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
        ("Viewer", "grants", Authenticated),
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
        ("Organization", "roles", Guarded(ReadMembers)),
        ("OrganizationPermissions", "update", Parent),
        ("OrganizationPermissions", "readSettings", Parent),
        ("OrganizationPermissions", "readMembers", Parent),
        ("OrganizationPermissions", "manageMembers", Parent),
        ("OrganizationPermissions", "createCourse", Parent),
        ("OrganizationPermissions", "readAuditLog", Parent),
        ("OrganizationPermissions", "manageRoles", Parent),
        // Membership: reachable through members (READ_MEMBERS) or the viewer's own.
        ("Membership", "id", Parent),
        ("Membership", "user", Parent),
        ("Membership", "organization", Parent),
        ("Membership", "role", Parent),
        ("Membership", "isActive", Parent),
        ("Membership", "joinedAt", Parent),
        // Assigned custom roles and stored grants: READ_MEMBERS, or the membership's own user.
        ("Membership", "roles", Guarded(ReadMembers)),
        ("Membership", "grants", Guarded(ReadMembers)),
        // Role: reachable through Organization.roles (READ_MEMBERS), a membership's roles, or
        // returned by the role mutations (MANAGE_ROLES).
        ("Role", "id", Parent),
        ("Role", "key", Parent),
        ("Role", "name", Parent),
        ("Role", "description", Parent),
        ("Role", "builtIn", Parent),
        ("Role", "organization", Parent),
        ("Role", "grants", Parent),
        ("PermissionGrant", "action", Parent),
        ("PermissionGrant", "scope", Parent),
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
        ("AccessDecision", "grantedBy", Authenticated),
        ("AccessDecision", "grantingRoles", Authenticated),
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

/// Whether a field appears in introspection for a viewer holding `held` somewhere, where
/// every member holds `everyone` (the VIEWER role's grants): a field guarded by an action
/// the viewer can never be granted is hidden. Hiding is a courtesy, never the protection:
/// the resolver's guard runs regardless.
pub fn field_visible_to(access: FieldAccess, held: GrantSet, everyone: GrantSet) -> bool {
    match access {
        FieldAccess::Guarded(action) => {
            action.self_grants()
                || matches!(action.target(), Target::Organization | Target::Course) && everyone.has(action)
                || held.has(action)
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
    fn guarded_fields_are_hidden_only_from_grant_sets_that_can_never_read_them() {
        use crate::authz::{Role, grants::default_grants};
        let everyone = default_grants(Role::Viewer);
        let visible = |type_name, field, role: Option<Role>| {
            let held = role.map(default_grants).unwrap_or_default();
            field_visible_to(field_access(type_name, field).unwrap(), held, everyone)
        };
        assert!(visible("Organization", "storageBucket", Some(Role::Admin)));
        assert!(!visible("Organization", "storageBucket", Some(Role::Instructor)));
        assert!(!visible("Organization", "storageBucket", None));
        assert!(visible("Course", "metadata", Some(Role::Instructor)));
        assert!(!visible("Course", "metadata", Some(Role::Member)));
        assert!(visible("User", "email", Some(Role::Viewer)));
        assert!(visible("Organization", "courses", Some(Role::Viewer)));
        assert!(visible("Mutation", "createRole", Some(Role::Admin)));
        assert!(!visible("Mutation", "createRole", Some(Role::Instructor)));
        // A custom grant makes its field visible.
        let ta = default_grants(Role::Member).with(crate::authz::grants::Grant::own(Action::ManageTracks));
        assert!(field_visible_to(field_access("Mutation", "createTrack").unwrap(), ta, everyone));
    }
}
