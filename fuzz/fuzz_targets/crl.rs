//! The CRL decoder (`ferrosim_pki::Crl`, DER or PEM, as fetched from a
//! distribution point or loaded from a file) and the revocation register:
//! any input is a CRL or a typed error. A CRL that parses parses again from
//! its DER to the same CRL, goes into a `CrlSet` (partial or whole) and
//! every serial it lists is then reported revoked.
#![no_main]

use std::path::Path;

use ferrosim_pki::crl::register::Register;
use ferrosim_pki::crl::{Crl, CrlSet, CrlStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(crl) = Crl::from_bytes(data) {
        assert!(crl.next_update() >= crl.this_update());
        let again = Crl::from_der(crl.der()).expect("a parsed CRL parses again");
        assert_eq!(again, crl);
        let _ = crl.to_pem();
        let scope = crl.scope().clone();
        let mut set = CrlSet::new();
        if set.insert_verified(crl.clone()).is_ok() {
            for entry in crl.entries() {
                let status = set.status(
                    crl.authority_key_id(),
                    &entry.serial,
                    scope.only_ca_certs,
                    &scope.distribution_point_uris,
                    crl.this_update(),
                );
                assert!(matches!(status, CrlStatus::Revoked { .. }), "{status:?}");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Register::parse(text, Path::new("fuzz"));
    }
});
