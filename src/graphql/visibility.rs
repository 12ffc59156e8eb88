//! Per-role introspection visibility, derived from the policy's field table.
//! A courtesy only: the hidden field's resolver still runs its guard.

use async_graphql::Context;

use super::context::RequestContext;
use crate::authz::{Subject as _, policy};

/// Whether (`type_name`, `field`) is shown to this request's viewer: by the grants it
/// holds anywhere (a viewer's grant set decides its schema).
pub fn visible(ctx: &Context<'_>, type_name: &str, field: &str) -> bool {
    let viewer = ctx.data::<RequestContext>().ok().and_then(|r| r.viewer.get());
    let (held, everyone) = match viewer {
        Some(v) => (v.all_grants(), v.policy.built_in(crate::authz::Role::Viewer)),
        // Anonymous introspection shows what any member may reach.
        None => (Default::default(), crate::authz::grants::default_grants(crate::authz::Role::Viewer)),
    };
    policy::field_access(type_name, field).is_none_or(|a| policy::field_visible_to(a, held, everyone))
}

/// Declares `fn $name(ctx) -> bool` for one field, for `#[graphql(visible = "...")]`.
macro_rules! visible_fn {
    ($name:ident, $ty:literal, $field:literal) => {
        pub fn $name(ctx: &async_graphql::Context<'_>) -> bool {
            $crate::graphql::visibility::visible(ctx, $ty, $field)
        }
    };
}

visible_fn!(organization_storage_bucket, "Organization", "storageBucket");
visible_fn!(organization_members, "Organization", "members");
visible_fn!(organization_invitations, "Organization", "invitations");
visible_fn!(organization_audit_log, "Organization", "auditLog");
visible_fn!(query_who_can, "Query", "whoCan");
visible_fn!(course_metadata, "Course", "metadata");
visible_fn!(mutation_update_organization, "Mutation", "updateOrganization");
visible_fn!(mutation_add_member, "Mutation", "addMember");
visible_fn!(mutation_update_member_role, "Mutation", "updateMemberRole");
visible_fn!(mutation_remove_member, "Mutation", "removeMember");
visible_fn!(mutation_create_course, "Mutation", "createCourse");
visible_fn!(mutation_update_course, "Mutation", "updateCourse");
visible_fn!(mutation_delete_course, "Mutation", "deleteCourse");
visible_fn!(mutation_create_track, "Mutation", "createTrack");
visible_fn!(mutation_update_track, "Mutation", "updateTrack");
visible_fn!(mutation_delete_track, "Mutation", "deleteTrack");
visible_fn!(mutation_reorder_tracks, "Mutation", "reorderTracks");
visible_fn!(mutation_invite_member, "Mutation", "inviteMember");
visible_fn!(mutation_revoke_invitation, "Mutation", "revokeInvitation");
visible_fn!(mutation_create_role, "Mutation", "createRole");
visible_fn!(mutation_update_role, "Mutation", "updateRole");
visible_fn!(mutation_delete_role, "Mutation", "deleteRole");
visible_fn!(mutation_assign_role, "Mutation", "assignRole");
visible_fn!(mutation_unassign_role, "Mutation", "unassignRole");
visible_fn!(organization_roles, "Organization", "roles");
