//! The organization and role claims: what the server's claim mapping finds, and — when it
//! finds nothing — where in the token an organization or roles seem to be instead.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Check, Doctor};
use crate::{
    auth::{
        Identity,
        claims::{ClaimMapping, ClaimPath},
    },
    config::{ClaimsPreset, RoleSource},
};

/// Claim paths where identity providers put an organization, for the "found one where
/// the preset does not look" warning (every preset's, and common custom spellings).
const ORG_LIKE: &[&str] = &[
    "organization_id",
    "org_id",
    "tenantId",
    "tenant_id",
    "app_metadata.organization_id",
    "organization",
    "o.id",
    "organizationId",
    "orgId",
    "org",
    "tenant",
    "https://coursegraph.dev/org_id",
];

/// The same for roles.
const ROLES_LIKE: &[&str] = &[
    "roles",
    "role",
    "https://coursegraph.dev/roles",
    "permissions",
    "app_metadata.roles",
    "app_metadata.role",
    "realm_access.roles",
    "o.rol",
    "org_role",
    "groups",
];

fn paths(p: &[ClaimPath]) -> String {
    p.iter().map(|p| format!("`{}`", p.as_str())).collect::<Vec<_>>().join(", ")
}

fn present<'a>(path: &str, claims: &'a Map<String, Value>) -> Option<&'a Value> {
    ClaimPath::new(path).get(claims).filter(|v| !v.is_null())
}

impl Doctor<'_> {
    pub(super) fn organization_claim(&self, claims: &Map<String, Value>, identity: &Identity) -> Check {
        let mapping = &ClaimMapping::from_config(&self.config.auth.claims);
        let preset = mapping.preset.name();
        if let Some(org) = &identity.organization {
            let at =
                mapping.org.iter().find(|p| present(p.as_str(), claims).is_some()).map(ClaimPath::as_str).unwrap_or("");
            return Check::pass(
                "organization_claim",
                format!(
                    "`{at}` names organization `{}`{} (preset {preset})",
                    org.external_id,
                    org.name.as_ref().map(|n| format!(" (\"{n}\")")).unwrap_or_default()
                ),
            );
        }
        if let Some(at) = mapping.org.iter().find(|p| present(p.as_str(), claims).is_some()) {
            return Check::warn(
                "organization_claim",
                format!("`{}` is there but is not an organization id (a non-empty string)", at.as_str()),
                "COURSEGRAPH_CLAIM_ORG names the path of the organization's id",
            );
        }
        let own: BTreeSet<&str> = mapping.org.iter().map(ClaimPath::as_str).collect();
        let mut found: Vec<String> = ORG_LIKE
            .iter()
            .filter(|p| !own.contains(*p) && present(p, claims).is_some())
            .map(|p| (*p).to_owned())
            .collect();
        for k in claims.keys() {
            let l = k.to_ascii_lowercase();
            if (l.contains("org") || l.contains("tenant")) && !own.contains(k.as_str()) && !found.contains(k) {
                found.push(k.clone());
            }
        }
        match found.first() {
            Some(p) => {
                let by_preset = ClaimsPreset::ALL
                    .iter()
                    .find(|pr| ClaimMapping::new(**pr, None, None, None).org.iter().any(|x| x.as_str() == p))
                    .map(|pr| format!(" (or COURSEGRAPH_CLAIMS={}, whose preset reads it)", pr.name()))
                    .unwrap_or_default();
                Check::warn(
                    "organization_claim",
                    format!(
                        "no organization at {} (preset {preset}), but the token has an organization-like claim at `{p}`",
                        paths(&mapping.org)
                    ),
                    format!("set COURSEGRAPH_CLAIM_ORG={p}{by_preset}"),
                )
            }
            None => Check::warn(
                "organization_claim",
                format!(
                    "the token names no organization (looked at {}, preset {preset}): the viewer has only the memberships \
                     already in the database",
                    paths(&mapping.org)
                ),
                "if the identity provider sends the organization, point COURSEGRAPH_CLAIM_ORG (or COURSEGRAPH_CLAIMS) at it",
            ),
        }
    }

    /// The roles claim, and what the token's custom roles and permissions do.
    pub(super) fn roles_claim(&self, claims: &Map<String, Value>, identity: &Identity) -> Check {
        let mut check = self.built_in_roles_claim(claims, identity);
        check.detail.push_str(&self.roles_as_data(identity));
        check
    }

    /// What the token's custom role keys and permissions bring, in this role-source mode.
    fn roles_as_data(&self, identity: &Identity) -> String {
        let auth = &self.config.auth;
        let mut note = String::new();
        let database = auth.role_source == RoleSource::Database;
        if !identity.custom_roles.is_empty() {
            let how = if database {
                "assigned to a new membership (COURSEGRAPH_ROLE_SOURCE=database)"
            } else {
                "added to the membership on every request (COURSEGRAPH_ROLE_SOURCE=token)"
            };
            note.push_str(&format!("; custom roles {:?}: {how}", identity.custom_roles));
        }
        if identity.permissions.is_empty() {
            return note;
        }
        if database {
            note.push_str(&format!(
                "; permissions {:?} are ignored (COURSEGRAPH_ROLE_SOURCE=database: only token mode maps them)",
                identity.permissions
            ));
            return note;
        }
        let mapped: Vec<String> = identity
            .permissions
            .iter()
            .map(|p| match auth.policy.permission(p) {
                Some(g) => format!("{p} → {g}"),
                None => format!("{p} → nothing (no [idp.permissions] entry)"),
            })
            .collect();
        note.push_str(&format!("; permissions: {}", mapped.join("; ")));
        note
    }

    fn built_in_roles_claim(&self, claims: &Map<String, Value>, identity: &Identity) -> Check {
        let auth = &self.config.auth;
        let mapping = &ClaimMapping::from_config(&auth.claims);
        let default = auth.default_role.as_str();
        if !identity.idp_roles.is_empty() {
            let at = mapping
                .roles
                .iter()
                .find(|p| present(p.as_str(), claims).is_some())
                .map(ClaimPath::as_str)
                .unwrap_or("");
            return match identity.role {
                Some(r) => Check::pass("roles_claim", format!("`{at}` = {:?} → {}", identity.idp_roles, r.as_str())),
                None => Check::warn(
                    "roles_claim",
                    format!(
                        "`{at}` = {:?}, but none of them maps to a role: a new membership gets {default} \
                         (COURSEGRAPH_DEFAULT_ROLE)",
                        identity.idp_roles
                    ),
                    format!(
                        "map them with COURSEGRAPH_ROLE_MAP, e.g. COURSEGRAPH_ROLE_MAP={}=INSTRUCTOR",
                        identity.idp_roles[0]
                    ),
                ),
            };
        }
        let own: BTreeSet<&str> = mapping.roles.iter().map(ClaimPath::as_str).collect();
        match ROLES_LIKE.iter().find(|p| !own.contains(*p) && present(p, claims).is_some()) {
            Some(p) => Check::warn(
                "roles_claim",
                format!(
                    "no roles at {}, but the token has a roles-like claim at `{p}`: a new membership gets {default}",
                    paths(&mapping.roles)
                ),
                format!("set COURSEGRAPH_CLAIM_ROLES={p}"),
            ),
            None => Check::pass(
                "roles_claim",
                format!(
                    "no roles at {}: a new membership gets {default} (COURSEGRAPH_DEFAULT_ROLE)",
                    paths(&mapping.roles)
                ),
            ),
        }
    }
}
