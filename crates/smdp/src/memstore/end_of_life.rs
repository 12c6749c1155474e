//! Revocations and reuse policies in memory, beside the profile rows
//! (the import check in `profiles.rs` reads them under the same lock).

use ferrosim_saip::Iccid;

use super::MemStore;
use crate::end_of_life::{EndOfLifeState, ReusePolicy, Revocation};
use crate::ids::OperatorId;
use crate::store::{EndOfLifeStore, StoreError, StoreResult};

/// At most this many revocations per listing (as the SQL stores).
const LIST_LIMIT: usize = 1000;

impl EndOfLifeStore for MemStore {
    async fn revocation(&self, iccid: &Iccid) -> StoreResult<Option<Revocation>> {
        Ok(self.profiles_read().revocations.get(iccid).cloned())
    }

    async fn insert_revocation(&self, r: &Revocation) -> StoreResult<()> {
        let mut t = self.profiles_write();
        if t.revocations.contains_key(&r.iccid) {
            return Err(StoreError::Conflict(format!(
                "profile {} is revoked already",
                r.iccid.as_str()
            )));
        }
        t.revocations.insert(r.iccid.clone(), r.clone());
        Ok(())
    }

    async fn revocations(
        &self,
        state: Option<EndOfLifeState>,
        operator: Option<&OperatorId>,
    ) -> StoreResult<Vec<Revocation>> {
        let t = self.profiles_read();
        let mut out: Vec<Revocation> = t
            .revocations
            .values()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .filter(|r| operator.is_none_or(|o| r.operator == *o))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.revoked_at, &a.iccid).cmp(&(b.revoked_at, &b.iccid)));
        out.truncate(LIST_LIMIT);
        Ok(out)
    }

    async fn settle_device_deletes(&self) -> StoreResult<Vec<Revocation>> {
        // Lock order: profiles, then the outbox (as commits take them).
        let mut t = self.profiles_write();
        let out = self.outbox();
        let mut moved = Vec::new();
        for r in t.revocations.values_mut() {
            if r.state != EndOfLifeState::AwaitingDeviceDelete {
                continue;
            }
            let Some(at) = out.first_delete(&r.iccid, r.eid.as_ref(), r.revoked_at) else {
                continue;
            };
            if r.device_deleted(at)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
            {
                moved.push(r.clone());
            }
        }
        moved.sort_by(|a, b| (a.revoked_at, &a.iccid).cmp(&(b.revoked_at, &b.iccid)));
        Ok(moved)
    }

    async fn reuse_policy(&self, operator: &OperatorId) -> StoreResult<ReusePolicy> {
        Ok(self
            .profiles_read()
            .reuse_policies
            .get(operator)
            .copied()
            .unwrap_or(ReusePolicy::Retire))
    }

    async fn set_reuse_policy(
        &self,
        operator: &OperatorId,
        policy: ReusePolicy,
    ) -> StoreResult<()> {
        self.profiles_write()
            .reuse_policies
            .insert(operator.clone(), policy);
        Ok(())
    }
}
