//! A profile's end of life on the command line: `ferrosim profile revoke`
//! ends an open order (the profile becomes unavailable) and retires or
//! quarantines the ICCID under the operator's reuse policy; unknown ICCIDs,
//! another operator's profile, a second revocation and garbage arguments are
//! refused clearly and change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_testkit::cli::{Instance, output_text as text};

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

/// The value after `label` on a line of `out`.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` in {out}"))
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn revoking_ends_the_order_and_follows_the_reuse_policy() {
    let i = Instance::stocked(FERROSIM, 3);
    i.ok(&["operator", "add", "--id", "other"]);
    let shown = json(&i.ok(&["profile", "reuse-policy", "--operator", "acme"]));
    assert_eq!(shown["policy"], "retire");
    let set = json(&i.ok(&[
        "profile",
        "reuse-policy",
        "--operator",
        "acme",
        "quarantine",
        "--quarantine-days",
        "30",
    ]));
    assert_eq!(set["quarantine_seconds"], 30 * 86_400);

    let order = i.ok(&["order", "create", "--operator", "acme", "--type", "ts48"]);
    let iccid = field(&order, "iccid:").to_owned();

    // Refusals first: each changes nothing.
    i.refused(
        &["profile", "revoke", &iccid, "--operator", "other"],
        "unknown ICCID for this operator",
    );
    i.refused(
        &[
            "profile",
            "revoke",
            "8944000000000099995",
            "--operator",
            "acme",
        ],
        "unknown ICCID for this operator",
    );
    i.refused(
        &["profile", "revoke", &iccid, "--operator", "nobody"],
        "unknown operator",
    );
    i.refused(
        &["profile", "revoke", "12ab", "--operator", "acme"],
        "ICCID",
    );
    i.refused(
        &[
            "profile",
            "revoke",
            &iccid,
            "--operator",
            "acme",
            "--policy",
            "reuse",
        ],
        "unknown reuse policy",
    );
    i.refused(
        &[
            "profile",
            "revoke",
            &iccid,
            "--operator",
            "acme",
            "--policy",
            "quarantine",
            "--quarantine-days=-3",
        ],
        "out of range",
    );
    i.refused(&["profile", "show", &iccid], "is not revoked");
    i.refused(&["profile", "list", "--state", "gone"], "--state is");
    let shown = i.ok(&["order", "show", &iccid]);
    assert!(shown.contains("released"), "{shown}");

    let revoked = json(&i.ok(&[
        "profile",
        "revoke",
        &iccid,
        "--operator",
        "acme",
        "--reason",
        "contract ended",
    ]));
    assert_eq!(revoked["state"], "quarantined", "{revoked}");
    assert_eq!(revoked["previous_state"], "released");
    assert_eq!(revoked["policy"], "quarantine");
    assert_eq!(revoked["reusable_now"], false);
    assert!(revoked.get("device_delete").is_none(), "never on a device");
    let shown = i.ok(&["order", "show", &iccid]);
    assert!(shown.contains("unavailable"), "{shown}");

    i.refused(
        &["profile", "revoke", &iccid, "--operator", "acme"],
        "revoked already",
    );
    let list = json(&i.ok(&["profile", "list", "--operator", "acme"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["reason"], "contract ended");
    let again = json(&i.ok(&["profile", "show", &iccid]));
    assert_eq!(again["revoked_at_ms"], revoked["revoked_at_ms"]);

    // A confirmed (unreleased) order under an explicit retire policy.
    let free = i.ok(&[
        "order",
        "create",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--no-release",
    ]);
    let second = field(&free, "iccid:").to_owned();
    let retired = json(&i.ok(&[
        "profile",
        "revoke",
        &second,
        "--operator",
        "acme",
        "--policy",
        "retire",
    ]));
    assert_eq!(retired["state"], "retired");
    assert_eq!(retired["reusable_from_ms"], serde_json::Value::Null);
    let audit = i.ok(&["audit", "export"]);
    assert!(audit.contains("profile.revoke"), "{audit}");
}

#[test]
fn a_revoked_iccid_is_imported_again_only_under_its_reuse_policy() {
    let i = Instance::stocked(FERROSIM, 1);
    let order = i.ok(&["order", "create", "--operator", "acme", "--type", "ts48"]);
    let iccid = field(&order, "iccid:").to_owned();
    let generate = |imsi: &str| {
        i.run(&[
            "profiles",
            "generate",
            "--operator",
            "acme",
            "--type",
            "ts48",
            "--count",
            "1",
            "--first-iccid",
            &iccid,
            "--first-imsi",
            imsi,
        ])
    };
    // Not revoked: the ICCID is taken.
    assert!(!generate("001-01-0000000007").status.success());

    // A quarantine of zero days for a profile never on a device: reusable at once.
    let revoked = json(&i.ok(&[
        "profile",
        "revoke",
        &iccid,
        "--operator",
        "acme",
        "--policy",
        "quarantine",
        "--quarantine-days",
        "0",
    ]));
    assert_eq!(revoked["reusable_now"], true, "{revoked}");
    // Same ICCID and IMSI: the old profile is replaced by a fresh one.
    let out = generate("001-01-0000000001");
    assert!(out.status.success(), "{}", text(&out));
    i.refused(&["profile", "show", &iccid], "is not revoked");
    let shown = i.ok(&["order", "show", &iccid]);
    assert!(shown.contains("available"), "{shown}");

    // Retired: never imported again, and the refusal stores nothing.
    i.ok(&[
        "profile",
        "revoke",
        &iccid,
        "--operator",
        "acme",
        "--policy",
        "retire",
    ]);
    let out = generate("001-01-0000000002");
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(t.contains(&format!("ICCID {iccid} is retired")), "{t}");
    let still = json(&i.ok(&["profile", "show", &iccid]));
    assert_eq!(still["state"], "retired");
}
