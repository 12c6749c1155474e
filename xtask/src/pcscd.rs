//! pcscd for the PC/SC tests: left alone when one already serves its socket,
//! otherwise started in the foreground (as root, through sudo when needed)
//! and stopped when the guard is dropped.

use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::system::{self, Privilege};

/// pcscd's client socket.
const SOCKET: &str = "/run/pcscd/pcscd.comm";

/// A pcscd started here.
pub struct Pcscd {
    child: Child,
    privilege: Privilege,
}

/// Makes sure pcscd runs; returns a guard when it started one.
pub fn ensure_running() -> anyhow::Result<Option<Pcscd>> {
    if UnixStream::connect(SOCKET).is_ok() {
        eprintln!("xtask: pcscd already runs ({SOCKET})");
        return Ok(None);
    }
    let Some(program) = system::find_program("pcscd") else {
        bail!("pcscd is not installed (Debian package pcscd)");
    };
    let privilege = system::privilege();
    let mut command = match privilege {
        Privilege::Root => Command::new(&program),
        Privilege::Sudo => {
            // Ask for a password (if sudo wants one) in the foreground, then
            // start the daemon without a terminal.
            let status = Command::new("sudo")
                .arg("-v")
                .status()
                .context("running sudo -v")?;
            if !status.success() {
                bail!(
                    "pcscd must run as root and sudo failed; start pcscd yourself (e.g. `sudo systemctl start pcscd.socket`)"
                );
            }
            let mut c = Command::new("sudo");
            c.arg("-n").arg(&program);
            c
        }
        Privilege::None => bail!(
            "pcscd is not running and only root can start it (no sudo here): start it as root \
             (`pcscd` or `systemctl start pcscd.socket`), then run the tests again"
        ),
    };
    use std::os::unix::process::CommandExt;
    let child = command
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let mut guard = Pcscd { child, privilege };
    let start = Instant::now();
    while UnixStream::connect(SOCKET).is_err() {
        if let Ok(Some(status)) = guard.child.try_wait() {
            bail!("pcscd exited at start ({status})");
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("pcscd did not open {SOCKET} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("xtask: started pcscd (pid {})", guard.child.id());
    Ok(Some(guard))
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        // The shell's own kill: no dependency on procps.
        let kill = format!("kill -s TERM {}", self.child.id());
        let mut command = system::as_root(self.privilege, "sh");
        if self.privilege == Privilege::Sudo {
            command = Command::new("sudo");
            command.args(["-n", "sh"]);
        }
        let _ = command.args(["-c", &kill]).stderr(Stdio::null()).status();
        if system::wait_for(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        eprintln!("xtask: pcscd stopped");
    }
}
