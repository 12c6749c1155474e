//! The virtual eUICC's APDU entry point: any sequence of command APDUs,
//! sent on a card whose ISD-R is selected on channel 1 and which has an RSP
//! session, must get a response of at least a status word, without panic.
//!
//! Input: APDUs, each preceded by its length (one byte).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use ferrosim_euicc::{EuiccIdentity, EuiccState, ISD_R_AID, VirtualEuicc};
use ferrosim_pki::{TestPki, TestPkiOptions};
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static EuiccIdentity {
    static IDENTITY: OnceLock<EuiccIdentity> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let pki = TestPki::generate(&TestPkiOptions::default()).expect("test PKI");
        let euicc = &pki.euiccs[0];
        EuiccIdentity::from_parts(
            euicc.certificate.der(),
            Arc::new(euicc.signing_key().expect("eUICC key")),
            pki.eum.certificate.der(),
            vec![pki.ci.certificate.der().to_vec()],
        )
        .expect("identity")
    })
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::now();
    let mut card = VirtualEuicc::new(identity().clone(), EuiccState::default());
    let mut select = vec![0x01, 0xA4, 0x04, 0x00, 0x10];
    select.extend_from_slice(&ISD_R_AID);
    for setup in [
        &[0x00, 0x70, 0x00, 0x00, 0x01][..],
        &select,
        &[0x81, 0xE2, 0x91, 0x00, 0x03, 0xBF, 0x2E, 0x00],
    ] {
        card.handle_apdu(setup, now);
    }
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (apdu, next) = tail.split_at(usize::from(len).min(tail.len()));
        let response = card.handle_apdu(apdu, now);
        assert!(response.len() >= 2, "a response without status word");
        rest = next;
    }
});
