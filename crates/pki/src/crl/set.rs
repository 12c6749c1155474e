//! The CRLs in force.
//!
//! CRLs are grouped in streams, one per issuer (authority key id) and scope
//! (issuingDistributionPoint): a CI may publish one CRL for CA certificates
//! and one for end-entity certificates, as SGP.26's CI does. In a stream the
//! highest cRLNumber wins. A CRL split into parts (SGP.22 partial CRLs: every
//! part carries the same cRLNumber, its `partialCrlNumber` and the
//! `totalPartialCrlNumber`) takes over from the previous complete CRL only
//! once all its parts are in; until then a revocation listed in a part
//! already counts, and "not revoked" is answered from the previous complete CRL.
//!
//! Only CRLs whose signature was verified get into a stream. CRLs of an
//! issuer not known yet (an EUM's CRL loaded from a file before any eUICC of
//! that EUM was seen) wait unverified until a verified issuer certificate
//! arrives ([`CrlSet::promote`]).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use super::CrlError;
use super::parse::{Crl, CrlNumber, CrlScope, RevokedEntry};
use crate::cert::RspCertificate;
use crate::profile::KeyId;

/// CRLs of unknown issuers kept at most (each waits for its issuer's certificate).
const MAX_UNVERIFIED: usize = 256;

/// What loading a CRL did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The CRL (or part) is now in force or waits for its other parts.
    Loaded {
        /// Its cRLNumber.
        number: CrlNumber,
        /// Parts of this cRLNumber still missing (empty when complete), as
        /// LoadCRL's `missingParts`.
        missing_parts: Vec<u32>,
    },
    /// The very same CRL was already loaded.
    Unchanged {
        /// Its cRLNumber.
        number: CrlNumber,
    },
    /// The issuer is not known yet; the CRL is kept and verified once a
    /// certificate of its issuer has been verified.
    AwaitingIssuer {
        /// The issuer's key id.
        issuer: KeyId,
    },
}

/// A certificate's revocation status according to the CRLs in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrlStatus {
    /// Listed as revoked.
    Revoked {
        /// The CRL entry.
        entry: RevokedEntry,
        /// The cRLNumber of the CRL listing it.
        number: CrlNumber,
    },
    /// Not listed in a complete CRL that is still fresh.
    Good {
        /// That CRL's number.
        number: CrlNumber,
        /// Its nextUpdate.
        next_update: SystemTime,
    },
    /// Not listed, but the newest complete CRL covering it is past its nextUpdate.
    Stale {
        /// That CRL's number.
        number: CrlNumber,
        /// Its nextUpdate.
        next_update: SystemTime,
    },
    /// Only some parts of a partial CRL are loaded and no earlier complete CRL is.
    Incomplete {
        /// The parts still missing.
        missing_parts: Vec<u32>,
    },
    /// No CRL of the issuer covers the certificate.
    NoCrl,
}

/// One cRLNumber's parts (a single part for an unsplit CRL).
#[derive(Clone, Debug)]
struct Generation {
    number: CrlNumber,
    total: u32,
    parts: BTreeMap<u32, Crl>,
}

impl Generation {
    fn missing_parts(&self) -> Vec<u32> {
        (1..=self.total)
            .filter(|p| !self.parts.contains_key(p))
            .collect()
    }

    fn is_complete(&self) -> bool {
        self.parts.len() == self.total as usize
    }

    /// The earliest nextUpdate of the parts: the generation is stale when one part is.
    fn next_update(&self) -> SystemTime {
        self.parts
            .values()
            .map(Crl::next_update)
            .min()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn entry(&self, serial: &[u8]) -> Option<&RevokedEntry> {
        self.parts.values().find_map(|c| c.entry(serial))
    }
}

/// The CRLs of one issuer and scope.
#[derive(Clone, Debug, Default)]
struct Stream {
    complete: Option<Generation>,
    pending: Option<Generation>,
}

/// The CRLs in force, by issuer and scope. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct CrlSet {
    streams: HashMap<(KeyId, CrlScope), Stream>,
    unverified: Vec<Crl>,
}

impl CrlSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a CRL whose signature the caller has verified in force.
    pub fn insert_verified(&mut self, crl: Crl) -> Result<LoadOutcome, CrlError> {
        let key = (crl.authority_key_id().clone(), crl.scope().clone());
        let stream = self.streams.entry(key).or_default();
        let number = crl.number().clone();
        let (part, total) = crl.part().map_or((1, 1), |p| (p.number, p.total));

        if let Some(done) = &stream.complete {
            if number < done.number {
                return Err(CrlError::NotNewer {
                    loaded: done.number.clone(),
                    offered: number,
                });
            }
            if number == done.number {
                return match done.parts.get(&part) {
                    Some(same) if same == &crl => Ok(LoadOutcome::Unchanged { number }),
                    _ => Err(CrlError::Inconsistent(
                        "another CRL with the same cRLNumber is already loaded",
                    )),
                };
            }
        }
        let pending = match stream.pending.take() {
            Some(p) if p.number == number => p,
            Some(p) if p.number > number => {
                let loaded = p.number.clone();
                stream.pending = Some(p);
                return Err(CrlError::NotNewer {
                    loaded,
                    offered: number,
                });
            }
            _ => Generation {
                number: number.clone(),
                total,
                parts: BTreeMap::new(),
            },
        };
        let mut pending = pending;
        if pending.total != total {
            let err = CrlError::Inconsistent(
                "parts of the same cRLNumber announce different totalPartialCrlNumber",
            );
            stream.pending = Some(pending);
            return Err(err);
        }
        match pending.parts.get(&part) {
            Some(same) if same == &crl => {
                stream.pending = Some(pending);
                return Ok(LoadOutcome::Unchanged { number });
            }
            Some(_) => {
                stream.pending = Some(pending);
                return Err(CrlError::Inconsistent(
                    "another part with the same cRLNumber and partialCrlNumber is already loaded",
                ));
            }
            None => {
                pending.parts.insert(part, crl);
            }
        }
        let missing_parts = pending.missing_parts();
        if pending.is_complete() {
            stream.complete = Some(pending);
        } else {
            stream.pending = Some(pending);
        }
        Ok(LoadOutcome::Loaded {
            number,
            missing_parts,
        })
    }

    /// Keeps a CRL whose issuer is not known yet (see [`CrlSet::promote`]).
    /// The oldest waiting CRL is dropped when too many wait.
    pub fn insert_unverified(&mut self, crl: Crl) -> LoadOutcome {
        let issuer = crl.authority_key_id().clone();
        if !self.unverified.contains(&crl) {
            if self.unverified.len() >= MAX_UNVERIFIED {
                self.unverified.remove(0);
            }
            self.unverified.push(crl);
        }
        LoadOutcome::AwaitingIssuer { issuer }
    }

    /// Whether CRLs of this issuer wait for verification.
    pub fn has_unverified(&self, issuer: &KeyId) -> bool {
        self.unverified
            .iter()
            .any(|c| c.authority_key_id() == issuer)
    }

    /// Verifies the waiting CRLs of `issuer` (a certificate already verified
    /// up to a trusted CI) and puts those that verify in force. Returns the
    /// failures (CRLs that fail are dropped).
    pub fn promote(&mut self, issuer: &RspCertificate) -> Vec<CrlError> {
        let Some(id) = issuer.subject_key_id() else {
            return Vec::new();
        };
        let (mine, others): (Vec<Crl>, Vec<Crl>) = std::mem::take(&mut self.unverified)
            .into_iter()
            .partition(|c| c.authority_key_id() == id);
        self.unverified = others;
        let mut mine = mine;
        // Oldest number first, so that every part and generation is accepted in order.
        mine.sort_by(|a, b| a.number().cmp(b.number()));
        let mut failures = Vec::new();
        for crl in mine {
            if let Err(e) = crl
                .verify_issued_by(issuer)
                .and_then(|()| self.insert_verified(crl))
            {
                failures.push(e);
            }
        }
        failures
    }

    /// Whether any CRL of this issuer is loaded or waiting.
    pub fn knows_issuer(&self, issuer: &KeyId) -> bool {
        self.streams.keys().any(|(id, _)| id == issuer) || self.has_unverified(issuer)
    }

    /// The status of the certificate with this serial number, issued by
    /// `issuer`, a CA or not, naming these CRL distribution point URIs.
    pub fn status(
        &self,
        issuer: &KeyId,
        serial: &[u8],
        is_ca: bool,
        distribution_points: &[String],
        now: SystemTime,
    ) -> CrlStatus {
        let covering: Vec<&Stream> = self
            .streams
            .iter()
            .filter(|((id, scope), _)| id == issuer && scope.covers(is_ca, distribution_points))
            .map(|(_, s)| s)
            .collect();
        for stream in &covering {
            for generation in [&stream.pending, &stream.complete].into_iter().flatten() {
                if let Some(entry) = generation.entry(serial) {
                    return CrlStatus::Revoked {
                        entry: entry.clone(),
                        number: generation.number.clone(),
                    };
                }
            }
        }
        let mut stale = None;
        for generation in covering.iter().filter_map(|s| s.complete.as_ref()) {
            let next_update = generation.next_update();
            if now <= next_update {
                return CrlStatus::Good {
                    number: generation.number.clone(),
                    next_update,
                };
            }
            stale.get_or_insert(CrlStatus::Stale {
                number: generation.number.clone(),
                next_update,
            });
        }
        if let Some(stale) = stale {
            return stale;
        }
        match covering.iter().find_map(|s| s.pending.as_ref()) {
            Some(p) => CrlStatus::Incomplete {
                missing_parts: p.missing_parts(),
            },
            None => CrlStatus::NoCrl,
        }
    }

    /// The complete CRLs in force, for display: issuer key id, number, nextUpdate, entries.
    pub fn summary(&self) -> Vec<(KeyId, CrlNumber, SystemTime, usize)> {
        let mut out: Vec<_> = self
            .streams
            .iter()
            .filter_map(|((id, _), s)| s.complete.as_ref().map(|g| (id, g)))
            .map(|(id, g)| {
                let entries = g.parts.values().map(Crl::len).sum();
                (id.clone(), g.number.clone(), g.next_update(), entries)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        out
    }
}
