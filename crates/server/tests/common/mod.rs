//! What several server tests do the same way: one device of the test PKI
//! activating a profile over loopback HTTPS with the LPA and a virtual eUICC.

#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::SystemTime;

use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::download::{Consent, DownloadRequest, download_profile};
use ferrosim_lpa::es9::https::HttpsEs9Client;
use ferrosim_lpa::es10::types::ProfileId;
use ferrosim_lpa::notifications::{NotificationReport, RetryPolicy, process_notifications};
use ferrosim_lpa::{ActivationCode, Es10, Es10Options, SmdpAddress};
use ferrosim_saip::Iccid;
use ferrosim_testkit::TestSmdp;

/// Downloads the order of `matching_id` on the test PKI's eUICC number
/// `device` (a fresh card). `None` when the download failed; otherwise,
/// with `enable`, the profile is enabled and the delivery report of the
/// eUICC's notifications is returned.
pub async fn activate(
    smdp: &TestSmdp,
    es9: &HttpsEs9Client,
    device: usize,
    matching_id: &str,
    enable: bool,
) -> Option<Option<NotificationReport>> {
    let eid = smdp.pki.eids()[device].to_string();
    let mut card = VirtualEuicc::new(
        EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid)).unwrap(),
        EuiccState::default(),
    );
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    let ac =
        ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(matching_id)).unwrap();
    let outcome = download_profile(&mut es10, es9, &DownloadRequest::new(&ac, None), |_| {
        Consent::Accept
    })
    .await
    .ok()?;
    if !enable {
        return Some(None);
    }
    let iccid = Iccid::new(&outcome.iccid).unwrap();
    es10.enable_profile(&ProfileId::Iccid(iccid), false)
        .unwrap();
    let report = process_notifications(&mut es10, es9, None, &RetryPolicy::immediate(2))
        .await
        .unwrap();
    Some(Some(report))
}
