//! Running the `ferrosim` binary in a test: a command that ignores the
//! developer's shell (no instance settings inherited from the environment),
//! and its output as one text.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// The instance settings `ferrosim` reads from the environment. A test that
/// runs the binary clears them, so that an exported `FERROSIM_DATA_DIR` (or
/// any other) cannot point the test at a real instance.
pub const INSTANCE_ENV: &[&str] = &[
    "FERROSIM_CONFIG",
    "FERROSIM_DATA_DIR",
    "FERROSIM_DATABASE_URL",
    "FERROSIM_SMDP_ADDRESS",
    "FERROSIM_PKI_DIR",
    "FERROSIM_DURABILITY",
    "FERROSIM_LISTEN",
    "FERROSIM_KEK_FILE",
];

/// `program` (the test's `env!("CARGO_BIN_EXE_ferrosim")`) with the
/// [`INSTANCE_ENV`] settings cleared, no backtraces on errors and
/// warnings-only logs; arguments and further settings are the caller's.
pub fn ferrosim_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env("RUST_BACKTRACE", "0")
        .env("FERROSIM_LOG", "warn");
    for var in INSTANCE_ENV {
        command.env_remove(var);
    }
    command
}

/// Standard output followed by standard error, as text (what a user sees).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
