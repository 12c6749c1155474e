//! `ferrosim bench --telemetry compare`: both configurations download in
//! alternating rounds, the cost is reported as the median of the rounds,
//! every event is stored in the telemetry database (nothing dropped); bad
//! arguments are refused with a clear message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Output};

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("FERROSIM_LOG", "error")
        .env_remove("FERROSIM_DATABASE_URL")
        .output()
        .expect("running ferrosim")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn compare_runs_alternating_rounds_and_reports_the_median() {
    for database in ["own", "shared"] {
        let o = ferrosim(&[
            "bench",
            "--downloads",
            "6",
            "--concurrency",
            "3",
            "--telemetry",
            "compare",
            "--rounds",
            "2",
            "--telemetry-database",
            database,
        ]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("round  1 (off first)"), "{out}");
        assert!(out.contains("round  2 (on first )"), "{out}");
        assert!(out.contains("telemetry cost: median"), "{out}");
        assert!(out.contains("telemetry off: 6/6 downloads"), "{out}");
        assert!(out.contains("telemetry on : 6/6 downloads"), "{out}");
        // Six activations: their four ES9+ steps each are stored by the end
        // of the round (the installation results come later, through the
        // callback outbox); nothing dropped.
        let line = out
            .lines()
            .find(|l| l.contains("telemetry events recorded: "))
            .unwrap_or_else(|| panic!("{out}"));
        let recorded: usize = line
            .split("recorded: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!((24..=30).contains(&recorded), "{line}");
        assert!(
            line.ends_with("dropped: queue full 0, unattributed 0"),
            "{line}"
        );
        assert!(out.contains("load average"), "{out}");
    }
}

#[test]
fn compare_refuses_bad_arguments() {
    for (args, expect) in [
        (
            &["--telemetry", "compare", "--telemetry-database", "disk"][..],
            "invalid value 'disk'",
        ),
        (&["--telemetry", "compare", "--rounds", "0"][..], "--rounds"),
        (
            &[
                "--telemetry",
                "compare",
                "--database-url",
                "sqlite::memory:",
            ][..],
            "without --database-url",
        ),
    ] {
        let mut all = vec!["bench", "--downloads", "2"];
        all.extend_from_slice(args);
        let o = ferrosim(&all);
        let out = text(&o);
        assert!(!o.status.success(), "{all:?}: {out}");
        assert!(out.contains(expect), "{all:?}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}
