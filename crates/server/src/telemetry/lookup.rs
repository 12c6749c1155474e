//! What telemetry asks the SM-DP+'s store to tie a call to a device: the
//! eUICC and profile a download session is bound to (once per session, the
//! sessions of a whole batch of calls in one read), and
//! the order on a profile (once per enable, disable or delete
//! notification). Only the telemetry writer asks, off the request path.

use std::collections::HashMap;
use std::future::Future;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::store::Store;

/// The order currently on a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderInfo {
    /// The operator that owns the profile (the carrier of its events).
    pub operator: OperatorId,
    /// The EID the order is linked or bound to, if any.
    pub eid: Option<Eid>,
}

/// Reads sessions and orders.
pub(crate) trait Lookup: Send + Sync + 'static {
    /// The eUICC and profile session `tid` is bound to; `None` while it is
    /// not bound (before or after a failed `authenticateClient`) or unknown.
    fn session(
        &self,
        tid: &TransactionId,
    ) -> impl Future<Output = Result<Option<(Eid, Iccid)>, String>> + Send;

    /// The bindings of several sessions in one read: those not bound (or
    /// unknown) are absent. This default asks session by session.
    fn sessions(
        &self,
        tids: &[TransactionId],
    ) -> impl Future<Output = Result<HashMap<TransactionId, (Eid, Iccid)>, String>> + Send {
        async move {
            let mut out = HashMap::with_capacity(tids.len());
            for tid in tids {
                if let Some(b) = self.session(tid).await? {
                    out.insert(tid.clone(), b);
                }
            }
            Ok(out)
        }
    }

    /// The order on profile `iccid`, if it has one.
    fn order(
        &self,
        iccid: &Iccid,
    ) -> impl Future<Output = Result<Option<OrderInfo>, String>> + Send;
}

/// The SM-DP+'s own store answers.
#[derive(Debug, Clone)]
pub(crate) struct StoreLookup<S>(pub S);

impl<S: Store + Clone> Lookup for StoreLookup<S> {
    async fn session(&self, tid: &TransactionId) -> Result<Option<(Eid, Iccid)>, String> {
        let session = self.0.session(tid).await.map_err(|e| e.to_string())?;
        Ok(session.and_then(|s| {
            let binding = s.record.binding()?;
            Some((binding.eid, binding.iccid.clone()))
        }))
    }

    async fn sessions(
        &self,
        tids: &[TransactionId],
    ) -> Result<HashMap<TransactionId, (Eid, Iccid)>, String> {
        let bound = self
            .0
            .session_bindings(tids)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bound
            .into_iter()
            .map(|(tid, eid, iccid)| (tid, (eid, iccid)))
            .collect())
    }

    async fn order(&self, iccid: &Iccid) -> Result<Option<OrderInfo>, String> {
        let profile = self.0.profile(iccid).await.map_err(|e| e.to_string())?;
        Ok(profile.and_then(|p| {
            let order = p.order?;
            Some(OrderInfo {
                operator: p.operator,
                eid: order.eid,
            })
        }))
    }
}
