//! `coursegraph seed`: a small, idempotent demo data set (two organizations, a user of
//! every role in each, published and draft courses with tracks) and tokens to try it.

use chrono::Utc;
use clap::Args;
use entity::{course, organization, track, user};
use rust_decimal::Decimal;
use sea_orm::{
    ConnectionTrait, DatabaseConnection,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::{
    config::{Config, HumanDuration},
    db,
    domain::{
        membership,
        organization::{NewOrganization, try_insert},
        user::{self as users, NewUser},
    },
    token::{self, DEFAULT_ISSUER, TokenArgs},
};

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Lifetime of the printed demo tokens.
    #[arg(long, default_value = "8h")]
    pub token_ttl: HumanDuration,

    /// Load the benchmark data set instead (the peer's `sql/seed.sql`: 20 organizations,
    /// 1,000 users, 1,100 memberships, 800 courses, 4,000 tracks, with the same ids).
    #[arg(long)]
    pub bench: bool,

    /// With --bench: the data set this many times as large (100: 2,000 organizations,
    /// 100,000 users, 80,000 courses, 400,000 tracks), by the same rules.
    #[arg(long, default_value_t = 1, requires = "bench")]
    pub scale: i64,
}

/// Namespace for the demo data's deterministic ids.
const NS: Uuid = Uuid::from_u128(0x6c2f_1e2a_8b1d_4c57_9a0e_52d3_1b7c_c0de);

fn id(key: &str) -> Uuid {
    Uuid::new_v5(&NS, key.as_bytes())
}

struct DemoOrg {
    key: &'static str,
    name: &'static str,
    users: [(&'static str, &'static str, &'static str); 4],
    courses: [(&'static str, &'static str, bool, &'static str); 4],
}

const ORGS: [DemoOrg; 2] = [
    DemoOrg {
        key: "acme",
        name: "Acme Academy",
        users: [
            ("alice", "Alice Admin", "admin"),
            ("ian", "Ian Instructor", "instructor"),
            ("mia", "Mia Member", "member"),
            ("victor", "Victor Viewer", "viewer"),
        ],
        courses: [
            ("Rust for Backend Engineers", "intermediate", true, "49.90"),
            ("GraphQL from Zero", "beginner", true, "0.00"),
            ("Distributed Systems Bootcamp", "advanced", true, "129.00"),
            ("Async Internals (draft)", "advanced", false, "99.00"),
        ],
    },
    DemoOrg {
        key: "globex",
        name: "Globex Institute",
        users: [
            ("grace", "Grace Admin", "admin"),
            ("ivan", "Ivan Instructor", "instructor"),
            ("mark", "Mark Member", "member"),
            ("vera", "Vera Viewer", "viewer"),
        ],
        courses: [
            ("Intro to Databases", "beginner", true, "19.00"),
            ("Query Planning Deep Dive", "advanced", true, "89.50"),
            ("Data Modelling Workshop", "intermediate", true, "59.00"),
            ("Indexing Secrets (draft)", "intermediate", false, "39.00"),
        ],
    },
];

const TRACKS: [&str; 3] = ["Introduction", "Hands-on project", "Assessment"];

/// Seeds the demo data and prints a token per demo user.
pub async fn run(config: &Config, args: &SeedArgs) -> anyhow::Result<()> {
    let (conn, _) = db::connect(
        &config.database.url,
        2,
        config.database.acquire_timeout,
        config.database.prepared_statements,
        None,
    )
    .await?;
    if config.database.auto_migrate {
        db::migrate(&conn).await?;
    }
    let issuer = config.auth.issuer.clone().unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
    if args.bench {
        let n = crate::bench_data::load(&conn, &issuer, args.scale).await?;
        crate::cli::emit(&format!(
            "Loaded the benchmark data set ({n}). Users sign in as `auth0|user-NNNN` of `tenant-NN`, e.g.:\n  \
             coursegraph token --sub 'auth0|user-0103' --org tenant-03\n"
        ))?;
        return Ok(());
    }
    seed_demo(&conn, &issuer).await?;
    let mut out =
        format!("Seeded the demo organizations (acme, globex). Tokens (valid {}):\n\n", fmt_ttl(args.token_ttl));
    for org in &ORGS {
        for (sub, name, role) in org.users {
            let t = token::mint(
                config,
                &TokenArgs {
                    sub: sub.to_owned(),
                    email: Some(format!("{sub}@{}.example", org.key)),
                    name: Some(name.to_owned()),
                    org: Some(org.key.to_owned()),
                    org_name: Some(org.name.to_owned()),
                    roles: vec![role.to_owned()],
                    permissions: vec![],
                    ttl: args.token_ttl,
                    issuer: None,
                    audience: None,
                    extra_claims: vec![],
                },
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            out.push_str(&format!("# {sub} — {role} of {}\n{t}\n\n", org.key));
        }
    }
    crate::cli::emit(&out)?;
    Ok(())
}

fn fmt_ttl(d: HumanDuration) -> String {
    format!("{}h", d.0.as_secs() / 3600)
}

/// Inserts the demo rows; running it again changes nothing.
pub async fn seed_demo(conn: &DatabaseConnection, issuer: &str) -> anyhow::Result<()> {
    let now = Utc::now();
    let txn = db::begin_write(conn).await?;
    for org in &ORGS {
        let org_id = demo_org(&txn, org, now).await?;
        let mut instructor = None;
        for (sub, name, role) in org.users {
            let user_id = demo_user(&txn, issuer, org, sub, name, now).await?;
            if role == "instructor" {
                instructor = Some(user_id);
            }
            let role = crate::authz::Role::parse(role).ok_or_else(|| anyhow::anyhow!("demo role {role}"))?;
            membership::insert(&txn, user_id, org_id, role, now).await?;
        }
        demo_courses(&txn, org, org_id, instructor, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// A demo organization (which may have been provisioned from a token before: its real id).
async fn demo_org(txn: &impl ConnectionTrait, org: &DemoOrg, now: chrono::DateTime<Utc>) -> anyhow::Result<Uuid> {
    let new = NewOrganization { id: id(&format!("org:{}", org.key)), external_id: Some(org.key), name: org.name, now };
    if let Some(created) = try_insert(txn, &new, org.key).await? {
        return Ok(created.id);
    }
    Ok(txn
        .query_one(
            &Query::select()
                .column(organization::Column::Id)
                .from(organization::Entity)
                .and_where(Expr::col(organization::Column::ExternalId).eq(org.key))
                .to_owned(),
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("organization {} is missing and its slug is taken", org.key))?
        .try_get("", "id")?)
}

/// A demo user (or the one who signed in with that subject before).
async fn demo_user(
    txn: &impl ConnectionTrait,
    issuer: &str,
    org: &DemoOrg,
    sub: &str,
    name: &str,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Uuid> {
    let email = format!("{sub}@{}.example", org.key);
    let new = NewUser {
        id: id(&format!("user:{issuer}:{sub}")),
        issuer,
        subject: sub,
        email: Some(&email),
        name: Some(name),
        avatar_url: None,
        email_verified: true,
        last_login_at: None,
        profile_data: None,
        now,
    };
    let row = match users::try_insert(txn, &new, &[user::Column::Id]).await? {
        Some(row) => row,
        None => users::find(txn, issuer, sub, &[user::Column::Id])
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {sub} missing after insert"))?,
    };
    Ok(row.try_get("", "id")?)
}

/// The demo courses of `org` and their tracks.
async fn demo_courses(
    txn: &impl ConnectionTrait,
    org: &DemoOrg,
    org_id: Uuid,
    instructor: Option<Uuid>,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    for (i, (title, difficulty, published, price)) in org.courses.iter().enumerate() {
        let course_id = id(&format!("course:{}:{i}", org.key));
        let ins = Query::insert()
            .into_table(course::Entity)
            .columns([
                course::Column::Id,
                course::Column::OrganizationId,
                course::Column::InstructorId,
                course::Column::Title,
                course::Column::Description,
                course::Column::Category,
                course::Column::DifficultyLevel,
                course::Column::EstimatedDuration,
                course::Column::DurationUnit,
                course::Column::Price,
                course::Column::IsPublished,
                course::Column::Metadata,
                course::Column::CreatedAt,
                course::Column::UpdatedAt,
            ])
            .values_panic([
                course_id.into(),
                org_id.into(),
                instructor.into(),
                (*title).into(),
                format!("{title}: a demo course of {}.", org.name).into(),
                "engineering".into(),
                (*difficulty).into(),
                (6.0 + i as f64 * 2.5).into(),
                "hours".into(),
                price.parse::<Decimal>()?.into(),
                (*published).into(),
                serde_json::json!({ "internalCode": format!("{}-{i}", org.key), "margin": 0.4 }).into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(OnConflict::column(course::Column::Id).do_nothing().to_owned())
            .to_owned();
        txn.execute(&ins).await?;
        for (p, name) in TRACKS.iter().enumerate() {
            let ins = Query::insert()
                .into_table(track::Entity)
                .columns([
                    track::Column::Id,
                    track::Column::OrganizationId,
                    track::Column::CourseId,
                    track::Column::Name,
                    track::Column::Description,
                    track::Column::Position,
                    track::Column::CreatedAt,
                    track::Column::UpdatedAt,
                ])
                .values_panic([
                    id(&format!("track:{course_id}:{p}")).into(),
                    org_id.into(),
                    course_id.into(),
                    (*name).into(),
                    format!("{name} of {title}").into(),
                    (p as i32).into(),
                    now.into(),
                    now.into(),
                ])
                .on_conflict(OnConflict::column(track::Column::Id).do_nothing().to_owned())
                .to_owned();
            txn.execute(&ins).await?;
        }
    }
    Ok(())
}
