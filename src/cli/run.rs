//! Running a parsed command to its exit code: 0 success, 1 failure, 2 a command line or
//! configuration that cannot run. Only `main` exits the process.

use crate::{
    app::App,
    authz,
    config::{Config, SecretSource},
    db, doctor, graphql, seed, telemetry, token,
};

use super::{Command, PolicyAction, PolicyCommand, Refusal, emit};

/// Runs `command`; returns the process's exit code.
pub fn run(command: Command) -> u8 {
    match &command {
        Command::Schema => return output(&graphql::schema::sdl()),
        Command::Permissions(p) => {
            return match load_policy(p.policy.as_deref()) {
                Ok(policy) => output(&authz::docs::permissions_markdown(&policy)),
                Err(problems) => refused(&Refusal { message: format!("{problems}\n"), code: 2, stdout: false }),
            };
        }
        Command::Policy(PolicyCommand { action: PolicyAction::Check { file } }) => {
            return policy_check(file.as_deref());
        }
        _ => {}
    }
    let config = match command.config() {
        Ok(c) => c,
        Err(r) => return refused(&r),
    };
    match command {
        Command::Token(t) => {
            created_dev_secret(&config);
            match token::mint(&config, &t.token) {
                Ok(t) => output(&format!("{t}\n")),
                Err(e) => refused(&Refusal { message: format!("error: {e}\n"), code: 2, stdout: false }),
            }
        }
        Command::Doctor(d) => {
            // No log output: the report is the output, and nothing of it is secret.
            created_dev_secret(&config);
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(doctor::cli(&config, &d.doctor)),
                Err(e) => failed(&format!("cannot start the async runtime: {e}")),
            }
        }
        command => {
            telemetry::init(config.server.log_format);
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => match rt.block_on(server_command(command, config)) {
                    Ok(()) => 0,
                    Err(e) => {
                        // Logged once: the log goes to standard error too.
                        tracing::error!("{e:#}");
                        1
                    }
                },
                Err(e) => failed(&format!("cannot start the async runtime: {e}")),
            }
        }
    }
}

async fn server_command(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Migrate(_) => {
            let d = &config.database;
            let (conn, _) = db::connect(&d.url, 1, d.acquire_timeout, d.prepared_statements, None).await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(s) => {
            created_dev_secret(&config);
            seed::run(&config, &s.seed).await
        }
        _ => serve(config).await,
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

/// The policy file at `path` (the defaults without one).
fn load_policy(path: Option<&std::path::Path>) -> Result<authz::roles::Policy, authz::policy_file::Problems> {
    match path.filter(|p| !p.as_os_str().is_empty()) {
        None => Ok(authz::roles::Policy::default()),
        Some(p) => authz::policy_file::load(p),
    }
}

/// `policy check`: 0 and a summary, or 1 and every problem (2: no file named).
fn policy_check(file: Option<&std::path::Path>) -> u8 {
    let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) else {
        return refused(&Refusal {
            message: "error: no policy file: pass FILE or set COURSEGRAPH_POLICY\n".into(),
            code: 2,
            stdout: false,
        });
    };
    match authz::policy_file::load(path) {
        Ok(p) => output(&format!(
            "{}: ok ({} built-in roles, {} policy-file roles, {} token permissions)\n",
            path.display(),
            authz::Role::ALL.len(),
            p.file_roles().len(),
            p.permissions().len()
        )),
        Err(problems) => match output(&format!("{problems}\n")) {
            0 => 1,
            code => code,
        },
    }
}

/// Says where development mode's secret was just created (`serve` logs it at start).
fn created_dev_secret(config: &Config) {
    if let SecretSource::DevFile { path, created: true } = &config.auth.secret_source {
        eprintln!(
            "created a development secret in {} (serve, token and doctor started anywhere below {} read it)",
            path.display(),
            path.parent().and_then(|p| p.parent()).unwrap_or(path).display()
        );
    }
}

/// Prints a command's output; a reader that went away is success.
fn output(text: &str) -> u8 {
    match emit(text) {
        Ok(_) => 0,
        Err(e) => failed(&format!("cannot write to standard output: {e}")),
    }
}

/// Prints why a command line cannot run; returns its exit code.
pub fn refused(r: &Refusal) -> u8 {
    if r.stdout {
        let _ = emit(&r.message);
    } else {
        eprint!("{}", r.message);
    }
    r.code
}

fn failed(message: &str) -> u8 {
    eprintln!("error: {message}");
    1
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
