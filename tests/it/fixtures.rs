//! Rows inserted directly (through the entities, so both backends bind ids the same way).

use chrono::Utc;
use entity::{Difficulty, MembershipRole, course, membership, organization, track, user};
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use uuid::Uuid;

pub async fn org(conn: &DatabaseConnection, slug: &str) -> organization::Model {
    let now = Utc::now();
    organization::ActiveModel {
        id: Set(Uuid::now_v7()),
        external_id: Set(Some(slug.to_owned())),
        name: Set(format!("Org {slug}")),
        slug: Set(slug.to_owned()),
        storage_bucket: Set(format!("org-{slug}")),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .expect("insert organization")
}

pub async fn user(conn: &DatabaseConnection, sub: &str) -> user::Model {
    let now = Utc::now();
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        issuer: Set("coursegraph".into()),
        external_id: Set(sub.to_owned()),
        email: Set(Some(format!("{sub}@example.com"))),
        name: Set(Some(format!("User {sub}"))),
        avatar_url: Set(None),
        email_verified: Set(true),
        last_login_at: Set(None),
        profile_data: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .expect("insert user")
}

pub async fn membership(
    conn: &DatabaseConnection,
    user_id: Uuid,
    org_id: Uuid,
    role: MembershipRole,
    active: bool,
) -> membership::Model {
    let now = Utc::now();
    membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        organization_id: Set(org_id),
        role: Set(role),
        is_active: Set(active),
        joined_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .expect("insert membership")
}

pub async fn course(
    conn: &DatabaseConnection,
    org_id: Uuid,
    instructor: Option<Uuid>,
    title: &str,
    published: bool,
) -> course::Model {
    let now = Utc::now();
    course::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org_id),
        instructor_id: Set(instructor),
        title: Set(title.to_owned()),
        description: Set(Some(format!("About {title}"))),
        category: Set(Some("testing".into())),
        difficulty_level: Set(Difficulty::Beginner),
        estimated_duration: Set(Some(3.5)),
        duration_unit: Set(Some("hours".into())),
        price: Set(Decimal::new(4990, 2)),
        is_published: Set(published),
        metadata: Set(Some(serde_json::json!({ "secret": "metadata" }))),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .expect("insert course")
}

pub async fn track(conn: &DatabaseConnection, course: &course::Model, name: &str, position: i32) -> track::Model {
    let now = Utc::now();
    track::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(course.organization_id),
        course_id: Set(course.id),
        name: Set(name.to_owned()),
        description: Set(None),
        position: Set(position),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .expect("insert track")
}

/// A pending invitation of `org` to `email` with `role`, expiring after `ttl`.
pub async fn invitation(
    conn: &DatabaseConnection,
    org_id: Uuid,
    email: &str,
    role: MembershipRole,
    ttl: chrono::Duration,
) -> entity::invitation::Model {
    let now = Utc::now();
    entity::invitation::ActiveModel {
        id: Set(Uuid::new_v4()),
        organization_id: Set(org_id),
        email: Set(email.to_owned()),
        email_normalized: Set(email.to_lowercase()),
        role: Set(role),
        status: Set(entity::InvitationStatus::Pending),
        invited_by: Set(None),
        accepted_by: Set(None),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        accepted_at: Set(None),
        revoked_at: Set(None),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .expect("insert invitation")
}
