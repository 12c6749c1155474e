//! The eIM's key inside a SoftHSM2 token (`[eim] pkcs11_label`), all
//! through the `ferrosim` binary: `ferrosim eim key-generate` makes the key
//! pair in the token (sensitive, not extractable; refused without the PIN,
//! for a label already taken, and once the eIM has a certificate); `serve`
//! issues the eIM certificate for the token's key on its first start and
//! writes no eIM key file; `eim bootstrap` gives a virtual IoT eUICC that
//! public key; the real IPA (`ferrosim ipa poll`) runs a package `serve`
//! signed with the token's key over loopback HTTPS, the eUICC verifies the
//! eIM signature, and the eIM stores the eUICC's verified result. No PIN in
//! the server's log.
//!
//! Without SoftHSM2 (`/usr/lib/softhsm/libsofthsm2.so`, `softhsm2-util`) the
//! test fails with a clear message, unless `FERROSIM_SKIP_PKCS11=1` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use ferrosim_pki::load;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::softhsm::{self, MODULE, PIN_ENV, Runner};
use serde_json::Value;

const TOKEN: &str = "ferrosim-eim";
const PIN: &str = "pin-6502-user";
const SO_PIN: &str = "so-pin-6809";

#[test]
fn serve_signs_eim_packages_with_a_key_in_the_token() {
    if !softhsm::available("PKCS#11 eIM test") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = Runner::new(env!("CARGO_BIN_EXE_ferrosim"), root);
    run.init_token(TOKEN, SO_PIN, PIN);
    let pin = [(PIN_ENV, PIN)];

    // A PKI whose DPauth/DPpb keys live in the token (what `[pkcs11]` means).
    let pki = root.join("pki");
    run.ok(
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
    let out = run.ok(
        &[
            "pki",
            "token-keys",
            "--pki",
            s(&pki),
            "--module",
            MODULE,
            "--token",
            TOKEN,
        ],
        &pin,
    );
    let snippet = out
        .find("\n[pki]\n")
        .map(|at| &out[at..])
        .expect("a [pki]/[pkcs11] snippet");
    let data = root.join("data");
    let config = root.join("ferrosim.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = '{}'\n\n{snippet}\n[eim]\npkcs11_label = \"eim\"\n",
            s(&data)
        ),
    )
    .unwrap();
    let cfg = ["--config", s(&config)];
    let with = |args: &[&'static str]| -> Vec<String> {
        let mut all = vec!["eim".to_owned()];
        all.extend(cfg.iter().map(|a| (*a).to_owned()));
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };
    let key_generate = with(&["key-generate"]);
    let key_generate: Vec<&str> = key_generate.iter().map(String::as_str).collect();

    // The eIM key pair, made in the token.
    run.refused(&key_generate, &[], PIN_ENV);
    let out = run.ok(&key_generate, &pin);
    assert!(
        out.contains(
            "eIM key \"eim\" generated in token \"ferrosim-eim\" (sensitive, not extractable)"
        ),
        "{out}"
    );
    let token_public = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("public key:"))
        .map(|k| k.trim().to_owned())
        .expect("the public key");
    run.refused(
        &key_generate,
        &pin,
        "already holds a key pair labelled \"eim\"",
    );

    // serve issues the eIM certificate for the token's key.
    let mut server = ServeCommand::new(env!("CARGO_BIN_EXE_ferrosim"))
        .config(&config)
        .env("SOFTHSM2_CONF", &run.softhsm_conf)
        .env(PIN_ENV, PIN)
        .spawn()
        .expect("ferrosim serve with the eIM key in the token");
    let eim_cert = pki.join("eIM/eim.pem");
    assert_eq!(
        hex::encode(public_key(&eim_cert)),
        token_public,
        "the eIM certificate carries the token's key"
    );
    assert!(!pki.join("eIM/eim.key.pem").exists(), "an eIM key file");
    run.refused(&key_generate, &pin, "already has a certificate");

    // A virtual IoT eUICC given this eIM, associated, one package queued.
    let eid = ferrosim_testkit::cli::euicc_eids(&pki)
        .into_iter()
        .next()
        .expect("an eUICC in the PKI");
    let first_eim = root.join("first-eim.der");
    let args = with(&["bootstrap", "--association-token", "7", "--out"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push(s(&first_eim));
    run.ok(&args, &pin);
    let state = root.join("euicc.json");
    let ipa_state = root.join("ipa.json");
    run.ok(
        &[
            "euicc",
            "init",
            "--identity",
            s(&pki),
            "--eid",
            &eid,
            "--state",
            s(&state),
        ],
        &[],
    );
    let device = [
        "ipa",
        "--euicc-state",
        s(&state),
        "--identity",
        s(&pki),
        "--eid",
        &eid,
    ];
    let out = run.ok(
        &[&device[..], &["add-initial-eim", "--file", s(&first_eim)]].concat(),
        &[],
    );
    assert!(out.contains("initial eIM added"), "{out}");
    let eim = |more: &[&str]| -> Vec<String> {
        let mut all = vec!["eim".to_owned()];
        all.extend(cfg.iter().map(|a| (*a).to_owned()));
        all.extend(more.iter().map(|a| (*a).to_owned()));
        all
    };
    let call = |args: Vec<String>| -> String {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run.ok(&args, &pin)
    };
    call(eim(&[
        "associate",
        "--eid",
        &eid,
        "--association-token",
        "7",
    ]));
    call(eim(&["list-profiles", "--eid", &eid]));

    // The IPA runs it: the eUICC verified the token's signature.
    let address = format!("localhost:{}", server.port());
    let ci = pki.join("CI/ci.pem");
    let out = run.ok(
        &[
            &device[..],
            &[
                "poll",
                "--eim",
                &address,
                "--ca",
                s(&ci),
                "--state",
                s(&ipa_state),
            ],
        ]
        .concat(),
        &[],
    );
    let session: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(session["error"], Value::Null, "{session}");
    assert_eq!(session["items"].as_array().unwrap().len(), 1, "{session}");
    assert!(
        session["items"][0]["package"]["outcome"]["executed"].is_object(),
        "the eUICC ran the package (it refuses a bad eIM signature): {session}"
    );
    let results: Value = serde_json::from_str(&call(eim(&["results", "--eid", &eid]))).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["trust"], "verified", "{results:?}");
    assert_eq!(results[0]["outcome"]["outcome"], "executed", "{results:?}");

    server.kill_hard().unwrap();
    assert!(!server.log().contains(PIN), "the server log holds the PIN");
}

fn public_key(cert: &Path) -> Vec<u8> {
    load::certificate_from_file(cert)
        .unwrap()
        .public_key_sec1()
        .to_vec()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}
