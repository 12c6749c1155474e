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
    ///
    /// Where each value goes is found by walking the package the first time
    /// and kept with it ([`Plan`]), so personalising many subscriptions from
    /// one profile type only writes values; the result is the same.
    pub fn personalise(&self, p: &Personalisation) -> Result<Vec<u8>, Error> {
        self.personalisation_plan().write(self.as_bytes(), p)
    }

    /// As [`ProfilePackage::personalise`], parsing the result into a package.
    pub fn personalised(&self, p: &Personalisation) -> Result<ProfilePackage, Error> {
        ProfilePackage::from_vec(self.personalise(p)?)
    }
}

/// Where a package takes each personalised value: one step per element that
/// takes one, in package order, so that writing a personalisation meets the
/// package's problems in the same order (and with the same errors) as a walk
/// of the package would. Only positions and the structure kept around new
/// file contents are stored, no value that personalisation replaces.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    steps: Vec<Step>,
    /// Where the values of the first personalisation's targets lie (the
    /// same targets every time a package is personalised with the same
    /// kinds of values), so later ones skip that walk.
    located: patch::LocateCache,
}

#[derive(Debug, Clone)]
enum Step {
    /// The package is malformed here: personalising fails with this error.
    Fail(Error),
    /// `header.iccid` (the TLV at this offset).
    HeaderIccid(usize),
    /// EF.ICCID of `mf` or `iot`, if the element has the file field.
    EfIccid(Option<FileSlot>),
    /// EF.IMSI (and EF.AD) of `usim` or `iot`; consulted only with an IMSI.
    Imsi(Result<Option<ImsiSlot>, Error>),
    /// `key` and `opc` of an `akaParameter` (with an `algoParameter`).
    Aka {
        key: Option<KeySlot>,
        opc: Option<KeySlot>,
    },
    /// `pinValue`s by key reference.
    Pins(Vec<CodeSlot>),
    /// `pukValue`s by key reference.
    Puks(Vec<CodeSlot>),
}

/// A template file whose content is replaced: its entries other than the
/// fill entries stay, one `fillFileContent` follows them.
#[derive(Debug, Clone)]
struct FileSlot {
    offset: usize,
    kept: Vec<u8>,
}

#[derive(Debug, Clone)]
struct ImsiSlot {
    file: FileSlot,
    /// EF.AD's fill segment holding byte 4 (for the MNC length).
    ad: Result<AdSlot, Error>,
}

#[derive(Debug, Clone)]
struct AdSlot {
    offset: usize,
    value: Vec<u8>,
    byte: usize,
}

#[derive(Debug, Clone, Copy)]
struct KeySlot {
    offset: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct CodeSlot {
    key_reference: u8,
    offset: usize,
}

impl Plan {
    /// Walks `package` once. Never fails: a malformed element becomes a
    /// [`Step::Fail`] where the walk met it.
    pub(crate) fn new(package: &ProfilePackage) -> Self {
        let mut steps = Vec::new();
        if let Err(e) = Self::walk(package, &mut steps) {
            steps.push(Step::Fail(e));
        }
        Plan {
            steps,
            located: patch::LocateCache::default(),
        }
    }

    fn walk(package: &ProfilePackage, steps: &mut Vec<Step>) -> Result<(), Error> {
        for (kind, node) in &package.nodes()? {
            match kind {
                ElementKind::Header => {
                    let iccid = crate::node::require(node, 0x83, ElementKind::Header, "iccid")?;
                    steps.push(Step::HeaderIccid(iccid.offset));
                }
                ElementKind::Mf => {
                    steps.push(Step::EfIccid(FileSlot::find(node, field::MF_EF_ICCID)?));
                }
                ElementKind::Iot => {
                    steps.push(Step::EfIccid(FileSlot::find(node, field::IOT_EF_ICCID)?));
                    steps.push(Step::Imsi(ImsiSlot::find(
                        node,
                        field::IOT_EF_IMSI,
                        field::IOT_EF_AD,
                    )));
                }
                ElementKind::Usim => steps.push(Step::Imsi(ImsiSlot::find(
                    node,
                    field::USIM_EF_IMSI,
                    field::USIM_EF_AD,
                ))),
                ElementKind::AkaParameter => {
                    let aka = aka::decode(node)?;
                    let slot = |n: Node<'_>| KeySlot {
                        offset: n.offset,
                        len: n.value().len(),
                    };
                    steps.push(Step::Aka {
                        key: aka.key.map(slot),
                        opc: aka.opc.map(slot),
                    });
                }
                ElementKind::PinCodes => {
                    let codes = codes::decode_pins(node, None)?;
                    steps.push(Step::Pins(
                        codes
                            .iter()
                            .map(|c| CodeSlot {
                                key_reference: c.entry.key_reference,
                                offset: c.value.offset,
                            })
                            .collect(),
                    ));
                }
                ElementKind::PukCodes => {
                    let codes = codes::decode_puks(node)?;
                    steps.push(Step::Puks(
                        codes
                            .iter()
                            .map(|c| CodeSlot {
                                key_reference: c.entry.key_reference,
                                offset: c.value.offset,
                            })
                            .collect(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes `p` into `bytes` (the package the plan was made from).
    fn write(&self, bytes: &[u8], p: &Personalisation) -> Result<Vec<u8>, Error> {
        let mut patches = Vec::new();
        let mut targets = Targets::default();
        for step in &self.steps {
            match step {
                Step::Fail(e) => return Err(e.clone()),
                Step::HeaderIccid(offset) => {
                    patches.push(ValuePatch {
                        tlv_offset: *offset,
                        value: p.iccid.to_header_bcd().to_vec(),
                    });
                }
                Step::EfIccid(slot) => {
                    if let Some(slot) = slot {
                        patches.push(slot.patch(&p.iccid.to_bcd()));
                        targets.ef_iccid = true;
                    }
                }
                Step::Imsi(slot) => {
                    let Some(imsi) = &p.imsi else { continue };
                    let Some(slot) = slot.as_ref().map_err(Clone::clone)? else {
                        continue;
                    };
                    patches.push(slot.file.patch(&imsi.to_ef_imsi()));
                    targets.ef_imsi = true;
                    if let Some(mnc_len) = imsi.mnc_len() {
                        let ad = slot.ad.as_ref().map_err(Clone::clone)?;
                        let mut value = ad.value.clone();
                        let byte = &mut value[ad.byte];
                        *byte = (*byte & 0xF0) | mnc_len as u8;
                        patches.push(ValuePatch {
                            tlv_offset: ad.offset,
                            value,
                        });
                    }
                }
                Step::Aka { key, opc } => {
                    if let Some(slot) = key {
                        targets.algo = true;
                        if let Some(k) = &p.k {
                            patches.push(slot.patch("K", k)?);
                        }
                    }
                    if let (Some(slot), Some(opc)) = (opc, &p.opc) {
                        patches.push(slot.patch("OPc", opc)?);
                    }
                }
                Step::Pins(slots) => {
                    for slot in slots {
                        let value = match slot.key_reference {
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
                            patches.push(ValuePatch {
                                tlv_offset: slot.offset,
                                value: bytes.to_vec(),
                            });
                        }
                    }
                }
                Step::Puks(slots) => {
                    for slot in slots {
                        let value = match slot.key_reference {
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
                            patches.push(ValuePatch {
                                tlv_offset: slot.offset,
                                value: bytes.to_vec(),
                            });
                        }
                    }
                }
            }
        }
        targets.check(p)?;
        patch::apply_cached(bytes, patches, Some(&self.located))
    }
}

impl FileSlot {
    /// The file field `index` of `element`, if present.
    fn find(element: &Node<'_>, index: u32) -> Result<Option<Self>, Error> {
        let Some(file) = template_file(element, index)? else {
            return Ok(None);
        };
        let mut kept = Vec::with_capacity(file.node.value().len());
        for child in file.node.children()? {
            if !matches!(child.tag(), 0x82 | 0x83) {
                kept.extend_from_slice(child.tlv.raw);
            }
        }
        Ok(Some(FileSlot {
            offset: file.node.offset,
            kept,
        }))
    }

    /// The file with `content` as its whole content.
    fn patch(&self, content: &[u8]) -> ValuePatch {
        let mut value = Vec::with_capacity(self.kept.len() + content.len() + 4);
        value.extend_from_slice(&self.kept);
        ferrosim_asn1::tlv::write_tlv(&mut value, 0x83, content);
        ValuePatch {
            tlv_offset: self.offset,
            value,
        }
    }
}

impl ImsiSlot {
    /// EF.IMSI (field `imsi_index`) and, for the MNC length, the EF.AD
    /// (field `ad_index`) segment holding byte 4.
    fn find(element: &Node<'_>, imsi_index: u32, ad_index: u32) -> Result<Option<Self>, Error> {
        let Some(file) = FileSlot::find(element, imsi_index)? else {
            return Ok(None);
        };
        let ad = template_file(element, ad_index).and_then(|ad| {
            let ad = ad.ok_or(Error::NotInPackage {
                what: "EF.AD content (for the MNC length)",
            })?;
            ad_slot(&ad)
        });
        Ok(Some(ImsiSlot { file, ad }))
    }
}

/// The fill segment of EF.AD that holds byte 4 (whose low nibble is the MNC length).
fn ad_slot(ad: &FileView<'_>) -> Result<AdSlot, Error> {
    const BYTE4: usize = 3;
    let (start, segment) = ad
        .segments
        .iter()
        .find(|(start, seg)| *start <= BYTE4 && BYTE4 < start + seg.value().len())
        .ok_or(Error::NotInPackage {
            what: "EF.AD content (for the MNC length)",
        })?;
    Ok(AdSlot {
        offset: segment.offset,
        value: segment.value().to_vec(),
        byte: BYTE4 - start,
    })
}

impl KeySlot {
    fn patch(&self, field: &'static str, key: &Key128) -> Result<ValuePatch, Error> {
        if self.len != key.as_bytes().len() {
            return Err(Error::KeyLengthMismatch {
                field,
                package: self.len,
                supplied: key.as_bytes().len(),
            });
        }
        Ok(ValuePatch {
            tlv_offset: self.offset,
            value: key.as_bytes().to_vec(),
        })
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
