//! A profile download whose DPauth and DPpb signatures come from keys inside
//! a SoftHSM2 token, verified by the virtual eUICC — all through the
//! `ferrosim` binary as an operator runs it:
//!
//! 1. a SoftHSM2 token in a private directory (`SOFTHSM2_CONF` is given to
//!    each child process; this crate forbids `unsafe`, so it never sets its
//!    own environment);
//! 2. `ferrosim pki init`, then `ferrosim pki token-keys`: key pairs generated
//!    in the token, certificates issued for them, software keys removed;
//! 3. `ferrosim serve` with the printed `[pkcs11]` configuration;
//! 4. operator, profile type, profiles and an order through the CLI;
//! 5. `ferrosim lpa` downloads over HTTPS onto a virtual eUICC, which checks
//!    serverSigned1 against CERT.DPauth and smdpSigned2 and the BPP against
//!    CERT.DPpb. Those certificates carry the token's public keys and no file
//!    holds a matching private key, so only the token could have signed.
//!
//! Afterwards: the profile is installed, the order is `installed`, no file
//! holds the DPauth or DPpb private key, and neither the server's log nor
//! any file contains the PIN.
//!
//! Without SoftHSM2 (`/usr/lib/softhsm/libsofthsm2.so`, `softhsm2-util`) the
//! test fails with a clear message, unless `FERROSIM_SKIP_PKCS11=1` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ferrosim_crypto::KeySource;
use ferrosim_pki::load;
use ferrosim_testkit::cli::output_text;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::softhsm::{self, MODULE, PIN_ENV, Runner};

const TOKEN: &str = "ferrosim";
const PIN: &str = "pin-5150-user";
const SO_PIN: &str = "so-pin-8086";
const PACKAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der"
);

#[test]
fn download_signed_by_softhsm_token_keys() {
    if !softhsm::available("PKCS#11 download test") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = Runner::new(env!("CARGO_BIN_EXE_ferrosim"), root);
    run.init_token(TOKEN, SO_PIN, PIN);

    // A test PKI whose TLS certificate names the loopback host.
    let pki = root.join("pki");
    let out = run.ok(
        &[
            "pki",
            "init",
            "--out",
            s(&pki),
            "--smdp-address",
            "localhost",
        ],
        &[],
    );
    assert!(out.contains("eUICCs:         1"), "{out}");
    let dpauth_cert = pki.join("DPauth/dpauth.pem");
    let dppb_cert = pki.join("DPpb/dppb.pem");
    let software_dpauth = public_key(&dpauth_cert);

    // Refusals leave the directory as it was.
    let token_keys = [
        "pki",
        "token-keys",
        "--pki",
        s(&pki),
        "--module",
        MODULE,
        "--token",
        TOKEN,
    ];
    run.refused(&token_keys, &[], PIN_ENV);
    run.refused(&token_keys, &[(PIN_ENV, "not-the-pin")], "PIN is incorrect");
    run.refused(
        &[&token_keys[..], &["--dppb-label", "dpauth"]].concat(),
        &[(PIN_ENV, PIN)],
        "must differ",
    );
    assert!(pki.join("DPauth/dpauth.key.pem").exists());
    assert_eq!(public_key(&dpauth_cert), software_dpauth);

    // The keys move into the token.
    let generated = run.output(&token_keys, &[(PIN_ENV, PIN)]);
    assert!(generated.status.success(), "{}", output_text(&generated));
    let out = String::from_utf8_lossy(&generated.stdout).into_owned();
    assert!(
        out.contains(
            "DPauth key \"dpauth\" generated in token \"ferrosim\" (sensitive, not extractable)"
        ) && out.contains(
            "DPpb key \"dppb\" generated in token \"ferrosim\" (sensitive, not extractable)"
        ),
        "{out}"
    );
    let token_publics: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("public key:"))
        .map(|k| k.trim().to_owned())
        .collect();
    assert_eq!(token_publics.len(), 2, "{out}");
    let dpauth_public = public_key(&dpauth_cert);
    let dppb_public = public_key(&dppb_cert);
    assert_eq!(hex_upper(&dpauth_public), token_publics[0]);
    assert_eq!(hex_upper(&dppb_public), token_publics[1]);
    assert_ne!(
        dpauth_public, software_dpauth,
        "the DPauth key was replaced"
    );
    for gone in ["DPauth/dpauth.key.pem", "DPpb/dppb.key.pem"] {
        assert!(!pki.join(gone).exists(), "{gone} is still on disk");
    }
    let cert_before = std::fs::read(&dpauth_cert).unwrap();
    run.refused(
        &token_keys,
        &[(PIN_ENV, PIN)],
        "already holds a key pair labelled \"dpauth\"",
    );
    assert_eq!(std::fs::read(&dpauth_cert).unwrap(), cert_before);
    let ci = pki.join("CI/ci.pem");
    for (cert, role) in [(&dpauth_cert, "DPauth"), (&dppb_cert, "DPpb")] {
        let out = run.ok(&["pki", "verify", "--ci", s(&ci), s(cert)], &[]);
        assert!(out.contains(&format!("OK: {role} certificate")), "{out}");
    }

    // The printed snippet is the configuration the server runs with.
    let snippet = out
        .find("\n[pki]\n")
        .map(|at| &out[at..])
        .expect("a [pki]/[pkcs11] snippet");
    assert!(
        snippet.contains("[pkcs11]") && !snippet.contains(PIN),
        "{snippet}"
    );
    let data = root.join("data");
    let config = root.join("ferrosim.toml");
    std::fs::write(&config, format!("data_dir = '{}'\n\n{snippet}", s(&data))).unwrap();
    let cfg = ["--config", s(&config)];

    let mut server = ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
        .config(&config)
        .env("SOFTHSM2_CONF", &run.softhsm_conf)
        .env(PIN_ENV, PIN)
        .env("FERROSIM_LOG", "debug")
        .spawn()
        .expect("ferrosim serve with keys in the token");
    let address = format!("localhost:{}", server.port());

    run.ok(
        &[&["operator"][..], &cfg, &["add"], &["--id", "acme"]].concat(),
        &[],
    );
    run.ok(
        &[
            &["profile-type"][..],
            &cfg,
            &["import"],
            &["--operator", "acme", "--name", "ts48", "--package", PACKAGE],
            &["--service-provider", "ACME Mobile"],
        ]
        .concat(),
        &[],
    );
    run.ok(
        &[
            &["profiles"][..],
            &cfg,
            &["generate"],
            &["--operator", "acme", "--type", "ts48", "--count", "2"],
            &["--first-iccid", "8944000000000000019"],
            &["--first-imsi", "001-01-0000000001"],
        ]
        .concat(),
        &[],
    );
    let order = [
        &["order"][..],
        &cfg,
        // No --smdp-address: the instance stored it at its first start.
        &["create", "--operator", "acme"],
        &["--type", "ts48"],
    ]
    .concat();
    // Opening the instance needs the token, hence the PIN.
    run.refused(&order, &[], PIN_ENV);
    let out = run.ok(&order, &[(PIN_ENV, PIN)]);
    let iccid = field(&out, "iccid:");
    let code = field(&out, "activation code:");
    assert!(code.contains(&address), "{out}");

    // The device: a virtual eUICC trusting the test CI.
    let state = root.join("euicc.json");
    run.ok(
        &["euicc", "init", "--identity", s(&pki), "--state", s(&state)],
        &[],
    );
    let transport = format!("inprocess:{},{}", s(&state), s(&pki));
    let lpa = ["lpa", "--transport", &transport, "--ca", s(&ci)];
    let out = run.ok(
        &[
            &lpa[..],
            &["profile", "download", "--activation-code", &code],
        ]
        .concat(),
        &[],
    );
    assert!(out.contains(&format!("installed ICCID {iccid}")), "{out}");
    assert!(!out.contains("did not acknowledge"), "{out}");
    let out = run.ok(&[&lpa[..], &["profile", "list"]].concat(), &[]);
    assert!(out.contains(&iccid) && out.contains("ACME Mobile"), "{out}");
    let out = run.ok(
        &[&["order"][..], &cfg, &["show"], &[&iccid]].concat(),
        &[(PIN_ENV, PIN)],
    );
    assert_eq!(field(&out, "state:"), "installed", "{out}");

    server.kill_hard().unwrap();
    let log_text = server.log();
    assert!(
        log_text.contains("DPauth and DPpb keys in PKCS#11 token")
            && log_text.contains("profile installed"),
        "{log_text}"
    );
    assert!(!log_text.contains(PIN), "the server log holds the PIN");

    // No file of ours holds an SM-DP+ signing key or the PIN. The token's
    // own directory is the token, and is not searched.
    let tokens = root.join("tokens");
    let mut private_keys = 0;
    for file in files_under(root) {
        if file.starts_with(&tokens) {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, PIN.as_bytes()),
            "{} holds the PIN",
            file.display()
        );
        if let Ok(key) = load::key_from_bytes(&bytes) {
            private_keys += 1;
            let public = key.public_key_sec1();
            assert!(
                public != dpauth_public.as_slice() && public != dppb_public.as_slice(),
                "{} holds an SM-DP+ signing key",
                file.display()
            );
        }
    }
    // CI, EUM, DPtls, eUICC and the eIM key `serve` generated at first start
    // (in software: only DPauth/DPpb were moved to the token) stay: the
    // search did see key files.
    assert_eq!(private_keys, 5);
}

fn public_key(cert: &Path) -> Vec<u8> {
    load::certificate_from_file(cert)
        .unwrap()
        .public_key_sec1()
        .to_vec()
}

/// The value after `name` on the first line starting with it.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no `{name}` in: {out}"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}
