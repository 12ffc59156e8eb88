//! Tenant scoping in SQL: the WHERE conditions every read query carries, derived from
//! the policy's read rules (never a filter applied to rows after loading).

use super::{
    Action, Subject,
    policy::{self, OrgScope},
};
use entity::{audit_event, course, invitation, membership, organization, track};
use sea_orm::{
    ColumnTrait, Condition,
    sea_query::{Expr, ExprTrait},
};

fn in_scope(col: impl ColumnTrait, scope: OrgScope) -> Condition {
    match scope {
        OrgScope::All => Condition::all(),
        // `IN ()` is not valid SQL everywhere: an empty scope matches nothing.
        OrgScope::Only(v) if v.is_empty() => Condition::all().add(Expr::val(1).eq(Expr::val(0))),
        OrgScope::Only(v) => Condition::all().add(col.is_in(v)),
    }
}

/// Organizations the subject may read.
pub fn organizations(s: &impl Subject) -> Condition {
    in_scope(organization::Column::Id, policy::scope(s, Action::ReadOrganization))
}

/// Courses the subject may read: published ones of their organizations, drafts of the
/// organizations where they read drafts, and their own drafts where they read those
/// (`READ_DRAFT_COURSE:OWN`).
pub fn courses(s: &impl Subject) -> Condition {
    let read = policy::scope(s, Action::ReadCourse);
    if read == OrgScope::All {
        return Condition::all();
    }
    let mut drafts = Condition::any()
        .add(course::Column::IsPublished.eq(true))
        .add(in_scope(course::Column::OrganizationId, policy::scope(s, Action::ReadDraftCourse)));
    let own = policy::own_scope(s, Action::ReadDraftCourse);
    if !own.is_empty() {
        drafts = drafts.add(
            Condition::all()
                .add(course::Column::InstructorId.eq(s.user_id()))
                .add(course::Column::OrganizationId.is_in(own)),
        );
    }
    Condition::all().add(in_scope(course::Column::OrganizationId, read)).add(drafts)
}

/// Tracks of readable organizations (callers also join `courses` and apply [`courses`],
/// since a track is readable exactly when its course is).
pub fn tracks(s: &impl Subject) -> Condition {
    in_scope(track::Column::OrganizationId, policy::scope(s, Action::ReadCourse))
}

/// Memberships of organizations the subject belongs to (actively).
pub fn memberships(s: &impl Subject) -> Condition {
    in_scope(membership::Column::OrganizationId, policy::scope(s, Action::ReadOrganization))
}

/// Invitations of the organizations where the subject manages members.
pub fn invitations(s: &impl Subject) -> Condition {
    in_scope(invitation::Column::OrganizationId, policy::scope(s, Action::ManageMembers))
}

/// Invitations of the organizations the subject actively belongs to (whether their role
/// may act on them is the guard's question).
pub fn invitations_of_members(s: &impl Subject) -> Condition {
    in_scope(invitation::Column::OrganizationId, policy::scope(s, Action::ReadOrganization))
}

/// Audit events of the organizations whose log the subject may read.
pub fn audit_events(s: &impl Subject) -> Condition {
    in_scope(audit_event::Column::OrganizationId, policy::scope(s, Action::ReadAuditLog))
}
