//! Presentation step, as JSON: the same [`Outcome`] the Nagios lines come from, as one object
//! a program can parse (`--format json`, schema in docs/json.md). Every way out has one, a usage
//! error and a timeout included, so a consumer never meets a plugin line.

use serde_json::{json, Map, Value};

use crate::catalog::Unit;
use crate::listen::ListenSocket;
use crate::metrics::WorkerFigures;
use crate::report::MetricResult;
use crate::thresholds::Range;

use super::{note_lines, Check, Outcome};

/// The JSON object of `outcome`, taken at local time `time` (ISO 8601), on one line.
pub(super) fn render(outcome: &Outcome, time: &str) -> String {
    let object = match outcome {
        Outcome::Check(check) => check_object(check, time),
        Outcome::Verbatim(text) => json!({
            "time": time,
            "label": null,
            "state": "UNKNOWN",
            "exit_code": outcome.exit_code(),
            "summary": text,
            "metrics": {},
            "notes": [],
        }),
    };
    format!("{object}\n")
}

fn check_object(check: &Check, time: &str) -> Value {
    let mut object = json!({
        "time": time,
        "label": check.label,
        "state": check.state.to_string(),
        "exit_code": check.state.exit_code(),
        "summary": check.summary,
        "metrics": metrics(&check.perfdata),
        "notes": note_lines(&check.notes, check.verbosity),
    });
    if check.verbosity > 0 {
        object["workers"] = check.workers.iter().map(worker).collect();
        object["sockets"] = check.sockets.iter().map(socket).collect();
    }
    object
}

/// The measured metrics by perfdata label: the value in the base unit, its UOM, the ranges as
/// given, and the perfdata bounds (null where there is none).
fn metrics(results: &[MetricResult]) -> Map<String, Value> {
    results
        .iter()
        .map(|r| {
            let range = |range: Option<Range>| range.map(|r| r.perfdata());
            let fields = json!({
                "value": r.value,
                "uom": uom(r.name.unit()),
                "warn": range(r.pair.warning),
                "crit": range(r.pair.critical),
                "min": r.name.min().value(),
                "max": r.max,
            });
            (r.name.label().to_string(), fields)
        })
        .collect()
}

/// The perfdata UOM, or `bytes/h` for a growth (perfdata knows no rate; JSON can say it).
fn uom(unit: Unit) -> &'static str {
    match unit {
        Unit::BytesPerHour => "B/h",
        other => other.uom(),
    }
}

/// One listening socket, as its `-v` line shows it: where it listens (as `ss` writes it,
/// unix names escaped), its queue and its limit.
fn socket(s: &ListenSocket) -> Value {
    json!({
        "listen": s.local.to_string(),
        "queue": s.queue,
        "limit": s.limit,
    })
}

/// One worker's figures, as its `-v` line shows them, in base units.
fn worker((w, user): &(WorkerFigures, String)) -> Value {
    json!({
        "pid": w.pid,
        "comm": w.comm,
        "user": user,
        "state": w.state.to_string(),
        "cpu": w.cpu,
        "rss": w.rss,
        "pss": w.pss,
        "vms": w.vms,
        "age": w.age.floor(),
        "io_read": w.io.map(|io| io.read),
        "io_write": w.io.map(|io| io.write),
    })
}
