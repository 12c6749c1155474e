//! What the IPA must not forget across a power cut: results the eIM has not
//! acknowledged yet, whether the eIM must be told the eUICC's state changed,
//! the EID, and the count of failed sessions (for the backoff).
//!
//! The machine hands out [`crate::Action::Persist`] with the whole state
//! whenever it changes, and always *before* it sends a new result to the
//! eIM, so a result the eUICC produced is on disk before it is on the wire.
//! A result is dropped only when the eIM acknowledged it
//! (`EimAcknowledgements` naming its sequence number, or, for results
//! without one, a well-formed answer), or after
//! [`crate::IpaConfig::max_result_attempts`] sessions without.

use ferrosim_ids::Eid;
use serde::{Deserialize, Serialize};

/// The kind of a result the IPA holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultKind {
    /// An EuiccPackageResult (signed by the eUICC) or the IPA's
    /// eimPackageResultResponseError for a package the eUICC could not read.
    Package,
    /// An IpaEuiccDataResponse.
    EuiccData,
    /// A ProfileDownloadTriggerResult.
    Download,
}

/// One result waiting for the eIM's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingResult {
    /// Identifies it within this IPA.
    pub id: u64,
    /// What it answers.
    pub kind: ResultKind,
    /// The `EimPackageResult` element (DER, as the eUICC signed it).
    #[serde(with = "hex_bytes")]
    pub element: Vec<u8>,
    /// Its sequence number, for a signed eUICC package result.
    pub seq_number: Option<i64>,
    /// Sessions it was offered in without an acknowledgement.
    pub attempts: u32,
}

/// The IPA's persistent state (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingState {
    /// The EID, once read from the eUICC (stored as its 32 digits; a state
    /// whose EID is not valid does not read back).
    #[serde(default)]
    pub eid: Option<Eid>,
    /// The next GetEimPackage carries `notifyStateChange`.
    #[serde(default)]
    pub notify_state_change: bool,
    /// Its `stateChangeCause` (SGP.32 `StateChangeCause`).
    #[serde(default)]
    pub state_change_cause: Option<i64>,
    /// Results not acknowledged yet, oldest first.
    #[serde(default)]
    pub results: Vec<PendingResult>,
    /// Sessions in a row that failed (0 after a good one).
    #[serde(default)]
    pub failures: u32,
    /// The id the next result gets.
    #[serde(default)]
    pub next_id: u64,
}

impl PendingState {
    /// Reads a state written by [`PendingState::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The state as JSON (what drivers write to disk).
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and vectors always serialises.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Keeps a new result; returns its id.
    pub(crate) fn push(
        &mut self,
        kind: ResultKind,
        element: Vec<u8>,
        seq_number: Option<i64>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.results.push(PendingResult {
            id,
            kind,
            element,
            seq_number,
            attempts: 0,
        });
        id
    }
}

/// `Vec<u8>` as a hex string.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text.trim()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_through_json_and_refuses_garbage() {
        let mut state = PendingState {
            eid: Some("89049032123451234512345678901235".parse().unwrap()),
            notify_state_change: true,
            ..PendingState::default()
        };
        state.push(ResultKind::Package, vec![0xBF, 0x51, 0x00], Some(7));
        state.push(ResultKind::Download, vec![0xBF, 0x54, 0x00], None);
        let back = PendingState::from_json(&state.to_json()).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.next_id, 2);
        for garbage in [
            &b""[..],
            b"{",
            b"42",
            b"{\"results\":[{\"id\":1}]}",
            b"\xff\xfe",
        ] {
            assert!(PendingState::from_json(garbage).is_err(), "{garbage:?}");
        }
        assert!(
            PendingState::from_json(
                br#"{"results":[{"id":1,"kind":"package","element":"zz","attempts":0}]}"#
            )
            .is_err()
        );
        assert_eq!(
            PendingState::from_json(b"{}").unwrap(),
            PendingState::default()
        );
    }

    #[test]
    fn the_eid_is_stored_as_its_digits_and_a_bad_one_does_not_read_back() {
        let eid = "89049032123451234512345678901235";
        let state = PendingState {
            eid: Some(eid.parse().unwrap()),
            ..PendingState::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&state.to_json()).unwrap();
        assert_eq!(json["eid"], eid);
        let with = |eid: &str| format!(r#"{{"eid":{eid}}}"#);
        assert_eq!(
            PendingState::from_json(with("null").as_bytes())
                .unwrap()
                .eid,
            None
        );
        for bad in [
            r#""89049032123451234512345678901234""#,
            r#""8904903212345123451234567890123""#,
            r#""""#,
            r#""x""#,
            "42",
            "[]",
        ] {
            assert!(
                PendingState::from_json(with(bad).as_bytes()).is_err(),
                "{bad}"
            );
        }
    }
}
