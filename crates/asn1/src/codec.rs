//! DER encoding and decoding of the generated types.
//!
//! All RSP messages are DER on the wire. [`decode_der`] rejects bytes left over
//! after the value, so a message cannot smuggle data past a length check;
//! [`decode_der_prefix`] is for streams of concatenated values (profile
//! elements of a profile package).

use rasn::{Decode, Encode};

use crate::Error;

/// Encodes `value` as DER.
///
/// DER rules apply: DEFAULT-valued fields equal to their default are left out,
/// SET OF members are sorted, lengths are minimal.
pub fn encode_der<T: Encode>(value: &T) -> Result<Vec<u8>, Error> {
    rasn::der::encode(value).map_err(|e| Error::Encode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Decodes exactly one DER value of type `T` from `bytes`, with nothing after it.
pub fn decode_der<T: Decode>(bytes: &[u8]) -> Result<T, Error> {
    let (value, rest) = decode_der_prefix::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes {
            type_name: std::any::type_name::<T>(),
            count: rest.len(),
        });
    }
    Ok(value)
}

/// Decodes one DER value of type `T` from the start of `bytes`, returning it
/// and the bytes after it.
pub fn decode_der_prefix<T: Decode>(bytes: &[u8]) -> Result<(T, &[u8]), Error> {
    rasn::der::decode_with_remainder(bytes).map_err(|e| Error::Decode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}
