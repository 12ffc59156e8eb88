//! Which organization a request acts in, decided once, purely, for the server and the
//! access doctor alike: `X-Organization-Id` when sent (the viewer must hold an active
//! membership there), else the token's organization, else the viewer's only active
//! membership, else none.
//!
//! A token naming an organization where the viewer's membership was removed does not fall
//! through to another one: the request acts in none, and whatever falls back on the active
//! organization is refused with MEMBERSHIP_INACTIVE, naming it — a removed member hears
//! why, instead of an empty answer.

use uuid::Uuid;

use super::viewer::MembershipRecord;
#[cfg(test)]
use super::viewer::MembershipRow;
use crate::authz::{AccessReason, Action, Decision, Role, policy};

/// The choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    Active(Uuid),
    /// No header; the token names this organization, where the membership is inactive.
    Removed(Uuid),
    None,
    /// A platform admin names (by id or slug) an organization they hold no membership in:
    /// it is theirs to act in if it exists, which only the database can say.
    Lookup {
        by_id: Option<Uuid>,
        slug: String,
    },
}

/// Chooses among `memberships` (every one, active or not) for a viewer whose token names
/// the organization `token_org` (its external id), with the header `header`. A header the
/// viewer may not act in is refused with the decision that explains it.
pub fn choose(
    memberships: &[MembershipRecord],
    platform_admin: bool,
    token_org: Option<&str>,
    header: Option<&str>,
) -> Result<Choice, Decision> {
    if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
        let by_id = Uuid::parse_str(h).ok();
        let named = memberships.iter().find(|m| Some(m.organization_id) == by_id || m.organization_slug == h);
        return match named {
            Some(m) if m.is_active => Ok(Choice::Active(m.organization_id)),
            Some(m) => Err(refused(AccessReason::MembershipInactive, Some(m.role), Some(m.organization_id))),
            None if platform_admin => Ok(Choice::Lookup { by_id, slug: h.to_owned() }),
            // Unknown and not-a-member answer the same: existence never leaks.
            None => Err(refused(AccessReason::NotAMember, None, None)),
        };
    }
    if let Some(ext) = token_org
        && let Some(m) = memberships.iter().find(|m| m.organization_external_id.as_deref() == Some(ext))
    {
        return Ok(if m.is_active { Choice::Active(m.organization_id) } else { Choice::Removed(m.organization_id) });
    }
    let mut active = memberships.iter().filter(|m| m.is_active);
    Ok(match (active.next(), active.next()) {
        (Some(m), None) => Choice::Active(m.organization_id),
        _ => Choice::None,
    })
}

/// A refused `X-Organization-Id`, as READ_ORGANIZATION of it.
pub fn refused(reason: AccessReason, viewer_role: Option<Role>, org: Option<Uuid>) -> Decision {
    Decision { reason, viewer_role, organization_id: org, ..policy::not_found(Action::ReadOrganization) }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn m(n: u128, slug: &str, ext: &str, active: bool) -> MembershipRecord {
        let org = entity::organization::Model {
            id: Uuid::from_u128(n),
            external_id: Some(ext.into()),
            name: slug.into(),
            slug: slug.into(),
            storage_bucket: format!("org-{slug}"),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let row = MembershipRow {
            id: Uuid::from_u128(100 + n),
            role: Role::Member,
            is_active: active,
            joined_at: Utc::now(),
        };
        MembershipRecord::new(row, org, Vec::new(), Vec::new(), &crate::authz::roles::Policy::default())
    }

    #[test]
    fn header_then_token_then_the_only_active_membership() {
        let ms = [m(1, "acme", "ext-acme", true), m(2, "globex", "ext-globex", true), m(3, "gone", "ext-gone", false)];
        let id = |n| Uuid::from_u128(n);
        assert_eq!(choose(&ms, false, Some("ext-acme"), Some("globex")), Ok(Choice::Active(id(2))));
        assert_eq!(choose(&ms, false, None, Some(&id(1).to_string())), Ok(Choice::Active(id(1))));
        assert_eq!(choose(&ms, false, Some("ext-acme"), None), Ok(Choice::Active(id(1))));
        assert_eq!(choose(&ms, false, None, None), Ok(Choice::None), "two active, no hint");
        assert_eq!(choose(&ms[..1], false, None, None), Ok(Choice::Active(id(1))));
        // A removed membership named by the token: acts in none, and says so.
        assert_eq!(choose(&ms, false, Some("ext-gone"), None), Ok(Choice::Removed(id(3))));
        assert_eq!(choose(&[ms[0].clone(), ms[2].clone()], false, Some("ext-gone"), None), Ok(Choice::Removed(id(3))));
        // Headers the viewer may not act in.
        let d = choose(&ms, false, None, Some("gone")).unwrap_err();
        assert_eq!((d.reason, d.organization_id), (AccessReason::MembershipInactive, Some(id(3))));
        let d = choose(&ms, false, None, Some("initech")).unwrap_err();
        assert_eq!((d.reason, d.organization_id), (AccessReason::NotAMember, None));
        assert_eq!(
            choose(&ms, true, None, Some("initech")),
            Ok(Choice::Lookup { by_id: None, slug: "initech".into() })
        );
    }
}
