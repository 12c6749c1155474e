//! A real TLS stack (rustls / webpki) accepts the generated DPtls certificate
//! for the SM-DP+ address, with the generated CI as its only trust anchor.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn verifier_for(ci_der: &[u8]) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ci_der.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap()
}

fn at(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
}

#[test]
fn webpki_accepts_dptls_for_the_smdp_address() {
    let pki = common::pki(0);
    let verifier = verifier_for(pki.ci.certificate.der());
    let dptls = CertificateDer::from(pki.dp_tls.certificate.der().to_vec());
    let name = ServerName::try_from("testsmdpplus1.example.com").unwrap();
    verifier
        .verify_server_cert(&dptls, &[], &name, &[], at(common::now()))
        .unwrap();
}

#[test]
fn webpki_rejects_what_it_should() {
    let pki = common::pki(0);
    let verifier = verifier_for(pki.ci.certificate.der());
    let dptls = CertificateDer::from(pki.dp_tls.certificate.der().to_vec());
    let now = at(common::now());

    let other = ServerName::try_from("other.example.com").unwrap();
    assert!(
        verifier
            .verify_server_cert(&dptls, &[], &other, &[], now)
            .is_err()
    );

    // DPauth has no serverAuth purpose and no DNS name: not a TLS server certificate.
    let dpauth = CertificateDer::from(pki.dp_auth.certificate.der().to_vec());
    let name = ServerName::try_from("testsmdpplus1.example.com").unwrap();
    assert!(
        verifier
            .verify_server_cert(&dpauth, &[], &name, &[], now)
            .is_err()
    );

    // Another hierarchy's CI is not a trust anchor for this DPtls.
    let stranger = verifier_for(common::pki(0).ci.certificate.der());
    assert!(
        stranger
            .verify_server_cert(&dptls, &[], &name, &[], now)
            .is_err()
    );
}

/// An SM-DP+ reached by IP address gets its address in an iPAddress
/// subjectAltName entry (TLS clients never match an address against a
/// dNSName), with or without a port in the address given.
#[test]
fn an_ip_address_goes_into_an_ip_san() {
    for (address, ip) in [
        ("127.0.0.1:8443", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8443", "::1"),
    ] {
        let pki = ferrosim_pki::TestPki::generate(&ferrosim_pki::TestPkiOptions {
            euicc_count: 0,
            smdp_address: address.into(),
            ..ferrosim_pki::TestPkiOptions::default()
        })
        .unwrap();
        let tls = &pki.dp_tls.certificate;
        assert!(
            tls.dns_names().is_empty(),
            "{address}: {:?}",
            tls.dns_names()
        );
        assert_eq!(
            tls.ip_addresses(),
            [ip.parse::<std::net::IpAddr>().unwrap()]
        );
        let verifier = verifier_for(pki.ci.certificate.der());
        let dptls = CertificateDer::from(tls.der().to_vec());
        let name = ServerName::try_from(ip).unwrap();
        verifier
            .verify_server_cert(&dptls, &[], &name, &[], at(SystemTime::now()))
            .unwrap_or_else(|e| panic!("{address}: {e}"));
        let other = ServerName::try_from("127.0.0.2").unwrap();
        assert!(
            verifier
                .verify_server_cert(&dptls, &[], &other, &[], at(SystemTime::now()))
                .is_err()
        );
    }
    // A host name with a port: the DNS name without the port.
    let pki = ferrosim_pki::TestPki::generate(&ferrosim_pki::TestPkiOptions {
        euicc_count: 0,
        smdp_address: "smdp.example.com:443".into(),
        ..ferrosim_pki::TestPkiOptions::default()
    })
    .unwrap();
    assert_eq!(pki.dp_tls.certificate.dns_names(), ["smdp.example.com"]);
    assert!(pki.dp_tls.certificate.ip_addresses().is_empty());
}
