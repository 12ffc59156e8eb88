//! Organization roles, ordered ADMIN > INSTRUCTOR > MEMBER > VIEWER.

use std::cmp::Ordering;

// `Ord` follows privilege: `Admin` is the greatest.
/// A member's role in an organization, highest first: ADMIN > INSTRUCTOR > MEMBER > VIEWER.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[graphql(name = "OrgRole")]
pub enum Role {
    Admin,
    Instructor,
    Member,
    Viewer,
}

impl Role {
    /// Every role, highest first.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Instructor, Role::Member, Role::Viewer];

    const fn rank(self) -> u8 {
        match self {
            Role::Admin => 3,
            Role::Instructor => 2,
            Role::Member => 1,
            Role::Viewer => 0,
        }
    }

    /// `ADMIN`, `admin`, `Admin` … → `Role::Admin`.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "ADMIN" => Role::Admin,
            "INSTRUCTOR" => Role::Instructor,
            "MEMBER" => Role::Member,
            "VIEWER" => Role::Viewer,
            _ => return None,
        })
    }

    /// The GraphQL spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Instructor => "INSTRUCTOR",
            Role::Member => "MEMBER",
            Role::Viewer => "VIEWER",
        }
    }

    /// This role and every role above it, highest first.
    pub fn and_above(self) -> &'static [Role] {
        match self {
            Role::Admin => &Self::ALL[..1],
            Role::Instructor => &Self::ALL[..2],
            Role::Member => &Self::ALL[..3],
            Role::Viewer => &Self::ALL[..4],
        }
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<entity::MembershipRole> for Role {
    fn from(r: entity::MembershipRole) -> Self {
        match r {
            entity::MembershipRole::Admin => Role::Admin,
            entity::MembershipRole::Instructor => Role::Instructor,
            entity::MembershipRole::Member => Role::Member,
            entity::MembershipRole::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for entity::MembershipRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => entity::MembershipRole::Admin,
            Role::Instructor => entity::MembershipRole::Instructor,
            Role::Member => entity::MembershipRole::Member,
            Role::Viewer => entity::MembershipRole::Viewer,
        }
    }
}

/// Serialized as its GraphQL spelling (`ADMIN`, …), as in every report.
impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Admin > Role::Instructor);
        assert!(Role::Instructor > Role::Member);
        assert!(Role::Member > Role::Viewer);
        let mut v = vec![Role::Member, Role::Admin, Role::Viewer, Role::Instructor];
        v.sort();
        assert_eq!(v, vec![Role::Viewer, Role::Member, Role::Instructor, Role::Admin]);
    }

    #[test]
    fn and_above_lists_the_roles_that_satisfy_a_minimum() {
        assert_eq!(Role::Admin.and_above(), &[Role::Admin]);
        assert_eq!(Role::Instructor.and_above(), &[Role::Admin, Role::Instructor]);
        assert_eq!(Role::Viewer.and_above().len(), 4);
        for r in Role::ALL {
            assert!(r.and_above().iter().all(|a| *a >= r));
        }
    }

    #[test]
    fn parse_is_case_insensitive_and_round_trips() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(Role::parse(&r.as_str().to_lowercase()), Some(r));
        }
        assert_eq!(Role::parse("owner"), None);
    }
}
