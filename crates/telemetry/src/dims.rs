//! Dimensions of an event (carrier, SM-DP+, vendor, model, firmware, group,
//! rollout, wave) as interned symbols.
//!
//! A simulated city pushes millions of events that name the same few dozen
//! carriers and models; each event keeps a 4-byte [`Sym`] per dimension
//! instead of a string, and the [`Dictionary`] maps symbols to names. The
//! dictionary only grows (a symbol stays valid for the life of the process)
//! and is shared by the producers, the store and every computation that
//! prints names.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// An interned dimension value (a carrier name, a firmware version...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

impl Sym {
    /// The symbol's index in its dictionary (0-based), for dense tables.
    pub fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

/// Longest dimension value accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Most distinct values a dictionary holds. Dimensions are meant to be
/// bounded sets (carriers, models, firmware versions); a producer that
/// interns identifiers would exhaust memory, so it gets an error instead.
pub const MAX_SYMBOLS: usize = 1 << 20;

/// Why a name could not be interned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DimError {
    /// Empty, too long, or contains control characters.
    #[error("dimension value must be 1..={MAX_NAME_LEN} bytes without control characters")]
    InvalidName,
    /// The dictionary holds [`MAX_SYMBOLS`] values already.
    #[error("too many distinct dimension values (limit {MAX_SYMBOLS})")]
    Full,
}

/// Interned names, shared between threads. Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    inner: Arc<RwLock<Names>>,
}

#[derive(Debug, Default)]
struct Names {
    by_name: HashMap<Arc<str>, Sym>,
    names: Vec<Arc<str>>,
}

impl Dictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// The symbol of `name`, creating it on first use.
    pub fn intern(&self, name: &str) -> Result<Sym, DimError> {
        if let Some(sym) = self.get(name) {
            return Ok(sym);
        }
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(DimError::InvalidName);
        }
        let mut names = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(sym) = names.by_name.get(name) {
            return Ok(*sym);
        }
        if names.names.len() >= MAX_SYMBOLS {
            return Err(DimError::Full);
        }
        let next = u32::try_from(names.names.len() + 1).map_err(|_| DimError::Full)?;
        let sym = Sym(NonZeroU32::new(next).ok_or(DimError::Full)?);
        let shared: Arc<str> = Arc::from(name);
        names.names.push(shared.clone());
        names.by_name.insert(shared, sym);
        Ok(sym)
    }

    /// The symbol of `name` if it was interned.
    pub fn get(&self, name: &str) -> Option<Sym> {
        let names = self.inner.read().unwrap_or_else(|e| e.into_inner());
        names.by_name.get(name).copied()
    }

    /// The name of `sym` (`"?"` for a symbol of another dictionary).
    pub fn name(&self, sym: Sym) -> Arc<str> {
        let names = self.inner.read().unwrap_or_else(|e| e.into_inner());
        names
            .names
            .get(sym.index())
            .cloned()
            .unwrap_or_else(|| Arc::from("?"))
    }

    /// The name of an optional symbol, `None` staying `None`.
    pub fn name_of(&self, sym: Option<Sym>) -> Option<Arc<str>> {
        sym.map(|s| self.name(s))
    }

    /// Number of interned values.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .names
            .len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The dimensions an event is grouped and filtered by. Every field may be
/// unknown (`None`); the device itself is the event's `device` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dims {
    /// Mobile network operator whose profile or network is concerned.
    pub carrier: Option<Sym>,
    /// SM-DP+ instance or deployment that served the download.
    pub smdp: Option<Sym>,
    /// Device vendor.
    pub vendor: Option<Sym>,
    /// Device model.
    pub model: Option<Sym>,
    /// Device (or modem) firmware version.
    pub firmware: Option<Sym>,
    /// Fleet group of the device.
    pub group: Option<Sym>,
    /// Rollout the activation belongs to.
    pub rollout: Option<Sym>,
    /// Wave of that rollout (1-based; `None` outside a rollout).
    pub wave: Option<u16>,
}

/// One dimension, to group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// [`Dims::carrier`].
    Carrier,
    /// [`Dims::smdp`].
    Smdp,
    /// [`Dims::vendor`].
    Vendor,
    /// [`Dims::vendor`] and [`Dims::model`] together.
    Model,
    /// [`Dims::firmware`].
    Firmware,
    /// [`Dims::group`].
    Group,
    /// [`Dims::rollout`].
    Rollout,
    /// [`Dims::rollout`] and [`Dims::wave`] together.
    Wave,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 8] = [
        Self::Carrier,
        Self::Smdp,
        Self::Vendor,
        Self::Model,
        Self::Firmware,
        Self::Group,
        Self::Rollout,
        Self::Wave,
    ];

    /// The name used on command lines, in JSON and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Carrier => "carrier",
            Self::Smdp => "smdp",
            Self::Vendor => "vendor",
            Self::Model => "model",
            Self::Firmware => "firmware",
            Self::Group => "group",
            Self::Rollout => "rollout",
            Self::Wave => "wave",
        }
    }

    /// Parses [`Dimension::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The key of `dims` along this dimension.
    pub fn key(self, dims: &Dims) -> GroupKey {
        match self {
            Self::Carrier => GroupKey::one(dims.carrier),
            Self::Smdp => GroupKey::one(dims.smdp),
            Self::Vendor => GroupKey::one(dims.vendor),
            Self::Model => GroupKey::two(dims.vendor, dims.model),
            Self::Firmware => GroupKey::one(dims.firmware),
            Self::Group => GroupKey::one(dims.group),
            Self::Rollout => GroupKey::one(dims.rollout),
            Self::Wave => GroupKey {
                first: dims.rollout,
                second: None,
                wave: dims.wave,
            },
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of one group: up to two symbols and a wave number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupKey {
    /// The symbol (carrier, vendor, rollout...); `None` when not known.
    pub first: Option<Sym>,
    /// The model, for [`Dimension::Model`].
    pub second: Option<Sym>,
    /// The wave, for [`Dimension::Wave`].
    pub wave: Option<u16>,
}

impl GroupKey {
    fn one(first: Option<Sym>) -> Self {
        Self {
            first,
            ..Self::default()
        }
    }

    fn two(first: Option<Sym>, second: Option<Sym>) -> Self {
        Self {
            first,
            second,
            wave: None,
        }
    }

    /// A printable name: `"(none)"` for an unknown value, `vendor/model`,
    /// `rollout#wave`.
    pub fn label(&self, dict: &Dictionary) -> String {
        let part = |s: Option<Sym>| {
            s.map(|s| dict.name(s).to_string())
                .unwrap_or_else(|| "(none)".to_owned())
        };
        let mut out = part(self.first);
        if let Some(second) = self.second {
            out.push('/');
            out.push_str(&dict.name(second));
        }
        if let Some(wave) = self.wave {
            out.push('#');
            out.push_str(&wave.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_validated() {
        let d = Dictionary::new();
        let a = d.intern("carrier-a").unwrap();
        let b = d.intern("carrier-b").unwrap();
        assert_ne!(a, b);
        assert_eq!(d.intern("carrier-a").unwrap(), a);
        assert_eq!(&*d.name(b), "carrier-b");
        assert_eq!(d.get("nope"), None);
        assert_eq!(d.intern(""), Err(DimError::InvalidName));
        assert_eq!(d.intern("a\nb"), Err(DimError::InvalidName));
        assert_eq!(d.intern(&"x".repeat(129)), Err(DimError::InvalidName));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn group_labels() {
        let d = Dictionary::new();
        let dims = Dims {
            vendor: Some(d.intern("acme").unwrap()),
            model: Some(d.intern("t1000").unwrap()),
            rollout: Some(d.intern("r7").unwrap()),
            wave: Some(2),
            ..Dims::default()
        };
        assert_eq!(Dimension::Model.key(&dims).label(&d), "acme/t1000");
        assert_eq!(Dimension::Wave.key(&dims).label(&d), "r7#2");
        assert_eq!(Dimension::Carrier.key(&dims).label(&d), "(none)");
        for dim in Dimension::ALL {
            assert_eq!(Dimension::parse(dim.as_str()), Some(dim));
        }
    }
}
