//! `ferrosim ipa` end to end over loopback HTTPS, for each ESipa binding: a
//! virtual IoT device gets its first eIM (`ipa add-initial-eim`), is
//! associated with the eIM of a running server (REST API), a download
//! trigger installs a profile from ferrosim's SM-DP+ directly (`ipa poll`),
//! the operator's enable with rollback / list / set-fallback / disable /
//! delete run in the next poll with every result verified at the eIM and
//! the device's profile states reported, and a second trigger installs
//! through the eIM relay (`--download via-eim`); both orders end
//! `installed`. Bad arguments are refused with the rule.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_testkit::cli::{ferrosim_command, output_text as text};
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use serde_json::{Value, json};

use common::eim_lab::EimLab;
use common::{ferrosim, ok, path, refused};

const EIM_ID: &str = "eim.ipa-cli.test";
const TOKEN: i64 = 0x1F;

#[tokio::test(flavor = "multi_thread")]
async fn ipa_poll_runs_the_eims_queue_over_both_bindings() {
    let lab = EimLab::start(EIM_ID, TOKEN).await;
    let first_eim = lab.add_initial_eim();
    for (n, binding) in ["asn1", "json"].into_iter().enumerate() {
        let card = lab.euicc_init(n, &format!("euicc-{binding}.json"));
        let eid = card.eid.clone();
        let ipa_state = lab.dir.path().join(format!("ipa-{binding}.json"));
        let device = card.args();
        let with = |more: &[&'static str]| -> Vec<String> {
            device
                .iter()
                .map(|s| s.to_string())
                .chain(more.iter().map(|s| s.to_string()))
                .collect()
        };
        let run = |args: Vec<String>| -> Value {
            let args: Vec<&str> = ["ipa"]
                .into_iter()
                .chain(args.iter().map(String::as_str))
                .collect();
            serde_json::from_str(&ok(&args)).unwrap()
        };
        assert!(
            card.add_initial_eim(&first_eim)
                .contains("initial eIM added")
        );
        lab.associate_ok(n).await;
        let poll = |download: &'static str| -> Vec<String> {
            let mut args = with(&["poll", "--eim"]);
            args.push(lab.eim_address.clone());
            args.extend(
                [
                    "--binding",
                    binding,
                    "--ca",
                    path(&lab.ca),
                    "--state",
                    path(&ipa_state),
                ]
                .map(String::from),
            );
            args.extend(["--download", download, "--rplmn", "26201"].map(String::from));
            args
        };

        // A download trigger, carried out directly.
        let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
        let code = format!("1${}${matching_id}", lab.smdp.address);
        lab.queue_ok(
            &eid,
            json!({"operation": "download", "activationCode": code}),
        )
        .await;
        let session = run(poll("direct"));
        assert_eq!(session["error"], Value::Null, "{session}");
        assert_eq!(
            session["items"][0]["download"]["installed"],
            iccid.as_str(),
            "{session}"
        );
        assert_eq!(session["pending"], 0);
        assert_eq!(
            lab.order_state(&iccid).await,
            OrderState::Installed,
            "{binding}: direct"
        );

        // The operator's PSMOs.
        for op in [
            json!({"operation": "enable", "iccid": iccid, "rollback": true}),
            json!({"operation": "list-profiles"}),
            json!({"operation": "set-fallback", "iccid": iccid}),
            json!({"operation": "disable", "iccid": iccid}),
            json!({"operation": "delete", "iccid": iccid}),
        ] {
            lab.queue_ok(&eid, op).await;
        }
        let session = run(poll("direct"));
        assert_eq!(session["error"], Value::Null, "{session}");
        let items = session["items"].as_array().unwrap();
        assert_eq!(items.len(), 5, "{session}");
        assert_eq!(
            session["acknowledged"].as_array().unwrap().len(),
            5,
            "{session}"
        );
        // enable (0 = ok), listProfileInfo (a list), then what the eUICC does today.
        assert_eq!(
            items[0]["package"]["outcome"]["executed"]["codes"],
            json!([0])
        );
        let (_, results) = lab
            .rest("GET", &format!("/api/v1/eim/devices/{eid}/results"), None)
            .await;
        let results = results.as_array().unwrap();
        assert_eq!(
            results.len(),
            6,
            "{binding}: the trigger and five packages, each once"
        );
        assert!(
            results[1..]
                .iter()
                .all(|r| r["trust"] == "verified" && r["outcome"]["outcome"] == "executed"),
            "{results:?}"
        );
        let (_, device) = lab
            .rest("GET", &format!("/api/v1/eim/devices/{eid}"), None)
            .await;
        assert_eq!(device["queue"].as_array().unwrap().len(), 0, "{device}");
        let (_, profiles) = lab
            .rest("GET", &format!("/api/v1/eim/devices/{eid}/profiles"), None)
            .await;
        assert_eq!(
            profiles["profiles"],
            json!([]),
            "the profile was deleted: {profiles}"
        );

        // A second trigger, through the eIM relay.
        let (iccid2, matching_id) = lab.smdp.order(None, None).await.unwrap();
        let code = format!("1${}${matching_id}", lab.smdp.address);
        lab.queue_ok(
            &eid,
            json!({"operation": "download", "activationCode": code}),
        )
        .await;
        let session = run(poll("via-eim"));
        assert_eq!(session["error"], Value::Null, "{session}");
        assert_eq!(
            session["items"][0]["download"]["installed"],
            iccid2.as_str(),
            "{session}"
        );
        assert_eq!(
            lab.order_state(&iccid2).await,
            OrderState::Installed,
            "{binding}: via the eIM"
        );

        // Its state as the eUICC reports it: enabled, after an enable and a listing.
        lab.queue_ok(&eid, json!({"operation": "enable", "iccid": iccid2}))
            .await;
        lab.queue_ok(&eid, json!({"operation": "list-profiles"}))
            .await;
        let session = run(poll("direct"));
        assert_eq!(session["items"].as_array().unwrap().len(), 2, "{session}");
        let (_, profiles) = lab
            .rest("GET", &format!("/api/v1/eim/devices/{eid}/profiles"), None)
            .await;
        let listed = profiles["profiles"].as_array().unwrap();
        assert!(
            listed.len() == 1
                && listed[0]["iccid"] == iccid2.as_str()
                && listed[0]["enabled"] == true,
            "{profiles}"
        );

        // Nothing left: a session that runs nothing.
        let session = run(poll("direct"));
        assert_eq!(session["items"], json!([]));
        assert_eq!(session["error"], Value::Null);
    }
}

/// A ProfileRollback the device runs on its own reaches the eIM, for each
/// binding: after an enable with rollback run through the eIM (two
/// profiles downloaded, the first enabled, then the second with rollback),
/// `ferrosim ipa rollback` returns the eUICC to the first profile and keeps
/// its signed result; the next `ipa poll` delivers it, the eIM verifies and
/// stores it (kind `rollback`, with the enabling package's counter) and
/// acknowledges it, and its view of the profiles goes back. The rollback is
/// then no longer possible on the eUICC.
#[tokio::test(flavor = "multi_thread")]
async fn a_local_rollback_result_is_verified_and_stored_by_the_eim() {
    let lab = EimLab::start(EIM_ID, TOKEN).await;
    let first_eim = lab.add_initial_eim();
    for (n, binding) in ["asn1", "json"].into_iter().enumerate() {
        let eid = lab.eid(n);
        let euicc_state = lab
            .dir
            .path()
            .join(format!("rollback-euicc-{binding}.json"));
        let ipa_state = lab.dir.path().join(format!("rollback-ipa-{binding}.json"));
        let identity = path(&lab.smdp.pki_dir).to_owned();
        ok(&[
            "euicc",
            "init",
            "--identity",
            &identity,
            "--eid",
            &eid,
            "--state",
            path(&euicc_state),
        ]);
        let ipa = |more: &[&str]| -> Value {
            let mut args = vec![
                "ipa",
                "--euicc-state",
                path(&euicc_state),
                "--identity",
                &identity,
                "--eid",
                &eid,
            ];
            args.extend_from_slice(more);
            let out = ferrosim(&args);
            assert!(out.status.success(), "{more:?}: {}", text(&out));
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
        };
        ipa(&["add-initial-eim", "--file", path(&first_eim)]);
        lab.associate_ok(n).await;
        let (p1, m1) = lab.smdp.order(None, None).await.unwrap();
        let (p2, m2) = lab.smdp.order(None, None).await.unwrap();
        for matching_id in [m1, m2] {
            let code = format!("1${}${matching_id}", lab.smdp.address);
            lab.queue_ok(
                &eid,
                json!({"operation": "download", "activationCode": code}),
            )
            .await;
        }
        lab.queue_ok(&eid, json!({"operation": "enable", "iccid": p1}))
            .await;
        lab.queue_ok(
            &eid,
            json!({"operation": "enable", "iccid": p2, "rollback": true}),
        )
        .await;
        let ca = path(&lab.ca).to_owned();
        let poll = [
            "poll",
            "--eim",
            &lab.eim_address,
            "--binding",
            binding,
            "--ca",
            &ca,
            "--state",
            path(&ipa_state),
        ];
        let session = ipa(&poll);
        assert_eq!(session["error"], Value::Null, "{session}");
        let items = session["items"].as_array().unwrap();
        assert_eq!(items.len(), 4, "{session}");
        let enabling = &items[3]["package"];
        assert_eq!(enabling["outcome"]["executed"]["codes"], json!([0]));
        let counter = enabling["counter"].clone();
        let enabled = |profiles: &Value| -> Vec<(String, bool)> {
            let mut list: Vec<(String, bool)> = profiles["profiles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["iccid"].as_str().unwrap().to_owned(),
                        p["enabled"].as_bool().unwrap(),
                    )
                })
                .collect();
            list.sort();
            list
        };
        let profiles_path = format!("/api/v1/eim/devices/{eid}/profiles");
        let (_, profiles) = lab.rest("GET", &profiles_path, None).await;
        let mut expected = vec![(p1.clone(), false), (p2.clone(), true)];
        expected.sort();
        assert_eq!(enabled(&profiles), expected, "{profiles}");

        // The new profile "does not connect": the device rolls back on its own.
        let local = ipa(&["rollback", "--state", path(&ipa_state)]);
        assert_eq!(
            local["items"],
            json!([{"local": {"operation": "ProfileRollback", "result": 0}}]),
            "{local}"
        );
        assert_eq!(local["pending"], 1, "the eUICC's signed result is kept");

        // The next session delivers it; the eIM verifies, stores, acknowledges.
        let session = ipa(&poll);
        assert_eq!(session["error"], Value::Null, "{session}");
        assert_eq!(session["resultsSent"], 1, "{session}");
        assert_eq!(session["acknowledged"].as_array().unwrap().len(), 1);
        assert_eq!(session["pending"], 0, "{session}");
        let (_, results) = lab
            .rest("GET", &format!("/api/v1/eim/devices/{eid}/results"), None)
            .await;
        let results = results.as_array().unwrap();
        assert_eq!(results.len(), 5, "{results:?}");
        let rollback = &results[4];
        assert_eq!(rollback["kind"], "rollback", "{rollback}");
        assert_eq!(
            rollback["counter"], counter,
            "the enabling package's counter"
        );
        assert_eq!(rollback["trust"], "verified");
        assert_eq!(rollback["outcome"]["outcome"], "executed");
        assert_eq!(rollback["outcome"]["codes"], json!([0]));
        assert_eq!(rollback["seqNumber"], session["acknowledged"][0]);
        let (_, profiles) = lab.rest("GET", &profiles_path, None).await;
        let mut expected = vec![(p1.clone(), true), (p2.clone(), false)];
        expected.sort();
        assert_eq!(
            enabled(&profiles),
            expected,
            "{binding}: back to the first profile: {profiles}"
        );
        assert_eq!(
            profiles["stale"], true,
            "the IPA told the eIM the state changed"
        );

        // The rollback is spent: the eUICC refuses another.
        let out = ferrosim(&[
            "ipa",
            "--euicc-state",
            path(&euicc_state),
            "--identity",
            &identity,
            "--eid",
            &eid,
            "rollback",
            "--state",
            path(&ipa_state),
        ]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("refused ProfileRollback"),
            "{}",
            text(&out)
        );
        // Nothing more for the eIM.
        let session = ipa(&poll);
        assert_eq!(session["resultsSent"], 0, "{session}");
        assert_eq!(session["items"], json!([]));
    }
}

#[test]
fn bad_ipa_arguments_are_refused_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let state = dir.path().join("ipa.json");
    std::fs::write(&state, "not json").unwrap();
    let m = path(&missing);
    let s = path(&state);
    refused(&["ipa", "poll", "--eim", "x", "--state", s], "required");
    for bad_eid in ["123", "89049032123451234512345678901234", ""] {
        refused(
            &[
                "ipa",
                "--euicc-state",
                s,
                "--identity",
                m,
                "--eid",
                bad_eid,
                "poll",
                "--eim",
                "x",
                "--state",
                s,
            ],
            "is not an EID",
        );
    }
    refused(
        &[
            "ipa",
            "--pcsc",
            "--modem",
            "/dev/null",
            "poll",
            "--eim",
            "x",
            "--state",
            s,
        ],
        "cannot be used with",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "localhost:1",
            "--insecure",
            "--state",
            s,
        ],
        "not an IPA state file",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "localhost:1",
            "--insecure",
            "--state",
            m,
        ],
        "missing.json",
    );
    refused(
        &[
            "ipa",
            "--modem",
            "/dev/null",
            "poll",
            "--eim",
            "localhost:1",
            "--insecure",
            "--state",
            m,
        ],
        "not a serial device",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "localhost:1",
            "--state",
            m,
        ],
        "give --ca",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "localhost:1",
            "--insecure",
            "--state",
            m,
            "--binding",
            "xml",
        ],
        "unknown ESipa binding",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "localhost:1",
            "--insecure",
            "--state",
            m,
            "--download",
            "sideways",
        ],
        "direct or via-eim",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "localhost:1",
            "--insecure",
            "--state",
            m,
            "--rplmn",
            "2620x",
        ],
        "MCC and MNC",
    );
    refused(
        &[
            "ipa",
            "--modem",
            m,
            "poll",
            "--eim",
            "bad host",
            "--insecure",
            "--state",
            m,
        ],
        "not an eIM address",
    );
    refused(
        &[
            "ipa",
            "--euicc-state",
            m,
            "--identity",
            m,
            "add-initial-eim",
            "--file",
            s,
        ],
        "not an AddInitialEimRequest",
    );
    refused(
        &["ipa", "--modem", m, "add-initial-eim", "--file", m],
        "missing.json",
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The IPA with its eUICC in a PC/SC reader: the virtual eUICC served to
/// pcscd by `ferrosim euicc vpcd`. Needs pcscd with vsmartcard-vpcd; fails
/// saying what to install without them, unless FERROSIM_SKIP_PCSC=1.
#[tokio::test(flavor = "multi_thread")]
async fn ipa_poll_over_pcsc_installs_and_runs_a_package() {
    use ferrosim_testkit::pcsc;
    let _pcscd = match pcsc::pcscd() {
        Ok(d) => d,
        Err(why) => return pcsc::unavailable("ipa_poll_over_pcsc", &why),
    };
    let lab = EimLab::start(EIM_ID, TOKEN).await;
    let eid = lab.eid(0);
    let state = lab.dir.path().join("euicc-pcsc.json");
    let identity = path(&lab.smdp.pki_dir).to_owned();
    ok(&[
        "euicc",
        "init",
        "--identity",
        &identity,
        "--eid",
        &eid,
        "--state",
        path(&state),
    ]);
    let first_eim = lab.add_initial_eim();
    ok(&[
        "ipa",
        "--euicc-state",
        path(&state),
        "--identity",
        &identity,
        "--eid",
        &eid,
        "add-initial-eim",
        "--file",
        path(&first_eim),
    ]);
    lab.associate_ok(0).await;
    let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
    let code = format!("1${}${matching_id}", lab.smdp.address);
    lab.queue_ok(
        &eid,
        json!({"operation": "download", "activationCode": code}),
    )
    .await;
    lab.queue_ok(
        &eid,
        json!({"operation": "enable", "iccid": iccid, "rollback": true}),
    )
    .await;

    let card = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args([
            "euicc",
            "vpcd",
            "--identity",
            &identity,
            "--eid",
            &eid,
            "--state",
            path(&state),
        ])
        .env("FERROSIM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _card = KillOnDrop(card);
    let ca = path(&lab.ca).to_owned();
    let ready = tokio::task::spawn_blocking({
        let (ca, eid) = (ca.clone(), eid.clone());
        move || {
            pcsc::wait_until(
                "the virtual card in a PC/SC reader",
                std::time::Duration::from_secs(30),
                || {
                    let out = ferrosim(&["lpa", "--transport", "pcsc", "--ca", &ca, "chip-info"]);
                    out.status.success() && text(&out).contains(&eid)
                },
            )
        }
    })
    .await
    .unwrap();
    assert!(ready.is_ok(), "{ready:?}");
    let ipa_state = path(&lab.dir.path().join("ipa-pcsc.json")).to_owned();
    let eim = lab.eim_address.clone();
    let out = tokio::task::spawn_blocking(move || {
        ferrosim(&[
            "ipa", "--pcsc", "poll", "--eim", &eim, "--ca", &ca, "--state", &ipa_state,
        ])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "ipa over PC/SC: {}", text(&out));
    let session: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        session["items"][0]["download"]["installed"],
        iccid.as_str(),
        "{session}"
    );
    assert_eq!(
        session["items"][1]["package"]["outcome"]["executed"]["codes"],
        json!([0]),
        "{session}"
    );
    assert_eq!(lab.order_state(&iccid).await, OrderState::Installed);
}

/// `ferrosim ipa run` against an eIM nobody answers: one JSON line per
/// session, each with the error, the failures counted in the state file;
/// Ctrl-C (SIGINT) stops it cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn ipa_run_backs_off_from_an_unreachable_eim_and_stops_on_sigint() {
    use std::io::BufRead;
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let state = dir.path().join("euicc.json");
    let ipa_state = dir.path().join("ipa.json");
    let identity = path(&smdp.pki_dir).to_owned();
    ok(&[
        "euicc",
        "init",
        "--identity",
        &identity,
        "--eid",
        &eid,
        "--state",
        path(&state),
    ]);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let eim = format!("127.0.0.1:{port}");
    let mut child = ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
        .args([
            "ipa",
            "--euicc-state",
            path(&state),
            "--identity",
            &identity,
            "--eid",
            &eid,
        ])
        .args([
            "run",
            "--eim",
            &eim,
            "--insecure",
            "--state",
            path(&ipa_state),
        ])
        .args(["--backoff", "1", "--backoff-max", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let lines = tokio::task::spawn_blocking({
        let stdout = child.stdout.take().unwrap();
        move || {
            std::io::BufReader::new(stdout)
                .lines()
                .take(2)
                .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
                .collect::<Vec<_>>()
        }
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert!(
            line["error"]
                .as_str()
                .unwrap()
                .contains("cannot reach the eIM"),
            "{line}"
        );
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(&ipa_state).unwrap()).unwrap();
    assert!(saved["failures"].as_u64().unwrap() >= 2, "{saved}");
    assert_eq!(
        saved["eid"],
        eid.as_str(),
        "the EID read from the eUICC is kept"
    );
    // While it runs (another state file): a local rollback the eUICC refuses
    // (no enable with rollback happened, or no such function yet) is an error
    // naming it.
    let other = dir.path().join("ipa-local.json");
    refused(
        &[
            "ipa",
            "--euicc-state",
            path(&state),
            "--identity",
            &identity,
            "--eid",
            &eid,
            "rollback",
            "--state",
            path(&other),
        ],
        "ProfileRollback",
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// `ferrosim ipa --modem`: the eUICC inside a (simulated) cellular modem,
/// `ferrosim euicc modem` on a pseudo-terminal, reached with AT commands:
/// a download trigger and a package complete over AT+CCHO/AT+CGLA, and
/// again over AT+CSIM when the modem has no logical channels.
#[tokio::test(flavor = "multi_thread")]
async fn ipa_poll_over_a_modem_with_at_commands() {
    use std::io::BufRead;
    let lab = EimLab::start(EIM_ID, TOKEN).await;
    let first_eim = lab.add_initial_eim();
    for (n, flags) in [(0usize, &[][..]), (1, &["--no-logical-channels"][..])] {
        let eid = lab.eid(n);
        let state = lab.dir.path().join(format!("euicc-modem-{n}.json"));
        let identity = path(&lab.smdp.pki_dir).to_owned();
        ok(&[
            "euicc",
            "init",
            "--identity",
            &identity,
            "--eid",
            &eid,
            "--state",
            path(&state),
        ]);
        ok(&[
            "ipa",
            "--euicc-state",
            path(&state),
            "--identity",
            &identity,
            "--eid",
            &eid,
            "add-initial-eim",
            "--file",
            path(&first_eim),
        ]);
        lab.associate_ok(n).await;
        let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
        let code = format!("1${}${matching_id}", lab.smdp.address);
        lab.queue_ok(
            &eid,
            json!({"operation": "download", "activationCode": code}),
        )
        .await;
        lab.queue_ok(&eid, json!({"operation": "enable", "iccid": iccid}))
            .await;
        let mut modem = ferrosim_command(env!("CARGO_BIN_EXE_ferrosim"))
            .args([
                "euicc",
                "modem",
                "--identity",
                &identity,
                "--eid",
                &eid,
                "--state",
                path(&state),
            ])
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut tty = String::new();
        std::io::BufReader::new(modem.stdout.take().unwrap())
            .read_line(&mut tty)
            .unwrap();
        let modem = KillOnDrop(modem);
        let tty = tty.trim().to_owned();
        assert!(tty.starts_with("/dev/"), "{tty}");
        let ipa_state = path(&lab.dir.path().join(format!("ipa-modem-{n}.json"))).to_owned();
        let (eim, ca) = (lab.eim_address.clone(), path(&lab.ca).to_owned());
        let out = tokio::task::spawn_blocking(move || {
            ferrosim(&[
                "ipa", "--modem", &tty, "poll", "--eim", &eim, "--ca", &ca, "--state", &ipa_state,
            ])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "ipa over the modem: {}", text(&out));
        let session: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            session["items"][0]["download"]["installed"],
            iccid.as_str(),
            "{session}"
        );
        assert_eq!(
            session["items"][1]["package"]["outcome"]["executed"]["codes"],
            json!([0])
        );
        assert_eq!(lab.order_state(&iccid).await, OrderState::Installed);
        let mut modem = modem;
        let pid = modem.0.id().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(modem.0.wait().unwrap().success(), "stopped by Ctrl-C");
        // The modem's SIM kept what happened.
        let kept: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert!(kept.to_string().contains(&iccid), "{kept}");
    }
}
