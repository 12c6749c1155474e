//! An unprotected profile package: the DER `ProfileElement` values of one
//! profile, one after the other, from the `ProfileHeader` to `end`.
//!
//! The package keeps its bytes exactly as received; elements are located, not
//! decoded into an owned tree, so that what is handed on (to personalisation,
//! to the bound profile package) is byte-identical to what was imported.

use std::ops::Range;
use std::sync::OnceLock;

use zeroize::Zeroize;

use crate::element::{ElementKind, ProfileElement};
use crate::error::Error;
use crate::header::ProfileHeader;
use crate::node::{Node, check_well_formed, decode_uint, sequence};
use crate::personalise::Plan;

/// A parsed and validated unprotected profile package (SAIP DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePackage {
    bytes: Vec<u8>,
    elements: Vec<ElementEntry>,
    header: ProfileHeader,
    /// Where personalisation writes, found on the first personalisation.
    plan: PlanCache,
}

/// The package's personalisation plan, made once on first use (a profile
/// type's package is personalised once per download). Derived from the
/// bytes, so it takes no part in comparisons.
#[derive(Debug, Clone, Default)]
struct PlanCache(OnceLock<Plan>);

impl PartialEq for PlanCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PlanCache {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ElementEntry {
    kind: ElementKind,
    range: Range<usize>,
    identification: Option<u16>,
    mandated: bool,
}

impl ProfilePackage {
    /// Parses and validates a package: each element a well-formed TLV with a
    /// `ProfileElement` tag, the `ProfileHeader` first and only once, `end`
    /// last and only once, every other element starting with its `PEHeader`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_vec(bytes.to_vec())
    }

    /// As [`ProfilePackage::parse`], taking ownership of the bytes. The
    /// bytes of a refused package are wiped (a package carries keys).
    pub fn from_vec(mut bytes: Vec<u8>) -> Result<Self, Error> {
        match index(&bytes) {
            Ok((elements, header)) => Ok(ProfilePackage {
                bytes,
                elements,
                header,
                plan: PlanCache::default(),
            }),
            Err(e) => {
                wipe_bytes(&mut bytes);
                Err(e)
            }
        }
    }

    /// Wipes the bytes (they carry keys and PINs) and forgets the elements;
    /// the header stays. For a package that has served its purpose.
    pub fn wipe(&mut self) {
        wipe_bytes(&mut self.bytes);
        self.elements.clear();
        self.plan = PlanCache::default();
    }

    /// The package bytes, exactly as parsed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives the package bytes back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The decoded `ProfileHeader`.
    pub fn header(&self) -> &ProfileHeader {
        &self.header
    }

    /// Number of profile elements, header and end included.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Always false: a valid package holds at least the header and `end`.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The profile elements in package order.
    pub fn elements(&self) -> impl Iterator<Item = ProfileElement<'_>> + '_ {
        self.elements.iter().map(|e| ProfileElement {
            kind: e.kind,
            raw: &self.bytes[e.range.clone()],
            offset: e.range.start,
            identification: e.identification,
            mandated: e.mandated,
        })
    }

    /// The elements of one kind, in package order.
    pub fn elements_of(&self, kind: ElementKind) -> impl Iterator<Item = ProfileElement<'_>> + '_ {
        self.elements().filter(move |e| e.kind == kind)
    }

    /// Where personalisation writes into this package, found on first use.
    pub(crate) fn personalisation_plan(&self) -> &Plan {
        self.plan.0.get_or_init(|| Plan::new(self))
    }

    /// The elements as nodes with absolute offsets, for the decoders of this crate.
    pub(crate) fn nodes(&self) -> Result<Vec<(ElementKind, Node<'_>)>, Error> {
        let nodes = sequence(&self.bytes, 0)?;
        Ok(self.elements.iter().map(|e| e.kind).zip(nodes).collect())
    }
}

/// Zeroes `bytes` (its spare capacity too) and empties it. What
/// `Vec::zeroize` does, but as one fill of the slice behind zeroize's
/// optimisation barrier rather than a volatile write per byte (a package
/// is some 12 KB, wiped on every installation).
fn wipe_bytes(bytes: &mut Vec<u8>) {
    bytes.spare_capacity_mut().zeroize();
    bytes.as_mut_slice().zeroize();
    bytes.clear();
}

/// Locates and validates the elements of `bytes` and decodes the header.
fn index(bytes: &[u8]) -> Result<(Vec<ElementEntry>, ProfileHeader), Error> {
    let nodes = sequence(bytes, 0)?;
    let (first, last) = match (nodes.first(), nodes.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => return Err(Error::EmptyPackage),
    };
    if first.tag() != ElementKind::Header.tag() {
        return Err(Error::HeaderNotFirst { found: first.tag() });
    }
    if last.tag() != ElementKind::End.tag() || nodes.len() < 2 {
        return Err(Error::EndNotLast { found: last.tag() });
    }
    let mut elements = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        elements.push(entry(index, node, nodes.len())?);
    }
    let header = ProfileHeader::decode(&first)?;
    Ok((elements, header))
}

/// Validates one top-level element and records where it is.
fn entry(index: usize, node: &Node<'_>, count: usize) -> Result<ElementEntry, Error> {
    let kind = ElementKind::from_tag(node.tag())
        .filter(|_| node.tlv.is_constructed())
        .ok_or(Error::NotAProfileElement {
            index,
            tag: node.tag(),
        })?;
    if kind == ElementKind::Header && index != 0 {
        return Err(Error::DuplicateHeader { index });
    }
    if kind == ElementKind::End && index + 1 != count {
        return Err(Error::EarlyEnd { index });
    }
    check_well_formed(node, 0)?;
    let (identification, mandated) = if kind == ElementKind::Header {
        (None, false)
    } else {
        pe_header(kind, node)?
    };
    Ok(ElementEntry {
        kind,
        range: node.offset..node.offset + node.tlv.raw.len(),
        identification,
        mandated,
    })
}

/// Reads the `PEHeader` (first field, `[0]`) of a non-header element.
/// Elements of kinds this module version does not know may lack it.
fn pe_header(kind: ElementKind, node: &Node<'_>) -> Result<(Option<u16>, bool), Error> {
    let first = node.first_child()?;
    let header = match first {
        Some(h) if h.tag() == 0xA0 => h,
        _ if matches!(kind, ElementKind::Unknown(_)) => return Ok((None, false)),
        _ => {
            return Err(Error::MissingField {
                element: kind,
                field: "PEHeader",
            });
        }
    };
    let mut identification = None;
    let mut mandated = false;
    for field in header.children()? {
        match field.tag() {
            0x80 => mandated = true,
            0x81 => {
                let id = decode_uint(field.value()).filter(|v| *v <= 0x7FFF).ok_or(
                    Error::InvalidField {
                        element: kind,
                        field: "PEHeader.identification",
                        reason: "not a UInt15",
                    },
                )?;
                identification = Some(id as u16);
            }
            _ => {}
        }
    }
    if identification.is_none() {
        return Err(Error::MissingField {
            element: kind,
            field: "PEHeader.identification",
        });
    }
    Ok((identification, mandated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes() -> Vec<u8> {
        let mut v = vec![0x80, 0x01, 0x02, 0x81, 0x01, 0x03, 0x83, 0x0A];
        v.extend_from_slice(&[0x89, 0x49, 0x44, 0x99, 0x99, 0x99, 0x99, 0x90, 0x04, 0x9F]);
        v.extend_from_slice(&[0xA5, 0x02, 0x81, 0x00, 0xA6, 0x00]);
        ferrosim_asn1::tlv::tlv(0xA0, &v)
    }

    fn end_bytes(id: u8) -> Vec<u8> {
        vec![0xAA, 0x07, 0xA0, 0x05, 0x80, 0x00, 0x81, 0x01, id]
    }

    #[test]
    fn minimal_package() {
        let bytes = [header_bytes(), end_bytes(1)].concat();
        let p = ProfilePackage::parse(&bytes).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.header().iccid().unwrap().as_str(), "8949449999999990049");
        let end = p.elements_of(ElementKind::End).next().unwrap();
        assert_eq!(end.identification, Some(1));
        assert!(end.mandated);
        assert_eq!(p.as_bytes(), &bytes[..]);
    }

    #[test]
    fn wiped_package_is_empty() {
        let bytes = [header_bytes(), end_bytes(1)].concat();
        let mut p = ProfilePackage::from_vec(bytes).unwrap();
        p.wipe();
        assert!(p.as_bytes().is_empty());
        assert!(p.is_empty());
        assert_eq!(p.elements().count(), 0);
        assert_eq!(p.header().iccid().unwrap().as_str(), "8949449999999990049");
    }

    #[test]
    fn structure_errors() {
        assert_eq!(ProfilePackage::parse(&[]), Err(Error::EmptyPackage));
        assert_eq!(
            ProfilePackage::parse(&end_bytes(1)),
            Err(Error::HeaderNotFirst { found: 0xAA })
        );
        assert!(matches!(
            ProfilePackage::parse(&header_bytes()),
            Err(Error::EndNotLast { found: 0xA0 })
        ));
        let twice = [header_bytes(), header_bytes(), end_bytes(1)].concat();
        assert_eq!(
            ProfilePackage::parse(&twice),
            Err(Error::DuplicateHeader { index: 1 })
        );
        let early = [header_bytes(), end_bytes(1), end_bytes(2)].concat();
        assert_eq!(
            ProfilePackage::parse(&early),
            Err(Error::EarlyEnd { index: 1 })
        );
        let no_pe_header = [header_bytes(), vec![0xAA, 0x00]].concat();
        assert!(matches!(
            ProfilePackage::parse(&no_pe_header),
            Err(Error::MissingField {
                field: "PEHeader",
                ..
            })
        ));
        let primitive = [header_bytes(), vec![0x80, 0x00], end_bytes(1)].concat();
        assert!(matches!(
            ProfilePackage::parse(&primitive),
            Err(Error::NotAProfileElement {
                index: 1,
                tag: 0x80
            })
        ));
    }
}
