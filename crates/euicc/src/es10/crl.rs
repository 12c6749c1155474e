//! ES10b.LoadCRL (tag BF35): the LPA hands the eUICC
//! a CRL (or one part of a partial CRL); an eUICC with CRL support verifies
//! it against its trusted CIs (or its EUM) and checks SM-DP+ certificates
//! against it from then on. Without CRL support the command is not known.

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::rsp;
use ferrosim_asn1::tlv::Tlv;

use super::{Es10Reply, Isdr};
use crate::apdu::StatusWord;

impl Isdr {
    /// ES10b.LoadCRL: `BF35 { CertificateList }` → LoadCRLResponse, with the
    /// parts still missing of a partial CRL, or the error code
    /// (invalidSignature, invalidCRLFormat, verificationKeyNotFound,
    /// fresherCrlAlreadyLoaded, undefinedError).
    pub(super) fn load_crl(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let shared = self.identity().shared();
        if !shared.supports_crls() {
            return Es10Reply::Status(StatusWord::DATA_NOT_FOUND);
        }
        let response = match shared.load_crl(cmd.value) {
            Ok(ferrosim_pki::crl::LoadOutcome::Loaded { missing_parts, .. }) => {
                rsp::LoadCRLResponse::loadCRLResponseOk(rsp::LoadCRLResponseOk::new(
                    (!missing_parts.is_empty())
                        .then(|| missing_parts.into_iter().map(Integer::from).collect()),
                ))
            }
            Ok(_) => rsp::LoadCRLResponse::loadCRLResponseOk(rsp::LoadCRLResponseOk::new(None)),
            Err(e) => rsp::LoadCRLResponse::loadCRLResponseError(rsp::LoadCRLResponseError(
                Integer::from(e.load_crl_error_code()),
            )),
        };
        Es10Reply::encode(&response)
    }
}
