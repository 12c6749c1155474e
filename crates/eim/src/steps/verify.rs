//! Whether a received eUICC package result is what the associated eUICC
//! signed: `euiccSignEPR` / `euiccSignEPE` over the result data followed by
//! the input of the eUICC's SGP.32 version (v1.1+: the association token
//! TLV; v1.0: the package's `eimSignature` element), verified with the key of
//! the eUICC's verified certificate.

use ferrosim_asn1::esipa::ReceivedPackageResult;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::{
    PackageResultSignature, euicc_package_request, result_signature_input,
};
use ferrosim_crypto::ecdsa::VerifyingKey;

use crate::error::ResultRefused;
use crate::record::{DeviceRecord, Trust};

/// Checks the signature of `received`, which answers the package whose
/// request (as delivered) is `package`. Devices marked as emulating the IoT
/// functions return unsigned results: their results are taken as
/// [`Trust::Unsigned`] without a check; every other device's must verify.
pub(super) fn check(
    record: &DeviceRecord,
    package: &[u8],
    received: &ReceivedPackageResult,
) -> Result<Trust, ResultRefused> {
    let eim_signature = euicc_package_request(package)
        .map(|p| p.signature_tlv)
        .map_err(|_| ResultRefused::BadSignature)?;
    check_with(record, eim_signature, received)
}

/// As [`check`], for a result answering the package whose `eimSignature`
/// element (`5F37` TLV) is `eim_signature`: a rollback result, which
/// answers the package that enabled with rollbackFlag, long after it ended.
pub(super) fn check_with(
    record: &DeviceRecord,
    eim_signature: &[u8],
    received: &ReceivedPackageResult,
) -> Result<Trust, ResultRefused> {
    if record.emulated {
        return Ok(Trust::Unsigned);
    }
    let part = match received.signature() {
        Ok(PackageResultSignature::Result(part) | PackageResultSignature::Error(part)) => part,
        Ok(PackageResultSignature::Unsigned) => return Err(ResultRefused::Unsigned),
        Err(_) => return Err(ResultRefused::BadSignature),
    };
    let token = record.association.association_token.map(Integer::from);
    let input = result_signature_input(
        part.signed,
        record.association.euicc_version,
        token.as_ref(),
        eim_signature,
    )
    .map_err(|_| ResultRefused::BadSignature)?;
    VerifyingKey::from_sec1(&record.association.euicc_public_key)
        .and_then(|key| key.verify_raw(&input, part.signature))
        .map_err(|_| ResultRefused::BadSignature)?;
    Ok(Trust::Verified)
}
