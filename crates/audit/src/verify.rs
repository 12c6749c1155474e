//! Verification of a log: every entry's hash, every link, the sequence
//! without gaps, and the checkpoints; each problem names the entry.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::entry::{AuditEntry, GENESIS_HASH};

/// How far from its stored place an entry is looked for when its hash does
/// not match (a moved entry hashes right at its original sequence number).
const MOVE_WINDOW: u64 = 64;

/// One thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// The entry's fields do not give its stored hash: it was changed after
    /// it was appended.
    Edited {
        /// The entry.
        seq: u64,
    },
    /// Entries missing from the sequence.
    Removed {
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number.
        last: u64,
    },
    /// The entry stored at `stored_at` hashes right only at `belongs_at`:
    /// it was moved.
    Reordered {
        /// Where it is now.
        stored_at: u64,
        /// Where it was appended.
        belongs_at: u64,
    },
    /// A run of entries each moved by the same amount: entries before them
    /// were removed (or inserted) and the rest renumbered.
    Renumbered {
        /// First entry of the run (stored sequence number).
        first: u64,
        /// Last entry of the run.
        last: u64,
        /// Original sequence number minus stored one.
        by: i64,
    },
    /// The entry is consistent but does not link to the entry before it:
    /// that one was edited and its hash recomputed, or entries between them
    /// were removed and the rest rehashed.
    BrokenLink {
        /// The entry whose previous hash does not match.
        seq: u64,
    },
    /// A checkpoint names an entry after the last one: the tail was cut off.
    Truncated {
        /// The checkpoint's sequence number.
        checkpoint: u64,
        /// The log's last entry now (0: empty).
        last: u64,
    },
    /// The entry a checkpoint names has another hash than when it was signed.
    CheckpointMismatch {
        /// The checkpoint's (and entry's) sequence number.
        seq: u64,
    },
    /// A checkpoint whose signature does not verify (or by another key).
    BadCheckpoint {
        /// The checkpoint's sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Edited { seq } => write!(
                f,
                "entry {seq} was edited (its hash does not match its fields)"
            ),
            Self::Removed { first, last } if first == last => {
                write!(f, "entry {first} was removed")
            }
            Self::Removed { first, last } => write!(f, "entries {first} to {last} were removed"),
            Self::Reordered {
                stored_at,
                belongs_at,
            } => {
                write!(
                    f,
                    "entry {stored_at} was moved: it was appended as entry {belongs_at}"
                )
            }
            Self::Renumbered { first, last, by } => write!(
                f,
                "entries {first} to {last} were renumbered (each appended at its number {by:+}): entries before them were removed or inserted"
            ),
            Self::BrokenLink { seq } => write!(
                f,
                "entry {seq} does not link to the entry before it: that entry was edited and rehashed, or entries were removed and the rest rehashed"
            ),
            Self::Truncated { checkpoint, last } => write!(
                f,
                "the log was truncated: a checkpoint names entry {checkpoint}, the last entry is {last}"
            ),
            Self::CheckpointMismatch { seq } => {
                write!(f, "entry {seq} differs from the signed checkpoint of it")
            }
            Self::BadCheckpoint { seq, reason } => write!(f, "checkpoint {seq}: {reason}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// The last entry's sequence number (0: empty).
    pub last_seq: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// Everything wrong, in log order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks entries one at a time (a log need not fit in memory): feed them in
/// ascending stored sequence order with [`Verifier::push`], then
/// [`Verifier::finish`].
#[derive(Debug)]
pub struct Verifier {
    checkpoints: Vec<Checkpoint>,
    expected_key: Option<Vec<u8>>,
    /// Stored hashes of the entries that checkpoints name.
    at_checkpoints: BTreeMap<u64, [u8; 32]>,
    last_seq: u64,
    last_hash: [u8; 32],
    /// Whether the previous entry was reported.
    last_flagged: bool,
    entries: u64,
    problems: Vec<Problem>,
}

impl Verifier {
    /// A verifier that will also check `checkpoints`, signed by
    /// `expected_key` (uncompressed SEC1) when given.
    pub fn new(checkpoints: Vec<Checkpoint>, expected_key: Option<Vec<u8>>) -> Self {
        Self {
            checkpoints,
            expected_key,
            at_checkpoints: BTreeMap::new(),
            last_seq: 0,
            last_hash: GENESIS_HASH,
            last_flagged: false,
            entries: 0,
            problems: Vec::new(),
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) {
        self.entries += 1;
        let expected = self.last_seq + 1;
        let gap = e.seq > expected;
        if gap {
            self.problems.push(Problem::Removed {
                first: expected,
                last: e.seq - 1,
            });
        }
        let consistent = e.hash_is_consistent();
        if !consistent {
            match original_seq(e) {
                Some(orig) => self.moved(e.seq, orig),
                None => self.problems.push(Problem::Edited { seq: e.seq }),
            }
        } else if !gap && !self.last_flagged && e.prev_hash != self.last_hash {
            // (After an entry already reported, its link says nothing new.)
            self.problems.push(Problem::BrokenLink { seq: e.seq });
        }
        self.last_flagged = !consistent;
        if self.checkpoints.iter().any(|c| c.seq == e.seq) {
            self.at_checkpoints.insert(e.seq, e.hash);
        }
        self.last_seq = e.seq;
        self.last_hash = e.hash;
    }

    /// Records that the entry stored at `stored` was appended at `orig`,
    /// merging runs moved by the same amount.
    fn moved(&mut self, stored: u64, orig: u64) {
        let by = orig as i64 - stored as i64;
        if let Some(last) = self.problems.last_mut() {
            match *last {
                Problem::Reordered {
                    stored_at,
                    belongs_at,
                } if stored_at + 1 == stored && belongs_at as i64 - stored_at as i64 == by => {
                    *last = Problem::Renumbered {
                        first: stored_at,
                        last: stored,
                        by,
                    };
                    return;
                }
                Problem::Renumbered {
                    first,
                    last: end,
                    by: run,
                } if end + 1 == stored && run == by => {
                    *last = Problem::Renumbered {
                        first,
                        last: stored,
                        by,
                    };
                    return;
                }
                _ => {}
            }
        }
        self.problems.push(Problem::Reordered {
            stored_at: stored,
            belongs_at: orig,
        });
    }

    /// Checks the checkpoints against what was read and gives the report.
    pub fn finish(mut self) -> VerifyReport {
        for c in &self.checkpoints {
            if let Err(e) = c.verify(self.expected_key.as_deref()) {
                self.problems.push(Problem::BadCheckpoint {
                    seq: c.seq,
                    reason: e.to_string(),
                });
                continue;
            }
            if c.seq > self.last_seq {
                self.problems.push(Problem::Truncated {
                    checkpoint: c.seq,
                    last: self.last_seq,
                });
            } else {
                match self.at_checkpoints.get(&c.seq) {
                    Some(h) if *h == c.hash => {}
                    // Absent: the entry was removed (reported above) or differs.
                    _ => self
                        .problems
                        .push(Problem::CheckpointMismatch { seq: c.seq }),
                }
            }
        }
        VerifyReport {
            entries: self.entries,
            last_seq: self.last_seq,
            checkpoints: self.checkpoints.len(),
            problems: self.problems,
        }
    }
}

/// The sequence number near its stored one at which a moved entry hashes
/// right.
fn original_seq(e: &AuditEntry) -> Option<u64> {
    let lo = e.seq.saturating_sub(MOVE_WINDOW).max(1);
    (lo..=e.seq.saturating_add(MOVE_WINDOW))
        .filter(|s| *s != e.seq)
        .find(|s| e.hash_at(*s) == e.hash)
}

/// Verifies a whole log held in memory (entries in stored order).
pub fn verify<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    checkpoints: Vec<Checkpoint>,
    expected_key: Option<Vec<u8>>,
) -> VerifyReport {
    let mut v = Verifier::new(checkpoints, expected_key);
    for e in entries {
        v.push(e);
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::entry::{Actor, AuditRecord, chain};
    use crate::sign_checkpoint;
    use ferrosim_crypto::{KeySource, SoftwareKey};
    use ferrosim_ids::Timestamp;

    fn log(n: i64) -> Vec<AuditEntry> {
        let recs: Vec<_> = (0..n)
            .map(|i| {
                AuditRecord::new(
                    Timestamp(1000 + i),
                    Actor::system(),
                    "test.step",
                    &i.to_string(),
                )
                .with_details(serde_json::json!({"i": i}))
            })
            .collect();
        chain(0, GENESIS_HASH, &recs)
    }

    fn problems(entries: &[AuditEntry]) -> Vec<Problem> {
        verify(entries, vec![], None).problems
    }

    #[test]
    fn an_untouched_log_verifies() {
        let r = verify(&log(10), vec![], None);
        assert!(r.ok() && r.entries == 10 && r.last_seq == 10);
        assert!(verify(&[], vec![], None).ok());
    }

    #[test]
    fn each_tampering_is_named() {
        let mut l = log(10);
        l[4].subject = "someone else".into();
        assert_eq!(problems(&l), vec![Problem::Edited { seq: 5 }]);

        // Edited and rehashed: the next entry's link breaks.
        let mut l = log(10);
        l[4].details = "{}".into();
        l[4].hash = l[4].computed_hash();
        assert_eq!(problems(&l), vec![Problem::BrokenLink { seq: 6 }]);

        let mut l = log(10);
        l.remove(6);
        assert_eq!(problems(&l), vec![Problem::Removed { first: 7, last: 7 }]);

        // Swap the contents of entries 3 and 4 (sequence numbers stay).
        let mut l = log(10);
        let (a, b) = (l[2].clone(), l[3].clone());
        l[2] = AuditEntry { seq: 3, ..b };
        l[3] = AuditEntry { seq: 4, ..a };
        assert_eq!(
            problems(&l),
            vec![
                Problem::Reordered {
                    stored_at: 3,
                    belongs_at: 4
                },
                Problem::Reordered {
                    stored_at: 4,
                    belongs_at: 3
                }
            ]
        );

        // Remove entry 5 and renumber the rest.
        let mut l = log(10);
        l.remove(4);
        for e in &mut l[4..] {
            e.seq -= 1;
        }
        assert_eq!(
            problems(&l),
            vec![Problem::Renumbered {
                first: 5,
                last: 9,
                by: 1
            }]
        );
    }

    #[test]
    fn checkpoints_catch_truncation() {
        let key = SoftwareKey::generate().unwrap();
        let l = log(10);
        let cp = sign_checkpoint(&key, 10, l[9].hash, 5).unwrap();
        let pk = Some(key.public_key_sec1().to_vec());
        assert!(verify(&l, vec![cp.clone()], pk.clone()).ok());
        let r = verify(&l[..7], vec![cp.clone()], pk.clone());
        assert_eq!(
            r.problems,
            vec![Problem::Truncated {
                checkpoint: 10,
                last: 7
            }]
        );
        // A tail rewritten after the checkpoint was signed.
        let mut l2 = l.clone();
        l2[9].subject = "x".into();
        l2[9].hash = l2[9].computed_hash();
        assert_eq!(
            verify(&l2, vec![cp.clone()], pk).problems,
            vec![Problem::CheckpointMismatch { seq: 10 }]
        );
        // A checkpoint signed by another key.
        let other = SoftwareKey::generate().unwrap();
        let r = verify(&l, vec![cp], Some(other.public_key_sec1().to_vec()));
        assert!(matches!(
            r.problems[..],
            [Problem::BadCheckpoint { seq: 10, .. }]
        ));
    }
}
