//! Decoding of the eUICC's answers: the BER-TLV primitives (INTEGER, BIT
//! STRING, UTF8String, BCD ICCID) and the `decode` functions of the types in
//! [`super::types`]. Elements are found by tag; unknown ones are skipped, so
//! later eUICC versions with extension fields decode too. Nothing here
//! panics on malformed input: every failure is an [`Es10Error::BadResponse`].

use ferrosim_asn1::rasn::types::BitString;
use ferrosim_asn1::tlv::Tlv;

use super::Es10Error;
use super::types::{
    EuiccInfo1, EuiccInfo2, ExtCardResource, InstallationOutcome, InstallationResult,
    NotificationMetadata, NotificationOperation, PendingNotification, PolicyRules, ProfileClass,
    ProfileInfo, ProfileState, Version,
};

/// Parses `bytes` as exactly one TLV with `tag`.
pub(crate) fn outer<'a>(
    function: &'static str,
    bytes: &'a [u8],
    tag: u32,
) -> Result<Tlv<'a>, Es10Error> {
    Tlv::parse_tagged(bytes, tag).map_err(|e| Es10Error::bad(function, e))
}

/// The children of `tlv`, all well-formed.
pub(crate) fn children<'a>(
    function: &'static str,
    tlv: &Tlv<'a>,
) -> Result<Vec<Tlv<'a>>, Es10Error> {
    tlv.children()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Es10Error::bad(function, e))
}

/// The first child with `tag`, or an error naming it.
pub(crate) fn required<'a>(
    function: &'static str,
    items: &[Tlv<'a>],
    tag: u32,
    name: &str,
) -> Result<Tlv<'a>, Es10Error> {
    optional(items, tag).ok_or_else(|| Es10Error::bad(function, format!("no {name} ({tag:X})")))
}

/// The first child with `tag`.
pub(crate) fn optional<'a>(items: &[Tlv<'a>], tag: u32) -> Option<Tlv<'a>> {
    items.iter().find(|t| t.tag == tag).copied()
}

/// A BER INTEGER value of 1 to 8 bytes.
pub(crate) fn integer(function: &'static str, value: &[u8]) -> Result<i64, Es10Error> {
    if value.is_empty() || value.len() > 8 {
        return Err(Es10Error::bad(
            function,
            format!("{}-byte INTEGER", value.len()),
        ));
    }
    let negative = value[0] & 0x80 != 0;
    let start: i64 = if negative { -1 } else { 0 };
    Ok(value
        .iter()
        .fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

/// A UTF8String value.
pub(crate) fn utf8(function: &'static str, value: &[u8]) -> Result<String, Es10Error> {
    String::from_utf8(value.to_vec()).map_err(|_| Es10Error::bad(function, "text is not UTF-8"))
}

/// The bits of a BIT STRING value (first octet: unused bits).
pub(crate) fn bits(function: &'static str, value: &[u8]) -> Result<BitString, Es10Error> {
    let (&unused, data) = value
        .split_first()
        .ok_or_else(|| Es10Error::bad(function, "empty BIT STRING"))?;
    if unused > 7 || (data.is_empty() && unused != 0) {
        return Err(Es10Error::bad(function, "invalid BIT STRING"));
    }
    let count = data.len() * 8 - usize::from(unused);
    let mut bits = BitString::from_slice(data);
    bits.truncate(count);
    Ok(bits)
}

/// A VersionType value.
pub(crate) fn version(function: &'static str, value: &[u8]) -> Result<Version, Es10Error> {
    <[u8; 3]>::try_from(value)
        .map(Version)
        .map_err(|_| Es10Error::bad(function, format!("{}-byte version", value.len())))
}

/// ICCID digits from the nibble-swapped BCD coding, `F` padding dropped.
pub(crate) fn iccid_digits(function: &'static str, value: &[u8]) -> Result<String, Es10Error> {
    ferrosim_saip::bcd::swapped_digits(value)
        .map_err(|_| Es10Error::bad(function, "ICCID is not BCD"))
}

/// The OCTET STRINGs of a `SEQUENCE OF SubjectKeyIdentifier`.
fn key_ids(function: &'static str, list: &Tlv<'_>) -> Result<Vec<Vec<u8>>, Es10Error> {
    Ok(children(function, list)?
        .into_iter()
        .filter(|t| t.tag == 0x04)
        .map(|t| t.value.to_vec())
        .collect())
}

impl EuiccInfo1 {
    /// Decodes a `BF20`.
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "GetEUICCInfo1";
        let tlv = outer(F, &raw, 0xBF20)?;
        let items = children(F, &tlv)?;
        let svn = version(F, required(F, &items, 0x82, "svn")?.value)?;
        let verification = key_ids(
            F,
            &required(F, &items, 0xA9, "CI key ids for verification")?,
        )?;
        let signing = key_ids(F, &required(F, &items, 0xAA, "CI key ids for signing")?)?;
        Ok(Self {
            svn,
            ci_pkids_for_verification: verification,
            ci_pkids_for_signing: signing,
            raw,
        })
    }
}

impl EuiccInfo2 {
    /// Decodes a `BF22`.
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "GetEUICCInfo2";
        let tlv = outer(F, &raw, 0xBF22)?;
        let items = children(F, &tlv)?;
        let opt_version = |tag| -> Result<Option<Version>, Es10Error> {
            optional(&items, tag)
                .map(|t| version(F, t.value))
                .transpose()
        };
        let info = Self {
            profile_version: version(F, required(F, &items, 0x81, "profileVersion")?.value)?,
            svn: version(F, required(F, &items, 0x82, "svn")?.value)?,
            firmware_version: version(F, required(F, &items, 0x83, "euiccFirmwareVer")?.value)?,
            ext_card_resource: optional(&items, 0x84)
                .map(|t| ext_card_resource(t.value))
                .unwrap_or_default(),
            ts102241_version: opt_version(0x86)?,
            globalplatform_version: opt_version(0x87)?,
            ci_pkids_for_verification: optional(&items, 0xA9)
                .map(|t| key_ids(F, &t))
                .transpose()?
                .unwrap_or_default(),
            ci_pkids_for_signing: optional(&items, 0xAA)
                .map(|t| key_ids(F, &t))
                .transpose()?
                .unwrap_or_default(),
            euicc_category: optional(&items, 0x8B)
                .map(|t| integer(F, t.value))
                .transpose()?,
            pp_version: opt_version(0x04)?,
            sas_accreditation_number: optional(&items, 0x0C)
                .map(|t| utf8(F, t.value))
                .transpose()?,
            raw: Vec::new(),
        };
        Ok(Self { raw, ..info })
    }
}

/// TS 102 226 extended card resource TLVs (81 apps, 82 free NVM, 83 free RAM).
/// Unreadable content is reported as absent rather than failing the whole info.
fn ext_card_resource(value: &[u8]) -> ExtCardResource {
    let mut out = ExtCardResource::default();
    for item in ferrosim_asn1::tlv::TlvIter::new(value) {
        let Ok(item) = item else { break };
        if item.value.len() > 8 {
            continue;
        }
        let n = item
            .value
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        match item.tag {
            0x81 => out.installed_applications = Some(n),
            0x82 => out.free_non_volatile_memory = Some(n),
            0x83 => out.free_volatile_memory = Some(n),
            _ => {}
        }
    }
    out
}

impl ProfileInfo {
    /// Decodes one `E3` element.
    pub(crate) fn decode(function: &'static str, tlv: &Tlv<'_>) -> Result<Self, Es10Error> {
        let items = children(function, tlv)?;
        let text = |tag| -> Result<Option<String>, Es10Error> {
            optional(&items, tag)
                .map(|t| utf8(function, t.value))
                .transpose()
        };
        Ok(Self {
            iccid: optional(&items, 0x5A)
                .map(|t| iccid_digits(function, t.value))
                .transpose()?,
            isdp_aid: optional(&items, 0x4F).map(|t| t.value.to_vec()),
            state: optional(&items, 0x9F70)
                .map(|t| integer(function, t.value))
                .transpose()?
                .and_then(ProfileState::from_code),
            nickname: text(0x90)?,
            service_provider_name: text(0x91)?,
            profile_name: text(0x92)?,
            class: optional(&items, 0x95)
                .map(|t| integer(function, t.value))
                .transpose()?
                .and_then(ProfileClass::from_code),
            policy_rules: optional(&items, 0x99)
                .map(|t| bits(function, t.value))
                .transpose()?
                .map(|b| PolicyRules::from_bits(&b))
                .unwrap_or_default(),
        })
    }
}

impl NotificationMetadata {
    /// Decodes a `BF2F` element.
    pub(crate) fn decode(function: &'static str, tlv: &Tlv<'_>) -> Result<Self, Es10Error> {
        tlv.expect_tag(0xBF2F)
            .map_err(|e| Es10Error::bad(function, e))?;
        let items = children(function, tlv)?;
        Ok(Self {
            seq_number: integer(
                function,
                required(function, &items, 0x80, "seqNumber")?.value,
            )?,
            operation: NotificationOperation::of_event(&bits(
                function,
                required(function, &items, 0x81, "profileManagementOperation")?.value,
            )?),
            address: utf8(
                function,
                required(function, &items, 0x0C, "notificationAddress")?.value,
            )?,
            iccid: optional(&items, 0x5A)
                .map(|t| iccid_digits(function, t.value))
                .transpose()?,
        })
    }
}

impl PendingNotification {
    /// Decodes one `PendingNotification`: a ProfileInstallationResult
    /// (`BF37`) or an OtherSignedNotification (`30`).
    pub fn decode(function: &'static str, tlv: &Tlv<'_>) -> Result<Self, Es10Error> {
        let metadata = match tlv.tag {
            0xBF37 => InstallationResult::decode(tlv.raw.to_vec())?.metadata,
            0x30 => {
                let items = children(function, tlv)?;
                NotificationMetadata::decode(
                    function,
                    &required(function, &items, 0xBF2F, "tbsOtherNotification")?,
                )?
            }
            other => {
                return Err(Es10Error::bad(
                    function,
                    format!("unknown notification tag {other:X}"),
                ));
            }
        };
        Ok(Self {
            metadata,
            raw: tlv.raw.to_vec(),
        })
    }
}

impl InstallationResult {
    /// Decodes a ProfileInstallationResult (`BF37`).
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "LoadBoundProfilePackage";
        let tlv = outer(F, &raw, 0xBF37)?;
        let items = children(F, &tlv)?;
        let data = required(F, &items, 0xBF27, "profileInstallationResultData")?;
        let fields = children(F, &data)?;
        let transaction_id = ferrosim_ids::TransactionId::from_bytes(
            required(F, &fields, 0x80, "transactionId")?.value,
        )
        .map_err(|e| Es10Error::bad(F, format!("transactionId: {e}")))?;
        let metadata = NotificationMetadata::decode(
            F,
            &required(F, &fields, 0xBF2F, "notificationMetadata")?,
        )?;
        let result = required(F, &fields, 0xA2, "finalResult")?;
        let choice = children(F, &result)?;
        let outcome = match choice.first() {
            Some(ok) if ok.tag == 0xA0 => {
                let parts = children(F, ok)?;
                InstallationOutcome::Success {
                    isdp_aid: optional(&parts, 0x4F)
                        .map(|t| t.value.to_vec())
                        .unwrap_or_default(),
                }
            }
            Some(err) if err.tag == 0xA1 => {
                let parts = children(F, err)?;
                InstallationOutcome::Failure {
                    bpp_command_id: integer(F, required(F, &parts, 0x80, "bppCommandId")?.value)?,
                    error_reason: integer(F, required(F, &parts, 0x81, "errorReason")?.value)?,
                }
            }
            _ => {
                return Err(Es10Error::bad(
                    F,
                    "finalResult is neither success nor error",
                ));
            }
        };
        Ok(Self {
            transaction_id,
            metadata,
            outcome,
            raw,
        })
    }

    /// The ICCID of the profile, when the metadata names one.
    pub fn iccid(&self) -> Option<&str> {
        self.metadata.iccid.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es10::types::{bpp_command_name, installation_error_name};
    use ferrosim_asn1::tlv::tlv;

    #[test]
    fn primitives() {
        assert_eq!(integer("t", &[0x01]).unwrap(), 1);
        assert_eq!(integer("t", &[0x00, 0xFF]).unwrap(), 255);
        assert_eq!(integer("t", &[0xFF]).unwrap(), -1);
        assert!(integer("t", &[]).is_err());
        assert!(integer("t", &[0; 9]).is_err());
        let four = bits("t", &[0x04, 0x80]).unwrap();
        assert_eq!(
            four.iter().by_vals().collect::<Vec<_>>(),
            [true, false, false, false]
        );
        assert!(bits("t", &[0x00]).unwrap().is_empty());
        assert!(bits("t", &[]).is_err());
        assert!(bits("t", &[0x08, 0x00]).is_err());
        assert!(bits("t", &[0x01]).is_err());
        assert_eq!(iccid_digits("t", &[0x98, 0x10, 0xF5]).unwrap(), "89015");
        assert!(iccid_digits("t", &[0xA1]).is_err());
        assert_eq!(Version([2, 2, 2]).to_string(), "2.2.2");
    }

    #[test]
    fn info1() {
        let mut body = tlv(0x82, &[2, 5, 0]);
        body.extend(tlv(0xA9, &tlv(0x04, &[1; 20])));
        body.extend(tlv(
            0xAA,
            &[tlv(0x04, &[2; 20]), tlv(0x04, &[3; 20])].concat(),
        ));
        body.extend(tlv(0x99, &[0])); // unknown element: skipped
        let raw = tlv(0xBF20, &body);
        let info = EuiccInfo1::decode(raw.clone()).unwrap();
        assert_eq!(info.svn, Version([2, 5, 0]));
        assert_eq!(info.ci_pkids_for_verification, vec![vec![1; 20]]);
        assert_eq!(info.ci_pkids_for_signing.len(), 2);
        assert_eq!(info.raw, raw);
        assert!(EuiccInfo1::decode(tlv(0xBF20, &tlv(0x82, &[2, 5]))).is_err());
        assert!(EuiccInfo1::decode(vec![0xBF, 0x20]).is_err());
    }

    #[test]
    fn installation_result_failure() {
        let mut meta = tlv(0x80, &[7]);
        meta.extend(tlv(0x81, &[0x07, 0x80]));
        meta.extend(tlv(0x0C, b"smdp.example.com"));
        let mut data = tlv(0x80, &[1, 2, 3]);
        data.extend(tlv(0xBF2F, &meta));
        data.extend(tlv(0x06, &[0x88, 0x37, 0x0A]));
        data.extend(tlv(
            0xA2,
            &tlv(0xA1, &[tlv(0x80, &[5]), tlv(0x81, &[12])].concat()),
        ));
        let mut body = tlv(0xBF27, &data);
        body.extend(tlv(0x5F37, &[0; 64]));
        let r = InstallationResult::decode(tlv(0xBF37, &body)).unwrap();
        assert_eq!(r.metadata.seq_number, 7);
        assert_eq!(r.metadata.operation, Some(NotificationOperation::Install));
        assert_eq!(r.iccid(), None);
        assert_eq!(
            r.outcome,
            InstallationOutcome::Failure {
                bpp_command_id: 5,
                error_reason: 12
            }
        );
        assert_eq!(
            installation_error_name(12),
            "installFailedDueToPEProcessingError"
        );
        assert_eq!(bpp_command_name(5), "loadProfileElements");
    }
}
