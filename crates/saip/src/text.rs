//! Text codings found in SIM files: alpha identifiers (ETSI TS 102 221
//! annex A: the SMS default 7-bit alphabet unpacked, or one of three UCS2
//! forms) as used by EF.SPN, and access point names (3GPP TS 23.003 9.1:
//! length-prefixed labels) as listed by EF.ACL.

/// The SMS default alphabet (3GPP TS 23.038 6.2.1), one char per code 0..=127.
const GSM_DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table entries reached through escape (`1B`).
fn gsm_extension(code: u8) -> Option<char> {
    Some(match code {
        0x0A => '\u{0C}',
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        _ => return None,
    })
}

/// Decodes an alpha identifier; `None` when the coding is not valid.
pub(crate) fn decode_alpha(bytes: &[u8]) -> Option<String> {
    match bytes.first() {
        None => Some(String::new()),
        Some(0x80) => decode_ucs2(&bytes[1..]),
        Some(0x81) => {
            let (&len, rest) = bytes[1..].split_first()?;
            let (&base, chars) = rest.split_first()?;
            decode_ucs2_paged(chars.get(..usize::from(len))?, u32::from(base) << 7)
        }
        Some(0x82) => {
            let (&len, rest) = bytes[1..].split_first()?;
            let base = u32::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            decode_ucs2_paged(rest.get(2..2 + usize::from(len))?, base)
        }
        Some(_) => decode_gsm(bytes),
    }
}

fn decode_gsm(bytes: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut iter = bytes.iter().take_while(|&&b| b != 0xFF);
    while let Some(&b) = iter.next() {
        if b >= 0x80 {
            return None;
        }
        if b == 0x1B {
            let next = *iter.next()?;
            out.push(gsm_extension(next).unwrap_or(' '));
        } else {
            out.push(GSM_DEFAULT[usize::from(b)]);
        }
    }
    Some(out)
}

fn decode_ucs2(bytes: &[u8]) -> Option<String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0xFFFF)
        .collect();
    String::from_utf16(&units).ok()
}

fn decode_ucs2_paged(chars: &[u8], base: u32) -> Option<String> {
    chars
        .iter()
        .map(|&b| {
            if b < 0x80 {
                Some(GSM_DEFAULT[usize::from(b)])
            } else {
                char::from_u32(base + u32::from(b & 0x7F))
            }
        })
        .collect()
}

/// Decodes the service provider name of EF.SPN content (display condition
/// byte, then the alpha identifier); `None` when absent or invalid.
pub(crate) fn decode_spn(content: &[u8]) -> Option<String> {
    let name = decode_alpha(content.get(1..)?)?;
    let name = name.trim_end_matches(['\u{1B}', ' ']).to_owned();
    (!name.is_empty()).then_some(name)
}

/// Decodes EF.ACL content (TS 31.102 4.2.48): a count byte, then `DD`
/// TLVs each holding one APN. Empty and undecodable entries are skipped.
pub(crate) fn decode_acl(content: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((&count, mut rest)) = content.split_first() else {
        return out;
    };
    if count == 0xFF {
        return out;
    }
    for _ in 0..count {
        let [tag, len, tail @ ..] = rest else { break };
        if *tag != 0xDD {
            break;
        }
        let Some(value) = tail.get(..usize::from(*len)) else {
            break;
        };
        if let Some(apn) = decode_apn(value).filter(|a| !a.is_empty()) {
            out.push(apn);
        }
        rest = &tail[usize::from(*len)..];
    }
    out
}

/// Decodes an APN in label form (each label preceded by its length) to dotted text.
pub(crate) fn decode_apn(bytes: &[u8]) -> Option<String> {
    let mut labels = Vec::new();
    let mut rest = bytes;
    while let Some((&len, tail)) = rest.split_first() {
        let label = tail.get(..usize::from(len))?;
        if !label.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).into_owned());
        rest = &tail[usize::from(len)..];
    }
    Some(labels.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spn_gsm_alphabet() {
        // The TS.48 EF.SPN fill pattern: display condition 01, "GSMA_TEST".
        let content = [
            0x01, 0x47, 0x53, 0x4D, 0x41, 0x11, 0x54, 0x45, 0x53, 0x54, 0xFF, 0xFF,
        ];
        assert_eq!(decode_spn(&content).as_deref(), Some("GSMA_TEST"));
        assert_eq!(decode_spn(&[0x00, 0xFF, 0xFF]), None);
        assert_eq!(decode_alpha(&[0x1B, 0x65]).as_deref(), Some("€"));
        assert_eq!(decode_alpha(&[0x41, 0x1B]), None);
    }

    #[test]
    fn spn_ucs2_forms() {
        assert_eq!(
            decode_alpha(&[0x80, 0x00, 0x41, 0x04, 0x10, 0xFF, 0xFF]).as_deref(),
            Some("AА")
        );
        // 0x81: 2 chars, base 0x0410 >> 7 = 0x08 -> base 0x400; 0x90 -> U+0410.
        assert_eq!(
            decode_alpha(&[0x81, 0x02, 0x08, 0x41, 0x90]).as_deref(),
            Some("AА")
        );
        assert_eq!(
            decode_alpha(&[0x82, 0x02, 0x04, 0x00, 0x41, 0x90]).as_deref(),
            Some("AА")
        );
        assert_eq!(decode_alpha(&[0x81, 0x05, 0x08]), None);
    }

    #[test]
    fn acl_and_apn() {
        let mut acl = vec![0x02, 0xDD, 0x0C];
        acl.extend_from_slice(b"\x08internet\x02eu");
        acl.extend_from_slice(&[0xDD, 0x00, 0xFF, 0xFF]);
        assert_eq!(decode_acl(&acl), vec!["internet.eu".to_owned()]);
        assert!(decode_acl(&[0xFF, 0xFF]).is_empty());
        assert!(decode_acl(&[0x01, 0xDD, 0x05, 0x01]).is_empty());
        assert_eq!(decode_apn(&[0x03, b'a', b'b']), None);
    }
}
