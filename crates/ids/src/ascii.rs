//! Short ASCII text stored inline: the representation behind the text
//! identifiers, so they need no heap allocation.

/// Up to `N` ASCII bytes, zero-padded.
///
/// Callers put only validated ASCII without NUL in it, so the zero padding
/// makes the derived comparisons agree with string order and equality.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Ascii<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Ascii<N> {
    /// Copies `text`; `None` if it is longer than `N` or not ASCII.
    pub(crate) fn new(text: &[u8]) -> Option<Self> {
        if text.len() > N || N > usize::from(u8::MAX) || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..text.len()].copy_from_slice(text);
        Some(Self {
            bytes,
            len: text.len() as u8,
        })
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}
