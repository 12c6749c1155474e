//! Profiles in memory, with the indexes the selectors and housekeeping use.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ferrosim_pki::Eid;
use ferrosim_saip::{Iccid, Personalisation};

use super::{MemStore, Stored};
use crate::end_of_life::{ReusePolicy, Revocation, check_reuse};
use crate::ids::{MatchingId, OperatorId};
use crate::order::{ProfileRecord, ProfileState};
use crate::store::{
    NewProfile, ProfileFilter, ProfileSelector, ProfileStore, ProfileWrite, StoreError,
    StoreResult, Version, Versioned,
};
use crate::time::Timestamp;

/// A profile row: the record, its version and its personalisation values.
struct ProfileRow {
    stored: Stored<ProfileRecord>,
    personalisation: Personalisation,
}

/// Every profile, and indexes derived from the records (kept in step by
/// [`ProfileTable::unindex`] / [`ProfileTable::index`] around each write).
#[derive(Default)]
pub(super) struct ProfileTable {
    rows: HashMap<Iccid, ProfileRow>,
    by_matching_id: HashMap<MatchingId, Iccid>,
    /// Available profiles per operator and type, by ICCID.
    available: HashMap<OperatorId, HashMap<String, BTreeSet<Iccid>>>,
    /// Released orders linked to an EID, oldest order first.
    released_by_eid: HashMap<Eid, BTreeSet<(Timestamp, Iccid)>>,
    /// Open, not yet downloaded orders by expiry.
    open_by_expiry: BTreeSet<(Timestamp, Iccid)>,
    /// The profile holding each IMSI (one IMSI, one profile, as the SQL
    /// stores' unique index on `profiles.imsi`).
    by_imsi: HashMap<String, Iccid>,
    /// Revoked profiles' end of life, by ICCID (under the same lock as the
    /// rows, so an import checks and frees a revoked ICCID atomically).
    pub(super) revocations: BTreeMap<Iccid, Revocation>,
    /// Each operator's reuse policy.
    pub(super) reuse_policies: HashMap<OperatorId, ReusePolicy>,
}

impl ProfileTable {
    fn get(&self, selector: &ProfileSelector) -> Option<&ProfileRow> {
        let iccid = match selector {
            ProfileSelector::Iccid(iccid, operator) => {
                let row = self.rows.get(iccid)?;
                return match operator {
                    Some(op) if *op != row.stored.record.operator => None,
                    _ => Some(row),
                };
            }
            ProfileSelector::MatchingId(m) => self.by_matching_id.get(m)?,
            ProfileSelector::ReleasedForEid(eid) => &self.released_by_eid.get(eid)?.first()?.1,
        };
        self.rows.get(iccid)
    }

    /// Checks that `write` applies: the row exists at the expected version
    /// and its new matching id (if any) is not another order's.
    pub(super) fn check(&self, write: &ProfileWrite) -> StoreResult<()> {
        let iccid = &write.record.iccid;
        let row = self.rows.get(iccid).ok_or(StoreError::Stale)?;
        if row.stored.version != write.expected {
            return Err(StoreError::Stale);
        }
        // The SQL stores write only the indexed columns that differ from
        // `previous`: a step must pass the record it read.
        debug_assert_eq!(
            row.stored.record, write.previous,
            "a ProfileWrite's previous record is not the one stored at its version"
        );
        if let Some(m) = write.record.matching_id()
            && let Some(holder) = self.by_matching_id.get(m)
            && holder != iccid
        {
            return Err(StoreError::Conflict(format!("matching id {m} in use")));
        }
        Ok(())
    }

    /// Applies a write [`ProfileTable::check`] accepted: state, order and
    /// change time, and the next version.
    pub(super) fn apply(&mut self, write: ProfileWrite) {
        let Some(mut row) = self.rows.remove(&write.record.iccid) else {
            return;
        };
        self.unindex(&row.stored.record);
        let record = &mut row.stored.record;
        record.state = write.record.state;
        record.order = write.record.order;
        record.updated_at = write.record.updated_at;
        row.stored.version = row.stored.version.next();
        self.index(&row.stored.record);
        self.rows.insert(write.record.iccid, row);
    }

    /// Removes a revoked profile whose ICCID is reused: its row, its
    /// indexes, its IMSI and its revocation.
    fn free_revoked(&mut self, iccid: &Iccid) {
        if let Some(row) = self.rows.remove(iccid) {
            self.unindex(&row.stored.record);
            if let Some(imsi) = row.personalisation.imsi.as_ref()
                && self.by_imsi.get(imsi.as_str()) == Some(iccid)
            {
                self.by_imsi.remove(imsi.as_str());
            }
        }
        self.revocations.remove(iccid);
    }

    fn unindex(&mut self, r: &ProfileRecord) {
        if let Some(m) = r.matching_id()
            && self.by_matching_id.get(m) == Some(&r.iccid)
        {
            self.by_matching_id.remove(m);
        }
        if r.state == ProfileState::Available
            && let Some(types) = self.available.get_mut(&r.operator)
            && let Some(set) = types.get_mut(&r.profile_type)
        {
            set.remove(&r.iccid);
        }
        if let Some((eid, key)) = released_key(r)
            && let Some(set) = self.released_by_eid.get_mut(&eid)
        {
            set.remove(&key);
            if set.is_empty() {
                self.released_by_eid.remove(&eid);
            }
        }
        if let Some(key) = expiry_key(r) {
            self.open_by_expiry.remove(&key);
        }
    }

    fn index(&mut self, r: &ProfileRecord) {
        if let Some(m) = r.matching_id() {
            self.by_matching_id.insert(m.clone(), r.iccid.clone());
        }
        if r.state == ProfileState::Available {
            self.available
                .entry(r.operator.clone())
                .or_default()
                .entry(r.profile_type.clone())
                .or_default()
                .insert(r.iccid.clone());
        }
        if let Some((eid, key)) = released_key(r) {
            self.released_by_eid.entry(eid).or_default().insert(key);
        }
        if let Some(key) = expiry_key(r) {
            self.open_by_expiry.insert(key);
        }
    }
}

/// The released-by-EID index entry of a record, if it has one.
fn released_key(r: &ProfileRecord) -> Option<(Eid, (Timestamp, Iccid))> {
    let order = r.order.as_ref()?;
    let eid = order.eid?;
    (r.state == ProfileState::Released).then(|| (eid, (order.created_at, r.iccid.clone())))
}

/// The expiry index entry of a record, if its order can still expire.
fn expiry_key(r: &ProfileRecord) -> Option<(Timestamp, Iccid)> {
    use ProfileState::*;
    let order = r.order.as_ref()?;
    matches!(r.state, Allocated | Linked | Confirmed | Released)
        .then(|| (order.expires_at, r.iccid.clone()))
}

impl ProfileStore for MemStore {
    async fn insert_profiles(&self, profiles: &[NewProfile]) -> StoreResult<u64> {
        // Like the SQL stores' foreign key: the operator must have the type.
        let types_ok = self.with_catalog(|c| {
            profiles
                .iter()
                .find(|p| !c.has_type(&p.record.operator, &p.record.profile_type))
                .map(|p| p.record.profile_type.clone())
        });
        if let Some(missing) = types_ok {
            return Err(StoreError::Conflict(format!(
                "profile type {missing} does not exist"
            )));
        }
        let mut t = self.profiles_write();
        let mut seen = HashSet::with_capacity(profiles.len());
        // Revoked ICCIDs the policy lets come back: replaced below.
        let mut freed: HashSet<&Iccid> = HashSet::new();
        for p in profiles {
            if p.personalisation.iccid != p.record.iccid {
                return Err(StoreError::Conflict(format!(
                    "personalisation ICCID differs from the record's ({})",
                    p.record.iccid.as_str()
                )));
            }
            if let Some(r) = t.revocations.get(&p.record.iccid) {
                check_reuse(r, &p.record.operator, p.record.updated_at)
                    .map_err(|e| StoreError::Conflict(e.0))?;
                freed.insert(&p.record.iccid);
            }
            let taken = t.rows.contains_key(&p.record.iccid) && !freed.contains(&p.record.iccid);
            if taken || !seen.insert(&p.record.iccid) {
                return Err(StoreError::Conflict(format!(
                    "ICCID {} exists",
                    p.record.iccid.as_str()
                )));
            }
            if let Some(m) = p.record.matching_id()
                && t.by_matching_id.contains_key(m)
            {
                return Err(StoreError::Conflict(format!("matching id {m} in use")));
            }
        }
        let mut batch_imsis: HashMap<&str, &Iccid> = HashMap::new();
        for p in profiles {
            let Some(imsi) = p.personalisation.imsi.as_ref() else {
                continue;
            };
            let iccid = &p.record.iccid;
            if let Some(first) = batch_imsis.insert(imsi.as_str(), iccid) {
                return Err(StoreError::Conflict(format!(
                    "IMSI {} is given to two profiles of the batch: ICCID {} and ICCID {}",
                    imsi.as_str(),
                    first.as_str(),
                    iccid.as_str()
                )));
            }
            if let Some(holder) = t.by_imsi.get(imsi.as_str())
                && !freed.contains(holder)
            {
                return Err(StoreError::Conflict(format!(
                    "IMSI {} is already used by ICCID {}",
                    imsi.as_str(),
                    holder.as_str()
                )));
            }
        }
        for iccid in freed {
            t.free_revoked(iccid);
        }
        for (imsi, iccid) in batch_imsis {
            t.by_imsi.insert(imsi.to_owned(), iccid.clone());
        }
        for p in profiles {
            t.rows.insert(
                p.record.iccid.clone(),
                ProfileRow {
                    stored: Stored {
                        record: p.record.clone(),
                        version: Version::INITIAL,
                    },
                    personalisation: p.personalisation.clone(),
                },
            );
            t.index(&p.record);
        }
        Ok(profiles.len() as u64)
    }

    async fn profile(&self, iccid: &Iccid) -> StoreResult<Option<ProfileRecord>> {
        Ok(self
            .profiles_read()
            .rows
            .get(iccid)
            .map(|r| r.stored.record.clone()))
    }

    async fn find_profile(
        &self,
        selector: &ProfileSelector,
    ) -> StoreResult<Option<Versioned<ProfileRecord>>> {
        Ok(self
            .profiles_read()
            .get(selector)
            .map(|r| r.stored.versioned()))
    }

    async fn available_profiles(
        &self,
        operator: &OperatorId,
        profile_type: &str,
        limit: u32,
    ) -> StoreResult<Vec<Versioned<ProfileRecord>>> {
        let t = self.profiles_read();
        let Some(set) = t
            .available
            .get(operator)
            .and_then(|types| types.get(profile_type))
        else {
            return Ok(Vec::new());
        };
        Ok(set
            .iter()
            .take(limit as usize)
            .filter_map(|iccid| t.rows.get(iccid))
            .map(|r| r.stored.versioned())
            .collect())
    }

    async fn personalisation(&self, iccid: &Iccid) -> StoreResult<Option<Personalisation>> {
        Ok(self
            .profiles_read()
            .rows
            .get(iccid)
            .map(|r| r.personalisation.clone()))
    }

    async fn list_profiles(&self, filter: &ProfileFilter) -> StoreResult<Vec<ProfileRecord>> {
        let limit = if filter.limit == 0 {
            1000
        } else {
            filter.limit
        } as usize;
        let t = self.profiles_read();
        let mut hits: Vec<&ProfileRecord> = t
            .rows
            .values()
            .map(|r| &r.stored.record)
            .filter(|r| filter.operator.as_ref().is_none_or(|o| *o == r.operator))
            .filter(|r| {
                filter
                    .profile_type
                    .as_ref()
                    .is_none_or(|pt| *pt == r.profile_type)
            })
            .filter(|r| filter.state.is_none_or(|s| s == r.state))
            .collect();
        let newest_first = |a: &&ProfileRecord, b: &&ProfileRecord| {
            (b.updated_at, &a.iccid).cmp(&(a.updated_at, &b.iccid))
        };
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit, newest_first);
            hits.truncate(limit);
        }
        hits.sort_unstable_by(newest_first);
        Ok(hits.into_iter().cloned().collect())
    }

    async fn count_profiles(
        &self,
        operator: Option<&OperatorId>,
    ) -> StoreResult<Vec<(ProfileState, u64)>> {
        let t = self.profiles_read();
        let mut counts: HashMap<ProfileState, u64> = HashMap::new();
        for r in t.rows.values().map(|r| &r.stored.record) {
            if operator.is_none_or(|o| *o == r.operator) {
                *counts.entry(r.state).or_default() += 1;
            }
        }
        let mut out: Vec<(ProfileState, u64)> = counts.into_iter().collect();
        out.sort_by_key(|(s, _)| s.as_str());
        Ok(out)
    }

    async fn due_expiries(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Iccid>> {
        Ok(self
            .profiles_read()
            .open_by_expiry
            .iter()
            .take_while(|(expires, _)| *expires < now)
            .take(limit as usize)
            .map(|(_, iccid)| iccid.clone())
            .collect())
    }
}
