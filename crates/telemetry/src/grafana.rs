//! The Grafana dashboard of ferrosim (`deploy/grafana/ferrosim.json`),
//! generated so that every query names only families of [`crate::prom`] and
//! records of [`crate::slo`] (a test checks it).

use serde_json::{Value, json};

/// One panel: title, Grafana type, unit, PromQL targets (expr, legend).
struct Panel {
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    targets: &'static [(&'static str, &'static str)],
}

/// The dashboard's panels, in order (also what the test expects).
pub const PANEL_TITLES: [&str; 17] = [
    "Activation success within 60 s (1 h)",
    "Error budget left (30 d)",
    "SLO burn rate (5 min)",
    "Firing SLO alerts",
    "Activation time (p50, p95)",
    "Activations by outcome",
    "Function latency p99",
    "Function failures by status code",
    "Bytes per active profile (1 d)",
    "Registration success rate",
    "Handover failures",
    "Data-path latency p95",
    "eIM queue depth",
    "Failovers",
    "Rollout waves and gate results",
    "Callback outbox backlog",
    "SLO error ratio by window",
];

fn panels() -> Vec<Panel> {
    let p = |title, kind, unit, targets| Panel {
        title,
        kind,
        unit,
        targets,
    };
    vec![
        p(
            PANEL_TITLES[0],
            "stat",
            "percentunit",
            &[(
                "1 - max(slo:sli_error:ratio_rate1h{sloth_slo=\"activation-success-60s\"})",
                "success",
            )],
        ),
        p(
            PANEL_TITLES[1],
            "gauge",
            "percentunit",
            &[("slo:period_error_budget_remaining:ratio", "{{sloth_slo}}")],
        ),
        p(
            PANEL_TITLES[2],
            "timeseries",
            "none",
            &[("slo:current_burn_rate:ratio", "{{sloth_slo}}")],
        ),
        p(
            PANEL_TITLES[3],
            "table",
            "none",
            &[(
                "ALERTS{alertstate=\"firing\", sloth_severity!=\"\"}",
                "{{alertname}}",
            )],
        ),
        p(
            PANEL_TITLES[4],
            "timeseries",
            "s",
            &[
                (
                    "histogram_quantile(0.5, sum by (le) (rate(ferrosim_activation_duration_seconds_bucket[5m])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.95, sum by (le) (rate(ferrosim_activation_duration_seconds_bucket[5m])))",
                    "p95",
                ),
            ],
        ),
        p(
            PANEL_TITLES[5],
            "timeseries",
            "ops",
            &[(
                "sum by (outcome, carrier) (rate(ferrosim_activations_total[5m]))",
                "{{carrier}} {{outcome}}",
            )],
        ),
        p(
            PANEL_TITLES[6],
            "timeseries",
            "s",
            &[(
                "histogram_quantile(0.99, sum by (le, interface, function) (rate(ferrosim_function_duration_seconds_bucket[5m])))",
                "{{interface}}.{{function}}",
            )],
        ),
        p(
            PANEL_TITLES[7],
            "timeseries",
            "ops",
            &[(
                "sum by (interface, function, status) (rate(ferrosim_function_calls_total{status!=\"ok\"}[5m]))",
                "{{interface}}.{{function}} {{status}}",
            )],
        ),
        p(
            PANEL_TITLES[8],
            "stat",
            "bytes",
            &[(
                "sum(increase(ferrosim_ota_bytes_total[1d])) / sum(ferrosim_profiles_active)",
                "bytes",
            )],
        ),
        p(
            PANEL_TITLES[9],
            "timeseries",
            "percentunit",
            &[(
                "sum by (carrier) (rate(ferrosim_registrations_total{result=\"registered\"}[5m])) / sum by (carrier) (rate(ferrosim_registrations_total[5m]))",
                "{{carrier}}",
            )],
        ),
        p(
            PANEL_TITLES[10],
            "timeseries",
            "ops",
            &[(
                "sum by (carrier) (rate(ferrosim_handover_failures_total[5m]))",
                "{{carrier}}",
            )],
        ),
        p(
            PANEL_TITLES[11],
            "timeseries",
            "s",
            &[(
                "histogram_quantile(0.95, sum by (le, carrier) (rate(ferrosim_data_path_latency_seconds_bucket[5m])))",
                "{{carrier}}",
            )],
        ),
        p(
            PANEL_TITLES[12],
            "timeseries",
            "none",
            &[("ferrosim_eim_queue_depth", "queued")],
        ),
        p(
            PANEL_TITLES[13],
            "timeseries",
            "none",
            &[(
                "sum by (from_carrier, to_carrier) (increase(ferrosim_failovers_total[1h]))",
                "{{from_carrier}} -> {{to_carrier}}",
            )],
        ),
        p(
            PANEL_TITLES[14],
            "timeseries",
            "none",
            &[
                (
                    "sum by (outcome) (increase(ferrosim_rollout_waves_total[1h]))",
                    "wave {{outcome}}",
                ),
                (
                    "sum by (result) (increase(ferrosim_rollout_gate_evaluations_total[1h]))",
                    "gate {{result}}",
                ),
                ("ferrosim_rollouts_active", "active rollouts"),
            ],
        ),
        p(
            PANEL_TITLES[15],
            "timeseries",
            "none",
            &[("ferrosim_callback_outbox_backlog", "waiting")],
        ),
        p(
            PANEL_TITLES[16],
            "timeseries",
            "percentunit",
            &[
                ("slo:sli_error:ratio_rate5m", "{{sloth_slo}} 5m"),
                ("slo:sli_error:ratio_rate1h", "{{sloth_slo}} 1h"),
                ("slo:sli_error:ratio_rate6h", "{{sloth_slo}} 6h"),
                ("slo:sli_error:ratio_rate3d", "{{sloth_slo}} 3d"),
            ],
        ),
    ]
}

/// The dashboard as Grafana JSON (a `${DS_PROMETHEUS}` data source input).
pub fn dashboard() -> Value {
    let panels: Vec<Value> = panels()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (w, h) = if p.kind == "stat" || p.kind == "gauge" {
                (6, 6)
            } else {
                (12, 8)
            };
            json!({
                "id": i + 1,
                "title": p.title,
                "type": p.kind,
                "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                "gridPos": {"x": (i % 2) * 12, "y": (i / 2) * 8, "w": w, "h": h},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "targets": p.targets.iter().enumerate().map(|(j, (expr, legend))| json!({
                    "refId": char::from(b'A' + j as u8).to_string(),
                    "expr": expr,
                    "legendFormat": legend,
                    "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "__inputs": [{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "title": "ferrosim: activations, SLOs and fleet",
        "uid": "ferrosim-overview",
        "tags": ["ferrosim", "esim", "slo"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    })
}

/// The dashboard as pretty-printed JSON text with a final newline.
pub fn dashboard_json() -> String {
    let mut s = serde_json::to_string_pretty(&dashboard()).unwrap_or_default();
    s.push('\n');
    s
}
