//! The `coursegraph` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

// The request path allocates many small short-lived objects; mimalloc handles that
// pattern far better than glibc's malloc (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;
use coursegraph::{
    app::App,
    authz,
    cli::{self, Cli, Command},
    config::Config,
    db, doctor, graphql, seed, telemetry, token,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Schema => {
            cli::emit(&graphql::schema::sdl());
            return ExitCode::SUCCESS;
        }
        Command::Permissions => {
            cli::emit(&authz::docs::permissions_markdown());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match Config::from_args(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Token(args) = &command {
        return match token::mint(&config, args) {
            Ok(t) => {
                cli::emit(&format!("{t}\n"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Command::Doctor(args) = &command {
        // No log output: the report is the output, and nothing of it is secret.
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return ExitCode::from(runtime.block_on(doctor::cli(&config, args)));
    }
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let (conn, _) =
                db::connect(&config.database_url, 1, config.db_acquire_timeout, config.db_prepared_statements, None)
                    .await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(args) => seed::run(&config, &args).await,
        Command::Schema | Command::Permissions | Command::Token(_) | Command::Doctor(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    let (addr, server) = app.bind(shutdown_signal()).await?;
    tracing::info!(%addr, "coursegraph listening: GraphiQL at http://{addr}/ , GraphQL at http://{addr}/graphql");
    server.await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
