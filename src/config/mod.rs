//! Typed configuration, in groups (server, database, auth, limits, invitations), validated
//! once at start from the command line and environment ([`args`]).
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` never prints the value, and clap is
//! told to hide their env values from `--help`. Nothing here reaches into the rest of the
//! server: the groups hold plain values, and each layer builds what it needs from them.

pub mod args;
pub mod dev_secret;

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::ValueEnum;

pub use args::ConfigArgs;

use crate::authz::Role;

/// The default database: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://coursegraph.db?mode=rwc";

/// Whether PostgreSQL connections keep named prepared statements (COURSEGRAPH_DB_PREPARED_STATEMENTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PreparedStatements {
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClaimsPreset {
    Default,
    Auth0,
    Frontegg,
    Supabase,
    Keycloak,
    Clerk,
}

impl ClaimsPreset {
    pub const ALL: [ClaimsPreset; 6] = [
        ClaimsPreset::Default,
        ClaimsPreset::Auth0,
        ClaimsPreset::Frontegg,
        ClaimsPreset::Supabase,
        ClaimsPreset::Keycloak,
        ClaimsPreset::Clerk,
    ];

    /// The name COURSEGRAPH_CLAIMS takes.
    pub fn name(self) -> &'static str {
        match self {
            ClaimsPreset::Default => "default",
            ClaimsPreset::Auth0 => "auth0",
            ClaimsPreset::Frontegg => "frontegg",
            ClaimsPreset::Supabase => "supabase",
            ClaimsPreset::Keycloak => "keycloak",
            ClaimsPreset::Clerk => "clerk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleSource {
    Database,
    Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A duration written as `500ms`, `30s`, `15m`, `1h`, `7d` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration (try 30s, 15m, 1h, 7d)"))?;
        let d = match unit.trim() {
            "" | "s" | "sec" | "secs" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "m" | "min" | "mins" => Duration::from_secs(n * 60),
            "h" | "hr" | "hrs" => Duration::from_secs(n * 3600),
            "d" | "day" | "days" => Duration::from_secs(n * 86_400),
            other => return Err(format!("unknown duration unit `{other}` in `{s}` (use ms, s, m, h or d)")),
        };
        Ok(Self(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

/// A secret value: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A configuration error; its message names the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where the HS256 key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `COURSEGRAPH_JWT_SECRET`.
    Configured,
    /// Generated in development mode and kept in this file (`created`: by this process).
    DevFile { path: PathBuf, created: bool },
    /// No HS256 key: JWKS only.
    None,
}

/// Timings of the JWKS cache; the defaults are what production uses, tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct JwksTimings {
    pub ttl: Duration,
    pub cooldown: Duration,
    pub timeout: Duration,
}

/// Where the claims are (a preset, each path overridable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsConfig {
    pub preset: ClaimsPreset,
    pub org: Option<String>,
    pub org_name: Option<String>,
    pub roles: Option<String>,
}

/// Token verification and identity mapping.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub jwt_secret: Option<Secret>,
    pub secret_source: SecretSource,
    pub jwks_url: Option<String>,
    pub jwks_timings: JwksTimings,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway_secs: u64,
    pub claims: ClaimsConfig,
    /// COURSEGRAPH_ROLE_MAP's pairs (IdP role → role), on top of the built-in map.
    pub role_map: Vec<(String, Role)>,
    pub default_role: Role,
    pub role_source: RoleSource,
    pub platform_admin_role: Option<String>,
    /// How long a verified identity's viewer is reused without a database read.
    pub context_cache_ttl: Duration,
}

/// Limits applied to every GraphQL request.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    pub max_tokens: usize,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    pub max_auth_header_bytes: usize,
    pub max_page_size: i32,
    pub request_timeout: Duration,
}

/// The defaults of [`args::LimitArgs`].
impl Default for Limits {
    fn default() -> Self {
        limits(&args::parse_group(false).expect("the defaults parse")).expect("the defaults are valid")
    }
}

/// The membership lifecycle's settings.
#[derive(Debug, Clone, Copy)]
pub struct InvitationConfig {
    pub ttl: Duration,
    pub auto_accept: bool,
}

/// The defaults of [`args::InvitationArgs`].
impl Default for InvitationConfig {
    fn default() -> Self {
        invitations(&args::parse_group(false).expect("the defaults parse")).expect("the defaults are valid")
    }
}

/// Cross-origin access for browser clients.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// Allowed origins; empty means any origin.
    pub origins: Vec<String>,
    pub credentials: bool,
}

/// The HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub introspection: bool,
    /// Whether `/doctor` is served.
    pub doctor: bool,
    pub log_format: LogFormat,
    pub cors: Option<CorsConfig>,
    pub apq_cache_size: usize,
    pub max_subscriptions_per_connection: usize,
}

/// The database and how it is reached.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub listen_url: Option<String>,
    /// The read replica, if any (COURSEGRAPH_DATABASE_READ_URL).
    pub read_url: Option<String>,
    pub read_max_lag: Duration,
    pub auto_migrate: bool,
    pub max_connections: u32,
    /// The role requests run as under row-level security (PostgreSQL), if any.
    pub role: Option<String>,
    pub acquire_timeout: Duration,
    /// Resolved against COURSEGRAPH_DATABASE_LISTEN_URL; `Auto` is probed at connect.
    pub prepared_statements: PreparedStatements,
}

/// The validated configuration the app is built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub invitations: InvitationConfig,
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.trim().is_empty())
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Config {
    /// Validates the arguments. Reads (or, in development, creates) the dev secret file
    /// when no key is configured.
    pub fn from_args(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let environment = args.env.environment;
        let production = environment == Environment::Production;
        Ok(Self {
            environment,
            server: server(&args.server, production)?,
            database: database(&args.database)?,
            auth: auth(args, production)?,
            limits: limits(&args.limits)?,
            invitations: invitations(&args.invitations)?,
        })
    }

    /// The defaults (the environment ignored) with `database_url` and an HS256 secret: what
    /// the tests start from, so they run on the same defaults as the server.
    pub fn for_tests(database_url: &str, jwt_secret: &str) -> Self {
        let mut args = ConfigArgs::defaults();
        args.database.database_url = Some(database_url.to_owned());
        args.server.listen = "127.0.0.1:0".into();
        args.database.db_max_connections = Some(5);
        args.database.db_acquire_timeout = HumanDuration(Duration::from_secs(5));
        args.keys.jwt_secret = Some(jwt_secret.to_owned());
        Self::from_args(&args).expect("the test configuration is valid")
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// Whether tokens are signed with a generated development secret (and which file).
    pub fn dev_secret_file(&self) -> Option<&std::path::Path> {
        match &self.auth.secret_source {
            SecretSource::DevFile { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn server(a: &args::ServerArgs, production: bool) -> Result<ServerConfig, ConfigError> {
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

fn cors(a: &args::ServerArgs) -> Result<Option<CorsConfig>, ConfigError> {
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

fn database(a: &args::DatabaseArgs) -> Result<DatabaseConfig, ConfigError> {
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
fn keys(a: &args::KeyArgs, production: bool) -> Result<(Option<Secret>, SecretSource, Option<String>), ConfigError> {
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

fn auth(a: &ConfigArgs, production: bool) -> Result<AuthConfig, ConfigError> {
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
        },
        role_map,
        default_role,
        role_source: r.role_source,
        platform_admin_role: non_empty(&r.platform_admin_role),
        context_cache_ttl: r.context_cache_ttl.0,
    })
}

/// `Admin=ADMIN,Teacher=INSTRUCTOR` → the pairs.
pub fn parse_role_map(s: Option<&str>) -> Result<Vec<(String, Role)>, String> {
    let mut out = Vec::new();
    for pair in s.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not of the form idp-role=ROLE"))?;
        let role =
            Role::parse(v).ok_or_else(|| format!("`{v}` in `{pair}` is not ADMIN, INSTRUCTOR, MEMBER or VIEWER"))?;
        if k.trim().is_empty() {
            return Err(format!("`{pair}` has an empty IdP role name"));
        }
        out.push((k.trim().to_owned(), role));
    }
    Ok(out)
}

fn limits(l: &args::LimitArgs) -> Result<Limits, ConfigError> {
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

fn invitations(a: &args::InvitationArgs) -> Result<InvitationConfig, ConfigError> {
    if a.invitation_ttl.0.is_zero() {
        return err("COURSEGRAPH_INVITATION_TTL must be longer than 0s (e.g. 7d)");
    }
    Ok(InvitationConfig { ttl: a.invitation_ttl.0, auto_accept: a.invitation_auto_accept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("1h".parse::<HumanDuration>().unwrap().0, Duration::from_secs(3600));
        assert_eq!("15m".parse::<HumanDuration>().unwrap().0, Duration::from_secs(900));
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(250));
        assert_eq!("42".parse::<HumanDuration>().unwrap().0, Duration::from_secs(42));
        assert_eq!("2d".parse::<HumanDuration>().unwrap().0, Duration::from_secs(172_800));
        assert!("1w".parse::<HumanDuration>().is_err());
        assert!("h".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("super-secret-value-that-must-not-leak");
        assert!(!format!("{s:?}").contains("super"));
    }

    #[test]
    fn the_test_configuration_is_the_defaults() {
        let c = Config::for_tests("sqlite::memory:", "a-test-secret-that-is-long-enough-0123");
        assert_eq!(c.limits.max_depth, 10);
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
        assert_eq!(c.auth.leeway_secs, 30);
        assert_eq!(c.auth.context_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.invitations.ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(c.database.read_max_lag, Duration::from_secs(5));
        assert_eq!(c.auth.default_role, Role::Member);
        assert!(c.server.introspection && c.server.doctor);
    }

    #[test]
    fn role_map_pairs() {
        assert_eq!(parse_role_map(Some("Teacher=INSTRUCTOR, boss=admin")).unwrap().len(), 2);
        assert!(parse_role_map(Some("Teacher=BOSS")).is_err());
        assert!(parse_role_map(Some("=ADMIN")).is_err());
        assert!(parse_role_map(Some("nope")).is_err());
    }
}
