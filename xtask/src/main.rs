//! `cargo xtask`: project tasks that need more than cargo.
//!
//! - `cargo xtask test [ARGS…]` runs the whole test suite with nothing
//!   skipped: installs the Debian packages (and the Python checkers) the
//!   tests need when they are missing, starts a throwaway PostgreSQL on
//!   127.0.0.1 and pcscd (when none runs), runs `cargo test --workspace` (or
//!   `cargo test ARGS…`) with the environment that makes every test run, and
//!   stops what it started — also when a test fails or on Ctrl-C. Exits with
//!   cargo's status.
//! - `cargo xtask deps` only installs the missing packages (CI runs it before
//!   clippy, which already links libpcsclite).
//!
//! The alias lives in `.cargo/config.toml`; this crate depends on std and a
//! signal handler only, so it builds in seconds.

mod packages;
mod pcscd;
mod postgres;
mod system;

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::Context;

use crate::system::Signals;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test [ARGS…]  install missing packages, start PostgreSQL and pcscd, run
                `cargo test --workspace` (or `cargo test ARGS…`) with nothing
                skipped, stop what was started; exits with cargo's status
  deps          install the missing Debian and Python packages only
  help          this text";

/// Variables a test reads to skip itself; the whole suite runs none of them.
const SKIP_PREFIX: &str = "FERROSIM_SKIP_";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("deps") => {
            let signals = Signals::register()?;
            packages::ensure(&signals)?;
            packages::ensure_python(&signals)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => anyhow::bail!("unknown task `{other}`\n{USAGE}"),
        None => anyhow::bail!("no task given\n{USAGE}"),
    }
}

/// `cargo xtask test`.
fn test(cargo_args: &[String]) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let signals = Signals::register()?;
    packages::ensure(&signals)?;
    packages::ensure_python(&signals)?;
    signals.check()?;

    // Guards: dropped in reverse order at the end, on error and on Ctrl-C.
    let mut _postgres = None;
    let postgres_url = match std::env::var(postgres::URL_ENV) {
        Ok(url) if !url.is_empty() => {
            eprintln!(
                "xtask: using the PostgreSQL server of {} (not starting one)",
                postgres::URL_ENV
            );
            url
        }
        _ => {
            let server = postgres::Throwaway::start(&signals)?;
            let url = server.url();
            _postgres = Some(server);
            url
        }
    };
    signals.check()?;
    let _pcscd = pcscd::ensure_running()?;
    signals.check()?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("test");
    if cargo_args.is_empty() {
        command.arg("--workspace");
    } else {
        command.args(cargo_args);
    }
    command
        .env(postgres::URL_ENV, &postgres_url)
        .env("FERROSIM_REQUIRE_POSTGRES", "1")
        .env("FERROSIM_REQUIRE_PCSC", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(SKIP_PREFIX) {
            eprintln!(
                "xtask: ignoring {} (the whole suite skips nothing)",
                key.to_string_lossy()
            );
            command.env_remove(&key);
        }
    }
    eprintln!(
        "xtask: running cargo test {} with {}, FERROSIM_REQUIRE_POSTGRES=1, FERROSIM_REQUIRE_PCSC=1",
        if cargo_args.is_empty() {
            "--workspace".to_owned()
        } else {
            cargo_args.join(" ")
        },
        postgres::URL_ENV
    );
    let outcome = system::run_interruptible(command, &signals).context("running cargo test")?;
    let elapsed = started.elapsed().as_secs();
    let took = format!("{}m{:02}s", elapsed / 60, elapsed % 60);
    Ok(match outcome {
        system::Outcome::Exited(0) => {
            eprintln!("xtask: all tests passed ({took} in all)");
            ExitCode::SUCCESS
        }
        system::Outcome::Exited(code) => {
            eprintln!("xtask: cargo test failed with status {code} ({took} in all)");
            ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1))
        }
        system::Outcome::Interrupted => {
            eprintln!("xtask: interrupted; stopping what was started");
            ExitCode::from(130)
        }
    })
}
