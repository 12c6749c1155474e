//! The zero-copy BER-TLV reader on arbitrary bytes, walking nested elements.
#![no_main]

use ferrosim_asn1::tlv::{Tlv, TlvIter};
use libfuzzer_sys::fuzz_target;

fn walk(input: &[u8], depth: u32) {
    for item in TlvIter::new(input) {
        let Ok(tlv) = item else { return };
        assert_eq!(tlv.header().len() + tlv.value.len(), tlv.raw.len());
        if tlv.is_constructed() && depth < 16 {
            walk(tlv.value, depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    walk(data, 0);
    let _ = Tlv::parse_exact(data);
});
