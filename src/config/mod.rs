//! Typed configuration, in groups (server, database, auth, limits, invitations), validated
//! once at start from the command line and environment ([`args`]).
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` never prints the value, and clap is
//! told to hide their env values from `--help`. Nothing here reaches into the rest of the
//! server: the groups hold plain values, and each layer builds what it needs from them.

pub mod args;
mod build;
pub mod dev_secret;

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::ValueEnum;

pub use args::ConfigArgs;
pub use build::parse_role_map;

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
    pub permissions: Option<String>,
}

/// What an identity-provider role maps to: a built-in role, or a custom role's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleTarget {
    BuiltIn(Role),
    Custom(String),
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
    pub role_map: Vec<(String, RoleTarget)>,
    /// The effective policy: the built-in grants, changed by COURSEGRAPH_POLICY's file.
    pub policy: std::sync::Arc<crate::authz::roles::Policy>,
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
        build::limits(&args::parse_group(false).expect("the defaults parse")).expect("the defaults are valid")
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
        build::invitations(&args::parse_group(false).expect("the defaults parse")).expect("the defaults are valid")
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

impl Config {
    /// Validates the arguments. Reads (or, in development, creates) the dev secret file
    /// when no key is configured.
    pub fn from_args(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let environment = args.env.environment;
        let production = environment == Environment::Production;
        Ok(Self {
            environment,
            server: build::server(&args.server, production)?,
            database: build::database(&args.database)?,
            auth: build::auth(args, production)?,
            limits: build::limits(&args.limits)?,
            invitations: build::invitations(&args.invitations)?,
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
        assert_eq!(
            parse_role_map(Some("TA=teaching_assistant")).unwrap(),
            [("TA".to_owned(), RoleTarget::Custom("teaching_assistant".into()))]
        );
        assert!(parse_role_map(Some("Teacher=BOSS")).is_err());
        assert!(parse_role_map(Some("=ADMIN")).is_err());
        assert!(parse_role_map(Some("nope")).is_err());
    }
}
