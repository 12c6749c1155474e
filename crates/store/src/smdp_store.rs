//! `ferrosim_smdp::store::Store` for [`SqlStore`]: each method forwards to the
//! room that implements it.

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::order::{ProfileRecord, ProfileState, ProgressEvent};
use ferrosim_smdp::session::SessionRecord;
use ferrosim_smdp::store::{
    CallSlot, CallbackRecord, NewProfile, NotificationRecord, Operator, ProfileFilter,
    ProfileSelector, ProfileTypeRecord, Store, StoreResult,
};
use ferrosim_smdp::time::Timestamp;

use crate::SqlStore;

impl Store for SqlStore {
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
        self.profile_type_impl(operator, name).await
    }

    async fn insert_profiles(&self, profiles: &[NewProfile]) -> StoreResult<u64> {
        self.insert_profiles_impl(profiles).await
    }

    async fn profile(&self, iccid: &Iccid) -> StoreResult<Option<ProfileRecord>> {
        self.profile_impl(iccid).await
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

    async fn update_profile<T, F>(
        &self,
        selector: &ProfileSelector,
        _now: Timestamp,
        f: F,
    ) -> StoreResult<Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut ProfileRecord, &mut Vec<ProgressEvent>) -> T + Send + 'static,
    {
        self.update_profile_impl(selector, f).await
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.insert_session_impl(session).await
    }

    async fn session(&self, tid: &TransactionId) -> StoreResult<Option<SessionRecord>> {
        self.session_impl(tid).await
    }

    async fn update_session<T, F>(
        &self,
        tid: &TransactionId,
        profile: Option<&ProfileSelector>,
        _now: Timestamp,
        f: F,
    ) -> StoreResult<Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut SessionRecord, Option<&mut ProfileRecord>, &mut Vec<ProgressEvent>) -> T
            + Send
            + 'static,
    {
        self.update_session_impl(tid, profile, f).await
    }

    async fn purge_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        self.purge_sessions_impl(before).await
    }

    async fn record_notification(&self, n: &NotificationRecord) -> StoreResult<()> {
        self.record_notification_impl(n).await
    }

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

    async fn due_expiries(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Iccid>> {
        self.due_expiries_impl(now, limit).await
    }
}
