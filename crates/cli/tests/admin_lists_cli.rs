//! The administrator's view of an instance on the command line: a batch
//! reusing an IMSI is refused with the IMSI and the ICCID that has it, and
//! nothing of it is stored; `order list` filters and pages; `callbacks list`
//! and `notifications list` read the outbox and what devices reported.
//! Every argument is also fed garbage: a clear refusal, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_testkit::cli::{Instance, ferrosim_command, output_text as text};

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

/// An instance with operator acme, type ts48 and four profiles (IMSIs
/// 001-01-0000000001..4).
fn stocked() -> Instance {
    Instance::stocked(FERROSIM, 4)
}

/// How many profiles the instance lists.
fn profiles(i: &Instance) -> usize {
    i.ok(&["profiles", "list"]).lines().count()
}

fn generate<'a>(first_iccid: &'a str, first_imsi: &'a str, count: &'a str) -> Vec<&'a str> {
    vec![
        "profiles",
        "generate",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--count",
        count,
        "--first-iccid",
        first_iccid,
        "--first-imsi",
        first_imsi,
    ]
}

#[test]
fn a_batch_reusing_an_imsi_is_refused_whole() {
    let i = stocked();
    assert_eq!(profiles(&i), 4);
    // The third profile of the first batch has IMSI 001010000000003.
    let holder = i
        .ok(&["profiles", "list"])
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .find(|c| c.starts_with("894400000000000003"))
        .unwrap();
    // generate: new ICCIDs, IMSIs 001010000000002..4 (taken).
    i.refused(
        &generate("8944000000000001009", "001-01-0000000002", "3"),
        "IMSI 001010000000002 is already used by ICCID 894400000000000002",
    );
    assert_eq!(profiles(&i), 4, "nothing of the refused batch stored");
    // import: a CSV whose second row has a taken IMSI.
    let csv = i.root().join("batch.csv");
    std::fs::write(
        &csv,
        "iccid,imsi,ki,opc\n\
         8944000000000002007,001010000000099,000102030405060708090A0B0C0D0E0F,000102030405060708090A0B0C0D0E0F\n\
         8944000000000002015,001010000000003,000102030405060708090A0B0C0D0E0F,000102030405060708090A0B0C0D0E0F\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    let args = [
        "profiles",
        "import",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--batch",
        csv,
    ];
    i.refused(
        &args,
        &format!("IMSI 001010000000003 is already used by ICCID {holder}"),
    );
    assert_eq!(profiles(&i), 4, "nothing of the refused batch stored");
    // Fresh IMSIs go in.
    i.ok(&generate("8944000000000001009", "001-01-0000000005", "2"));
    assert_eq!(profiles(&i), 6);
}

#[test]
fn orders_are_listed_and_paged_and_garbage_is_refused() {
    let i = stocked();
    assert_eq!(i.ok(&["order", "list"]), "", "no orders yet");
    i.ok(&["order", "create", "--operator", "acme", "--type", "ts48"]);
    i.ok(&[
        "order",
        "create",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--no-release",
    ]);
    let all = i.ok(&["order", "list"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("acme") && l.contains("ts48")),
        "{all}"
    );
    let released = i.ok(&["order", "list", "--state", "released"]);
    assert_eq!(released.lines().count(), 1, "{released}");
    let confirmed = i.ok(&[
        "order",
        "list",
        "--state",
        "confirmed",
        "--profile-type",
        "ts48",
    ]);
    assert_eq!(confirmed.lines().count(), 1, "{confirmed}");
    assert_eq!(i.ok(&["order", "list", "--operator", "other"]), "");
    assert_eq!(i.ok(&["order", "list", "--until", "2000-01-01"]), "");
    let recent = i.ok(&["order", "list", "--since", "2000-01-01T00:00:00Z"]);
    assert_eq!(recent.lines().count(), 2, "{recent}");

    // Paging: a full page names the cursor of the next one.
    let first = i.ok(&["order", "list", "--limit", "1"]);
    let cursor = first
        .lines()
        .find_map(|l| l.strip_prefix("next page: --after "))
        .unwrap_or_else(|| panic!("no cursor in {first}"));
    assert!(first.starts_with(lines[0]), "{first}");
    let second = i.ok(&["order", "list", "--limit", "1", "--after", cursor]);
    assert!(second.starts_with(lines[1]), "{second}");
    let third = i.ok(&[
        "order",
        "list",
        "--limit",
        "1",
        "--after",
        lines[1].split_whitespace().next().unwrap(),
    ]);
    assert_eq!(third, "");

    for (args, expected) in [
        (vec!["--state", "bogus"], "--state `bogus`: expected one of"),
        (vec!["--since", "yesterday"], "expected an RFC 3339 time"),
        (
            vec!["--until", "2026-13-45"],
            "'--until <TIME>': `2026-13-45`",
        ),
        (
            vec!["--since", "2026-01-02", "--until", "2026-01-01"],
            "empty time range",
        ),
        (vec!["--limit", "0"], "--limit 0: expected 1..=1000"),
        (vec!["--limit", "5000"], "--limit 5000"),
        (vec!["--limit", "-1"], "-1"),
        (
            vec!["--after", "not-an-iccid"],
            "'--after <ICCID>': `not-an-iccid` is not an ICCID",
        ),
        (
            vec!["--after", "8944000000000002007"],
            "no order has ICCID 8944000000000002007",
        ),
        (vec!["--operator", "bad operator!"], "--operator"),
    ] {
        let mut all = vec!["order", "list"];
        all.extend(args);
        i.refused(&all, expected);
    }
}

#[test]
fn callbacks_and_notifications_are_listed_and_garbage_is_refused() {
    let i = stocked();
    assert_eq!(i.ok(&["callbacks", "list"]), "");
    assert_eq!(
        i.ok(&[
            "callbacks",
            "list",
            "--status",
            "pending",
            "--operator",
            "acme"
        ]),
        ""
    );
    assert_eq!(i.ok(&["notifications", "list"]), "");
    assert_eq!(
        i.ok(&[
            "notifications",
            "list",
            "--operation",
            "delete",
            "--since",
            "2026-01-01"
        ]),
        ""
    );
    for (args, expected) in [
        (
            vec!["callbacks", "list", "--status", "maybe"],
            "--status `maybe`: expected one of pending, delivered",
        ),
        (
            vec!["callbacks", "list", "--after=-3"],
            "--after `-3`: expected a row id",
        ),
        (vec!["callbacks", "list", "--after", "abc"], "--after `abc`"),
        (
            vec!["callbacks", "list", "--iccid", "12"],
            "'--iccid <ICCID>': `12` is not an ICCID",
        ),
        (vec!["callbacks", "list", "--limit", "0"], "--limit 0"),
        (
            vec!["notifications", "list", "--operation", "explode"],
            "--operation `explode`: expected one of install, enable, disable, delete",
        ),
        (
            vec!["notifications", "list", "--eid", "123"],
            "'--eid <EID>': `123` is not an EID",
        ),
        (
            vec!["notifications", "list", "--until", "tomorrow"],
            "'--until <TIME>': `tomorrow`",
        ),
        (
            vec![
                "notifications",
                "list",
                "--since",
                "2026-01-02",
                "--until",
                "2026-01-01",
            ],
            "empty time range",
        ),
        (
            vec!["notifications", "list", "--after", "1e9"],
            "--after `1e9`",
        ),
    ] {
        i.refused(&args, expected);
    }
    // Pointed at a directory holding no instance: refused with the path, nothing created.
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nothing");
    for cmd in [["callbacks", "list"], ["notifications", "list"]] {
        let out = ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
            .args(cmd)
            .args(["--data-dir", missing.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(missing.to_str().unwrap()),
            "{}",
            text(&out)
        );
        assert!(!missing.join("ferrosim.db").exists());
    }
}
