//! The behaviour every [`TelemetryStore`] must have, as a test suite.
//!
//! `ferrosim-telemetry`'s tests run it against [`crate::MemTelemetryStore`];
//! the SQL stores run it against SQLite and PostgreSQL. Each check panics
//! with a message naming what broke; store failures are returned.

use std::collections::BTreeSet;

use ferrosim_ids::Eid;

use crate::dims::Dims;
use crate::event::{
    CorrelationId, Event, EventKind, Function, RegistrationOutcome, Source, StepStatus,
};
use crate::store::{EventQuery, Filter, StoreError, TelemetryStore};
use crate::time::Timestamp;

/// A valid EID numbered `n` (its check digits computed), for fixtures.
pub fn test_eid(n: u32) -> Eid {
    let body = format!("8904903200000000000000{n:08}");
    Eid::from_body(&body).expect("30 generated digits always make an EID")
}

/// Runs every check on an empty `store`.
pub async fn run_all(store: &impl TelemetryStore) -> Result<(), StoreError> {
    append_and_query_in_time_order(store).await?;
    ranges_filters_and_limits(store).await?;
    timelines(store).await?;
    purge(store).await?;
    invalid_query(store).await?;
    Ok(())
}

fn step(
    store: &impl TelemetryStore,
    at: i64,
    activation: u64,
    device: u32,
    carrier: &str,
) -> Event {
    let dict = store.dictionary();
    Event {
        at: Timestamp(at),
        activation: CorrelationId::new(activation),
        device: test_eid(device),
        source: Source::Smdp,
        dims: Dims {
            carrier: dict.intern(carrier).ok(),
            smdp: dict.intern("dp1").ok(),
            wave: Some(1),
            ..Dims::default()
        },
        kind: EventKind::Step {
            function: Function::Es9GetBoundProfilePackage,
            status: StepStatus::Ok,
            duration_ms: u32::try_from(at % 1000).unwrap_or(0),
            signalling_bytes: 100,
            bpp_bytes: 20_000,
        },
    }
}

/// Events come back time-ordered whatever the order they were appended in,
/// equal instants in arrival order, with every field intact.
async fn append_and_query_in_time_order(store: &impl TelemetryStore) -> Result<(), StoreError> {
    let a = step(store, 1_000, 1, 1, "acme");
    let b = step(store, 3_000, 2, 2, "acme");
    let mut late = step(store, 2_000, 3, 3, "globex");
    late.kind = EventKind::Registration {
        profile: None,
        outcome: RegistrationOutcome::Rejected { cause: 15 },
    };
    late.source = Source::Device;
    let same_instant = step(store, 2_000, 4, 4, "acme");
    store.append(&[a, b]).await?;
    store.append(&[late]).await?;
    store.append(&[same_instant]).await?;
    let got = store.query(&EventQuery::all()).await?;
    assert_eq!(
        got,
        vec![a, late, same_instant, b],
        "time order, then arrival"
    );
    store.purge_before(Timestamp(i64::MAX)).await?;
    Ok(())
}

/// `[from, to)` bounds, each dimension filter, device sets and limits.
async fn ranges_filters_and_limits(store: &impl TelemetryStore) -> Result<(), StoreError> {
    let events: Vec<Event> = (0..10u32)
        .map(|i| {
            let carrier = if i % 2 == 0 { "acme" } else { "globex" };
            step(
                store,
                10_000 + i64::from(i) * 1000,
                u64::from(i) + 1,
                i,
                carrier,
            )
        })
        .collect();
    store.append(&events).await?;
    let q = EventQuery::between(Timestamp(12_000), Timestamp(15_000));
    assert_eq!(store.query(&q).await?, events[2..5].to_vec(), "[from, to)");

    let acme = store.dictionary().get("acme");
    let mut q = EventQuery::all();
    q.filter.carrier = acme;
    let got = store.query(&q).await?;
    assert_eq!(got.len(), 5, "carrier filter");
    assert!(got.iter().all(|e| e.dims.carrier == acme));

    q.filter = Filter {
        devices: Some(BTreeSet::from([test_eid(3), test_eid(4), test_eid(99)])),
        ..Filter::default()
    };
    assert_eq!(store.query(&q).await?, events[3..5].to_vec(), "device set");

    q.filter = Filter {
        smdp: store.dictionary().get("dp1"),
        wave: Some(1),
        ..Filter::default()
    };
    q.limit = Some(3);
    assert_eq!(
        store.query(&q).await?,
        events[..3].to_vec(),
        "limit keeps the earliest"
    );

    q.limit = None;
    q.filter = Filter {
        wave: Some(2),
        ..Filter::default()
    };
    assert!(store.query(&q).await?.is_empty(), "no event of wave 2");
    store.purge_before(Timestamp(i64::MAX)).await?;
    Ok(())
}

/// A timeline is one activation's events, time-ordered.
async fn timelines(store: &impl TelemetryStore) -> Result<(), StoreError> {
    let e1 = step(store, 5_000, 7, 1, "acme");
    let e2 = step(store, 4_000, 7, 1, "acme");
    let other = step(store, 4_500, 8, 1, "acme");
    store.append(&[e1, other, e2]).await?;
    let id = CorrelationId::new(7).ok_or(StoreError::InvalidQuery("zero id"))?;
    assert_eq!(store.timeline(id).await?, vec![e2, e1]);
    store.purge_before(Timestamp(i64::MAX)).await?;
    Ok(())
}

/// Retention removes exactly the events before the cutoff.
async fn purge(store: &impl TelemetryStore) -> Result<(), StoreError> {
    let events: Vec<Event> = (0..5)
        .map(|i| step(store, 1_000 * i64::from(i), 1, 1, "acme"))
        .collect();
    store.append(&events).await?;
    assert_eq!(store.purge_before(Timestamp(2_000)).await?, 2);
    assert_eq!(store.query(&EventQuery::all()).await?, events[2..].to_vec());
    assert_eq!(store.purge_before(Timestamp(2_000)).await?, 0, "idempotent");
    assert_eq!(store.purge_before(Timestamp(i64::MAX)).await?, 3);
    Ok(())
}

/// A range that ends before it starts is refused, not answered empty.
async fn invalid_query(store: &impl TelemetryStore) -> Result<(), StoreError> {
    let q = EventQuery::between(Timestamp(10), Timestamp(5));
    assert!(matches!(
        store.query(&q).await,
        Err(StoreError::InvalidQuery(_))
    ));
    Ok(())
}
