use std::time::Duration;

use super::*;
use crate::order::OrderPolicy;

fn eid() -> Eid {
    Eid::from_body("890490320000000000000000000001").expect("test EID")
}

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).expect("operator id")
}

fn profile(state: ProfileState) -> ProfileRecord {
    let t0 = Timestamp::from_millis(1_000);
    let mut p = ProfileRecord::new_available(
        Iccid::new("8944000000000000001").expect("iccid"),
        op("carrier-a"),
        "iot".into(),
        t0,
    );
    if state != ProfileState::Available {
        p.allocate(Some(eid()), t0, &OrderPolicy::default())
            .expect("allocate");
        p.state = state;
    }
    p
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[test]
fn installed_profile_waits_for_the_device_then_follows_the_policy() {
    let now = Timestamp::from_millis(10_000);
    let p = profile(ProfileState::Installed);
    let (changed, mut r) = revoke(
        Some(&p),
        None,
        &op("carrier-a"),
        ReusePolicy::Quarantine(DAY),
        "stolen",
        now,
    )
    .expect("revoke");
    assert!(changed.is_none(), "an installed record has no order to end");
    assert_eq!(r.state, EndOfLifeState::AwaitingDeviceDelete);
    assert_eq!(device_to_clean(&r), Some(&eid()));
    assert_eq!(r.reusable_from(), None);
    let deleted = Timestamp::from_millis(20_000);
    assert_eq!(r.device_deleted(deleted), Ok(true));
    assert_eq!(r.state, EndOfLifeState::Quarantined);
    assert_eq!(device_to_clean(&r), None);
    assert_eq!(r.reusable_from(), Some(deleted.plus(DAY)));
    assert!(!r.reusable_at(deleted.plus(DAY).minus(Duration::from_millis(1))));
    assert!(r.reusable_at(deleted.plus(DAY)));
    // A repeated notification changes nothing.
    assert_eq!(r.device_deleted(deleted.plus(DAY)), Ok(false));
    assert_eq!(r.deleted_on_device_at, Some(deleted));
}

#[test]
fn open_orders_are_cancelled_and_retired_at_once() {
    let now = Timestamp::from_millis(10_000);
    for state in [
        ProfileState::Allocated,
        ProfileState::Linked,
        ProfileState::Confirmed,
        ProfileState::Released,
        ProfileState::Error,
        ProfileState::Expired,
        ProfileState::Available,
    ] {
        let p = profile(state);
        let (changed, r) = revoke(
            Some(&p),
            None,
            &op("carrier-a"),
            ReusePolicy::Retire,
            "",
            now,
        )
        .expect("revoke");
        let changed = changed.expect("order ended");
        assert_eq!(changed.state, ProfileState::Unavailable, "{state}");
        assert_eq!(r.state, EndOfLifeState::Retired, "{state}");
        assert_eq!(r.previous_state, state);
        assert_eq!(device_to_clean(&r), None);
        assert!(!r.reusable_at(Timestamp::from_millis(i64::MAX / 2)));
    }
}

#[test]
fn a_downloaded_package_may_be_on_the_device() {
    let now = Timestamp::from_millis(10_000);
    let p = profile(ProfileState::Downloaded);
    let (changed, r) = revoke(
        Some(&p),
        None,
        &op("carrier-a"),
        ReusePolicy::Quarantine(Duration::ZERO),
        "",
        now,
    )
    .expect("revoke");
    assert_eq!(changed.map(|c| c.state), Some(ProfileState::Unavailable));
    assert_eq!(r.state, EndOfLifeState::AwaitingDeviceDelete);
}

#[test]
fn quarantine_without_device_counts_from_the_revocation() {
    let now = Timestamp::from_millis(10_000);
    let p = profile(ProfileState::Available);
    let (_, r) = revoke(
        Some(&p),
        None,
        &op("carrier-a"),
        ReusePolicy::Quarantine(DAY),
        "",
        now,
    )
    .expect("revoke");
    assert_eq!(r.state, EndOfLifeState::Quarantined);
    assert_eq!(r.reusable_from(), Some(now.plus(DAY)));
}

#[test]
fn refusals_change_nothing() {
    let now = Timestamp::from_millis(10_000);
    let p = profile(ProfileState::Installed);
    let policy = ReusePolicy::Retire;
    assert_eq!(
        revoke(None, None, &op("carrier-a"), policy, "", now),
        Err(EndOfLifeError::UnknownIccid)
    );
    assert_eq!(
        revoke(Some(&p), None, &op("carrier-b"), policy, "", now),
        Err(EndOfLifeError::UnknownIccid)
    );
    let (_, first) = revoke(Some(&p), None, &op("carrier-a"), policy, "", now).expect("first");
    assert_eq!(
        revoke(Some(&p), Some(&first), &op("carrier-a"), policy, "", now),
        Err(EndOfLifeError::AlreadyRevoked(
            EndOfLifeState::AwaitingDeviceDelete
        ))
    );
    let long = "x".repeat(MAX_REASON + 1);
    assert_eq!(
        revoke(Some(&p), None, &op("carrier-a"), policy, &long, now),
        Err(EndOfLifeError::ReasonTooLong)
    );
    let mut r = first;
    assert_eq!(
        r.device_deleted(Timestamp::from_millis(1)),
        Err(EndOfLifeError::DeleteBeforeRevocation)
    );
    assert_eq!(r.state, EndOfLifeState::AwaitingDeviceDelete);
}

#[test]
fn policies_parse_and_refuse_garbage() {
    assert_eq!(ReusePolicy::parse("retire", 0), Ok(ReusePolicy::Retire));
    assert_eq!(
        ReusePolicy::parse("quarantine", 3600),
        Ok(ReusePolicy::Quarantine(Duration::from_secs(3600)))
    );
    for (name, secs) in [("quarantine", -1), ("quarantine", i64::MAX)] {
        assert_eq!(
            ReusePolicy::parse(name, secs),
            Err(EndOfLifeError::BadQuarantine(secs))
        );
    }
    assert!(matches!(
        ReusePolicy::parse("\0reuse", 0),
        Err(EndOfLifeError::UnknownPolicy(_))
    ));
    for st in [
        EndOfLifeState::AwaitingDeviceDelete,
        EndOfLifeState::Retired,
        EndOfLifeState::Quarantined,
    ] {
        assert_eq!(EndOfLifeState::parse(st.as_str()), Some(st));
    }
    assert_eq!(EndOfLifeState::parse("deleted"), None);
}
