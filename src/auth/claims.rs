//! Claim presets: where each identity provider keeps the organization and
//! the roles, the role map, and the mapping from verified claims to an [`Identity`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{
    authz::Role,
    config::{AuthConfig, ClaimsConfig, ClaimsPreset, RoleTarget},
};

/// A path into the claims: a dot path (`realm_access.roles`) or a namespaced claim
/// taken whole (`https://coursegraph.dev/roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(String);

impl ClaimPath {
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Looks the path up. A key that exists literally wins over a dotted walk, so
    /// namespaced claims with dots in them resolve as one key.
    pub fn get<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        if let Some(v) = claims.get(&self.0) {
            return Some(v);
        }
        if self.0.starts_with("http://") || self.0.starts_with("https://") {
            return None;
        }
        let mut parts = self.0.split('.');
        let mut cur = claims.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    }
}

/// Where the organization and role claims are, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub preset: ClaimsPreset,
    pub org: Vec<ClaimPath>,
    pub org_name: Vec<ClaimPath>,
    pub roles: Vec<ClaimPath>,
    /// The token's permissions (mapped to grants by the policy file's `[idp.permissions]`).
    pub permissions: Vec<ClaimPath>,
}

impl ClaimMapping {
    /// The configured preset with its overrides.
    pub fn from_config(c: &ClaimsConfig) -> Self {
        let mut m = Self::new(c.preset, c.org.as_deref(), c.org_name.as_deref(), c.roles.as_deref());
        if let Some(p) = c.permissions.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            m.permissions = vec![ClaimPath::new(p)];
        }
        m
    }

    /// The preset's paths, each replaced by its override when one is given.
    pub fn new(preset: ClaimsPreset, org: Option<&str>, org_name: Option<&str>, roles: Option<&str>) -> Self {
        let paths = |v: &[&str]| v.iter().map(|s| ClaimPath::new(*s)).collect::<Vec<_>>();
        let (o, n, r): (&[&str], &[&str], &[&str]) = match preset {
            ClaimsPreset::Default => (&["organization_id", "org_id"], &["org_name"], &["roles", "role"]),
            ClaimsPreset::Auth0 => (&["org_id"], &["org_name"], &["https://coursegraph.dev/roles", "permissions"]),
            ClaimsPreset::Frontegg => (&["tenantId"], &["tenantName"], &["roles"]),
            ClaimsPreset::Supabase => (
                &["app_metadata.organization_id"],
                &["app_metadata.organization_name"],
                &["app_metadata.roles", "app_metadata.role"],
            ),
            // Keycloak 26 puts the organization's alias (or alias → {id}) in `organization`;
            // the alias doubles as the display name.
            ClaimsPreset::Keycloak => (&["organization"], &["organization"], &["realm_access.roles"]),
            ClaimsPreset::Clerk => (&["o.id", "org_id"], &["o.slg", "org_slug"], &["o.rol", "org_role"]),
        };
        let pick = |over: Option<&str>, default: &[&str]| match over.map(str::trim).filter(|s| !s.is_empty()) {
            Some(p) => vec![ClaimPath::new(p)],
            None => paths(default),
        };
        let permissions: &[&str] = match preset {
            ClaimsPreset::Auth0 | ClaimsPreset::Frontegg => &["permissions"],
            ClaimsPreset::Clerk => &["o.per"],
            _ => &[],
        };
        Self {
            preset,
            org: pick(org, o),
            org_name: pick(org_name, n),
            roles: pick(roles, r),
            permissions: paths(permissions),
        }
    }

    fn first<'a>(paths: &[ClaimPath], claims: &'a Map<String, Value>) -> Option<&'a Value> {
        paths.iter().find_map(|p| p.get(claims).filter(|v| !v.is_null()))
    }

    /// The organization claim: (external id, display name).
    pub fn organization(&self, claims: &Map<String, Value>) -> Option<OrgClaim> {
        let (id, alias) = org_from_value(Self::first(&self.org, claims)?)?;
        let name = Self::first(&self.org_name, claims)
            .and_then(|v| org_from_value(v).map(|(id, alias)| alias.unwrap_or(id)))
            .or(alias);
        Some(OrgClaim { external_id: id, name })
    }

    /// The raw identity-provider roles.
    pub fn roles(&self, claims: &Map<String, Value>) -> Vec<String> {
        Self::strings(Self::first(&self.roles, claims))
    }

    /// The token's permissions, as it lists them.
    pub fn permissions(&self, claims: &Map<String, Value>) -> Vec<String> {
        Self::strings(Self::first(&self.permissions, claims))
    }

    /// A list of strings, or one string separated by commas or spaces.
    fn strings(v: Option<&Value>) -> Vec<String> {
        match v {
            Some(Value::String(s)) => {
                s.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Writes claims of this mapping's shape (used by `coursegraph token`).
    pub fn encode(&self, claims: &mut Map<String, Value>, org: Option<&str>, org_name: Option<&str>, roles: &[String]) {
        if let Some(org) = org {
            if self.preset == ClaimsPreset::Keycloak && self.org[0].as_str() == "organization" {
                let alias = org_name.unwrap_or(org);
                claims.insert("organization".into(), serde_json::json!({ alias: { "id": org } }));
            } else {
                set_path(claims, &self.org[0], Value::String(org.to_owned()));
                if let Some(n) = org_name {
                    set_path(claims, &self.org_name[0], Value::String(n.to_owned()));
                }
            }
        }
        if !roles.is_empty() {
            let single = self.roles[0].as_str().ends_with("role") && !self.roles[0].as_str().ends_with("roles");
            let v = if single || self.roles[0].as_str() == "o.rol" {
                Value::String(roles[0].clone())
            } else {
                Value::Array(roles.iter().cloned().map(Value::String).collect())
            };
            set_path(claims, &self.roles[0], v);
        }
    }

    /// Writes the token's permissions where this mapping reads them (`permissions` when
    /// it reads none).
    pub fn encode_permissions(&self, claims: &mut Map<String, Value>, permissions: &[String]) {
        if permissions.is_empty() {
            return;
        }
        let path = self.permissions.first().cloned().unwrap_or_else(|| ClaimPath::new("permissions"));
        set_path(claims, &path, Value::Array(permissions.iter().cloned().map(Value::String).collect()));
    }
}

fn set_path(claims: &mut Map<String, Value>, path: &ClaimPath, value: Value) {
    let p = path.as_str();
    if p.starts_with("http://") || p.starts_with("https://") || !p.contains('.') {
        claims.insert(p.to_owned(), value);
        return;
    }
    let parts: Vec<&str> = p.split('.').collect();
    let mut cur = claims;
    for part in &parts[..parts.len() - 1] {
        let entry = cur.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = entry.as_object_mut().expect("just made an object");
    }
    cur.insert(parts[parts.len() - 1].to_owned(), value);
}

/// (id, alias) from a claim value: a string or number; the first entry of a list;
/// or the first entry of a map `alias → {id}` (Keycloak 26), else `{id, name}`.
fn org_from_value(v: &Value) -> Option<(String, Option<String>)> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some((s.trim().to_owned(), None)),
        Value::Number(n) => Some((n.to_string(), None)),
        Value::Array(a) => a.iter().find_map(org_from_value),
        Value::Object(m) => {
            if let Some(id) = m.get("id").and_then(org_from_value) {
                let name = m.get("name").and_then(|v| v.as_str()).map(str::to_owned);
                return Some((id.0, name));
            }
            let (alias, inner) = m.iter().next()?;
            let id = inner
                .as_object()
                .and_then(|o| o.get("id"))
                .and_then(org_from_value)
                .map(|x| x.0)
                .unwrap_or_else(|| alias.clone());
            Some((id, Some(alias.clone())))
        }
        _ => None,
    }
}

/// The organization a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgClaim {
    pub external_id: String,
    pub name: Option<String>,
}

/// IdP role name → organization role (or custom role key). Case-insensitive; an `org:`
/// prefix is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMap(HashMap<String, RoleTarget>);

impl Default for RoleMap {
    fn default() -> Self {
        let mut m = HashMap::new();
        for (k, r) in [
            ("owner", Role::Admin),
            ("admin", Role::Admin),
            ("organization_admin", Role::Admin),
            ("instructor", Role::Instructor),
            ("teacher", Role::Instructor),
            ("member", Role::Member),
            ("student", Role::Member),
            ("user", Role::Member),
            ("basic_member", Role::Member),
            ("viewer", Role::Viewer),
            ("read_only", Role::Viewer),
            ("guest", Role::Viewer),
        ] {
            m.insert(k.to_owned(), RoleTarget::BuiltIn(r));
        }
        Self(m)
    }
}

impl RoleMap {
    fn key(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        s.strip_prefix("org:").map(str::to_owned).unwrap_or(s)
    }

    /// The built-in map plus `extra` (COURSEGRAPH_ROLE_MAP's pairs); extras win.
    pub fn with_extras(extra: &[(String, RoleTarget)]) -> Self {
        let mut map = Self::default();
        for (k, target) in extra {
            map.0.insert(Self::key(k), target.clone());
        }
        map
    }

    /// The highest built-in role any of `roles` maps to.
    pub fn map(&self, roles: &[String]) -> Option<Role> {
        roles
            .iter()
            .filter_map(|r| match self.0.get(&Self::key(r)) {
                Some(RoleTarget::BuiltIn(role)) => Some(*role),
                _ => None,
            })
            .max()
    }

    /// The custom role keys `roles` map to, in the token's order, each once.
    pub fn custom(&self, roles: &[String]) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for r in roles {
            if let Some(RoleTarget::Custom(k)) = self.0.get(&Self::key(r))
                && !keys.contains(k)
            {
                keys.push(k.clone());
            }
        }
        keys
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub organization: Option<OrgClaim>,
    /// The raw IdP roles, as the token lists them.
    pub idp_roles: Vec<String>,
    /// The organization role they map to, if any.
    pub role: Option<Role>,
    /// The custom role keys they map to (COURSEGRAPH_ROLE_MAP).
    pub custom_roles: Vec<String>,
    /// The token's permissions, as listed (COURSEGRAPH_CLAIM_PERMISSIONS).
    pub permissions: Vec<String>,
    pub platform_admin: bool,
}

/// The configured mapping from claims to an identity: where the claims are, the role
/// map, the platform-admin role.
#[derive(Debug, Clone)]
pub struct Mapper {
    pub mapping: ClaimMapping,
    pub roles: RoleMap,
    pub platform_admin_role: Option<String>,
}

impl Mapper {
    pub fn new(auth: &AuthConfig) -> Self {
        Self {
            mapping: ClaimMapping::from_config(&auth.claims),
            roles: RoleMap::with_extras(&auth.role_map),
            platform_admin_role: auth.platform_admin_role.clone(),
        }
    }

    /// The identity verified `claims` describe.
    pub fn identity(&self, claims: &Map<String, Value>) -> Identity {
        identity_from_claims(claims, &self.mapping, &self.roles, self.platform_admin_role.as_deref())
    }
}

/// Turns verified claims into an identity. `sub` has been checked to be a non-empty string.
pub fn identity_from_claims(
    claims: &Map<String, Value>,
    mapping: &ClaimMapping,
    role_map: &RoleMap,
    platform_admin_role: Option<&str>,
) -> Identity {
    let s = |k: &str| {
        ClaimPath::new(k)
            .get(claims)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let idp_roles = mapping.roles(claims);
    let platform_admin =
        platform_admin_role.is_some_and(|p| idp_roles.iter().any(|r| RoleMap::key(r) == RoleMap::key(p)));
    Identity {
        issuer: s("iss").unwrap_or_default(),
        subject: s("sub").unwrap_or_default(),
        email: s("email"),
        email_verified: match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(v)) => v.eq_ignore_ascii_case("true"),
            _ => false,
        },
        name: s("name")
            .or_else(|| s("user_metadata.full_name"))
            .or_else(|| s("preferred_username"))
            .or_else(|| s("nickname")),
        picture: s("picture").or_else(|| s("user_metadata.avatar_url")),
        organization: mapping.organization(claims),
        role: role_map.map(&idp_roles),
        custom_roles: role_map.custom(&idp_roles),
        permissions: mapping.permissions(claims),
        idp_roles,
        platform_admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn ident(preset: ClaimsPreset, v: Value) -> Identity {
        identity_from_claims(&claims(v), &ClaimMapping::new(preset, None, None, None), &RoleMap::default(), None)
    }

    #[test]
    fn default_preset_prefers_organization_id_and_roles_list() {
        let i = ident(
            ClaimsPreset::Default,
            json!({"sub": "a", "organization_id": "o1", "org_id": "o2", "org_name": "Acme", "roles": ["member", "teacher"], "role": "admin"}),
        );
        assert_eq!(i.organization, Some(OrgClaim { external_id: "o1".into(), name: Some("Acme".into()) }));
        assert_eq!(i.role, Some(Role::Instructor));
        let i = ident(ClaimsPreset::Default, json!({"sub": "a", "org_id": "o2", "role": "admin"}));
        assert_eq!(i.organization.unwrap().external_id, "o2");
        assert_eq!(i.role, Some(Role::Admin));
    }

    #[test]
    fn auth0_reads_namespaced_roles_then_permissions() {
        let i = ident(
            ClaimsPreset::Auth0,
            json!({"sub": "auth0|1", "org_id": "org_abc", "https://coursegraph.dev/roles": ["Admin"], "permissions": ["read:courses"]}),
        );
        assert_eq!(i.role, Some(Role::Admin));
        assert_eq!(i.organization.unwrap().external_id, "org_abc");
        let i = ident(ClaimsPreset::Auth0, json!({"sub": "auth0|1", "permissions": ["teacher"]}));
        assert_eq!(i.role, Some(Role::Instructor));
    }

    #[test]
    fn supabase_never_uses_the_postgres_role_claim() {
        let i = ident(
            ClaimsPreset::Supabase,
            json!({"sub": "u", "role": "authenticated", "app_metadata": {"organization_id": "t1", "organization_name": "T One", "role": "instructor"}}),
        );
        assert_eq!(i.role, Some(Role::Instructor));
        assert_eq!(i.organization, Some(OrgClaim { external_id: "t1".into(), name: Some("T One".into()) }));
        let i = ident(ClaimsPreset::Supabase, json!({"sub": "u", "role": "admin"}));
        assert_eq!(i.role, None);
    }

    #[test]
    fn keycloak_organization_list_and_map() {
        let i = ident(
            ClaimsPreset::Keycloak,
            json!({"sub": "k", "organization": ["acme"], "realm_access": {"roles": ["teacher", "offline_access"]}}),
        );
        assert_eq!(i.organization, Some(OrgClaim { external_id: "acme".into(), name: Some("acme".into()) }));
        assert_eq!(i.role, Some(Role::Instructor));
        let i = ident(ClaimsPreset::Keycloak, json!({"sub": "k", "organization": {"acme": {"id": "42c1"}}}));
        assert_eq!(i.organization, Some(OrgClaim { external_id: "42c1".into(), name: Some("acme".into()) }));
    }

    #[test]
    fn clerk_v2_then_v1() {
        let i = ident(
            ClaimsPreset::Clerk,
            json!({"sub": "user_1", "v": 2, "o": {"id": "org_9", "slg": "acme", "rol": "admin"}}),
        );
        assert_eq!(i.organization, Some(OrgClaim { external_id: "org_9".into(), name: Some("acme".into()) }));
        assert_eq!(i.role, Some(Role::Admin));
        let i = ident(
            ClaimsPreset::Clerk,
            json!({"sub": "user_1", "org_id": "org_8", "org_slug": "beta", "org_role": "org:member"}),
        );
        assert_eq!(i.organization, Some(OrgClaim { external_id: "org_8".into(), name: Some("beta".into()) }));
        assert_eq!(i.role, Some(Role::Member));
    }

    #[test]
    fn frontegg_tenant_claims() {
        let i = ident(
            ClaimsPreset::Frontegg,
            json!({"sub": "f", "tenantId": "t-1", "tenantName": "Tee", "roles": ["Admin"]}),
        );
        assert_eq!(i.organization, Some(OrgClaim { external_id: "t-1".into(), name: Some("Tee".into()) }));
        assert_eq!(i.role, Some(Role::Admin));
    }

    #[test]
    fn overrides_replace_the_preset_path() {
        let m = ClaimMapping::new(ClaimsPreset::Default, Some("tenant.id"), None, Some("realm_access.roles"));
        let i = identity_from_claims(
            &claims(
                json!({"sub": "x", "org_id": "ignored", "tenant": {"id": "T"}, "realm_access": {"roles": ["guest"]}}),
            ),
            &m,
            &RoleMap::default(),
            None,
        );
        assert_eq!(i.organization.unwrap().external_id, "T");
        assert_eq!(i.role, Some(Role::Viewer));
    }

    #[test]
    fn role_map_is_case_insensitive_strips_org_prefix_and_highest_wins() {
        let m = RoleMap::with_extras(&crate::config::parse_role_map(Some("Teacher=ADMIN, Reader=viewer")).unwrap());
        assert_eq!(m.map(&["org:MEMBER".into()]), Some(Role::Member));
        assert_eq!(m.map(&["teacher".into()]), Some(Role::Admin));
        assert_eq!(m.map(&["reader".into(), "student".into()]), Some(Role::Member));
        assert_eq!(m.map(&["unknown".into()]), None);
    }

    #[test]
    fn platform_admin_role_is_recognised() {
        let i = identity_from_claims(
            &claims(json!({"sub": "p", "roles": ["SuperAdmin"]})),
            &ClaimMapping::new(ClaimsPreset::Default, None, None, None),
            &RoleMap::default(),
            Some("superadmin"),
        );
        assert!(i.platform_admin);
        assert_eq!(i.role, None);
    }

    #[test]
    fn encode_round_trips_through_every_preset() {
        for preset in ClaimsPreset::ALL {
            let m = ClaimMapping::new(preset, None, None, None);
            let mut c = claims(json!({"sub": "s"}));
            m.encode(&mut c, Some("ext-1"), Some("acme"), &["admin".to_owned()]);
            let i = identity_from_claims(&c, &m, &RoleMap::default(), None);
            assert_eq!(i.organization.as_ref().map(|o| o.external_id.as_str()), Some("ext-1"), "{preset:?}");
            assert_eq!(i.role, Some(Role::Admin), "{preset:?} {c:?}");
        }
    }
}
