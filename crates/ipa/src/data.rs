//! IpaEuiccDataRequest: the eIM asks for eUICC data by tag (SGP.32
//! `IpaEuiccData`); the IPA reads what it can from the eUICC and answers
//! with an `IpaEuiccDataResponse`.
//!
//! Supported: pending notifications (`A0`, RetrieveNotificationsList), the
//! eUICC package results the IPA still holds (`A2`), EUICCInfo1/2 (`BF20`,
//! `BF22`), the default SM-DP+ and root SM-DS addresses (`81`, `83`,
//! GetEuiccConfiguredAddresses), the EUM and eUICC certificates (`A5`, `A6`,
//! GetCerts), the IPA capabilities (`A8`, [`ipa_capabilities`]) and the
//! device info (`A9`). The association token (`84`) is left out: the eUICC
//! does not give it to the IPA.

use std::collections::VecDeque;

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, encode_der, named_bits, rsp, sgp32};
use ferrosim_lpa::es10::types::DeviceInfo;

use crate::config::DownloadPath;
use crate::es10::Command;

/// What one IpaEuiccDataRequest needs from the eUICC.
#[derive(Debug, Clone)]
pub struct DataPlan {
    /// The tags asked for.
    pub tags: Vec<u32>,
    /// The request's eimTransactionId.
    transaction_id: Option<rsp::TransactionId>,
    /// The ES10 commands still to run.
    pub(crate) commands: VecDeque<Command>,
    collected: Collected,
}

#[derive(Debug, Clone, Default)]
struct Collected {
    notifications: Option<Vec<u8>>,
    info1: Option<Vec<u8>>,
    info2: Option<Vec<u8>>,
    certs: Option<Vec<u8>>,
    addresses: Option<Vec<u8>>,
}

impl DataPlan {
    /// Reads an IpaEuiccDataRequest (`BF52`).
    pub fn new(request: &[u8]) -> Result<Self, String> {
        let request: sgp32::IpaEuiccDataRequest =
            decode_der(request).map_err(|e| format!("IpaEuiccDataRequest: {e}"))?;
        let tags = tag_list(request.tag_list.as_ref())?;
        let mut commands = VecDeque::new();
        let mut want = |c: Command| {
            if !commands.contains(&c) {
                commands.push_back(c);
            }
        };
        for tag in &tags {
            match tag {
                0xA0 => want(Command::RetrieveNotifications),
                0xBF20 => want(Command::GetEuiccInfo1),
                0xBF22 => want(Command::GetEuiccInfo2),
                0xA5 | 0xA6 => want(Command::GetCerts),
                0x81 | 0x83 => want(Command::ConfiguredAddresses),
                _ => {}
            }
        }
        Ok(Self {
            tags,
            transaction_id: request.eim_transaction_id,
            commands,
            collected: Collected::default(),
        })
    }

    /// The eUICC's answer to `command` (or why there is none: the item is
    /// then left out of the answer).
    pub(crate) fn collect(&mut self, command: Command, answer: Option<Vec<u8>>) {
        let c = &mut self.collected;
        match command {
            Command::RetrieveNotifications => c.notifications = answer,
            Command::GetEuiccInfo1 => c.info1 = answer,
            Command::GetEuiccInfo2 => c.info2 = answer,
            Command::GetCerts => c.certs = answer,
            Command::ConfiguredAddresses => c.addresses = answer,
            _ => {}
        }
    }

    /// The `EimPackageResult` element (`BF52` IpaEuiccDataResponse).
    pub fn answer(
        &self,
        package_results: &[Vec<u8>],
        device_info: &DeviceInfo,
        download_path: DownloadPath,
    ) -> Result<Vec<u8>, String> {
        let asked = |tag: u32| self.tags.contains(&tag);
        let c = &self.collected;
        let mut data = sgp32::IpaEuiccData::new(
            None, None, None, None, None, None, None, None, None, None, None, None,
        );
        data.eim_transaction_id = self.transaction_id.clone();
        if asked(0xA0)
            && let Some(answer) = &c.notifications
        {
            data.notifications_list = Some(sgp32::PendingNotificationList(notifications(answer)));
        }
        if asked(0xA2) {
            data.euicc_package_result_list = Some(sgp32::EuiccPackageResultList(
                package_results
                    .iter()
                    .filter_map(|r| decode_der(r).ok())
                    .collect(),
            ));
        }
        if asked(0xBF20) {
            data.euicc_info1 = c.info1.as_deref().and_then(|d| decode_der(d).ok());
        }
        if asked(0xBF22) {
            data.euicc_info2 = c.info2.as_deref().and_then(|d| decode_der(d).ok());
        }
        if let Some(answer) = &c.certs
            && let Ok(sgp32::GetCertsResponse::certs(certs)) = decode_der(answer)
        {
            if asked(0xA5) {
                data.eum_certificate = Some(certs.eum_certificate);
            }
            if asked(0xA6) {
                data.euicc_certificate = Some(certs.euicc_certificate);
            }
        }
        if let Some(answer) = &c.addresses
            && let Ok(addresses) = decode_der::<rsp::EuiccConfiguredAddressesResponse>(answer)
        {
            if asked(0x81) {
                data.default_smdp_address = addresses.default_dp_address;
            }
            if asked(0x83) {
                data.root_smds_address = Some(addresses.root_ds_address);
            }
        }
        if asked(0xA8) {
            data.ipa_capabilities = Some(ipa_capabilities(download_path));
        }
        if asked(0xA9) {
            data.device_info = Some(device_info_value(device_info));
        }
        encode_der(&sgp32::EimPackageResult::ipaEuiccDataResponse(
            sgp32::IpaEuiccDataResponse::ipaEuiccData(data),
        ))
        .map_err(|e| format!("IpaEuiccData: {e}"))
    }

    /// The `ipaEuiccDataResponseError` element for a request that cannot
    /// be read: `undefinedError` (127).
    pub fn error_answer(transaction_id: Option<rsp::TransactionId>) -> Result<Vec<u8>, String> {
        encode_der(&sgp32::EimPackageResult::ipaEuiccDataResponse(
            sgp32::IpaEuiccDataResponse::ipaEuiccDataResponseError(
                sgp32::IpaEuiccDataResponseError::new(
                    transaction_id,
                    sgp32::IpaEuiccDataErrorCode(Integer::from(127)),
                ),
            ),
        ))
        .map_err(|e| format!("IpaEuiccDataResponseError: {e}"))
    }
}

/// The tags of a `tagList` (BER tags, one or more bytes each).
fn tag_list(bytes: &[u8]) -> Result<Vec<u32>, String> {
    let mut tags = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let mut tag = u32::from(bytes[i]);
        if bytes[i] & 0x1F == 0x1F {
            loop {
                i += 1;
                let b = *bytes.get(i).ok_or("tagList ends inside a tag")?;
                if tag > 0x00FF_FFFF {
                    return Err("tag too long in tagList".into());
                }
                tag = (tag << 8) | u32::from(b);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        tags.push(tag);
        i += 1;
    }
    Ok(tags)
}

/// The notifications of a RetrieveNotificationsList answer
/// (`BF2B { A0 { ... } }`); unreadable ones are left out.
fn notifications(answer: &[u8]) -> Vec<sgp32::PendingNotification> {
    let Ok(top) = Tlv::parse_tagged(answer, 0xBF2B) else {
        return Vec::new();
    };
    let Ok(Some(list)) = top.find(0xA0) else {
        return Vec::new();
    };
    list.children()
        .filter_map(|t| t.ok())
        .filter_map(|t| decode_der(t.raw).ok())
        .collect()
}

/// What this IPA does (SGP.32 IpaCapabilities): the configured way to the
/// SM-DP+ (directRspServerCommunication (0) or
/// indirectRspServerCommunication (1)), eimDownloadDataHandling (2): it
/// downloads on an eIM's profileDownloadTriggerRequest; it retrieves eIM
/// packages over HTTPS (ipaSupportedProtocols ipaRetrieveHttps (0)).
pub fn ipa_capabilities(download_path: DownloadPath) -> sgp32::IpaCapabilities {
    let path = match download_path {
        DownloadPath::Direct => 0,
        DownloadPath::ViaEim => 1,
    };
    sgp32::IpaCapabilities::new(named_bits(&[path, 2]), Some(named_bits(&[0])), None)
}

fn device_info_value(info: &DeviceInfo) -> rsp::DeviceInfo {
    let release = |r: Option<u8>| r.map(|r| rsp::VersionType(FixedOctetString::new([r, 0, 0])));
    let capabilities = rsp::DeviceCapabilities::new(
        release(info.gsm_release),
        release(info.utran_release),
        None,
        None,
        None,
        release(info.eutran_epc_release),
        None,
        None,
        None,
        release(info.nr_5gc_release),
        None,
        None,
        None,
        None,
        None,
    );
    rsp::DeviceInfo::new(
        rsp::Octet4(FixedOctetString::new(info.tac)),
        capabilities,
        info.imei.map(|i| rsp::Octet8(FixedOctetString::new(i))),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tag_lists_are_read() {
        assert_eq!(
            tag_list(&[0xA0, 0xBF, 0x20, 0x81, 0xBF, 0x22]).unwrap(),
            [0xA0, 0xBF20, 0x81, 0xBF22]
        );
        assert!(tag_list(&[0xBF]).is_err());
        assert!(tag_list(&[0xBF, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(tag_list(&[]).unwrap().is_empty());
    }

    #[test]
    fn garbage_requests_are_refused_and_error_answers_encode() {
        assert!(DataPlan::new(b"\xBF\x52\x00").is_err());
        assert!(DataPlan::new(b"garbage").is_err());
        let answer = DataPlan::error_answer(None).unwrap();
        assert_eq!(&answer[..2], &[0xBF, 0x52]);
    }
}
