//! Two fleet drivers (two `serve` instances) on one database, SQLite and
//! PostgreSQL: registering devices and taking reports at the same time
//! through both, no device is ever decided for twice (each device's first
//! order is issued exactly once, by one of them), nothing is lost, and both
//! end up seeing the same fleet; a catalog change made from a stale read
//! through the other instance is refused (compare-and-set of its version).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrosim_fleet::decision::What;
use ferrosim_fleet::report::{DeviceReport, Registration, ReportKind};
use ferrosim_fleet::store::{DecisionQuery, FleetStore};
use ferrosim_fleet::{DeviceSpec, FleetConfig};
use ferrosim_ids::{Eid, SystemClock};
use ferrosim_server::fleet::{FleetDriver, FleetOptions};
use ferrosim_store::{SqlStore, StoreOptions};

const CONFIG: &str = r#"
[[carrier]]
name = "carrier-a"
mcc_mnc = ["310-410"]
smdp_address = "smdp.carrier-a.example"
es2_credentials = "vault:a"
fallback_carriers = ["carrier-b"]
rate_limits = { es2_per_minute = 6000, es2_burst = 100 }
[[carrier.apn]]
name = "iot"
apn = "iot.carrier-a.example"
[[carrier.profile_type]]
name = "iot"
apn = "iot"
[[carrier]]
name = "carrier-b"
mcc_mnc = ["234-15"]
smdp_address = "smdp.carrier-b.example"
es2_credentials = "vault:b"
fallback_carriers = ["carrier-a"]
[[carrier.apn]]
name = "iot"
apn = "m2m.carrier-b.example"
[[carrier.profile_type]]
name = "fallback"
apn = "iot"
[[group]]
name = "meters"
rule = "default"
primary = { carrier = "carrier-a", profile_type = "iot", version = 1 }
fallback = { carrier = "carrier-b", profile_type = "fallback", version = 1 }
[[rule]]
name = "default"
registration_failures = { count = 3, window = "5m" }
"#;

fn eid(n: u32) -> Eid {
    // 30 digits; the check digits are computed.
    Eid::from_body(&format!("890490321234512345123456{n:06}")).unwrap()
}

async fn driver(url: &str) -> FleetDriver<ferrosim_store::SqlFleetStore, SqlStore> {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    FleetDriver::open(
        store.fleet(),
        None,
        FleetConfig::from_toml(CONFIG).unwrap(),
        ferrosim_telemetry::Dictionary::new(),
        Arc::new(SystemClock),
        FleetOptions::default(),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_decide_for_the_same_device() {
    for db in ferrosim_testkit::databases().await.unwrap() {
        let one = driver(&db.url).await;
        let two = driver(&db.url).await;
        let mut tasks = Vec::new();
        for n in 0..12u32 {
            let d = if n % 2 == 0 { one.clone() } else { two.clone() };
            let other = if n % 2 == 0 { two.clone() } else { one.clone() };
            tasks.push(tokio::spawn(async move {
                let spec = DeviceSpec {
                    eid: eid(n),
                    group: "meters".into(),
                    vendor: "acme".into(),
                    model: "m1".into(),
                    firmware: "1.0.0".into(),
                    region: None,
                    tags: Vec::new(),
                    capabilities: serde_json::from_str(r#"{"sgp32_version": [1, 2, 0]}"#).unwrap(),
                    profiles: Vec::new(),
                };
                d.transact(|tx| tx.fleet.add_device(&spec, tx.now))
                    .await
                    .unwrap();
                // A report through the other instance, which has to reload
                // to know the device.
                let report = DeviceReport {
                    device: eid(n),
                    kind: ReportKind::Registration {
                        outcome: Registration::Rejected { cause: 15 },
                        plmn: None,
                    },
                };
                let mut tries = 0;
                loop {
                    match other
                        .transact(|tx| tx.fleet.handle_report(&report, tx.now))
                        .await
                    {
                        Ok(()) => break,
                        Err(e) if tries < 20 => {
                            tries += 1;
                            let _ = e;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap()
            .fleet();
        let devices = store.devices(None, 100).await.unwrap();
        assert_eq!(devices.len(), 12, "{}", db.backend);
        let decisions = store.decisions(&DecisionQuery::default()).await.unwrap();
        let mut orders: BTreeMap<Eid, Vec<u64>> = BTreeMap::new();
        for d in &decisions {
            if let (Some(device), What::Issue { action, command }) = (d.device, &d.what)
                && command == "es2.downloadOrder"
            {
                orders.entry(device).or_default().push(action.0);
            }
        }
        let missing: Vec<String> = devices
            .iter()
            .filter(|d| !orders.contains_key(&d.record.eid))
            .map(|d| {
                let of: Vec<String> = decisions
                    .iter()
                    .filter(|x| x.device == Some(d.record.eid))
                    .map(|x| format!("{:?} {:?}", x.what, x.reason))
                    .collect();
                format!("{}: {of:?} {:?}", d.record.eid, d.record.work)
            })
            .collect();
        assert_eq!(orders.len(), 12, "{}: {missing:?}", db.backend);
        for (device, ids) in &orders {
            assert_eq!(ids.len(), 1, "{}: {device} ordered {ids:?}", db.backend);
        }
        let mut all: Vec<u64> = orders.values().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 12, "{}: action ids reused", db.backend);
        let seqs: Vec<u64> = decisions.iter().map(|d| d.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{}", db.backend);
        // Both see all devices once they next change something.
        for d in [&one, &two] {
            d.transact(|tx| {
                tx.fleet.declare_outage("carrier-b", None, tx.now)?;
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(d.read(|f, _| f.len()).await, 12, "{}", db.backend);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_overwrite_each_others_catalog_change() {
    use ferrosim_server::api::fleet::catalog::{self, Item, Kind};
    for db in ferrosim_testkit::databases().await.unwrap() {
        let one = driver(&db.url).await;
        let two = driver(&db.url).await;
        // Both read the rule at the same version.
        let read = catalog::get(&one, Kind::Rule, "default").await.unwrap();
        let seen = catalog::get(&two, Kind::Rule, "default").await.unwrap();
        assert_eq!(read.version, seen.version, "{}", db.backend);
        let mut rule: ferrosim_fleet::config::RuleConfig =
            serde_json::from_value(read.item.clone()).unwrap();
        rule.max_switches_per_hour = 2;
        let changed = catalog::put(
            &one,
            "default",
            Item::Rule(rule.clone()),
            Some(&read.version),
        )
        .await
        .unwrap();
        assert!(!changed.created, "{}", db.backend);
        // The other instance, which has not reloaded yet, writes from the
        // version it read: refused, and the first change stays.
        rule.max_switches_per_hour = 3;
        let e = catalog::put(&two, "default", Item::Rule(rule), Some(&seen.version))
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 412, "{}: {e}", db.backend);
        for d in [&one, &two] {
            let now = catalog::get(d, Kind::Rule, "default").await.unwrap();
            assert_eq!(now.item["max_switches_per_hour"], 2, "{}", db.backend);
            assert_eq!(
                Some(now.version),
                changed.after.as_ref().map(|a| a.version.clone())
            );
        }
        // A delete from a stale read is refused the same way; the group
        // still uses the rule, so a current one is refused as in use.
        let e = catalog::delete(&two, Kind::Rule, "default", Some(&seen.version))
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 412, "{}: {e}", db.backend);
        let current = changed.after.unwrap().version;
        let e = catalog::delete(&two, Kind::Rule, "default", Some(&current))
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 409, "{}: {e}", db.backend);
    }
}
