//! `ferrosim serve` with `[fleet]` and the `ferrosim fleet` CLI over its
//! REST API: devices registered and listed, a rollout created, paused,
//! resumed and aborted (each state shown and in the decision log),
//! the decision log read; bad arguments, bad files and bad tokens refused
//! with the server's reason, nothing registered by them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ferrosim_testkit::serve::ServeCommand;

fn ferrosim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const FLEET: &str = r#"
[[carrier]]
name = "carrier-a"
mcc_mnc = ["310-410"]
smdp_address = "127.0.0.1:8443"
es2_credentials = "vault:carrier-a/es2"
fallback_carriers = ["carrier-b"]
[[carrier.apn]]
name = "iot"
apn = "iot.carrier-a.example"
[[carrier.profile_type]]
name = "iot"
apn = "iot"
[[carrier]]
name = "carrier-b"
mcc_mnc = ["234-15"]
smdp_address = "127.0.0.1:8443"
es2_credentials = "vault:carrier-b/es2"
fallback_carriers = ["carrier-a"]
[[carrier.apn]]
name = "iot"
apn = "m2m.carrier-b.example"
[[carrier.profile_type]]
name = "fallback"
apn = "iot"
[[group]]
name = "meters"
rule = "default"
primary = { carrier = "carrier-a", profile_type = "iot", version = 1 }
fallback = { carrier = "carrier-b", profile_type = "fallback", version = 1 }
[[rule]]
name = "default"
registration_failures = { count = 3, window = "5m" }
"#;

const EID: &str = "89049032123451234512345678901235";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn fleet_cli_over_serve() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let data = dir.path().join("data");
    ok(&ferrosim()
        .args([
            "pki",
            "init",
            "--out",
            pki.to_str().unwrap(),
            "--smdp-address",
            "127.0.0.1:8443",
        ])
        .output()
        .unwrap());
    let fleet_toml = write(dir.path(), "fleet.toml", FLEET);
    let config = write(
        dir.path(),
        "ferrosim.toml",
        &format!("[fleet]\nconfig = {fleet_toml:?}\ntick_ms = 100\n"),
    );
    let server = ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
        .data_dir(&data)
        .pki_dir(&pki)
        .smdp_address("127.0.0.1:8443")
        .config(&config)
        .start_timeout(Duration::from_secs(30))
        .spawn()
        .unwrap();
    let created = ok(&ferrosim()
        .args([
            "api-token",
            "create",
            "--name",
            "ops",
            "--scope",
            "operator",
        ])
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--pki-dir",
            pki.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    let token = created.lines().last().unwrap().trim().to_owned();
    let url = format!("https://127.0.0.1:{}", server.port());
    let ca = pki.join("CI/ci.pem");
    let fleet = |args: &[&str]| {
        ferrosim()
            .arg("fleet")
            .args([
                "--url",
                &url,
                "--token",
                &token,
                "--ca",
                ca.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap()
    };

    let carriers = ok(&fleet(&["carriers"]));
    assert!(carriers.contains("carrier-b"), "{carriers}");
    let rule = write(
        dir.path(),
        "rule.json",
        r#"{"name": "strict", "registration_failures": {"count": 2, "window": "1m"}}"#,
    );
    let added = ok(&fleet(&["rules", "add", &rule]));
    assert!(added.contains("\"strict\""), "{added}");
    let e = refused(&fleet(&["rules", "add", &rule]));
    assert!(e.contains("409") && e.contains("exists"), "{e}");
    let rules = ok(&fleet(&["rules"]));
    assert!(
        rules.contains("strict") && rules.contains("default"),
        "{rules}"
    );
    // One rule changed with its version: without it, with a stale one,
    // and a delete refused while a group uses the rule.
    let version = |shown: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(shown).unwrap();
        v["version"].as_str().unwrap().to_owned()
    };
    let v1 = version(&ok(&fleet(&["rules", "show", "strict"])));
    let changed = write(
        dir.path(),
        "strict.json",
        r#"{"name": "strict", "registration_failures": {"count": 5, "window": "1m"}}"#,
    );
    let e = refused(&fleet(&["rules", "update", "strict", &changed]));
    assert!(e.contains("428") && e.contains("If-Match"), "{e}");
    let updated = ok(&fleet(&[
        "rules",
        "update",
        "strict",
        &changed,
        "--if-match",
        &v1,
    ]));
    assert!(updated.contains("\"count\": 5"), "{updated}");
    let v2 = version(&updated);
    assert_ne!(v1, v2);
    let e = refused(&fleet(&[
        "rules",
        "update",
        "strict",
        &changed,
        "--if-match",
        &v1,
    ]));
    assert!(e.contains("412") && e.contains("changed since"), "{e}");
    let vd = version(&ok(&fleet(&["rules", "show", "default"])));
    let e = refused(&fleet(&["rules", "delete", "default", "--if-match", &vd]));
    assert!(e.contains("409") && e.contains("group"), "{e}");
    ok(&fleet(&["rules", "delete", "strict", "--if-match", &v2]));
    let e = refused(&fleet(&["rules", "show", "strict"]));
    assert!(e.contains("404"), "{e}");
    // Carriers are changed with an admin token only.
    let va = version(&ok(&fleet(&["carriers", "show", "carrier-a"])));
    let e = refused(&fleet(&[
        "carriers",
        "delete",
        "carrier-a",
        "--if-match",
        &va,
    ]));
    assert!(e.contains("403"), "{e}");
    let e = refused(&fleet(&["groups", "delete", "meters", "--if-match", "zz"]));
    assert!(e.contains("not a version"), "{e}");

    let device = write(
        dir.path(),
        "device.json",
        &format!(
            r#"{{"eid": "{EID}", "group": "meters", "vendor": "acme", "model": "m1",
                "firmware": "1.0.0", "capabilities": {{"sgp32_version": [1, 2, 0]}}}}"#
        ),
    );
    let added = ok(&fleet(&["devices", "add", &device]));
    assert!(added.contains("carrier-a/iot@1"), "{added}");
    let again = refused(&fleet(&["devices", "add", &device]));
    assert!(
        again.contains("409") && again.contains("already registered"),
        "{again}"
    );
    let listed = ok(&fleet(&["devices", "list", "--limit", "5"]));
    assert!(listed.contains(EID), "{listed}");
    let shown = ok(&fleet(&["devices", "show", EID]));
    assert!(shown.contains("\"group\": \"meters\""), "{shown}");

    let rollout = write(
        dir.path(),
        "rollout.json",
        r#"{"name": "restage", "change": {"kind": "rule", "rule": "default"}, "manual_approval": true}"#,
    );
    let created = ok(&fleet(&["rollouts", "create", &rollout]));
    assert!(created.contains("\"id\": 1"), "{created}");
    // Its canary wave runs (the device is still being provisioned, so no
    // gate passes): pause and resume move it, approve has nothing to
    // approve, each state shows, and each command is in the decision log.
    let state = |out: &str| {
        serde_json::from_str::<serde_json::Value>(out).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state(&ok(&fleet(&["rollouts", "pause", "1"]))), "paused");
    assert_eq!(state(&ok(&fleet(&["rollouts", "show", "1"]))), "paused");
    let e = refused(&fleet(&["rollouts", "pause", "1"]));
    assert!(e.contains("409") && e.contains("paused"), "{e}");
    assert_eq!(state(&ok(&fleet(&["rollouts", "resume", "1"]))), "running");
    let e = refused(&fleet(&["rollouts", "approve", "1"]));
    assert!(
        e.contains("409") && e.contains("cannot approve while running"),
        "{e}"
    );
    let e = refused(&fleet(&["rollouts", "pause", "7"]));
    assert!(e.contains("404"), "{e}");
    let e = refused(&fleet(&["rollouts", "resume", "x"]));
    assert!(e.contains("invalid value"), "{e}");
    let aborted = ok(&fleet(&["rollouts", "abort", "1"]));
    assert!(aborted.contains("aborted"), "{aborted}");
    let e = refused(&fleet(&["rollouts", "resume", "1"]));
    assert!(e.contains("409") && e.contains("aborted"), "{e}");
    let log = ok(&fleet(&["decisions", "--rollout", "1"]));
    for state in ["paused", "running", "aborted"] {
        assert!(
            log.contains(&format!("\"state\": \"{state}\"")),
            "{state}: {log}"
        );
    }
    let decisions = ok(&fleet(&["decisions", "--device", EID]));
    assert!(decisions.contains("es2.downloadOrder"), "{decisions}");
    let report = write(
        dir.path(),
        "report.json",
        &format!(
            r#"{{"reports": [{{"device": "{EID}", "kind": {{"type": "handover_failure", "cause": 3}}}}]}}"#
        ),
    );
    assert!(ok(&fleet(&["report", &report])).contains("\"accepted\": 1"));
    ok(&fleet(&["outage", "declare", "--carrier", "carrier-a"]));

    // Garbage: refused with the reason, nothing registered.
    let e = refused(&fleet(&["devices", "show", "nope"]));
    assert!(e.contains("not an EID"), "{e}");
    let e = refused(&fleet(&["outage", "declare", "--carrier", "carrier-z"]));
    assert!(e.contains("carrier-z"), "{e}");
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"name": "x", "change": {"kind": "rule", "rule": "default"}, "colour": 1}"#,
    );
    let e = refused(&fleet(&["rollouts", "create", &bad]));
    assert!(e.contains("400") && e.contains("colour"), "{e}");
    let e = refused(&fleet(&["rollouts", "create", "/nonexistent.json"]));
    assert!(e.contains("cannot read"), "{e}");
    let e = refused(&fleet(&["rollouts", "show", "x"]));
    assert!(e.contains("invalid value"), "{e}");
    let e = refused(&fleet(&[
        "devices",
        "revoke",
        "nope",
        "8944000000000000001",
    ]));
    assert!(e.contains("not an EID"), "{e}");
    let e = refused(&fleet(&["devices", "revoke", EID, "89/../x"]));
    assert!(e.contains("not an ICCID"), "{e}");
    let e = refused(&fleet(&["devices", "revoke", EID, "89440000000000000010"]));
    assert!(e.contains("422") && e.contains("not on device"), "{e}");
    let e = refused(&fleet(&[
        "devices",
        "revoke",
        EID,
        "89440000000000000010",
        "--reuse-policy",
        "forever",
    ]));
    assert!(e.contains("400") && e.contains("reuse_policy"), "{e}");
    let e = refused(&fleet(&[
        "devices",
        "revoke",
        EID,
        "89440000000000000010",
        "--quarantine-seconds",
        "x",
    ]));
    assert!(e.contains("quarantine-seconds"), "{e}");
    let e = refused(
        &ferrosim()
            .args([
                "fleet",
                "--url",
                &url,
                "--token",
                "fsk_forged",
                "--ca",
                ca.to_str().unwrap(),
                "carriers",
            ])
            .output()
            .unwrap(),
    );
    assert!(e.contains("401"), "{e}");
    let e = refused(
        &ferrosim()
            .args([
                "fleet",
                "--url",
                "http://x",
                "--token",
                &token,
                "--ca",
                ca.to_str().unwrap(),
                "carriers",
            ])
            .output()
            .unwrap(),
    );
    assert!(e.contains("https://"), "{e}");
    let listed = ok(&fleet(&["devices", "list"]));
    assert_eq!(listed.matches("\"eid\"").count(), 1, "{listed}");
    drop(server);
}
