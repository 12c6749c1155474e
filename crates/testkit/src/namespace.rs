//! Tests that need their own mounts (a small tmpfs to fill up, a filesystem
//! remounted read-only) without being root: the test runs itself again
//! inside a new user and mount namespace (`unshare --user --map-root-user
//! --mount`, util-linux), where it may mount what it needs; the mounts
//! vanish with the namespace. Processes it starts (`ferrosim serve`) share
//! its mounts; the network is the machine's, so loopback works as usual.
//!
//! ```ignore
//! #[test]
//! fn my_test() {
//!     if namespace::rerun_inside("my_test") == namespace::Place::Outside {
//!         return; // the run inside passed
//!     }
//!     namespace::mount_tmpfs(dir, "4m");
//!     // ...
//! }
//! ```

use std::path::Path;
use std::process::Command;

/// Set in the run inside the namespace.
pub const INSIDE_ENV: &str = "FERROSIM_TEST_IN_MOUNT_NAMESPACE";

/// `FERROSIM_SKIP_MOUNT_NAMESPACE=1` lets such a test skip itself when
/// unprivileged user namespaces are not available.
pub const SKIP_ENV: &str = "FERROSIM_SKIP_MOUNT_NAMESPACE";

/// Where the calling test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the namespace: do the work.
    Inside,
    /// Outside, after the run inside passed (or was skipped): return.
    Outside,
}

/// Outside the namespace: runs the test `test` (its full name in this test
/// binary) again inside a new user and mount namespace, panics with its
/// output when it fails, and gives [`Place::Outside`]. Inside: gives
/// [`Place::Inside`]. When namespaces cannot be created, panics saying so,
/// unless [`SKIP_ENV`]`=1`.
pub fn rerun_inside(test: &str) -> Place {
    if std::env::var_os(INSIDE_ENV).is_some() {
        return Place::Inside;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("{test}: cannot find the test binary: {e}"),
    };
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE_ENV, "1")
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            unavailable(test, &format!("cannot run unshare (util-linux): {e}"));
            return Place::Outside;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.starts_with("unshare:") {
        unavailable(test, stderr.trim());
        return Place::Outside;
    }
    assert!(
        output.status.success(),
        "{test} failed inside its mount namespace ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run inside its mount namespace:\n{stdout}\n{stderr}"
    );
    // Show what the run inside printed (cargo shows it for failing tests).
    eprintln!("{stderr}");
    Place::Outside
}

fn unavailable(test: &str, why: &str) {
    if crate::skip_allowed(SKIP_ENV, "FERROSIM_REQUIRE_MOUNT_NAMESPACE") {
        eprintln!("\n==== SKIP {test}: {why} and {SKIP_ENV}=1 ====\n");
        return;
    }
    panic!(
        "{test} needs an unprivileged user and mount namespace (`unshare --user \
         --map-root-user --mount`): {why}. Enable them (sysctl \
         kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0), or set \
         {SKIP_ENV}=1 to skip this test"
    );
}

/// Inside the namespace: mounts a tmpfs of `size` (`mount`'s syntax:
/// `4m`) on `dir`, private to its owner.
pub fn mount_tmpfs(dir: &Path, size: &str) {
    mount(
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ],
        dir,
    );
}

/// Inside the namespace: remounts the filesystem mounted on `dir`
/// read-only (`read_only`) or read-write.
pub fn remount(dir: &Path, read_only: bool) {
    let mode = if read_only {
        "remount,ro"
    } else {
        "remount,rw"
    };
    mount(&["-o", mode], dir);
}

fn mount(args: &[&str], dir: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("running mount: {e}"));
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fills the filesystem of `dir` with a file `name` until it is full;
/// returns the file's path (delete it to free the space).
pub fn fill_up(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut file =
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let chunk = vec![0u8; 16 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last bytes of a partial block.
    while let Ok(n) = file.write(&[0u8; 512]) {
        if n == 0 {
            break;
        }
    }
    let _ = file.flush();
    path
}
