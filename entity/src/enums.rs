//! Enums stored as short lowercase strings (portable across SQLite and PostgreSQL,
//! and guarded by CHECK constraints in the migrations).

use sea_orm::entity::prelude::*;

/// A member's role inside one organization, as stored in `memberships.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
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
    /// The stored spelling, for raw SQL and CHECK constraints.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Instructor => "instructor",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    /// Parses the stored spelling.
    pub fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Self::Admin,
            "instructor" => Self::Instructor,
            "member" => Self::Member,
            "viewer" => Self::Viewer,
            _ => return None,
        })
    }
}

/// A course's difficulty, as stored in `courses.difficulty_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Difficulty {
    #[sea_orm(string_value = "beginner")]
    Beginner,
    #[sea_orm(string_value = "intermediate")]
    Intermediate,
    #[sea_orm(string_value = "advanced")]
    Advanced,
}

impl Difficulty {
    /// The stored spelling, for raw SQL and CHECK constraints.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Beginner => "beginner",
            Self::Intermediate => "intermediate",
            Self::Advanced => "advanced",
        }
    }

    /// Parses the stored spelling.
    pub fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "beginner" => Self::Beginner,
            "intermediate" => Self::Intermediate,
            "advanced" => Self::Advanced,
            _ => return None,
        })
    }
}

/// An invitation's stored state (`invitations.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
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
    /// The stored spelling, for raw SQL and CHECK constraints.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// What an audit event records (`audit_events.action`), stored in the GraphQL spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum AuditAction {
    #[sea_orm(string_value = "MEMBERSHIP_PROVISIONED")]
    MembershipProvisioned,
    #[sea_orm(string_value = "MEMBER_ADDED")]
    MemberAdded,
    #[sea_orm(string_value = "MEMBER_ROLE_CHANGED")]
    MemberRoleChanged,
    #[sea_orm(string_value = "MEMBER_REMOVED")]
    MemberRemoved,
    #[sea_orm(string_value = "INVITATION_CREATED")]
    InvitationCreated,
    #[sea_orm(string_value = "INVITATION_ACCEPTED")]
    InvitationAccepted,
    #[sea_orm(string_value = "INVITATION_REVOKED")]
    InvitationRevoked,
    #[sea_orm(string_value = "ORGANIZATION_UPDATED")]
    OrganizationUpdated,
    #[sea_orm(string_value = "COURSE_DELETED")]
    CourseDeleted,
    #[sea_orm(string_value = "ACCESS_DENIED")]
    AccessDenied,
    #[sea_orm(string_value = "PLATFORM_ADMIN_ACCESS")]
    PlatformAdminAccess,
}

impl AuditAction {
    /// The stored (and GraphQL) spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MembershipProvisioned => "MEMBERSHIP_PROVISIONED",
            Self::MemberAdded => "MEMBER_ADDED",
            Self::MemberRoleChanged => "MEMBER_ROLE_CHANGED",
            Self::MemberRemoved => "MEMBER_REMOVED",
            Self::InvitationCreated => "INVITATION_CREATED",
            Self::InvitationAccepted => "INVITATION_ACCEPTED",
            Self::InvitationRevoked => "INVITATION_REVOKED",
            Self::OrganizationUpdated => "ORGANIZATION_UPDATED",
            Self::CourseDeleted => "COURSE_DELETED",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::PlatformAdminAccess => "PLATFORM_ADMIN_ACCESS",
        }
    }
}
