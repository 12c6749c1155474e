//! Processes, users and signals: who we are, running commands as another
//! user, finding programs, and Ctrl-C / SIGTERM handling that lets the task
//! stop what it started before it exits.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Whether SIGINT, SIGTERM or SIGHUP arrived. While registered, those signals
/// no longer end the process: the task notices, stops its children and
/// cleans up.
pub struct Signals(Arc<AtomicBool>);

impl Signals {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on.
    pub fn register() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            signal_hook::flag::register(signal, Arc::clone(&flag))
                .with_context(|| format!("registering a handler for signal {signal}"))?;
        }
        Ok(Self(flag))
    }

    /// Whether a signal arrived.
    pub fn caught(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// An error once a signal arrived (so `?` unwinds through the guards).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.caught() {
            bail!("interrupted");
        }
        Ok(())
    }
}

/// How a command run by [`run_interruptible`] ended.
pub enum Outcome {
    /// It exited with this status (128 + N when killed by signal N).
    Exited(i32),
    /// A signal arrived; the command was stopped.
    Interrupted,
}

/// Runs `command` in a process group of its own and waits for it. When a
/// signal arrives meanwhile, the whole group (cargo, the test binaries and
/// whatever they started) gets SIGINT, then SIGKILL if it is still there
/// after 30 seconds.
pub fn run_interruptible(mut command: Command, signals: &Signals) -> anyhow::Result<Outcome> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child = command.process_group(0).spawn()?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Outcome::Exited(
                status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            ));
        }
        if signals.caught() {
            signal_group(child.id(), "INT");
            if wait_for(&mut child, Duration::from_secs(30)).is_none() {
                signal_group(child.id(), "KILL");
                let _ = child.wait();
            }
            return Ok(Outcome::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `signal` (a name such as `INT`) to the process group `pgid`.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s {signal} -- -{pgid}"))
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `limit` for `child` to exit.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    command_output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// How to gain root for a command: nothing (we are root), `sudo`, or
/// impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Already root.
    Root,
    /// Through `sudo`.
    Sudo,
    /// Neither root nor sudo.
    None,
}

/// Finds out how to run a command as root.
pub fn privilege() -> Privilege {
    if is_root() {
        Privilege::Root
    } else if find_program("sudo").is_some() {
        Privilege::Sudo
    } else {
        Privilege::None
    }
}

/// A command that runs `program` as root (directly or through sudo; with
/// [`Privilege::None`], directly, and it will fail with its own message).
pub fn as_root(privilege: Privilege, program: &str) -> Command {
    match privilege {
        Privilege::Sudo => {
            let mut c = Command::new("sudo");
            c.arg(program);
            c
        }
        Privilege::Root | Privilege::None => Command::new(program),
    }
}

/// A program on PATH or in the system directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The numeric uid and gid of a user (`id -u NAME`, `id -g NAME`).
pub fn user_ids(name: &str) -> anyhow::Result<(u32, u32)> {
    let uid = command_output(Command::new("id").args(["-u", name]))?;
    let gid = command_output(Command::new("id").args(["-g", name]))?;
    Ok((
        uid.trim()
            .parse()
            .with_context(|| format!("uid of {name}: `{uid}`"))?,
        gid.trim()
            .parse()
            .with_context(|| format!("gid of {name}: `{gid}`"))?,
    ))
}

/// Runs `command` and returns its stdout; fails with its stderr.
pub fn command_output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    check(command, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with the command and its output unless it exited 0.
pub fn check(command: &Command, out: &Output) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A fresh private (0700) directory under the system's temporary directory.
pub fn private_temp_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "{prefix}-{}-{nanos:x}{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!(
        "could not create a temporary directory in {}",
        base.display()
    )
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller retries if
/// someone takes it first).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
