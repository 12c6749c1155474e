//! The eUICC side's plumbing: APDUs to the virtual eUICC (logical
//! channel, SELECT ISD-R, STORE DATA, GET RESPONSE), PSMOs read from a
//! package, and the profiles as deployed before the event.

use std::time::SystemTime;

use ferrosim_asn1::metadata::IccidTemplate;
use ferrosim_asn1::rasn::types::FixedOctetString;
use ferrosim_asn1::values::{NotificationOperation, PolicyRules, ProfileClass, ProfileState};
use ferrosim_asn1::{encode_der, rsp, sgp32};
use ferrosim_eim::Timestamp;
use ferrosim_euicc::{InstalledProfile, VirtualEuicc};
use ferrosim_ids::Iccid;
use rand::rngs::StdRng;

use super::{Op, SMDP_ADDRESS};
use crate::error::SimError;

pub(super) fn op_of(psmo: &sgp32::Psmo) -> Op {
    let iccid = |i: &rsp::Iccid| {
        ferrosim_saip::bcd::swapped_digits(i.0.as_ref())
            .ok()
            .and_then(|d| Iccid::new(&d).ok())
    };
    match psmo {
        sgp32::Psmo::enable(e) => iccid(&e.iccid)
            .map(|i| Op::Enable(i, e.rollback_flag.is_some()))
            .unwrap_or(Op::Other),
        sgp32::Psmo::disable(d) => iccid(&d.iccid).map(Op::Disable).unwrap_or(Op::Other),
        sgp32::Psmo::delete(d) => iccid(&d.iccid).map(Op::Delete).unwrap_or(Op::Other),
        sgp32::Psmo::setFallbackAttribute(s) => {
            iccid(&s.iccid).map(Op::SetFallback).unwrap_or(Op::Other)
        }
        sgp32::Psmo::unsetFallbackAttribute(_) => Op::UnsetFallback,
        sgp32::Psmo::listProfileInfo(_) => Op::List,
        _ => Op::Other,
    }
}

/// The first INTEGER of an ES10c response (its result code), 127 when it
/// cannot be read.
pub(crate) fn result_code(answer: &[u8]) -> i64 {
    // BFxx len 80 01 code
    let Some(pos) = answer.windows(2).position(|w| w == [0x80, 0x01]) else {
        return 127;
    };
    answer.get(pos + 2).map_or(127, |b| i64::from(*b))
}

fn to_system_time(now: Timestamp) -> SystemTime {
    now.to_system_time()
}

fn transmit(
    card: &mut VirtualEuicc,
    apdu: &[u8],
    now: Timestamp,
    rng: &mut StdRng,
) -> (Vec<u8>, u16) {
    let mut out = card.handle_apdu_with_rng(apdu, to_system_time(now), rng);
    let mut data = Vec::new();
    loop {
        if out.len() < 2 {
            return (data, 0x6F00);
        }
        let sw = u16::from_be_bytes([out[out.len() - 2], out[out.len() - 1]]);
        data.extend_from_slice(&out[..out.len() - 2]);
        if sw >> 8 != 0x61 {
            return (data, sw);
        }
        let le = (sw & 0xFF) as u8;
        let get = [apdu[0] & 0x03, 0xC0, 0x00, 0x00, le];
        out = card.handle_apdu_with_rng(&get, to_system_time(now), rng);
    }
}

pub(crate) fn open_isdr(card: &mut VirtualEuicc, now: Timestamp) -> Result<u8, SimError> {
    let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(0);
    let (data, sw) = transmit(card, &[0x00, 0x70, 0x00, 0x00, 0x01], now, &mut rng);
    let channel = match (sw, data.first()) {
        (0x9000, Some(c)) => *c,
        _ => return Err(SimError::Device(format!("MANAGE CHANNEL: {sw:04X}"))),
    };
    let mut select = vec![
        ferrosim_euicc::apdu::Cla::encode(channel, false),
        0xA4,
        0x04,
        0x00,
        0x10,
    ];
    select.extend_from_slice(&ferrosim_euicc::ISD_R_AID);
    select.push(0x00);
    let (_, sw) = transmit(card, &select, now, &mut rng);
    if sw != 0x9000 {
        return Err(SimError::Device(format!("SELECT ISD-R: {sw:04X}")));
    }
    Ok(channel)
}

/// One ES10 command as STORE DATA blocks; the response data.
pub(crate) fn es10(
    card: &mut VirtualEuicc,
    channel: u8,
    command: &[u8],
    now: Timestamp,
    rng: &mut StdRng,
) -> Result<Vec<u8>, SimError> {
    let chunks: Vec<&[u8]> = command.chunks(240).collect();
    let cla = ferrosim_euicc::apdu::Cla::encode(channel, true);
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut apdu = vec![
            cla,
            0xE2,
            if last { 0x91 } else { 0x11 },
            i as u8,
            chunk.len() as u8,
        ];
        apdu.extend_from_slice(chunk);
        if last {
            apdu.push(0x00);
        }
        let (data, sw) = transmit(card, &apdu, now, rng);
        if sw != 0x9000 {
            return Err(SimError::Device(format!("STORE DATA: {sw:04X}")));
        }
        if last {
            return Ok(data);
        }
    }
    Ok(Vec::new())
}

/// The StoreMetadata of the deployed profile in ISD-P `n` (names the
/// ICCID, class, a notification address for every operation), for
/// `iccid`.
pub(super) fn deployed_metadata(iccid: &Iccid, n: usize) -> Result<Vec<u8>, SimError> {
    let notifications = NotificationOperation::ALL
        .iter()
        .map(|op| {
            rsp::NotificationConfigurationInformation::new(op.event(), SMDP_ADDRESS.to_owned())
        })
        .collect();
    let metadata = rsp::StoreMetadataRequest::new(
        rsp::Iccid(FixedOctetString::new(iccid.to_bcd())),
        "ferrosim".into(),
        format!("profile {n}"),
        None,
        None,
        ProfileClass::Operational.to_asn1(),
        Some(notifications),
        None,
        None,
        None,
        None,
    );
    encode_der(&metadata).map_err(|e| SimError::Setup(format!("profile metadata: {e}")))
}

/// [`deployed_metadata`] of ISD-P `n` encoded once, for any ICCID: the
/// ICCID is a fixed-size OCTET STRING at a fixed place (the first
/// component), so each device's metadata is the template with its ICCID
/// written over the prototype's, byte for byte what encoding it again
/// would give.
pub(super) struct MetadataTemplate(IccidTemplate);

impl MetadataTemplate {
    /// The template of ISD-P `n`.
    pub(super) fn new(n: usize) -> Result<Self, SimError> {
        let prototype = Iccid::from_body("8900000000000000000")
            .map_err(|e| SimError::Setup(format!("prototype ICCID: {e}")))?;
        let der = deployed_metadata(&prototype, n)?;
        IccidTemplate::new(der, &prototype.to_bcd())
            .map(Self)
            .map_err(|e| SimError::Setup(format!("profile metadata: {e}")))
    }

    /// The metadata for `iccid`.
    fn for_iccid(&self, iccid: &Iccid) -> Box<[u8]> {
        self.0.with_iccid(&iccid.to_bcd()).into_boxed_slice()
    }
}

/// A profile as deployed before the event: what the eUICC kept of an
/// installation (metadata naming the ICCID, class, no policy rules), for
/// the ISD-P numbered `n` (its metadata from `template` when there is one
/// for `n`).
pub(super) fn deployed_profile(
    iccid: &Iccid,
    n: usize,
    enabled: bool,
    template: Option<&MetadataTemplate>,
) -> Result<InstalledProfile, SimError> {
    let metadata_der = match template {
        Some(t) => t.for_iccid(iccid),
        None => deployed_metadata(iccid, n)?.into_boxed_slice(),
    };
    let mut isdp_aid = [0u8; 16];
    isdp_aid[..9].copy_from_slice(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF]);
    isdp_aid[15] = n as u8 + 1;
    Ok(InstalledProfile {
        iccid: iccid.clone(),
        isdp_aid,
        state: if enabled {
            ProfileState::Enabled
        } else {
            ProfileState::Disabled
        },
        nickname: None,
        profile_class: ProfileClass::Operational,
        policy_rules: PolicyRules::default(),
        metadata_der,
        dp_oid: None,
        smdp_address: SMDP_ADDRESS.to_owned(),
        smdp_oid: "2.999.10".to_owned(),
        imsi: None,
        aka_algorithm: None,
        k: None,
        opc: None,
        pins: Vec::new(),
        puks: Vec::new(),
        spn: None,
        apn: None,
        package_len: 0,
        package_sha256: [0; 32],
        installed_at: ferrosim_ids::Timestamp::EPOCH,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_from_the_template_is_the_metadata_encoded() {
        for n in 0..3 {
            let template = MetadataTemplate::new(n).unwrap();
            // 19 and 20 digits (the 20th BCD nibble F-padded or a digit).
            for body in ["894400000000000001", "8901234567890123456"] {
                let iccid = Iccid::from_body(body).unwrap();
                assert_eq!(
                    &*template.for_iccid(&iccid),
                    deployed_metadata(&iccid, n).unwrap().as_slice()
                );
            }
        }
    }
}
