//! What an operator's administrator does with orders and profile types on
//! the command line, and what must never go wrong there: a profile type is
//! never swapped silently, every field of a profile type is checked at
//! import (not at the first download), a refused `order create` leaves no
//! profile reserved and names the ICCID, callback URLs are the operator's
//! ES2+ base. Every argument is also fed garbage: a clear refusal, never a
//! panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_testkit::cli::Instance;

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");

const PACKAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der"
);
const OTHER_PACKAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/upp/TS48V3-SAIP2-3-NOBERTLV-UNIQUE.der"
);

/// The line of `profiles stats` for `state`, as a number.
fn count(i: &Instance, state: &str) -> u64 {
    let stats = i.ok(&["profiles", "stats"]);
    stats
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(state)).then(|| w.next().unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

/// The value after `label` on a line of `out`.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` in {out}"))
}

fn import_args<'a>(name: &'a str, package: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "profile-type",
        "import",
        "--operator",
        "acme",
        "--name",
        name,
        "--package",
        package,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_profile_type_is_never_replaced_silently() {
    let i = Instance::stocked(FERROSIM, 3);
    let before = i.ok(&[
        "profile-type",
        "show",
        "--operator",
        "acme",
        "--name",
        "ts48",
    ]);

    // Same name again: refused, nothing changed.
    i.refused(
        &import_args("ts48", OTHER_PACKAGE, &[]),
        "profile type ts48 exists already",
    );
    assert_eq!(
        i.ok(&[
            "profile-type",
            "show",
            "--operator",
            "acme",
            "--name",
            "ts48"
        ]),
        before
    );

    // --replace adds version 2; an order made before keeps version 1 (its
    // download gets the package it was ordered with), later orders take 2,
    // and version 1 stays listed.
    let order = i.ok(&["order", "create", "--operator", "acme", "--type", "ts48"]);
    let iccid = field(&order, "iccid:").to_owned();
    let out = i.ok(&import_args(
        "ts48",
        OTHER_PACKAGE,
        &["--replace", "--profile-name", "Version two"],
    ));
    assert!(
        out.contains("profile type ts48 version 2 imported"),
        "{out}"
    );
    let after = i.ok(&[
        "profile-type",
        "show",
        "--operator",
        "acme",
        "--name",
        "ts48",
    ]);
    assert_eq!(field(&after, "profile name:"), "Version two");
    assert_ne!(field(&after, "package:"), field(&before, "package:"));
    assert!(after.contains("version:           2"), "{after}");
    let versions: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("  1 ") || l.starts_with("  2 "))
        .collect();
    assert_eq!(versions.len(), 2, "{after}");
    assert!(versions[0].ends_with("orders 1"), "{after}");
    assert!(versions[1].ends_with("orders 0"), "{after}");
    let show = i.ok(&["order", "show", &iccid]);
    assert_eq!(field(&show, "profile type:"), "ts48 (version 1)");
    let later = i.ok(&["order", "create", "--operator", "acme", "--type", "ts48"]);
    let later = field(&later, "iccid:").to_owned();
    let show = i.ok(&["order", "show", &later]);
    assert_eq!(field(&show, "profile type:"), "ts48 (version 2)");
    // An order may pin an earlier version explicitly; garbage is refused
    // before anything is reserved.
    let pinned = i.ok(&[
        "order",
        "create",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--type-version",
        "1",
    ]);
    let pinned = field(&pinned, "iccid:").to_owned();
    let show = i.ok(&["order", "show", &pinned]);
    assert_eq!(field(&show, "profile type:"), "ts48 (version 1)");
    for (bad, expected) in [
        ("0", "--type-version 0"),
        ("3", "profile type version 3 unknown"),
        ("-1", "unexpected argument"),
        ("one", "--type-version"),
        ("99999999999", "--type-version"),
        ("", "--type-version"),
    ] {
        i.refused(
            &[
                "order",
                "create",
                "--operator",
                "acme",
                "--type",
                "ts48",
                "--type-version",
                bad,
            ],
            expected,
        );
        assert_eq!(count(&i, "available"), 0, "after --type-version {bad:?}");
    }
    i.ok(&["order", "cancel", "--operator", "acme", &iccid]);
    i.ok(&["order", "cancel", "--operator", "acme", &later]);
    i.ok(&["order", "cancel", "--operator", "acme", &pinned]);
    assert_eq!(
        field(
            &i.ok(&[
                "profile-type",
                "show",
                "--operator",
                "acme",
                "--name",
                "ts48"
            ]),
            "profiles:"
        ),
        "available 3"
    );

    // list / show / remove.
    i.ok(&import_args("spare", PACKAGE, &[]));
    let list = i.ok(&["profile-type", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("ts48") && l.contains("available 3"))
            && list
                .lines()
                .any(|l| l.contains("spare") && l.contains("no profiles")),
        "{list}"
    );
    i.refused(
        &[
            "profile-type",
            "remove",
            "--operator",
            "acme",
            "--name",
            "ts48",
        ],
        "has 3 profile(s)",
    );
    let out = i.ok(&[
        "profile-type",
        "remove",
        "--operator",
        "acme",
        "--name",
        "spare",
    ]);
    assert!(out.contains("removed"), "{out}");
    i.refused(
        &[
            "profile-type",
            "show",
            "--operator",
            "acme",
            "--name",
            "spare",
        ],
        "no profile type spare",
    );
    i.refused(
        &[
            "profile-type",
            "remove",
            "--operator",
            "acme",
            "--name",
            "spare",
        ],
        "no profile type spare",
    );
    for bad in ["", "bad op", "\u{7}"] {
        i.refused(&["profile-type", "list", "--operator", bad], "--operator");
        i.refused(
            &["profile-type", "show", "--operator", bad, "--name", "x"],
            "--operator",
        );
    }
}

#[test]
fn every_profile_type_field_is_checked_at_import() {
    let i = Instance::new(FERROSIM);
    i.ok(&["operator", "add", "--id", "acme"]);
    let long = "x".repeat(65);
    let long_spn = "S".repeat(33);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (import_args("t", PACKAGE, &["--owner", "0010"]), "--owner"),
        (
            import_args("t", PACKAGE, &["--owner", "0010123"]),
            "--owner",
        ),
        (import_args("t", PACKAGE, &["--owner", "00a01"]), "--owner"),
        (import_args("t", PACKAGE, &["--owner", ""]), "--owner"),
        (
            import_args("t", PACKAGE, &["--owner", "００１０１"]),
            "--owner",
        ),
        (import_args("", PACKAGE, &[]), "--name"),
        (import_args(" t", PACKAGE, &[]), "--name"),
        (import_args(&long, PACKAGE, &[]), "--name"),
        (import_args("a\tb", PACKAGE, &[]), "--name"),
        (
            import_args("t", PACKAGE, &["--service-provider", &long_spn]),
            "--service-provider",
        ),
        (
            import_args("t", PACKAGE, &["--profile-name", &long]),
            "--profile-name",
        ),
        (import_args("t", PACKAGE, &["--class", "gold"]), "--class"),
        (
            import_args("t", "/nonexistent.der", &[]),
            "/nonexistent.der",
        ),
        (import_args("t", "/etc/hostname", &[]), "profile package"),
        // A switch: no value, and never twice.
        (
            import_args("t", PACKAGE, &["--fallback-allowed=yes"]),
            "--fallback-allowed",
        ),
        (
            import_args("t", PACKAGE, &["--fallback-allowed=false"]),
            "--fallback-allowed",
        ),
        (
            import_args("t", PACKAGE, &["--fallback-allowed", "--fallback-allowed"]),
            "--fallback-allowed",
        ),
    ];
    for (args, expected) in &cases {
        i.refused(args, expected);
    }
    let list = i.ok(&["profile-type", "list"]);
    assert!(list.contains("no profile types"), "{list}");
    // Valid values pass: a 3-digit MNC owner.
    i.ok(&import_args("t", PACKAGE, &["--owner", "310410"]));
    let show = i.ok(&["profile-type", "show", "--operator", "acme", "--name", "t"]);
    assert_eq!(field(&show, "owner MCC+MNC:"), "310410");
    assert_eq!(field(&show, "fallback allowed:"), "no");
}

#[test]
fn a_profile_type_allows_the_fallback_attribute_only_when_told() {
    let i = Instance::new(FERROSIM);
    i.ok(&["operator", "add", "--id", "acme"]);
    let out = i.ok(&import_args("iot", PACKAGE, &["--fallback-allowed"]));
    assert!(out.contains("fallback allowed"), "{out}");
    let show = i.ok(&[
        "profile-type",
        "show",
        "--operator",
        "acme",
        "--name",
        "iot",
    ]);
    assert!(
        field(&show, "fallback allowed:").starts_with("yes"),
        "{show}"
    );
    let list = i.ok(&["profile-type", "list"]);
    assert!(list.contains("fallback allowed"), "{list}");
    // A new version without the switch withdraws it: orders made from now
    // on get metadata without fallbackAllowed.
    i.ok(&import_args("iot", PACKAGE, &["--replace"]));
    let show = i.ok(&[
        "profile-type",
        "show",
        "--operator",
        "acme",
        "--name",
        "iot",
    ]);
    assert_eq!(field(&show, "fallback allowed:"), "no");
    let list = i.ok(&["profile-type", "list"]);
    assert!(!list.contains("fallback allowed"), "{list}");
}

#[test]
fn a_refused_order_leaves_no_profile_reserved_and_names_the_iccid() {
    let i = Instance::stocked(FERROSIM, 3);
    let first = i.ok(&[
        "order",
        "create",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--matching-id",
        "ABCDE-12345",
    ]);
    let first_iccid = field(&first, "iccid:").to_owned();
    assert_eq!(count(&i, "available"), 2);

    // Refused before anything is reserved.
    let refusals: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--matching-id", "ABCDE-12345"],
            "already used by the order of ICCID",
        ),
        (vec!["--matching-id", "1"], "a matching id must be"),
        (
            vec!["--confirmation-code", ""],
            "--confirmation-code is empty",
        ),
        (
            vec!["--confirmation-code", "   "],
            "--confirmation-code is empty",
        ),
        (
            vec!["--confirmation-code", "12\u{1}4"],
            "--confirmation-code must be",
        ),
        (vec!["--eid", "1234"], "--eid"),
        (vec!["--eid", "89049032123451234512345678901234"], "--eid"),
        (vec!["--qr", "/nonexistent-dir/x.png"], "no directory"),
        (vec!["--qr", "/tmp"], "is a directory"),
    ];
    for (extra, expected) in &refusals {
        let mut args = vec!["order", "create", "--operator", "acme", "--type", "ts48"];
        args.extend_from_slice(extra);
        let t = i.refused(&args, expected);
        if expected.contains("already used") {
            assert!(t.contains(&first_iccid), "{t}");
        }
        assert_eq!(count(&i, "available"), 2, "after {extra:?}");
        assert_eq!(count(&i, "allocated"), 0, "after {extra:?}");
    }
    for (extra, expected) in [
        (vec!["--type", ""], "--type"),
        (vec!["--type", "nope"], "profile type unknown"),
        (vec!["--iccid", "123"], "--iccid"),
        (vec!["--iccid", &first_iccid], "downloadOrder"),
    ] {
        let mut args = vec!["order", "create", "--operator", "acme"];
        args.extend_from_slice(&extra);
        i.refused(&args, expected);
        assert_eq!(count(&i, "available"), 2, "after {extra:?}");
    }
    i.refused(
        &["order", "create", "--operator", "nobody", "--type", "ts48"],
        "unknown operator nobody",
    );
    assert_eq!(count(&i, "available"), 2);
    // A good order still works afterwards.
    i.ok(&["order", "create", "--operator", "acme", "--type", "ts48"]);
    assert_eq!(count(&i, "available"), 1);
}

#[test]
fn callback_urls_are_the_operators_es2_base() {
    let i = Instance::new(FERROSIM);
    let full = "https://backoffice.example/gsma/rsp2/es2plus/handleDownloadProgressInfo";
    i.ok(&[
        "operator",
        "add",
        "--id",
        "acme",
        "--callback-url",
        "https://backoffice.example",
    ]);
    let show = i.ok(&["operator", "show", "--id", "acme"]);
    assert_eq!(field(&show, "callback URL:"), full);
    // The full-URL form is kept as given.
    i.ok(&[
        "operator",
        "add",
        "--id",
        "legacy",
        "--callback-url",
        "https://old.example/hooks/handleDownloadProgressInfo",
    ]);
    let show = i.ok(&["operator", "show", "--id", "legacy"]);
    assert_eq!(
        field(&show, "callback URL:"),
        "https://old.example/hooks/handleDownloadProgressInfo"
    );
    // Setting the same base again changes nothing.
    let out = i.ok(&[
        "operator",
        "add",
        "--id",
        "acme",
        "--callback-url",
        "https://backoffice.example/",
    ]);
    assert!(out.contains("nothing changed"), "{out}");
}

#[test]
fn an_orders_history_is_read_by_iccid_or_matching_id() {
    let i = Instance::stocked(FERROSIM, 1);
    let created = i.ok(&[
        "order",
        "create",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--matching-id",
        "HIST-000001",
        "--no-release",
    ]);
    let iccid = field(&created, "iccid:").to_owned();
    let by_matching_id = i.ok(&["order", "history", "HIST-000001"]);
    assert!(
        by_matching_id.contains(&format!("ICCID {iccid}"))
            && by_matching_id.contains("state confirmed")
            && by_matching_id.contains("order.create"),
        "{by_matching_id}"
    );
    i.ok(&["order", "release", "--operator", "acme", &iccid]);
    i.ok(&["order", "cancel", "--operator", "acme", &iccid]);
    let by_iccid = i.ok(&["order", "history", &iccid]);
    let actions: Vec<&str> = by_iccid
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|w| w.starts_with("order."))
        .collect();
    assert_eq!(
        actions,
        ["order.create", "order.release", "order.cancel"],
        "{by_iccid}"
    );
    assert!(by_iccid.contains("state available"), "{by_iccid}");
    // The cancelled order's matching id names no order any more.
    i.refused(
        &["order", "history", "HIST-000001"],
        "no profile has ICCID or matching id",
    );

    // Garbage: a clear refusal, never a panic.
    let long = "9".repeat(200);
    for (args, expected) in [
        (vec!["order", "history", ""], "neither an ICCID"),
        (
            vec!["order", "history", "x"],
            "no profile has ICCID or matching id",
        ),
        (vec!["order", "history", "\u{1}\u{7f}"], "neither an ICCID"),
        (vec!["order", "history", &long], "neither an ICCID"),
        (
            vec!["order", "history", "8944000000000009999"],
            "no profile has ICCID",
        ),
        (
            vec!["order", "history", &iccid, "--limit", "0"],
            "--limit 0",
        ),
        (
            vec!["order", "history", &iccid, "--limit", "1001"],
            "--limit 1001",
        ),
        (
            vec!["order", "history", &iccid, "--limit", "-1"],
            "unexpected argument",
        ),
        (
            vec!["order", "history", &iccid, "--limit", "many"],
            "--limit",
        ),
        (vec!["order", "history"], "ICCID|MATCHING-ID"),
    ] {
        i.refused(&args, expected);
    }
}
