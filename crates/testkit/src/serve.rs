//! `ferrosim serve` as a child process, for tests that need what only real
//! processes show: several instances on one database, and `kill -9` in the
//! middle of the work followed by a restart.
//!
//! [`ServeCommand`] builds the command line; [`ServeCommand::spawn`] starts
//! the process, learns the bound port from the line the server prints on
//! stdout once it listens, and returns a [`ServeProcess`] guard that kills
//! the process when dropped (so a failing test leaves no server behind).
//! The server's log (stderr) goes to a file the guard can show.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::NamedTempFile;

/// The start of the line `ferrosim serve` prints on stdout once it listens:
/// `ferrosim SM-DP+ listening on https://127.0.0.1:PORT as ADDRESS`.
pub const LISTENING_PREFIX: &str = "ferrosim SM-DP+ listening on https://";

/// How long [`ServeCommand::spawn`] waits for the listening line by default
/// (the first start of a data directory generates a PKI).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `ferrosim serve` command line under construction.
#[derive(Debug, Clone)]
pub struct ServeCommand {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    start_timeout: Duration,
}

impl ServeCommand {
    /// `program serve --listen 127.0.0.1:0`, logging warnings and errors.
    /// `program` is the `ferrosim` binary (`env!("CARGO_BIN_EXE_ferrosim")`
    /// in the CLI's tests).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            envs: vec![("FERROSIM_LOG".into(), "warn".into())],
            start_timeout: DEFAULT_START_TIMEOUT,
        }
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// `--listen ADDR` (replaces an earlier one).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        if let Some(i) = self.args.iter().position(|a| a == "--listen") {
            self.args.drain(i..=i + 1);
        }
        self.args.push("--listen".into());
        self.args.push(addr.to_string().into());
        self
    }

    /// `--data-dir DIR`.
    pub fn data_dir(self, dir: impl AsRef<Path>) -> Self {
        self.arg("--data-dir").arg(dir.as_ref())
    }

    /// `--database-url URL`.
    pub fn database_url(self, url: &str) -> Self {
        self.arg("--database-url").arg(url)
    }

    /// `--pki-dir DIR`.
    pub fn pki_dir(self, dir: impl AsRef<Path>) -> Self {
        self.arg("--pki-dir").arg(dir.as_ref())
    }

    /// `--smdp-address HOST[:PORT]`.
    pub fn smdp_address(self, address: &str) -> Self {
        self.arg("--smdp-address").arg(address)
    }

    /// `--config FILE`.
    pub fn config(self, file: impl AsRef<Path>) -> Self {
        self.arg("--config").arg(file.as_ref())
    }

    /// Any further argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable of the process (e.g. `FERROSIM_LOG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// How long to wait for the listening line.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the server and waits until it listens. Fails (with the
    /// server's log) when it exits first or does not listen in time.
    pub fn spawn(&self) -> anyhow::Result<ServeProcess> {
        let log = NamedTempFile::with_prefix("ferrosim-serve-")?;
        let mut command = Command::new(&self.program);
        command
            .arg("serve")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.reopen()?));
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no stdout pipe from ferrosim serve");
        };
        // Read the first line here, then keep draining stdout so the server
        // never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let mut process = ServeProcess {
            child,
            local_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            address: String::new(),
            log,
        };
        let line = match rx.recv_timeout(self.start_timeout) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = process.child.wait().ok();
                bail!(
                    "ferrosim serve ended before listening ({}); its log:\n{}",
                    status.map_or_else(|| "unknown status".into(), |s| s.to_string()),
                    process.log()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "ferrosim serve did not listen within {:?}; its log:\n{}",
                    self.start_timeout,
                    process.log()
                );
            }
        };
        let (local_addr, address) = parse_listening_line(&line)
            .with_context(|| format!("unexpected first line from ferrosim serve: {line}"))?;
        process.local_addr = local_addr;
        process.address = address;
        Ok(process)
    }
}

/// `(bound address, SM-DP+ address)` from the listening line.
pub fn parse_listening_line(line: &str) -> Option<(SocketAddr, String)> {
    let rest = line.trim().strip_prefix(LISTENING_PREFIX)?;
    let (addr, address) = rest.split_once(" as ")?;
    Some((addr.parse().ok()?, address.trim().to_owned()))
}

/// A running `ferrosim serve`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    local_addr: SocketAddr,
    address: String,
    log: NamedTempFile,
}

impl ServeProcess {
    /// The socket address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The SM-DP+ address it serves as (what activation codes carry).
    pub fn smdp_address(&self) -> &str {
        &self.address
    }

    /// `localhost:PORT`: where to reach this instance (the test PKI's TLS
    /// certificate names `localhost`).
    pub fn instance_address(&self) -> String {
        format!("localhost:{}", self.port())
    }

    /// `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.instance_address())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`: the process ends at once, without any shutdown work
    /// (no graceful end of requests, no checkpoint, nothing flushed beyond
    /// what was already committed). Waits until it is gone.
    pub fn kill_hard(&mut self) -> std::io::Result<()> {
        // std's Child::kill sends SIGKILL on Unix.
        match self.child.kill() {
            Ok(()) => {}
            // Already exited: nothing to kill.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
        self.child.wait().map(|_| ())
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits until `GET /health` answers 200 over HTTPS trusting `ci_pem`,
    /// or `timeout` passes.
    pub async fn wait_healthy(&self, ci_pem: &str, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ci_pem.as_bytes())?])
            .build()?;
        let url = format!("{}/health", self.base_url());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                other => {
                    if tokio::time::Instant::now() > deadline {
                        bail!(
                            "{url} not healthy within {timeout:?} ({:?}); log:\n{}",
                            other.map(|r| r.status()),
                            self.log()
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.kill_hard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        let (addr, address) = parse_listening_line(
            "ferrosim SM-DP+ listening on https://127.0.0.1:40123 as localhost:40123\n",
        )
        .expect("parsed");
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 40123)));
        assert_eq!(address, "localhost:40123");
        assert!(parse_listening_line("something else").is_none());
        assert!(parse_listening_line("ferrosim SM-DP+ listening on https://x as y").is_none());
    }

    #[test]
    fn listen_replaces_the_default() {
        let cmd = ServeCommand::new("ferrosim").listen(SocketAddr::from(([127, 0, 0, 1], 8443)));
        let listen: Vec<_> = cmd.args.iter().filter(|a| *a == "--listen").collect();
        assert_eq!(listen.len(), 1);
        assert!(cmd.args.iter().any(|a| a == "127.0.0.1:8443"));
    }
}
