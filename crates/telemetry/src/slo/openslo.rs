//! OpenSLO v1 YAML in and out.
//!
//! Read: documents of kind `SLO` (with an inline `indicator` or an
//! `indicatorRef` to a `SLI` document of the same file) whose indicator is a
//! `ratioMetric` on a Prometheus `metricSource`, with `good` or `bad` and
//! `total`, one `objectives` target and one rolling `timeWindow`. `Service`
//! documents are accepted and ignored. Written: the same, one `SLO` document
//! per SLO with its indicator inline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Counted, Indicator, Slo, SloError};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: serde_norway::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SloSpec {
    #[serde(default)]
    description: String,
    service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    indicator: Option<SliDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    indicator_ref: Option<String>,
    time_window: Vec<TimeWindow>,
    budgeting_method: String,
    objectives: Vec<Objective>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SliDoc {
    metadata: Metadata,
    spec: SliSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SliSpec {
    ratio_metric: RatioMetric,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RatioMetric {
    counter: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    good: Option<MetricSourceHolder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bad: Option<MetricSourceHolder>,
    total: MetricSourceHolder,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricSourceHolder {
    metric_source: MetricSource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricSource {
    #[serde(rename = "type")]
    kind: String,
    spec: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeWindow {
    duration: String,
    is_rolling: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Objective {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    target: f64,
}

/// Parses every SLO of an OpenSLO v1 file (several `---` documents).
pub fn parse_openslo(yaml: &str) -> Result<Vec<Slo>, SloError> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(yaml) {
        let value = serde_norway::Value::deserialize(de)?;
        if value.is_null() {
            continue; // an empty document between two `---`
        }
        let doc: Document = serde_norway::from_value(value)?;
        if doc.api_version != "openslo/v1" {
            return Err(SloError::ApiVersion(doc.api_version));
        }
        docs.push(doc);
    }
    let mut slis: BTreeMap<String, SliSpec> = BTreeMap::new();
    for doc in docs.iter().filter(|d| d.kind == "SLI") {
        let spec: SliSpec = serde_norway::from_value(doc.spec.clone())?;
        slis.insert(doc.metadata.name.clone(), spec);
    }
    let mut out = Vec::new();
    for doc in &docs {
        match doc.kind.as_str() {
            "SLI" | "Service" => continue,
            "SLO" => {}
            other => return Err(SloError::Kind(other.to_owned())),
        }
        let name = doc.metadata.name.clone();
        let invalid = |problem: &str| SloError::Invalid {
            slo: name.clone(),
            problem: problem.to_owned(),
        };
        let spec: SloSpec = serde_norway::from_value(doc.spec.clone())?;
        let (sli_name, sli) = match (&spec.indicator, &spec.indicator_ref) {
            (Some(inline), None) => (inline.metadata.name.clone(), inline.spec.clone()),
            (None, Some(r)) => (
                r.clone(),
                slis.get(r)
                    .cloned()
                    .ok_or_else(|| invalid("indicatorRef names no SLI of this file"))?,
            ),
            _ => return Err(invalid("exactly one of indicator and indicatorRef")),
        };
        if spec.budgeting_method != "Occurrences" {
            return Err(invalid("only budgetingMethod Occurrences is supported"));
        }
        let [objective] = spec.objectives.as_slice() else {
            return Err(invalid("exactly one objective"));
        };
        let [window] = spec.time_window.as_slice() else {
            return Err(invalid("exactly one timeWindow"));
        };
        if !window.is_rolling {
            return Err(invalid("only rolling time windows are supported"));
        }
        let window_days = window
            .duration
            .strip_suffix('d')
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| invalid("timeWindow duration must be whole days, like 30d"))?;
        let ratio = &sli.ratio_metric;
        if !ratio.counter {
            return Err(invalid(
                "ratioMetric.counter must be true (rates of counters)",
            ));
        }
        let query = |h: &MetricSourceHolder| -> Result<String, SloError> {
            if h.metric_source.kind != "Prometheus" {
                return Err(invalid("metricSource type must be Prometheus"));
            }
            h.metric_source
                .spec
                .get("query")
                .cloned()
                .ok_or_else(|| invalid("metricSource spec needs a query"))
        };
        let counted = match (&ratio.good, &ratio.bad) {
            (Some(good), None) => Counted::Good(query(good)?),
            (None, Some(bad)) => Counted::Bad(query(bad)?),
            _ => return Err(invalid("ratioMetric needs exactly one of good and bad")),
        };
        let slo = Slo {
            name: name.clone(),
            service: spec.service.clone(),
            description: spec.description.clone(),
            objective: objective.target,
            window_days,
            indicator: Indicator {
                name: sli_name,
                counted,
                total: query(&ratio.total)?,
            },
        };
        slo.check()?;
        out.push(slo);
    }
    if out.is_empty() {
        return Err(SloError::Empty);
    }
    Ok(out)
}

/// Writes SLOs as OpenSLO v1 YAML (one `SLO` document each, indicator inline).
pub fn export_openslo(slos: &[Slo]) -> Result<String, SloError> {
    let mut out = String::new();
    for slo in slos {
        let holder = |q: &str| MetricSourceHolder {
            metric_source: MetricSource {
                kind: "Prometheus".to_owned(),
                spec: BTreeMap::from([("query".to_owned(), q.to_owned())]),
            },
        };
        let (good, bad) = match &slo.indicator.counted {
            Counted::Good(q) => (Some(holder(q)), None),
            Counted::Bad(q) => (None, Some(holder(q))),
        };
        let spec = SloSpec {
            description: slo.description.clone(),
            service: slo.service.clone(),
            indicator: Some(SliDoc {
                metadata: Metadata {
                    name: slo.indicator.name.clone(),
                    display_name: None,
                },
                spec: SliSpec {
                    ratio_metric: RatioMetric {
                        counter: true,
                        good,
                        bad,
                        total: holder(&slo.indicator.total),
                    },
                },
            }),
            indicator_ref: None,
            time_window: vec![TimeWindow {
                duration: format!("{}d", slo.window_days),
                is_rolling: true,
            }],
            budgeting_method: "Occurrences".to_owned(),
            objectives: vec![Objective {
                display_name: None,
                target: slo.objective,
            }],
        };
        let doc = Document {
            api_version: "openslo/v1".to_owned(),
            kind: "SLO".to_owned(),
            metadata: Metadata {
                name: slo.name.clone(),
                display_name: None,
            },
            spec: serde_norway::to_value(spec)?,
        };
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&doc)?);
    }
    Ok(out)
}
