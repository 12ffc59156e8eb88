//! The policy's exhaustive tests: the matrix over grants — every action × scope × own or
//! other course × own or other organization, for built-in, policy-file and custom roles.

use std::collections::HashMap;

use super::*;
use crate::authz::grants::{Grant, default_grants};

#[derive(Default)]
struct S {
    id: Uuid,
    platform_admin: bool,
    m: HashMap<Uuid, Standing>,
    policy: Policy,
    custom: Vec<RoleGrants>,
}

impl Subject for S {
    fn user_id(&self) -> Uuid {
        self.id
    }
    fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }
    fn standing(&self, org: Uuid) -> Option<Standing> {
        self.m.get(&org).copied()
    }
    fn active_grants(&self) -> Vec<(Uuid, GrantSet)> {
        self.m
            .iter()
            .filter_map(|(o, s)| match s {
                Standing::Active { grants, .. } => Some((*o, *grants)),
                Standing::Inactive(_) => None,
            })
            .collect()
    }
    fn policy(&self) -> &Policy {
        &self.policy
    }
    fn held(&self, org: Uuid) -> Vec<Held> {
        match self.m.get(&org) {
            Some(Standing::Active { role, grants }) => {
                let mut h = vec![Held { key: role.as_str().into(), grants: self.policy.built_in(*role) }];
                if *grants != self.policy.built_in(*role) {
                    h.push(Held { key: "extra".into(), grants: *grants });
                }
                h
            }
            _ => Vec::new(),
        }
    }
    fn organization_roles(&self, _org: Uuid) -> &[RoleGrants] {
        &self.custom
    }
}

fn org(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn active(role: Role) -> Standing {
    Standing::Active { role, grants: default_grants(role) }
}

fn subject(role: Option<Standing>) -> S {
    let mut s = S { id: Uuid::from_u128(0xAAAA), ..Default::default() };
    if let Some(st) = role {
        s.m.insert(org(1), st);
    }
    s
}

fn course(owner: Option<Uuid>, published: bool) -> Resource {
    Resource::Course { organization_id: org(1), instructor_id: owner, is_published: published }
}

/// The documented matrix (README, Permissions), written out once more by hand: (action, role) → allowed,
/// for a resource of the subject's own organization that the subject does not own.
fn expected(action: Action, role: Role) -> bool {
    use Action::*;
    use Role::*;
    match action {
        ReadOrganization | ReadCourse => true,
        ReadOrganizationSettings | UpdateOrganization | ManageMembers | ManageRoles | DeleteCourse => role == Admin,
        ReadMembers | ReadDraftCourse | CreateCourse => matches!(role, Admin | Instructor),
        ReadCourseMetadata | UpdateCourse | ManageTracks => role == Admin,
        ReadUserPrivate | ReadAuditLog => role == Admin,
        // Decided by the invitation, not the role (see its own test).
        AcceptInvitation => true,
    }
}

fn resource_for(action: Action, owner: Option<Uuid>, organization: Uuid) -> Resource {
    match action.target() {
        Target::Organization => Resource::Organization { id: organization },
        Target::Course => Resource::Course {
            organization_id: organization,
            instructor_id: owner,
            is_published: action != Action::ReadDraftCourse,
        },
        Target::User => Resource::User { id: Uuid::from_u128(0xBBBB), organization_ids: vec![organization] },
        Target::Invitation => {
            Resource::Invitation { organization_id: organization, addressed_to_subject: true, email_verified: true }
        }
    }
}

/// The actions a role decides (ACCEPT_INVITATION is the invitee's alone).
fn role_actions() -> impl Iterator<Item = Action> {
    Action::ALL.into_iter().filter(|a| *a != Action::AcceptInvitation)
}

#[test]
fn matrix_matches_the_documented_one_for_every_action_and_role() {
    for action in role_actions() {
        for role in Role::ALL {
            let s = subject(Some(active(role)));
            let d = check(&s, action, &resource_for(action, Some(Uuid::from_u128(0xCCCC)), org(1)));
            assert_eq!(d.allowed, expected(action, role), "{action:?} as {role:?}");
            assert_eq!(d.viewer_role, Some(role));
            assert_eq!(d.organization_id, Some(org(1)));
            if d.allowed {
                assert_eq!(d.reason, AccessReason::GrantedByRole);
            } else {
                assert!(!d.required_roles.contains(role) || action.has_owner());
                assert!(matches!(
                    d.reason,
                    AccessReason::InsufficientRole | AccessReason::NotOwner | AccessReason::NotSelf
                ));
            }
        }
    }
}

/// Every action × scope × own or other course × own or other organization, for a role
/// holding just that one grant (as a policy-file or custom role would): the grant decides
/// exactly where it reaches and nowhere else.
#[test]
fn a_single_grant_reaches_exactly_its_scope() {
    let me = Uuid::from_u128(0xAAAA);
    let someone = Uuid::from_u128(0xCCCC);
    for action in role_actions() {
        for scope in [GrantScope::Organization, GrantScope::Own] {
            let Ok(grant) = Grant { action, scope }.checked() else { continue };
            let grants = GrantSet::EMPTY.with(grant);
            let s = subject(Some(Standing::Active { role: Role::Viewer, grants }));
            for (teaches, owner) in [(true, Some(me)), (false, Some(someone))] {
                for (mine, organization) in [(true, org(1)), (false, org(2))] {
                    let d = check(&s, action, &resource_for(action, owner, organization));
                    let want =
                        mine && (scope == GrantScope::Organization || (teaches && action.target() == Target::Course));
                    assert_eq!(d.allowed, want, "{grant} on {teaches}/{mine}");
                    let reason = match (mine, d.allowed, scope) {
                        (false, _, _) => AccessReason::NotAMember,
                        (true, true, GrantScope::Organization) => AccessReason::GrantedByRole,
                        (true, true, GrantScope::Own) => AccessReason::GrantedAsOwner,
                        (true, false, _) => AccessReason::NotOwner,
                    };
                    assert_eq!(d.reason, reason, "{grant} on {teaches}/{mine}");
                }
            }
            // Every other action stays refused.
            for other in role_actions().filter(|a| *a != action) {
                let d = check(&s, other, &resource_for(other, Some(me), org(1)));
                assert!(!d.allowed, "{grant} lets {other:?}");
            }
        }
    }
}

#[test]
fn owning_instructor_gets_owner_actions_and_nothing_more() {
    let mut s = subject(Some(active(Role::Instructor)));
    s.id = Uuid::from_u128(0xCCCC);
    for action in [Action::ReadCourseMetadata, Action::UpdateCourse, Action::ManageTracks] {
        let d = check(&s, action, &course(Some(s.id), true));
        assert!(d.allowed, "{action:?}");
        assert_eq!(d.reason, AccessReason::GrantedAsOwner);
        let other = check(&s, action, &course(Some(Uuid::from_u128(7)), true));
        assert!(!other.allowed);
        assert_eq!(other.reason, AccessReason::NotOwner);
        assert_eq!(other.required_roles.to_vec(), [Role::Admin, Role::Instructor]);
        let unowned = check(&s, action, &course(None, true));
        assert_eq!(unowned.reason, AccessReason::NotOwner);
    }
    // Ownership never lifts DELETE_COURSE.
    let d = check(&s, Action::DeleteCourse, &course(Some(s.id), true));
    assert_eq!((d.allowed, d.reason), (false, AccessReason::InsufficientRole));
}

#[test]
fn members_and_viewers_owning_a_course_gain_nothing() {
    for role in [Role::Member, Role::Viewer] {
        let mut s = subject(Some(active(role)));
        s.id = Uuid::from_u128(0xCCCC);
        let d = check(&s, Action::UpdateCourse, &course(Some(s.id), true));
        assert_eq!((d.allowed, d.reason), (false, AccessReason::InsufficientRole));
    }
}

#[test]
fn drafts_are_read_as_read_draft_course() {
    let s = subject(Some(active(Role::Member)));
    let d = check(&s, Action::ReadCourse, &course(None, false));
    assert!(!d.allowed);
    assert_eq!(d.action, Action::ReadDraftCourse);
    assert_eq!(d.reason, AccessReason::InsufficientRole);
    let s = subject(Some(active(Role::Instructor)));
    assert!(check(&s, Action::ReadCourse, &course(None, false)).allowed);
}

#[test]
fn strangers_and_removed_members_get_nothing() {
    for action in role_actions() {
        let d = check(&subject(None), action, &resource_for(action, None, org(1)));
        assert!(!d.allowed);
        assert_eq!(d.reason, AccessReason::NotAMember, "{action:?}");
        assert_eq!(d.viewer_role, None);
        let d = check(&subject(Some(Standing::Inactive(Role::Admin))), action, &resource_for(action, None, org(1)));
        assert!(!d.allowed);
        assert_eq!(d.reason, AccessReason::MembershipInactive, "{action:?}");
    }
}

#[test]
fn another_organization_is_never_granted_by_a_role_here() {
    let s = subject(Some(active(Role::Admin)));
    let other = Resource::Organization { id: org(2) };
    for action in Action::ALL.into_iter().filter(|a| a.target() == Target::Organization) {
        assert_eq!(check(&s, action, &other).reason, AccessReason::NotAMember);
    }
}

#[test]
fn self_may_always_read_its_private_fields() {
    let s = subject(Some(active(Role::Viewer)));
    let me = Resource::User { id: s.id, organization_ids: vec![] };
    let d = check(&s, Action::ReadUserPrivate, &me);
    assert_eq!((d.allowed, d.reason), (true, AccessReason::GrantedAsSelf));
    let other = Resource::User { id: Uuid::from_u128(5), organization_ids: vec![org(1)] };
    let d = check(&s, Action::ReadUserPrivate, &other);
    assert_eq!((d.allowed, d.reason), (false, AccessReason::NotSelf));
    assert_eq!(d.required_roles.to_vec(), [Role::Admin]);
}

#[test]
fn user_private_uses_the_shared_organization_that_grants_it() {
    let mut s = subject(Some(active(Role::Member)));
    s.m.insert(org(2), active(Role::Admin));
    let u = Resource::User { id: Uuid::from_u128(5), organization_ids: vec![org(1), org(2)] };
    let d = check(&s, Action::ReadUserPrivate, &u);
    assert!(d.allowed);
    assert_eq!(d.organization_id, Some(org(2)));
}

#[test]
fn platform_admin_is_admin_everywhere_and_says_so() {
    let s = S { id: Uuid::from_u128(9), platform_admin: true, ..Default::default() };
    for action in role_actions() {
        let d = check(&s, action, &resource_for(action, None, org(1)));
        assert!(d.allowed);
        assert_eq!(d.reason, AccessReason::GrantedAsPlatformAdmin);
        assert_eq!(granted_by(&s, &d), ["ADMIN"]);
    }
    // A real membership still explains itself by role.
    let mut s = s;
    s.m.insert(org(1), active(Role::Admin));
    assert_eq!(check(&s, Action::DeleteCourse, &course(None, true)).reason, AccessReason::GrantedByRole);
    assert_eq!(scope(&s, Action::ReadDraftCourse), OrgScope::All);
}

#[test]
fn scopes_follow_the_read_grants() {
    let mut s = subject(Some(active(Role::Member)));
    s.m.insert(org(2), active(Role::Instructor));
    s.m.insert(org(3), Standing::Inactive(Role::Admin));
    let ta = default_grants(Role::Member).with(Grant::own(Action::ReadDraftCourse));
    s.m.insert(org(4), Standing::Active { role: Role::Member, grants: ta });
    let mut read = match scope(&s, Action::ReadCourse) {
        OrgScope::Only(v) => v,
        OrgScope::All => panic!(),
    };
    read.sort();
    assert_eq!(read, vec![org(1), org(2), org(4)]);
    assert_eq!(scope(&s, Action::ReadDraftCourse), OrgScope::Only(vec![org(2)]));
    assert_eq!(own_scope(&s, Action::ReadDraftCourse), vec![org(4)]);
}

#[test]
fn only_the_invitee_with_a_verified_email_accepts_an_invitation() {
    let inv = |addressed, verified| Resource::Invitation {
        organization_id: org(1),
        addressed_to_subject: addressed,
        email_verified: verified,
    };
    for subject in [
        subject(None),
        subject(Some(Standing::Inactive(Role::Member))),
        S { platform_admin: true, ..Default::default() },
    ] {
        let d = check(&subject, Action::AcceptInvitation, &inv(true, true));
        assert_eq!((d.allowed, d.reason), (true, AccessReason::GrantedAsSelf));
        let d = check(&subject, Action::AcceptInvitation, &inv(true, false));
        assert_eq!((d.allowed, d.reason), (false, AccessReason::EmailNotVerified));
        assert_eq!(d.organization_id, Some(org(1)));
        // Someone else's invitation looks missing, even to a platform admin.
        let d = check(&subject, Action::AcceptInvitation, &inv(false, true));
        assert_eq!((d.allowed, d.reason, d.organization_id), (false, AccessReason::NotFound, None));
    }
    // Any other action on an invitation is decided by its organization.
    let admin = subject(Some(active(Role::Admin)));
    assert!(check(&admin, Action::ManageMembers, &inv(false, false)).allowed);
    let member = subject(Some(active(Role::Member)));
    assert_eq!(check(&member, Action::ManageMembers, &inv(true, true)).reason, AccessReason::InsufficientRole);
}

#[test]
fn every_rule_has_a_unique_name_and_admin_among_its_roles() {
    let mut names: Vec<_> = Action::ALL.iter().map(|a| a.rule_name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Action::ALL.len());
    for a in Action::ALL.into_iter().filter(|a| a.grantable()) {
        assert!(Policy::default().required_roles(a).contains(Role::Admin), "{a:?}");
    }
}

#[test]
fn only_admins_assign_instructors() {
    for role in Role::ALL {
        let s = subject(Some(active(role)));
        let d = check_assign_instructor(&s, Action::CreateCourse, org(1));
        assert_eq!(d.allowed, role == Role::Admin, "{role:?}");
        assert_eq!(d.action, Action::CreateCourse);
        assert_eq!(d.policy, ASSIGN_INSTRUCTOR);
    }
    // Not even a custom grant of every course action makes a non-ADMIN choose instructors.
    let all = GrantSet::all();
    let s = subject(Some(Standing::Active { role: Role::Member, grants: all }));
    assert!(!check_assign_instructor(&s, Action::UpdateCourse, org(1)).allowed);
}

#[test]
fn granted_by_and_granting_roles_name_the_roles() {
    let ta = RoleGrants {
        key: "teaching_assistant".into(),
        grants: default_grants(Role::Member).with(Grant::own(Action::ManageTracks)),
    };
    let mut s = subject(Some(Standing::Active { role: Role::Member, grants: ta.grants }));
    s.custom = vec![ta];
    // Teaching the course: the TA role's OWN grant allows it, and says so.
    let d = check(&s, Action::ManageTracks, &course(Some(s.id), true));
    assert_eq!((d.allowed, d.reason), (true, AccessReason::GrantedAsOwner));
    assert_eq!(granted_by(&s, &d), ["extra"]);
    assert_eq!(granting_roles(&s, &d), ["ADMIN", "INSTRUCTOR", "teaching_assistant"]);
    // Someone else's course: only ORGANIZATION scope would do.
    let d = check(&s, Action::ManageTracks, &course(Some(Uuid::from_u128(3)), true));
    assert_eq!((d.allowed, d.reason), (false, AccessReason::NotOwner));
    assert!(granted_by(&s, &d).is_empty());
    assert_eq!(granting_roles(&s, &d), ["ADMIN"]);
    // Nothing for a stranger.
    let d = check(&subject(None), Action::ManageTracks, &course(None, true));
    assert!(granting_roles(&subject(None), &d).is_empty());
}
