//! Presentation step: the Nagios status line, perfdata and long output, from an [`Outcome`]
//! (a run's [`Report`], or why there is none). Rendered once, in [`render`].
//!
//! Perfdata is built only here, from [`MetricResult`], so every metric has its unit, its
//! thresholds in its own unit, and min/max the same way.
//!
//! This is also the one place outside text is made safe: Nagios reads a `|` in any line as the
//! start of perfdata and a line break as the end of the status line, and process names, paths,
//! the operator's filters and OS errors all reach the status text, the notes and the per-worker
//! lines. Each of those is escaped here as a whole with [`text::shown`], so the only `|` printed
//! is the one before perfdata, whatever a caller forgot to escape.

mod json;
mod notes;

use std::fmt::Write as _;

use nagiosplugin::ServiceState;

use crate::catalog::{MetricName, Unit};
use crate::listen::ListenSocket;
use crate::metrics::{self, WorkerFigures};
use crate::note::Note;
use crate::report::{MetricResult, Report};
use crate::text;
use crate::thresholds::{format_number, format_plain, human_bytes, Range};

/// At most this many per-worker lines with -v; the rest are counted.
const MAX_WORKER_LINES: usize = 20;

/// What the plugin says, as structures, before any of it is text. Every way out builds one:
/// a run's report, `--help`, a usage error, an error, a timeout, a panic; [`render`] alone
/// turns it into what is printed, and [`Outcome::exit_code`] gives the code to exit with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// a check's result: a run's report, or why there is none (boxed: the error path of
    /// option parsing carries an Outcome, and should stay small)
    Check(Box<Check>),
    /// `--help` or `--version`: clap's text, printed as it is, exit 3 as the plugin
    /// guidelines ask
    Verbatim(String),
}

/// A check's result: its state, the summary of the status line, the perfdata items, the notes
/// and the long output (as monitoring-plugins' `mp_check` holds them).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub state: ServiceState,
    /// the selection's label (`nginx`), when the options got as far as naming one
    pub label: Option<String>,
    /// the status line after `WORKERS <STATE> - `: the label and the figures, or the reason
    /// a check failed
    pub summary: String,
    /// measured metrics, in perfdata order; none when the check failed (no `|` then)
    pub perfdata: Vec<MetricResult>,
    /// what the steps noted, of every level; those of `verbosity` are shown
    pub notes: Vec<Note>,
    /// long output after the notes: one line per worker
    pub long: Vec<String>,
    /// how many times `-v` was given
    pub verbosity: u8,
    /// with -v: each worker's figures and user name, busiest first (all of them: the long
    /// output's lines stop at 20)
    pub workers: Vec<(WorkerFigures, String)>,
    /// with -v: the listening sockets whose queues were measured
    pub sockets: Vec<ListenSocket>,
}

impl Outcome {
    /// The UNKNOWN result every failure ends in (usage errors, I/O errors, timeouts, panics):
    /// one line with no `|`, whatever the error says, and exit code 3. The reason quotes
    /// paths, options and OS messages; [`render`] escapes it with the rest of the line.
    pub fn unknown(why: &str) -> Outcome {
        Outcome::Check(Box::new(Check {
            state: ServiceState::Unknown,
            label: None,
            summary: why.to_string(),
            perfdata: Vec::new(),
            notes: Vec::new(),
            long: Vec::new(),
            verbosity: 0,
            workers: Vec::new(),
            sockets: Vec::new(),
        }))
    }

    /// A run's result: the status line's summary, perfdata, notes, and with -v one line per
    /// worker.
    pub fn report(report: Report, verbosity: u8) -> Outcome {
        let summary = format!("{}: {}", report.label, summary(&report));
        let mut long = worker_lines(&report, verbosity);
        let sockets = match verbosity {
            0 => Vec::new(),
            _ => metrics::queue_sockets(report.figures.queues.as_ref()).to_vec(),
        };
        long.extend(socket_lines(&sockets));
        let workers = match verbosity {
            0 => Vec::new(),
            _ => report
                .figures
                .per_worker
                .iter()
                .map(|w| (w.clone(), user_name(&report, w.uid)))
                .collect(),
        };
        Outcome::Check(Box::new(Check {
            state: report.state,
            label: Some(report.label),
            summary,
            perfdata: report.results,
            notes: report.notes,
            long,
            verbosity,
            workers,
            sockets,
        }))
    }

    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Check(check) => check.state.exit_code(),
            Outcome::Verbatim(_) => ServiceState::Unknown.exit_code(),
        }
    }
}

/// How the result is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// the status line with perfdata, then notes and long output (the plugin guidelines)
    #[default]
    Nagios,
    /// one JSON object (docs/json.md)
    Json,
}

/// What the plugin prints for `outcome` in `format`, at local time `time` (ISO 8601, which
/// only JSON shows).
pub fn render_as(outcome: &Outcome, format: Format, time: &str) -> String {
    match format {
        Format::Nagios => render(outcome),
        Format::Json => json::render(outcome, time),
    }
}

/// One sample of `--every`, taken at local time `time`: in Nagios form the time, then the
/// status line with its perfdata, so a log or `grep` of the watch has one line per sample; its
/// notes and long output follow from `-v` on. In JSON, the object, which holds the time and
/// the notes (one object per line: JSON Lines).
pub fn render_sample(outcome: &Outcome, format: Format, time: &str) -> String {
    match (format, outcome) {
        (Format::Json, _) => json::render(outcome, time),
        (Format::Nagios, Outcome::Check(check)) if check.verbosity == 0 => {
            let text = render(outcome);
            let status = text.lines().next().unwrap_or_default();
            format!("{time} {status}\n")
        }
        (Format::Nagios, _) => format!("{time} {}", render(outcome)),
    }
}

/// The whole text the plugin prints: the status line with its perfdata, then the notes of the
/// level asked for, then the long output; or `--help`'s text as it is.
pub fn render(outcome: &Outcome) -> String {
    let check = match outcome {
        Outcome::Check(check) => check,
        Outcome::Verbatim(text) => return text.clone(),
    };
    let status = format!("WORKERS {} - {}", check.state, check.summary);
    let mut out = text::shown(&status);
    if !check.perfdata.is_empty() {
        let _ = write!(out, " | {}", perfdata(&check.perfdata));
    }
    out.push('\n');
    for line in note_lines(&check.notes, check.verbosity)
        .into_iter()
        .chain(check.long.iter().cloned())
    {
        let _ = writeln!(out, "{}", text::shown(&line));
    }
    out
}

/// The notes shown at `-v` repeated `verbosity` times, worded, in their order (not yet
/// escaped: [`render`] escapes every line it prints).
pub fn note_lines(notes: &[Note], verbosity: u8) -> Vec<String> {
    notes
        .iter()
        .filter(|n| n.shown_at(verbosity))
        .map(notes::text)
        .collect()
}

/// With -v, one line per worker, busiest first, then how many more there are.
/// The name of `uid` for the long output, or the number when it has none.
fn user_name(report: &Report, uid: u32) -> String {
    report
        .user_names
        .get(&uid)
        .cloned()
        .unwrap_or_else(|| uid.to_string())
}

fn worker_lines(report: &Report, verbosity: u8) -> Vec<String> {
    let mut out = Vec::new();
    if verbosity > 0 {
        let workers = &report.figures.per_worker;
        for w in workers.iter().take(MAX_WORKER_LINES) {
            let user = user_name(report, w.uid);
            let cpu = w
                .cpu
                .map(|c| format!("{c:.1}%"))
                .unwrap_or_else(|| "n/a".to_string());
            let pss = w
                .pss
                .map(|p| format!(" pss {}", human_bytes(p as f64)))
                .unwrap_or_default();
            // left out where unknown, so a host without I/O figures prints what it always has
            let io =
                w.io.map(|io| {
                    format!(
                        " io r {}/s w {}/s",
                        human_bytes(io.read),
                        human_bytes(io.write)
                    )
                })
                .unwrap_or_default();
            out.push(format!(
                "pid {} ({}) {user} {} cpu {cpu} rss {}{pss} vms {} age {}{io}",
                w.pid,
                w.comm,
                w.state,
                human_bytes(w.rss as f64),
                human_bytes(w.vms as f64),
                age(w.age)
            ));
        }
        if workers.len() > MAX_WORKER_LINES {
            out.push(format!(
                "... and {} more workers",
                workers.len() - MAX_WORKER_LINES
            ));
        }
    }
    out
}

/// With -v, one line per listening socket measured: where it listens, its queue and limit.
fn socket_lines(sockets: &[ListenSocket]) -> Vec<String> {
    let mut out: Vec<String> = sockets
        .iter()
        .take(MAX_WORKER_LINES)
        .map(|s| format!("listen {} queue {}/{}", s.local, s.queue, s.limit))
        .collect();
    if sockets.len() > MAX_WORKER_LINES {
        let more = sockets.len() - MAX_WORKER_LINES;
        out.push(format!("... and {more} more listening sockets"));
    }
    out
}

/// `4 workers (master 812), cpu 12.3%, rss 4.1 MiB avg, vms 120.5 MiB avg`, with the reason next
/// to each figure that is not OK, then any other metric that is not OK.
fn summary(report: &Report) -> String {
    let mut parts = vec![workers_part(report)];
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
            let mut value = value_text(r.value, unit);
            // the queue against its room: `queue 20/64 > 10`
            if let (MetricName::Queue, Some(max)) = (r.name, report.result(MetricName::QueueMax)) {
                let _ = write!(value, "/{}", value_text(max.value, unit));
            }
            parts.push(format!("{} {value}{}", r.name.label(), problem(Some(r))));
        }
    }
    parts.join(", ")
}

/// `4 workers < 5 (masters 812, 900 included) (pidfile ... is missing)`: the count, its
/// masters and why the named master is missing.
fn workers_part(report: &Report) -> String {
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
    first
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
        Unit::Count | Unit::Bytes | Unit::BytesPerHour | Unit::Seconds => {
            format_number(value, unit)
        }
    }
}

/// `label=value[UOM];[warn];[crit];[min];[max]` for each metric, as the plugin guidelines
/// define it; numbers in the metric's base unit, min and max where the metric has them.
pub fn perfdata(results: &[MetricResult]) -> String {
    results
        .iter()
        .map(|r| {
            let range = |range: Option<Range>| range.map(|r| r.perfdata()).unwrap_or_default();
            let bound = |bound: Option<f64>| bound.map(format_plain).unwrap_or_default();
            format!(
                "{}={}{};{};{};{};{}",
                r.name.label(),
                format_plain(r.value),
                r.name.unit().uom(),
                range(r.pair.warning),
                range(r.pair.critical),
                bound(r.name.min().value()),
                bound(r.max)
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
    use crate::metrics::{Figures, WorkerFigures};
    use crate::thresholds::{Pair, Verdict};
    use std::collections::BTreeMap;

    /// A report whose every piece of outside text is given: the label, the problem, the notes
    /// (trace lines, the notes that print outside text as it is) and the per-worker user
    /// names.
    fn report(label: &str, problem: Option<&str>, notes: &[String], user: &str) -> Report {
        let alert = Range {
            start: 1.0,
            end: f64::INFINITY,
            inverted: false,
        };
        let per_worker = |pid| WorkerFigures {
            pid,
            comm: "ng|inx".to_string(),
            uid: 4242,
            cpu: Some(1.5),
            rss: 4096,
            vms: 8192,
            age: 61.0,
            state: 'S',
            pss: None,
            io: None,
        };
        Report {
            state: ServiceState::Critical,
            label: label.to_string(),
            figures: Figures {
                workers: 0,
                per_worker: vec![per_worker(10), per_worker(11)],
                ..Figures::default()
            },
            results: vec![MetricResult {
                name: MetricName::Workers,
                value: 0.0,
                max: None,
                pair: Pair {
                    warning: None,
                    critical: Some(alert),
                },
                verdict: Verdict {
                    state: ServiceState::Critical,
                    range: Some(alert),
                },
            }],
            masters: vec![812],
            include_master: false,
            problem: problem.map(str::to_string),
            notes: notes.iter().cloned().map(Note::Trace).collect(),
            user_names: BTreeMap::from([(4242, user.to_string())]),
        }
    }

    /// The text of `report` at `-v` given `verbosity` times.
    fn render_at(report: Report, verbosity: u8) -> String {
        render(&Outcome::report(report, verbosity))
    }

    /// Every failure is one escaped UNKNOWN line without perfdata, exit 3; help is verbatim.
    #[test]
    fn failures_and_help_render_as_before() {
        let timeout = Outcome::unknown("timed out after 10s");
        assert_eq!(render(&timeout), "WORKERS UNKNOWN - timed out after 10s\n");
        assert_eq!(timeout.exit_code(), 3);
        let help = Outcome::Verbatim("Usage: check_workers [OPTIONS]\n".into());
        assert_eq!(render(&help), "Usage: check_workers [OPTIONS]\n");
        assert_eq!(help.exit_code(), 3);
    }

    /// Nagios's reading of the output holds: line 1 is the status line and the only `|` in
    /// the whole output is the one before its perfdata.
    fn assert_one_pipe_on_line_1(out: &str) {
        assert!(out.starts_with("WORKERS "), "{out:?}");
        assert_eq!(out.matches('|').count(), 1, "{out:?}");
        assert!(out.lines().next().unwrap().contains(" | "), "{out:?}");
    }

    // Regression (issue 9.5): outside text split the status line and started perfdata early.
    #[test]
    fn outside_text_is_escaped_everywhere() {
        let notes = ["pid 7 x|y\nWORKERS OK - fake | a=1: candidate".to_string()];
        let out = render_at(
            report(
                "cmdline /sleep 300|sleep 200/",
                Some("pidfile /run/a|b\nWORKERS OK is missing"),
                &notes,
                "ev|il\n",
            ),
            3,
        );
        assert_eq!(
            out,
            "WORKERS CRITICAL - cmdline /sleep 300\\x7csleep 200/: 0 workers < 1 (master 812) \
             (pidfile /run/a\\x7cb\\x0aWORKERS OK is missing), cpu n/a | workers=0;;1:;0;\n\
             pid 7 x\\x7cy\\x0aWORKERS OK - fake \\x7c a=1: candidate\n\
             pid 10 (ng\\x7cinx) ev\\x7cil\\x0a S cpu 1.5% rss 4.0 KiB vms 8.0 KiB age 1m01s\n\
             pid 11 (ng\\x7cinx) ev\\x7cil\\x0a S cpu 1.5% rss 4.0 KiB vms 8.0 KiB age 1m01s\n"
        );
        assert_one_pipe_on_line_1(&out);
    }

    #[test]
    fn plain_text_is_unchanged() {
        let mut report = report("nginx", None, &["a note".into()], "www-data");
        report.figures.per_worker.clear();
        let out = render_at(report, 3);
        assert_eq!(
            out,
            "WORKERS CRITICAL - nginx: 0 workers < 1 (master 812), cpu n/a | workers=0;;1:;0;\n\
             a note\n"
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Any text, with the characters that matter to Nagios often.
        fn outside_text() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just('|'),
                    Just('\n'),
                    Just('\r'),
                    Just('\u{2028}'),
                    Just('\\'),
                    any::<char>()
                ],
                0..24,
            )
            .prop_map(String::from_iter)
        }

        proptest! {
            #[test]
            fn any_report_has_one_pipe_on_line_1(
                label in outside_text(),
                problem in proptest::option::of(outside_text()),
                notes in proptest::collection::vec(outside_text(), 0..4),
                user in outside_text(),
                verbosity in 0u8..4,
            ) {
                let out = render_at(
            report(&label, problem.as_deref(), &notes, &user), verbosity);
                assert_one_pipe_on_line_1(&out);
                let workers = if verbosity > 0 { 2 } else { 0 };
                let notes = if verbosity > 2 { notes.len() } else { 0 };
                prop_assert_eq!(out.lines().count(), 1 + notes + workers);
                prop_assert!(!out.contains('\r'));
            }
        }
    }

    #[test]
    fn ages() {
        assert_eq!(age(0.4), "0s");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(725.0), "12m05s");
        assert_eq!(age(7380.0), "2h03m");
        assert_eq!(age(273_600.0), "3d04h");
    }
}
