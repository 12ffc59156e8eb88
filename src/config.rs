//! Typed configuration: every option is a CLI flag and an env var (flags win), validated once at start.
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` never prints the value, and
//! clap is told to hide their env values from `--help`.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, ValueEnum, builder::BoolishValueParser};

use crate::authz::Role;

/// The default database: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://coursegraph.db?mode=rwc";

/// Every option shared by the subcommands. Each field is `--flag` and `COURSEGRAPH_*`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Database URL: `sqlite://…` (embedded default) or `postgres://…`.
    /// Falls back to `DATABASE_URL`, then to `sqlite://coursegraph.db?mode=rwc`.
    #[arg(long, env = "COURSEGRAPH_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// A direct (session) connection for LISTEN, when COURSEGRAPH_DATABASE_URL points at a
    /// transaction-pooling PgBouncer (default: the database URL).
    #[arg(long, env = "COURSEGRAPH_DATABASE_LISTEN_URL", global = true, hide_env_values = true)]
    pub database_listen_url: Option<String>,

    /// A streaming read replica (PostgreSQL): queries read from it while it is within
    /// COURSEGRAPH_READ_MAX_LAG and has replayed the viewer's own writes; mutations,
    /// provisioning and subscriptions use COURSEGRAPH_DATABASE_URL.
    #[arg(long, env = "COURSEGRAPH_DATABASE_READ_URL", global = true, hide_env_values = true)]
    pub database_read_url: Option<String>,

    /// How far the read replica may be behind before queries read from the primary instead.
    #[arg(long, env = "COURSEGRAPH_READ_MAX_LAG", global = true, default_value = "5s")]
    pub read_max_lag: HumanDuration,

    /// Bind address; port 0 picks a free port and the log says which.
    #[arg(long, env = "COURSEGRAPH_LISTEN", global = true, default_value = "127.0.0.1:8000")]
    pub listen: String,

    /// Apply migrations when `serve` starts.
    #[arg(long, env = "COURSEGRAPH_AUTO_MIGRATE", global = true, default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub auto_migrate: bool,

    /// `development` or `production`.
    #[arg(long = "env", env = "COURSEGRAPH_ENV", global = true, value_enum, default_value = "development")]
    pub environment: Environment,

    /// Allow introspection (default: on in development, off in production).
    #[arg(long, env = "COURSEGRAPH_INTROSPECTION", global = true,
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub introspection: Option<bool>,

    /// Serve the access doctor at /doctor (default: on in development, off in production).
    #[arg(long, env = "COURSEGRAPH_DOCTOR", global = true,
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub doctor: Option<bool>,

    /// HS256 shared secret, at least 32 bytes.
    #[arg(long, env = "COURSEGRAPH_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// JWKS endpoint for RS256/ES256/EdDSA keys (`https://…`, `http://…` or `file://…`).
    #[arg(long, env = "COURSEGRAPH_JWKS_URL", global = true)]
    pub jwks_url: Option<String>,

    /// How long fetched JWKS keys are trusted before a background refresh.
    #[arg(long, env = "COURSEGRAPH_JWKS_CACHE_TTL", global = true, default_value = "10m")]
    pub jwks_cache_ttl: HumanDuration,

    /// After a JWKS fetch, an unknown `kid` waits this long before the next one.
    #[arg(long, env = "COURSEGRAPH_JWKS_REFETCH_COOLDOWN", global = true, default_value = "30s")]
    pub jwks_refetch_cooldown: HumanDuration,

    /// Time limit of one JWKS fetch.
    #[arg(long, env = "COURSEGRAPH_JWKS_FETCH_TIMEOUT", global = true, default_value = "5s")]
    pub jwks_fetch_timeout: HumanDuration,

    /// Required `iss` when set.
    #[arg(long, env = "COURSEGRAPH_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// Required `aud` when set (comma-separated list; one match is enough).
    #[arg(long, env = "COURSEGRAPH_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// Clock skew allowed on exp/nbf/iat, in seconds.
    #[arg(long, env = "COURSEGRAPH_JWT_LEEWAY_SECS", global = true, default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// Claim-mapping preset.
    #[arg(long, env = "COURSEGRAPH_CLAIMS", global = true, value_enum, default_value = "default")]
    pub claims: ClaimsPreset,

    /// Override the organization-id claim path (dot path or a namespaced URL claim).
    #[arg(long, env = "COURSEGRAPH_CLAIM_ORG", global = true)]
    pub claim_org: Option<String>,

    /// Override the organization-name claim path.
    #[arg(long, env = "COURSEGRAPH_CLAIM_ORG_NAME", global = true)]
    pub claim_org_name: Option<String>,

    /// Override the roles claim path.
    #[arg(long, env = "COURSEGRAPH_CLAIM_ROLES", global = true)]
    pub claim_roles: Option<String>,

    /// Extra `idp-role=ROLE` pairs, comma separated (e.g. `Admin=ADMIN,Teacher=INSTRUCTOR`).
    #[arg(long, env = "COURSEGRAPH_ROLE_MAP", global = true)]
    pub role_map: Option<String>,

    /// Role of a new membership when the token names none that maps.
    #[arg(long, env = "COURSEGRAPH_DEFAULT_ROLE", global = true, default_value = "MEMBER")]
    pub default_role: String,

    /// `database`: the token's role seeds a new membership, the database rules afterwards;
    /// `token`: the membership role follows the token on every request.
    #[arg(long, env = "COURSEGRAPH_ROLE_SOURCE", global = true, value_enum, default_value = "database")]
    pub role_source: RoleSource,

    /// An IdP role name that makes its holder a platform admin (ADMIN everywhere, audited).
    #[arg(long, env = "COURSEGRAPH_PLATFORM_ADMIN_ROLE", global = true)]
    pub platform_admin_role: Option<String>,

    /// Where dev mode keeps its generated HS256 secret.
    #[arg(long, env = "COURSEGRAPH_DEV_SECRET_FILE", global = true, default_value = ".coursegraph/dev-secret")]
    pub dev_secret_file: PathBuf,

    /// Log format: `text` (default in development) or `json` (default in production).
    #[arg(long, env = "COURSEGRAPH_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Maximum database connections in the pool (default: twice the CPUs this process
    /// may run on, at least 2).
    #[arg(long, env = "COURSEGRAPH_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,

    /// PostgreSQL only: the role every request runs as, inside a transaction that first
    /// writes the viewer's tenancy for row-level security (`coursegraph_app`, created by the
    /// migrations: no superuser, no BYPASSRLS). Unset: requests run as the connecting user.
    #[arg(long, env = "COURSEGRAPH_DB_ROLE", global = true)]
    pub db_role: Option<String>,

    /// How long a request waits for a pooled connection before failing fast.
    #[arg(long, env = "COURSEGRAPH_DB_ACQUIRE_TIMEOUT", global = true, default_value = "3s")]
    pub db_acquire_timeout: HumanDuration,

    /// PostgreSQL: keep named prepared statements per connection (`on`, fastest), or prepare
    /// every statement unnamed in the sequence that runs it (`off`, what a transaction-pooling
    /// PgBouncer needs). `auto`: off when COURSEGRAPH_DATABASE_LISTEN_URL is set or a probe at
    /// connect finds a transaction pooler, else on.
    #[arg(long, env = "COURSEGRAPH_DB_PREPARED_STATEMENTS", global = true, default_value = "auto")]
    pub db_prepared_statements: PreparedStatements,

    /// Browser origins allowed to call the API (comma list; `*` for any, without credentials).
    /// Unset: no CORS headers, same-origin only.
    #[arg(long, env = "COURSEGRAPH_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,

    /// Let browsers send cookies/credentials cross-origin (needs explicit origins).
    #[arg(long, env = "COURSEGRAPH_CORS_CREDENTIALS", global = true, default_value = "false",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub cors_credentials: bool,

    /// How long a verified identity's user and memberships are reused without a database
    /// read (0s turns the cache off). Changes made through coursegraph invalidate at once
    /// (on PostgreSQL across replicas too); this bounds staleness from anything else.
    #[arg(long, env = "COURSEGRAPH_CONTEXT_CACHE_TTL", global = true, default_value = "5s")]
    pub context_cache_ttl: HumanDuration,

    /// How many Automatic Persisted Queries to remember; 0 turns APQ off.
    #[arg(long, env = "COURSEGRAPH_APQ_CACHE_SIZE", global = true, default_value_t = 1000)]
    pub apq_cache_size: usize,

    /// Active subscriptions one WebSocket connection may hold.
    #[arg(long, env = "COURSEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION", global = true, default_value_t = 100)]
    pub max_subscriptions_per_connection: usize,

    /// How long an invitation can be accepted (`inviteMember`).
    #[arg(long, env = "COURSEGRAPH_INVITATION_TTL", global = true, default_value = "7d")]
    pub invitation_ttl: HumanDuration,

    /// Accept the pending invitations addressed to a verified email on that person's next
    /// authenticated request (in the provisioning transaction). `false`: only explicitly,
    /// with `acceptInvitation`.
    #[arg(long, env = "COURSEGRAPH_INVITATION_AUTO_ACCEPT", global = true, default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub invitation_auto_accept: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Cross-origin access for browser clients.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// Allowed origins; empty means any origin.
    pub origins: Vec<String>,
    pub credentials: bool,
}

/// Abuse limits (CONTRACT §2). Exceeding one is QUERY_TOO_COMPLEX unless an HTTP status is named.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Maximum selection depth.
    #[arg(long, env = "COURSEGRAPH_MAX_DEPTH", global = true, default_value_t = 10)]
    pub max_depth: usize,
    /// Maximum complexity; a list field costs its `first` times its children.
    #[arg(long, env = "COURSEGRAPH_MAX_COMPLEXITY", global = true, default_value_t = 1000)]
    pub max_complexity: usize,
    /// Maximum aliases in one document.
    #[arg(long, env = "COURSEGRAPH_MAX_ALIASES", global = true, default_value_t = 30)]
    pub max_aliases: usize,
    /// Maximum directives on one field.
    #[arg(long, env = "COURSEGRAPH_MAX_DIRECTIVES", global = true, default_value_t = 5)]
    pub max_directives: usize,
    /// Maximum lexical tokens in one document.
    #[arg(long, env = "COURSEGRAPH_MAX_TOKENS", global = true, default_value_t = 5000)]
    pub max_tokens: usize,
    /// Maximum operations in one batch; 0 turns batching off.
    #[arg(long, env = "COURSEGRAPH_MAX_BATCH", global = true, default_value_t = 10)]
    pub max_batch: usize,
    /// Maximum request body in bytes (413 above).
    #[arg(long, env = "COURSEGRAPH_MAX_BODY_BYTES", global = true, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Maximum `Authorization` header in bytes (431 above).
    #[arg(long, env = "COURSEGRAPH_MAX_AUTH_HEADER_BYTES", global = true, default_value_t = 8 * 1024)]
    pub max_auth_header_bytes: usize,
    /// Time limit for one request.
    #[arg(long, env = "COURSEGRAPH_REQUEST_TIMEOUT", global = true, default_value = "15s")]
    pub request_timeout: HumanDuration,
}

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
    /// Generated in dev mode and kept in this file.
    DevFile(PathBuf),
    /// No HS256 key: JWKS only.
    None,
}

/// Token verification and identity mapping settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub jwt_secret: Option<Secret>,
    pub secret_source: SecretSource,
    pub jwks_url: Option<String>,
    pub jwks_timings: crate::auth::jwks::JwksTimings,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway_secs: u64,
    pub claims: crate::auth::claims::ClaimMapping,
    pub role_map: crate::auth::claims::RoleMap,
    pub default_role: Role,
    pub role_source: RoleSource,
    pub platform_admin_role: Option<String>,
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

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_complexity: 1000,
            max_aliases: 30,
            max_directives: 5,
            max_tokens: 5000,
            max_batch: 10,
            max_body_bytes: 1024 * 1024,
            max_auth_header_bytes: 8 * 1024,
            max_page_size: 100,
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// The validated configuration the app is built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub database_listen_url: Option<String>,
    /// The read replica, if any (COURSEGRAPH_DATABASE_READ_URL).
    pub database_read_url: Option<String>,
    pub read_max_lag: Duration,
    pub max_subscriptions_per_connection: usize,
    pub listen: SocketAddr,
    pub auto_migrate: bool,
    pub environment: Environment,
    pub introspection: bool,
    /// Whether `/doctor` is served.
    pub doctor: bool,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub db_max_connections: u32,
    /// The role requests run as under row-level security (PostgreSQL), if any.
    pub db_role: Option<String>,
    pub db_acquire_timeout: Duration,
    /// Resolved against COURSEGRAPH_DATABASE_LISTEN_URL; `Auto` is probed at connect.
    pub db_prepared_statements: PreparedStatements,
    pub log_format: LogFormat,
    pub cors: Option<CorsConfig>,
    pub apq_cache_size: usize,
    pub context_cache_ttl: Duration,
    pub invitations: InvitationConfig,
}

/// The membership lifecycle's settings.
#[derive(Debug, Clone, Copy)]
pub struct InvitationConfig {
    pub ttl: Duration,
    pub auto_accept: bool,
}

impl Default for InvitationConfig {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(7 * 86_400), auto_accept: true }
    }
}

impl Config {
    /// Validates the arguments. Creates the dev secret file when dev mode needs one.
    pub fn from_args(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let production = args.environment == Environment::Production;
        let database_url = args
            .database_url
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "COURSEGRAPH_DATABASE_URL must start with sqlite:, postgres:// or postgresql://".into(),
            ));
        }
        let database_listen_url = args.database_listen_url.clone().filter(|s| !s.trim().is_empty());
        if let Some(u) = &database_listen_url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return Err(ConfigError("COURSEGRAPH_DATABASE_LISTEN_URL must be a postgres:// URL".into()));
        }
        // A separate LISTEN URL says the database URL is not a session of its own.
        let db_prepared_statements = match args.db_prepared_statements {
            PreparedStatements::Auto if database_listen_url.is_some() => PreparedStatements::Off,
            p => p,
        };
        let database_read_url = args.database_read_url.clone().filter(|s| !s.trim().is_empty());
        if let Some(u) = &database_read_url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return Err(ConfigError("COURSEGRAPH_DATABASE_READ_URL must be a postgres:// URL".into()));
        }
        if database_read_url.is_some() && database_url.starts_with("sqlite:") {
            return Err(ConfigError(
                "COURSEGRAPH_DATABASE_READ_URL needs COURSEGRAPH_DATABASE_URL on PostgreSQL (a SQLite file has no replicas)"
                    .into(),
            ));
        }
        if args.read_max_lag.0.is_zero() {
            return Err(ConfigError("COURSEGRAPH_READ_MAX_LAG must be more than 0 (try 5s)".into()));
        }
        if args.max_subscriptions_per_connection == 0 {
            return Err(ConfigError("COURSEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION must be at least 1".into()));
        }
        let listen: SocketAddr = args.listen.parse().map_err(|_| {
            ConfigError(format!("COURSEGRAPH_LISTEN must be an address like 127.0.0.1:8000 (got `{}`)", args.listen))
        })?;

        let jwt_secret = args.jwt_secret.clone().filter(|s| !s.is_empty());
        if let Some(s) = &jwt_secret
            && s.len() < 32
        {
            return Err(ConfigError(format!("COURSEGRAPH_JWT_SECRET must be at least 32 bytes (it has {})", s.len())));
        }
        let jwks_url = args.jwks_url.clone().filter(|s| !s.is_empty());
        if let Some(u) = &jwks_url
            && !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with("file://"))
        {
            return Err(ConfigError("COURSEGRAPH_JWKS_URL must be an https://, http:// or file:// URL".into()));
        }
        if production && jwt_secret.is_none() && jwks_url.is_none() {
            return Err(ConfigError(
                "COURSEGRAPH_ENV=production needs COURSEGRAPH_JWT_SECRET or COURSEGRAPH_JWKS_URL: \
                 refusing to start with a generated development secret"
                    .into(),
            ));
        }
        let (jwt_secret, secret_source) = match (jwt_secret, &jwks_url) {
            (Some(s), _) => (Some(Secret::new(s)), SecretSource::Configured),
            (None, Some(_)) => (None, SecretSource::None),
            (None, None) => (
                Some(load_or_create_dev_secret(&args.dev_secret_file)?),
                SecretSource::DevFile(args.dev_secret_file.clone()),
            ),
        };

        let audience = args
            .jwt_audience
            .as_deref()
            .map(|a| a.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();

        let claims = crate::auth::claims::ClaimMapping::new(
            args.claims,
            args.claim_org.as_deref(),
            args.claim_org_name.as_deref(),
            args.claim_roles.as_deref(),
        );
        let role_map = crate::auth::claims::RoleMap::parse(args.role_map.as_deref())
            .map_err(|e| ConfigError(format!("COURSEGRAPH_ROLE_MAP: {e}")))?;
        let default_role = Role::parse(&args.default_role).ok_or_else(|| {
            ConfigError(format!(
                "COURSEGRAPH_DEFAULT_ROLE must be ADMIN, INSTRUCTOR, MEMBER or VIEWER (got `{}`)",
                args.default_role
            ))
        })?;

        let l = &args.limits;
        if l.max_depth == 0 || l.max_complexity == 0 || l.max_body_bytes == 0 {
            return Err(ConfigError(
                "COURSEGRAPH_MAX_DEPTH, COURSEGRAPH_MAX_COMPLEXITY and COURSEGRAPH_MAX_BODY_BYTES must be positive"
                    .into(),
            ));
        }
        // Twice the usable cores: enough to overlap the server's work with the database's,
        // few enough that the database does not thrash between backends (measured in
        // BENCHMARKS.md: on one core, 2 connections beat 10 on throughput and tail latency).
        let db_max_connections = args.db_max_connections.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u32;
            (2 * cores).clamp(2, 32)
        });
        let db_role = args.db_role.clone().filter(|r| !r.is_empty());
        if let Some(r) = &db_role {
            let ident = r.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ident || r.len() > 63 {
                return Err(ConfigError(format!(
                    "COURSEGRAPH_DB_ROLE must be a plain lower-case PostgreSQL role name, got `{r}`"
                )));
            }
            if !database_url.starts_with("postgres") {
                return Err(ConfigError(
                    "COURSEGRAPH_DB_ROLE needs PostgreSQL (row-level security); SQLite has none".into(),
                ));
            }
        }
        if args.invitation_ttl.0.is_zero() {
            return Err(ConfigError("COURSEGRAPH_INVITATION_TTL must be longer than 0s (e.g. 7d)".into()));
        }
        if db_max_connections == 0 {
            return Err(ConfigError("COURSEGRAPH_DB_MAX_CONNECTIONS must be at least 1".into()));
        }
        let limits = Limits {
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
        };

        let cors = match args.cors_origins.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(list) => {
                let origins: Vec<String> = list
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect();
                let any = origins.iter().any(|o| o == "*");
                if any && args.cors_credentials {
                    return Err(ConfigError(
                        "COURSEGRAPH_CORS_CREDENTIALS needs explicit COURSEGRAPH_CORS_ORIGINS, not `*`".into(),
                    ));
                }
                if let Some(bad) =
                    origins.iter().find(|o| *o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
                {
                    return Err(ConfigError(format!(
                        "COURSEGRAPH_CORS_ORIGINS: `{bad}` is not an origin like https://app.example.com"
                    )));
                }
                Some(CorsConfig { origins: if any { Vec::new() } else { origins }, credentials: args.cors_credentials })
            }
        };
        Ok(Self {
            cors,
            apq_cache_size: args.apq_cache_size,
            context_cache_ttl: args.context_cache_ttl.0,
            invitations: InvitationConfig { ttl: args.invitation_ttl.0, auto_accept: args.invitation_auto_accept },
            database_listen_url,
            database_read_url,
            read_max_lag: args.read_max_lag.0,
            max_subscriptions_per_connection: args.max_subscriptions_per_connection,
            database_url,
            listen,
            auto_migrate: args.auto_migrate,
            environment: args.environment,
            introspection: args.introspection.unwrap_or(!production),
            doctor: args.doctor.unwrap_or(!production),
            auth: AuthConfig {
                jwt_secret,
                secret_source,
                jwks_url,
                jwks_timings: crate::auth::jwks::JwksTimings {
                    ttl: args.jwks_cache_ttl.0,
                    cooldown: args.jwks_refetch_cooldown.0,
                    timeout: args.jwks_fetch_timeout.0,
                },
                issuer: args.jwt_issuer.clone().filter(|s| !s.is_empty()),
                audience,
                leeway_secs: args.jwt_leeway_secs,
                claims,
                role_map,
                default_role,
                role_source: args.role_source,
                platform_admin_role: args.platform_admin_role.clone().filter(|s| !s.is_empty()),
            },
            limits,
            db_max_connections,
            db_role,
            db_acquire_timeout: args.db_acquire_timeout.0,
            db_prepared_statements,
            log_format: args.log_format.unwrap_or(if production { LogFormat::Json } else { LogFormat::Text }),
        })
    }

    /// A development configuration for tests and tools: the given database and HS256 secret.
    pub fn for_tests(database_url: &str, jwt_secret: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            database_listen_url: None,
            database_read_url: None,
            read_max_lag: Duration::from_secs(5),
            max_subscriptions_per_connection: 100,
            listen: "127.0.0.1:0".parse().expect("static address"),
            auto_migrate: true,
            environment: Environment::Development,
            introspection: true,
            doctor: true,
            auth: AuthConfig {
                jwt_secret: Some(Secret::new(jwt_secret)),
                secret_source: SecretSource::Configured,
                jwks_url: None,
                jwks_timings: crate::auth::jwks::JwksTimings::default(),
                issuer: None,
                audience: Vec::new(),
                leeway_secs: 30,
                claims: crate::auth::claims::ClaimMapping::new(ClaimsPreset::Default, None, None, None),
                role_map: crate::auth::claims::RoleMap::default(),
                default_role: Role::Member,
                role_source: RoleSource::Database,
                platform_admin_role: None,
            },
            limits: Limits::default(),
            db_max_connections: 5,
            db_role: None,
            db_acquire_timeout: Duration::from_secs(5),
            db_prepared_statements: PreparedStatements::Auto,
            log_format: LogFormat::Text,
            cors: None,
            apq_cache_size: 1000,
            context_cache_ttl: Duration::from_secs(5),
            invitations: InvitationConfig::default(),
        }
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

/// Reads the dev secret, creating it (0600, random 32 bytes) on first use.
fn load_or_create_dev_secret(path: &PathBuf) -> Result<Secret, ConfigError> {
    use base64::Engine as _;
    let fail = |what: &str, e: std::io::Error| {
        ConfigError(format!(
            "COURSEGRAPH_DEV_SECRET_FILE: cannot {what} {}: {e} (or set COURSEGRAPH_JWT_SECRET)",
            path.display()
        ))
    };
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(Secret::new(s.trim())),
        Ok(_) => {
            return Err(ConfigError(format!(
                "COURSEGRAPH_DEV_SECRET_FILE: {} holds fewer than 32 bytes; delete it to regenerate",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("read", e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
    }
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &secret).map_err(|e| fail("write", e))?;
    // Another process may have won the race to create it: use whatever is there now.
    let stored = std::fs::read_to_string(path).map_err(|e| fail("read", e))?;
    Ok(Secret::new(stored.trim()))
}

#[cfg(unix)]
fn write_private(path: &PathBuf, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => f.write_all(contents.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn write_private(path: &PathBuf, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
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
}
