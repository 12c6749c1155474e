//! The behaviour every [`EimStore`] must have, as a test suite.
//!
//! `ferrosim-eim`'s tests run it against [`crate::MemEimStore`]; the SQL
//! stores run it against SQLite and PostgreSQL. Each check panics with a
//! message naming what broke; store failures are returned.

use ferrosim_asn1::esipa::Sgp32Version;

use crate::ids::Timestamp;
use crate::ids::{Counter, Eid, EimId, EimTransactionId, TransactionId};
use crate::record::{
    Association, DeviceRecord, EuiccData, ItemKind, ItemOutcome, ItemState, NotificationRecord,
    ProfileSnapshot, QueueItem, ResultRecord, Trust,
};
use crate::store::{DeviceWrite, EimChanges, EimStore, RelaySession, StoreError, Version};

/// A valid EID numbered `n` (its check digits computed), for fixtures.
pub fn test_eid(n: u32) -> Eid {
    let body = format!("8904903200000000000000{n:08}");
    Eid::from_body(&body).expect("30 generated digits always make an EID")
}

/// A device record for fixtures: associated, nothing queued.
pub fn test_device(n: u32) -> DeviceRecord {
    DeviceRecord {
        eid: test_eid(n),
        association: Association {
            eim_id: EimId::new("eim.example").expect("a valid eIM id"),
            counter: Counter::new(10).expect("in range"),
            association_token: Some(7),
            euicc_version: Sgp32Version::V1_2,
            euicc_certificate: vec![0x30, 0x00],
            eum_certificate: vec![0x30, 0x00],
            euicc_public_key: vec![0x04; 65],
        },
        emulated: false,
        ipa_version: Sgp32Version::V1_2,
        queue: Vec::new(),
        next_item: 1,
        pending_acks: Vec::new(),
        profiles: ProfileSnapshot::default(),
        euicc: EuiccData::default(),
        last_poll: None,
        created_at: Timestamp(1_000),
        sanitization: None,
        rollback: None,
    }
}

/// Runs every check on an empty `store`.
pub async fn run_all(store: &impl EimStore) -> Result<(), StoreError> {
    devices_are_inserted_once(store).await?;
    updates_compare_and_set(store).await?;
    transaction_ids_find_open_items(store).await?;
    results_are_stored_once_and_commits_are_atomic(store).await?;
    notifications_keep_the_first_copy(store).await?;
    devices_are_listed_in_order(store).await?;
    relay_sessions_are_kept(store).await?;
    sanitizations_read_back(store).await?;
    rollbacks_read_back(store).await?;
    Ok(())
}

fn insert(record: DeviceRecord) -> EimChanges {
    EimChanges {
        device: Some(DeviceWrite::Insert(record)),
        ..EimChanges::default()
    }
}

fn update(expected: Version, record: DeviceRecord) -> EimChanges {
    EimChanges {
        device: Some(DeviceWrite::Update { expected, record }),
        ..EimChanges::default()
    }
}

fn item(id: u64, counter: u32, tid: u8) -> QueueItem {
    QueueItem {
        id,
        kind: ItemKind::Package,
        counter: Some(Counter::new(counter.into()).expect("in range")),
        transaction_id: EimTransactionId::from_slice(&[tid; EimTransactionId::LEN])
            .expect("the length of eIM transaction ids"),
        der: vec![0xBF, 0x51, 0x00],
        state: ItemState::Delivered {
            first: Timestamp(2_000),
            times: 1,
        },
        replay_error: None,
        created_at: Timestamp(1_500),
    }
}

fn result(eid: Eid, item_id: u64, counter: u32) -> ResultRecord {
    ResultRecord {
        eid,
        item_id,
        kind: ItemKind::Package,
        counter: Some(Counter::new(counter.into()).expect("in range")),
        seq_number: Some(i64::from(counter) * 100),
        trust: Some(Trust::Verified),
        outcome: ItemOutcome::Executed(vec![Some(0)]),
        der: vec![0xA0, 0x00],
        read_as: Sgp32Version::V1_2,
        received_at: Timestamp(3_000),
    }
}

async fn devices_are_inserted_once(store: &impl EimStore) -> Result<(), StoreError> {
    let device = test_device(1);
    assert!(
        store.device(&device.eid).await?.is_none(),
        "an unknown EID has no record"
    );
    store.commit(insert(device.clone())).await?;
    let read = store
        .device(&device.eid)
        .await?
        .expect("the inserted device");
    assert_eq!(read.record, device, "a device reads back as written");
    assert_eq!(
        read.version,
        Version::INITIAL,
        "a new record has the initial version"
    );
    let again = store.commit(insert(device.clone())).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "a second association of one EID is a conflict, got {again:?}"
    );
    store.commit(EimChanges::default()).await?;
    Ok(())
}

async fn sanitizations_read_back(store: &impl EimStore) -> Result<(), StoreError> {
    use crate::ids::Iccid;
    use crate::record::{ProfileEntry, Release, Sanitization, WipeStep};
    let mut device = test_device(50);
    let iccid = Iccid::new("8949449999999990023").expect("a valid ICCID");
    device.sanitization = Some(Sanitization {
        started_at: Timestamp(6_000),
        withdrawn: vec![3, 4],
        known_profiles: vec![ProfileEntry {
            iccid: iccid.clone(),
            enabled: true,
            fallback: true,
            class: Some(2),
            name: Some("ops".to_owned()),
            service_provider: None,
        }],
        keep_provisioning: true,
        wipe_item: 5,
        wipe_steps: vec![
            WipeStep::UnsetFallback,
            WipeStep::Disable(iccid.clone()),
            WipeStep::Delete(iccid),
            WipeStep::ListProfiles,
        ],
        eim_list_item: 6,
        release: Some(Release {
            item_id: 7,
            ordered_at: Timestamp(7_000),
        }),
        reassociated_at: Some(Timestamp(8_000)),
    });
    store.commit(insert(device.clone())).await?;
    let read = store
        .device(&device.eid)
        .await?
        .expect("the inserted device");
    assert_eq!(
        read.record, device,
        "a device with a sanitization reads back as written"
    );
    Ok(())
}

/// A rollback grant reads back as written; a rollback result (a second
/// result with its package's counter, under an item id of its own) is
/// stored beside the package's result, and the package's own result is
/// still the one found by the counter.
async fn rollbacks_read_back(store: &impl EimStore) -> Result<(), StoreError> {
    use crate::ids::Iccid;
    use crate::record::RollbackGrant;
    let mut device = test_device(60);
    let eid = device.eid;
    device.rollback = Some(Box::new(RollbackGrant {
        counter: Counter::new(11).expect("in range"),
        transaction_id: EimTransactionId::from_slice(&[0xC1; EimTransactionId::LEN])
            .expect("the length of eIM transaction ids"),
        eim_signature: vec![0x5F, 0x37, 0x01, 0x00],
        enabled: Iccid::new("8949449999999990031").expect("a valid ICCID"),
        previous: Some(Iccid::new("8949449999999990049").expect("a valid ICCID")),
        rolled_back: None,
    }));
    let mut changes = insert(device.clone());
    changes.results.push(result(eid, 1, 11));
    store.commit(changes).await?;
    let read = store.device(&eid).await?.expect("the inserted device");
    assert_eq!(
        read.record, device,
        "a device with a rollback grant reads back as written"
    );
    if let Some(grant) = &mut device.rollback {
        grant.rolled_back = Some(1_101);
        grant.previous = None;
    }
    device.next_item = 3;
    let mut changes = update(read.version, device.clone());
    let mut rollback = result(eid, 2, 11);
    rollback.kind = ItemKind::Rollback;
    rollback.seq_number = Some(1_101);
    changes.results.push(rollback.clone());
    store.commit(changes).await?;
    assert_eq!(
        store.device(&eid).await?.expect("the device").record,
        device
    );
    assert_eq!(
        store.results(&eid).await?,
        vec![result(eid, 1, 11), rollback]
    );
    assert_eq!(
        store
            .package_result(&eid, Counter::new(11).expect("in range"))
            .await?,
        Some(result(eid, 1, 11)),
        "the counter finds the package's own result"
    );
    Ok(())
}

async fn updates_compare_and_set(store: &impl EimStore) -> Result<(), StoreError> {
    let mut device = test_device(2);
    store.commit(insert(device.clone())).await?;
    device.association.counter = Counter::new(11).expect("in range");
    store
        .commit(update(Version::INITIAL, device.clone()))
        .await?;
    let read = store.device(&device.eid).await?.expect("the device");
    assert_eq!(
        read.version,
        Version::INITIAL.next(),
        "a write moves the version on"
    );
    assert_eq!(
        read.record.association.counter.get(),
        11,
        "the update was written"
    );
    // A second writer that read the old version loses, and writes nothing.
    let mut loser = device.clone();
    loser.association.counter = Counter::new(12).expect("in range");
    let lost = store.commit(update(Version::INITIAL, loser)).await;
    assert!(
        matches!(lost, Err(StoreError::Stale)),
        "a stale update is refused, got {lost:?}"
    );
    let read = store.device(&device.eid).await?.expect("the device");
    assert_eq!(
        read.record.association.counter.get(),
        11,
        "a stale update writes nothing"
    );
    // Updating a device that does not exist is stale too.
    let missing = store
        .commit(update(Version::INITIAL, test_device(99)))
        .await;
    assert!(matches!(missing, Err(StoreError::Stale)), "got {missing:?}");
    Ok(())
}

/// The eIM transaction id of eight `byte`s.
fn tid(byte: u8) -> EimTransactionId {
    EimTransactionId::from_slice(&[byte; EimTransactionId::LEN]).expect("eight bytes")
}

async fn transaction_ids_find_open_items(store: &impl EimStore) -> Result<(), StoreError> {
    let mut device = test_device(3);
    device.queue = vec![item(1, 11, 0xA1), item(2, 12, 0xA2)];
    store.commit(insert(device.clone())).await?;
    assert_eq!(
        store.device_by_transaction(&tid(0xA2)).await?,
        Some(device.eid)
    );
    assert_eq!(store.device_by_transaction(&tid(0xEE)).await?, None);
    device.queue.remove(0);
    store
        .commit(update(Version::INITIAL, device.clone()))
        .await?;
    assert_eq!(
        store.device_by_transaction(&tid(0xA1)).await?,
        None,
        "an item that left the queue is no longer found by its transaction id"
    );
    assert_eq!(
        store.device_by_transaction(&tid(0xA2)).await?,
        Some(device.eid)
    );
    Ok(())
}

async fn results_are_stored_once_and_commits_are_atomic(
    store: &impl EimStore,
) -> Result<(), StoreError> {
    let mut device = test_device(4);
    device.queue = vec![item(1, 11, 0xB1), item(2, 12, 0xB2)];
    store.commit(insert(device.clone())).await?;
    let eid = device.eid;
    device.queue.remove(0);
    let mut changes = update(Version::INITIAL, device.clone());
    changes.results.push(result(eid, 1, 11));
    store.commit(changes).await?;
    assert_eq!(store.results(&eid).await?, vec![result(eid, 1, 11)]);
    let by_counter = store
        .package_result(&eid, Counter::new(11).expect("in range"))
        .await?;
    assert_eq!(
        by_counter,
        Some(result(eid, 1, 11)),
        "a result is found by its counter"
    );
    assert_eq!(
        store
            .package_result(&eid, Counter::new(12).expect("in range"))
            .await?,
        None
    );
    // A second result for the same item: nothing of the commit is written.
    device.queue.clear();
    let mut changes = update(Version::INITIAL.next(), device.clone());
    changes.results.push(result(eid, 2, 12));
    changes.results.push(result(eid, 1, 11));
    let twice = store.commit(changes).await;
    assert!(
        matches!(twice, Err(StoreError::Conflict(_))),
        "got {twice:?}"
    );
    let read = store.device(&eid).await?.expect("the device");
    assert_eq!(
        read.version,
        Version::INITIAL.next(),
        "the device was not rewritten"
    );
    assert_eq!(read.record.queue.len(), 1, "the queue is unchanged");
    assert_eq!(
        store.results(&eid).await?.len(),
        1,
        "no result of the failed commit was stored"
    );
    // A stale device write stores no result either.
    let mut changes = update(Version::INITIAL, device.clone());
    changes.results.push(result(eid, 2, 12));
    assert!(matches!(
        store.commit(changes).await,
        Err(StoreError::Stale)
    ));
    assert_eq!(store.results(&eid).await?.len(), 1);
    Ok(())
}

async fn notifications_keep_the_first_copy(store: &impl EimStore) -> Result<(), StoreError> {
    let eid = test_eid(5);
    let note = |seq: i64, byte: u8| NotificationRecord {
        eid,
        seq_number: seq,
        der: vec![byte],
        received_at: Timestamp(4_000),
    };
    let changes = EimChanges {
        notifications: vec![note(2, 1), note(1, 1)],
        ..EimChanges::default()
    };
    store.commit(changes).await?;
    let again = EimChanges {
        notifications: vec![note(2, 9)],
        ..EimChanges::default()
    };
    store.commit(again).await?;
    let stored = store.notifications(&eid).await?;
    assert_eq!(
        stored,
        vec![note(1, 1), note(2, 1)],
        "in sequence order, first copy kept"
    );
    Ok(())
}

async fn devices_are_listed_in_order(store: &impl EimStore) -> Result<(), StoreError> {
    for n in [30, 10, 20] {
        store.commit(insert(test_device(n))).await?;
    }
    let all = store.devices(None, 100).await?;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "EIDs are listed in ascending order");
    assert!(all.contains(&test_eid(10)) && all.contains(&test_eid(30)));
    let first_two = store.devices(None, 2).await?;
    assert_eq!(first_two.len(), 2);
    let rest = store.devices(Some(first_two[1]), 100).await?;
    assert_eq!(
        rest.first(),
        all.get(2),
        "the next page starts after the given EID"
    );
    Ok(())
}

async fn relay_sessions_are_kept(store: &impl EimStore) -> Result<(), StoreError> {
    let es9_tid = |hex: &str| TransactionId::from_hex(hex).expect("a transaction id");
    let session = RelaySession {
        transaction_id: es9_tid("0A1B2C3D"),
        smdp_address: "smdp.example:8443".to_owned(),
        eid: Some(test_eid(40)),
        created_at: Timestamp(5_000),
    };
    assert_eq!(store.relay_session(&es9_tid("0A1B2C3D")).await?, None);
    store.put_relay_session(&session).await?;
    assert_eq!(
        store.relay_session(&es9_tid("0A1B2C3D")).await?,
        Some(session.clone())
    );
    let moved = RelaySession {
        smdp_address: "other.example".to_owned(),
        eid: None,
        ..session
    };
    store.put_relay_session(&moved).await?;
    assert_eq!(
        store.relay_session(&es9_tid("0A1B2C3D")).await?,
        Some(moved),
        "a session with the same transaction id replaces the old one"
    );
    assert_eq!(store.relay_session(&es9_tid("FFFF")).await?, None);
    Ok(())
}
