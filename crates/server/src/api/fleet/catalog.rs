//! Operators' changes of the fleet catalog over REST: carriers, groups and
//! failover rules read one by one with their version, created or replaced
//! (`PUT`), and deleted (`DELETE`).
//!
//! An item's version is a digest of its stored JSON, sent as the `ETag` of
//! a read and expected back as `If-Match` by every change of an existing
//! item: a change made from an older read is refused with `412` (two
//! operators, or two instances on one database, never silently overwrite
//! each other). A change of an existing item without `If-Match` is refused
//! with `428`; `PUT` of a new item takes none (an `If-Match` on an item
//! that does not exist is `412`). The version is compared inside the
//! driver's transaction, which runs again on the reloaded fleet when
//! another instance committed first, so the compare and the write are one
//! compare-and-set on the stored fleet configuration.
//!
//! A delete that would strand devices or a rollout is refused with `409`
//! (see [`ferrosim_fleet::Fleet::delete_carrier`] and its siblings).

use ferrosim_eim::EimStore;
use ferrosim_fleet::FleetError;
use ferrosim_fleet::config::{CarrierConfig, FleetConfig, GroupConfig, RuleConfig};
use ferrosim_fleet::store::FleetStore;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ops::driver_error;
use crate::api::ApiError;
use crate::fleet::{DriverError, FleetDriver};

/// What kind of catalog item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A carrier.
    Carrier,
    /// A device group.
    Group,
    /// A failover rule.
    Rule,
}

impl Kind {
    /// The item's name in messages and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Carrier => "carrier",
            Self::Group => "group",
            Self::Rule => "rule",
        }
    }

    /// The items of this kind in `config`, as JSON, with their names.
    fn items(self, config: &FleetConfig) -> Vec<(String, Value)> {
        fn all<T: serde::Serialize>(
            items: &[T],
            name: impl Fn(&T) -> &str,
        ) -> Vec<(String, Value)> {
            items
                .iter()
                .map(|i| {
                    (
                        name(i).to_owned(),
                        serde_json::to_value(i).unwrap_or(Value::Null),
                    )
                })
                .collect()
        }
        match self {
            Self::Carrier => all(&config.carriers, |c| &c.name),
            Self::Group => all(&config.groups, |g| &g.name),
            Self::Rule => all(&config.rules, |r| &r.name),
        }
    }
}

/// A new or changed item, as the request gave it.
#[derive(Debug, Clone)]
pub enum Item {
    /// A carrier.
    Carrier(CarrierConfig),
    /// A device group.
    Group(GroupConfig),
    /// A failover rule.
    Rule(RuleConfig),
}

impl Item {
    fn kind(&self) -> Kind {
        match self {
            Self::Carrier(_) => Kind::Carrier,
            Self::Group(_) => Kind::Group,
            Self::Rule(_) => Kind::Rule,
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Carrier(c) => &c.name,
            Self::Group(g) => &g.name,
            Self::Rule(r) => &r.name,
        }
    }
}

/// The version of an item: a digest of its JSON (16 hex digits).
pub fn version(item: &Value) -> String {
    let bytes = serde_json::to_vec(item).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// The version an `If-Match` header names (quotes and a weak `W/` prefix
/// dropped); `None` without the header.
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match: not text"))?
        .trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.trim_matches('"');
    if text.is_empty() || text.len() > 64 {
        return Err(ApiError::bad_request("If-Match: not a version"));
    }
    Ok(Some(text.to_owned()))
}

/// One item with its version.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The item as stored.
    pub item: Value,
    /// Its version.
    pub version: String,
}

/// Reads one item (after catching up with other instances).
pub async fn get<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    kind: Kind,
    name: &str,
) -> Result<Versioned, ApiError> {
    driver.refresh().await.map_err(driver_error)?;
    driver
        .read(|fleet, _| find(fleet.catalog().config(), kind, name))
        .await
        .map(|item| Versioned {
            version: version(&item),
            item,
        })
        .ok_or_else(|| ApiError::not_found(&format!("unknown {} {name:?}", kind.name())))
}

fn find(config: &FleetConfig, kind: Kind, name: &str) -> Option<Value> {
    kind.items(config)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Checks `expected` (an `If-Match` version) against the item as it is
/// now; the refusal as an API error.
fn check_version(
    current: Option<&Value>,
    expected: Option<&str>,
    kind: Kind,
    name: &str,
    creating_allowed: bool,
) -> Result<(), ApiError> {
    match (current, expected) {
        (Some(_), None) => Err(ApiError::precondition_required(&format!(
            "{} {name:?} exists: send its version (the ETag of GET) as If-Match",
            kind.name()
        ))),
        (Some(v), Some(e)) if version(v) != e => Err(ApiError::precondition_failed(&format!(
            "{} {name:?} changed since version {e} was read (now {}): read it again",
            kind.name(),
            version(v)
        ))),
        (Some(_), Some(_)) => Ok(()),
        (None, Some(e)) => Err(ApiError::precondition_failed(&format!(
            "{} {name:?} does not exist (any more), not at version {e}",
            kind.name()
        ))),
        (None, None) if creating_allowed => Ok(()),
        (None, None) => Err(ApiError::not_found(&format!(
            "unknown {} {name:?}",
            kind.name()
        ))),
    }
}

/// What a change did, for the answer and the audit trail.
#[derive(Debug, Clone)]
pub struct Changed {
    /// Whether the item was created.
    pub created: bool,
    /// The version before (`None`: created).
    pub before: Option<String>,
    /// The item after (`None`: deleted).
    pub after: Option<Versioned>,
}

/// Runs one catalog change in a driver transaction with the version check
/// (see the module documentation).
async fn change<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    kind: Kind,
    name: &str,
    expected: Option<&str>,
    creating_allowed: bool,
    apply: impl Fn(&mut ferrosim_fleet::Fleet, ferrosim_ids::Timestamp) -> Result<(), FleetError>,
) -> Result<Changed, ApiError> {
    let mut refused: Option<ApiError> = None;
    let mut before: Option<String> = None;
    let r = driver
        .transact(|tx| {
            let current = find(tx.fleet.catalog().config(), kind, name);
            if let Err(e) = check_version(current.as_ref(), expected, kind, name, creating_allowed)
            {
                let message = e.message().to_owned();
                refused = Some(e);
                return Err(FleetError::Stale(message));
            }
            refused = None;
            before = current.as_ref().map(version);
            apply(tx.fleet, tx.now)
        })
        .await;
    match r {
        Ok(()) => {}
        Err(DriverError::Refused(FleetError::Stale(_))) if refused.is_some() => {
            return Err(refused.unwrap_or_else(|| ApiError::internal("no refusal")));
        }
        Err(e) => return Err(catalog_error(e)),
    }
    let after = driver
        .read(|fleet, _| find(fleet.catalog().config(), kind, name))
        .await
        .map(|item| Versioned {
            version: version(&item),
            item,
        });
    Ok(Changed {
        created: before.is_none(),
        before,
        after,
    })
}

/// A driver failure of a catalog change as an API error.
fn catalog_error(e: DriverError) -> ApiError {
    match e {
        DriverError::Refused(FleetError::UnknownItem { kind, name }) => {
            ApiError::not_found(&format!("unknown {kind} {name:?}"))
        }
        DriverError::Refused(FleetError::InUse(m)) => ApiError::conflict(&m),
        DriverError::Refused(FleetError::InvalidConfig(m)) => ApiError::refused(&m),
        e => driver_error(e),
    }
}

/// Creates (no `If-Match`) or replaces (`If-Match` = its version) the
/// item named `name`; the item's own name must be `name`.
pub async fn put<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    name: &str,
    item: Item,
    expected: Option<&str>,
) -> Result<Changed, ApiError> {
    let kind = item.kind();
    if item.name() != name {
        return Err(ApiError::refused(&format!(
            "the {} in the body is named {:?}, the path names {name:?}",
            kind.name(),
            item.name()
        )));
    }
    change(driver, kind, name, expected, true, |fleet, now| {
        match item.clone() {
            Item::Carrier(c) => fleet.put_carrier(c, now),
            Item::Group(g) => fleet.put_group(g, now),
            Item::Rule(r) => fleet.put_rule(r, now),
        }
        .map(|_| ())
    })
    .await
}

/// Deletes the item named `name` at version `expected` (required).
pub async fn delete<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    kind: Kind,
    name: &str,
    expected: Option<&str>,
) -> Result<Changed, ApiError> {
    change(
        driver,
        kind,
        name,
        expected,
        false,
        |fleet, now| match kind {
            Kind::Carrier => fleet.delete_carrier(name, now),
            Kind::Group => fleet.delete_group(name, now),
            Kind::Rule => fleet.delete_rule(name, now),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn versions_follow_content_and_if_match_takes_etag_forms() {
        let a = serde_json::json!({"name": "a", "x": 1});
        let b = serde_json::json!({"name": "a", "x": 2});
        assert_eq!(version(&a), version(&a.clone()));
        assert_ne!(version(&a), version(&b));
        assert_eq!(version(&a).len(), 16);
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(if_match(&h).unwrap(), None);
        for form in ["\"abc\"", "W/\"abc\"", "abc"] {
            h.insert(axum::http::header::IF_MATCH, form.parse().unwrap());
            assert_eq!(if_match(&h).unwrap().as_deref(), Some("abc"));
        }
        h.insert(axum::http::header::IF_MATCH, "\"\"".parse().unwrap());
        assert!(if_match(&h).is_err());
    }
}
