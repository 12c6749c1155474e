//! Shared check for the decoder targets: whatever decodes must encode again,
//! and the encoding must decode to the same value.

use ferrosim_asn1::rasn::{Decode, Encode};
use ferrosim_asn1::{decode_der, encode_der};

/// Decodes `data` as `T`; on success checks the re-encoding round trip.
pub fn decode_round_trip<T: Decode + Encode + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = decode_der::<T>(data) {
        let der = encode_der(&value).expect("a decoded value encodes");
        let again: T = decode_der(&der).expect("a re-encoded value decodes");
        assert_eq!(again, value);
    }
}
