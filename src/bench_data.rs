//! The benchmark data set, row for row the peer's `sql/seed.sql` (same ids: `md5(key)` as
//! a UUID), so coursegraph and PostGraphile answer the same workloads over the same data.

use chrono::{DateTime, Duration, TimeZone, Utc};
use md5::{Digest, Md5};
use rust_decimal::Decimal;
use sea_orm::{
    ConnectionTrait, DatabaseConnection,
    sea_query::{OnConflict, Query},
};
use uuid::Uuid;

use crate::db;

/// `md5(key)::uuid`.
pub fn seed_uuid(key: &str) -> Uuid {
    Uuid::from_bytes(Md5::digest(key.as_bytes()).into())
}

pub const ORGS: i64 = 20;
pub const USERS: i64 = 1000;
pub const COURSES_PER_ORG: i64 = 40;
pub const TRACKS_PER_COURSE: i64 = 5;

const SUBJECTS: [&str; 20] = [
    "Algebra",
    "Biology",
    "Chemistry",
    "Databases",
    "Economics",
    "French",
    "Geometry",
    "History",
    "Italian",
    "Java",
    "Kotlin",
    "Logic",
    "Music",
    "Networks",
    "Optics",
    "Physics",
    "Quantum",
    "Rust",
    "Statistics",
    "Typography",
];
const KINDS: [&str; 4] = ["Fundamentals", "Workshop", "Masterclass", "Bootcamp"];
const LEVELS: [&str; 3] = ["beginner", "intermediate", "advanced"];
const TRACK_NAMES: [&str; 5] = ["Introduction", "Core concepts", "Practice", "Project", "Assessment"];

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("valid date")
}

/// (user j, org, role) of every membership, ranked per organization as seed.sql does.
pub fn memberships() -> Vec<(i64, i64, &'static str)> {
    memberships_at(1)
}

/// [`memberships`] of the data set `scale` times as large (`scale` × the organizations and
/// users, by the same rules).
pub fn memberships_at(scale: i64) -> Vec<(i64, i64, &'static str)> {
    let (orgs, users) = (ORGS * scale, USERS * scale);
    let mut m: Vec<(i64, i64, bool)> = (1..=users).map(|j| (j, ((j - 1) % orgs) + 1, true)).collect();
    m.extend((10..=users).step_by(10).map(|j| (j, ((((j - 1) % orgs) + 1 + ((j / 10) % 19)) % orgs) + 1, false)));
    let mut by_org: std::collections::BTreeMap<i64, Vec<(i64, bool)>> = std::collections::BTreeMap::new();
    for (j, org, primary) in m.iter().copied() {
        by_org.entry(org).or_default().push((j, primary));
    }
    let mut out = Vec::with_capacity(m.len());
    for (org, mut members) in by_org {
        members.sort_by_key(|(j, primary)| (!primary, *j));
        for (rank, (j, _)) in members.into_iter().enumerate() {
            let role = match rank {
                0 => "admin",
                1..=4 => "instructor",
                _ => "member",
            };
            out.push((j, org, role));
        }
    }
    out
}

/// Inserts the data set, `scale` times as large (1: the peer's; idempotent: existing rows
/// are kept). Returns a summary.
pub async fn load(conn: &DatabaseConnection, issuer: &str, scale: i64) -> anyhow::Result<String> {
    anyhow::ensure!((1..=1000).contains(&scale), "--scale must be between 1 and 1000");
    let (orgs, users) = (ORGS * scale, USERS * scale);
    let txn = db::begin_write(conn).await?;
    let epoch = at(2024, 1, 1);
    organizations(&txn, orgs, epoch).await?;
    load_users(&txn, issuer, users, epoch).await?;
    let members = memberships_at(scale);
    load_memberships(&txn, &members, epoch).await?;
    let mut instructors_of: std::collections::HashMap<i64, Vec<Uuid>> = std::collections::HashMap::new();
    for (j, org, role) in &members {
        if *role == "instructor" {
            instructors_of.entry(*org).or_default().push(seed_uuid(&format!("user:{j}")));
        }
    }
    courses(&txn, orgs, instructors_of).await?;
    txn.commit().await?;
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // What PostgreSQL's documentation asks after a bulk load: statistics for the planner,
        // and the visibility map and free-space map set up. Without the VACUUM, on a server
        // whose autovacuum is off or has not come round yet, the write workload (W4) fell
        // from 1,125 to 665 req/s over its first 30 s; with it, it stays at 1,500.
        conn.execute_unprepared("VACUUM (ANALYZE) users, organizations, memberships, courses, tracks").await?;
    }
    Ok(format!(
        "{orgs} organizations, {users} users, {} memberships, {} courses, {} tracks",
        members.len(),
        orgs * COURSES_PER_ORG,
        orgs * COURSES_PER_ORG * TRACKS_PER_COURSE
    ))
}

async fn organizations(txn: &impl ConnectionTrait, orgs: i64, epoch: DateTime<Utc>) -> anyhow::Result<()> {
    let mut q = Query::insert();
    q.into_table(entity::organization::Entity).columns([
        entity::organization::Column::Id,
        entity::organization::Column::ExternalId,
        entity::organization::Column::Name,
        entity::organization::Column::Slug,
        entity::organization::Column::StorageBucket,
        entity::organization::Column::CreatedAt,
        entity::organization::Column::UpdatedAt,
    ]);
    for i in 1..=orgs {
        let created = epoch + Duration::days(i);
        q.values_panic([
            seed_uuid(&format!("org:{i}")).into(),
            format!("tenant-{i:02}").into(),
            format!("Organization {i:02}").into(),
            format!("org-{i:02}").into(),
            format!("org-org-{i:02}").into(),
            created.into(),
            created.into(),
        ]);
    }
    txn.execute(q.on_conflict(OnConflict::new().do_nothing().to_owned())).await?;

    Ok(())
}

async fn load_users(txn: &impl ConnectionTrait, issuer: &str, users: i64, epoch: DateTime<Utc>) -> anyhow::Result<()> {
    for chunk in (1..=users).collect::<Vec<_>>().chunks(250) {
        let mut q = Query::insert();
        q.into_table(entity::user::Entity).columns([
            entity::user::Column::Id,
            entity::user::Column::Issuer,
            entity::user::Column::ExternalId,
            entity::user::Column::Email,
            entity::user::Column::Name,
            entity::user::Column::EmailVerified,
            entity::user::Column::LastLoginAt,
            entity::user::Column::CreatedAt,
            entity::user::Column::UpdatedAt,
        ]);
        for &j in chunk {
            let created = epoch + Duration::minutes(j);
            q.values_panic([
                seed_uuid(&format!("user:{j}")).into(),
                issuer.into(),
                format!("auth0|user-{j:04}").into(),
                format!("user{j:04}@example.com").into(),
                format!("User {j:04}").into(),
                true.into(),
                Option::<DateTime<Utc>>::None.into(),
                created.into(),
                created.into(),
            ]);
        }
        txn.execute(q.on_conflict(OnConflict::new().do_nothing().to_owned())).await?;
    }

    Ok(())
}

async fn load_memberships(
    txn: &impl ConnectionTrait,
    members: &[(i64, i64, &'static str)],
    epoch: DateTime<Utc>,
) -> anyhow::Result<()> {
    for chunk in members.chunks(250) {
        let mut q = Query::insert();
        q.into_table(entity::membership::Entity).columns([
            entity::membership::Column::Id,
            entity::membership::Column::UserId,
            entity::membership::Column::OrganizationId,
            entity::membership::Column::Role,
            entity::membership::Column::IsActive,
            entity::membership::Column::JoinedAt,
            entity::membership::Column::UpdatedAt,
        ]);
        for (j, org, role) in chunk {
            q.values_panic([
                seed_uuid(&format!("membership:{j}:{org}")).into(),
                seed_uuid(&format!("user:{j}")).into(),
                seed_uuid(&format!("org:{org}")).into(),
                (*role).into(),
                true.into(),
                epoch.into(),
                epoch.into(),
            ]);
        }
        txn.execute(q.on_conflict(OnConflict::new().do_nothing().to_owned())).await?;
    }

    Ok(())
}

/// Each organization's courses and their tracks; `instructors_of` by organization.
async fn courses(
    txn: &impl ConnectionTrait,
    orgs: i64,
    mut instructors_of: std::collections::HashMap<i64, Vec<Uuid>>,
) -> anyhow::Result<()> {
    for o in 1..=orgs {
        // seed.sql: the (k % 4)-th instructor of the organization by user id.
        let mut instructors = instructors_of.remove(&o).unwrap_or_default();
        instructors.sort();
        let mut cq = Query::insert();
        cq.into_table(entity::course::Entity).columns([
            entity::course::Column::Id,
            entity::course::Column::OrganizationId,
            entity::course::Column::InstructorId,
            entity::course::Column::Title,
            entity::course::Column::Description,
            entity::course::Column::DifficultyLevel,
            entity::course::Column::Price,
            entity::course::Column::IsPublished,
            entity::course::Column::CreatedAt,
            entity::course::Column::UpdatedAt,
        ]);
        let mut tq = Query::insert();
        tq.into_table(entity::track::Entity).columns([
            entity::track::Column::Id,
            entity::track::Column::OrganizationId,
            entity::track::Column::CourseId,
            entity::track::Column::Name,
            entity::track::Column::Description,
            entity::track::Column::Position,
            entity::track::Column::CreatedAt,
            entity::track::Column::UpdatedAt,
        ]);
        let org_id = seed_uuid(&format!("org:{o}"));
        for k in 1..=COURSES_PER_ORG {
            let id = seed_uuid(&format!("course:{o}:{k}"));
            let title =
                format!("{} {} {k:02}", SUBJECTS[((k * 7 + o * 3) % 20) as usize], KINDS[((k / 3) % 4) as usize]);
            let description = format!(
                "Course {k} of organization {o}. {}",
                "A practical, hands-on course with exercises and quizzes. ".repeat(3)
            );
            let price = Decimal::new(((k * 37 + o * 11) % 200) * 100 + 999, 2);
            let hours = Duration::hours(o * 100 + k);
            cq.values_panic([
                id.into(),
                org_id.into(),
                instructors.get((k % 4) as usize).copied().into(),
                title.clone().into(),
                description.into(),
                LEVELS[(k % 3) as usize].into(),
                price.into(),
                (k % 4 != 0).into(),
                (at(2024, 2, 1) + hours).into(),
                (at(2024, 3, 1) + hours).into(),
            ]);
            for p in 1..=TRACKS_PER_COURSE {
                tq.values_panic([
                    seed_uuid(&format!("track:{id}:{p}")).into(),
                    org_id.into(),
                    id.into(),
                    format!("Track {p}: {}", TRACK_NAMES[(p - 1) as usize]).into(),
                    format!("Track {p} of {title}").into(),
                    (p as i32).into(),
                    (at(2024, 3, 1) + hours).into(),
                    (at(2024, 3, 1) + hours).into(),
                ]);
            }
        }
        txn.execute(cq.on_conflict(OnConflict::new().do_nothing().to_owned())).await?;
        txn.execute(tq.on_conflict(OnConflict::new().do_nothing().to_owned())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_postgres_md5_uuids() {
        // md5('org:3')::uuid, as in the peer's README.
        assert_eq!(seed_uuid("org:3").to_string(), "d59e1546-afa1-eba0-fef2-2adcccf62387");
        assert_eq!(seed_uuid("user:103").to_string(), "52717bf4-ea03-9e26-d955-9580e7448878");
        assert_eq!(seed_uuid("course:7:1").to_string(), "ac438ddf-1b9e-dfce-9e43-034331f0faaf");
    }

    #[test]
    fn memberships_match_the_seed() {
        let m = memberships();
        assert_eq!(m.len(), 1100);
        for org in 1..=ORGS {
            let roles: Vec<_> = m.iter().filter(|x| x.1 == org).map(|x| x.2).collect();
            assert_eq!(roles.iter().filter(|r| **r == "admin").count(), 1);
            assert_eq!(roles.iter().filter(|r| **r == "instructor").count(), 4);
            assert!((44..=56).contains(&roles.len()), "{org}: {}", roles.len());
        }
        // User #103: a member of org #3 only.
        let u: Vec<_> = m.iter().filter(|x| x.0 == 103).collect();
        assert_eq!(u, vec![&(103, 3, "member")]);
    }

    #[test]
    fn a_hundred_times_the_data_set_keeps_its_shape() {
        let m = memberships_at(100);
        assert_eq!(m.len(), 110_000);
        // Organization #3: one admin, four instructors; user #10003 is a member of it only.
        let roles: Vec<_> = m.iter().filter(|x| x.1 == 3).map(|x| x.2).collect();
        assert_eq!(roles.iter().filter(|r| **r == "admin").count(), 1);
        assert_eq!(roles.iter().filter(|r| **r == "instructor").count(), 4);
        let u: Vec<_> = m.iter().filter(|x| x.0 == 10_003).collect();
        assert_eq!(u, vec![&(10_003, 3, "member")]);
    }
}
