//! User rows: their one insert, keyed by identity (issuer, subject), which provisioning
//! and the demo seeder share, and the lookup by that key.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    ConnectionTrait, DbErr, QueryResult,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

/// A user to insert.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
    pub email_verified: bool,
    /// Set when the insert is a sign-in (provisioning), not when it is seeded.
    pub last_login_at: Option<DateTime<Utc>>,
    pub profile_data: Option<serde_json::Value>,
    pub now: DateTime<Utc>,
}

/// Inserts `new` unless a user with its (issuer, subject) exists: the inserted row's
/// `returning` columns, or `None` when it was there (read it with [`find`]). Any number of
/// concurrent inserts of one identity leave one row.
pub async fn try_insert(
    db: &impl ConnectionTrait,
    new: &NewUser<'_>,
    returning: &[user::Column],
) -> Result<Option<QueryResult>, DbErr> {
    let insert = Query::insert()
        .into_table(user::Entity)
        .columns([
            user::Column::Id,
            user::Column::Issuer,
            user::Column::ExternalId,
            user::Column::Email,
            user::Column::Name,
            user::Column::AvatarUrl,
            user::Column::EmailVerified,
            user::Column::LastLoginAt,
            user::Column::ProfileData,
            user::Column::CreatedAt,
            user::Column::UpdatedAt,
        ])
        .values_panic([
            new.id.into(),
            new.issuer.into(),
            new.subject.into(),
            new.email.into(),
            new.name.into(),
            new.avatar_url.into(),
            new.email_verified.into(),
            new.last_login_at.into(),
            new.profile_data.clone().into(),
            new.now.into(),
            new.now.into(),
        ])
        .on_conflict(OnConflict::columns([user::Column::Issuer, user::Column::ExternalId]).do_nothing().to_owned())
        .returning(Query::returning().columns(returning.iter().copied()))
        .to_owned();
    db.query_one(&insert).await
}

/// The user with identity (`issuer`, `subject`): its `columns`.
pub async fn find(
    db: &impl ConnectionTrait,
    issuer: &str,
    subject: &str,
    columns: &[user::Column],
) -> Result<Option<QueryResult>, DbErr> {
    let by_key = Query::select()
        .columns(columns.iter().copied())
        .from(user::Entity)
        .and_where(Expr::col(user::Column::Issuer).eq(issuer))
        .and_where(Expr::col(user::Column::ExternalId).eq(subject))
        .to_owned();
    db.query_one(&by_key).await
}
