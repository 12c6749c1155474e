//! PC/SC for tests: find pcscd with vsmartcard's vpcd driver, start the
//! daemon when none runs, and fail when the packages are missing (or skip,
//! when `FERROSIM_SKIP_PCSC=1` says so and `FERROSIM_REQUIRE_PCSC` is not set
//! as `cargo xtask test` sets it). Only one test binary may use
//! vpcd's port at a time; cargo runs test binaries one after another.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// pcscd's client socket.
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// The reader configuration installed by `vsmartcard-vpcd`.
pub const VPCD_DRIVER_CONFIG: &str = "/etc/reader.conf.d/vpcd";

/// A program on PATH or in the system directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The variable that lets a PC/SC test skip itself when pcscd, vpcd or
/// opensc is missing.
pub const SKIP_PCSC_ENV: &str = "FERROSIM_SKIP_PCSC";

/// Set by `cargo xtask test`: a PC/SC test never skips.
pub const REQUIRE_PCSC_ENV: &str = "FERROSIM_REQUIRE_PCSC";

/// Whether the PC/SC tests must run (no [`SKIP_PCSC_ENV`]`=1`, or
/// [`REQUIRE_PCSC_ENV`] set).
pub fn required() -> bool {
    !crate::skip_allowed(SKIP_PCSC_ENV, REQUIRE_PCSC_ENV)
}

/// Reports that PC/SC is unavailable: panics with what to install and the
/// skip variable, or prints SKIP when [`SKIP_PCSC_ENV`]`=1`.
pub fn unavailable(test: &str, why: &str) {
    if required() {
        panic!(
            "PC/SC test {test}: {why}; install the Debian packages pcscd, vsmartcard-vpcd and \
             opensc (or run `cargo xtask test`, which does), or set {SKIP_PCSC_ENV}=1 to skip it"
        );
    }
    eprintln!("\n==== SKIP {test}: {why} and {SKIP_PCSC_ENV}=1 ====\n");
}

/// A running pcscd: the one found, or one this guard started and stops.
pub struct Pcscd(Option<Child>);

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes sure pcscd with the vpcd driver runs. `Err` says why it cannot.
pub fn pcscd() -> Result<Pcscd, String> {
    let daemon = find_program("pcscd").ok_or("pcscd is not installed")?;
    if !Path::new(VPCD_DRIVER_CONFIG).exists() {
        return Err("the vpcd reader driver (vsmartcard-vpcd) is not installed".into());
    }
    if UnixStream::connect(PCSCD_SOCKET).is_ok() {
        return Ok(Pcscd(None));
    }
    let child = Command::new(daemon)
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting pcscd: {e}"))?;
    let guard = Pcscd(Some(child));
    wait_until("pcscd's socket", Duration::from_secs(20), || {
        UnixStream::connect(PCSCD_SOCKET).is_ok()
    })?;
    Ok(guard)
}

/// Polls `ready` every 100 ms until it holds or `limit` passes.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            return Err(format!("gave up waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
