//! The store suite against the in-memory store, and JSON-lines round trips.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_telemetry::suite::{run_all, test_eid};
use ferrosim_telemetry::*;

#[test]
fn mem_store_passes_the_suite() {
    let store = MemTelemetryStore::new();
    futures::executor::block_on(run_all(&store)).unwrap();
    assert!(store.is_empty());
}

#[test]
fn memory_per_event_is_the_event_size() {
    let store = MemTelemetryStore::new();
    store.reserve(1000);
    assert_eq!(store.memory_bytes(), 1000 * std::mem::size_of::<Event>());
}

const SAMPLE: &str = include_str!("../testdata/sample-events.jsonl");

#[test]
fn jsonl_round_trip() {
    let dict = Dictionary::new();
    let events = read_jsonl(SAMPLE.as_bytes(), &dict).unwrap();
    assert_eq!(
        events.len(),
        SAMPLE.lines().filter(|l| !l.trim().is_empty()).count()
    );
    let mut out = Vec::new();
    write_jsonl(&mut out, &events, &dict).unwrap();
    let dict2 = Dictionary::new();
    let again = read_jsonl(out.as_slice(), &dict2).unwrap();
    let names = |d: &Dictionary, e: &[Event]| -> Vec<EventRecord> {
        e.iter().map(|e| EventRecord::from_event(e, d)).collect()
    };
    assert_eq!(names(&dict, &events), names(&dict2, &again));
}

#[test]
fn jsonl_garbage_is_refused_with_its_line() {
    let dict = Dictionary::new();
    let good = SAMPLE.lines().next().unwrap();
    let step = SAMPLE.lines().nth(1).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (format!("{good}\nnot json\n"), "line 2"),
        (
            good.replace("\"smdp\",", "\"satellite\","),
            "invalid source",
        ),
        (good.replace("8904", "8905"), "invalid device"),
        (
            format!("{}\n", good.replace("\"at\":", "\"zzz\":1,\"at\":")),
            "malformed",
        ),
        (
            good.replace("\"activation\":1,", "\"activation\":0,"),
            "invalid activation",
        ),
        (
            good.replace("\"activation\":1,", "\"activation\":-1,"),
            "malformed",
        ),
        (
            step.replace("es9plus.initiateAuthentication", "es9plus.hack"),
            "invalid function",
        ),
        (
            step.replace("\"status\":\"ok\"", "\"status\":\"8.x/1\""),
            "invalid status",
        ),
        (
            good.replace("\"carrier\":\"acme\"", "\"carrier\":\"\""),
            "dimension carrier",
        ),
        (
            step.replace("\"carrier\":\"acme\"", "\"wave\":0"),
            "invalid wave",
        ),
        ("x".repeat(70_000), "line length"),
        ("{\"at\":1}\n".to_owned(), "malformed"),
        ("\u{0}\u{ff}\n".to_owned(), "malformed"),
    ];
    for (input, expect) in cases {
        let err = match read_jsonl(input.as_bytes(), &dict) {
            Ok(_) => panic!("accepted: {expect}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    }
    let bad_utf8: &[u8] = b"{\"at\":\xff}\n";
    assert!(
        read_jsonl(bad_utf8, &dict)
            .unwrap_err()
            .to_string()
            .contains("encoding")
    );
}

#[test]
fn every_event_kind_round_trips() {
    let dict = Dictionary::new();
    let events = read_jsonl(SAMPLE.as_bytes(), &dict).unwrap();
    let kinds: std::collections::BTreeSet<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds.len(), 7, "the sample covers every kind: {kinds:?}");
    assert_eq!(events[0].device, test_eid(1));
}
