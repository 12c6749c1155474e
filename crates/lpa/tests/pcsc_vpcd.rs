//! The virtual eUICC as a card in a PC/SC reader: served to vsmartcard's
//! vpcd driver, seen by pcscd, reached by `opensc-tool` and by the LPA's
//! own PC/SC transport.
//!
//! Needs `pcscd` with `vsmartcard-vpcd` (Debian packages `pcscd`,
//! `vsmartcard-vpcd`, `opensc`). Without them the test fails saying what to
//! install, unless `FERROSIM_SKIP_PCSC=1` lets it skip.
//! It starts `pcscd --foreground` itself when no daemon serves
//! `/run/pcscd/pcscd.comm`, and stops it afterwards. It is the only test
//! that uses vpcd's port 35963.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "pcsc")]

use std::ffi::CString;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::es10::{Es10, Es10Options};
use ferrosim_lpa::transport::pcsc::{PcscTransport, ReaderSelector, list_readers};
use ferrosim_lpa::transport::vpcd::{self, VpcdEvent, VpcdOptions};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_testkit::pcsc;

const SELECT_ISD_R: &str = "00A4040010A0000005591010FFFFFFFF8900000100";

/// Stops the card thread when the test ends, whatever the outcome.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn wait_until(what: &str, limit: Duration, ready: impl FnMut() -> bool) {
    pcsc::wait_until(what, limit, ready).unwrap();
}

/// SELECT ISD-R as T=0 host software sends it (no Le), following `61xx`
/// with GET RESPONSE; returns the final status word.
fn select_t0(card: &::pcsc::Card) -> u16 {
    let mut buf = [0u8; 300];
    let select = hex::decode(SELECT_ISD_R).unwrap();
    let r = card.transmit(&select, &mut buf).unwrap().to_vec();
    assert_eq!(
        (r.len(), r[0]),
        (2, 0x61),
        "SELECT without Le over T=0: {r:02X?}"
    );
    let r = card
        .transmit(&[0x00, 0xC0, 0x00, 0x00, r[1]], &mut buf)
        .unwrap();
    assert_eq!(r[0], 0x6F, "the FCI: {r:02X?}");
    u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
}

fn identity(dir: &Path) -> EuiccIdentity {
    let pki = TestPki::generate(&TestPkiOptions::default()).unwrap();
    pki.write_to(dir).unwrap();
    let eid = pki.eids()[0].to_string();
    EuiccIdentity::load_from_dir(dir, Some(&eid)).unwrap()
}

#[test]
fn virtual_euicc_in_a_pcsc_reader() {
    let _daemon = match pcsc::pcscd() {
        Ok(d) => d,
        Err(why) => return pcsc::unavailable("pcsc_vpcd", &why),
    };
    let opensc_tool = pcsc::find_program("opensc-tool");
    if opensc_tool.is_none() && pcsc::required() {
        pcsc::unavailable(
            "pcsc_vpcd",
            "opensc-tool (Debian package opensc) is not installed",
        );
    }

    // The card side, in a thread.
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path());
    let eid = id.eid().to_string();
    let options = VpcdOptions {
        reconnect_delay: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        ..VpcdOptions::default()
    };
    let _stop = StopOnDrop(Arc::clone(&options.stop));
    let card = std::thread::spawn(move || {
        let mut euicc = VirtualEuicc::new(id, EuiccState::default());
        vpcd::serve_with(
            vpcd::DEFAULT_ADDR,
            move |event: VpcdEvent<'_>| match event {
                VpcdEvent::GetAtr => euicc.atr().to_vec(),
                VpcdEvent::PowerOn | VpcdEvent::PowerOff | VpcdEvent::Reset => {
                    euicc.reset();
                    Vec::new()
                }
                VpcdEvent::Apdu(apdu) => euicc.handle_apdu(apdu, SystemTime::now()),
            },
            &options,
        )
    });

    // pcscd sees a reader with a card.
    wait_until(
        "a PC/SC reader with the virtual card",
        Duration::from_secs(30),
        || {
            list_readers().is_ok_and(|r| !r.is_empty())
                && PcscTransport::connect(&ReaderSelector::Index(0)).is_ok()
        },
    );

    // Any PC/SC program reaches the ISD-R.
    if let Some(tool) = opensc_tool {
        let out = Command::new(tool)
            .args(["-r", "0", "-s", SELECT_ISD_R])
            .output()
            .expect("running opensc-tool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "opensc-tool failed: {text}");
        assert!(
            text.contains("SW1=0x90, SW2=0x00"),
            "SELECT ISD-R through opensc-tool: {text}"
        );
    }

    // The LPA's chip info through the PC/SC transport.
    let transport = PcscTransport::connect(&ReaderSelector::Index(0)).unwrap();
    assert!(
        transport.reader().contains("Virtual PCD"),
        "{}",
        transport.reader()
    );
    let mut es10 = Es10::open(transport, &Es10Options::default()).unwrap();
    assert_eq!(es10.get_eid().unwrap().to_string(), eid);
    let info = es10.get_euicc_info2().unwrap();
    assert_eq!(info.svn.0[0], 2, "an SGP.22 v2 eUICC");
    assert!(!info.ci_pkids_for_verification.is_empty());
    assert!(es10.get_profiles_info(None).unwrap().is_empty());
    assert_eq!(es10.get_euicc_challenge().unwrap().len(), 16);
    drop(es10.close().unwrap());

    // The card offers T=0 only, like a real eUICC: a program asking for
    // either protocol gets T=0, one asking for T=0 only is served after
    // other programs used the card (and while one holds it), one asking
    // for T=1 only is refused cleanly and leaves the reader usable.
    let context = ::pcsc::Context::establish(::pcsc::Scope::User).unwrap();
    let reader = CString::new(list_readers().unwrap()[0].clone()).unwrap();
    let connect = |p| context.connect(&reader, ::pcsc::ShareMode::Shared, p);
    let either = connect(::pcsc::Protocols::T0 | ::pcsc::Protocols::T1).unwrap();
    let status = either.status2_owned().unwrap();
    assert_eq!(status.protocol2(), Some(::pcsc::Protocol::T0));
    assert_eq!(status.atr(), ferrosim_euicc::ATR);
    let t0 =
        connect(::pcsc::Protocols::T0).expect("T=0 only, while another program holds the card");
    assert_eq!(select_t0(&t0), 0x9000);
    assert!(matches!(
        connect(::pcsc::Protocols::T1),
        Err(::pcsc::Error::ProtoMismatch)
    ));
    drop(t0);
    drop(either);
    assert!(
        connect(::pcsc::Protocols::T1).is_err(),
        "T=1 only, card idle"
    );
    for _ in 0..2 {
        let t0 = connect(::pcsc::Protocols::T0).expect("T=0 only after a refused T=1");
        assert_eq!(select_t0(&t0), 0x9000);
        drop(t0);
    }
    let either = connect(::pcsc::Protocols::ANY).unwrap();
    assert_eq!(select_t0(&either), 0x9000);
    drop(either);

    drop(_stop);
    card.join().unwrap().unwrap();
}
