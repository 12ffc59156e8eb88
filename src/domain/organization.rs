//! Organizations: their slugs and the one way a new one is inserted, shared by
//! `createOrganization` and first-sight provisioning (and the demo seeder).

use chrono::{DateTime, Utc};
use entity::organization;
use sea_orm::{
    ConnectionTrait, DbErr, QueryResult,
    sea_query::{OnConflict, Query},
};
use uuid::Uuid;

/// Every column of an organization, in `Model` order (what a membership carries of it).
pub const COLUMNS: [organization::Column; 7] = [
    organization::Column::Id,
    organization::Column::ExternalId,
    organization::Column::Name,
    organization::Column::Slug,
    organization::Column::StorageBucket,
    organization::Column::CreatedAt,
    organization::Column::UpdatedAt,
];

/// An organization to create.
pub struct NewOrganization<'a> {
    pub id: Uuid,
    /// The identity provider's tenant id, for provisioned organizations.
    pub external_id: Option<&'a str>,
    pub name: &'a str,
    pub now: DateTime<Utc>,
}

/// The slugs to try for `base`, first free wins: `base` itself, then (unless only the
/// exact slug will do) `base-xxxx` with random suffixes.
pub fn candidate_slugs(base: &str, exact: bool) -> impl Iterator<Item = String> + '_ {
    let tries = if exact { 1 } else { 8 };
    (0..tries).map(move |i| if i == 0 { base.to_owned() } else { format!("{base}-{:04x}", rand::random::<u16>()) })
}

/// Inserts `new` with `slug` (its storage bucket `org-<slug>`): the row, or `None` when
/// the slug — or, for a provisioned organization, its external id — is taken.
pub async fn try_insert(
    db: &impl ConnectionTrait,
    new: &NewOrganization<'_>,
    slug: &str,
) -> Result<Option<organization::Model>, DbErr> {
    // No conflict target: a clash on either unique key does nothing, and the caller tells
    // which by what it finds.
    let insert = Query::insert()
        .into_table(organization::Entity)
        .columns(COLUMNS)
        .values_panic([
            new.id.into(),
            new.external_id.map(str::to_owned).into(),
            new.name.to_owned().into(),
            slug.to_owned().into(),
            format!("org-{slug}").into(),
            new.now.into(),
            new.now.into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    match db.query_one(&insert).await? {
        Some(row) => from_row(&row).map(Some),
        None => Ok(None),
    }
}

/// An organization as [`COLUMNS`] read it.
pub fn from_row(r: &QueryResult) -> Result<organization::Model, DbErr> {
    Ok(organization::Model {
        id: r.try_get("", "id")?,
        external_id: r.try_get("", "external_id")?,
        name: r.try_get("", "name")?,
        slug: r.try_get("", "slug")?,
        storage_bucket: r.try_get("", "storage_bucket")?,
        created_at: r.try_get("", "created_at")?,
        updated_at: r.try_get("", "updated_at")?,
    })
}

/// A slug matching `^[a-z0-9](-?[a-z0-9])*$`, short enough to take a `-xxxx` suffix.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 56 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "org".to_owned() } else { out }
}

/// Whether `s` is a valid slug: `^[a-z0-9](-?[a-z0-9])*$`, at most 63 characters.
pub fn is_valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    b.iter().all(|c| alnum(*c) || *c == b'-') && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_and_bounded() {
        for s in ["Acme Corp", "  --Weird__Name!! ", "", "ÄÖÜ", &"x".repeat(200), "a-b", "tenant-03"] {
            let slug = slugify(s);
            assert!(is_valid_slug(&slug), "{s:?} -> {slug:?}");
            assert!(slug.len() <= 56);
            assert!(is_valid_slug(&format!("{slug}-beef")));
        }
        assert_eq!(slugify("Acme Corp"), "acme-corp");
    }

    #[test]
    fn slug_rule_matches_the_documented_pattern() {
        for ok in ["a", "a1", "a-b", "abc-123-x", &"a".repeat(63)] {
            assert!(is_valid_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a b", &"a".repeat(64)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn candidates_start_with_the_base() {
        let all: Vec<_> = candidate_slugs("acme", false).collect();
        assert_eq!(all[0], "acme");
        assert_eq!(all.len(), 8);
        assert!(all[1..].iter().all(|s| s.starts_with("acme-") && is_valid_slug(s)));
        assert_eq!(candidate_slugs("acme", true).collect::<Vec<_>>(), ["acme"]);
    }
}
