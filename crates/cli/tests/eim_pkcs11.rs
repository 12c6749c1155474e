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

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrosim_pki::load;
use ferrosim_testkit::serve::ServeCommand;
use serde_json::Value;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "ferrosim-eim";
const PIN: &str = "pin-6502-user";
const SO_PIN: &str = "so-pin-6809";
const PIN_ENV: &str = "FERROSIM_PKCS11_PIN";

#[test]
fn serve_signs_eim_packages_with_a_key_in_the_token() {
    if !softhsm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = Runner::new(root);
    softhsm_util(
        &run.softhsm_conf,
        &[
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ],
    );
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
    let eid = std::fs::read_dir(pki.join("eUICC"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".pem")
                .filter(|n| !n.ends_with(".key"))
                .map(str::to_owned)
        })
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

/// Whether SoftHSM2 is installed; without it, fails unless skipping is asked for.
fn softhsm_available() -> bool {
    let util = Command::new("softhsm2-util").arg("--version").output();
    let missing = match (Path::new(MODULE).exists(), util) {
        (true, Ok(out)) if out.status.success() => return true,
        (false, _) => MODULE,
        _ => "softhsm2-util",
    };
    if std::env::var("FERROSIM_SKIP_PKCS11").as_deref() == Ok("1") {
        eprintln!("PKCS#11 eIM test skipped: {missing} missing and FERROSIM_SKIP_PKCS11=1");
        return false;
    }
    panic!(
        "SoftHSM2 is not installed ({missing} missing): install the softhsm2 package, \
         or set FERROSIM_SKIP_PKCS11=1 to skip the PKCS#11 tests"
    );
}

/// Runs the `ferrosim` binary with a clean, private environment.
struct Runner {
    softhsm_conf: PathBuf,
}

impl Runner {
    fn new(root: &Path) -> Self {
        let tokens = root.join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let softhsm_conf = root.join("softhsm2.conf");
        std::fs::write(
            &softhsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        Self { softhsm_conf }
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrosim"));
        cmd.args(args)
            .env("SOFTHSM2_CONF", &self.softhsm_conf)
            .env("RUST_BACKTRACE", "0")
            .env("FERROSIM_LOG", "error");
        for var in ferrosim_testkit::cli::INSTANCE_ENV.iter().chain([&PIN_ENV]) {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    fn output(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("running ferrosim")
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.output(args, env);
        let t = text(&out);
        assert!(out.status.success(), "ferrosim {args:?} failed: {t}");
        t
    }

    /// Fails with `expected` in the message, without panicking.
    fn refused(&self, args: &[&str], env: &[(&str, &str)], expected: &str) {
        let out = self.output(args, env);
        let t = text(&out);
        assert!(!out.status.success(), "ferrosim {args:?} succeeded: {t}");
        assert!(!t.contains("panicked"), "ferrosim {args:?} panicked: {t}");
        assert!(
            t.contains(expected),
            "ferrosim {args:?}: expected `{expected}` in: {t}"
        );
    }
}

fn softhsm_util(conf: &Path, args: &[&str]) {
    let out = Command::new("softhsm2-util")
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("running softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util {args:?} failed: {}",
        text(&out)
    );
}

fn public_key(cert: &Path) -> Vec<u8> {
    load::certificate_from_file(cert)
        .unwrap()
        .public_key_sec1()
        .to_vec()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}
