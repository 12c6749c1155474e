//! The IPA over a cellular modem: AT commands on a pseudo-terminal to a
//! simulated modem whose SIM is a virtual eUICC. A package completes over
//! logical channels (`AT+CCHO`/`AT+CGLA`/`AT+CCHC`) and over `AT+CSIM`
//! when the modem has no logical-channel commands; a modem answering
//! `ERROR` or garbage ends the session with a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Lab;
use ferrosim_eim::record::{ItemOutcome, Trust};
use ferrosim_eim::store::EimStore;
use ferrosim_eim::{Operation, PackageContent, Timestamp};
use ferrosim_ipa::driver::{MemoryStore, run_session};
use ferrosim_ipa::modem::simulated::{Misbehaviour, SimulatedModem};
use ferrosim_ipa::modem::{ModemMode, connect};
use ferrosim_ipa::{Ipa, IpaConfig, ItemReport, PackageOutcome, PendingState, SessionReport};
use rand::SeedableRng;
use rand::rngs::StdRng;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn session_over(
    lab: &Lab,
    modem: &SimulatedModem,
    state: PendingState,
) -> (SessionReport, ModemMode, PendingState) {
    let (mut transport, link) = connect(modem.path(), TIMEOUT).unwrap();
    let mode = transport.mode();
    let config = IpaConfig {
        deliver_notifications: false,
        ..IpaConfig::default()
    };
    let mut ipa = Ipa::new(
        config,
        link,
        state,
        StdRng::seed_from_u64(1),
        Timestamp::now(),
    );
    let mut store = MemoryStore::default();
    let report = run_session(&mut ipa, &mut transport, &lab.eim, &lab.direct, &mut store)
        .await
        .unwrap();
    let _ = transport.close_channel();
    (report, mode, store.last.unwrap_or_default())
}

async fn queue_list(lab: &Lab, rng: &mut StdRng) {
    lab.eim
        .eim
        .enqueue_package(
            &lab.eid(0),
            &PackageContent::Psmos(vec![Operation::ListProfiles]),
            rng,
            Timestamp::now(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn packages_complete_over_at_commands_and_a_misbehaving_modem_is_a_clear_error() {
    let lab = Lab::start(1).await;
    let mut rng = StdRng::seed_from_u64(5);
    let card = lab.device(0).await;
    let modem = SimulatedModem::start(card).unwrap();

    // AT+CCHO / AT+CGLA.
    queue_list(&lab, &mut rng).await;
    let (report, mode, state) = session_over(&lab, &modem, PendingState::default()).await;
    assert!(report.is_ok(), "{report:?}");
    assert!(
        matches!(mode, ModemMode::LogicalChannel(c) if c > 0),
        "{mode:?}"
    );
    assert!(matches!(
        &report.items[..],
        [ItemReport::Package {
            outcome: PackageOutcome::Executed { .. },
            ..
        }]
    ));
    assert_eq!(report.acknowledged.len(), 1);
    assert!(modem.apdus() > 2);

    // A modem without logical channels: AT+CSIM.
    modem.refuse_logical_channels(true);
    queue_list(&lab, &mut rng).await;
    let (report, mode, state) = session_over(&lab, &modem, state).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(mode, ModemMode::Csim);
    assert_eq!(report.items.len(), 1);
    let results = lab.eim.eim.store().results(&lab.eid(0)).await.unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| r.trust == Some(Trust::Verified)
                && matches!(r.outcome, ItemOutcome::Executed(_)))
    );

    // ERROR in the middle of a session.
    modem.refuse_logical_channels(false);
    queue_list(&lab, &mut rng).await;
    modem.misbehave(Misbehaviour::ErrorAfter(1));
    let (report, _, state) = session_over(&lab, &modem, state).await;
    let error = report.error.expect("the session fails").to_string();
    assert!(
        error.contains("the modem answered `ERROR` to AT+CGLA"),
        "{error}"
    );
    assert_eq!(state.failures, 1);

    // Garbage instead of an answer.
    modem.misbehave(Misbehaviour::GarbageAfter(0));
    let (report, _, state) = session_over(&lab, &modem, state).await;
    let error = report.error.expect("the session fails").to_string();
    assert!(error.contains("garbage in answer to AT+CGLA"), "{error}");
    assert_eq!(state.failures, 2);

    // Behaving again: the package queued meanwhile completes (a package the
    // eUICC may have run is never run twice: the eIM's counter).
    modem.misbehave(Misbehaviour::None);
    let (report, _, state) = session_over(&lab, &modem, state).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(state.failures, 0);
    assert!(
        lab.eim
            .eim
            .device(&lab.eid(0))
            .await
            .unwrap()
            .queue
            .is_empty()
    );
}

#[test]
fn what_is_not_a_modem_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-tty");
    std::fs::write(&file, b"AT").unwrap();
    let error = connect(&file, TIMEOUT).unwrap_err().to_string();
    assert!(error.contains("not a serial device"), "{error}");
    let error = connect(&dir.path().join("missing"), TIMEOUT)
        .unwrap_err()
        .to_string();
    assert!(error.contains("open"), "{error}");
}
