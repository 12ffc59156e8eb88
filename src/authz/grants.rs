//! Grants, the unit of the policy: an action at a scope. `ORGANIZATION` covers every
//! resource of the organization; `OWN` only the courses the viewer instructs, and their
//! tracks. A role is a named set of grants; a membership's effective grants are the union
//! of its roles'.
//!
//! A [`GrantSet`] is two bitsets over [`Action`], so sets are copied, compared, hashed and
//! unioned for free: viewer classes, cache keys and every guard use them as values.

use std::fmt;

use super::{Action, Role};

/// Where a grant applies.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantScope {
    /// Only the courses the viewer instructs, and their tracks.
    Own,
    /// Every resource of the organization.
    Organization,
}

impl GrantScope {
    pub fn as_str(self) -> &'static str {
        entity::graphql_name(self)
    }
}

/// An action at a scope.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub action: Action,
    pub scope: GrantScope,
}

impl Grant {
    pub const fn org(action: Action) -> Self {
        Self { action, scope: GrantScope::Organization }
    }

    pub const fn own(action: Action) -> Self {
        Self { action, scope: GrantScope::Own }
    }

    /// `ACTION`, `ACTION:ORGANIZATION` or `ACTION:OWN`; what is wrong otherwise.
    pub fn parse(s: &str) -> Result<Self, GrantError> {
        let (action, scope) = match s.split_once(':') {
            Some((a, sc)) => (a, Some(sc)),
            None => (s, None),
        };
        let action = Action::parse(action).ok_or_else(|| GrantError::UnknownAction(action.to_owned()))?;
        let scope = match scope {
            None | Some("ORGANIZATION") => GrantScope::Organization,
            Some("OWN") => GrantScope::Own,
            Some(other) => return Err(GrantError::UnknownScope(other.to_owned())),
        };
        Grant { action, scope }.checked()
    }

    /// The grant if it can be held at all: OWN only where there is an owner, and never
    /// ACCEPT_INVITATION (it follows the verified email, not a role).
    pub fn checked(self) -> Result<Self, GrantError> {
        if self.action == Action::AcceptInvitation {
            return Err(GrantError::NotGrantable(self.action));
        }
        if self.scope == GrantScope::Own && !self.action.has_owner() {
            return Err(GrantError::NoOwner(self.action));
        }
        Ok(self)
    }
}

impl fmt::Display for Grant {
    /// `READ_COURSE` (organization scope) or `MANAGE_TRACKS:OWN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            GrantScope::Organization => f.write_str(self.action.as_str()),
            GrantScope::Own => write!(f, "{}:OWN", self.action.as_str()),
        }
    }
}

/// Why a grant cannot be held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantError {
    UnknownAction(String),
    UnknownScope(String),
    NoOwner(Action),
    NotGrantable(Action),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::UnknownAction(a) => write!(f, "unknown action `{a}`"),
            GrantError::UnknownScope(s) => write!(f, "unknown scope `{s}` (ORGANIZATION or OWN)"),
            GrantError::NoOwner(a) => write!(
                f,
                "`{}:OWN`: {} has no owner; OWN exists for {}",
                a.as_str(),
                a.as_str(),
                Action::ALL.iter().filter(|a| a.has_owner()).map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
            ),
            GrantError::NotGrantable(a) => {
                write!(f, "{} is not grantable: it follows the invitee's verified email", a.as_str())
            }
        }
    }
}

/// A set of grants. Holding an action at ORGANIZATION scope includes OWN.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct GrantSet {
    org: u32,
    own: u32,
}

const fn bit(a: Action) -> u32 {
    1 << (a as u32)
}

impl GrantSet {
    pub const EMPTY: GrantSet = GrantSet { org: 0, own: 0 };

    /// Every grantable action at ORGANIZATION scope: what ADMIN holds.
    pub fn all() -> Self {
        Action::ALL.iter().filter(|a| a.grantable()).fold(Self::EMPTY, |s, a| s.with(Grant::org(*a)))
    }

    pub fn from_grants(grants: impl IntoIterator<Item = Grant>) -> Self {
        grants.into_iter().fold(Self::EMPTY, GrantSet::with)
    }

    pub const fn with(mut self, g: Grant) -> Self {
        match g.scope {
            GrantScope::Organization => self.org |= bit(g.action),
            GrantScope::Own => self.own |= bit(g.action),
        }
        self
    }

    pub const fn union(self, other: GrantSet) -> Self {
        GrantSet { org: self.org | other.org, own: self.own | other.own }
    }

    /// The widest scope at which `action` is held.
    pub const fn scope_of(&self, action: Action) -> Option<GrantScope> {
        if self.org & bit(action) != 0 {
            Some(GrantScope::Organization)
        } else if self.own & bit(action) != 0 {
            Some(GrantScope::Own)
        } else {
            None
        }
    }

    /// Whether `action` is held at `scope` (ORGANIZATION includes OWN).
    pub const fn holds(&self, action: Action, scope: GrantScope) -> bool {
        match scope {
            GrantScope::Organization => self.org & bit(action) != 0,
            GrantScope::Own => (self.org | self.own) & bit(action) != 0,
        }
    }

    /// Whether `action` is held at any scope.
    pub const fn has(&self, action: Action) -> bool {
        self.holds(action, GrantScope::Own)
    }

    /// Whether every grant of `other` is held here.
    pub const fn covers(&self, other: &GrantSet) -> bool {
        other.org & !self.org == 0 && other.own & !(self.own | self.org) == 0
    }

    pub const fn is_empty(&self) -> bool {
        self.org == 0 && self.own == 0
    }

    /// Whether some action is held only at OWN scope: what the holder may do then depends
    /// on which courses they teach.
    pub const fn owns_something(&self) -> bool {
        self.own & !self.org != 0
    }

    /// The grants, in the order of [`Action::ALL`], each at its widest scope.
    pub fn iter(&self) -> impl Iterator<Item = Grant> + '_ {
        Action::ALL.into_iter().filter_map(|a| self.scope_of(a).map(|scope| Grant { action: a, scope }))
    }

    /// The first grant here whose prerequisite is missing, and why, for a role's grants:
    /// a course's creator teaches it (CREATE_COURSE needs UPDATE_COURSE), and whoever edits
    /// a course reads it as a draft (UPDATE_COURSE needs READ_DRAFT_COURSE at least as
    /// widely), since unpublishing it is an edit. Without this a role could write a row it
    /// may not read back, which row-level security refuses.
    pub fn missing_prerequisite(&self) -> Option<(Action, &'static str)> {
        if self.has(Action::CreateCourse) && !self.has(Action::UpdateCourse) {
            return Some((
                Action::CreateCourse,
                "CREATE_COURSE needs UPDATE_COURSE too (either scope): a course's creator teaches it",
            ));
        }
        match self.scope_of(Action::UpdateCourse) {
            Some(scope) if !self.holds(Action::ReadDraftCourse, scope) => Some((
                Action::UpdateCourse,
                "UPDATE_COURSE needs READ_DRAFT_COURSE at the same scope or wider: whoever edits a course \
                 reads it as a draft",
            )),
            _ => None,
        }
    }

    /// The grants that are not administration actions (what a custom role may hold).
    pub fn administrative(&self) -> Vec<Grant> {
        self.iter().filter(|g| g.action.is_administration()).collect()
    }
}

impl fmt::Debug for GrantSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|g| g.to_string())).finish()
    }
}

impl fmt::Display for GrantSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.iter().map(|g| g.to_string()).collect();
        f.write_str(&all.join(", "))
    }
}

/// A set of built-in roles, listed highest first (`requiredRoles`).
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub const fn with(self, r: Role) -> Self {
        RoleSet(self.0 | (1 << r.rank()))
    }

    pub const fn contains(&self, r: Role) -> bool {
        self.0 & (1 << r.rank()) != 0
    }

    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Highest first.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        Role::ALL.into_iter().filter(|r| self.contains(*r))
    }

    pub fn to_vec(&self) -> Vec<Role> {
        self.iter().collect()
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<T: IntoIterator<Item = Role>>(iter: T) -> Self {
        iter.into_iter().fold(RoleSet::EMPTY, RoleSet::with)
    }
}

/// The built-in roles' grants when no policy file changes them: the permission matrix.
pub fn default_grants(role: Role) -> GrantSet {
    use Action::*;
    let reader = GrantSet::from_grants([Grant::org(ReadOrganization), Grant::org(ReadCourse)]);
    match role {
        Role::Admin => GrantSet::all(),
        Role::Instructor => reader.union(GrantSet::from_grants([
            Grant::org(ReadMembers),
            Grant::org(ReadDraftCourse),
            Grant::own(ReadCourseMetadata),
            Grant::org(CreateCourse),
            Grant::own(UpdateCourse),
            Grant::own(ManageTracks),
        ])),
        Role::Member | Role::Viewer => reader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips_and_wrong_spellings_say_why() {
        for s in ["READ_COURSE", "MANAGE_TRACKS:OWN"] {
            assert_eq!(Grant::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Grant::parse("READ_COURSE:ORGANIZATION").unwrap(), Grant::org(Action::ReadCourse));
        assert_eq!(Grant::parse("READ_COURSES"), Err(GrantError::UnknownAction("READ_COURSES".into())));
        assert_eq!(Grant::parse("READ_COURSE:MINE"), Err(GrantError::UnknownScope("MINE".into())));
        assert_eq!(Grant::parse("CREATE_COURSE:OWN"), Err(GrantError::NoOwner(Action::CreateCourse)));
        assert_eq!(Grant::parse("ACCEPT_INVITATION"), Err(GrantError::NotGrantable(Action::AcceptInvitation)));
    }

    #[test]
    fn organization_scope_includes_own() {
        let s = GrantSet::from_grants([Grant::org(Action::UpdateCourse), Grant::own(Action::ManageTracks)]);
        assert!(s.holds(Action::UpdateCourse, GrantScope::Own));
        assert!(s.holds(Action::ManageTracks, GrantScope::Own));
        assert!(!s.holds(Action::ManageTracks, GrantScope::Organization));
        assert!(!s.has(Action::DeleteCourse));
        assert_eq!(s.scope_of(Action::UpdateCourse), Some(GrantScope::Organization));
        let wider = s.with(Grant::org(Action::ManageTracks));
        assert!(wider.covers(&s) && !s.covers(&wider));
        assert_eq!(wider.iter().count(), 2, "each action once, at its widest scope");
    }

    #[test]
    fn the_default_built_in_roles_are_ordered() {
        let g = |r| default_grants(r);
        assert!(g(Role::Admin).covers(&g(Role::Instructor)));
        assert!(g(Role::Instructor).covers(&g(Role::Member)));
        assert!(g(Role::Member).covers(&g(Role::Viewer)));
        assert!(!g(Role::Admin).has(Action::AcceptInvitation));
        assert!(g(Role::Admin).has(Action::ManageRoles));
    }
}
