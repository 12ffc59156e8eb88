//! The permission matrix as pure functions over (subject, action, resource).
//!
//! Guards, `viewerCan`, `explainAccess`, the SQL tenant filters, introspection
//! visibility and `docs/PERMISSIONS.md` all ask this module, so they cannot disagree.
//! Nothing here touches the database or the request: it is unit-tested exhaustively.

use uuid::Uuid;

use super::Role;

/// Everything a viewer may try to do; each is decided by one rule of the permission matrix.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    ReadOrganization,
    ReadOrganizationSettings,
    UpdateOrganization,
    ReadMembers,
    ManageMembers,
    ReadCourse,
    ReadDraftCourse,
    ReadCourseMetadata,
    CreateCourse,
    UpdateCourse,
    DeleteCourse,
    ManageTracks,
    ReadUserPrivate,
    ReadAuditLog,
    AcceptInvitation,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::ReadOrganization,
        Action::ReadOrganizationSettings,
        Action::UpdateOrganization,
        Action::ReadMembers,
        Action::ManageMembers,
        Action::ReadCourse,
        Action::ReadDraftCourse,
        Action::ReadCourseMetadata,
        Action::CreateCourse,
        Action::UpdateCourse,
        Action::DeleteCourse,
        Action::ManageTracks,
        Action::ReadUserPrivate,
        Action::ReadAuditLog,
        Action::AcceptInvitation,
    ];

    /// The GraphQL spelling (`READ_COURSE`), from the enum's derive.
    pub fn as_str(self) -> &'static str {
        entity::graphql_name(self)
    }

    /// What kind of resource the action applies to.
    pub const fn target(self) -> Target {
        match self {
            Action::ReadOrganization
            | Action::ReadOrganizationSettings
            | Action::UpdateOrganization
            | Action::ReadMembers
            | Action::ManageMembers
            | Action::CreateCourse
            | Action::ReadAuditLog => Target::Organization,
            Action::ReadCourse
            | Action::ReadDraftCourse
            | Action::ReadCourseMetadata
            | Action::UpdateCourse
            | Action::DeleteCourse
            | Action::ManageTracks => Target::Course,
            Action::ReadUserPrivate => Target::User,
            Action::AcceptInvitation => Target::Invitation,
        }
    }
}

/// The kind of resource an action is asked about.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Organization,
    Course,
    User,
    Invitation,
}

/// Why access was granted or refused.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AccessReason {
    GrantedByRole,
    GrantedAsOwner,
    GrantedAsSelf,
    GrantedAsPlatformAdmin,
    NotAMember,
    MembershipInactive,
    InsufficientRole,
    NotOwner,
    NotSelf,
    NotFound,
    /// An invitation addressed to the viewer's email, but the token's email is not verified.
    EmailNotVerified,
}

impl AccessReason {
    /// The GraphQL spelling, also used as `extensions.reason`.
    pub fn as_str(self) -> &'static str {
        entity::graphql_name(self)
    }
}

/// One row of the matrix.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable name, reported as `extensions.policy`.
    pub name: &'static str,
    /// The lowest role granted unconditionally.
    pub min_role: Role,
    /// The lowest role granted when the viewer owns the resource (is the course's instructor).
    pub owner_min_role: Option<Role>,
    /// Whether the subject's own user row is always granted.
    pub self_grants: bool,
}

impl Rule {
    /// Every role that can be granted this action in some case, highest first.
    pub fn required_roles(&self) -> &'static [Role] {
        let lowest = match self.owner_min_role {
            Some(o) if o < self.min_role => o,
            _ => self.min_role,
        };
        lowest.and_above()
    }

    /// A one-line description for the generated docs.
    pub fn describe(&self) -> String {
        let mut s = match self.min_role {
            Role::Viewer => "any active member".to_owned(),
            Role::Admin => "ADMIN".to_owned(),
            r => format!("{} and above", r.as_str()),
        };
        if let Some(o) = self.owner_min_role {
            s.push_str(&format!("; {} when they own the course", o.as_str()));
        }
        if self.self_grants {
            s = format!("self, or {s} of an organization the user belongs to");
        }
        s
    }
}

/// The matrix itself: one rule per action.
pub const fn rule(action: Action) -> Rule {
    const fn r(name: &'static str, min_role: Role, owner: Option<Role>, self_grants: bool) -> Rule {
        Rule { name, min_role, owner_min_role: owner, self_grants }
    }
    use Role::*;
    match action {
        Action::ReadOrganization => r("organization.read:member", Viewer, None, false),
        Action::ReadOrganizationSettings => r("organization.settings:admin", Admin, None, false),
        Action::UpdateOrganization => r("organization.update:admin", Admin, None, false),
        Action::ReadMembers => r("organization.members.read:instructor", Instructor, None, false),
        Action::ManageMembers => r("organization.members.manage:admin", Admin, None, false),
        Action::ReadCourse => r("course.read:member", Viewer, None, false),
        Action::ReadDraftCourse => r("course.read_draft:instructor", Instructor, None, false),
        Action::ReadCourseMetadata => r("course.metadata:admin_or_owner", Admin, Some(Instructor), false),
        Action::CreateCourse => r("course.create:instructor", Instructor, None, false),
        Action::UpdateCourse => r("course.update:admin_or_owner", Admin, Some(Instructor), false),
        Action::DeleteCourse => r("course.delete:admin", Admin, None, false),
        Action::ManageTracks => r("course.tracks.manage:admin_or_owner", Admin, Some(Instructor), false),
        Action::ReadUserPrivate => r("user.private:self_or_admin", Admin, None, true),
        Action::ReadAuditLog => r("organization.audit_log.read:admin", Admin, None, false),
        // Not a role's power: only the person the invitation is addressed to, with a
        // verified email (see `decide`); `self_grants` marks it so in docs and visibility.
        Action::AcceptInvitation => r("invitation.accept:invitee_verified_email", Viewer, None, true),
    }
}

/// A viewer's standing in one organization.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Active(Role),
    Inactive(Role),
}

/// Who is asking. Implemented by the request's viewer; tests build their own.
pub trait Subject {
    fn user_id(&self) -> Uuid;
    fn is_platform_admin(&self) -> bool;
    /// The subject's membership in `org`, if any.
    fn standing(&self, org: Uuid) -> Option<Standing>;
    /// The organizations where the subject holds an active membership, with the role.
    fn active_roles(&self) -> Vec<(Uuid, Role)>;

    /// The role the policy uses in `org`: ADMIN for a platform admin, else the active membership's.
    fn effective_role(&self, org: Uuid) -> Option<Role> {
        if self.is_platform_admin() {
            return Some(Role::Admin);
        }
        match self.standing(org) {
            Some(Standing::Active(r)) => Some(r),
            _ => None,
        }
    }

    /// The highest role held anywhere (ADMIN for a platform admin); drives introspection visibility.
    fn highest_role(&self) -> Option<Role> {
        if self.is_platform_admin() {
            return Some(Role::Admin);
        }
        self.active_roles().into_iter().map(|(_, r)| r).max()
    }
}

/// One active member of one organization, as a subject: how `whoCan` asks the policy
/// about each member.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub role: Role,
}

impl Subject for Member {
    fn user_id(&self) -> Uuid {
        self.user_id
    }
    fn is_platform_admin(&self) -> bool {
        false
    }
    fn standing(&self, org: Uuid) -> Option<Standing> {
        (org == self.organization_id).then_some(Standing::Active(self.role))
    }
    fn active_roles(&self) -> Vec<(Uuid, Role)> {
        vec![(self.organization_id, self.role)]
    }
}

/// What an action is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    Organization {
        id: Uuid,
    },
    Course {
        organization_id: Uuid,
        instructor_id: Option<Uuid>,
        is_published: bool,
    },
    /// A user, with the organizations (among the subject's) they hold a membership in.
    User {
        id: Uuid,
        organization_ids: Vec<Uuid>,
    },
    /// An invitation: for ACCEPT_INVITATION, whether it is addressed to the subject's
    /// email (from the token) and whether that email is verified; for any other action,
    /// its organization is what is asked about.
    Invitation {
        organization_id: Uuid,
        addressed_to_subject: bool,
        email_verified: bool,
    },
}

impl Resource {
    fn organization_id(&self) -> Option<Uuid> {
        match self {
            Resource::Organization { id } => Some(*id),
            Resource::Course { organization_id, .. } | Resource::Invitation { organization_id, .. } => {
                Some(*organization_id)
            }
            Resource::User { .. } => None,
        }
    }
}

/// The policy's answer, with everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: AccessReason,
    pub action: Action,
    pub required_roles: &'static [Role],
    pub viewer_role: Option<Role>,
    pub organization_id: Option<Uuid>,
    pub policy: &'static str,
}

/// Reading a draft is its own action: asking READ_COURSE of an unpublished course
/// is answered as READ_DRAFT_COURSE.
pub fn effective_action(action: Action, resource: &Resource) -> Action {
    match (action, resource) {
        (Action::ReadCourse, Resource::Course { is_published: false, .. }) => Action::ReadDraftCourse,
        _ => action,
    }
}

/// Decides `action` on `resource` for `subject`. Deny by default: every path that
/// does not match a granting rule is a refusal with its reason.
pub fn check(subject: &impl Subject, action: Action, resource: &Resource) -> Decision {
    let action = effective_action(action, resource);
    decide(subject, action, rule(action), resource)
}

/// Choosing someone else as a course's instructor (`instructorId` on create/update) is
/// for ADMINs only; the decision is reported under the mutation's own action.
pub const ASSIGN_INSTRUCTOR: Rule =
    Rule { name: "course.instructor.assign:admin", min_role: Role::Admin, owner_min_role: None, self_grants: false };

pub fn check_assign_instructor(subject: &impl Subject, action: Action, organization_id: Uuid) -> Decision {
    decide(subject, action, ASSIGN_INSTRUCTOR, &Resource::Organization { id: organization_id })
}

fn decide(subject: &impl Subject, action: Action, rule: Rule, resource: &Resource) -> Decision {
    let decision = |allowed, reason, viewer_role, organization_id| Decision {
        allowed,
        reason,
        action,
        required_roles: rule.required_roles(),
        viewer_role,
        organization_id,
        policy: rule.name,
    };

    if action == Action::AcceptInvitation {
        // The invitee's own question: no role and no platform-admin power answers it.
        let Resource::Invitation { organization_id, addressed_to_subject, email_verified } = *resource else {
            return not_found(action);
        };
        let viewer_role = match subject.standing(organization_id) {
            Some(Standing::Active(r) | Standing::Inactive(r)) => Some(r),
            None => None,
        };
        let d = |allowed, reason| Decision {
            allowed,
            reason,
            action,
            required_roles: &[],
            viewer_role,
            organization_id: Some(organization_id),
            policy: rule.name,
        };
        return match (addressed_to_subject, email_verified) {
            (false, _) => not_found(action),
            (true, false) => d(false, AccessReason::EmailNotVerified),
            (true, true) => d(true, AccessReason::GrantedAsSelf),
        };
    }
    let (org, owner) = match resource {
        Resource::User { id, organization_ids } => {
            if rule.self_grants && *id == subject.user_id() {
                return decision(true, AccessReason::GrantedAsSelf, None, None);
            }
            // The organization where the subject stands highest decides.
            let best = organization_ids
                .iter()
                .filter_map(|o| match subject.standing(*o) {
                    Some(Standing::Active(r)) => Some((*o, r)),
                    _ => None,
                })
                .max_by_key(|(_, r)| *r);
            match best {
                Some((o, _)) => (Some(o), None),
                None => (organization_ids.first().copied(), None),
            }
        }
        Resource::Course { instructor_id, .. } => (resource.organization_id(), *instructor_id),
        Resource::Organization { .. } | Resource::Invitation { .. } => (resource.organization_id(), None),
    };

    let by_membership = match org.and_then(|o| subject.standing(o)) {
        None => decision(false, AccessReason::NotAMember, None, org),
        Some(Standing::Inactive(r)) => decision(false, AccessReason::MembershipInactive, Some(r), org),
        Some(Standing::Active(role)) => {
            if role >= rule.min_role {
                decision(true, AccessReason::GrantedByRole, Some(role), org)
            } else if rule.owner_min_role.is_some_and(|m| role >= m) {
                if owner.is_some() && owner == Some(subject.user_id()) {
                    decision(true, AccessReason::GrantedAsOwner, Some(role), org)
                } else {
                    decision(false, AccessReason::NotOwner, Some(role), org)
                }
            } else if rule.self_grants {
                decision(false, AccessReason::NotSelf, Some(role), org)
            } else {
                decision(false, AccessReason::InsufficientRole, Some(role), org)
            }
        }
    };
    if !by_membership.allowed && subject.is_platform_admin() {
        return Decision {
            allowed: true,
            reason: AccessReason::GrantedAsPlatformAdmin,
            viewer_role: Some(Role::Admin),
            ..by_membership
        };
    }
    by_membership
}

/// The answer for a resource the subject cannot see at all (missing, another tenant's,
/// a draft below their role): indistinguishable from missing.
pub fn not_found(action: Action) -> Decision {
    let rule = rule(action);
    Decision {
        allowed: false,
        reason: AccessReason::NotFound,
        action,
        required_roles: rule.required_roles(),
        viewer_role: None,
        organization_id: None,
        policy: rule.name,
    }
}

/// "A course of this organization that the viewer does not own" (a draft for
/// READ_DRAFT_COURSE): what a course action is asked about when no course is named.
pub fn generic_course(organization_id: Uuid, action: Action) -> Resource {
    Resource::Course { organization_id, instructor_id: None, is_published: action != Action::ReadDraftCourse }
}

/// Convenience: `check(..).allowed`.
pub fn allows(subject: &impl Subject, action: Action, resource: &Resource) -> bool {
    check(subject, action, resource).allowed
}

/// The organizations whose rows the subject may read, for SQL `WHERE organization_id IN (…)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgScope {
    /// A platform admin: no organization filter.
    All,
    /// Exactly these organizations.
    Only(Vec<Uuid>),
}

impl OrgScope {
    pub fn contains(&self, org: Uuid) -> bool {
        match self {
            OrgScope::All => true,
            OrgScope::Only(v) => v.contains(&org),
        }
    }
}

/// Where `action` is granted by role alone (no ownership, no self): the tenant filter
/// for list queries. READ_COURSE gives the organizations whose published courses are
/// readable, READ_DRAFT_COURSE those whose drafts are.
pub fn scope(subject: &impl Subject, action: Action) -> OrgScope {
    if subject.is_platform_admin() {
        return OrgScope::All;
    }
    let min = rule(action).min_role;
    OrgScope::Only(subject.active_roles().into_iter().filter(|(_, r)| *r >= min).map(|(o, _)| o).collect())
}

pub use super::fields::{FIELD_RULES, FieldAccess, field_access, field_visible_to};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct S {
        id: Uuid,
        platform_admin: bool,
        m: HashMap<Uuid, Standing>,
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
        fn active_roles(&self) -> Vec<(Uuid, Role)> {
            self.m
                .iter()
                .filter_map(|(o, s)| match s {
                    Standing::Active(r) => Some((*o, *r)),
                    Standing::Inactive(_) => None,
                })
                .collect()
        }
    }

    fn org(n: u128) -> Uuid {
        Uuid::from_u128(n)
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
            ReadOrganizationSettings | UpdateOrganization | ManageMembers | DeleteCourse => role == Admin,
            ReadMembers | ReadDraftCourse | CreateCourse => matches!(role, Admin | Instructor),
            ReadCourseMetadata | UpdateCourse | ManageTracks => role == Admin,
            ReadUserPrivate | ReadAuditLog => role == Admin,
            // Decided by the invitation, not the role (see its own test).
            AcceptInvitation => true,
        }
    }

    fn resource_for(action: Action, owner: Option<Uuid>) -> Resource {
        match action.target() {
            Target::Organization => Resource::Organization { id: org(1) },
            Target::Course => course(owner, action != Action::ReadDraftCourse),
            Target::User => Resource::User { id: Uuid::from_u128(0xBBBB), organization_ids: vec![org(1)] },
            Target::Invitation => {
                Resource::Invitation { organization_id: org(1), addressed_to_subject: true, email_verified: true }
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
                let s = subject(Some(Standing::Active(role)));
                let d = check(&s, action, &resource_for(action, Some(Uuid::from_u128(0xCCCC))));
                assert_eq!(d.allowed, expected(action, role), "{action:?} as {role:?}");
                assert_eq!(d.viewer_role, Some(role));
                assert_eq!(d.organization_id, Some(org(1)));
                if d.allowed {
                    assert_eq!(d.reason, AccessReason::GrantedByRole);
                } else {
                    assert!(!d.required_roles.contains(&role) || rule(d.action).owner_min_role.is_some());
                    assert!(matches!(
                        d.reason,
                        AccessReason::InsufficientRole | AccessReason::NotOwner | AccessReason::NotSelf
                    ));
                }
            }
        }
    }

    #[test]
    fn owning_instructor_gets_owner_actions_and_nothing_more() {
        let mut s = subject(Some(Standing::Active(Role::Instructor)));
        s.id = Uuid::from_u128(0xCCCC);
        for action in [Action::ReadCourseMetadata, Action::UpdateCourse, Action::ManageTracks] {
            let d = check(&s, action, &course(Some(s.id), true));
            assert!(d.allowed, "{action:?}");
            assert_eq!(d.reason, AccessReason::GrantedAsOwner);
            let other = check(&s, action, &course(Some(Uuid::from_u128(7)), true));
            assert!(!other.allowed);
            assert_eq!(other.reason, AccessReason::NotOwner);
            assert_eq!(other.required_roles, &[Role::Admin, Role::Instructor]);
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
            let mut s = subject(Some(Standing::Active(role)));
            s.id = Uuid::from_u128(0xCCCC);
            let d = check(&s, Action::UpdateCourse, &course(Some(s.id), true));
            assert_eq!((d.allowed, d.reason), (false, AccessReason::InsufficientRole));
        }
    }

    #[test]
    fn drafts_are_read_as_read_draft_course() {
        let s = subject(Some(Standing::Active(Role::Member)));
        let d = check(&s, Action::ReadCourse, &course(None, false));
        assert!(!d.allowed);
        assert_eq!(d.action, Action::ReadDraftCourse);
        assert_eq!(d.reason, AccessReason::InsufficientRole);
        let s = subject(Some(Standing::Active(Role::Instructor)));
        assert!(check(&s, Action::ReadCourse, &course(None, false)).allowed);
    }

    #[test]
    fn strangers_and_removed_members_get_nothing() {
        for action in role_actions() {
            let d = check(&subject(None), action, &resource_for(action, None));
            assert!(!d.allowed);
            assert_eq!(d.reason, AccessReason::NotAMember, "{action:?}");
            assert_eq!(d.viewer_role, None);
            let d = check(&subject(Some(Standing::Inactive(Role::Admin))), action, &resource_for(action, None));
            assert!(!d.allowed);
            assert_eq!(d.reason, AccessReason::MembershipInactive, "{action:?}");
        }
    }

    #[test]
    fn another_organization_is_never_granted_by_a_role_here() {
        let s = subject(Some(Standing::Active(Role::Admin)));
        let other = Resource::Organization { id: org(2) };
        for action in Action::ALL.into_iter().filter(|a| a.target() == Target::Organization) {
            assert_eq!(check(&s, action, &other).reason, AccessReason::NotAMember);
        }
    }

    #[test]
    fn self_may_always_read_its_private_fields() {
        let s = subject(Some(Standing::Active(Role::Viewer)));
        let me = Resource::User { id: s.id, organization_ids: vec![] };
        let d = check(&s, Action::ReadUserPrivate, &me);
        assert_eq!((d.allowed, d.reason), (true, AccessReason::GrantedAsSelf));
        let other = Resource::User { id: Uuid::from_u128(5), organization_ids: vec![org(1)] };
        let d = check(&s, Action::ReadUserPrivate, &other);
        assert_eq!((d.allowed, d.reason), (false, AccessReason::NotSelf));
        assert_eq!(d.required_roles, &[Role::Admin]);
    }

    #[test]
    fn user_private_uses_the_highest_shared_organization() {
        let mut s = subject(Some(Standing::Active(Role::Member)));
        s.m.insert(org(2), Standing::Active(Role::Admin));
        let u = Resource::User { id: Uuid::from_u128(5), organization_ids: vec![org(1), org(2)] };
        let d = check(&s, Action::ReadUserPrivate, &u);
        assert!(d.allowed);
        assert_eq!(d.organization_id, Some(org(2)));
    }

    #[test]
    fn platform_admin_is_admin_everywhere_and_says_so() {
        let s = S { id: Uuid::from_u128(9), platform_admin: true, ..Default::default() };
        for action in role_actions() {
            let d = check(&s, action, &resource_for(action, None));
            assert!(d.allowed);
            assert_eq!(d.reason, AccessReason::GrantedAsPlatformAdmin);
        }
        // A real membership still explains itself by role.
        let mut s = s;
        s.m.insert(org(1), Standing::Active(Role::Admin));
        assert_eq!(check(&s, Action::DeleteCourse, &course(None, true)).reason, AccessReason::GrantedByRole);
        assert_eq!(scope(&s, Action::ReadDraftCourse), OrgScope::All);
    }

    #[test]
    fn scopes_follow_the_read_rules() {
        let mut s = subject(Some(Standing::Active(Role::Member)));
        s.m.insert(org(2), Standing::Active(Role::Instructor));
        s.m.insert(org(3), Standing::Inactive(Role::Admin));
        let mut read = match scope(&s, Action::ReadCourse) {
            OrgScope::Only(v) => v,
            OrgScope::All => panic!(),
        };
        read.sort();
        assert_eq!(read, vec![org(1), org(2)]);
        assert_eq!(scope(&s, Action::ReadDraftCourse), OrgScope::Only(vec![org(2)]));
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
        let admin = subject(Some(Standing::Active(Role::Admin)));
        assert!(check(&admin, Action::ManageMembers, &inv(false, false)).allowed);
        let member = subject(Some(Standing::Active(Role::Member)));
        assert_eq!(check(&member, Action::ManageMembers, &inv(true, true)).reason, AccessReason::InsufficientRole);
    }

    #[test]
    fn every_rule_has_a_unique_name_and_required_roles() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| rule(*a).name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        for a in Action::ALL {
            assert!(rule(a).required_roles().contains(&Role::Admin));
        }
    }

    #[test]
    fn only_admins_assign_instructors() {
        for role in Role::ALL {
            let s = subject(Some(Standing::Active(role)));
            let d = check_assign_instructor(&s, Action::CreateCourse, org(1));
            assert_eq!(d.allowed, role == Role::Admin, "{role:?}");
            assert_eq!(d.action, Action::CreateCourse);
            assert_eq!(d.policy, ASSIGN_INSTRUCTOR.name);
        }
    }
}
