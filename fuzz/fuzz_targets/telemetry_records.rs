//! Telemetry event records (JSON lines, as devices and drivers report them)
//! and OpenSLO files: any input gives events or a typed error, and events
//! that decode write back to records that decode to the same events.
#![no_main]

use ferrosim_telemetry::slo::parse_openslo;
use ferrosim_telemetry::{Dictionary, EventRecord, read_jsonl, write_jsonl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dict = Dictionary::new();
    if let Ok(events) = read_jsonl(data, &dict) {
        let mut out = Vec::new();
        write_jsonl(&mut out, &events, &dict).expect("writing to memory");
        let again = read_jsonl(out.as_slice(), &dict).expect("written records decode");
        assert_eq!(events, again);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = EventRecord::parse_event(text, &dict);
        let _ = parse_openslo(text);
    }
});
