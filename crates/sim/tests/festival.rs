//! The festival scenario at small scale: every phone downloads its profile
//! through the SM-DP+ (ES2+ orders, ES9+ steps, the LPA machine and the
//! virtual eUICC), enables it and registers; the telemetry crate judges
//! the activations; the same seed gives the same report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosim_sim::report::MEASURED_FIELDS;
use ferrosim_sim::{RunOptions, Scenario, simulate};

fn run(devices: u32, seed: u64, threads: usize) -> serde_json::Value {
    let scenario = Scenario::builtin("festival").unwrap();
    let options = RunOptions {
        devices: Some(devices),
        seed: Some(seed),
        shards: 2,
        threads,
    };
    let (collected, metrics, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    let text = ferrosim_sim::report::json(&summary, &metrics, &collected).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = value["summary"].as_object_mut().unwrap();
    for field in MEASURED_FIELDS {
        assert!(s.remove(*field).is_some(), "{field} is in the summary");
    }
    value
}

#[test]
fn festival_phones_download_register_and_replay() {
    let first = run(120, 3, 2);
    let s = &first["summary"];
    println!("{}", serde_json::to_string_pretty(s).unwrap());
    // Every phone scanned its code, downloaded and enabled its profile.
    assert_eq!(s["downloads"].as_u64().unwrap(), 120, "{s}");
    assert!(s["download_failures"].as_object().unwrap().is_empty());
    assert_eq!(s["euiccs"].as_u64().unwrap(), 120);
    // The telemetry crate saw 120 activations, nearly all within 60 s.
    assert_eq!(s["activations"][0].as_u64().unwrap(), 120);
    let ratio = s["activation_success_within_60s"].as_f64().unwrap();
    assert!(ratio > 0.9 && ratio <= 1.0, "{ratio}");
    // Signalling bytes of the ES9+ calls were counted.
    assert!(s["bytes_per_active_profile"].as_f64().unwrap() > 1000.0);
    // Each download: 6 signatures, 7 verifications, 2 key pairs, 2 key
    // agreements, plus the phone's eUICC certificate and key.
    assert_eq!(s["ec_operations"][3].as_u64().unwrap(), 240);
    // No fleet work: phones are not fleet devices.
    assert_eq!(s["failovers"].as_u64().unwrap(), 0);
    // The same seed on one thread: the same report, but for the bytes of
    // DER-encoded ECDSA signatures inside the certificates the phones
    // send (aws-lc draws signature nonces itself, so a signature's DER
    // length varies by a byte or two from run to run).
    let mut first = first;
    let mut again = run(120, 3, 1);
    let (a, b) = (strip_bytes(&mut first), strip_bytes(&mut again));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= x * 0.005, "{x} vs {y} bytes");
    }
    assert_eq!(first, again);
}

/// Takes the byte counts out of a report (wherever they are).
fn strip_bytes(value: &mut serde_json::Value) -> Vec<f64> {
    let mut out = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            for key in ["signalling_bytes", "bytes_per_active_profile"] {
                if let Some(v) = map.remove(key) {
                    out.push(v.as_f64().unwrap());
                }
            }
            for v in map.values_mut() {
                out.extend(strip_bytes(v));
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                out.extend(strip_bytes(v));
            }
        }
        _ => {}
    }
    out
}
