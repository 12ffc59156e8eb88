//! The command line: `serve` (default), `migrate`, `schema`, `token`, `seed`, `doctor`.

use std::io::Write as _;

use clap::{Parser, Subcommand};

use crate::{config::ConfigArgs, doctor::DoctorArgs, seed::SeedArgs, token::TokenArgs};

#[derive(Debug, Parser)]
#[command(
    name = "coursegraph",
    version,
    about = "A multi-tenant GraphQL API server with field-level access control",
    after_help = "Every option is also an environment variable (shown in brackets); flags win."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL on COURSEGRAPH_LISTEN (the default command).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL SDL (what `schema.graphql` holds).
    Schema,
    /// Print the permission matrix and field rules (what `docs/PERMISSIONS.md` holds).
    Permissions,
    /// Print an HS256 token signed with the configured (or dev) secret.
    Token(Box<TokenArgs>),
    /// Fill the database with a small demo data set (idempotent) and print tokens for it.
    Seed(SeedArgs),
    /// Explain why a token is refused or an operation denied, check by check; writes nothing.
    /// Exit code 0: accepted (and every field of --query allowed); 1: not; 2: usage error.
    Doctor(Box<DoctorArgs>),
}

/// Writes a command's output to standard output. A reader that went away
/// (`coursegraph seed … | head -1`) ends the process quietly with success, as Unix tools
/// do, where `print!` would panic with a backtrace; any other write error is reported.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_flags_parse() {
        let cli = Cli::try_parse_from([
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
        let Some(Command::Token(t)) = cli.command else { panic!("not the token command") };
        assert_eq!(t.sub, "alice");
        assert_eq!(t.roles, vec!["admin"]);
        assert_eq!(t.ttl.0.as_secs(), 7200);
        assert_eq!(t.extra_claims, vec!["x=1"]);
    }
}
