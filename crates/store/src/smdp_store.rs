//! The store traits of `ferrosim_smdp::store` for [`SqlStore`]: each method
//! forwards to the room that implements it.

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::order::{ProfileRecord, ProfileState};
use ferrosim_smdp::session::SessionRecord;
use ferrosim_smdp::store::{
    CallSlot, CallbackRecord, CatalogStore, Changes, CommitStore, NewProfile, Operator,
    OutboxStore, ProfileFilter, ProfileSelector, ProfileStore, ProfileTypeRecord, SessionStore,
    StoreResult, Versioned,
};
use ferrosim_smdp::time::Timestamp;

use crate::SqlStore;

impl CatalogStore for SqlStore {
    async fn put_operator(&self, operator: &Operator) -> StoreResult<()> {
        self.put_operator_impl(operator).await
    }

    async fn operator_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Operator>> {
        self.operator_by_token_impl(token_hash).await
    }

    async fn operator(&self, id: &OperatorId) -> StoreResult<Option<Operator>> {
        self.operator_impl(id).await
    }

    async fn put_profile_type(&self, t: &ProfileTypeRecord) -> StoreResult<()> {
        self.put_profile_type_impl(t).await
    }

    async fn profile_type(
        &self,
        operator: &OperatorId,
        name: &str,
    ) -> StoreResult<Option<ProfileTypeRecord>> {
        self.profile_type_impl(operator, name, None).await
    }

    async fn profile_type_version(
        &self,
        operator: &OperatorId,
        name: &str,
        version: u32,
    ) -> StoreResult<Option<ProfileTypeRecord>> {
        self.profile_type_impl(operator, name, Some(version)).await
    }
}

impl ProfileStore for SqlStore {
    async fn insert_profiles(&self, profiles: &[NewProfile]) -> StoreResult<u64> {
        self.insert_profiles_impl(profiles).await
    }

    async fn profile(&self, iccid: &Iccid) -> StoreResult<Option<ProfileRecord>> {
        self.profile_impl(iccid).await
    }

    async fn find_profile(
        &self,
        selector: &ProfileSelector,
    ) -> StoreResult<Option<Versioned<ProfileRecord>>> {
        self.find_profile_impl(selector).await
    }

    async fn available_profiles(
        &self,
        operator: &OperatorId,
        profile_type: &str,
        limit: u32,
    ) -> StoreResult<Vec<Versioned<ProfileRecord>>> {
        self.available_profiles_impl(operator, profile_type, limit)
            .await
    }

    async fn personalisation(&self, iccid: &Iccid) -> StoreResult<Option<Personalisation>> {
        self.personalisation_impl(iccid).await
    }

    async fn list_profiles(&self, filter: &ProfileFilter) -> StoreResult<Vec<ProfileRecord>> {
        self.list_profiles_impl(filter).await
    }

    async fn count_profiles(
        &self,
        operator: Option<&OperatorId>,
    ) -> StoreResult<Vec<(ProfileState, u64)>> {
        self.count_profiles_impl(operator).await
    }

    async fn due_expiries(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Iccid>> {
        self.due_expiries_impl(now, limit).await
    }
}

impl SessionStore for SqlStore {
    async fn session(&self, tid: &TransactionId) -> StoreResult<Option<Versioned<SessionRecord>>> {
        self.session_impl(tid).await
    }

    async fn session_bindings(
        &self,
        tids: &[TransactionId],
    ) -> StoreResult<Vec<(TransactionId, ferrosim_ids::Eid, ferrosim_ids::Iccid)>> {
        self.session_bindings_impl(tids).await
    }

    async fn purge_sessions(
        &self,
        now: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        self.purge_sessions_impl(now, ended_before, limit).await
    }

    async fn pending_sessions(&self, now: Timestamp, up_to: u64) -> StoreResult<u64> {
        self.pending_sessions_impl(now, up_to).await
    }
}

impl OutboxStore for SqlStore {
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CallbackRecord>> {
        self.claim_callbacks_impl(now, lease_ms, limit).await
    }

    async fn callbacks_delivered(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
        self.callbacks_delivered_impl(ids, now).await
    }

    async fn callback_failed(
        &self,
        id: i64,
        next_attempt: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        self.callback_failed_impl(id, next_attempt, error).await
    }

    async fn pending_callbacks(&self) -> StoreResult<u64> {
        self.pending_callbacks_impl().await
    }

    async fn begin_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        function: &str,
        request_hash: &[u8; 32],
        now: Timestamp,
        stale_ms: i64,
    ) -> StoreResult<CallSlot> {
        self.begin_call_impl(operator, call_id, function, request_hash, now, stale_ms)
            .await
    }

    async fn finish_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        response_json: &str,
    ) -> StoreResult<()> {
        self.finish_call_impl(operator, call_id, response_json)
            .await
    }

    async fn abandon_call(&self, operator: &OperatorId, call_id: &str) -> StoreResult<()> {
        self.abandon_call_impl(operator, call_id).await
    }
}

impl CommitStore for SqlStore {
    async fn commit(&self, changes: Changes) -> StoreResult<()> {
        self.commit_impl(changes).await
    }
}
