//! Inspection: what a package provisions, decoded into one value (ICCID,
//! IMSI, AKA algorithm and keys, PINs and PUKs, service provider name, APNs).
//!
//! This is what the SM-DP+ shows for an imported profile type and what the
//! virtual eUICC keeps for an installed profile. Its `Debug` output never
//! shows keys or code values.

use std::fmt;

use crate::aka::{self, AkaAlgorithm, AkaParameters};
use crate::codes::{self, PinEntry, PukEntry};
use crate::element::ElementKind;
use crate::error::Error;
use crate::file::{field, template_file};
use crate::header::Service;
use crate::identity::{Imsi, swapped_bcd_digits};
use crate::node::Node;
use crate::package::ProfilePackage;
use crate::text::{decode_acl, decode_spn};

/// The provisioning content of a package.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileSummary {
    /// ICCID digits from the profile header.
    pub iccid: String,
    /// ICCID digits from EF.ICCID of the MF, when the package sets its content.
    pub ef_iccid: Option<String>,
    /// IMSI from EF.IMSI of the first USIM (or IoT profile), with the MNC
    /// length taken from EF.AD when the package sets it.
    pub imsi: Option<Imsi>,
    /// `profileType` from the header.
    pub profile_type: Option<String>,
    /// SAIP version (major, minor) the package declares.
    pub version: (u8, u8),
    /// The services the eUICC must support.
    pub services: Vec<Service>,
    /// One entry per `akaParameter` element, in package order.
    pub aka: Vec<AkaParameters>,
    /// Every PIN and ADM key of every `pinCodes` element.
    pub pins: Vec<PinEntry>,
    /// Every PUK of every `pukCodes` element.
    pub puks: Vec<PukEntry>,
    /// Service provider name from EF.SPN, when the package sets it.
    pub spn: Option<String>,
    /// APNs of the USIM's APN control list (EF.ACL); empty when the package
    /// does not set one. SAIP has no other APN field: devices usually learn
    /// the APN from the network or their carrier configuration.
    pub apns: Vec<String>,
}

impl ProfileSummary {
    /// Decodes the summary of a package.
    pub fn decode(package: &ProfilePackage) -> Result<Self, Error> {
        let header = package.header();
        let mut summary = ProfileSummary {
            iccid: header.iccid_digits.clone(),
            ef_iccid: None,
            imsi: None,
            profile_type: header.profile_type.clone(),
            version: (header.major_version, header.minor_version),
            services: header.mandatory_services.clone(),
            aka: Vec::new(),
            pins: Vec::new(),
            puks: Vec::new(),
            spn: None,
            apns: Vec::new(),
        };
        let mut context = None;
        for (kind, node) in package.nodes()? {
            if kind.opens_pin_context() {
                context = Some(kind);
            }
            match kind {
                ElementKind::Mf => summary.read_iccid(&node, field::MF_EF_ICCID)?,
                ElementKind::Usim => {
                    summary.read_imsi(&node, field::USIM_EF_IMSI, field::USIM_EF_AD)?;
                    summary.read_spn(&node, field::USIM_EF_SPN)?;
                }
                ElementKind::Iot => {
                    summary.read_iccid(&node, field::IOT_EF_ICCID)?;
                    summary.read_imsi(&node, field::IOT_EF_IMSI, field::IOT_EF_AD)?;
                }
                ElementKind::OptIot => summary.read_spn(&node, field::OPT_IOT_EF_SPN)?,
                ElementKind::OptUsim if summary.apns.is_empty() => {
                    if let Some(content) = content_of(&node, field::OPT_USIM_EF_ACL)? {
                        summary.apns = decode_acl(&content);
                    }
                }
                ElementKind::AkaParameter => summary.aka.push(aka::decode(&node)?.parameters),
                ElementKind::PinCodes => summary.pins.extend(
                    codes::decode_pins(&node, context)?
                        .into_iter()
                        .map(|c| c.entry),
                ),
                ElementKind::PukCodes => summary
                    .puks
                    .extend(codes::decode_puks(&node)?.into_iter().map(|c| c.entry)),
                _ => {}
            }
        }
        Ok(summary)
    }

    /// The first `algoParameter` (the USIM's in a usual package).
    fn first_algorithm(&self) -> Option<(&AkaAlgorithm, &[u8], &[u8])> {
        self.aka.iter().find_map(|a| match a {
            AkaParameters::Algorithm {
                algorithm, k, opc, ..
            } => Some((algorithm, k.as_slice(), opc.as_slice())),
            AkaParameters::Mapping { .. } => None,
        })
    }

    /// The AKA algorithm of the first `algoParameter`.
    pub fn algorithm(&self) -> Option<AkaAlgorithm> {
        self.first_algorithm().map(|(a, _, _)| *a)
    }

    /// K of the first `algoParameter`.
    pub fn k(&self) -> Option<&[u8]> {
        self.first_algorithm().map(|(_, k, _)| k)
    }

    /// OPc (TOPc for TUAK) of the first `algoParameter`.
    pub fn opc(&self) -> Option<&[u8]> {
        self.first_algorithm().map(|(_, _, opc)| opc)
    }

    /// The first PIN entry with `key_reference` (`0x01` PIN1, `0x81` PIN2, `0x0A` ADM1).
    pub fn pin(&self, key_reference: u8) -> Option<&PinEntry> {
        self.pins.iter().find(|p| p.key_reference == key_reference)
    }

    /// The first PUK entry with `key_reference` (`0x01` PUK1, `0x81` PUK2).
    pub fn puk(&self, key_reference: u8) -> Option<&PukEntry> {
        self.puks.iter().find(|p| p.key_reference == key_reference)
    }

    fn read_iccid(&mut self, element: &Node<'_>, index: u32) -> Result<(), Error> {
        if self.ef_iccid.is_none()
            && let Some(content) = filled_content_of(element, index)?
        {
            let digits =
                swapped_bcd_digits(content.get(..10).unwrap_or(&content)).map_err(|_| {
                    Error::InvalidField {
                        element: ElementKind::Mf,
                        field: "ef-iccid",
                        reason: "content is not BCD digits",
                    }
                })?;
            // All-F content is a placeholder left for personalisation.
            self.ef_iccid = (!digits.is_empty()).then_some(digits);
        }
        Ok(())
    }

    fn read_imsi(
        &mut self,
        element: &Node<'_>,
        imsi_index: u32,
        ad_index: u32,
    ) -> Result<(), Error> {
        if self.imsi.is_some() {
            return Ok(());
        }
        let Some(content) = filled_content_of(element, imsi_index)? else {
            return Ok(());
        };
        // A length byte of 00 or FF marks an IMSI left for personalisation.
        if matches!(content.first(), Some(0x00 | 0xFF)) {
            return Ok(());
        }
        let mut imsi = Imsi::from_ef_imsi(&content)?;
        if let Some(ad) = content_of(element, ad_index)?
            && let Some(&byte4) = ad.get(3)
            && matches!(byte4 & 0x0F, 2 | 3)
        {
            imsi = imsi.set_mnc_len(usize::from(byte4 & 0x0F))?;
        }
        self.imsi = Some(imsi);
        Ok(())
    }

    fn read_spn(&mut self, element: &Node<'_>, index: u32) -> Result<(), Error> {
        if self.spn.is_none()
            && let Some(content) = content_of(element, index)?
        {
            self.spn = decode_spn(&content);
        }
        Ok(())
    }
}

/// Content of a template file the package describes (fill content or an FCP
/// fill pattern); `None` when it leaves the content to the template.
fn content_of(element: &Node<'_>, index: u32) -> Result<Option<Vec<u8>>, Error> {
    match template_file(element, index)? {
        Some(file) if file.has_content() || file.fcp.is_some() => {
            let content = file.content()?;
            Ok(content.filter(|c| !c.is_empty()))
        }
        _ => Ok(None),
    }
}

/// Content of a template file only when the package fills it explicitly.
fn filled_content_of(element: &Node<'_>, index: u32) -> Result<Option<Vec<u8>>, Error> {
    match template_file(element, index)? {
        Some(file) if file.has_content() => file.content(),
        _ => Ok(None),
    }
}

impl fmt::Debug for ProfileSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileSummary")
            .field("iccid", &self.iccid)
            .field("ef_iccid", &self.ef_iccid)
            .field("imsi", &self.imsi)
            .field("profile_type", &self.profile_type)
            .field("version", &self.version)
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .field("aka", &self.aka)
            .field("pins", &self.pins)
            .field("puks", &self.puks)
            .field("spn", &self.spn)
            .field("apns", &self.apns)
            .finish()
    }
}
