//! LoadBoundProfilePackage: the Bound Profile Package (`BF36`) as the LPA
//! sends it, piece by piece (SGP.22 2.5.5, 5.5 and 5.7.6).
//!
//! The LPA cuts the package at element boundaries: the `BF36` tag and
//! length with the whole `BF23`; the whole `A0`; the `A1` tag and length;
//! each `88`; the whole `A2`; the `A3` tag and length; each `86`. Other cuts
//! at element boundaries (a whole group, the whole package) work too: the
//! [`BppLoader`] reads the pieces as one stream of group headers and
//! segments and keeps count of the bytes each header announced.
//!
//! Each step is verified before the next: InitialiseSecureChannel (remote
//! operation, control reference template, DPpb signature over the TLVs and
//! our one-time key, transaction id), then key agreement and the session
//! keys, then every segment's C-MAC in order (the MAC chaining value and
//! block counter carry over), the decrypted ConfigureISDP, StoreMetadata and
//! ReplaceSessionKeys, and the profile segments. The first failure stops
//! the loader with the [`BppCommandId`] and [`InstallErrorReason`] SGP.22
//! assigns to it. The loader does not install anything: it hands the
//! metadata and the plaintext profile package to its caller.

use ferrosim_asn1::tlv::{Tlv, read_header, tlv};
use ferrosim_asn1::{decode_der, rsp};
use ferrosim_crypto::bsp::{self, BspDecryptor, LENIENT_MAX_SEGMENT_LEN};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_crypto::kdf::derive_session_keys_with;
use zeroize::Zeroizing;

use crate::codes::{BppCommandId, InstallErrorReason};
use crate::profile::oid_to_dotted;

/// Tag of the Bound Profile Package.
pub(crate) const TAG_BPP: u32 = 0xBF36;
/// Largest profile package (plaintext) the loader accepts.
pub const MAX_PROFILE_PACKAGE_LEN: usize = 512 * 1024;
/// Largest StoreMetadata request accepted (SGP.22 caps the icon at 1024 bytes).
const MAX_METADATA_LEN: usize = 8 * 1024;

/// Whether a command with this outer tag is a piece of a Bound Profile Package.
pub(crate) fn is_bpp_piece(tag: u32) -> bool {
    matches!(
        tag,
        TAG_BPP | 0xA0 | 0xA1 | 0xA2 | 0xA3 | 0x86 | 0x87 | 0x88
    )
}

/// Why loading stopped: the failed command and the reason, as reported in
/// the ProfileInstallationResult.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadFailure {
    pub command: BppCommandId,
    pub reason: InstallErrorReason,
}

/// What a complete package delivered.
pub(crate) struct Loaded {
    /// `dpProprietaryData.dpOid` of ConfigureISDP, dotted.
    pub dp_oid: Option<String>,
    /// The StoreMetadata request as received (`BF25`).
    pub metadata_der: Vec<u8>,
    /// The same, decoded.
    pub metadata: rsp::StoreMetadataRequest,
    /// The unprotected profile package.
    pub package: Zeroizing<Vec<u8>>,
}

/// Progress after a piece.
pub(crate) enum Progress {
    /// More pieces are expected.
    NeedMore,
    /// The last piece arrived.
    Complete(Box<Loaded>),
}

/// What the loader needs from the download session.
pub(crate) struct SessionBinding<'a> {
    /// The session's transaction id.
    pub transaction_id: &'a [u8],
    /// The DPpb key verified in PrepareDownload.
    pub dppb: &'a VerifyingKey,
    /// Our one-time key pair (otPK/otSK.EUICC.ECKA).
    pub one_time_key: &'a OneTimeKeyPair,
    /// The EID, 16 BCD bytes (key derivation).
    pub eid: &'a [u8; 16],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    ConfigureIsdp,
    StoreMetadata,
    ReplaceSessionKeys,
    Profile,
}

impl Group {
    fn tag(self) -> u32 {
        match self {
            Self::ConfigureIsdp => 0xA0,
            Self::StoreMetadata => 0xA1,
            Self::ReplaceSessionKeys => 0xA2,
            Self::Profile => 0xA3,
        }
    }

    fn segment_tag(self) -> u32 {
        match self {
            Self::ConfigureIsdp | Self::ReplaceSessionKeys => 0x87,
            Self::StoreMetadata => 0x88,
            Self::Profile => 0x86,
        }
    }

    fn command(self, segments_seen: usize) -> BppCommandId {
        match self {
            Self::ConfigureIsdp => BppCommandId::ConfigureIsdp,
            Self::StoreMetadata if segments_seen > 0 => BppCommandId::StoreMetadata2,
            Self::StoreMetadata => BppCommandId::StoreMetadata,
            Self::ReplaceSessionKeys => BppCommandId::ReplaceSessionKeys,
            Self::Profile => BppCommandId::LoadProfileElements,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Expecting the `BF36` header.
    Start,
    /// Expecting the whole `BF23`.
    Initialise,
    /// Expecting the header of this group (`A2` may be skipped).
    GroupHeader(Group),
    /// Inside this group; `left` bytes of its value still to come.
    InGroup(Group, usize),
    /// Everything arrived.
    Done,
}

/// The state of one LoadBoundProfilePackage.
pub(crate) struct BppLoader {
    stage: Stage,
    /// Bytes of the `BF36` value not yet accounted for.
    package_left: usize,
    segments_in_group: usize,
    bsp: Option<BspDecryptor>,
    configure: Zeroizing<Vec<u8>>,
    metadata: Vec<u8>,
    decoded_metadata: Option<rsp::StoreMetadataRequest>,
    dp_oid: Option<String>,
    replace: Zeroizing<Vec<u8>>,
    profile: Zeroizing<Vec<u8>>,
}

impl BppLoader {
    /// A loader waiting for the `BF36` header.
    pub(crate) fn new() -> Self {
        Self {
            stage: Stage::Start,
            package_left: 0,
            segments_in_group: 0,
            bsp: None,
            configure: Zeroizing::new(Vec::new()),
            metadata: Vec::new(),
            decoded_metadata: None,
            dp_oid: None,
            replace: Zeroizing::new(Vec::new()),
            profile: Zeroizing::new(Vec::new()),
        }
    }

    /// The StoreMetadata request, once it has been processed.
    pub(crate) fn metadata(&self) -> Option<&rsp::StoreMetadataRequest> {
        self.decoded_metadata.as_ref()
    }

    /// Feeds one piece. `check_metadata` judges the StoreMetadata request
    /// against the eUICC's state (ICCID already installed, profile class).
    pub(crate) fn feed(
        &mut self,
        piece: &[u8],
        session: &SessionBinding<'_>,
        check_metadata: &dyn Fn(&rsp::StoreMetadataRequest) -> Result<(), InstallErrorReason>,
    ) -> Result<Progress, LoadFailure> {
        let mut rest = piece;
        while !rest.is_empty() {
            rest = match self.stage {
                Stage::Start => {
                    let (tag, header_len, len) =
                        read_header(rest).map_err(|_| self.structure_error())?;
                    if tag != TAG_BPP {
                        return Err(self.structure_error());
                    }
                    self.package_left = len;
                    self.stage = Stage::Initialise;
                    &rest[header_len..]
                }
                Stage::Initialise => {
                    let (bf23, after) = Tlv::parse(rest).map_err(|_| self.structure_error())?;
                    self.account(bf23.raw.len())?;
                    if bf23.tag != 0xBF23 {
                        return Err(self.structure_error());
                    }
                    self.bsp =
                        Some(initialise_secure_channel(&bf23, session).map_err(|reason| {
                            LoadFailure {
                                command: BppCommandId::InitialiseSecureChannel,
                                reason,
                            }
                        })?);
                    self.stage = Stage::GroupHeader(Group::ConfigureIsdp);
                    after
                }
                Stage::GroupHeader(group) => {
                    let (tag, header_len, len) =
                        read_header(rest).map_err(|_| self.structure_error())?;
                    let group = match (group, tag) {
                        (Group::ReplaceSessionKeys, 0xA3) => Group::Profile,
                        (g, t) if g.tag() == t => g,
                        _ => return Err(self.structure_error()),
                    };
                    self.stage = Stage::InGroup(group, len);
                    self.account(header_len.saturating_add(len))?;
                    self.segments_in_group = 0;
                    if group == Group::Profile {
                        // The group's length bounds the plaintext: one
                        // allocation for the whole package, so that its
                        // growth neither copies it again nor leaves copies
                        // of decrypted parts behind in freed memory.
                        self.profile.reserve(len.min(MAX_PROFILE_PACKAGE_LEN));
                    }
                    if len == 0 {
                        self.finish_group(group, check_metadata)?;
                    }
                    &rest[header_len..]
                }
                Stage::InGroup(group, left) => {
                    let (segment, after) = Tlv::parse(rest).map_err(|_| self.structure_error())?;
                    if segment.raw.len() > left || segment.tag != group.segment_tag() {
                        return Err(self.structure_error());
                    }
                    self.segment(group, segment.raw)?;
                    self.segments_in_group += 1;
                    let left = left - segment.raw.len();
                    self.stage = Stage::InGroup(group, left);
                    if left == 0 {
                        self.finish_group(group, check_metadata)?;
                    }
                    after
                }
                Stage::Done => return Err(self.structure_error()),
            };
        }
        if self.stage != Stage::Done {
            return Ok(Progress::NeedMore);
        }
        let metadata = self.decoded_metadata.take().ok_or(self.structure_error())?;
        Ok(Progress::Complete(Box::new(Loaded {
            dp_oid: self.dp_oid.take(),
            metadata_der: std::mem::take(&mut self.metadata),
            metadata,
            package: std::mem::replace(&mut self.profile, Zeroizing::new(Vec::new())),
        })))
    }

    /// Counts `len` bytes against the `BF36` length.
    fn account(&mut self, len: usize) -> Result<(), LoadFailure> {
        self.package_left = self
            .package_left
            .checked_sub(len)
            .ok_or(self.structure_error())?;
        Ok(())
    }

    /// Verifies (and decrypts) one segment of `group`.
    fn segment(&mut self, group: Group, raw: &[u8]) -> Result<(), LoadFailure> {
        let command = group.command(self.segments_in_group);
        let fail = |reason| LoadFailure { command, reason };
        if group == Group::Profile && self.profile.len() + raw.len() > MAX_PROFILE_PACKAGE_LEN {
            return Err(fail(InstallErrorReason::InsufficientMemoryForProfile));
        }
        let Self {
            bsp,
            configure,
            metadata,
            replace,
            profile,
            ..
        } = self;
        let bsp = bsp
            .as_mut()
            .ok_or(fail(InstallErrorReason::Scp03tStructureError))?;
        let mut open = |segment: &[u8]| -> Result<(), ferrosim_crypto::Error> {
            match group {
                Group::ConfigureIsdp => bsp.verify_and_decrypt_into(segment, configure).map(drop),
                Group::ReplaceSessionKeys => {
                    bsp.verify_and_decrypt_into(segment, replace).map(drop)
                }
                Group::Profile => bsp.verify_and_decrypt_into(segment, profile).map(drop),
                Group::StoreMetadata => bsp
                    .verify_mac_only(segment)
                    .map(|seg| metadata.extend_from_slice(seg.data)),
            }
        };
        let mut result = open(raw);
        // Older osmo-smdpp versions wrap each segment once more in its own
        // tag (`86 L { 86 L' .. }`); the MAC covers the inner TLV. The state
        // does not advance on a failed check, so trying again is safe.
        if result.is_err()
            && let Ok((_, header_len, _)) = read_header(raw)
            && let Ok(inner) = Tlv::parse_exact(&raw[header_len..])
            && inner.tag == group.segment_tag()
        {
            result = open(inner.raw);
        }
        result.map_err(|e| fail(segment_error(&e)))?;
        if metadata.len() > MAX_METADATA_LEN {
            return Err(fail(InstallErrorReason::IncorrectInputValues));
        }
        Ok(())
    }

    /// Interprets a complete group and moves to the next one.
    fn finish_group(
        &mut self,
        group: Group,
        check_metadata: &dyn Fn(&rsp::StoreMetadataRequest) -> Result<(), InstallErrorReason>,
    ) -> Result<(), LoadFailure> {
        let fail = |command, reason| LoadFailure { command, reason };
        match group {
            Group::ConfigureIsdp => {
                let request: rsp::ConfigureISDPRequest =
                    decode_der(&self.configure).map_err(|_| {
                        fail(
                            BppCommandId::ConfigureIsdp,
                            InstallErrorReason::IncorrectInputValues,
                        )
                    })?;
                self.dp_oid = request
                    .dp_proprietary_data
                    .map(|d| oid_to_dotted(&d.dp_oid));
                self.stage = Stage::GroupHeader(Group::StoreMetadata);
            }
            Group::StoreMetadata => {
                // An SGP.32 SM-DP+ adds fallbackAllowed (9F67) and
                // iotSpecificMetadata (BF64): the SGP.22 fields are read
                // without them, the stored DER keeps them.
                let request: rsp::StoreMetadataRequest = decode_der(&self.metadata)
                    .ok()
                    .or_else(|| decode_der(&crate::profile::sgp22_metadata(&self.metadata)?).ok())
                    .ok_or_else(|| {
                        fail(
                            BppCommandId::StoreMetadata,
                            InstallErrorReason::IncorrectInputValues,
                        )
                    })?;
                check_metadata(&request).map_err(|r| fail(BppCommandId::StoreMetadata, r))?;
                self.decoded_metadata = Some(request);
                self.stage = Stage::GroupHeader(Group::ReplaceSessionKeys);
            }
            Group::ReplaceSessionKeys => {
                let keys = bsp::decode_replace_session_keys(&self.replace).map_err(|_| {
                    fail(
                        BppCommandId::ReplaceSessionKeys,
                        InstallErrorReason::IncorrectInputValues,
                    )
                })?;
                let bsp = self.bsp.as_mut().ok_or(fail(
                    BppCommandId::ReplaceSessionKeys,
                    InstallErrorReason::Scp03tStructureError,
                ))?;
                bsp.replace_session_keys(&keys);
                self.stage = Stage::GroupHeader(Group::Profile);
            }
            Group::Profile => {
                if self.package_left != 0 {
                    return Err(self.structure_error());
                }
                self.stage = Stage::Done;
            }
        }
        Ok(())
    }

    /// A structure error attributed to the step in progress.
    fn structure_error(&self) -> LoadFailure {
        let command = match self.stage {
            Stage::Start | Stage::Initialise => BppCommandId::InitialiseSecureChannel,
            Stage::GroupHeader(g) => g.command(0),
            Stage::InGroup(g, _) => g.command(self.segments_in_group),
            Stage::Done => BppCommandId::LoadProfileElements,
        };
        LoadFailure {
            command,
            reason: InstallErrorReason::Scp03tStructureError,
        }
    }
}

/// InitialiseSecureChannel (`BF23`): checks it and derives the session keys.
fn initialise_secure_channel(
    bf23: &Tlv<'_>,
    session: &SessionBinding<'_>,
) -> Result<BspDecryptor, InstallErrorReason> {
    use InstallErrorReason as R;
    let children = bf23
        .children()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| R::IncorrectInputValues)?;
    let [remote_op, tid, crt, smdp_otpk, smdp_sign] = children.as_slice() else {
        return Err(R::IncorrectInputValues);
    };
    if remote_op.tag != 0x82
        || tid.tag != 0x80
        || crt.tag != 0xA6
        || smdp_otpk.tag != 0x5F49
        || smdp_sign.tag != 0x5F37
    {
        return Err(R::IncorrectInputValues);
    }
    if remote_op.value != [0x01] {
        return Err(R::UnsupportedRemoteOperationType);
    }
    let crt_fields = crt
        .children()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| R::IncorrectInputValues)?;
    let [key_type, key_len, host_id] = crt_fields.as_slice() else {
        return Err(R::IncorrectInputValues);
    };
    if key_type.tag != 0x80 || key_len.tag != 0x81 || host_id.tag != 0x84 {
        return Err(R::IncorrectInputValues);
    }
    if key_type.value != [ferrosim_crypto::kdf::KEY_TYPE_AES]
        || key_len.value != [ferrosim_crypto::kdf::KEY_LENGTH_AES128]
        || host_id.value.is_empty()
        || host_id.value.len() > 16
    {
        return Err(R::UnsupportedCrtValues);
    }
    // smdpSign covers the first four TLVs as received and our otPK.
    let mut signed = Vec::with_capacity(bf23.value.len() + 70);
    for part in [remote_op, tid, crt, smdp_otpk] {
        signed.extend_from_slice(part.raw);
    }
    signed.extend_from_slice(&tlv(0x5F49, session.one_time_key.public_sec1()));
    session
        .dppb
        .verify_raw(&signed, smdp_sign.value)
        .map_err(|_| R::InvalidSignature)?;
    if tid.value != session.transaction_id {
        return Err(R::InvalidTransactionId);
    }
    let shared = session
        .one_time_key
        .agree(smdp_otpk.value)
        .map_err(|_| R::IncorrectInputValues)?;
    let keys = derive_session_keys_with(
        shared.as_bytes(),
        key_type.value[0],
        key_len.value[0],
        host_id.value,
        session.eid,
    )
    .map_err(|_| R::UnsupportedCrtValues)?;
    Ok(BspDecryptor::new(&keys).with_max_segment_len(LENIENT_MAX_SEGMENT_LEN))
}

/// The install error reason of a segment that does not verify or decrypt.
fn segment_error(e: &ferrosim_crypto::Error) -> InstallErrorReason {
    match e {
        ferrosim_crypto::Error::MacMismatch => InstallErrorReason::Scp03tSecurityError,
        ferrosim_crypto::Error::CounterExhausted => InstallErrorReason::UnknownError,
        _ => InstallErrorReason::Scp03tStructureError,
    }
}

#[cfg(test)]
mod tests;
