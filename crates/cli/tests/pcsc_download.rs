//! A download through PC/SC: the virtual eUICC served to pcscd by
//! `ferrosim euicc vpcd`, driven by `ferrosim lpa --transport pcsc` against a
//! running SM-DP+ over HTTPS. Needs pcscd with vsmartcard-vpcd; fails saying
//! what to install without them, unless FERROSIM_SKIP_PCSC=1 lets it skip.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferrosim_saip::Iccid;
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::ProfileStore;
use ferrosim_testkit::pcsc;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("FERROSIM_LOG", "warn")
        .output()
        .expect("running ferrosim")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_through_pcsc_with_the_ferrosim_lpa() {
    let _pcscd = match pcsc::pcscd() {
        Ok(d) => d,
        Err(why) => return pcsc::unavailable("pcsc_download", &why),
    };
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let (iccid, mid) = smdp.order(Some(&eid), None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("euicc.json");
    let pki = smdp.pki_dir.to_str().unwrap().to_owned();
    let ci = smdp.pki_dir.join("CI/ci.pem");

    // The card: a virtual eUICC served to vpcd by the ferrosim binary.
    let out = ferrosim(&[
        "euicc",
        "init",
        "--identity",
        &pki,
        "--eid",
        &eid,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let card = Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args([
            "euicc",
            "vpcd",
            "--identity",
            &pki,
            "--eid",
            &eid,
            "--state",
            state.to_str().unwrap(),
        ])
        .env("FERROSIM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _card = KillOnDrop(card);
    let ca = ci.to_str().unwrap().to_owned();
    let lpa = move |args: &[&str]| {
        let mut all = vec!["lpa", "--transport", "pcsc", "--ca", ca.as_str()];
        all.extend_from_slice(args);
        ferrosim(&all)
    };
    let chip = tokio::task::spawn_blocking({
        let lpa_args = (ci.clone(), eid.clone());
        move || {
            let mut last = String::new();
            let ready = pcsc::wait_until(
                "the virtual card in a PC/SC reader",
                Duration::from_secs(30),
                || {
                    let out = Command::new(env!("CARGO_BIN_EXE_ferrosim"))
                        .args([
                            "lpa",
                            "--transport",
                            "pcsc",
                            "--ca",
                            lpa_args.0.to_str().unwrap(),
                            "chip-info",
                        ])
                        .env("FERROSIM_LOG", "warn")
                        .output()
                        .unwrap();
                    last = text(&out);
                    out.status.success() && last.contains(&lpa_args.1)
                },
            );
            (ready, last)
        }
    })
    .await
    .unwrap();
    assert!(chip.0.is_ok(), "chip-info over PC/SC: {}", chip.1);

    // The download, through pcscd and vpcd, against the HTTPS SM-DP+.
    let code = format!("LPA:1${}${}", smdp.address, mid);
    let out = tokio::task::spawn_blocking({
        let lpa_code = code.clone();
        let ci = ci.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_ferrosim"))
                .args([
                    "lpa",
                    "--transport",
                    "pcsc",
                    "--ca",
                    ci.to_str().unwrap(),
                    "profile",
                    "download",
                    "--activation-code",
                    &lpa_code,
                ])
                .env("FERROSIM_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "download over PC/SC: {}", text(&out));
    // The per-step timings (LoadBoundProfilePackage is the APDU-heavy one):
    // shown with `--nocapture`.
    eprintln!("download over PC/SC:\n{}", text(&out));
    let listed = tokio::task::spawn_blocking(move || lpa(&["profile", "list"]))
        .await
        .unwrap();
    assert!(text(&listed).contains(&iccid), "{}", text(&listed));
    let order = smdp
        .store
        .profile(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.state, ProfileState::Installed);
}
