//! A throwaway PostgreSQL server for the tests: `initdb` into a private
//! temporary directory, started on a free port of 127.0.0.1 (as the
//! `postgres` user when we are root: PostgreSQL refuses to run as root),
//! stopped and deleted when the guard is dropped.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::system::{self, Signals};

/// The variable the tests read the server's URL from.
pub const URL_ENV: &str = "FERROSIM_TEST_POSTGRES_URL";

/// The database role the tests connect as.
const ROLE: &str = "ferrosim";

/// A running throwaway server; stopped and deleted on drop.
pub struct Throwaway {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// uid and gid to run PostgreSQL's programs as (`None`: as ourselves).
    run_as: Option<(u32, u32)>,
    running: bool,
}

impl Throwaway {
    /// Creates a cluster and starts it.
    pub fn start(signals: &Signals) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let run_as = if system::is_root() {
            Some(system::user_ids("postgres").context(
                "running as root, the throwaway PostgreSQL runs as the `postgres` user, \
                 which is missing (the postgresql package creates it)",
            )?)
        } else {
            None
        };
        let dir = system::private_temp_dir("ferrosim-xtask-pg")?;
        let mut server = Self {
            bin,
            dir,
            port: 0,
            run_as,
            running: false,
        };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to postgres", server.dir.display()))?;
        }
        let data = server.data_dir();
        let mut initdb = server.program("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", ROLE, "-E", "UTF8", "--no-sync"]);
        system::command_output(&mut initdb).context("initdb of the throwaway PostgreSQL")?;
        signals.check()?;
        // The port is free when probed; if someone takes it before the
        // server binds it, try another.
        let mut last_error = None;
        for _ in 0..3 {
            server.port = system::free_port()?;
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=on",
                server.port,
                server.dir.display()
            );
            let mut start = server.program("pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.log_file())
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            match system::command_output(&mut start) {
                Ok(_) => {
                    server.running = true;
                    eprintln!("xtask: throwaway PostgreSQL at {}", server.url());
                    return Ok(server);
                }
                Err(e) => last_error = Some(e),
            }
            signals.check()?;
        }
        let log = std::fs::read_to_string(server.log_file()).unwrap_or_default();
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("pg_ctl start failed")))
            .with_context(|| format!("starting the throwaway PostgreSQL; its log:\n{log}"))
    }

    /// The URL the tests use (the `postgres` maintenance database; each test
    /// creates its own database there).
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// One of PostgreSQL's programs, run as the right user in our directory
    /// (PostgreSQL's programs dislike a working directory they cannot read).
    fn program(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        command.current_dir(&self.dir);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if self.running {
            let mut stop = self.program("pg_ctl");
            stop.arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "30", "stop"]);
            match system::command_output(&mut stop) {
                Ok(_) => eprintln!("xtask: throwaway PostgreSQL stopped"),
                Err(e) => eprintln!("xtask: stopping the throwaway PostgreSQL: {e:#}"),
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("xtask: removing {}: {e}", self.dir.display());
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let versions: Vec<String> = std::fs::read_dir(root)
        .with_context(|| {
            format!(
                "{} not found: is the postgresql package installed?",
                root.display()
            )
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let Some(newest) = newest_version(&versions) else {
        bail!("no PostgreSQL version in {}", root.display());
    };
    let bin = root.join(newest).join("bin");
    if !bin.join("initdb").is_file() {
        bail!("{} has no initdb", bin.display());
    }
    Ok(bin)
}

/// The highest numeric version among directory names (`9.6` < `15` < `16`).
fn newest_version(names: &[String]) -> Option<&str> {
    let key = |s: &str| -> Option<Vec<u32>> { s.split('.').map(|p| p.parse().ok()).collect() };
    names
        .iter()
        .filter_map(|n| key(n).map(|k| (k, n.as_str())))
        .max()
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::newest_version;

    #[test]
    fn picks_the_highest_numeric_version() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(newest_version(&names(&["9.6", "15", "16"])), Some("16"));
        assert_eq!(newest_version(&names(&["15", "lib", "9.6"])), Some("15"));
        assert_eq!(newest_version(&names(&["x"])), None);
        assert_eq!(newest_version(&[]), None);
    }
}
