//! The `coursegraph` binary: parse the command line and run it; the only place that
//! decides the process's exit code.

use std::process::ExitCode;

// The request path allocates many small short-lived objects; mimalloc handles that
// pattern far better than glibc's malloc (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use coursegraph::cli;

fn main() -> ExitCode {
    let code = match cli::parse(std::env::args_os()) {
        Ok(command) => cli::run(command),
        Err(refusal) => cli::refused(&refusal),
    };
    ExitCode::from(code)
}
