//! The policy as pure functions over (subject, action, resource), decided by grants.
//!
//! Guards, `viewerCan`, `explainAccess`, `whoCan`, the SQL tenant filters, row-level
//! security settings, introspection visibility, live-update viewer classes, the doctor and
//! `docs/PERMISSIONS.md` all ask this module, so they cannot disagree. Nothing here
//! touches the database or the request: it is unit-tested exhaustively.

use uuid::Uuid;

use super::{
    Role,
    grants::{GrantScope, GrantSet, RoleSet},
    roles::{Policy, RoleGrants},
};

/// Everything a viewer may try to do; each is decided by the grants of the viewer's roles.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Creating, changing, deleting, assigning and unassigning custom roles: ADMIN only,
    /// never grantable to another role.
    ManageRoles,
}

impl Action {
    pub const ALL: [Action; 16] = [
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
        Action::ManageRoles,
    ];

    /// The GraphQL spelling (`READ_COURSE`), from the enum's derive.
    pub fn as_str(self) -> &'static str {
        entity::graphql_name(self)
    }

    /// `READ_COURSE` → `ReadCourse` (exact spelling).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
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
            | Action::ReadAuditLog
            | Action::ManageRoles => Target::Organization,
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

    /// Whether the action can be held at OWN scope: it concerns a course someone teaches.
    pub const fn has_owner(self) -> bool {
        matches!(
            self,
            Action::ReadDraftCourse
                | Action::ReadCourseMetadata
                | Action::UpdateCourse
                | Action::DeleteCourse
                | Action::ManageTracks
        )
    }

    /// Administration stays with ADMIN: no custom role, policy-file role or token
    /// permission holds these.
    pub const fn is_administration(self) -> bool {
        matches!(self, Action::ManageMembers | Action::ManageRoles | Action::UpdateOrganization)
    }

    /// Whether any role can hold it (ACCEPT_INVITATION follows the verified email).
    pub const fn grantable(self) -> bool {
        !matches!(self, Action::AcceptInvitation)
    }

    /// The subject's own user row is always granted (READ_USER_PRIVATE), or only the
    /// subject can be (ACCEPT_INVITATION).
    pub const fn self_grants(self) -> bool {
        matches!(self, Action::ReadUserPrivate | Action::AcceptInvitation)
    }

    /// The rule's stable name, reported as `extensions.policy`.
    pub const fn rule_name(self) -> &'static str {
        match self {
            Action::ReadOrganization => "organization.read:member",
            Action::ReadOrganizationSettings => "organization.settings:admin",
            Action::UpdateOrganization => "organization.update:admin",
            Action::ReadMembers => "organization.members.read:instructor",
            Action::ManageMembers => "organization.members.manage:admin",
            Action::ReadCourse => "course.read:member",
            Action::ReadDraftCourse => "course.read_draft:instructor",
            Action::ReadCourseMetadata => "course.metadata:admin_or_owner",
            Action::CreateCourse => "course.create:instructor",
            Action::UpdateCourse => "course.update:admin_or_owner",
            Action::DeleteCourse => "course.delete:admin",
            Action::ManageTracks => "course.tracks.manage:admin_or_owner",
            Action::ReadUserPrivate => "user.private:self_or_admin",
            Action::ReadAuditLog => "organization.audit_log.read:admin",
            Action::AcceptInvitation => "invitation.accept:invitee_verified_email",
            Action::ManageRoles => "organization.roles.manage:admin",
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
    /// A built-in or policy-file role, which the API does not change or delete.
    BuiltInRole,
}

impl AccessReason {
    /// The GraphQL spelling, also used as `extensions.reason`.
    pub fn as_str(self) -> &'static str {
        entity::graphql_name(self)
    }
}

/// A viewer's standing in one organization.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// An active membership: its built-in role and effective grants.
    Active {
        role: Role,
        grants: GrantSet,
    },
    Inactive(Role),
}

impl Standing {
    pub fn role(&self) -> Role {
        match self {
            Standing::Active { role, .. } | Standing::Inactive(role) => *role,
        }
    }
}

/// One of a subject's roles in an organization, as `grantedBy` names it: a role key, or
/// `token:<permission>` for grants the token brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    pub grants: GrantSet,
}

/// Who is asking. Implemented by the request's viewer and by each member `whoCan` asks
/// about; tests build their own.
pub trait Subject {
    fn user_id(&self) -> Uuid;
    fn is_platform_admin(&self) -> bool;
    /// The subject's membership in `org`, if any.
    fn standing(&self, org: Uuid) -> Option<Standing>;
    /// The organizations where the subject holds an active membership, with its grants.
    fn active_grants(&self) -> Vec<(Uuid, GrantSet)>;
    /// The effective policy (built-in grants, the file's roles).
    fn policy(&self) -> &Policy;
    /// The roles the subject holds in `org` (built-in, assigned, from the token).
    fn held(&self, org: Uuid) -> Vec<Held>;
    /// The organization's own roles (for `grantingRoles`).
    fn organization_roles(&self, org: Uuid) -> &[RoleGrants];

    /// The role the policy reports in `org`: ADMIN for a platform admin, else the active membership's.
    fn effective_role(&self, org: Uuid) -> Option<Role> {
        if self.is_platform_admin() {
            return Some(Role::Admin);
        }
        match self.standing(org) {
            Some(Standing::Active { role, .. }) => Some(role),
            _ => None,
        }
    }

    /// Every grant held anywhere (all for a platform admin): introspection visibility.
    fn all_grants(&self) -> GrantSet {
        if self.is_platform_admin() {
            return GrantSet::all();
        }
        self.active_grants().into_iter().fold(GrantSet::EMPTY, |a, (_, g)| a.union(g))
    }
}

/// One active member of one organization, with the roles assigned to it, as a subject:
/// how `whoCan` asks the policy about each member (stored grants only, never a token's).
pub struct Member<'a> {
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub role: Role,
    /// The custom or policy-file roles assigned, by key.
    pub roles: Vec<String>,
    pub policy: &'a Policy,
    /// The organization's own roles.
    pub catalogue: &'a [RoleGrants],
}

impl Member<'_> {
    fn grants(&self) -> GrantSet {
        self.policy.stored_grants(self.role, self.roles.iter().map(String::as_str), self.catalogue)
    }
}

impl Subject for Member<'_> {
    fn user_id(&self) -> Uuid {
        self.user_id
    }
    fn is_platform_admin(&self) -> bool {
        false
    }
    fn standing(&self, org: Uuid) -> Option<Standing> {
        (org == self.organization_id).then(|| Standing::Active { role: self.role, grants: self.grants() })
    }
    fn active_grants(&self) -> Vec<(Uuid, GrantSet)> {
        vec![(self.organization_id, self.grants())]
    }
    fn policy(&self) -> &Policy {
        self.policy
    }
    fn held(&self, org: Uuid) -> Vec<Held> {
        if org != self.organization_id {
            return Vec::new();
        }
        let built_in = Held { key: self.role.as_str().to_owned(), grants: self.policy.built_in(self.role) };
        let assigned = self
            .roles
            .iter()
            .filter_map(|k| Some(Held { key: k.clone(), grants: self.policy.grants_of(k, self.catalogue)? }));
        std::iter::once(built_in).chain(assigned).collect()
    }
    fn organization_roles(&self, org: Uuid) -> &[RoleGrants] {
        if org == self.organization_id { self.catalogue } else { &[] }
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
    pub fn organization_id(&self) -> Option<Uuid> {
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
    /// The built-in roles that hold the action (some only with ownership).
    pub required_roles: RoleSet,
    pub viewer_role: Option<Role>,
    pub organization_id: Option<Uuid>,
    pub policy: &'static str,
    /// The scope the decision needed: OWN when the subject teaches the course asked about.
    pub scope: GrantScope,
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
/// does not match a grant is a refusal with its reason.
pub fn check(subject: &impl Subject, action: Action, resource: &Resource) -> Decision {
    let action = effective_action(action, resource);
    decide(subject, action, resource)
}

/// The name of the rule for choosing someone else as a course's instructor.
pub const ASSIGN_INSTRUCTOR: &str = "course.instructor.assign:admin";

/// Whether a member whose stored grants are `grants` may be a course's instructor: they
/// hold UPDATE_COURSE, at either scope (for the built-in roles, ADMIN and INSTRUCTOR).
/// Stored grants only: a token's permissions, which come and go per request, never make
/// anyone an instructor.
pub fn may_teach(grants: GrantSet) -> bool {
    grants.has(Action::UpdateCourse)
}

/// Choosing someone else as a course's instructor (`instructorId` on create/update) is
/// the built-in ADMIN's (and the platform admin's), never a grant; the decision is
/// reported under the mutation's own action.
pub fn check_assign_instructor(subject: &impl Subject, action: Action, organization_id: Uuid) -> Decision {
    let org = Some(organization_id);
    let d = |allowed, reason, viewer_role| Decision {
        allowed,
        reason,
        action,
        required_roles: RoleSet::EMPTY.with(Role::Admin),
        viewer_role,
        organization_id: org,
        policy: ASSIGN_INSTRUCTOR,
        scope: GrantScope::Organization,
    };
    let by_membership = match subject.standing(organization_id) {
        None => d(false, AccessReason::NotAMember, None),
        Some(Standing::Inactive(r)) => d(false, AccessReason::MembershipInactive, Some(r)),
        Some(Standing::Active { role: Role::Admin, .. }) => d(true, AccessReason::GrantedByRole, Some(Role::Admin)),
        Some(Standing::Active { role, .. }) => d(false, AccessReason::InsufficientRole, Some(role)),
    };
    platform_admin(subject, by_membership)
}

/// A refusal turned into a grant for a platform admin (ADMIN powers everywhere, audited).
fn platform_admin(subject: &impl Subject, d: Decision) -> Decision {
    if !d.allowed && subject.is_platform_admin() {
        return Decision {
            allowed: true,
            reason: AccessReason::GrantedAsPlatformAdmin,
            viewer_role: Some(Role::Admin),
            ..d
        };
    }
    d
}

fn decide(subject: &impl Subject, action: Action, resource: &Resource) -> Decision {
    let required_roles = subject.policy().required_roles(action);
    let decision = |allowed, reason, viewer_role, organization_id, scope| Decision {
        allowed,
        reason,
        action,
        required_roles,
        viewer_role,
        organization_id,
        policy: action.rule_name(),
        scope,
    };
    if action == Action::AcceptInvitation {
        return accept_invitation(subject, resource);
    }
    let (org, owner) = match resource {
        Resource::User { id, organization_ids } => {
            if action.self_grants() && *id == subject.user_id() {
                return decision(true, AccessReason::GrantedAsSelf, None, None, GrantScope::Organization);
            }
            (user_organization(subject, action, organization_ids), None)
        }
        Resource::Course { instructor_id, .. } => (resource.organization_id(), *instructor_id),
        Resource::Organization { .. } | Resource::Invitation { .. } => (resource.organization_id(), None),
    };
    let teaches = owner.is_some() && owner == Some(subject.user_id());
    let needed = if teaches { GrantScope::Own } else { GrantScope::Organization };
    let by_membership = match org.and_then(|o| subject.standing(o)) {
        None => decision(false, AccessReason::NotAMember, None, org, needed),
        Some(Standing::Inactive(r)) => decision(false, AccessReason::MembershipInactive, Some(r), org, needed),
        Some(Standing::Active { role, grants }) => match grants.scope_of(action) {
            Some(GrantScope::Organization) => {
                decision(true, AccessReason::GrantedByRole, Some(role), org, GrantScope::Organization)
            }
            Some(GrantScope::Own) if teaches => decision(true, AccessReason::GrantedAsOwner, Some(role), org, needed),
            Some(GrantScope::Own) => decision(false, AccessReason::NotOwner, Some(role), org, needed),
            None if action.self_grants() => decision(false, AccessReason::NotSelf, Some(role), org, needed),
            None => decision(false, AccessReason::InsufficientRole, Some(role), org, needed),
        },
    };
    platform_admin(subject, by_membership)
}

/// The invitee's own question: no role and no platform-admin power answers it.
fn accept_invitation(subject: &impl Subject, resource: &Resource) -> Decision {
    let action = Action::AcceptInvitation;
    let Resource::Invitation { organization_id, addressed_to_subject, email_verified } = *resource else {
        return not_found(action);
    };
    let d = |allowed, reason| Decision {
        allowed,
        reason,
        action,
        required_roles: RoleSet::EMPTY,
        viewer_role: subject.standing(organization_id).map(|s| s.role()),
        organization_id: Some(organization_id),
        policy: action.rule_name(),
        scope: GrantScope::Organization,
    };
    match (addressed_to_subject, email_verified) {
        (false, _) => not_found(action),
        (true, false) => d(false, AccessReason::EmailNotVerified),
        (true, true) => d(true, AccessReason::GrantedAsSelf),
    }
}

/// Of the organizations a user shares with the subject, the one that decides: one where
/// the subject holds `action`, else the one where they stand highest.
fn user_organization(subject: &impl Subject, action: Action, organization_ids: &[Uuid]) -> Option<Uuid> {
    let active = |o: &Uuid| match subject.standing(*o) {
        Some(Standing::Active { role, grants }) => Some((*o, role, grants)),
        _ => None,
    };
    let mut shared: Vec<_> = organization_ids.iter().filter_map(active).collect();
    shared.sort_by_key(|(_, role, grants)| (grants.holds(action, GrantScope::Organization), *role));
    shared.last().map(|(o, _, _)| *o).or_else(|| organization_ids.first().copied())
}

/// The answer for a resource the subject cannot see at all (missing, another tenant's,
/// a draft they may not read): indistinguishable from missing.
pub fn not_found(action: Action) -> Decision {
    Decision {
        allowed: false,
        reason: AccessReason::NotFound,
        action,
        required_roles: Policy::default().required_roles(action),
        viewer_role: None,
        organization_id: None,
        policy: action.rule_name(),
        scope: GrantScope::Organization,
    }
}

/// "A course of this organization that the viewer does not teach" (a draft for
/// READ_DRAFT_COURSE): what a course action is asked about when no course is named.
pub fn generic_course(organization_id: Uuid, action: Action) -> Resource {
    Resource::Course { organization_id, instructor_id: None, is_published: action != Action::ReadDraftCourse }
}

/// Convenience: `check(..).allowed`.
pub fn allows(subject: &impl Subject, action: Action, resource: &Resource) -> bool {
    check(subject, action, resource).allowed
}

/// The keys of the subject's roles whose grants allowed `d` (`grantedBy`): empty when
/// denied; ADMIN for a platform admin acting outside their own memberships.
pub fn granted_by(subject: &impl Subject, d: &Decision) -> Vec<String> {
    match (d.allowed, d.reason, d.organization_id) {
        (true, AccessReason::GrantedAsPlatformAdmin, _) => vec![Role::Admin.as_str().to_owned()],
        (true, AccessReason::GrantedByRole | AccessReason::GrantedAsOwner, Some(org)) => {
            subject.held(org).into_iter().filter(|h| h.grants.holds(d.action, d.scope)).map(|h| h.key).collect()
        }
        _ => Vec::new(),
    }
}

/// The keys of every role of the decision's organization that would allow it
/// (`grantingRoles`): built-in, policy-file and the organization's own roles holding the
/// action at ORGANIZATION scope, or at OWN scope when the subject teaches the course.
/// Empty for NOT_FOUND and NOT_A_MEMBER.
pub fn granting_roles(subject: &impl Subject, d: &Decision) -> Vec<String> {
    let Some(org) = d.organization_id else { return Vec::new() };
    if matches!(d.reason, AccessReason::NotFound | AccessReason::NotAMember) || !d.action.grantable() {
        return Vec::new();
    }
    let policy = subject.policy();
    let built_in = policy.built_in_roles().map(|r| (r.key.to_string(), r.grants));
    let file = policy.file_roles().iter().map(|r| (r.key.to_string(), r.grants));
    let own = subject.organization_roles(org).iter().map(|r| (r.key.to_string(), r.grants));
    built_in.chain(file).chain(own).filter(|(_, g)| g.holds(d.action, d.scope)).map(|(k, _)| k).collect()
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

/// Where `action` is held at ORGANIZATION scope: the tenant filter for list queries.
/// READ_COURSE gives the organizations whose published courses are readable,
/// READ_DRAFT_COURSE those whose drafts all are.
pub fn scope(subject: &impl Subject, action: Action) -> OrgScope {
    if subject.is_platform_admin() {
        return OrgScope::All;
    }
    OrgScope::Only(
        subject
            .active_grants()
            .into_iter()
            .filter(|(_, g)| g.holds(action, GrantScope::Organization))
            .map(|(o, _)| o)
            .collect(),
    )
}

/// Where `action` is held only at OWN scope: the organizations where the subject's own
/// courses (and only those) qualify, e.g. their own drafts.
pub fn own_scope(subject: &impl Subject, action: Action) -> Vec<Uuid> {
    if subject.is_platform_admin() {
        return Vec::new();
    }
    subject
        .active_grants()
        .into_iter()
        .filter(|(_, g)| g.scope_of(action) == Some(GrantScope::Own))
        .map(|(o, _)| o)
        .collect()
}

pub use super::fields::{FIELD_RULES, FieldAccess, field_access, field_visible_to};

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
