//! eUICC configuration data (SGP.22 5.7.3, 5.7.4, 5.7.20, 5.7.22): the EID,
//! the default SM-DP+ and root SM-DS addresses, and the Rules
//! Authorisation Table.

use ferrosim_asn1::rasn::types::{BitString, FixedOctetString, Integer, OctetString};
use ferrosim_asn1::rsp;
use ferrosim_asn1::tlv::Tlv;

use super::{Es10Reply, Isdr, decode, expect_empty};
use crate::apdu::StatusWord;
use ferrosim_asn1::named_bits;

impl Isdr {
    /// ES10c.GetEID (GetEuiccData with tag list `5A`).
    pub(super) fn get_euicc_data(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::GetEuiccDataRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if request.tag_list.0.as_slice() != [0x5A] {
            return Es10Reply::Status(StatusWord::WRONG_DATA);
        }
        Es10Reply::encode(&rsp::GetEuiccDataResponse::new(rsp::Octet16(
            FixedOctetString::new(self.identity.eid().to_bcd()),
        )))
    }

    /// ES10a.GetEuiccConfiguredAddresses.
    pub(super) fn configured_addresses(&self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = expect_empty(cmd) {
            return e;
        }
        Es10Reply::encode(&rsp::EuiccConfiguredAddressesResponse::new(
            self.state.default_smdp_address.clone(),
            self.state.root_smds().to_owned(),
        ))
    }

    /// ES10a.SetDefaultDpAddress; an empty address removes it.
    pub(super) fn set_default_dp_address(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::SetDefaultDpAddressRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let address = request.default_dp_address.trim();
        let result = if address.len() > 255
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            127
        } else {
            self.state.default_smdp_address = (!address.is_empty()).then(|| address.to_owned());
            self.changed();
            0
        };
        Es10Reply::encode(&rsp::SetDefaultDpAddressResponse::new(Integer::from(
            result,
        )))
    }

    /// ES10b.GetRAT: this eUICC allows PPR1 and PPR2 for every operator
    /// (MCC/MNC wildcard `EEEEEE`) without end-user consent.
    pub(super) fn get_rat(&self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = expect_empty(cmd) {
            return e;
        }
        let rule = rsp::ProfilePolicyAuthorisationRule::new(
            rsp::PprIds(named_bits(&[1, 2])),
            vec![rsp::OperatorId::new(
                OctetString::from_static(&[0xEE, 0xEE, 0xEE]),
                None,
                None,
            )],
            BitString::new(),
        );
        Es10Reply::encode(&rsp::GetRatResponse::new(rsp::RulesAuthorisationTable(
            vec![rule],
        )))
    }
}
