//! The OpenAPI document `ferrosim serve` publishes at `/openapi.json` (the
//! eIM's and the fleet's REST APIs) validates as OpenAPI 3.1 with an
//! independent validator: `openapi-spec-validator` (Python), run on the
//! document as served.
//!
//! The validator is a Python package (`cargo xtask test` installs it when
//! missing); without it the test fails saying so, unless
//! `FERROSIM_SKIP_OPENAPI_VALIDATOR=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

fn validator_present() -> bool {
    Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_served_openapi_document_validates_as_openapi_3_1() {
    if !validator_present() {
        if std::env::var("FERROSIM_SKIP_OPENAPI_VALIDATOR").as_deref() == Ok("1") {
            eprintln!("SKIP: openapi-spec-validator not found (FERROSIM_SKIP_OPENAPI_VALIDATOR=1)");
            return;
        }
        panic!(
            "`python3 -m openapi_spec_validator` not available: `python3 -m pip install \
             openapi-spec-validator` (or `cargo xtask deps`), or set \
             FERROSIM_SKIP_OPENAPI_VALIDATOR=1"
        );
    }
    let doc = ferrosim_server::api::openapi().to_json().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert!(
        parsed["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        parsed["openapi"]
    );
    // The fleet's and the eIM's operations are in it.
    for path in [
        "/api/v1/fleet/devices",
        "/api/v1/fleet/reports",
        "/api/v1/fleet/rollouts/{id}/{command}",
        "/api/v1/eim/devices/{eid}/queue",
    ] {
        assert!(parsed["paths"][path].is_object(), "{path} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &doc).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the document does not validate:\n{text}"
    );
    assert!(text.contains("OK"), "{text}");

    // And the validator does refuse a broken document (it is really run).
    let mut broken = parsed;
    broken["paths"]["/api/v1/fleet/devices"]["get"]["responses"] = serde_json::json!("none");
    std::fs::write(&file, broken.to_string()).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken document passed");
}
