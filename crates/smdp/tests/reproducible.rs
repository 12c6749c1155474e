//! With a fixed seed and a fixed clock, two in-memory runs of the same
//! SM-DP+ scenario produce identical transcripts, except the ECDSA
//! signature bytes the crate documentation names (aws-lc-rs draws their
//! nonces itself) and the device signature that covers one of them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::values::{CancelSessionReason, NotificationOperation};
use ferrosim_pki::TestPki;
use ferrosim_smdp::Randomness;
use ferrosim_smdp::es9::NotificationHandled;
use ferrosim_smdp::store::{ProfileFilter, ProfileStore};
use serde_json::{Value, json};
use support::*;

/// One entry of a transcript: what was exchanged, as JSON.
type Transcript = Vec<(&'static str, Value)>;

/// Orders three profiles; downloads and installs one, cancels a second
/// session, sends an enable notification; the operator's events and the
/// final records close the transcript.
async fn scenario(pki: &TestPki, randomness: Randomness) -> Transcript {
    let mut t = Transcript::new();
    let world = World::with_randomness(pki, 3, randomness).await;
    let oid = world.smdp.config().oid().clone();
    let device = Device::new(pki, 0);
    let (iccid, matching_id) = world.order(None, Some("1234")).await;
    let (_, other_matching_id) = world.order(Some(&device.eid), None).await;
    t.push((
        "orders",
        json!([iccid.as_str(), matching_id, other_matching_id]),
    ));

    let init = world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    t.push(("initiateAuthentication", json!(init)));
    let request = device.authenticate(&init, Some(&matching_id));
    t.push(("authenticateClient request", json!(request)));
    let auth = world.smdp.authenticate_client(&request, NOW).await.unwrap();
    t.push(("authenticateClient", json!(auth)));
    let request = device.prepare_download(&auth, Some("1234"));
    t.push(("getBoundProfilePackage request", json!(request)));
    let bpp = world
        .smdp
        .get_bound_profile_package(&request, NOW)
        .await
        .unwrap();
    t.push(("getBoundProfilePackage", json!(bpp)));
    let pir = device.installation_result(&auth.transaction_id, &oid, &iccid, Ok(()));
    let handled = world.smdp.handle_notification(&pir, NOW).await.unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );
    let enable = device.other_notification(NotificationOperation::Enable, &iccid, 2);
    let handled = world.smdp.handle_notification(&enable, NOW).await.unwrap();
    assert!(
        matches!(handled, NotificationHandled::Recorded),
        "{handled:?}"
    );

    let init = world
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    t.push(("initiateAuthentication 2", json!(init)));
    let auth = world
        .smdp
        .authenticate_client(&device.authenticate(&init, None), NOW)
        .await
        .unwrap();
    t.push(("authenticateClient 2", json!(auth)));
    let cancel = device.cancel(&auth.transaction_id, &oid, CancelSessionReason::Postponed);
    let cancelled = world.smdp.cancel_session(&cancel, NOW).await.unwrap();
    t.push(("cancelSession", json!(cancelled)));

    let events: Vec<Value> = world
        .store
        .queued_callbacks()
        .into_iter()
        .map(|c| json!(format!("{} {:?}", c.id, c.event)))
        .collect();
    t.push(("events", json!(events)));
    let profiles: Vec<String> = world
        .store
        .list_profiles(&ProfileFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{p:?}"))
        .collect();
    t.push(("profiles", json!(profiles)));
    t
}

/// The transcript with the bytes that cannot repeat zeroed: the three
/// SM-DP+ signatures and euiccSignature2, which covers smdpSignature2.
/// Returns the masked transcript and the masked values, to check that they
/// are indeed what differs.
fn mask(mut t: Transcript) -> (Transcript, Vec<Vec<u8>>) {
    let mut masked = Vec::new();
    for (name, value) in &mut t {
        let field = match *name {
            "initiateAuthentication" | "initiateAuthentication 2" => "serverSignature1",
            "authenticateClient" | "authenticateClient 2" => "smdpSignature2",
            "getBoundProfilePackage request" => "prepareDownloadResponse",
            "getBoundProfilePackage" => "boundProfilePackage",
            _ => continue,
        };
        let mut bytes = b64(&value[field]);
        let range = match field {
            // 5F37 40 r||s: the whole TLV is the signature.
            "serverSignature1" | "smdpSignature2" => 3..bytes.len(),
            // BF21 { A0 { euiccSigned2, 5F37 euiccSignature2 } }
            "prepareDownloadResponse" => signature_range(&bytes, &[0xA0, 0x5F37]),
            // BF36 { BF23 { ..., 5F37 smdpSign }, ... }
            _ => signature_range(&bytes, &[0xBF23, 0x5F37]),
        };
        masked.push(bytes[range.clone()].to_vec());
        bytes[range].fill(0);
        value[field] = json!(ferrosim_asn1::json::Base64(bytes));
    }
    (t, masked)
}

/// Where the value of the TLV at `path` (tags from the outer TLV's children) lies.
fn signature_range(bytes: &[u8], path: &[u32]) -> std::ops::Range<usize> {
    let mut tlv = Tlv::parse_exact(bytes).unwrap();
    for tag in path {
        tlv = tlv.require(*tag).unwrap();
    }
    let start = tlv.value.as_ptr() as usize - bytes.as_ptr() as usize;
    start..start + tlv.value.len()
}

fn b64(v: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn same_seed_same_clock_same_transcript_but_the_signatures() {
    let pki = pki(1);
    let seed = [42u8; 32];
    let (first, first_sigs) = mask(scenario(&pki, Randomness::seeded(seed)).await);
    let (second, second_sigs) = mask(scenario(&pki, Randomness::seeded(seed)).await);
    for ((name, a), (_, b)) in first.iter().zip(&second) {
        assert_eq!(a, b, "{name} differs beyond its signature bytes");
    }
    assert_eq!(first.len(), second.len());
    // Each masked value is a fresh signature (or covers one) in every run.
    assert_eq!(first_sigs.len(), 6);
    for (a, b) in first_sigs.iter().zip(&second_sigs) {
        assert_ne!(a, b, "a masked value repeated: it need not be masked");
    }

    // Another seed: other transaction ids, challenges, matching ids, keys.
    let (other, _) = mask(scenario(&pki, Randomness::seeded([7; 32])).await);
    assert_ne!(first[0], other[0], "the generated matching ids differ");
    assert_ne!(first[1], other[1], "the transaction ids differ");
}
