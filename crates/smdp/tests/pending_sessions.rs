//! Unauthenticated `initiateAuthentication` calls cannot fill the store:
//! at most `max_pending_sessions` sessions wait for `authenticateClient` at
//! once, further calls are refused with 8.8/4.2 (and store nothing), and an
//! expired session neither counts nor stays (the purge removes it at once,
//! not after the retention of ended sessions).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::time::Duration;

use ferrosim_smdp::Es9Error;
use ferrosim_smdp::randomness::Randomness;
use ferrosim_smdp::store::SessionStore;
use ferrosim_smdp::time::Timestamp;
use support::*;

#[tokio::test]
async fn pending_sessions_are_bounded_and_purged_once_expired() {
    let pki = pki(1);
    let mut config = config(&pki);
    config.max_pending_sessions = 3;
    config.session_ttl = Duration::from_secs(600);
    let world = World::with_config(config, 1, Randomness::os()).await;
    let device = Device::new(&pki, 0);
    let request = device.initiate(ADDRESS);
    let initiate = |now| world.smdp.initiate_authentication(&request, now);

    for _ in 0..3 {
        initiate(NOW).await.unwrap();
    }
    let refused = initiate(NOW).await.expect_err("a fourth pending session");
    assert!(matches!(refused, Es9Error::TooManySessions(3)), "{refused}");
    assert_eq!(status(&refused), ("8.8", "4.2"));
    assert!(refused.to_string().contains("retry later"), "{refused}");
    assert_eq!(world.store.pending_sessions(NOW, 100).await.unwrap(), 3);

    // Once they expired, they no longer count, and the purge takes them at
    // once although ended sessions are kept for days.
    let later = NOW.plus(Duration::from_secs(601));
    initiate(later).await.unwrap();
    let week_ago = Timestamp(later.millis() - 7 * 24 * 3600 * 1000);
    assert_eq!(
        world
            .store
            .purge_sessions(later, week_ago, 100)
            .await
            .unwrap(),
        3
    );
    assert_eq!(world.store.pending_sessions(later, 100).await.unwrap(), 1);
}
