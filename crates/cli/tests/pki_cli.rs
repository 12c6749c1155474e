//! `ferrosim pki` end to end: init writes a hierarchy that show and verify accept,
//! tampered or mismatched input fails with the named reason, garbage arguments
//! give clear errors (never a panic).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("FERROSIM_LOG", "error")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_no_panic(o: &Output) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_ne!(
        o.status.code(),
        Some(101),
        "exit code 101 is a panic: {err}"
    );
}

fn init(dir: &Path, extra: &[&str]) -> Output {
    let out = dir.to_str().unwrap();
    let mut args = vec!["pki", "init", "--out", out];
    args.extend_from_slice(extra);
    ferrosim(&args)
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).to_str().unwrap().to_owned()
}

#[test]
fn init_show_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let o = init(
        &dir,
        &[
            "--euiccs",
            "2",
            "--smdp-address",
            "smdp.test.example",
            "--smdp-oid",
            "1.3.6.1.4.1.99999.7",
            "--eid-prefix",
            "8904903200",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("smdp.test.example"), "{text}");

    let euicc_dir = dir.join("eUICC");
    let mut eids: Vec<String> = std::fs::read_dir(&euicc_dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".pem") && !n.ends_with(".key.pem"))
        .map(|n| n.trim_end_matches(".pem").to_owned())
        .collect();
    eids.sort();
    assert_eq!(eids.len(), 2);
    assert!(
        eids.iter()
            .all(|e| e.starts_with("8904903200") && e.len() == 32)
    );
    assert!(dir.join("README.md").is_file());

    let euicc = p(&dir, &format!("eUICC/{}.pem", eids[0]));
    let o = ferrosim(&["pki", "show", &euicc]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(shown.contains("eUICC (policy 2.23.146.1.2.1.1)"), "{shown}");
    assert!(
        shown.contains(&format!("EID:              {}", eids[0])),
        "{shown}"
    );

    let o = ferrosim(&["pki", "show", &p(&dir, "DPtls/dptls.pem")]);
    let shown = stdout(&o);
    assert!(
        shown.contains("SM-DP+ OID:      1.3.6.1.4.1.99999.7"),
        "{shown}"
    );
    assert!(
        shown.contains("DNS names:        smdp.test.example"),
        "{shown}"
    );
    let o = ferrosim(&["pki", "show", &p(&dir, "EUM/eum.pem")]);
    assert!(
        stdout(&o).contains("EID ranges:       8904903200 (nameConstraints)"),
        "{}",
        stdout(&o)
    );

    let ci = p(&dir, "CI/ci.pem");
    let eum = p(&dir, "EUM/eum.pem");
    let o = ferrosim(&["pki", "verify", "--ci", &ci, "--eum", &eum, &euicc]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("OK: eUICC certificate, EID"),
        "{}",
        stdout(&o)
    );
    for (file, label) in [
        ("DPauth/dpauth.pem", "OK: DPauth"),
        ("DPpb/dppb.pem", "OK: DPpb"),
        ("DPtls/dptls.pem", "OK: DPtls"),
        ("EUM/eum.pem", "OK: EUM"),
        ("CI/ci.pem", "OK: CI"),
    ] {
        let o = ferrosim(&["pki", "verify", "--ci", &ci, &p(&dir, file)]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        assert!(stdout(&o).starts_with(label), "{}", stdout(&o));
    }

    // Expired at a later time, named as such.
    let o = ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--at",
        "2200-01-01",
        &p(&dir, "DPauth/dpauth.pem"),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("the DPauth certificate expired at"),
        "{}",
        stderr(&o)
    );

    // An existing hierarchy is kept unless --force.
    let o = init(&dir, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = init(&dir, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn verify_names_the_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    assert!(init(&a, &[]).status.success());
    assert!(init(&b, &[]).status.success());

    // A certificate from another CI.
    let o = ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &p(&a, "CI/ci.pem"),
        &p(&b, "DPauth/dpauth.pem"),
    ]);
    assert!(!o.status.success());
    assert_no_panic(&o);
    assert!(stderr(&o).contains("unknown CI"), "{}", stderr(&o));

    // A flipped signature byte (DER file).
    let pem = std::fs::read_to_string(a.join("DPpb/dppb.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let last = der.len() - 1;
    der[last] ^= 1;
    let tampered = tmp.path().join("tampered.der");
    std::fs::write(&tampered, &der).unwrap();
    let o = ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &p(&a, "CI/ci.pem"),
        tampered.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bad signature on the DPpb certificate"),
        "{}",
        stderr(&o)
    );

    // An eUICC without its EUM, and with another hierarchy's EUM.
    let euicc = std::fs::read_dir(a.join("eUICC"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_str().unwrap().ends_with(".key.pem"))
        .unwrap();
    let euicc = euicc.to_str().unwrap();
    let o = ferrosim(&["pki", "verify", "--ci", &p(&a, "CI/ci.pem"), euicc]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--eum"), "{}", stderr(&o));
    let o = ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &p(&a, "CI/ci.pem"),
        "--eum",
        &p(&b, "EUM/eum.pem"),
        euicc,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown CI"), "{}", stderr(&o));
}

#[test]
fn garbage_arguments_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    for (args, expect) in [
        (vec!["--euiccs", "many"], "not a number"),
        (vec!["--euiccs", "-1"], ""),
        (vec!["--euiccs", "99999999999999999999999"], "not a number"),
        (vec!["--euiccs", "1000001"], "at most"),
        (vec!["--smdp-address", "bad host!"], "invalid DNS name"),
        (vec!["--smdp-address", ""], "invalid DNS name"),
        (vec!["--smdp-oid", "2.999.x"], "invalid object identifier"),
        (vec!["--smdp-oid", "7.1"], "invalid object identifier"),
        (vec!["--eid-prefix", "89A"], "invalid EID prefix"),
        (vec!["--eid-prefix", &"8".repeat(31)], "invalid EID prefix"),
        (vec!["--validity-days", "0"], ""),
        (vec!["--validity-days", "99999999"], ""),
    ] {
        let o = init(&dir, &args);
        assert!(!o.status.success(), "{args:?} should fail");
        assert_no_panic(&o);
        assert_eq!(
            o.status.code(),
            Some(2),
            "clap usage error for {args:?}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
    }
    // No room in the EID range for that many eUICCs: refused by the generator.
    let o = init(&dir, &["--eid-prefix", &"8".repeat(29), "--euiccs", "11"]);
    assert!(!o.status.success());
    assert_no_panic(&o);
    assert!(stderr(&o).contains("no room"), "{}", stderr(&o));

    // Files that are not certificates, or missing.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, b"\x00\x01garbage").unwrap();
    let junk = junk.to_str().unwrap();
    for args in [
        vec!["pki", "show", junk],
        vec!["pki", "show", "/nonexistent/cert.pem"],
        vec!["pki", "verify", "--ci", junk, junk],
        vec!["pki", "verify", "--ci", "/nonexistent/ci.pem", junk],
        vec!["pki", "verify", "--ci", junk, "--at", "yesterday", junk],
        vec!["pki", "verify", junk],
    ] {
        let o = ferrosim(&args);
        assert!(!o.status.success(), "{args:?}");
        assert_no_panic(&o);
        assert!(!stderr(&o).is_empty(), "{args:?} explains itself");
    }
}
