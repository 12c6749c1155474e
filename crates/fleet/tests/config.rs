//! Fleet configuration: the example parses into the expected catalog; bad
//! configurations are refused with an error naming the item and field.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_fleet::config::{FleetConfig, ProfileRef, SwitchMethod};
use ferrosim_fleet::{Catalog, ConfigError};
use ferrosim_telemetry::Dictionary;

const EXAMPLE: &str = include_str!("../testdata/fleet.toml");

fn load(text: &str) -> Result<Catalog, ConfigError> {
    Catalog::from_toml(text, Dictionary::new())
}

#[test]
fn the_example_builds_the_expected_catalog() {
    let cat = load(EXAMPLE).unwrap();
    assert_eq!(cat.carriers.len(), 3);
    let a = cat.carrier_id("carrier-a").unwrap();
    let b = cat.carrier_id("carrier-b").unwrap();
    let c = cat.carrier_id("carrier-c").unwrap();
    assert_eq!(cat.carrier(a).fallbacks, vec![b, c]);
    assert_eq!(cat.carrier(a).networks[0].to_string(), "310-410");
    assert_eq!(cat.carrier(a).networks[1].to_string(), "310-150");
    assert_eq!(cat.carrier(b).networks[0].to_string(), "234-15");
    assert_eq!(cat.smdps.len(), 3);
    assert_eq!(
        cat.smdps[cat.carrier(a).smdp.index()].downloads_per_minute,
        6000
    );
    assert!(cat.carrier(c).smdp_is_ferrosim);
    let v2 = cat
        .profile_type_id(&ProfileRef {
            carrier: "carrier-a".into(),
            profile_type: "iot".into(),
            version: 2,
        })
        .unwrap();
    assert_eq!(
        cat.apns[cat.profile_type(v2).apn.index()].settings.apn,
        "iot.carrier-a.exmaple"
    );
    assert_eq!(cat.profile_label(v2), "carrier-a/iot@2");
    let g = cat.group(cat.group_id("meters").unwrap());
    assert_eq!(cat.carrier_of(g.primary), a);
    assert_eq!(g.fallback.map(|f| cat.carrier_of(f)), Some(b));
    assert_eq!(cat.group(cat.group_id("unstaged").unwrap()).fallback, None);
    let rule = cat.rule(g.rule);
    assert_eq!(rule.method, SwitchMethod::EimEnableWithRollback);
    assert_eq!(rule.fraction_ppm, 100_000);
    assert_eq!(rule.switches_per_minute(1000), 100);
    assert_eq!(rule.switches_per_minute(1), 1);
    assert_eq!(cat.tag_bit("meter"), Some(1));
    assert!(cat.dictionary().get("carrier-a").is_some());
    // A configuration survives a round trip through TOML.
    let again = FleetConfig::from_toml(&cat.config().to_toml().unwrap()).unwrap();
    assert_eq!(&again, cat.config());
}

fn broken(from: &str, to: &str) -> ConfigError {
    assert!(EXAMPLE.contains(from), "fixture lacks {from:?}");
    load(&EXAMPLE.replacen(from, to, 1)).unwrap_err()
}

#[test]
fn bad_configurations_are_refused_with_clear_errors() {
    let cases: Vec<(ConfigError, &str)> = vec![
        (
            broken(
                "mcc_mnc = [\"310-410\", \"310150\"]",
                "mcc_mnc = [\"31-0410\"]",
            ),
            "mcc_mnc",
        ),
        (
            broken("mcc_mnc = [\"310-410\", \"310150\"]", "mcc_mnc = []"),
            "mcc_mnc",
        ),
        (
            broken(
                "smdp_address = \"smdp.carrier-a.example\"",
                "smdp_address = \"https://x/\"",
            ),
            "smdp_address",
        ),
        (
            broken(
                "smdp_address = \"smdp.carrier-b.example:8443\"",
                "smdp_address = \"b.example:0\"",
            ),
            "smdp_address",
        ),
        (
            broken(
                "es2_credentials = \"vault:carrier-a/es2\"",
                "es2_credentials = \" \"",
            ),
            "es2_credentials",
        ),
        (
            broken(
                "fallback_carriers = [\"carrier-b\", \"carrier-c\"]",
                "fallback_carriers = [\"carrier-x\"]",
            ),
            "carrier-x",
        ),
        (
            broken(
                "fallback_carriers = [\"carrier-b\", \"carrier-c\"]",
                "fallback_carriers = [\"carrier-a\"]",
            ),
            "itself",
        ),
        (
            broken("apn = \"iot.carrier-a.example\"", "apn = \"bad apn!\""),
            "access point name",
        ),
        (
            broken("apn = \"iot.carrier-a.example\"", "apn = \"x.gprs\""),
            ".gprs",
        ),
        (
            broken("name = \"iot-typo\"", "name = \"iot\""),
            "duplicate apn",
        ),
        (
            broken(
                "version = 3\napn = \"iot-v2\"",
                "version = 3\napn = \"nope\"",
            ),
            "unknown apn",
        ),
        (
            broken("version = 3", "version = 2"),
            "duplicate profile type",
        ),
        (
            broken("rule = \"default\"", "rule = \"nope\""),
            "unknown rule",
        ),
        (
            broken(
                "fallback = { carrier = \"carrier-b\", profile_type = \"fallback\" }",
                "fallback = { carrier = \"carrier-b\", profile_type = \"x\" }",
            ),
            "unknown profile type",
        ),
        (
            broken("count = 3, window = \"5m\"", "count = 0, window = \"5m\""),
            "registration_failures",
        ),
        (
            broken("window = \"5m\" }\nno_data", "window = \"5\" }\nno_data"),
            "unit",
        ),
        (
            broken("max_switches_per_hour = 4", "max_switches_per_hour = 9"),
            "max_switches_per_hour",
        ),
        (
            broken(
                "max_fraction_per_minute = 0.1",
                "max_fraction_per_minute = 1.5",
            ),
            "max_fraction_per_minute",
        ),
        (
            broken("recover_rate = 0.1", "recover_rate = 0.6"),
            "hysteresis",
        ),
        (broken("min_samples = 20", "min_samples = 0"), "min_samples"),
        (
            broken("retry_max = \"5m\"", "retry_max = \"1s\""),
            "retry_base",
        ),
        (
            broken(
                "method = \"eim_enable_with_rollback\"",
                "method = \"teleport\"",
            ),
            "syntax",
        ),
        (
            broken("jitter = \"20s\"", "jitter = \"20s\"\nsurprise = 1"),
            "unknown field",
        ),
        (
            broken(
                "tags = [\"street-light\", \"meter\"]",
                "tags = [\"a\", \"a\"]",
            ),
            "duplicate tag",
        ),
        (broken("name = \"meters\"", "name = \"\""), "name"),
    ];
    for (err, needle) in cases {
        let text = err.to_string();
        assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    }
    // A fallback on a carrier that is not pre-authorised for the primary.
    let text = EXAMPLE.replacen(
        "fallback_carriers = [\"carrier-b\", \"carrier-c\"]",
        "fallback_carriers = [\"carrier-c\"]",
        1,
    );
    let err = load(&text).unwrap_err().to_string();
    assert!(err.contains("not a pre-authorised fallback"), "{err}");
    let many_tags: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
    let text = EXAMPLE.replacen(
        "tags = [\"street-light\", \"meter\"]",
        &format!("tags = [{}]", many_tags.join(",")),
        1,
    );
    assert!(matches!(
        load(&text),
        Err(ConfigError::TooMany { kind: "tag", .. })
    ));
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        "[[carrier]]",
        "carrier = 5",
        "\u{0}\u{1}",
        "[[group]]\nname=1",
        "[reconciler]\nretry_base = \"-1s\"",
        "[[rule]]\nname = \"r\"\non_carrier_outage = false",
        "tags = [\"\\n\"]",
    ];
    for s in samples {
        let _ = load(s);
    }
    for cut in (0..EXAMPLE.len()).step_by(97) {
        if EXAMPLE.is_char_boundary(cut) {
            let _ = load(&EXAMPLE[..cut]);
        }
    }
    let err = load("[[rule]]\nname = \"r\"\non_carrier_outage = false")
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one trigger"), "{err}");
}
