//! The report's SVG charts (plotters): devices without service, carrier
//! load, switches over time, registration failures by cause, and the
//! failover completion distribution.

use plotters::prelude::*;

use crate::error::SimError;
use crate::report::Collected;

fn err<E: std::fmt::Debug>(e: E) -> SimError {
    SimError::Report(format!("chart: {e:?}"))
}

/// Every chart, as SVG text.
pub fn all(c: &Collected) -> Result<Vec<String>, SimError> {
    let minutes: Vec<f64> = c
        .buckets
        .iter()
        .map(|b| b.start as f64 / 60_000.0)
        .collect();
    let mut charts = Vec::new();
    charts.push(lines(
        "Devices without service",
        &minutes,
        &[(
            "without service".to_owned(),
            c.buckets.iter().map(|b| b.without_service as f64).collect(),
        )],
    )?);
    let attached: Vec<(String, Vec<f64>)> = c
        .carriers
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                format!("attached to {name}"),
                c.buckets
                    .iter()
                    .map(|b| b.attached.get(i).copied().unwrap_or(0) as f64)
                    .collect(),
            )
        })
        .collect();
    charts.push(lines(
        "Carrier load (devices attached)",
        &minutes,
        &attached,
    )?);
    charts.push(lines(
        "Switches per bucket",
        &minutes,
        &[
            (
                "failovers decided".to_owned(),
                c.buckets.iter().map(|b| b.failovers as f64).collect(),
            ),
            (
                "failovers completed".to_owned(),
                c.buckets.iter().map(|b| b.failovers_done as f64).collect(),
            ),
            (
                "returns decided".to_owned(),
                c.buckets.iter().map(|b| b.returns as f64).collect(),
            ),
            (
                "returns completed".to_owned(),
                c.buckets.iter().map(|b| b.returns_done as f64).collect(),
            ),
        ],
    )?);
    let mut failures = vec![
        (
            "no response (outage)".to_owned(),
            c.buckets.iter().map(|b| b.no_response as f64).collect(),
        ),
        (
            "rejected (congestion)".to_owned(),
            c.buckets.iter().map(|b| b.rejected as f64).collect(),
        ),
    ];
    for (i, name) in c.carriers.iter().enumerate() {
        failures.push((
            format!("refused by {name}'s attach limit"),
            c.buckets
                .iter()
                .map(|b| b.congestion_refusals.get(i).copied().unwrap_or(0) as f64)
                .collect(),
        ));
    }
    charts.push(lines(
        "Registration failures by cause",
        &minutes,
        &failures,
    )?);
    charts.push(histogram(
        "Failover completion time (decision to registration on the fallback)",
        &c.failover_completion_ms,
    )?);
    charts.push(histogram(
        "Return completion time",
        &c.return_completion_ms,
    )?);
    Ok(charts)
}

fn lines(title: &str, x: &[f64], series: &[(String, Vec<f64>)]) -> Result<String, SimError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let x_max = x.last().copied().unwrap_or(1.0).max(1.0);
        let y_max = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("simulated minutes")
            .x_labels(10)
            .y_labels(6)
            .draw()
            .map_err(err)?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    x.iter().copied().zip(values.iter().copied()),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Counts per bin of the completion times (seconds).
fn histogram(title: &str, sample_ms: &[i64]) -> Result<String, SimError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max_s = sample_ms.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
        let bins = 40usize;
        let width = (max_s / bins as f64).max(1.0);
        let mut counts = vec![0u64; bins + 1];
        for &ms in sample_ms {
            let b = ((ms.max(0) as f64 / 1000.0) / width) as usize;
            counts[b.min(bins)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title}, n = {}", sample_ms.len()),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..(width * (bins + 1) as f64), 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                Rectangle::new(
                    [(i as f64 * width, 0.0), ((i + 1) as f64 * width, n as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
