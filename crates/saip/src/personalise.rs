//! Personalisation: turn a profile type (an imported package) into one
//! subscription by writing its ICCID, IMSI, keys and codes.
//!
//! The package is edited at TLV level: only the values written change (and
//! the length fields around them, if a size changes); every other byte stays
//! exactly as imported. What is written:
//!
//! | value | where |
//! |---|---|
//! | ICCID | `header.iccid` (in-order BCD) and EF.ICCID of `mf` / `iot` (swapped BCD) |
//! | IMSI | EF.IMSI of every `usim` / `iot`; with a known MNC length also byte 4 of their EF.AD |
//! | K, OPc | `key` / `opc` of every `akaParameter` holding an `algoParameter` |
//! | PIN1, ADM1 | `pinValue` of key references `01`, `0A` (MF `pinCodes`) |
//! | PIN2 | `pinValue` of key reference `81` (every DF/ADF `pinCodes`) |
//! | PUK1, PUK2 | `pukValue` of key references `01`, `81` |
//!
//! EF.ACC (access class), ISIM identities (IMPI/IMPU) and PLMN lists are left
//! as the profile type defines them.

use rand::CryptoRng;

use crate::aka;
use crate::codes::{self, KEY_REF_ADM1, KEY_REF_PIN1, KEY_REF_PIN2};
use crate::element::ElementKind;
use crate::error::Error;
use crate::file::{FileView, field, template_file};
use crate::identity::{Iccid, Imsi};
use crate::node::Node;
use crate::package::ProfilePackage;
use crate::patch::{self, ValuePatch};
use crate::secrets::{AdmKey, Key128, Pin, Puk};

/// The values that make a profile type into one subscription. `None` keeps
/// the package's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personalisation {
    /// ICCID of the subscription (always written).
    pub iccid: Iccid,
    /// IMSI.
    pub imsi: Option<Imsi>,
    /// Subscriber key K.
    pub k: Option<Key128>,
    /// OPc (TOPc for TUAK), as the operator's authentication centre holds it.
    pub opc: Option<Key128>,
    /// PIN1 (key reference `01`).
    pub pin1: Option<Pin>,
    /// PIN2 (key reference `81`).
    pub pin2: Option<Pin>,
    /// PUK1 (key reference `01`).
    pub puk1: Option<Puk>,
    /// PUK2 (key reference `81`).
    pub puk2: Option<Puk>,
    /// ADM1 (key reference `0A`).
    pub adm1: Option<AdmKey>,
}

impl Personalisation {
    /// A personalisation that only sets the ICCID.
    pub fn new(iccid: Iccid) -> Self {
        Personalisation {
            iccid,
            imsi: None,
            k: None,
            opc: None,
            pin1: None,
            pin2: None,
            puk1: None,
            puk2: None,
            adm1: None,
        }
    }

    /// Sets K and OPc to fresh random keys drawn from `rng` (the operator's
    /// authentication centre must then be given the same values).
    pub fn with_random_keys<R: CryptoRng + ?Sized>(mut self, rng: &mut R) -> Self {
        self.k = Some(Key128::random(rng));
        self.opc = Some(Key128::random(rng));
        self
    }
}

impl ProfilePackage {
    /// Writes `p` into a copy of the package and returns the new DER bytes.
    /// Fails with [`Error::NotInPackage`] when a value has no place to go.
    pub fn personalise(&self, p: &Personalisation) -> Result<Vec<u8>, Error> {
        let nodes = self.nodes()?;
        let mut patches = Vec::new();
        let mut targets = Targets::default();
        for (kind, node) in &nodes {
            match kind {
                ElementKind::Header => {
                    let iccid = crate::node::require(node, 0x83, ElementKind::Header, "iccid")?;
                    patches.push(ValuePatch::new(&iccid, p.iccid.to_header_bcd().to_vec()));
                }
                ElementKind::Mf => {
                    targets.ef_iccid |=
                        replace_file(node, field::MF_EF_ICCID, &p.iccid.to_bcd(), &mut patches)?;
                }
                ElementKind::Iot => {
                    targets.ef_iccid |=
                        replace_file(node, field::IOT_EF_ICCID, &p.iccid.to_bcd(), &mut patches)?;
                    if let Some(imsi) = &p.imsi {
                        targets.ef_imsi |= write_imsi(
                            node,
                            field::IOT_EF_IMSI,
                            field::IOT_EF_AD,
                            imsi,
                            &mut patches,
                        )?;
                    }
                }
                ElementKind::Usim => {
                    if let Some(imsi) = &p.imsi {
                        targets.ef_imsi |= write_imsi(
                            node,
                            field::USIM_EF_IMSI,
                            field::USIM_EF_AD,
                            imsi,
                            &mut patches,
                        )?;
                    }
                }
                ElementKind::AkaParameter => {
                    let aka = aka::decode(node)?;
                    if let Some(key_node) = aka.key {
                        targets.algo = true;
                        if let Some(k) = &p.k {
                            patches.push(key_patch("K", &key_node, k)?);
                        }
                    }
                    if let (Some(opc_node), Some(opc)) = (aka.opc, &p.opc) {
                        patches.push(key_patch("OPc", &opc_node, opc)?);
                    }
                }
                ElementKind::PinCodes => {
                    for code in codes::decode_pins(node, None)? {
                        let value = match code.entry.key_reference {
                            KEY_REF_PIN1 => {
                                p.pin1.as_ref().map(|v| (v.as_bytes(), &mut targets.pin1))
                            }
                            KEY_REF_PIN2 => {
                                p.pin2.as_ref().map(|v| (v.as_bytes(), &mut targets.pin2))
                            }
                            KEY_REF_ADM1 => {
                                p.adm1.as_ref().map(|v| (v.as_bytes(), &mut targets.adm1))
                            }
                            _ => None,
                        };
                        if let Some((bytes, found)) = value {
                            *found = true;
                            patches.push(ValuePatch::new(&code.value, bytes.to_vec()));
                        }
                    }
                }
                ElementKind::PukCodes => {
                    for code in codes::decode_puks(node)? {
                        let value = match code.entry.key_reference {
                            KEY_REF_PIN1 => {
                                p.puk1.as_ref().map(|v| (v.as_bytes(), &mut targets.puk1))
                            }
                            KEY_REF_PIN2 => {
                                p.puk2.as_ref().map(|v| (v.as_bytes(), &mut targets.puk2))
                            }
                            _ => None,
                        };
                        if let Some((bytes, found)) = value {
                            *found = true;
                            patches.push(ValuePatch::new(&code.value, bytes.to_vec()));
                        }
                    }
                }
                _ => {}
            }
        }
        targets.check(p)?;
        patch::apply(self.as_bytes(), patches)
    }

    /// As [`ProfilePackage::personalise`], parsing the result into a package.
    pub fn personalised(&self, p: &Personalisation) -> Result<ProfilePackage, Error> {
        ProfilePackage::from_vec(self.personalise(p)?)
    }
}

/// Which requested values found a place in the package.
#[derive(Debug, Default)]
struct Targets {
    ef_iccid: bool,
    ef_imsi: bool,
    algo: bool,
    pin1: bool,
    pin2: bool,
    adm1: bool,
    puk1: bool,
    puk2: bool,
}

impl Targets {
    fn check(&self, p: &Personalisation) -> Result<(), Error> {
        let missing = [
            (true, self.ef_iccid, "EF.ICCID (mf or iot element)"),
            (
                p.imsi.is_some(),
                self.ef_imsi,
                "EF.IMSI (usim or iot element)",
            ),
            (
                p.k.is_some() || p.opc.is_some(),
                self.algo,
                "akaParameter with algoParameter",
            ),
            (p.pin1.is_some(), self.pin1, "PIN1 (key reference 01)"),
            (p.pin2.is_some(), self.pin2, "PIN2 (key reference 81)"),
            (p.adm1.is_some(), self.adm1, "ADM1 (key reference 0A)"),
            (p.puk1.is_some(), self.puk1, "PUK1 (key reference 01)"),
            (p.puk2.is_some(), self.puk2, "PUK2 (key reference 81)"),
        ];
        match missing.iter().find(|(wanted, found, _)| *wanted && !*found) {
            Some((_, _, what)) => Err(Error::NotInPackage { what }),
            None => Ok(()),
        }
    }
}

/// Replaces the whole content of the template file `index` of `element`:
/// its fill entries give way to one `fillFileContent`; `doNotCreate` and the
/// FCP stay as they are. Returns whether the file field exists.
fn replace_file(
    element: &Node<'_>,
    index: u32,
    content: &[u8],
    patches: &mut Vec<ValuePatch>,
) -> Result<bool, Error> {
    let Some(file) = template_file(element, index)? else {
        return Ok(false);
    };
    let mut value = Vec::with_capacity(file.node.value().len() + content.len());
    for child in file.node.children()? {
        if !matches!(child.tag(), 0x82 | 0x83) {
            value.extend_from_slice(child.tlv.raw);
        }
    }
    ferrosim_asn1::tlv::write_tlv(&mut value, 0x83, content);
    patches.push(ValuePatch::new(&file.node, value));
    Ok(true)
}

/// Writes EF.IMSI and, when the IMSI carries its MNC length, EF.AD byte 4.
fn write_imsi(
    element: &Node<'_>,
    imsi_index: u32,
    ad_index: u32,
    imsi: &Imsi,
    patches: &mut Vec<ValuePatch>,
) -> Result<bool, Error> {
    let found = replace_file(element, imsi_index, &imsi.to_ef_imsi(), patches)?;
    if let (true, Some(mnc_len)) = (found, imsi.mnc_len()) {
        let ad = template_file(element, ad_index)?.ok_or(Error::NotInPackage {
            what: "EF.AD content (for the MNC length)",
        })?;
        patches.push(mnc_length_patch(&ad, mnc_len as u8)?);
    }
    Ok(found)
}

/// Sets the low nibble of EF.AD byte 4 in the fill segment that holds it.
fn mnc_length_patch(ad: &FileView<'_>, mnc_len: u8) -> Result<ValuePatch, Error> {
    const BYTE4: usize = 3;
    let (start, segment) = ad
        .segments
        .iter()
        .find(|(start, seg)| *start <= BYTE4 && BYTE4 < start + seg.value().len())
        .ok_or(Error::NotInPackage {
            what: "EF.AD content (for the MNC length)",
        })?;
    let mut value = segment.value().to_vec();
    let byte = &mut value[BYTE4 - start];
    *byte = (*byte & 0xF0) | mnc_len;
    Ok(ValuePatch::new(segment, value))
}

fn key_patch(field: &'static str, node: &Node<'_>, key: &Key128) -> Result<ValuePatch, Error> {
    if node.value().len() != key.as_bytes().len() {
        return Err(Error::KeyLengthMismatch {
            field,
            package: node.value().len(),
            supplied: key.as_bytes().len(),
        });
    }
    Ok(ValuePatch::new(node, key.as_bytes().to_vec()))
}
