//! `ferrosim eim sanitize | sanitize-report | release`: sanitized
//! reprovisioning of a device leaving the fleet or changing hands, through
//! the eIM (the same operations as `POST/GET /api/v1/eim/devices/{eid}/sanitize`
//! and `POST .../release`). The report prints as text (or the API's JSON with
//! `--json`): what was wiped, what was kept, whether the eUICC's signatures
//! verified, and what to do next.

use std::fmt::Write as _;

use ferrosim_eim::Timestamp;
use ferrosim_server::api::eim::{SanitizeReportView, WipeOperationView};

fn time(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn operation(o: &WipeOperationView) -> String {
    let code = match (o.operation.as_str(), o.code) {
        ("list-profiles", _) => String::new(),
        (_, Some(0)) => " -> ok".to_owned(),
        (_, Some(c)) => format!(" -> refused (code {c})"),
        (_, None) => " -> no answer yet".to_owned(),
    };
    match &o.iccid {
        Some(i) => format!("{} {i}{code}", o.operation),
        None => format!("{}{code}", o.operation),
    }
}

/// The report as text for an operator.
pub fn report_text(r: &SanitizeReportView) -> String {
    let mut t = String::new();
    let sig = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
    let _ = writeln!(t, "Sanitization of EID {}: {}", r.eid, r.verdict);
    let _ = writeln!(
        t,
        "  ordered {}; provisioning profiles {}",
        time(r.started_at_ms),
        if r.keep_provisioning_profiles {
            "kept"
        } else {
            "deleted"
        }
    );
    let _ = writeln!(
        t,
        "  eUICC signatures: wipe {}, eIM list {}, release {}",
        sig(&r.signatures.wipe),
        sig(&r.signatures.eim_list),
        sig(&r.signatures.release)
    );
    let w = &r.wiped;
    let _ = writeln!(t, "Wiped:");
    let _ = writeln!(t, "  profiles deleted: {}", list(&w.profiles_deleted));
    let _ = writeln!(
        t,
        "  profiles disabled first: {}",
        list(&w.profiles_disabled)
    );
    let _ = writeln!(
        t,
        "  fallback attribute unset: {}",
        if w.fallback_unset { "yes" } else { "no" }
    );
    let _ = writeln!(
        t,
        "  this eIM's configuration in the eUICC: {}",
        w.eim_configuration
            .as_deref()
            .unwrap_or("kept (not released)")
    );
    let withdrawn: Vec<String> = w.queue_items_withdrawn.iter().map(u64::to_string).collect();
    let _ = writeln!(
        t,
        "  undelivered queue items withdrawn: {}",
        list(&withdrawn)
    );
    let k = &r.kept;
    let _ = writeln!(t, "Kept:");
    let profiles = k.profiles.as_ref().map_or_else(
        || "not listed yet".to_owned(),
        |p| {
            list(
                &p.iter()
                    .map(|p| match p.class {
                        Some(c) => format!("{} (class {c})", p.iccid),
                        None => p.iccid.to_string(),
                    })
                    .collect::<Vec<_>>(),
            )
        },
    );
    let _ = writeln!(
        t,
        "  profiles the eUICC lists after the deletes: {profiles}"
    );
    let eims = k
        .other_eims
        .as_ref()
        .map_or_else(|| "not listed yet".to_owned(), |e| list(e));
    let _ = writeln!(t, "  other eIMs the eUICC knows: {eims}");
    for u in &k.untouched {
        let _ = writeln!(t, "  untouched: {u}");
    }
    let _ = writeln!(t, "Operations (item {}):", r.wipe_item);
    for o in &r.operations {
        let _ = writeln!(t, "  {}", operation(o));
    }
    for reason in &r.reasons {
        let _ = writeln!(t, "Not clean: {reason}");
    }
    let next = match r.verdict.as_str() {
        "awaiting-results" => "the device runs the packages at its next poll".to_owned(),
        "clean" => format!("`ferrosim eim release --eid {}`", r.eid),
        "not-clean" => format!(
            "`ferrosim eim sanitize --eid {}` again (it starts from what the eUICC listed)",
            r.eid
        ),
        "release-ordered" => "the device runs the deleteEim at its next poll".to_owned(),
        _ if r.reassociated_at_ms.is_some() => format!(
            "associated again at {}",
            time(r.reassociated_at_ms.unwrap_or_default())
        ),
        _ => format!(
            "the device can be associated again (`ferrosim eim associate --eid {}`) after its IPA installs an eIM (`ferrosim ipa add-initial-eim`)",
            r.eid
        ),
    };
    let _ = writeln!(t, "Next: {next}");
    t
}
