//! Files of template-based profile elements (`mf`, `usim`, `opt-usim`, ...).
//!
//! In `PEDefinitions`, a template element lists its files as fields of type
//! `File ::= SEQUENCE OF CHOICE { doNotCreate [0], fileDescriptor [1] Fcp,
//! fillFileOffset [2], fillFileContent [3] }`: the template (SAIP annex) gives
//! each file's identity and defaults, the package may override the FCP and
//! fills the content with relative offsets and content chunks. Each field is
//! tagged by its position in the element's SEQUENCE (AUTOMATIC TAGS), so EF.IMSI
//! is field `[3]` of `usim`, EF.ICCID field `[4]` of `mf`.
//!
//! This module reads a file's content as far as the package states it. Bytes
//! the package leaves to the template's defaults are unknown here; they read
//! as the FCP's fill or repeat pattern when one is given, else as `FF`.

use crate::element::constructed_context_tag;
use crate::error::Error;
use crate::node::{Node, decode_uint};

/// Field positions of the files this crate reads or writes, per template element.
pub(crate) mod field {
    /// `mf.ef-iccid`.
    pub const MF_EF_ICCID: u32 = 4;
    /// `usim.ef-imsi`.
    pub const USIM_EF_IMSI: u32 = 3;
    /// `usim.ef-spn`.
    pub const USIM_EF_SPN: u32 = 13;
    /// `usim.ef-ad`.
    pub const USIM_EF_AD: u32 = 21;
    /// `opt-usim.ef-acl`.
    pub const OPT_USIM_EF_ACL: u32 = 25;
    /// `iot.ef-iccid`.
    pub const IOT_EF_ICCID: u32 = 4;
    /// `iot.ef-imsi`.
    pub const IOT_EF_IMSI: u32 = 9;
    /// `iot.ef-ad`.
    pub const IOT_EF_AD: u32 = 21;
    /// `opt-iot.ef-spn`.
    pub const OPT_IOT_EF_SPN: u32 = 6;
}

/// Largest file extent the fill offsets may reach (bounds memory on hostile input).
const MAX_FILE_EXTENT: usize = 1 << 20;

/// The `File` field at position `index` of a template element, if present.
pub(crate) fn template_file<'a>(
    element: &Node<'a>,
    index: u32,
) -> Result<Option<FileView<'a>>, Error> {
    let tag = constructed_context_tag(index);
    match element.find(tag)? {
        Some(node) => FileView::parse(node).map(Some),
        None => Ok(None),
    }
}

/// One `File` value split into its parts.
#[derive(Debug, Clone)]
pub(crate) struct FileView<'a> {
    /// The whole `File` TLV.
    pub node: Node<'a>,
    /// `doNotCreate` is present: the file is left out of the profile.
    pub do_not_create: bool,
    /// The `fileDescriptor` (Fcp) given in the package, if any.
    pub fcp: Option<Node<'a>>,
    /// Each `fillFileContent` with the file offset where it is written.
    pub segments: Vec<(usize, Node<'a>)>,
}

impl<'a> FileView<'a> {
    /// Splits a `File` TLV into its CHOICE entries.
    pub fn parse(node: Node<'a>) -> Result<Self, Error> {
        let mut view = FileView {
            node,
            do_not_create: false,
            fcp: None,
            segments: Vec::new(),
        };
        let mut pos = 0usize;
        for child in node.children()? {
            match child.tag() {
                0x80 => view.do_not_create = true,
                0xA1 => view.fcp = Some(child),
                0x82 => {
                    let step = decode_uint(child.value()).filter(|v| *v <= 0xFFFF).ok_or(
                        Error::MalformedFile {
                            offset: child.offset,
                            reason: "fillFileOffset is not a UInt16",
                        },
                    )?;
                    pos += step as usize;
                    if pos > MAX_FILE_EXTENT {
                        return Err(Error::MalformedFile {
                            offset: child.offset,
                            reason: "fill offsets reach beyond 1 MiB",
                        });
                    }
                }
                0x83 => {
                    view.segments.push((pos, child));
                    pos += child.value().len();
                }
                _ => {
                    return Err(Error::MalformedFile {
                        offset: child.offset,
                        reason: "unknown File entry",
                    });
                }
            }
        }
        Ok(view)
    }

    /// Whether the package writes any content into this file.
    pub fn has_content(&self) -> bool {
        !self.segments.is_empty()
    }

    /// The file content as far as the package states it (see the module docs),
    /// or `None` when the file is not created.
    pub fn content(&self) -> Result<Option<Vec<u8>>, Error> {
        if self.do_not_create {
            return Ok(None);
        }
        let written_end = self
            .segments
            .last()
            .map_or(0, |(pos, seg)| pos + seg.value().len());
        let fcp = self.fcp_info()?;
        let size = fcp.size.unwrap_or(written_end).max(written_end);
        let mut content = vec![0xFF; size];
        if let Some((pattern, repeat)) = &fcp.pattern {
            if fcp.size.is_none() && written_end < pattern.len() {
                content.resize(pattern.len(), 0xFF);
            }
            let unit = fcp.record_len.filter(|r| *r > 0).unwrap_or(content.len());
            for record in content.chunks_mut(unit.max(1)) {
                apply_pattern(record, pattern, *repeat);
            }
        }
        for (pos, seg) in &self.segments {
            content[*pos..pos + seg.value().len()].copy_from_slice(seg.value());
        }
        Ok(Some(content))
    }

    /// What the package's FCP says about size, record length and fill pattern.
    fn fcp_info(&self) -> Result<FcpInfo, Error> {
        let mut info = FcpInfo::default();
        let Some(fcp) = self.fcp else {
            return Ok(info);
        };
        for item in fcp.children()? {
            match item.tag() {
                0x80 => {
                    info.size = decode_uint(item.value())
                        .map(|v| v as usize)
                        .filter(|v| *v <= 0xFFFF)
                }
                0x82 => {
                    let d = item.value();
                    // Linear fixed or cyclic EF: record length in bytes 3..4.
                    if d.len() >= 4 && matches!(d[0] & 0x07, 2 | 6) {
                        info.record_len = Some(usize::from(u16::from_be_bytes([d[2], d[3]])));
                    }
                }
                0xA5 => {
                    for p in item.children()? {
                        match p.tag() {
                            0xC1 if !p.value().is_empty() => {
                                info.pattern = Some((p.value().to_vec(), false))
                            }
                            0xC2 if !p.value().is_empty() => {
                                info.pattern = Some((p.value().to_vec(), true))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }
}

#[derive(Debug, Default)]
struct FcpInfo {
    size: Option<usize>,
    record_len: Option<usize>,
    /// Pattern bytes and whether it repeats (repeatPattern) or pads with its
    /// last byte (fillPattern), as ETSI TS 102 222 defines them.
    pattern: Option<(Vec<u8>, bool)>,
}

fn apply_pattern(target: &mut [u8], pattern: &[u8], repeat: bool) {
    let last = pattern.last().copied().unwrap_or(0xFF);
    for (i, b) in target.iter_mut().enumerate() {
        *b = if repeat {
            pattern[i % pattern.len()]
        } else {
            pattern.get(i).copied().unwrap_or(last)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::sequence;

    fn file(bytes: &[u8]) -> FileView<'_> {
        let nodes = sequence(bytes, 0).unwrap();
        FileView::parse(nodes[0]).unwrap()
    }

    #[test]
    fn content_with_offsets() {
        // File [3] { fcp { efFileSize 6 }, offset 2, content 0102, offset 1, content 03 }
        let bytes = [
            0xA3, 0x10, 0xA1, 0x03, 0x80, 0x01, 0x06, 0x82, 0x01, 0x02, 0x83, 0x02, 0x01, 0x02,
            0x82, 0x01, 0x01, 0x83, 0x01, 0x03,
        ];
        // Fix up the outer length to the real value length.
        let mut bytes = bytes.to_vec();
        bytes[1] = (bytes.len() - 2) as u8;
        let f = file(&bytes);
        assert!(f.has_content());
        assert_eq!(
            f.content().unwrap().unwrap(),
            vec![0xFF, 0xFF, 1, 2, 0xFF, 3]
        );
    }

    #[test]
    fn fill_pattern_without_size() {
        let bytes = [
            0xAD, 0x09, 0xA1, 0x07, 0xA5, 0x05, 0xC1, 0x03, 0x01, 0x47, 0xFF,
        ];
        assert_eq!(
            file(&bytes).content().unwrap().unwrap(),
            vec![0x01, 0x47, 0xFF]
        );
    }

    #[test]
    fn repeat_pattern_per_record() {
        // Linear fixed, record length 3, size 6, repeat pattern AB.
        let bytes = [
            0xA1, 0x11, 0xA1, 0x0F, 0x82, 0x04, 0x42, 0x21, 0x00, 0x03, 0x80, 0x01, 0x06, 0xA5,
            0x04, 0xC2, 0x02, 0xAB, 0xCD,
        ];
        assert_eq!(
            file(&bytes).content().unwrap().unwrap(),
            vec![0xAB, 0xCD, 0xAB, 0xAB, 0xCD, 0xAB]
        );
    }

    #[test]
    fn do_not_create_and_bad_entries() {
        assert_eq!(file(&[0xA4, 0x02, 0x80, 0x00]).content().unwrap(), None);
        let nodes = sequence(&[0xA4, 0x02, 0x84, 0x00], 0).unwrap();
        assert!(FileView::parse(nodes[0]).is_err());
        let nodes = sequence(&[0xA4, 0x05, 0x82, 0x03, 0x01, 0x00, 0x00], 0).unwrap();
        assert!(FileView::parse(nodes[0]).is_err());
    }
}
