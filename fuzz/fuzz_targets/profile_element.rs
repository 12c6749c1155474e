//! A profile package: a sequence of SAIP ProfileElements, decoded one by one.
#![no_main]

use ferrosim_asn1::{decode_der, decode_der_prefix, encode_der, pe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while !rest.is_empty() {
        let Ok((element, after)) = decode_der_prefix::<pe::ProfileElement>(rest) else {
            return;
        };
        assert!(after.len() < rest.len(), "decoding consumed nothing");
        let der = encode_der(&element).expect("a decoded element encodes");
        let again: pe::ProfileElement = decode_der(&der).expect("a re-encoded element decodes");
        assert_eq!(again, element);
        rest = after;
    }
});
