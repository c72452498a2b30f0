//! Presentation step: the Nagios status line, perfdata and long output, from a [`Report`].
//!
//! Perfdata is built only here, from [`MetricResult`], so every metric has its unit, its
//! thresholds in its own unit, and min/max the same way.

use std::fmt::Write as _;

use crate::check::{MetricResult, Report};
use crate::thresholds::{format_number, format_plain, human_bytes, MetricName, Range, Unit};

/// At most this many per-worker lines with -v; the rest are counted.
const MAX_WORKER_LINES: usize = 20;

/// The whole text a run prints: status line with perfdata, then notes, then (with -v) one line
/// per worker.
pub fn render(report: &Report, verbosity: u8) -> String {
    let mut out = format!(
        "WORKERS {} - {}: {} | {}\n",
        report.state,
        report.label,
        summary(report),
        perfdata(&report.results)
    );
    for note in &report.notes {
        let _ = writeln!(out, "{note}");
    }
    if verbosity > 0 {
        let workers = &report.figures.per_worker;
        for w in workers.iter().take(MAX_WORKER_LINES) {
            let user = report
                .user_names
                .get(&w.uid)
                .cloned()
                .unwrap_or_else(|| w.uid.to_string());
            let cpu = w
                .cpu
                .map(|c| format!("{c:.1}%"))
                .unwrap_or_else(|| "n/a".to_string());
            let pss = w
                .pss
                .map(|p| format!(" pss {}", human_bytes(p as f64)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "pid {} {user} {} cpu {cpu} rss {}{pss} vms {} age {}",
                w.pid,
                w.state,
                human_bytes(w.rss as f64),
                human_bytes(w.vms as f64),
                age(w.age)
            );
        }
        if workers.len() > MAX_WORKER_LINES {
            let _ = writeln!(
                out,
                "... and {} more workers",
                workers.len() - MAX_WORKER_LINES
            );
        }
    }
    out
}

/// `4 workers (master 812), cpu 12.3%, rss 4.1 MiB avg, vms 120.5 MiB avg`, with the reason next
/// to each figure that is not OK, then any other metric that is not OK.
fn summary(report: &Report) -> String {
    let mut parts = Vec::new();
    let workers = report.figures.workers;
    let mut first = format!(
        "{workers} worker{}{}",
        if workers == 1 { "" } else { "s" },
        problem(report.result(MetricName::Workers))
    );
    if !report.masters.is_empty() {
        let shown: Vec<String> = report
            .masters
            .iter()
            .take(5)
            .map(|p| p.to_string())
            .collect();
        let more = report.masters.len().saturating_sub(5);
        let _ = write!(
            first,
            " (master{} {}{}{})",
            if report.masters.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if more > 0 {
                format!(" +{more}")
            } else {
                String::new()
            },
            if report.include_master {
                " included"
            } else {
                ""
            }
        );
    }
    if let Some(problem) = &report.problem {
        let _ = write!(first, " ({problem})");
    }
    parts.push(first);
    match report.result(MetricName::Cpu) {
        Some(cpu) => parts.push(format!("cpu {:.1}%{}", cpu.value, problem(Some(cpu)))),
        None => parts.push("cpu n/a".to_string()),
    }
    for (name, word) in [(MetricName::Rss, "rss"), (MetricName::Vms, "vms")] {
        if let Some(r) = report.result(name) {
            parts.push(format!(
                "{word} {} avg{}",
                human_bytes(r.value),
                problem(Some(r))
            ));
        }
    }
    let core = [
        MetricName::Workers,
        MetricName::Cpu,
        MetricName::Rss,
        MetricName::Vms,
    ];
    for r in &report.results {
        if !core.contains(&r.name) && r.verdict.range.is_some() {
            let unit = r.name.unit();
            parts.push(format!(
                "{} {}{}",
                r.name.label(),
                value_text(r.value, unit),
                problem(Some(r))
            ));
        }
    }
    parts.join(", ")
}

/// ` > 95` after a figure whose range alerted, nothing otherwise.
fn problem(result: Option<&MetricResult>) -> String {
    match result.and_then(|r| r.verdict.range.map(|range| (r, range))) {
        Some((r, range)) => format!(" {}", range.violation(r.value, r.name.unit())),
        None => String::new(),
    }
}

fn value_text(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Percent => format!("{value:.1}%"),
        Unit::Count | Unit::Bytes | Unit::Seconds => format_number(value, unit),
    }
}

/// `label=value[UOM];[warn];[crit];[min];[max]` for each metric, as the plugin guidelines
/// define it; numbers in the metric's base unit.
pub fn perfdata(results: &[MetricResult]) -> String {
    results
        .iter()
        .map(|r| {
            let uom = match r.name.unit() {
                Unit::Count => "",
                Unit::Percent => "%",
                Unit::Bytes => "B",
                Unit::Seconds => "s",
            };
            let range = |range: Option<Range>| range.map(|r| r.perfdata()).unwrap_or_default();
            format!(
                "{}={}{uom};{};{};0;{}",
                r.name.label(),
                format_plain(r.value),
                range(r.pair.warning),
                range(r.pair.critical),
                r.max.map(format_plain).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `45s`, `12m05s`, `2h03m`, `3d04h`: how long a worker has lived, at a glance.
fn age(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(0.4), "0s");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(725.0), "12m05s");
        assert_eq!(age(7380.0), "2h03m");
        assert_eq!(age(273_600.0), "3d04h");
    }
}
