//! SoftHSM2 for tests: a private token directory and configuration per
//! test, `softhsm2-util` to initialise tokens in it, and the `ferrosim`
//! binary run against it ([`Runner`]).
//!
//! SoftHSM2 reads where its tokens live from `SOFTHSM2_CONF` when the module
//! is loaded. The crates forbid `unsafe`, so a test never sets its own
//! environment: the variable goes to each child process instead.
//!
//! A test that needs SoftHSM2 and does not find it fails with what to
//! install ([`available`]), unless `FERROSIM_SKIP_PKCS11=1` asks to skip it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::{INSTANCE_ENV, output_text};

/// The SoftHSM2 PKCS#11 module of the Debian/Ubuntu `softhsm2` package.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// SoftHSM2's token tool (initialises tokens, imports keys).
pub const UTIL: &str = "softhsm2-util";

/// The variable naming SoftHSM2's configuration file.
pub const CONF_ENV: &str = "SOFTHSM2_CONF";

/// The variable `ferrosim` reads the token's user PIN from.
pub const PIN_ENV: &str = "FERROSIM_PKCS11_PIN";

/// `FERROSIM_SKIP_PKCS11=1` lets a PKCS#11 test skip itself (with a note on
/// stderr) when SoftHSM2 is missing, instead of failing.
pub const SKIP_PKCS11_ENV: &str = "FERROSIM_SKIP_PKCS11";

/// Whether SoftHSM2 ([`MODULE`] and [`UTIL`]) is installed. Without it,
/// panics with what to install, unless [`SKIP_PKCS11_ENV`]`=1`: then says
/// on stderr that `test` is skipped and gives `false`.
pub fn available(test: &str) -> bool {
    let util = Command::new(UTIL).arg("--version").output();
    let missing = match (Path::new(MODULE).exists(), util) {
        (true, Ok(out)) if out.status.success() => return true,
        (false, _) => MODULE,
        _ => UTIL,
    };
    if std::env::var(SKIP_PKCS11_ENV).as_deref() == Ok("1") {
        eprintln!("{test} skipped: {missing} missing and {SKIP_PKCS11_ENV}=1");
        return false;
    }
    panic!(
        "SoftHSM2 is not installed ({missing} missing): install the softhsm2 package, \
         or set {SKIP_PKCS11_ENV}=1 to skip the PKCS#11 tests"
    );
}

/// Writes a private SoftHSM2 configuration: tokens in `root/tokens`, the
/// file `root/softhsm2.conf` (returned), errors-only logging.
pub fn private_config(root: &Path) -> PathBuf {
    let tokens = root.join("tokens");
    std::fs::create_dir(&tokens).unwrap_or_else(|e| panic!("creating {}: {e}", tokens.display()));
    let conf = root.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
    conf
}

/// Runs [`UTIL`] with `args` on the configuration `conf`; panics with its
/// output when it fails.
pub fn util(conf: &Path, args: &[&str]) {
    let out = Command::new(UTIL)
        .args(args)
        .env(CONF_ENV, conf)
        .output()
        .unwrap_or_else(|e| panic!("running {UTIL}: {e}"));
    assert!(
        out.status.success(),
        "{UTIL} {args:?} failed: {}",
        output_text(&out)
    );
}

/// Initialises a token labelled `label` in the first free slot of `conf`,
/// with the security officer's PIN `so_pin` and the user PIN `pin`.
pub fn init_token(conf: &Path, label: &str, so_pin: &str, pin: &str) {
    util(
        conf,
        &[
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ],
    );
}

/// Runs the `ferrosim` binary as an operator would, against a private
/// SoftHSM2 configuration: the developer's instance settings and any
/// [`PIN_ENV`] are cleared, logs are errors only, and the PIN and other
/// variables are given per call.
pub struct Runner {
    program: PathBuf,
    /// The private SoftHSM2 configuration every run is given.
    pub softhsm_conf: PathBuf,
}

impl Runner {
    /// A runner of `program` (the test's `env!("CARGO_BIN_EXE_ferrosim")`)
    /// with a fresh [`private_config`] under `root`.
    pub fn new(program: impl AsRef<OsStr>, root: &Path) -> Self {
        Self {
            program: PathBuf::from(program.as_ref()),
            softhsm_conf: private_config(root),
        }
    }

    /// [`init_token`] on this runner's configuration.
    pub fn init_token(&self, label: &str, so_pin: &str, pin: &str) {
        init_token(&self.softhsm_conf, label, so_pin, pin);
    }

    /// The command `ferrosim ARGS` with the variables `env` (and nothing
    /// inherited that names an instance or a PIN).
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env(CONF_ENV, &self.softhsm_conf)
            .env("RUST_BACKTRACE", "0")
            .env("FERROSIM_LOG", "error");
        for var in INSTANCE_ENV.iter().chain([&PIN_ENV]) {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    /// Runs [`Runner::command`] to its end.
    pub fn output(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env)
            .output()
            .unwrap_or_else(|e| panic!("running ferrosim: {e}"))
    }

    /// Runs `ferrosim ARGS`, which must succeed; returns what it printed
    /// (stdout then stderr).
    pub fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.output(args, env);
        let t = output_text(&out);
        assert!(out.status.success(), "ferrosim {args:?} failed: {t}");
        t
    }

    /// Runs `ferrosim ARGS`, which must fail with `expected` in its
    /// message, without panicking.
    pub fn refused(&self, args: &[&str], env: &[(&str, &str)], expected: &str) {
        let out = self.output(args, env);
        let t = output_text(&out);
        assert!(!out.status.success(), "ferrosim {args:?} succeeded: {t}");
        assert!(!t.contains("panicked"), "ferrosim {args:?} panicked: {t}");
        assert!(
            t.contains(expected),
            "ferrosim {args:?}: expected `{expected}` in: {t}"
        );
    }
}
