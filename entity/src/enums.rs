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
