//! The compare-and-set UPDATE of a profile row, naming only the indexed
//! columns whose values changed.
//!
//! SQLite rewrites a row's entry in every index whose columns an UPDATE's
//! SET list names, even when the value stays the same, and each rewritten
//! entry dirties an index page that the commit appends to the write-ahead
//! log. A download writes its profile three times and changes its state
//! each time, but its EID, matching id and order expiry rarely; naming those
//! only when they change saves their index pages (BENCHMARKS.md has the
//! numbers). PostgreSQL compares indexed values itself; the same statements
//! serve it.

use std::fmt::Write as _;
use std::sync::LazyLock;

use ferrosim_smdp::order::ProfileRecord;
use ferrosim_smdp::store::Version;

use crate::profiles::profile_vals;
use crate::sessions::version_val;
use crate::writes::{Val, Writes};

/// `profiles_by_type_state` and the partial `profiles_secrets_to_purge`.
const STATE: u8 = 1;
/// The partial `profiles_by_eid`.
const EID: u8 = 2;
/// The `UNIQUE` index of `matching_id`.
const MATCHING_ID: u8 = 4;
/// The partial `profiles_by_expiry` (its condition reads `has_order`).
const EXPIRY: u8 = 8;
/// Every combination of the groups above.
const GROUP_SETS: u8 = 16;

/// The mutable columns in the order of [`profile_vals`]' `$2..$20`, each
/// with the index group it belongs to; 0 marks a column no index reads,
/// always written.
const COLUMNS: [(&str, u8); 19] = [
    ("state", STATE),
    ("has_order", EXPIRY),
    ("eid", EID),
    ("matching_id", MATCHING_ID),
    ("cc_hash", 0),
    ("cc_failed_attempts", 0),
    ("smds_address", 0),
    ("order_created_at", 0),
    ("order_expires_at", EXPIRY),
    ("session_tid", 0),
    ("download_attempts", 0),
    ("failure_bpp_command_id", 0),
    ("failure_error_reason", 0),
    ("failure_message", 0),
    ("updated_at", 0),
    ("device_state", 0),
    ("device_seq", 0),
    ("device_at", 0),
    ("type_version", 0),
];

/// One statement per set of changed index groups, built once.
static STATEMENTS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..GROUP_SETS).map(statement).collect());

/// The UPDATE that writes the unindexed columns and those of `groups`:
/// `$1` is the ICCID, the written columns follow in [`COLUMNS`] order, and
/// the last parameter is the version read.
fn statement(groups: u8) -> String {
    let mut sql = String::from("UPDATE profiles SET version = version + 1");
    let mut n = 1;
    for (name, group) in COLUMNS {
        if written(group, groups) {
            n += 1;
            let _ = write!(sql, ", {name} = ${n}");
        }
    }
    let _ = write!(sql, " WHERE iccid = $1 AND version = ${}", n + 1);
    sql
}

fn written(group: u8, changed: u8) -> bool {
    group == 0 || changed & group != 0
}

/// Queues the compare-and-set rewrite of `previous`, read at `expected`,
/// into `record`.
pub(crate) fn update_profile(
    w: &mut Writes,
    previous: &ProfileRecord,
    record: &ProfileRecord,
    expected: Version,
) {
    let new = profile_vals(record);
    let old = profile_vals(previous);
    let changed = COLUMNS
        .iter()
        .zip(new.iter().skip(1).zip(old.iter().skip(1)))
        .filter(|(_, (n, o))| n != o)
        .fold(0, |groups, ((_, group), _)| groups | group);
    let mut vals: Vec<Val> = Vec::with_capacity(new.len() + 1);
    let mut new = new.into_iter();
    vals.extend(new.next());
    vals.extend(
        COLUMNS
            .iter()
            .zip(new)
            .filter(|((_, group), _)| written(*group, changed))
            .map(|(_, v)| v),
    );
    vals.push(version_val(expected));
    let statements: &'static [String] = &STATEMENTS;
    w.push_checked(&statements[usize::from(changed)], vals);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_order() {
        assert_eq!(
            statement(0),
            "UPDATE profiles SET version = version + 1, cc_hash = $2, cc_failed_attempts = $3, \
             smds_address = $4, order_created_at = $5, session_tid = $6, download_attempts = $7, \
             failure_bpp_command_id = $8, failure_error_reason = $9, failure_message = $10, \
             updated_at = $11, device_state = $12, device_seq = $13, device_at = $14, \
             type_version = $15 WHERE iccid = $1 AND version = $16"
        );
        let all = statement(GROUP_SETS - 1);
        assert!(all.starts_with(
            "UPDATE profiles SET version = version + 1, state = $2, has_order = $3, eid = $4, \
             matching_id = $5, cc_hash = $6,"
        ));
        assert!(all.ends_with("type_version = $20 WHERE iccid = $1 AND version = $21"));
        assert!(statement(EID).contains(", eid = $2, cc_hash = $3,"));
        assert!(statement(EXPIRY).contains(", has_order = $2, cc_hash = $3,"));
        assert!(statement(EXPIRY).contains(", order_expires_at = $7, session_tid = $8,"));
    }
}
