//! Lost races: a record changes between a step's load and its commit. The
//! commit writes nothing, the driver runs the step again on fresh records,
//! and the answer is the one the new state calls for; a profile is never
//! issued twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::memstore::MemStore;
use ferrosim_smdp::order::{ProfileRecord, ProfileState};
use ferrosim_smdp::session::SessionRecord;
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Randomness, Smdp};
use support::*;

type Hook = Box<dyn FnMut(MemStore) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A [`MemStore`] that runs a hook (another writer) just before each commit.
#[derive(Clone)]
struct Racing {
    inner: MemStore,
    hook: Arc<Mutex<Option<Hook>>>,
    /// Hook runs left; then it is dropped.
    runs: Arc<Mutex<usize>>,
}

impl Racing {
    fn new(inner: MemStore) -> Self {
        Self {
            inner,
            hook: Arc::new(Mutex::new(None)),
            runs: Arc::new(Mutex::new(0)),
        }
    }

    fn race(&self, runs: usize, hook: Hook) {
        *self.hook.lock().unwrap() = Some(hook);
        *self.runs.lock().unwrap() = runs;
    }
}

impl CommitStore for Racing {
    async fn commit(&self, changes: Changes) -> StoreResult<()> {
        let fut = {
            let mut runs = self.runs.lock().unwrap();
            let mut hook = self.hook.lock().unwrap();
            if *runs > 0 && !changes.is_empty() {
                *runs -= 1;
                hook.as_mut().map(|h| h(self.inner.clone()))
            } else {
                None
            }
        };
        if let Some(f) = fut {
            f.await;
        }
        self.inner.commit(changes).await
    }
}

impl StepLoadStore for Racing {}

impl SessionStore for Racing {
    async fn session(&self, tid: &TransactionId) -> StoreResult<Option<Versioned<SessionRecord>>> {
        self.inner.session(tid).await
    }
    async fn purge_sessions(
        &self,
        now: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        self.inner.purge_sessions(now, ended_before, limit).await
    }
    async fn pending_sessions(&self, now: Timestamp, up_to: u64) -> StoreResult<u64> {
        self.inner.pending_sessions(now, up_to).await
    }
}

impl ProfileStore for Racing {
    async fn insert_profiles(&self, profiles: &[NewProfile]) -> StoreResult<u64> {
        self.inner.insert_profiles(profiles).await
    }
    async fn profile(&self, iccid: &Iccid) -> StoreResult<Option<ProfileRecord>> {
        self.inner.profile(iccid).await
    }
    async fn find_profile(
        &self,
        selector: &ProfileSelector,
    ) -> StoreResult<Option<Versioned<ProfileRecord>>> {
        self.inner.find_profile(selector).await
    }
    async fn available_profiles(
        &self,
        operator: &OperatorId,
        profile_type: &str,
        limit: u32,
    ) -> StoreResult<Vec<Versioned<ProfileRecord>>> {
        self.inner
            .available_profiles(operator, profile_type, limit)
            .await
    }
    async fn personalisation(&self, iccid: &Iccid) -> StoreResult<Option<Personalisation>> {
        self.inner.personalisation(iccid).await
    }
    async fn list_profiles(&self, filter: &ProfileFilter) -> StoreResult<Vec<ProfileRecord>> {
        self.inner.list_profiles(filter).await
    }
    async fn count_profiles(
        &self,
        operator: Option<&OperatorId>,
    ) -> StoreResult<Vec<(ProfileState, u64)>> {
        self.inner.count_profiles(operator).await
    }
    async fn due_expiries(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Iccid>> {
        self.inner.due_expiries(now, limit).await
    }
}

impl CatalogStore for Racing {
    async fn put_operator(&self, operator: &Operator) -> StoreResult<()> {
        self.inner.put_operator(operator).await
    }
    async fn operator_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Operator>> {
        self.inner.operator_by_token(token_hash).await
    }
    async fn operator(&self, id: &OperatorId) -> StoreResult<Option<Operator>> {
        self.inner.operator(id).await
    }
    async fn put_profile_type(&self, t: &ProfileTypeRecord) -> StoreResult<()> {
        self.inner.put_profile_type(t).await
    }
    async fn profile_type(
        &self,
        operator: &OperatorId,
        name: &str,
    ) -> StoreResult<Option<ProfileTypeRecord>> {
        self.inner.profile_type(operator, name).await
    }
    async fn profile_type_version(
        &self,
        operator: &OperatorId,
        name: &str,
        version: u32,
    ) -> StoreResult<Option<ProfileTypeRecord>> {
        self.inner
            .profile_type_version(operator, name, version)
            .await
    }
}

impl OutboxStore for Racing {
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CallbackRecord>> {
        self.inner.claim_callbacks(now, lease_ms, limit).await
    }
    async fn callbacks_delivered(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
        self.inner.callbacks_delivered(ids, now).await
    }
    async fn callback_failed(
        &self,
        id: i64,
        next_attempt: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        self.inner.callback_failed(id, next_attempt, error).await
    }
    async fn pending_callbacks(&self) -> StoreResult<u64> {
        self.inner.pending_callbacks().await
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
        self.inner
            .begin_call(operator, call_id, function, request_hash, now, stale_ms)
            .await
    }
    async fn finish_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        response_json: &str,
    ) -> StoreResult<()> {
        self.inner
            .finish_call(operator, call_id, response_json)
            .await
    }
    async fn abandon_call(&self, operator: &OperatorId, call_id: &str) -> StoreResult<()> {
        self.inner.abandon_call(operator, call_id).await
    }
}

/// A world whose SM-DP+ runs on a [`Racing`] store, and a plain SM-DP+ on
/// the same data for the competing writer.
struct Race {
    world: World,
    racing: Racing,
    smdp: Smdp<Racing>,
}

async fn race(pki: &ferrosim_pki::TestPki) -> Race {
    let world = World::new(pki, 2).await;
    let racing = Racing::new(world.store.clone());
    let smdp = Smdp::with_randomness(config(pki), racing.clone(), Randomness::os());
    Race {
        world,
        racing,
        smdp,
    }
}

/// The eUICC starts a second session on the same order while the package
/// of the first is being built: the first session's commit finds the order
/// rebound, runs again and is refused; only the second gets the package.
#[tokio::test]
async fn a_package_is_not_issued_to_a_superseded_session() {
    let pki = pki(1);
    let r = race(&pki).await;
    let device = Arc::new(Device::new(&pki, 0));
    let (iccid, matching_id) = r.world.order(None, None).await;
    let first_init = r
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let first = r
        .smdp
        .authenticate_client(&device.authenticate(&first_init, Some(&matching_id)), NOW)
        .await
        .unwrap();

    let second: Arc<Mutex<Option<ferrosim_asn1::json::es9::AuthenticateClientResponse>>> =
        Arc::default();
    {
        let (device, second, world_smdp, matching_id) = (
            Arc::clone(&device),
            Arc::clone(&second),
            r.world.smdp.clone(),
            matching_id.clone(),
        );
        r.racing.race(
            1,
            Box::new(move |_| {
                let (device, second, smdp, mid) = (
                    Arc::clone(&device),
                    Arc::clone(&second),
                    world_smdp.clone(),
                    matching_id.clone(),
                );
                Box::pin(async move {
                    let init = smdp
                        .initiate_authentication(&device.initiate(ADDRESS), NOW)
                        .await
                        .unwrap();
                    let auth = smdp
                        .authenticate_client(&device.authenticate(&init, Some(&mid)), NOW)
                        .await
                        .unwrap();
                    *second.lock().unwrap() = Some(auth);
                })
            }),
        );
    }
    let e = r
        .smdp
        .get_bound_profile_package(&device.prepare_download(&first, None), NOW)
        .await
        .unwrap_err();
    assert_eq!(status(&e), ("8.2", "3.7"), "{e}");
    let p = r.world.profile(&iccid).await;
    assert_eq!(p.state, ProfileState::Released, "no package was issued");
    let second = second.lock().unwrap().take().unwrap();
    assert_eq!(p.order.unwrap().session.unwrap(), second.transaction_id);
    r.smdp
        .get_bound_profile_package(&device.prepare_download(&second, None), NOW)
        .await
        .unwrap();
    assert_eq!(
        r.world.profile(&iccid).await.state,
        ProfileState::Downloaded
    );
}

/// A change that does not concern the step (here: the record rewritten as
/// it was) still makes the commit stale; the step runs again and succeeds,
/// and the order is marked downloaded once.
#[tokio::test]
async fn a_harmless_race_is_retried_and_succeeds_once() {
    let pki = pki(1);
    let r = race(&pki).await;
    let device = Device::new(&pki, 0);
    let (iccid, matching_id) = r.world.order(None, None).await;
    let init = r
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let auth = r
        .smdp
        .authenticate_client(&device.authenticate(&init, Some(&matching_id)), NOW)
        .await
        .unwrap();
    // The eligibility event is out of the way.
    let earlier: Vec<i64> = r
        .world
        .store
        .claim_callbacks(NOW, 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    r.world
        .store
        .callbacks_delivered(&earlier, NOW)
        .await
        .unwrap();
    let touched = iccid.clone();
    r.racing.race(
        2,
        Box::new(move |store| {
            let iccid = touched.clone();
            Box::pin(async move {
                let p = store
                    .find_profile(&ProfileSelector::Iccid(iccid, None))
                    .await
                    .unwrap()
                    .unwrap();
                store
                    .commit(Changes {
                        profile: Some(ProfileWrite::new(p.clone(), p.record)),
                        ..Changes::default()
                    })
                    .await
                    .unwrap();
            })
        }),
    );
    let before = r
        .world
        .store
        .find_profile(&ProfileSelector::Iccid(iccid.clone(), None))
        .await
        .unwrap()
        .unwrap()
        .version;
    r.smdp
        .get_bound_profile_package(&device.prepare_download(&auth, None), NOW)
        .await
        .unwrap();
    let after = r
        .world
        .store
        .find_profile(&ProfileSelector::Iccid(iccid.clone(), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.record.state, ProfileState::Downloaded);
    // Two competing rewrites, then the step's own commit on the third try.
    assert_eq!(after.version.get(), before.get() + 3);
    let downloads = r
        .world
        .store
        .claim_callbacks(Timestamp(i64::MAX / 2), 1, 100)
        .await
        .unwrap();
    assert_eq!(downloads.len(), 1, "one BPP download event: {downloads:?}");
}

/// Under endless contention the driver gives up with a typed error after
/// its attempts, having written nothing.
#[tokio::test]
async fn endless_contention_ends_in_a_typed_error() {
    let pki = pki(1);
    let r = race(&pki).await;
    let device = Device::new(&pki, 0);
    let (iccid, matching_id) = r.world.order(None, None).await;
    let init = r
        .smdp
        .initiate_authentication(&device.initiate(ADDRESS), NOW)
        .await
        .unwrap();
    let touched = iccid.clone();
    r.racing.race(
        usize::MAX,
        Box::new(move |store| {
            let iccid = touched.clone();
            Box::pin(async move {
                let p = store
                    .find_profile(&ProfileSelector::Iccid(iccid, None))
                    .await
                    .unwrap()
                    .unwrap();
                let _ = store
                    .commit(Changes {
                        profile: Some(ProfileWrite::new(p.clone(), p.record)),
                        ..Changes::default()
                    })
                    .await;
            })
        }),
    );
    let e = r
        .smdp
        .authenticate_client(&device.authenticate(&init, Some(&matching_id)), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ferrosim_smdp::Es9Error::Store(StoreError::Stale)),
        "{e}"
    );
    assert_eq!(status(&e), ("8.8", "4.2"));
    let p = r.world.profile(&iccid).await;
    assert_eq!(p.state, ProfileState::Released);
    assert_eq!(p.order.unwrap().download_attempts, 0, "nothing was bound");
}
