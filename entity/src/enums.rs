//! The enums the database stores and the API speaks, each spelled once: the stored value
//! (a short string, portable across SQLite and PostgreSQL and guarded by CHECK constraints
//! in the migrations) by sea-orm's derive, the GraphQL name by async-graphql's.

use std::cmp::Ordering;

use sea_orm::entity::prelude::*;

/// The GraphQL spelling of any API enum (`ADMIN`, `READ_COURSE`, …), from its derive.
pub fn graphql_name<T: async_graphql::EnumType>(value: T) -> &'static str {
    T::items().iter().find(|i| i.value == value).map(|i| i.name).unwrap_or_default()
}

/// The value of `T` whose GraphQL name is `s`, ignoring case.
pub fn from_graphql_name<T: async_graphql::EnumType>(s: &str) -> Option<T> {
    let s = s.trim();
    T::items().iter().find(|i| i.name.eq_ignore_ascii_case(s)).map(|i| i.value)
}

// Stored in `memberships.role`, `invitations.role`.
/// A member's role in an organization, highest first: ADMIN > INSTRUCTOR > MEMBER > VIEWER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[graphql(name = "OrgRole")]
pub enum MembershipRole {
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "instructor")]
    Instructor,
    #[sea_orm(string_value = "member")]
    Member,
    #[sea_orm(string_value = "viewer")]
    Viewer,
}

impl MembershipRole {
    /// Every role, highest first.
    pub const ALL: [MembershipRole; 4] = [Self::Admin, Self::Instructor, Self::Member, Self::Viewer];

    // `Ord` follows privilege: `Admin` is the greatest.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Admin => 3,
            Self::Instructor => 2,
            Self::Member => 1,
            Self::Viewer => 0,
        }
    }

    /// `ADMIN`, `admin`, `Admin` … → `Admin`.
    pub fn parse(s: &str) -> Option<Self> {
        from_graphql_name(s)
    }

    /// The GraphQL spelling (`ADMIN`).
    pub fn as_str(self) -> &'static str {
        graphql_name(self)
    }

    /// The stored spelling (`admin`), for raw SQL.
    pub fn stored(self) -> String {
        self.to_value()
    }

    /// This role and every role above it, highest first.
    pub fn and_above(self) -> &'static [Self] {
        &Self::ALL[..4 - usize::from(self.rank())]
    }
}

impl Ord for MembershipRole {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for MembershipRole {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Serialized as its GraphQL spelling (`ADMIN`, …), as in every report.
impl serde::Serialize for MembershipRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// Stored in `courses.difficulty_level`.
/// How demanding a course is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Difficulty {
    #[sea_orm(string_value = "beginner")]
    Beginner,
    #[sea_orm(string_value = "intermediate")]
    Intermediate,
    #[sea_orm(string_value = "advanced")]
    Advanced,
}

// Stored in `invitations.status`; a pending one past `expires_at` is answered EXPIRED.
/// Where an invitation stands. A pending invitation past its expiry is EXPIRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum InvitationStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "revoked")]
    Revoked,
    #[sea_orm(string_value = "expired")]
    Expired,
}

impl InvitationStatus {
    /// The stored spelling (`pending`), for raw SQL.
    pub fn stored(self) -> String {
        self.to_value()
    }
}

// Stored in `audit_events.action`, in the GraphQL spelling.
/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditAction {
    MembershipProvisioned,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    InvitationCreated,
    InvitationAccepted,
    InvitationRevoked,
    OrganizationUpdated,
    CourseDeleted,
    AccessDenied,
    PlatformAdminAccess,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
    RoleAssigned,
    RoleUnassigned,
}

impl AuditAction {
    /// The stored (and GraphQL) spelling.
    pub fn as_str(self) -> &'static str {
        graphql_name(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable as _;

    #[test]
    fn roles_are_ordered_by_privilege_and_spelled_twice_only_by_derives() {
        let mut v =
            vec![MembershipRole::Member, MembershipRole::Admin, MembershipRole::Viewer, MembershipRole::Instructor];
        v.sort();
        assert_eq!(
            v,
            [MembershipRole::Viewer, MembershipRole::Member, MembershipRole::Instructor, MembershipRole::Admin]
        );
        for r in MembershipRole::ALL {
            assert_eq!(MembershipRole::parse(r.as_str()), Some(r));
            assert_eq!(MembershipRole::parse(&r.as_str().to_lowercase()), Some(r));
            assert_eq!(r.stored(), r.as_str().to_lowercase());
            assert!(r.and_above().iter().all(|a| *a >= r));
            assert_eq!(r.and_above().last(), Some(&r));
        }
        assert_eq!(MembershipRole::Admin.and_above(), &[MembershipRole::Admin]);
        assert_eq!(MembershipRole::parse("owner"), None);
    }

    #[test]
    fn audit_actions_are_stored_as_the_api_spells_them() {
        for a in AuditAction::iter() {
            assert_eq!(a.to_value(), a.as_str());
        }
        assert_eq!(AuditAction::PlatformAdminAccess.as_str(), "PLATFORM_ADMIN_ACCESS");
    }
}
