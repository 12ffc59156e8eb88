//! The command line and environment: every option is a `--flag` and a `COURSEGRAPH_*`
//! variable (flags win), in groups, so each subcommand offers the flags it uses and reads
//! the rest from the environment. Each option's default is written here once: the server,
//! every subcommand and the tests ([`ConfigArgs::defaults`]) take it from the same place.

use std::{ffi::OsString, path::PathBuf};

use clap::{Args, FromArgMatches, builder::BoolishValueParser};

use super::{ClaimsPreset, Environment, HumanDuration, LogFormat, PreparedStatements, RoleSource};

/// `development` or `production`.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// `development` or `production` (refuses a generated secret, turns introspection and
    /// the doctor off unless asked, logs JSON).
    #[arg(long = "env", env = "COURSEGRAPH_ENV", value_enum, default_value = "development")]
    pub environment: Environment,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://…` (embedded default) or `postgres://…`.
    /// Falls back to `DATABASE_URL`, then to `sqlite://coursegraph.db?mode=rwc`.
    #[arg(long, env = "COURSEGRAPH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// A direct (session) connection for LISTEN, when COURSEGRAPH_DATABASE_URL points at a
    /// transaction-pooling PgBouncer (default: the database URL).
    #[arg(long, env = "COURSEGRAPH_DATABASE_LISTEN_URL", hide_env_values = true)]
    pub database_listen_url: Option<String>,

    /// A streaming read replica (PostgreSQL): queries read from it while it is within
    /// COURSEGRAPH_READ_MAX_LAG and has replayed the viewer's own writes; mutations,
    /// provisioning and subscriptions use COURSEGRAPH_DATABASE_URL.
    #[arg(long, env = "COURSEGRAPH_DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,

    /// How far the read replica may be behind before queries read from the primary instead.
    #[arg(long, env = "COURSEGRAPH_READ_MAX_LAG", default_value = "5s")]
    pub read_max_lag: HumanDuration,

    /// Apply migrations when `serve` starts.
    #[arg(long, env = "COURSEGRAPH_AUTO_MIGRATE", default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub auto_migrate: bool,

    /// Maximum database connections in the pool (default: twice the CPUs this process
    /// may run on, at least 2).
    #[arg(long, env = "COURSEGRAPH_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,

    /// PostgreSQL only: the role every request runs as, inside a transaction that first
    /// writes the viewer's tenancy for row-level security (`coursegraph_app`, created by the
    /// migrations: no superuser, no BYPASSRLS). Unset: requests run as the connecting user.
    #[arg(long, env = "COURSEGRAPH_DB_ROLE")]
    pub db_role: Option<String>,

    /// How long a request waits for a pooled connection before failing fast.
    #[arg(long, env = "COURSEGRAPH_DB_ACQUIRE_TIMEOUT", default_value = "3s")]
    pub db_acquire_timeout: HumanDuration,

    /// PostgreSQL: keep named prepared statements per connection (`on`, fastest), or prepare
    /// every statement unnamed in the sequence that runs it (`off`, what a transaction-pooling
    /// PgBouncer needs). `auto`: off when COURSEGRAPH_DATABASE_LISTEN_URL is set or a probe at
    /// connect finds a transaction pooler, else on.
    #[arg(long, env = "COURSEGRAPH_DB_PREPARED_STATEMENTS", value_enum, default_value = "auto")]
    pub db_prepared_statements: PreparedStatements,
}

/// The keys tokens are signed with.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Signing keys")]
pub struct KeyArgs {
    /// HS256 shared secret, at least 32 bytes.
    #[arg(long, env = "COURSEGRAPH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// JWKS endpoint for RS256/ES256/EdDSA keys (`https://…`, `http://…` or `file://…`).
    #[arg(long, env = "COURSEGRAPH_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Where development mode keeps its generated HS256 secret (default: the first
    /// `.coursegraph/dev-secret` from the working directory upwards, else one created at the
    /// top of the checkout, else in the working directory).
    #[arg(long, env = "COURSEGRAPH_DEV_SECRET_FILE")]
    pub dev_secret_file: Option<PathBuf>,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Token verification")]
pub struct VerifyArgs {
    /// How long fetched JWKS keys are trusted before a background refresh.
    #[arg(long, env = "COURSEGRAPH_JWKS_CACHE_TTL", default_value = "10m")]
    pub jwks_cache_ttl: HumanDuration,

    /// After a JWKS fetch, an unknown `kid` waits this long before the next one.
    #[arg(long, env = "COURSEGRAPH_JWKS_REFETCH_COOLDOWN", default_value = "30s")]
    pub jwks_refetch_cooldown: HumanDuration,

    /// Time limit of one JWKS fetch.
    #[arg(long, env = "COURSEGRAPH_JWKS_FETCH_TIMEOUT", default_value = "5s")]
    pub jwks_fetch_timeout: HumanDuration,

    /// Required `iss` when set.
    #[arg(long, env = "COURSEGRAPH_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` when set (comma-separated list; one match is enough).
    #[arg(long, env = "COURSEGRAPH_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew allowed on exp/nbf/iat, in seconds.
    #[arg(long, env = "COURSEGRAPH_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
}

/// Where the identity provider puts the organization and the roles.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Claims")]
pub struct ClaimArgs {
    /// Claim-mapping preset.
    #[arg(long, env = "COURSEGRAPH_CLAIMS", value_enum, default_value = "default")]
    pub claims: ClaimsPreset,

    /// Override the organization-id claim path (dot path or a namespaced URL claim).
    #[arg(long, env = "COURSEGRAPH_CLAIM_ORG")]
    pub claim_org: Option<String>,

    /// Override the organization-name claim path.
    #[arg(long, env = "COURSEGRAPH_CLAIM_ORG_NAME")]
    pub claim_org_name: Option<String>,

    /// Override the roles claim path.
    #[arg(long, env = "COURSEGRAPH_CLAIM_ROLES")]
    pub claim_roles: Option<String>,

    /// The token's permission claim (a list, or a space- or comma-separated string),
    /// mapped to grants by the policy file's `[idp.permissions]` with
    /// COURSEGRAPH_ROLE_SOURCE=token. Presets: `permissions` (auth0, frontegg), `o.per` (clerk).
    #[arg(long, env = "COURSEGRAPH_CLAIM_PERMISSIONS")]
    pub claim_permissions: Option<String>,
}

/// How identity-provider roles become organization roles.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Roles")]
pub struct RoleArgs {
    /// Extra `idp-role=ROLE` pairs, comma separated (e.g. `Admin=ADMIN,Teacher=INSTRUCTOR`);
    /// ROLE is a built-in role or a custom role key (`TA=teaching_assistant`).
    #[arg(long, env = "COURSEGRAPH_ROLE_MAP")]
    pub role_map: Option<String>,

    /// A policy file (TOML): built-in roles' grants, roles offered in every organization,
    /// and token permissions mapped to grants. `coursegraph policy check` validates it.
    #[arg(long, env = "COURSEGRAPH_POLICY")]
    pub policy: Option<std::path::PathBuf>,

    /// Role of a new membership when the token names none that maps.
    #[arg(long, env = "COURSEGRAPH_DEFAULT_ROLE", default_value = "MEMBER")]
    pub default_role: String,

    /// `database`: the token's role seeds a new membership, the database rules afterwards;
    /// `token`: the membership role follows the token on every request.
    #[arg(long, env = "COURSEGRAPH_ROLE_SOURCE", value_enum, default_value = "database")]
    pub role_source: RoleSource,

    /// An IdP role name that makes its holder a platform admin (ADMIN everywhere, audited).
    #[arg(long, env = "COURSEGRAPH_PLATFORM_ADMIN_ROLE")]
    pub platform_admin_role: Option<String>,

    /// How long a verified identity's user and memberships are reused without a database
    /// read (0s turns the cache off). Changes made through coursegraph invalidate at once
    /// (on PostgreSQL across replicas too); this bounds staleness from anything else.
    #[arg(long, env = "COURSEGRAPH_CONTEXT_CACHE_TTL", default_value = "5s")]
    pub context_cache_ttl: HumanDuration,
}

/// Invitations (the membership lifecycle).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Invitations")]
pub struct InvitationArgs {
    /// How long an invitation can be accepted (`inviteMember`).
    #[arg(long, env = "COURSEGRAPH_INVITATION_TTL", default_value = "7d")]
    pub invitation_ttl: HumanDuration,

    /// Accept the pending invitations addressed to a verified email on that person's next
    /// authenticated request (in the provisioning transaction). `false`: only explicitly,
    /// with `acceptInvitation`.
    #[arg(long, env = "COURSEGRAPH_INVITATION_AUTO_ACCEPT", default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub invitation_auto_accept: bool,
}

/// The HTTP server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Bind address; port 0 picks a free port and the log says which.
    #[arg(long, env = "COURSEGRAPH_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,

    /// Allow introspection (default: on in development, off in production).
    #[arg(long, env = "COURSEGRAPH_INTROSPECTION",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub introspection: Option<bool>,

    /// Serve the access doctor at /doctor (default: on in development, off in production).
    #[arg(long, env = "COURSEGRAPH_DOCTOR",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub doctor: Option<bool>,

    /// Log format: `text` (default in development) or `json` (default in production).
    #[arg(long, env = "COURSEGRAPH_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Browser origins allowed to call the API (comma list; `*` for any, without credentials).
    /// Unset: no CORS headers, same-origin only.
    #[arg(long, env = "COURSEGRAPH_CORS_ORIGINS")]
    pub cors_origins: Option<String>,

    /// Let browsers send cookies/credentials cross-origin (needs explicit origins).
    #[arg(long, env = "COURSEGRAPH_CORS_CREDENTIALS", default_value = "false",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub cors_credentials: bool,

    /// How many Automatic Persisted Queries to remember; 0 turns APQ off.
    #[arg(long, env = "COURSEGRAPH_APQ_CACHE_SIZE", default_value_t = 1000)]
    pub apq_cache_size: usize,

    /// Active subscriptions one WebSocket connection may hold.
    #[arg(long, env = "COURSEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 100)]
    pub max_subscriptions_per_connection: usize,
}

/// Abuse limits. Exceeding one is QUERY_TOO_COMPLEX unless an HTTP status is named.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Maximum selection depth.
    #[arg(long, env = "COURSEGRAPH_MAX_DEPTH", default_value_t = 10)]
    pub max_depth: usize,
    /// Maximum complexity; a list field costs its `first` times its children.
    #[arg(long, env = "COURSEGRAPH_MAX_COMPLEXITY", default_value_t = 1000)]
    pub max_complexity: usize,
    /// Maximum aliases in one document.
    #[arg(long, env = "COURSEGRAPH_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Maximum directives on one field.
    #[arg(long, env = "COURSEGRAPH_MAX_DIRECTIVES", default_value_t = 5)]
    pub max_directives: usize,
    /// Maximum lexical tokens in one document.
    #[arg(long, env = "COURSEGRAPH_MAX_TOKENS", default_value_t = 5000)]
    pub max_tokens: usize,
    /// Maximum operations in one batch; 0 turns batching off.
    #[arg(long, env = "COURSEGRAPH_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    /// Maximum request body in bytes (413 above), and WebSocket message (closed with 1009).
    #[arg(long, env = "COURSEGRAPH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Maximum `Authorization` header in bytes (431 above).
    #[arg(long, env = "COURSEGRAPH_MAX_AUTH_HEADER_BYTES", default_value_t = 8 * 1024)]
    pub max_auth_header_bytes: usize,
    /// Time limit for one request.
    #[arg(long, env = "COURSEGRAPH_REQUEST_TIMEOUT", default_value = "15s")]
    pub request_timeout: HumanDuration,
}

/// Every option: what `serve` (and a bare `coursegraph`) offers as flags.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub claims: ClaimArgs,
    #[command(flatten)]
    pub roles: RoleArgs,
    #[command(flatten)]
    pub invitations: InvitationArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl ConfigArgs {
    /// Every option from the environment alone (what a subcommand that does not offer a
    /// group's flags reads). Errors name the variable.
    pub fn from_env() -> Result<Self, clap::Error> {
        parse_group::<Self>(true)
    }

    /// Every option at its default, the environment ignored: what tests build on.
    pub fn defaults() -> Self {
        parse_group::<Self>(false).expect("the defaults parse")
    }
}

/// `T` parsed from no arguments: its defaults, and the environment when `env` is true.
pub fn parse_group<T: Args + FromArgMatches>(env: bool) -> Result<T, clap::Error> {
    let mut cmd = T::augment_args(clap::Command::new("coursegraph").no_binary_name(true));
    if !env {
        cmd = cmd.mut_args(|a| a.env(None::<&str>));
    }
    let matches = cmd.try_get_matches_from(Vec::<OsString>::new())?;
    T::from_arg_matches(&matches)
}

/// Builds a [`ConfigArgs`] from the environment, then replaces the groups given.
macro_rules! with_groups {
    ($($field:ident : $value:expr),* $(,)?) => {
        ConfigArgs::from_env().map(|mut all| {
            $( all.$field = $value.clone(); )*
            all
        })
    };
}
pub(crate) use with_groups;
