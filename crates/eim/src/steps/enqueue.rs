//! Queuing work for a device: signed eUICC packages, profile download
//! triggers and requests for eUICC data; and withdrawing what was not yet
//! delivered.
//!
//! Every package takes the next counter value of the association (strictly
//! increasing, never reused: the counter moves in the same compare-and-set
//! commit as the queue) and is signed here, so the queue holds the exact
//! bytes the device gets. Every item carries a fresh eIM transaction id.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::OctetString;
use ferrosim_asn1::{encode_der, sgp32};
use ferrosim_crypto::KeySource;
use rand::CryptoRng;

use super::Step;
use super::associate::update;
use crate::error::EimError;
use crate::ids::Timestamp;
use crate::ids::{Counter, EimTransactionId};
use crate::package::{PackageContent, sign_package};
use crate::record::{DeviceRecord, ItemKind, ItemState, QueueItem};
use crate::store::Versioned;

/// What was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The item's id in the device's queue.
    pub item_id: u64,
    /// The package's counter value (packages only).
    pub counter: Option<Counter>,
    /// The eIM transaction id the item carries.
    pub transaction_id: EimTransactionId,
}

/// Signs and queues one eUICC package.
pub fn enqueue_package(
    device: &Versioned<DeviceRecord>,
    content: &PackageContent,
    key: &dyn KeySource,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<Step<Queued>, EimError> {
    open_for_work(&device.record)?;
    let mut record = device.record.clone();
    let queued = sign_and_push(&mut record, content, key, rng, now)?;
    Ok(Step::new(update(device, record), queued))
}

/// Refuses work for a device whose release was ordered (the eIM asked its
/// eUICC to forget it): it has to be associated again first.
pub(crate) fn open_for_work(record: &DeviceRecord) -> Result<(), EimError> {
    if record.release_ordered() {
        return Err(EimError::Released(record.eid));
    }
    Ok(())
}

/// Signs `content` with the next counter value and appends it to the queue.
pub(crate) fn sign_and_push(
    record: &mut DeviceRecord,
    content: &PackageContent,
    key: &dyn KeySource,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<Queued, EimError> {
    content.check(record.association.euicc_version)?;
    let counter = record.association.counter.next()?;
    let transaction_id = EimTransactionId::random(rng);
    let der = sign_package(
        &record.association,
        &record.eid,
        counter,
        transaction_id,
        content,
        key,
    )?;
    record.association.counter = counter;
    Ok(push(
        record,
        ItemKind::Package,
        Some(counter),
        transaction_id,
        der,
        now,
    ))
}

/// Where a triggered download takes its profile from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadTrigger {
    /// An activation code (`1$<SM-DP+ address>$<matching id>...`, at most 255
    /// characters): the IPA downloads from that SM-DP+.
    ActivationCode(String),
    /// The eUICC's default SM-DP+.
    DefaultSmdp,
    /// An SM-DS (the root SM-DS when `None`).
    Smds(Option<String>),
}

/// Queues a profile download trigger.
pub fn enqueue_download(
    device: &Versioned<DeviceRecord>,
    trigger: &DownloadTrigger,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<Step<Queued>, EimError> {
    let data = match trigger {
        DownloadTrigger::ActivationCode(code) => {
            if code.chars().count() > 255 {
                return Err(EimError::InvalidRequest(
                    "an activation code has at most 255 characters",
                ));
            }
            sgp32::ProfileDownloadData::activationCode(code.clone())
        }
        DownloadTrigger::DefaultSmdp => sgp32::ProfileDownloadData::contactDefaultSmdp(()),
        DownloadTrigger::Smds(address) => sgp32::ProfileDownloadData::contactSmds(
            sgp32::ProfileDownloadDataContactSmds::new(address.clone()),
        ),
    };
    open_for_work(&device.record)?;
    let transaction_id = EimTransactionId::random(rng);
    let request =
        sgp32::ProfileDownloadTriggerRequest::new(Some(data), Some(transaction_id.to_asn1()));
    let der = encode_der(&request)?;
    let mut record = device.record.clone();
    let queued = push(
        &mut record,
        ItemKind::DownloadTrigger,
        None,
        transaction_id,
        der,
        now,
    );
    Ok(Step::new(update(device, record), queued))
}

/// A piece of eUICC data an IpaEuiccDataRequest can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataItem {
    /// Pending profile notifications.
    Notifications,
    /// eUICC package results the eUICC still holds.
    PackageResults,
    /// The default SM-DP+ address.
    DefaultSmdpAddress,
    /// The root SM-DS address.
    RootSmdsAddress,
    /// EUICCInfo1.
    EuiccInfo1,
    /// EUICCInfo2 (with the SGP.32 version and IoT capabilities).
    EuiccInfo2,
    /// The association token.
    AssociationToken,
    /// The EUM and eUICC certificates.
    Certificates,
    /// The IPA's capabilities.
    IpaCapabilities,
    /// The device's information.
    DeviceInfo,
}

impl DataItem {
    /// Everything an IpaEuiccDataRequest can ask for.
    pub const ALL: [Self; 10] = [
        Self::Notifications,
        Self::PackageResults,
        Self::DefaultSmdpAddress,
        Self::RootSmdsAddress,
        Self::EuiccInfo1,
        Self::EuiccInfo2,
        Self::AssociationToken,
        Self::Certificates,
        Self::IpaCapabilities,
        Self::DeviceInfo,
    ];

    /// The tags of `IpaEuiccData` this item is asked for with, in the
    /// layout of `version` (v1.0 carries notifications and results in one
    /// `BF2B`, and the default SM-DP+ address in `80`).
    fn tags(self, version: Sgp32Version) -> &'static [&'static [u8]] {
        match (self, version) {
            (Self::Notifications, Sgp32Version::V1_2) => &[&[0xA0]],
            (Self::PackageResults, Sgp32Version::V1_2) => &[&[0xA2]],
            (Self::Notifications | Self::PackageResults, Sgp32Version::V1_0) => &[&[0xBF, 0x2B]],
            (Self::DefaultSmdpAddress, Sgp32Version::V1_2) => &[&[0x81]],
            (Self::DefaultSmdpAddress, Sgp32Version::V1_0) => &[&[0x80]],
            (Self::RootSmdsAddress, _) => &[&[0x83]],
            (Self::EuiccInfo1, _) => &[&[0xBF, 0x20]],
            (Self::EuiccInfo2, _) => &[&[0xBF, 0x22]],
            (Self::AssociationToken, _) => &[&[0x84]],
            (Self::Certificates, _) => &[&[0xA5], &[0xA6]],
            (Self::IpaCapabilities, _) => &[&[0xA8]],
            (Self::DeviceInfo, _) => &[&[0xA9]],
        }
    }
}

/// The IpaEuiccDataRequest asking for `items` from an IPA speaking `version`.
pub fn data_request(
    items: &[DataItem],
    version: Sgp32Version,
    transaction_id: EimTransactionId,
) -> sgp32::IpaEuiccDataRequest {
    let mut seen: Vec<&[u8]> = Vec::new();
    for item in items {
        for tag in item.tags(version) {
            if !seen.contains(tag) {
                seen.push(tag);
            }
        }
    }
    let tags = seen.concat();
    // v1.0 returns package results only when asked by its search criterion
    // (euiccPackageResults NULL, which the v1.0 writer makes of any
    // package-result criterion).
    let results_criterion = (version == Sgp32Version::V1_0
        && items.contains(&DataItem::PackageResults))
    .then(|| sgp32::IpaEuiccDataRequestSearchCriteriaEuiccPackageResult::seqNumber(0.into()));
    sgp32::IpaEuiccDataRequest::new(
        OctetString::from(tags),
        None,
        None,
        results_criterion,
        Some(transaction_id.to_asn1()),
    )
}

/// Queues a request for eUICC data.
pub fn enqueue_data_request(
    device: &Versioned<DeviceRecord>,
    items: &[DataItem],
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<Step<Queued>, EimError> {
    if items.is_empty() {
        return Err(EimError::InvalidRequest(
            "an IpaEuiccDataRequest asks for at least one item",
        ));
    }
    open_for_work(&device.record)?;
    let transaction_id = EimTransactionId::random(rng);
    let request = data_request(items, device.record.ipa_version, transaction_id);
    let der = encode_der(&request)?;
    let mut record = device.record.clone();
    let queued = push(
        &mut record,
        ItemKind::DataRequest,
        None,
        transaction_id,
        der,
        now,
    );
    Ok(Step::new(update(device, record), queued))
}

/// Withdraws a queued item that was not delivered yet (a delivered package
/// may already have run: it stays until its result arrives). A withdrawn
/// package's counter value stays used.
pub fn withdraw(device: &Versioned<DeviceRecord>, item_id: u64) -> Result<Step<()>, EimError> {
    let mut record = device.record.clone();
    let position = record
        .queue
        .iter()
        .position(|i| i.id == item_id && i.state == ItemState::Queued)
        .ok_or(EimError::NoSuchItem(item_id))?;
    record.queue.remove(position);
    Ok(Step::new(update(device, record), ()))
}

fn push(
    record: &mut DeviceRecord,
    kind: ItemKind,
    counter: Option<Counter>,
    transaction_id: EimTransactionId,
    der: Vec<u8>,
    now: Timestamp,
) -> Queued {
    let item_id = record.next_item;
    record.next_item += 1;
    record.queue.push(QueueItem {
        id: item_id,
        kind,
        counter,
        transaction_id,
        der,
        state: ItemState::Queued,
        replay_error: None,
        created_at: now,
    });
    Queued {
        item_id,
        counter,
        transaction_id,
    }
}
