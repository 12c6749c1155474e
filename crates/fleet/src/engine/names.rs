//! The fleet's table of vendor, model and firmware names: each distinct
//! name is stored once and devices hold a [`NameId`]. Names are also
//! interned in the telemetry dictionary so events carry them as symbols.

use std::collections::HashMap;

use ferrosim_telemetry::{Dictionary, Sym};

use crate::device::NameId;

/// Most distinct names (vendors, models, firmware versions together).
pub const MAX_NAMES: usize = 1 << 20;

/// Interned vendor/model/firmware names.
#[derive(Debug, Clone, Default)]
pub struct Names {
    dict: Dictionary,
    by_name: HashMap<String, NameId>,
    names: Vec<String>,
    syms: Vec<Option<Sym>>,
}

impl Names {
    /// An empty table interning into `dict` as well.
    pub fn new(dict: Dictionary) -> Self {
        Self {
            dict,
            ..Self::default()
        }
    }

    /// The id of `name`, created on first use.
    pub fn intern(&mut self, name: &str) -> Result<NameId, String> {
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(format!(
                "{name:?} must be 1..=64 characters without control characters"
            ));
        }
        if self.names.len() >= MAX_NAMES {
            return Err(format!(
                "more than {MAX_NAMES} distinct vendor/model/firmware names"
            ));
        }
        let id = NameId(u32::try_from(self.names.len()).map_err(|_| "name table full".to_owned())?);
        self.names.push(name.to_owned());
        self.syms.push(self.dict.intern(name).ok());
        self.by_name.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The name of `id` (`"?"` if unknown).
    pub fn name(&self, id: NameId) -> &str {
        self.names.get(id.0 as usize).map_or("?", String::as_str)
    }

    /// The telemetry symbol of `id`.
    pub fn sym(&self, id: NameId) -> Option<Sym> {
        self.syms.get(id.0 as usize).copied().flatten()
    }

    /// The telemetry symbol of a rollout's name.
    pub fn rollout_sym(&self, name: &str) -> Option<Sym> {
        self.dict.intern(name).ok()
    }

    /// Every name in id order (what a snapshot stores).
    pub fn all(&self) -> &[String] {
        &self.names
    }
}
