//! The Debian packages the test suite needs, installed when missing.

use std::process::Command;

use anyhow::{Context, bail};

use crate::system::{self, Privilege, Signals};

/// Every package the whole suite (and CI's telemetry and dashboard checks)
/// needs, with what for.
pub const PACKAGES: &[(&str, &str)] = &[
    (
        "pkg-config",
        "finds libpcsclite when building the PC/SC transport",
    ),
    ("libpcsclite-dev", "the PC/SC client library the LPA links"),
    ("pcscd", "the PC/SC daemon of the vpcd tests"),
    ("pcsc-tools", "PC/SC diagnostics"),
    (
        "vsmartcard-vpcd",
        "the virtual reader the virtual eUICC plugs into",
    ),
    (
        "opensc",
        "opensc-tool, a second PC/SC program in the vpcd tests",
    ),
    ("softhsm2", "the PKCS#11 token of the HSM tests"),
    (
        "postgresql",
        "the PostgreSQL half of the store and multi-instance tests",
    ),
    ("postgresql-contrib", "PostgreSQL extensions"),
    ("ca-certificates", "HTTPS to package registries"),
    (
        "prometheus",
        "promtool, which checks the alert and recording rules",
    ),
    ("chromium", "headless browser of the dashboard tests"),
    ("chromium-driver", "WebDriver for the dashboard tests"),
];

/// Installs the missing [`PACKAGES`] with apt-get (directly as root, with
/// sudo otherwise); fails with what to do when neither works.
pub fn ensure(signals: &Signals) -> anyhow::Result<()> {
    let names: Vec<&str> = PACKAGES.iter().map(|(name, _)| *name).collect();
    if system::find_program("dpkg-query").is_none() {
        bail!(
            "dpkg-query not found: this is not a Debian-like system. Install the equivalents of \
             these Debian packages yourself, then run the tests: {}",
            names.join(" ")
        );
    }
    let missing = missing(&names)?;
    if missing.is_empty() {
        eprintln!(
            "xtask: the {} Debian packages the tests need are installed",
            names.len()
        );
        return Ok(());
    }
    eprintln!("xtask: installing missing Debian packages:");
    for (name, why) in PACKAGES.iter().filter(|(n, _)| missing.contains(n)) {
        eprintln!("  {name:<20} {why}");
    }
    let manual = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let privilege = system::privilege();
    if privilege == Privilege::None {
        bail!(
            "missing Debian packages ({}), and this user is not root and has no sudo. \
             As root, run:\n  {manual}",
            missing.join(" ")
        );
    }
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = system::as_root(privilege, "env");
        command
            .args(["DEBIAN_FRONTEND=noninteractive", "apt-get"])
            .args(args);
        let status = command
            .status()
            .with_context(|| format!("starting {command:?}"))?;
        signals.check()?;
        if !status.success() {
            bail!(
                "{command:?} failed ({status}); install the packages by hand as root:\n  {manual}"
            );
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    apt(&install)?;
    let still = self::missing(&names)?;
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    Ok(())
}

/// Python packages the suite runs as independent checkers, with what for:
/// `(import name, pip name, why)`.
pub const PYTHON_PACKAGES: &[(&str, &str, &str)] = &[(
    "openapi_spec_validator",
    "openapi-spec-validator",
    "validates the served OpenAPI 3.1 document",
)];

/// Installs the missing [`PYTHON_PACKAGES`] with `python3 -m pip`; fails
/// with what to do when that does not work.
pub fn ensure_python(signals: &Signals) -> anyhow::Result<()> {
    let importable = |module: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for (module, package, why) in PYTHON_PACKAGES {
        if importable(module) {
            continue;
        }
        eprintln!("xtask: installing the Python package {package} ({why})");
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "-q", package])
            .status()
            .context("running python3 -m pip")?;
        signals.check()?;
        if !status.success() || !importable(module) {
            bail!(
                "the Python package {package} is missing and `python3 -m pip install {package}` \
                 did not install it ({status}); install it by hand for the python3 on PATH"
            );
        }
    }
    Ok(())
}

/// The names among `names` that dpkg does not list as installed.
fn missing<'a>(names: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
    // dpkg-query exits 1 when some name is unknown to it; the listing of the
    // others is still complete, so only its output counts.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package}\t${db:Status-Abbrev}\n"])
        .args(names)
        .output()
        .context("running dpkg-query")?;
    let listing = String::from_utf8_lossy(&out.stdout);
    Ok(names
        .iter()
        .copied()
        .filter(|name| !installed(&listing, name))
        .collect())
}

/// Whether a `dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\n'` listing
/// shows `name` installed (status `ii`; architecture-qualified names match).
fn installed(listing: &str, name: &str) -> bool {
    listing.lines().any(|line| {
        let mut fields = line.split('\t');
        let package = fields.next().unwrap_or("");
        let status = fields.next().unwrap_or("");
        let package = package.split(':').next().unwrap_or(package);
        package == name && status.starts_with("ii")
    })
}

#[cfg(test)]
mod tests {
    use super::installed;

    #[test]
    fn reads_dpkg_listings() {
        let listing = "pcscd\tii \nlibpcsclite-dev:amd64\tii \nsofthsm2\trc \nopensc\tun \n";
        assert!(installed(listing, "pcscd"));
        assert!(installed(listing, "libpcsclite-dev"));
        assert!(
            !installed(listing, "softhsm2"),
            "removed, config files only"
        );
        assert!(!installed(listing, "opensc"));
        assert!(!installed(listing, "chromium"));
        assert!(!installed("", "pcscd"));
        assert!(!installed("garbage without tabs\n\t\t\n", "pcscd"));
    }
}
