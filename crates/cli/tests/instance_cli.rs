//! The instance as an operator's administrator meets it on the command line:
//! only `init` and `serve` create one (data directory 0700, database 0600,
//! stored SM-DP+ address); the other commands refuse a wrong data directory
//! naming it; the SM-DP+ address comes from the instance, not a CLI default;
//! instance flags work before and after the subcommand; operators keep their
//! token and settings unless told otherwise; bad arguments are refused with
//! the rule, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use ferrosim_testkit::cli::{ferrosim_command, output_text as text};

const PACKAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der"
);

/// `ferrosim ARGS` with no instance settings from the environment.
fn ferrosim(args: &[&str]) -> Output {
    ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .output()
        .expect("running ferrosim")
}

fn ok(args: &[&str]) -> String {
    let out = ferrosim(args);
    assert!(
        out.status.success(),
        "ferrosim {args:?} failed: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with a message containing `expected` and a non-zero exit, without panicking.
fn refused(args: &[&str], expected: &str) -> String {
    let out = ferrosim(args);
    let t = text(&out);
    assert!(!out.status.success(), "ferrosim {args:?} succeeded: {t}");
    assert!(!t.contains("panicked"), "ferrosim {args:?} panicked: {t}");
    assert!(
        t.contains(expected),
        "ferrosim {args:?}: expected `{expected}` in: {t}"
    );
    t
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The value after `label` on a line of `out`.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` in {out}"))
}

#[test]
fn admin_commands_never_create_an_instance() {
    let root = tempfile::tempdir().unwrap();
    let wrong = root.path().join("no-such-data");
    let dd = s(&wrong);
    let iccid = "8944000000000000019";
    for args in [
        vec!["operator", "add", "--id", "acme", "--data-dir", dd],
        vec!["operator", "--data-dir", dd, "list"],
        vec!["operator", "show", "--id", "acme", "--data-dir", dd],
        vec!["operator", "rotate-token", "--id", "acme", "--data-dir", dd],
        vec!["operator", "remove", "--id", "acme", "--data-dir", dd],
        vec![
            "profile-type",
            "import",
            "--operator",
            "acme",
            "--name",
            "t",
            "--package",
            PACKAGE,
            "--data-dir",
            dd,
        ],
        vec!["profiles", "list", "--data-dir", dd],
        vec!["profiles", "stats", "--data-dir", dd],
        vec![
            "profiles",
            "generate",
            "--operator",
            "acme",
            "--type",
            "t",
            "--count",
            "1",
            "--first-iccid",
            iccid,
            "--first-imsi",
            "001010000000001",
            "--data-dir",
            dd,
        ],
        vec!["order", "show", iccid, "--data-dir", dd],
        vec![
            "order",
            "create",
            "--operator",
            "acme",
            "--type",
            "t",
            "--data-dir",
            dd,
        ],
        vec![
            "order",
            "cancel",
            "--operator",
            "acme",
            iccid,
            "--data-dir",
            dd,
        ],
    ] {
        let t = refused(&args, "no ferrosim instance at data directory");
        assert!(t.contains(dd), "{args:?} does not name {dd}: {t}");
        assert!(t.contains("ferrosim init"), "{args:?}: {t}");
        assert!(!wrong.exists(), "{args:?} created {dd}");
    }
    // A database file that exists but was never initialised is refused too.
    let bare = root.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::write(bare.join("ferrosim.db"), b"").unwrap();
    refused(
        &["operator", "list", "--data-dir", s(&bare)],
        "never initialised",
    );
    assert!(!bare.join("pki").exists());
}

#[test]
fn init_creates_a_private_instance_whose_address_orders_use() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dd = s(&data);

    // Created by init: private data directory and database, a PKI, the
    // default address from the listen port.
    let out = ok(&["init", "--data-dir", dd, "--listen", "127.0.0.1:9443"]);
    assert!(out.contains("created ferrosim instance"), "{out}");
    assert_eq!(field(&out, "SM-DP+ address:"), "localhost:9443");
    assert_eq!(mode(&data), 0o700);
    for name in ["ferrosim.db", "ferrosim.db-wal", "ferrosim.db-shm"] {
        let file = data.join(name);
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{name}");
        }
    }
    assert_eq!(mode(&data.join("ferrosim.db")), 0o600);
    assert!(data.join("pki/CI/ci.pem").exists());
    let printed = ok(&["serve", "--print-config", "--data-dir", dd]);
    assert!(
        printed.contains("smdp_address = \"localhost:9443\"")
            && printed.contains("stored in the instance"),
        "{printed}"
    );

    // A configured address replaces it; init again says the instance exists.
    let out = ok(&[
        "init",
        "--smdp-address",
        "smdp.example.com",
        "--data-dir",
        dd,
    ]);
    assert!(out.contains("existing ferrosim instance"), "{out}");
    assert_eq!(field(&out, "SM-DP+ address:"), "smdp.example.com");

    // Instance flags after the subcommand (and before it) work alike.
    let out = ok(&["operator", "add", "--id", "acme", "--data-dir", dd]);
    assert!(out.contains("operator acme created"), "{out}");
    ok(&[
        "profile-type",
        "--data-dir",
        dd,
        "import",
        "--operator",
        "acme",
        "--name",
        "ts48",
        "--package",
        PACKAGE,
    ]);
    ok(&[
        "profiles",
        "generate",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--count",
        "3",
        "--first-iccid",
        "8944000000000000019",
        "--first-imsi",
        "001-01-0000000001",
        "--data-dir",
        dd,
    ]);

    // The activation code names the instance's address, whatever the
    // default listen port of a command that does not listen.
    let out = ok(&[
        "order",
        "create",
        "--operator",
        "acme",
        "--type",
        "ts48",
        "--data-dir",
        dd,
    ]);
    let code = field(&out, "activation code:");
    assert!(code.starts_with("LPA:1$smdp.example.com$"), "{out}");
    // Another address given to an admin command is a contradiction.
    refused(
        &[
            "order",
            "create",
            "--operator",
            "acme",
            "--type",
            "ts48",
            "--data-dir",
            dd,
            "--smdp-address",
            "localhost:8443",
        ],
        "the instance's SM-DP+ address is smdp.example.com",
    );
    // A matching id that is easy to guess or that LPAs refuse is refused
    // before anything is allocated.
    for bad in ["1", "abcdefghijk", "SHORT-1", "WITH SPACE-12345"] {
        refused(
            &[
                "order",
                "create",
                "--operator",
                "acme",
                "--type",
                "ts48",
                "--matching-id",
                bad,
                "--data-dir",
                dd,
            ],
            "a matching id must be 10 to 64 characters",
        );
    }
    let stats = ok(&["profiles", "stats", "--data-dir", dd]);
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().eq(["available", "2"])),
        "{stats}"
    );
    refused(
        &["profiles", "list", "--state", "bogus", "--data-dir", dd],
        "expected one of available,",
    );
}

#[test]
fn operators_keep_their_token_and_settings_unless_told() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dd = s(&data);
    ok(&[
        "init",
        "--data-dir",
        dd,
        "--smdp-address",
        "smdp.example.com",
    ]);

    let out = ok(&[
        "operator",
        "add",
        "--id",
        "acme",
        "--name",
        "ACME",
        "--callback-url",
        "https://backoffice.example/esim",
        "--data-dir",
        dd,
    ]);
    let token = out.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("fst_"), "{out}");

    // add again without settings: nothing changes, no new token.
    let out = ok(&["operator", "add", "--id", "acme", "--data-dir", dd]);
    assert!(
        out.contains("nothing changed") && !out.contains("fst_"),
        "{out}"
    );
    let show = ok(&["operator", "show", "--id", "acme", "--data-dir", dd]);
    assert_eq!(
        field(&show, "callback URL:"),
        "https://backoffice.example/esim/gsma/rsp2/es2plus/handleDownloadProgressInfo"
    );
    assert_eq!(field(&show, "name:"), "ACME");

    // A changed setting is reported with what it replaced.
    let out = ok(&[
        "operator",
        "add",
        "--id",
        "acme",
        "--callback-url",
        "https://new.example/cb",
        "--data-dir",
        dd,
    ]);
    assert!(
        out.contains(
            "callback URL: https://backoffice.example/esim/gsma/rsp2/es2plus/handleDownloadProgressInfo -> https://new.example/cb/gsma/rsp2/es2plus/handleDownloadProgressInfo"
        )
            && out.contains("token is unchanged"),
        "{out}"
    );

    // http:// callbacks only with the lab flag; garbage never.
    refused(
        &[
            "operator",
            "add",
            "--id",
            "acme",
            "--callback-url",
            "http://lab/cb",
            "--data-dir",
            dd,
        ],
        "must be https://",
    );
    ok(&[
        "operator",
        "add",
        "--id",
        "lab",
        "--callback-url",
        "http://lab.example/cb",
        "--allow-http-callback",
        "--data-dir",
        dd,
    ]);
    for bad in ["not a url", "ftp://x/y", "https://user:pw@h/x", ""] {
        refused(
            &[
                "operator",
                "add",
                "--id",
                "x",
                "--callback-url",
                bad,
                "--data-dir",
                dd,
            ],
            "--callback-url",
        );
    }
    refused(
        &["operator", "add", "--id", "has space", "--data-dir", dd],
        "--id",
    );

    // rotate-token gives a new token and says the old one is gone.
    let out = ok(&["operator", "rotate-token", "--id", "acme", "--data-dir", dd]);
    let new_token = out.lines().last().unwrap().trim();
    assert!(new_token.starts_with("fst_") && new_token != token, "{out}");
    assert!(
        out.contains("previous default token no longer works"),
        "{out}"
    );
    let show = ok(&["operator", "show", "--id", "acme", "--data-dir", dd]);
    assert_eq!(
        field(&show, "callback URL:"),
        "https://new.example/cb/gsma/rsp2/es2plus/handleDownloadProgressInfo"
    );
    refused(
        &[
            "operator",
            "rotate-token",
            "--id",
            "nobody",
            "--data-dir",
            dd,
        ],
        "no operator nobody",
    );

    // Named tokens beside the default one: add (shown once), list, revoke;
    // never the last active one; garbage names refused.
    fn token_args<'a>(dd: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["operator", "token"];
        v.extend_from_slice(rest);
        v.extend(["--data-dir", dd]);
        v
    }
    let token = |rest: &[&'static str]| token_args(dd, rest);
    let out = ok(&token(&["add", "--id", "acme", "--name", "ci-2026.12"]));
    let ci = out.lines().last().unwrap().trim();
    assert!(ci.starts_with("fst_") && ci != new_token, "{out}");
    refused(
        &token(&["add", "--id", "acme", "--name", "ci-2026.12"]),
        "already has a token named ci-2026.12",
    );
    let list = ok(&token(&["list", "--id", "acme"]));
    assert_eq!(list.matches("active").count(), 2, "{list}");
    let out = ok(&token(&["revoke", "--id", "acme", "--name", "default"]));
    assert!(out.contains("token default revoked"), "{out}");
    let list = ok(&token(&["list", "--id", "acme"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("default") && l.contains("revoked")),
        "{list}"
    );
    refused(
        &token(&["revoke", "--id", "acme", "--name", "ci-2026.12"]),
        "last active token",
    );
    refused(
        &token(&["revoke", "--id", "acme", "--name", "default"]),
        "no active token named default",
    );
    let show = ok(&["operator", "show", "--id", "acme", "--data-dir", dd]);
    assert!(show.contains("1 active (ci-2026.12)"), "{show}");
    let long = "n".repeat(65);
    for (args, expected) in [
        (token(&["add", "--id", "acme", "--name", ""]), "--name"),
        (
            token(&["add", "--id", "acme", "--name", "has space"]),
            "--name",
        ),
        (token(&["add", "--id", "acme", "--name", "\u{1}"]), "--name"),
        (
            token_args(dd, &["add", "--id", "acme", "--name", &long]),
            "--name",
        ),
        (
            token(&["add", "--id", "nobody", "--name", "x"]),
            "no operator nobody",
        ),
        (token(&["add", "--id", "", "--name", "x"]), "--id"),
        (token(&["list", "--id", "nobody"]), "no operator nobody"),
        (
            token(&["revoke", "--id", "acme", "--name", "a/b"]),
            "--name",
        ),
        (token(&["add", "--id", "acme"]), "--name"),
        (token(&["frobnicate"]), "unrecognized subcommand"),
    ] {
        refused(&args, expected);
    }

    // list, remove (refused while it owns profile types).
    let list = ok(&["operator", "list", "--data-dir", dd]);
    assert!(list.contains("acme") && list.contains("lab"), "{list}");
    ok(&[
        "profile-type",
        "import",
        "--operator",
        "acme",
        "--name",
        "ts48",
        "--package",
        PACKAGE,
        "--data-dir",
        dd,
    ]);
    refused(
        &["operator", "remove", "--id", "acme", "--data-dir", dd],
        "owns 1 profile type",
    );
    let out = ok(&["operator", "remove", "--id", "lab", "--data-dir", dd]);
    assert!(out.contains("operator lab removed"), "{out}");
    refused(
        &["operator", "remove", "--id", "lab", "--data-dir", dd],
        "no operator lab",
    );
    let list = ok(&["operator", "list", "--data-dir", dd]);
    assert!(list.contains("acme") && !list.contains("lab"), "{list}");
}

#[tokio::test]
async fn a_postgres_database_without_an_instance_is_refused() {
    let Some(admin) =
        ferrosim_testkit::postgres_admin_url("a_postgres_database_without_an_instance_is_refused")
    else {
        return;
    };
    let db = ferrosim_testkit::fresh_postgres(&admin).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dd = root.path().join("data");
    let t = refused(
        &[
            "operator",
            "list",
            "--database-url",
            &db.url,
            "--data-dir",
            s(&dd),
        ],
        "never initialised",
    );
    assert!(t.contains("ferrosim_test_"), "names the database: {t}");
    let out = ok(&[
        "init",
        "--database-url",
        &db.url,
        "--data-dir",
        s(&dd),
        "--smdp-address",
        "smdp.example.com",
    ]);
    assert!(out.contains("created"), "{out}");
    let list = ok(&[
        "operator",
        "list",
        "--database-url",
        &db.url,
        "--data-dir",
        s(&dd),
    ]);
    assert!(list.contains("no operators"), "{list}");
}
