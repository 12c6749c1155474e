//! Random values of the generated ASN.1 types for property tests.
//!
//! [`Gen`] builds a random value from a seeded [`Rng`]; the impls for the
//! generated types are themselves generated (`generated_gen.rs`, written by
//! `crates/asn1/codegen`), the impls for rasn's primitive types are here.
//! [`strategy`] turns any `Gen` type into a proptest strategy (proptest picks
//! and records the seed, so failures replay).
//!
//! Depth `d` grows with nesting; past [`MAX_DEPTH`] optional fields are absent
//! and lists empty, which keeps values small.

#![allow(dead_code, unused_imports, clippy::unwrap_used)] // shared by several test crates

mod generated_gen;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use proptest::prelude::*;
use rasn::types::{
    Any, BitString, BmpString, FixedOctetString, Ia5String, Integer, NumericString,
    ObjectIdentifier, OctetString, PrintableString, SetOf, TeletexString, UniversalString,
    Utf8String, VisibleString,
};

/// Nesting depth past which optional parts are left out.
pub const MAX_DEPTH: u32 = 6;

/// A proptest strategy producing random values of `T`.
pub fn strategy<T: Gen + std::fmt::Debug>() -> impl Strategy<Value = T> {
    any::<u64>().prop_map(|seed| T::generate(&mut Rng::new(seed), 0))
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }

    /// `true` with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    fn alnum(&mut self, len: usize) -> Vec<u8> {
        const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ";
        (0..len)
            .map(|_| SET[self.below(SET.len() as u64) as usize])
            .collect()
    }

    /// A length in `min..=max`, kept short unless `min` demands more.
    fn len(&mut self, d: u32, min: i64, max: i64) -> usize {
        let soft_max = if d > MAX_DEPTH { min } else { min.max(0) + 3 };
        self.range(min.max(0), max.min(soft_max).max(min.max(0))) as usize
    }
}

/// Something done for each generated type (see `visit_all_types`).
pub trait TypeVisitor {
    /// Called once per generated type, with its path inside `generated`.
    fn visit<T>(&mut self, name: &str)
    where
        T: Gen + rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug;
}

pub use generated_gen::visit_all_types;

/// Types that can produce a random value of themselves.
pub trait Gen: Sized {
    /// A random value at nesting depth `d`.
    fn generate(r: &mut Rng, d: u32) -> Self;
}

/// Types with a SIZE constraint: a random value of `min..=max` elements.
pub trait GenSized: Sized {
    /// A random value whose size is in `min..=max`.
    fn generate_sized(r: &mut Rng, d: u32, min: i64, max: i64) -> Self;
}

/// Integer types with a value constraint.
pub trait GenValued: Sized {
    /// A random value in `min..=max`.
    fn generate_valued(r: &mut Rng, min: i64, max: i64) -> Self;
}

/// A random value of a SIZE-constrained type.
pub fn sized<T: GenSized>(r: &mut Rng, d: u32, min: i64, max: i64) -> T {
    T::generate_sized(r, d + 1, min, max)
}

/// A random optional value of a SIZE-constrained type.
pub fn opt_sized<T: GenSized>(r: &mut Rng, d: u32, min: i64, max: i64) -> Option<T> {
    (d <= MAX_DEPTH && r.coin()).then(|| T::generate_sized(r, d + 1, min, max))
}

/// A random value of a value-constrained integer type.
pub fn valued<T: GenValued>(r: &mut Rng, _d: u32, min: i64, max: i64) -> T {
    T::generate_valued(r, min, max)
}

/// A random optional value of a value-constrained integer type.
pub fn opt_valued<T: GenValued>(r: &mut Rng, d: u32, min: i64, max: i64) -> Option<T> {
    (d <= MAX_DEPTH && r.coin()).then(|| T::generate_valued(r, min, max))
}

impl<T: Gen> Gen for Option<T> {
    fn generate(r: &mut Rng, d: u32) -> Self {
        (d <= MAX_DEPTH && r.coin()).then(|| T::generate(r, d))
    }
}

impl<T: Gen> Gen for Vec<T> {
    fn generate(r: &mut Rng, d: u32) -> Self {
        Self::generate_sized(r, d, 0, i64::MAX)
    }
}

impl<T: Gen> GenSized for Vec<T> {
    fn generate_sized(r: &mut Rng, d: u32, min: i64, max: i64) -> Self {
        let n = r.len(d, min, max);
        (0..n).map(|_| T::generate(r, d + 1)).collect()
    }
}

impl<T: Gen + Eq> Gen for SetOf<T> {
    fn generate(r: &mut Rng, d: u32) -> Self {
        SetOf::from(Vec::<T>::generate(r, d))
    }
}

impl<T: Gen + Eq> GenSized for SetOf<T> {
    fn generate_sized(r: &mut Rng, d: u32, min: i64, max: i64) -> Self {
        SetOf::from(Vec::<T>::generate_sized(r, d, min, max))
    }
}

impl Gen for () {
    fn generate(_: &mut Rng, _: u32) -> Self {}
}

impl Gen for bool {
    fn generate(r: &mut Rng, _: u32) -> Self {
        r.coin()
    }
}

macro_rules! primitive_ints {
    ($($t:ty),*) => {$(
        impl Gen for $t {
            fn generate(r: &mut Rng, _: u32) -> Self {
                r.next_u64() as $t
            }
        }
        impl GenValued for $t {
            fn generate_valued(r: &mut Rng, min: i64, max: i64) -> Self {
                let lo = min.max(<$t>::MIN as i64);
                let hi = max.min(<$t>::MAX as i64);
                r.range(lo, hi) as $t
            }
        }
    )*};
}
primitive_ints!(u8, u16, u32, i8, i16, i32, i64);

impl Gen for Integer {
    fn generate(r: &mut Rng, _: u32) -> Self {
        match r.below(3) {
            0 => Integer::from(r.range(-200, 200)),
            1 => Integer::from(r.next_u64() as i64),
            // Wider than 64 bits.
            _ => Integer::from(i128::from(r.next_u64() as i64) << 40),
        }
    }
}

impl GenValued for Integer {
    fn generate_valued(r: &mut Rng, min: i64, max: i64) -> Self {
        Integer::from(r.range(min, max))
    }
}

impl Gen for OctetString {
    fn generate(r: &mut Rng, d: u32) -> Self {
        Self::generate_sized(r, d, 0, 40)
    }
}

impl GenSized for OctetString {
    fn generate_sized(r: &mut Rng, _: u32, min: i64, max: i64) -> Self {
        let n = r.range(min.max(0), max.min(min.max(0) + 40)) as usize;
        OctetString::from(r.bytes(n))
    }
}

impl<const N: usize> Gen for FixedOctetString<N> {
    fn generate(r: &mut Rng, _: u32) -> Self {
        let mut a = [0u8; N];
        a.iter_mut().for_each(|b| *b = r.next_u64() as u8);
        FixedOctetString::new(a)
    }
}

impl<const N: usize> GenSized for FixedOctetString<N> {
    fn generate_sized(r: &mut Rng, d: u32, _: i64, _: i64) -> Self {
        Self::generate(r, d)
    }
}

impl Gen for BitString {
    fn generate(r: &mut Rng, d: u32) -> Self {
        Self::generate_sized(r, d, 0, 40)
    }
}

impl GenSized for BitString {
    fn generate_sized(r: &mut Rng, _: u32, min: i64, max: i64) -> Self {
        let n = r.range(min.max(0), max.min(min.max(0) + 40)) as usize;
        (0..n).map(|_| r.coin()).collect()
    }
}

/// Generates a restricted character string from an alphabet function.
fn text(r: &mut Rng, min: i64, max: i64, digits_only: bool) -> Vec<u8> {
    let n = r.range(min.max(0), max.min(min.max(0) + 20)) as usize;
    if digits_only {
        (0..n).map(|_| b'0' + r.below(10) as u8).collect()
    } else {
        r.alnum(n)
    }
}

macro_rules! ascii_strings {
    ($($t:ty => $digits:expr),*) => {$(
        impl Gen for $t {
            fn generate(r: &mut Rng, d: u32) -> Self {
                Self::generate_sized(r, d, 0, 20)
            }
        }
        impl GenSized for $t {
            fn generate_sized(r: &mut Rng, _: u32, min: i64, max: i64) -> Self {
                let bytes = text(r, min, max, $digits);
                <$t>::try_from(bytes).unwrap()
            }
        }
    )*};
}
ascii_strings!(PrintableString => false, Ia5String => false, VisibleString => false,
    TeletexString => false, NumericString => true);

impl Gen for Utf8String {
    fn generate(r: &mut Rng, d: u32) -> Self {
        Self::generate_sized(r, d, 0, 20)
    }
}

impl GenSized for Utf8String {
    fn generate_sized(r: &mut Rng, _: u32, min: i64, max: i64) -> Self {
        let mut s = String::from_utf8(text(r, min, max, false)).unwrap();
        // One non-ASCII character now and then (same character count).
        if !s.is_empty() && r.below(4) == 0 {
            s.pop();
            s.push('é');
        }
        s
    }
}

impl Gen for BmpString {
    fn generate(r: &mut Rng, d: u32) -> Self {
        Self::generate_sized(r, d, 0, 20)
    }
}

impl GenSized for BmpString {
    fn generate_sized(r: &mut Rng, _: u32, min: i64, max: i64) -> Self {
        let ucs2: Vec<u8> = text(r, min, max, false)
            .into_iter()
            .flat_map(|c| [0, c])
            .collect();
        BmpString::try_from(&ucs2[..]).unwrap()
    }
}

impl Gen for UniversalString {
    fn generate(r: &mut Rng, d: u32) -> Self {
        UniversalString::new(Utf8String::generate(r, d))
    }
}

impl GenSized for UniversalString {
    fn generate_sized(r: &mut Rng, d: u32, min: i64, max: i64) -> Self {
        UniversalString::new(Utf8String::generate_sized(r, d, min, max))
    }
}

impl Gen for ObjectIdentifier {
    fn generate(r: &mut Rng, _: u32) -> Self {
        let mut arcs = vec![r.below(3) as u32, r.below(40) as u32];
        for _ in 0..r.below(6) {
            arcs.push(match r.below(3) {
                0 => r.below(128) as u32,
                1 => r.below(20_000) as u32,
                _ => r.next_u64() as u32,
            });
        }
        ObjectIdentifier::new(arcs).unwrap()
    }
}

impl Gen for Any {
    /// An open type value: a complete TLV (NULL, INTEGER or OCTET STRING).
    fn generate(r: &mut Rng, _: u32) -> Self {
        let tlv = match r.below(3) {
            0 => vec![0x05, 0x00],
            1 => vec![0x02, 0x01, r.below(0x80) as u8],
            _ => {
                let n = r.below(20) as usize;
                let mut v = vec![0x04, n as u8];
                v.extend(r.bytes(n));
                v
            }
        };
        Any::new(tlv)
    }
}

impl Gen for DateTime<Utc> {
    /// UTCTime between 1970-01-01 and 2049-12-31. RFC 5280 also gives
    /// 1950-1969 to UTCTime (`YY >= 50`), but rasn 0.30 reads `50`..`68` as
    /// 2050-2068, so those years are left out here (certificates in RSP are
    /// all issued after 2000).
    fn generate(r: &mut Rng, _: u32) -> Self {
        Utc.timestamp_opt(r.range(0, 2_524_607_999), 0).unwrap()
    }
}

impl Gen for DateTime<FixedOffset> {
    /// DER GeneralizedTime is in UTC (`Z`), whole seconds here, 1950-2999.
    fn generate(r: &mut Rng, _: u32) -> Self {
        Utc.timestamp_opt(r.range(-631_152_000, 32_503_679_999), 0)
            .unwrap()
            .fixed_offset()
    }
}
