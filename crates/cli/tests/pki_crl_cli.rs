//! `ferrosim pki revoke`, `pki crl` and the revocation report of `pki
//! verify`, end to end: CRLs from files and fetched from the certificates'
//! distribution points over HTTP (a loopback server serving DIR/CRL), a
//! server that is down, garbage and stale CRLs per policy, partial CRLs, and
//! garbage arguments (clear errors, never a panic).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("FERROSIM_LOG", "error")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    text(o)
}

fn fails(o: &Output) -> String {
    let t = text(o);
    assert!(!o.status.success(), "expected a failure: {t}");
    assert_ne!(o.status.code(), Some(101), "panic: {t}");
    assert!(!t.contains("panicked"), "panic: {t}");
    t
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).to_str().unwrap().to_owned()
}

/// Serves the files of `root` over HTTP/1.0 on 127.0.0.1 (GET /name → root/name).
fn serve_dir(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let name = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let file = root.join(name.trim_start_matches('/'));
            let answer = match std::fs::read(&file) {
                Ok(body) => {
                    let mut a = format!(
                        "HTTP/1.0 200 OK\r\ncontent-type: application/pkix-crl\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    a.extend_from_slice(&body);
                    a
                }
                Err(_) => b"HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&answer);
        }
    });
    base
}

fn first_eids(dir: &Path) -> Vec<String> {
    let mut eids: Vec<String> = std::fs::read_dir(dir.join("eUICC"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".pem") && !n.ends_with(".key.pem"))
        .map(|n| n.trim_end_matches(".pem").to_owned())
        .collect();
    eids.sort();
    eids
}

#[test]
fn revoke_issue_and_verify_with_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();
    ok(&ferrosim(&["pki", "init", "--out", d, "--euiccs", "2"]));
    let eids = first_eids(&dir);
    let (revoked, kept) = (
        p(&dir, &format!("eUICC/{}.pem", eids[0])),
        p(&dir, &format!("eUICC/{}.pem", eids[1])),
    );
    let (ci, eum) = (p(&dir, "CI/ci.pem"), p(&dir, "EUM/eum.pem"));

    // No CRL given: verification says revocation was not checked.
    let t = ok(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--eum", &eum, &revoked,
    ]));
    assert!(t.contains("revocation: not checked"), "{t}");

    let t = ok(&ferrosim(&[
        "pki",
        "revoke",
        "--dir",
        d,
        &revoked,
        "--reason",
        "keyCompromise",
    ]));
    assert!(t.contains("revoked serial"), "{t}");
    assert!(t.contains("EUM CRL 1: 1 revoked"), "{t}");
    let eum_crl = p(&dir, "CRL/eum.crl");
    // Twice: refused.
    let t = fails(&ferrosim(&["pki", "revoke", "--dir", d, &revoked]));
    assert!(t.contains("already revoked"), "{t}");

    let t = fails(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--eum", &eum, "--crl", &eum_crl, &revoked,
    ]));
    assert!(t.contains("was revoked at"), "{t}");
    assert!(t.contains("keyCompromise"), "{t}");
    let t = ok(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--eum", &eum, "--crl", &eum_crl, &kept,
    ]));
    assert!(
        t.contains("eUICC revocation: not revoked (CRL 1 of the EUM"),
        "{t}"
    );
    // The EUM's own status: no CI CRL given.
    assert!(t.contains("EUM revocation: not checked"), "{t}");

    // The CI revokes DPauth; the CI CRL and the EUM CRL together.
    let dpauth = p(&dir, "DPauth/dpauth.pem");
    ok(&ferrosim(&[
        "pki",
        "revoke",
        "--dir",
        d,
        &dpauth,
        "--at",
        "2026-01-02",
    ]));
    let ci_crl = p(&dir, "CRL/ci.crl");
    let t = fails(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--crl", &ci_crl, &dpauth,
    ]));
    assert!(t.contains("DPauth certificate"), "{t}");
    assert!(t.contains("revoked at 2026-01-02T00:00:00Z"), "{t}");
    let t = ok(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--eum", &eum, "--crl", &ci_crl, "--crl", &eum_crl, &kept,
    ]));
    assert!(
        t.contains("EUM revocation: not revoked (CRL 1 of the CI"),
        "{t}"
    );

    // pki crl issues the next numbers; pki show prints a CRL.
    let t = ok(&ferrosim(&["pki", "crl", "--dir", d]));
    assert!(t.contains("CI CRL 2: 1 revoked"), "{t}");
    assert!(t.contains("EUM CRL 2: 1 revoked"), "{t}");
    let t = ok(&ferrosim(&["pki", "show", &eum_crl]));
    assert!(t.contains("CRL number:       2"), "{t}");
    assert!(t.contains("keyCompromise"), "{t}");

    // A stale CRL: refused by default, accepted with a warning on request.
    let t = fails(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--crl",
        &ci_crl,
        "--at",
        &later_than_next_update(),
        &p(&dir, "DPpb/dppb.pem"),
    ]));
    assert!(t.contains("stale"), "{t}");
    let t = ok(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--crl",
        &ci_crl,
        "--stale",
        "warn",
        "--at",
        &later_than_next_update(),
        &p(&dir, "DPpb/dppb.pem"),
    ]));
    assert!(t.contains("warning"), "{t}");
    assert!(t.contains("stale"), "{t}");

    // Partial CRLs: one part alone leaves the status unknown; both verify.
    ok(&ferrosim(&[
        "pki", "crl", "--dir", d, "--issuer", "ci", "--parts", "2",
    ]));
    let (part1, part2) = (p(&dir, "CRL/ci.part1.crl"), p(&dir, "CRL/ci.part2.crl"));
    let dppb = p(&dir, "DPpb/dppb.pem");
    let t = fails(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--crl", &part1, &dppb,
    ]));
    assert!(t.contains("lacks parts [2]"), "{t}");
    ok(&ferrosim(&[
        "pki", "verify", "--ci", &ci, "--crl", &part1, "--crl", &part2, &dppb,
    ]));
}

/// Ten days from now: past the 7-day nextUpdate of the CRLs issued above.
fn later_than_next_update() -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(10 * 86_400);
    ferrosim_pki::format_time(t)
}

#[test]
fn distribution_points_are_fetched_and_failures_follow_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();
    let base = serve_dir(dir.join("CRL"));
    let t = ok(&ferrosim(&[
        "pki",
        "init",
        "--out",
        d,
        "--crl-base-url",
        &base,
    ]));
    assert!(t.contains(&format!("{base}/ci.crl")), "{t}");
    let eid = first_eids(&dir).remove(0);
    let euicc = p(&dir, &format!("eUICC/{eid}.pem"));
    let (ci, eum) = (p(&dir, "CI/ci.pem"), p(&dir, "EUM/eum.pem"));

    // Nothing published yet (404): refused by default, a warning on request.
    let t = fails(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--eum",
        &eum,
        "--fetch-crls",
        &euicc,
    ]));
    assert!(t.contains("404"), "{t}");
    let t = ok(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--eum",
        &eum,
        "--fetch-crls",
        "--stale",
        "warn",
        &euicc,
    ]));
    assert!(t.contains("warning"), "{t}");

    // Published: fetched and checked, both levels.
    ok(&ferrosim(&["pki", "crl", "--dir", d]));
    let t = ok(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--eum",
        &eum,
        "--fetch-crls",
        &euicc,
    ]));
    assert!(
        t.contains("EUM revocation: not revoked (CRL 1 of the CI"),
        "{t}"
    );
    assert!(
        t.contains("eUICC revocation: not revoked (CRL 1 of the EUM"),
        "{t}"
    );
    ok(&ferrosim(&["pki", "revoke", "--dir", d, &euicc]));
    let t = fails(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--eum",
        &eum,
        "--fetch-crls",
        &euicc,
    ]));
    assert!(t.contains("eUICC certificate"), "{t}");
    assert!(t.contains("was revoked"), "{t}");

    // Garbage at the distribution point.
    std::fs::write(dir.join("CRL/eum.crl"), b"<html>maintenance</html>").unwrap();
    let t = fails(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--eum",
        &eum,
        "--fetch-crls",
        &euicc,
    ]));
    assert!(t.contains("malformed CRL"), "{t}");
}

#[test]
fn server_down_is_a_clear_failure_or_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    ok(&ferrosim(&[
        "pki",
        "init",
        "--out",
        d,
        "--crl-base-url",
        &format!("http://{closed}/crl/"),
    ]));
    let ci = p(&dir, "CI/ci.pem");
    let dpauth = p(&dir, "DPauth/dpauth.pem");
    let t = ok(&ferrosim(&["pki", "show", &dpauth]));
    assert!(
        t.contains(&format!("CRL dist. points: http://{closed}/crl/ci.crl")),
        "{t}"
    );
    let t = fails(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--fetch-crls",
        &dpauth,
    ]));
    assert!(t.contains("cannot connect"), "{t}");
    let t = ok(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--fetch-crls",
        "--stale",
        "warn",
        &dpauth,
    ]));
    assert!(t.contains("cannot connect"), "{t}");
}

#[test]
fn garbage_arguments_and_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();
    ok(&ferrosim(&["pki", "init", "--out", d]));
    let other = tmp.path().join("other");
    ok(&ferrosim(&[
        "pki",
        "init",
        "--out",
        other.to_str().unwrap(),
    ]));
    let ci = p(&dir, "CI/ci.pem");
    let garbage = tmp.path().join("garbage.crl");
    std::fs::write(&garbage, b"\x30\x03\x02\x01\x00 not a CRL").unwrap();
    let g = garbage.to_str().unwrap();

    for (args, expect) in [
        (
            vec![
                "pki", "revoke", "--dir", d, "--serial", "zz", "--issuer", "ci",
            ],
            "not hex",
        ),
        (
            vec!["pki", "revoke", "--dir", d, "--serial", "01"],
            "--issuer",
        ),
        (
            vec![
                "pki", "revoke", "--dir", d, "--serial", "01", "--issuer", "bank",
            ],
            "ci or eum",
        ),
        (
            vec!["pki", "revoke", "--dir", d, &ci],
            "CI certificate is not revoked",
        ),
        (
            vec![
                "pki",
                "revoke",
                "--dir",
                d,
                &p(&dir, "DPpb/dppb.pem"),
                "--reason",
                "stolen",
            ],
            "expected one of",
        ),
        (
            vec!["pki", "revoke", "--dir", d, &p(&other, "DPpb/dppb.pem")],
            "revoking",
        ),
        (vec!["pki", "revoke", "--dir", d, g], "reading certificate"),
        (vec!["pki", "revoke", "--dir", d], "required"),
        (
            vec!["pki", "crl", "--dir", &p(tmp.path(), "nowhere")],
            "reading the CI",
        ),
        (vec!["pki", "crl", "--dir", d, "--parts", "0"], "parts"),
        (vec!["pki", "crl", "--dir", d, "--out", g], "--issuer"),
        (
            vec![
                "pki",
                "verify",
                "--ci",
                &ci,
                "--crl",
                g,
                &p(&dir, "DPpb/dppb.pem"),
            ],
            "loading CRL",
        ),
        (
            vec![
                "pki",
                "verify",
                "--ci",
                &ci,
                "--stale",
                "maybe",
                &p(&dir, "DPpb/dppb.pem"),
            ],
            "refuse or warn",
        ),
        (
            vec![
                "pki",
                "init",
                "--out",
                &p(tmp.path(), "x"),
                "--crl-base-url",
                "ftp://a",
            ],
            "http",
        ),
        (vec!["pki", "show", g], "reading certificate"),
    ] {
        let t = fails(&ferrosim(&args));
        assert!(t.contains(expect), "{args:?}: expected {expect:?} in {t}");
    }
    // A CRL of another hierarchy's CI is not used, and the output says so.
    ok(&ferrosim(&[
        "pki",
        "crl",
        "--dir",
        other.to_str().unwrap(),
        "--issuer",
        "ci",
    ]));
    let t = ok(&ferrosim(&[
        "pki",
        "verify",
        "--ci",
        &ci,
        "--crl",
        &p(&other, "CRL/ci.crl"),
        &p(&dir, "DPpb/dppb.pem"),
    ]));
    assert!(t.contains("not used"), "{t}");
    assert!(t.contains("revocation: not checked"), "{t}");
    // The register was never corrupted by the failures above.
    ok(&ferrosim(&[
        "pki", "revoke", "--dir", d, "--serial", "01", "--issuer", "ci",
    ]));
    let t = ok(&ferrosim(&["pki", "crl", "--dir", d, "--issuer", "ci"]));
    assert!(t.contains("CI CRL 2: 1 revoked"), "{t}");
}
