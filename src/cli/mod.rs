//! The command line: `serve` (the default), `migrate`, `schema`, `permissions`, `policy
//! check`, `token`, `seed`, `doctor`. Each subcommand offers the flags of the options it uses and reads
//! every other option from the environment; errors about an option name its variable.

mod run;

use std::io::Write as _;

use clap::{Args, CommandFactory as _, Parser, Subcommand, error::ContextKind};

pub use run::{refused, run};

use crate::{
    config::{
        Config, ConfigArgs, ConfigError,
        args::{ClaimArgs, DatabaseArgs, EnvArgs, InvitationArgs, KeyArgs, RoleArgs, VerifyArgs, with_groups},
    },
    doctor::DoctorArgs,
    seed::SeedArgs,
    token::TokenArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "coursegraph",
    version,
    about = "A multi-tenant GraphQL API server with field-level access control",
    after_help = "Every option is also an environment variable (shown in brackets); flags win.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The server's options (a bare `coursegraph` serves).
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL on COURSEGRAPH_LISTEN (the default command).
    Serve(Box<ConfigArgs>),
    /// Apply pending database migrations and exit.
    Migrate(MigrateCommand),
    /// Print the GraphQL SDL (what `schema.graphql` holds).
    Schema,
    /// Print the effective permission matrix and field rules (with COURSEGRAPH_POLICY's
    /// file; `docs/PERMISSIONS.md` holds the default policy's).
    Permissions(PolicyArgs),
    /// The policy file: `coursegraph policy check [FILE]`.
    Policy(PolicyCommand),
    /// Print an HS256 token signed with the configured (or development) secret.
    Token(Box<TokenCommand>),
    /// Fill the database with a small demo data set (idempotent) and print tokens for it.
    Seed(Box<SeedCommand>),
    /// Explain why a token is refused or an operation denied, check by check; writes nothing.
    /// Exit code 0: accepted (and every field of --query allowed); 1: not; 2: usage error.
    Doctor(Box<DoctorCommand>),
}

/// The policy file a command reads.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A policy file (TOML): built-in roles' grants, roles offered in every organization,
    /// and token permissions mapped to grants.
    #[arg(long, env = "COURSEGRAPH_POLICY")]
    pub policy: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyCommand {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Check a policy file without serving: exit 0, or 1 with every problem as
    /// `FILE:LINE:COLUMN: message`.
    Check {
        /// The file (default: COURSEGRAPH_POLICY).
        #[arg(env = "COURSEGRAPH_POLICY")]
        file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct MigrateCommand {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TokenCommand {
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub claims: ClaimArgs,
}

#[derive(Debug, Args)]
pub struct SeedCommand {
    #[command(flatten)]
    pub seed: SeedArgs,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub claims: ClaimArgs,
}

#[derive(Debug, Args)]
pub struct DoctorCommand {
    #[command(flatten)]
    pub doctor: DoctorArgs,
    #[command(flatten)]
    pub env: EnvArgs,
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
}

/// A command line that cannot run: what to print and the exit code.
#[derive(Debug)]
pub struct Refusal {
    pub message: String,
    pub code: u8,
    /// `--help` and `--version` go to standard output.
    pub stdout: bool,
}

impl From<ConfigError> for Refusal {
    fn from(e: ConfigError) -> Self {
        Refusal { message: format!("error: {e}\n"), code: 2, stdout: false }
    }
}

impl Command {
    /// The full configuration: this command's flags, the environment for the rest.
    pub fn config(&self) -> Result<Config, Refusal> {
        let args: ConfigArgs = match self {
            Command::Serve(a) => Ok(a.as_ref().clone()),
            Command::Migrate(m) => with_groups!(env: m.env, database: m.database),
            Command::Token(t) => with_groups!(env: t.env, keys: t.keys, claims: t.claims),
            Command::Seed(s) => with_groups!(env: s.env, database: s.database, keys: s.keys, claims: s.claims),
            Command::Doctor(d) => with_groups!(
                env: d.env, database: d.database, keys: d.keys, verify: d.verify,
                claims: d.claims, roles: d.roles, invitations: d.invitations,
            ),
            Command::Schema | Command::Permissions(_) | Command::Policy(_) => ConfigArgs::from_env(),
        }
        .map_err(|e| refusal(e, &Cli::command()))?;
        Ok(Config::from_args(&args)?)
    }
}

/// Parses the command line (a bare `coursegraph` is `serve`).
pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(argv: I) -> Result<Command, Refusal> {
    let cli = Cli::try_parse_from(argv).map_err(|e| refusal(e, &Cli::command()))?;
    Ok(cli.command.unwrap_or(Command::Serve(Box::new(cli.config))))
}

/// A clap error as the user should read it: a bad value names its environment variable
/// next to the flag, since it most often comes from the environment.
fn refusal(e: clap::Error, cmd: &clap::Command) -> Refusal {
    use clap::error::ErrorKind;
    let stdout = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let code = if stdout { 0 } else { 2 };
    let mut message = e.render().to_string();
    if let Some(clap::error::ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && let Some(long) = arg.strip_prefix("--").and_then(|a| a.split([' ', '=']).next())
        && let Some(env) = find_env(cmd, long)
    {
        message = message.replace(&format!("'{arg}'"), &format!("{env} (--{long})"));
    }
    Refusal { message, code, stdout }
}

/// The environment variable of the option `--long`, anywhere in the command tree.
fn find_env(cmd: &clap::Command, long: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .or_else(|| cmd.get_subcommands().find_map(|s| find_env(s, long)))
}

/// Writes a command's output to standard output. `Ok(false)`: the reader went away
/// (`coursegraph seed … | head -1`), which ends a command quietly, as Unix tools do.
pub fn emit(text: &str) -> std::io::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, Refusal> {
        parse(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_flags_parse() {
        let cmd = parse_args(&[
            "coursegraph",
            "token",
            "--sub",
            "alice",
            "--org",
            "acme",
            "--role",
            "admin",
            "--ttl",
            "2h",
            "--claim",
            "x=1",
        ])
        .unwrap();
        let Command::Token(t) = cmd else { panic!("not the token command") };
        assert_eq!(t.token.sub, "alice");
        assert_eq!(t.token.roles, vec!["admin"]);
        assert_eq!(t.token.ttl.0.as_secs(), 7200);
        assert_eq!(t.token.extra_claims, vec!["x=1"]);
    }

    #[test]
    fn a_bare_command_serves_and_a_subcommand_offers_its_own_flags() {
        assert!(matches!(parse_args(&["coursegraph", "--listen", "127.0.0.1:0"]).unwrap(), Command::Serve(_)));
        assert!(matches!(parse_args(&["coursegraph", "serve", "--max-depth", "3"]).unwrap(), Command::Serve(_)));
        // A server flag is not the token command's.
        let e = parse_args(&["coursegraph", "token", "--sub", "a", "--max-depth", "3"]).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("--max-depth"), "{}", e.message);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = parse_args(&["coursegraph", "serve", "--max-depth", "deep"]).unwrap_err();
        assert!(e.message.contains("COURSEGRAPH_MAX_DEPTH (--max-depth)"), "{}", e.message);
        assert_eq!(e.code, 2);
    }
}
