//! Validating the arguments into each configuration group: every refusal names the
//! variable to fix, and no secret is ever part of a message.

use std::net::SocketAddr;

use super::{
    AuthConfig, ClaimsConfig, ConfigArgs, ConfigError, CorsConfig, DEFAULT_DATABASE_URL, DatabaseConfig,
    InvitationConfig, JwksTimings, Limits, LogFormat, PreparedStatements, RoleTarget, Secret, SecretSource,
    ServerConfig, args, dev_secret,
};
use crate::authz::Role;

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.trim().is_empty())
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub(super) fn server(a: &args::ServerArgs, production: bool) -> Result<ServerConfig, ConfigError> {
    let listen: SocketAddr = a.listen.parse().map_err(|_| {
        ConfigError(format!("COURSEGRAPH_LISTEN must be an address like 127.0.0.1:8000 (got `{}`)", a.listen))
    })?;
    if a.max_subscriptions_per_connection == 0 {
        return err("COURSEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION must be at least 1");
    }
    Ok(ServerConfig {
        listen,
        introspection: a.introspection.unwrap_or(!production),
        doctor: a.doctor.unwrap_or(!production),
        log_format: a.log_format.unwrap_or(if production { LogFormat::Json } else { LogFormat::Text }),
        cors: cors(a)?,
        apq_cache_size: a.apq_cache_size,
        max_subscriptions_per_connection: a.max_subscriptions_per_connection,
    })
}

pub(super) fn cors(a: &args::ServerArgs) -> Result<Option<CorsConfig>, ConfigError> {
    let Some(list) = a.cors_origins.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let origins: Vec<String> =
        list.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
    let any = origins.iter().any(|o| o == "*");
    if any && a.cors_credentials {
        return err("COURSEGRAPH_CORS_CREDENTIALS needs explicit COURSEGRAPH_CORS_ORIGINS, not `*`");
    }
    if let Some(bad) = origins.iter().find(|o| *o != "*" && !(o.starts_with("http://") || o.starts_with("https://"))) {
        return err(format!("COURSEGRAPH_CORS_ORIGINS: `{bad}` is not an origin like https://app.example.com"));
    }
    Ok(Some(CorsConfig { origins: if any { Vec::new() } else { origins }, credentials: a.cors_credentials }))
}

pub(super) fn database(a: &args::DatabaseArgs) -> Result<DatabaseConfig, ConfigError> {
    let url = non_empty(&a.database_url)
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    if !(url.starts_with("sqlite:") || is_postgres(&url)) {
        return err("COURSEGRAPH_DATABASE_URL must start with sqlite:, postgres:// or postgresql://");
    }
    let listen_url = non_empty(&a.database_listen_url);
    if listen_url.as_deref().is_some_and(|u| !is_postgres(u)) {
        return err("COURSEGRAPH_DATABASE_LISTEN_URL must be a postgres:// URL");
    }
    let read_url = non_empty(&a.database_read_url);
    if read_url.as_deref().is_some_and(|u| !is_postgres(u)) {
        return err("COURSEGRAPH_DATABASE_READ_URL must be a postgres:// URL");
    }
    if read_url.is_some() && url.starts_with("sqlite:") {
        return err(
            "COURSEGRAPH_DATABASE_READ_URL needs COURSEGRAPH_DATABASE_URL on PostgreSQL (a SQLite file has no replicas)",
        );
    }
    if a.read_max_lag.0.is_zero() {
        return err("COURSEGRAPH_READ_MAX_LAG must be more than 0 (try 5s)");
    }
    let role = non_empty(&a.db_role);
    if let Some(r) = &role {
        let ident = r.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ident || r.len() > 63 {
            return err(format!("COURSEGRAPH_DB_ROLE must be a plain lower-case PostgreSQL role name, got `{r}`"));
        }
        if !url.starts_with("postgres") {
            return err("COURSEGRAPH_DB_ROLE needs PostgreSQL (row-level security); SQLite has none");
        }
    }
    // Twice the usable cores: enough to overlap the server's work with the database's,
    // few enough that the database does not thrash between backends (measured in
    // BENCHMARKS.md: on one core, 2 connections beat 10 on throughput and tail latency).
    let max_connections = a.db_max_connections.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u32;
        (2 * cores).clamp(2, 32)
    });
    if max_connections == 0 {
        return err("COURSEGRAPH_DB_MAX_CONNECTIONS must be at least 1");
    }
    // A separate LISTEN URL says the database URL is not a session of its own.
    let prepared_statements = match a.db_prepared_statements {
        PreparedStatements::Auto if listen_url.is_some() => PreparedStatements::Off,
        p => p,
    };
    Ok(DatabaseConfig {
        url,
        listen_url,
        read_url,
        read_max_lag: a.read_max_lag.0,
        auto_migrate: a.auto_migrate,
        max_connections,
        role,
        acquire_timeout: a.db_acquire_timeout.0,
        prepared_statements,
    })
}

/// The HS256 key: configured, else (outside production, without a JWKS) the dev secret.
pub(super) fn keys(
    a: &args::KeyArgs,
    production: bool,
) -> Result<(Option<Secret>, SecretSource, Option<String>), ConfigError> {
    let secret = non_empty(&a.jwt_secret);
    if let Some(s) = &secret
        && s.len() < 32
    {
        return err(format!("COURSEGRAPH_JWT_SECRET must be at least 32 bytes (it has {})", s.len()));
    }
    let jwks_url = non_empty(&a.jwks_url);
    if let Some(u) = &jwks_url
        && !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with("file://"))
    {
        return err("COURSEGRAPH_JWKS_URL must be an https://, http:// or file:// URL");
    }
    Ok(match (secret, &jwks_url) {
        (Some(s), _) => (Some(Secret::new(s)), SecretSource::Configured, jwks_url),
        (None, Some(_)) => (None, SecretSource::None, jwks_url),
        (None, None) if production => {
            return err("COURSEGRAPH_ENV=production needs COURSEGRAPH_JWT_SECRET or COURSEGRAPH_JWKS_URL: \
                 refusing to start with a generated development secret");
        }
        (None, None) => {
            let dev = dev_secret::load_or_create(a.dev_secret_file.as_deref())?;
            (Some(dev.secret), SecretSource::DevFile { path: dev.path, created: dev.created }, None)
        }
    })
}

pub(super) fn auth(a: &ConfigArgs, production: bool) -> Result<AuthConfig, ConfigError> {
    let (jwt_secret, secret_source, jwks_url) = keys(&a.keys, production)?;
    let (v, c, r) = (&a.verify, &a.claims, &a.roles);
    let audience = v
        .jwt_audience
        .as_deref()
        .map(|a| a.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let role_map =
        parse_role_map(r.role_map.as_deref()).map_err(|e| ConfigError(format!("COURSEGRAPH_ROLE_MAP: {e}")))?;
    let default_role = Role::parse(&r.default_role).ok_or_else(|| {
        ConfigError(format!(
            "COURSEGRAPH_DEFAULT_ROLE must be ADMIN, INSTRUCTOR, MEMBER or VIEWER (got `{}`)",
            r.default_role
        ))
    })?;
    Ok(AuthConfig {
        jwt_secret,
        secret_source,
        jwks_url,
        jwks_timings: JwksTimings {
            ttl: v.jwks_cache_ttl.0,
            cooldown: v.jwks_refetch_cooldown.0,
            timeout: v.jwks_fetch_timeout.0,
        },
        issuer: non_empty(&v.jwt_issuer),
        audience,
        leeway_secs: v.jwt_leeway_secs,
        claims: ClaimsConfig {
            preset: c.claims,
            org: non_empty(&c.claim_org),
            org_name: non_empty(&c.claim_org_name),
            roles: non_empty(&c.claim_roles),
            permissions: non_empty(&c.claim_permissions),
        },
        role_map,
        policy: std::sync::Arc::new(policy(r.policy.as_deref())?),
        default_role,
        role_source: r.role_source,
        platform_admin_role: non_empty(&r.platform_admin_role),
        context_cache_ttl: r.context_cache_ttl.0,
    })
}

/// COURSEGRAPH_POLICY's file, checked (every problem, one per line), or the defaults.
fn policy(path: Option<&std::path::Path>) -> Result<crate::authz::roles::Policy, ConfigError> {
    match path.filter(|p| !p.as_os_str().is_empty()) {
        None => Ok(crate::authz::roles::Policy::default()),
        Some(p) => crate::authz::policy_file::load(p)
            .map_err(|problems| ConfigError(format!("COURSEGRAPH_POLICY: the policy file is invalid:\n{problems}"))),
    }
}

/// `Admin=ADMIN,Teacher=INSTRUCTOR,TA=teaching_assistant` → the pairs.
pub fn parse_role_map(s: Option<&str>) -> Result<Vec<(String, RoleTarget)>, String> {
    let mut out = Vec::new();
    for pair in s.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not of the form idp-role=ROLE"))?;
        let v = v.trim();
        let target = match Role::parse(v) {
            Some(r) => RoleTarget::BuiltIn(r),
            None if crate::authz::roles::is_valid_key(v) => RoleTarget::Custom(v.to_owned()),
            None => {
                return Err(format!(
                    "`{v}` in `{pair}` is neither ADMIN, INSTRUCTOR, MEMBER or VIEWER nor a role key (^[a-z][a-z0-9_]{{0,62}}$)"
                ));
            }
        };
        if k.trim().is_empty() {
            return Err(format!("`{pair}` has an empty IdP role name"));
        }
        out.push((k.trim().to_owned(), target));
    }
    Ok(out)
}

pub(super) fn limits(l: &args::LimitArgs) -> Result<Limits, ConfigError> {
    if l.max_depth == 0 || l.max_complexity == 0 || l.max_body_bytes == 0 {
        return err(
            "COURSEGRAPH_MAX_DEPTH, COURSEGRAPH_MAX_COMPLEXITY and COURSEGRAPH_MAX_BODY_BYTES must be positive",
        );
    }
    Ok(Limits {
        max_depth: l.max_depth,
        max_complexity: l.max_complexity,
        max_aliases: l.max_aliases,
        max_directives: l.max_directives,
        max_tokens: l.max_tokens,
        max_batch: l.max_batch,
        max_body_bytes: l.max_body_bytes,
        max_auth_header_bytes: l.max_auth_header_bytes,
        max_page_size: 100,
        request_timeout: l.request_timeout.0,
    })
}

pub(super) fn invitations(a: &args::InvitationArgs) -> Result<InvitationConfig, ConfigError> {
    if a.invitation_ttl.0.is_zero() {
        return err("COURSEGRAPH_INVITATION_TTL must be longer than 0s (e.g. 7d)");
    }
    Ok(InvitationConfig { ttl: a.invitation_ttl.0, auto_accept: a.invitation_auto_accept })
}
