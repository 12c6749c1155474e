//! `ferrosim eim` and `ferrosim api-token` on an instance made by `init`:
//! associate a device of the instance's test PKI, queue packages and a
//! download, read the queue, withdraw, mark as emulated, write the
//! AddInitialEim file; tokens created, listed, revoked; bad arguments
//! refused with the rule and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Output;

use ferrosim_asn1::{decode_der, sgp32};
use ferrosim_testkit::cli::{ferrosim_command, output_text as text};
use serde_json::{Value, json};

fn ferrosim(dir: &std::path::Path, args: &[&str]) -> Output {
    ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("running ferrosim")
}

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = ferrosim(dir, args);
    assert!(
        out.status.success(),
        "ferrosim {args:?} failed: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn refused(dir: &std::path::Path, args: &[&str], expected: &str) {
    let out = ferrosim(dir, args);
    let all = text(&out);
    assert!(!out.status.success(), "{args:?} should fail: {all}");
    assert!(!all.contains("panicked"), "{args:?} panicked: {all}");
    assert!(
        all.contains(expected),
        "{args:?}: expected `{expected}` in: {all}"
    );
}

#[test]
fn the_eim_cli_runs_the_operations_of_the_rest_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    refused(&dir, &["eim", "devices"], "no ferrosim instance");
    ok(&dir, &["init", "--smdp-address", "localhost:8443"]);
    let eid = ferrosim_testkit::cli::euicc_eids(&dir.join("pki"))
        .into_iter()
        .next()
        .expect("an eUICC in the test PKI");
    let device = json(
        &dir,
        &[
            "eim",
            "associate",
            "--eid",
            &eid,
            "--association-token",
            "5",
        ],
    );
    assert_eq!(device["eid"], eid.as_str());
    assert_eq!(device["counter"], 0);
    assert_eq!(device["eimId"], "eim.localhost");
    refused(
        &dir,
        &["eim", "associate", "--eid", &eid],
        "already associated",
    );
    let iccid = "89440000000000000010";
    let queued = json(
        &dir,
        &[
            "eim",
            "enable",
            "--eid",
            &eid,
            "--iccid",
            iccid,
            "--rollback",
        ],
    );
    assert_eq!(queued["counter"], 1);
    let queued = json(
        &dir,
        &["eim", "set-fallback", "--eid", &eid, "--iccid", iccid],
    );
    assert_eq!(queued["counter"], 2);
    json(&dir, &["eim", "list-profiles", "--eid", &eid]);
    json(
        &dir,
        &[
            "eim",
            "download",
            "--eid",
            &eid,
            "--activation-code",
            "1$localhost:8443$MATCH-1",
        ],
    );
    json(
        &dir,
        &[
            "eim",
            "data-request",
            "--eid",
            &eid,
            "--item",
            "euicc-info2,certificates",
        ],
    );
    json(&dir, &["eim", "eco", "--eid", &eid, "list-eim"]);
    let queue = json(&dir, &["eim", "queue", "--eid", &eid]);
    let items = queue.as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|i| i["state"] == "queued"));
    let last = items[5]["id"].to_string();
    ok(&dir, &["eim", "withdraw", "--eid", &eid, "--item", &last]);
    assert_eq!(
        json(&dir, &["eim", "queue", "--eid", &eid])
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let marked = json(&dir, &["eim", "emulated", "--eid", &eid, "--set", "on"]);
    assert_eq!(marked["resultsAre"], "unsigned");
    assert_eq!(
        json(&dir, &["eim", "results", "--eid", &eid]),
        Value::Array(vec![])
    );
    let list = json(&dir, &["eim", "devices"]);
    assert_eq!(list["eids"][0], eid.as_str());
    // The AddInitialEim file names this eIM and carries its public key.
    let file = tmp.path().join("first-eim.der");
    ok(
        &dir,
        &[
            "eim",
            "bootstrap",
            "--out",
            file.to_str().unwrap(),
            "--counter",
            "0",
            "--association-token",
            "5",
        ],
    );
    let request: sgp32::AddInitialEimRequest = decode_der(&std::fs::read(&file).unwrap()).unwrap();
    let config = &request.eim_configuration_data_list[0];
    assert_eq!(config.eim_id, "eim.localhost");
    assert_eq!(config.eim_fqdn.as_deref(), Some("localhost:8443"));
    assert!(matches!(
        config.eim_public_key_data,
        Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(_))
    ));
    // Refusals.
    refused(&dir, &["eim", "show", "--eid", "123"], "not an EID");
    refused(
        &dir,
        &[
            "eim",
            "disable",
            "--eid",
            "89049032123451234512345678901234",
            "--iccid",
            "8944000000000000001",
        ],
        "not an EID",
    );
    refused(
        &dir,
        &["eim", "enable", "--eid", &eid, "--iccid", "12x"],
        "not an ICCID",
    );
    refused(
        &dir,
        &[
            "eim",
            "download",
            "--eid",
            &eid,
            "--activation-code",
            "garbage",
        ],
        "activationCode",
    );
    refused(
        &dir,
        &["eim", "data-request", "--eid", &eid, "--item", "everything"],
        "unknown data item",
    );
    refused(
        &dir,
        &["eim", "withdraw", "--eid", &eid, "--item", "999"],
        "no withdrawable",
    );
    refused(
        &dir,
        &["eim", "associate", "--eid", &eid, "--euicc-version", "v3"],
        "v1.2 or v1.0",
    );
    refused(
        &dir,
        &[
            "eim",
            "bootstrap",
            "--out",
            file.to_str().unwrap(),
            "--counter",
            "99999999",
        ],
        "counter",
    );
    // API tokens.
    let created = ok(
        &dir,
        &[
            "api-token",
            "create",
            "--name",
            "ops",
            "--scope",
            "operator",
        ],
    );
    assert!(created.contains("fsk_"), "{created}");
    let id = created.split_whitespace().nth(2).unwrap().to_owned();
    let listed = ok(&dir, &["api-token", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("operator") && !listed.contains("fsk_"),
        "{listed}"
    );
    ok(&dir, &["api-token", "revoke", "--id", &id]);
    assert!(ok(&dir, &["api-token", "list"]).contains("revoked"));
    refused(
        &dir,
        &["api-token", "revoke", "--id", &id],
        "no active API token",
    );
    refused(
        &dir,
        &["api-token", "create", "--name", "x", "--scope", "root"],
        "read-only, operator or admin",
    );
}

/// Garbage in every argument of `ferrosim eim`: each is refused with a
/// message naming what is wrong and a non-zero exit, never a panic, and
/// nothing is queued.
#[test]
fn every_eim_argument_refuses_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    ok(&dir, &["init", "--smdp-address", "localhost:8443"]);
    let eid = ferrosim_testkit::cli::euicc_eids(&dir.join("pki"))
        .into_iter()
        .next()
        .unwrap();
    ok(&dir, &["eim", "associate", "--eid", &eid]);
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, b"\x00\xffnot a certificate").unwrap();
    let junk = junk.to_str().unwrap();
    let missing = tmp.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    // A valid EID with no certificate in the PKI and no association.
    let other = "89049032000000000000000000000066";
    let long_id = "e".repeat(300);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["associate", "--eid", "8904903200000000000000000000001"],
            "EID",
        ),
        (vec!["associate", "--eid", "", "--euicc-cert", junk], "EID"),
        (
            vec!["associate", "--eid", other, "--euicc-cert", junk],
            "certificate",
        ),
        (
            vec!["associate", "--eid", other, "--euicc-cert", missing],
            "missing.pem",
        ),
        (vec!["associate", "--eid", &eid, "--counter", "-1"], "-1"),
        (
            vec!["associate", "--eid", &eid, "--association-token", "x"],
            "association-token",
        ),
        (vec!["devices", "--after", "zz"], "EID"),
        (vec!["devices", "--limit", "0"], "limit"),
        (vec!["devices", "--limit", "many"], "limit"),
        (
            vec!["show", "--eid", "89049032000000000000000000000000"],
            "EID",
        ),
        (vec!["queue", "--eid", "\u{202e}123"], "EID"),
        (vec!["results", "--eid", other], "no association"),
        (vec!["profiles"], "--eid"),
        (vec!["enable", "--eid", &eid, "--iccid", ""], "ICCID"),
        (
            vec!["disable", "--eid", &eid, "--iccid", "894400000000000001"],
            "ICCID",
        ),
        (
            vec!["delete", "--eid", &eid, "--iccid", "89440000000000000011"],
            "ICCID",
        ),
        (
            vec!["set-fallback", "--eid", &eid, "--iccid", "abc"],
            "ICCID",
        ),
        (vec!["unset-fallback", "--eid", other], "no association"),
        (vec!["list-profiles", "--eid", "1"], "EID"),
        (
            vec!["download", "--eid", &eid, "--activation-code", "1$$"],
            "activationCode",
        ),
        (vec!["eco", "--eid", &eid, "add-eim", "--eim-id", ""], "eIM"),
        (
            vec![
                "eco",
                "--eid",
                &eid,
                "add-eim",
                "--eim-id",
                "x",
                "--eim-certificate",
                junk,
            ],
            "certificate",
        ),
        (
            vec![
                "eco",
                "--eid",
                &eid,
                "update-eim",
                "--eim-id",
                "x",
                "--eim-fqdn",
                "not a host",
            ],
            "eIM FQDN",
        ),
        (
            vec!["eco", "--eid", &eid, "delete-eim", "--eim-id", &long_id],
            "eIM",
        ),
        (
            vec!["data-request", "--eid", &eid, "--item", ""],
            "data item",
        ),
        (vec!["withdraw", "--eid", &eid, "--item", "-3"], "item"),
        (vec!["emulated", "--eid", &eid, "--set", "maybe"], "maybe"),
        (
            vec!["bootstrap", "--out", "/nonexistent-dir/x.der"],
            "nonexistent-dir",
        ),
        (
            vec!["bootstrap", "--out", junk, "--association-token", "1e9"],
            "association-token",
        ),
    ];
    let mut wrong = Vec::new();
    for (args, expected) in cases {
        let mut all = vec!["eim"];
        all.extend(args);
        let out = ferrosim(&dir, &all);
        let text = text(&out);
        if out.status.success() || text.contains("panicked") || !text.contains(expected) {
            wrong.push(format!("{all:?} (expected `{expected}`): {text}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n---\n"));
    let device = json(&dir, &["eim", "show", "--eid", &eid]);
    assert_eq!(
        device["queue"].as_array().map(Vec::len),
        Some(0),
        "{device}"
    );
}

#[test]
fn sanitize_release_and_the_report_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inst");
    ok(&dir, &["init", "--smdp-address", "localhost:8443"]);
    let eid = ferrosim_testkit::cli::euicc_eids(&dir.join("pki"))
        .into_iter()
        .next()
        .unwrap();
    ok(&dir, &["eim", "associate", "--eid", &eid]);
    let other = "89049032000000000000000000000066";
    for (args, expected) in [
        (
            vec!["sanitize-report", "--eid", eid.as_str()],
            "no sanitization",
        ),
        (vec!["release", "--eid", eid.as_str()], "no sanitization"),
        (vec!["sanitize", "--eid", "x"], "EID"),
        (vec!["sanitize"], "--eid"),
        (vec!["sanitize", "--eid", other], "no association"),
        (
            vec![
                "sanitize",
                "--eid",
                eid.as_str(),
                "--keep-provisioning-profiles",
                "yes",
            ],
            "yes",
        ),
        (
            vec!["sanitize", "--eid", eid.as_str(), "--wipe-all"],
            "--wipe-all",
        ),
        (vec!["sanitize-report", "--eid", "1"], "EID"),
        (vec!["sanitize-report", "--eid", other], "no association"),
        (vec!["release", "--eid", "\u{202e}1"], "EID"),
        (vec!["release", "--eid", other], "no association"),
    ] {
        let mut all = vec!["eim"];
        all.extend(args);
        refused(&dir, &all, expected);
    }
    json(
        &dir,
        &[
            "eim",
            "download",
            "--eid",
            &eid,
            "--activation-code",
            "1$localhost:8443$ABC",
        ],
    );
    let text = ok(&dir, &["eim", "sanitize", "--eid", &eid]);
    assert!(
        text.contains(&format!("Sanitization of EID {eid}: awaiting-results")),
        "{text}"
    );
    assert!(
        text.contains("undelivered queue items withdrawn: 1"),
        "{text}"
    );
    assert!(text.contains("list-profiles"), "{text}");
    assert!(
        text.contains("Next: the device runs the packages"),
        "{text}"
    );
    refused(&dir, &["eim", "release", "--eid", &eid], "not clean");
    let report = json(&dir, &["eim", "sanitize-report", "--eid", &eid, "--json"]);
    assert_eq!(report["verdict"], "awaiting-results", "{report}");
    assert_eq!(
        report["wiped"]["queueItemsWithdrawn"],
        json!([1]),
        "{report}"
    );
    assert_eq!(report["keepProvisioningProfiles"], false, "{report}");
    let again = json(
        &dir,
        &[
            "eim",
            "sanitize",
            "--eid",
            &eid,
            "--keep-provisioning-profiles",
            "--json",
        ],
    );
    assert_eq!(again["keepProvisioningProfiles"], true, "{again}");
    assert_eq!(
        again["wiped"]["queueItemsWithdrawn"],
        json!([report["wipeItem"], report["eimListItem"]]),
        "an undelivered sanitization is replaced: {again}"
    );
}
