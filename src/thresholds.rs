//! Evaluation step: Nagios ranges (`10`, `10:`, `~:10`, `10:20`, `@10:20`) exactly as the
//! plugin guidelines define them, with byte units for memory metrics.
//!
//! Parsing and evaluation live together here, and are tested at every edge, because the
//! classic plugins let two range implementations disagree at the boundary.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use nagiosplugin::ServiceState;

// Ranges are parsed in a metric's unit, so whoever judges or renders a metric needs both: the
// catalog defines them, and they are re-exported for the steps that meet them with ranges.
use crate::catalog::{MetricName, Unit};
use crate::note::Note;

/// A Nagios range. The value is OK when `start <= value <= end`; `inverted` (`@`) flips that.
/// Infinite ends stand for `~` and for an omitted end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    pub inverted: bool,
}

impl Range {
    /// Parses one range. `unit` decides which suffixes are allowed on the numbers: byte units
    /// (binary multiples) for memory metrics, `%` for CPU, none for counts.
    pub fn parse(text: &str, unit: Unit) -> Result<Range> {
        let (inverted, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if body.is_empty() || body == ":" {
            bail!("empty range");
        }
        let (start, end) = match body.split_once(':') {
            None => (0.0, parse_number(body, unit)?),
            Some((start, end)) => {
                let start = match start {
                    "~" => f64::NEG_INFINITY,
                    // monitoring-plugins reads a missing start as 0, so `:10` is `0:10`
                    "" => 0.0,
                    s => parse_number(s, unit)?,
                };
                let end = match end {
                    "" => f64::INFINITY,
                    e => parse_number(e, unit)?,
                };
                (start, end)
            }
        };
        if start > end {
            bail!("start is greater than end");
        }
        Ok(Range {
            start,
            end,
            inverted,
        })
    }

    /// True when the value lies in the alert region of this range.
    pub fn alerts(&self, value: f64) -> bool {
        let inside = self.start <= value && value <= self.end;
        inside == self.inverted
    }

    /// True when every value this range alerts on is also alerted on by `other`: a warning
    /// range with this property can never show, because critical always wins first.
    fn alerts_only_where(&self, other: &Range) -> bool {
        match (self.inverted, other.inverted) {
            (true, true) => other.start <= self.start && self.end <= other.end,
            (true, false) => self.end < other.start || self.start > other.end,
            (false, true) => self.start == f64::NEG_INFINITY && self.end == f64::INFINITY,
            (false, false) => {
                (self.start == f64::NEG_INFINITY || self.start <= other.start)
                    && (self.end == f64::INFINITY || self.end >= other.end)
            }
        }
    }

    /// Why `value` alerts, for the status line, e.g. `> 95` or `< 2`.
    pub fn violation(&self, value: f64, unit: Unit) -> String {
        if self.inverted {
            format!("in {}", self.display(unit))
        } else if value < self.start {
            format!("< {}", format_number(self.start, unit))
        } else {
            format!("> {}", format_number(self.end, unit))
        }
    }

    /// The range as it belongs in perfdata: numbers in the metric's base unit (bytes).
    pub fn perfdata(&self) -> String {
        self.render(format_plain)
    }

    /// The range in human units, for the status line.
    pub fn display(&self, unit: Unit) -> String {
        self.render(|n| format_number(n, unit))
    }

    fn render(&self, number: impl Fn(f64) -> String) -> String {
        let prefix = if self.inverted { "@" } else { "" };
        let start = if self.start == f64::NEG_INFINITY {
            "~".to_string()
        } else {
            number(self.start)
        };
        if self.end == f64::INFINITY {
            format!("{prefix}{start}:")
        } else if self.start == 0.0 && !self.inverted {
            number(self.end)
        } else {
            format!("{prefix}{start}:{}", number(self.end))
        }
    }
}

/// One number of a range, with the suffix its unit allows.
fn parse_number(text: &str, unit: Unit) -> Result<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: f64 = digits
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .with_context(|| format!("{text:?} is not a number"))?;
    let multiplier = match unit {
        Unit::Bytes | Unit::BytesPerHour => byte_multiplier(suffix)
            .with_context(|| format!("unknown size unit {suffix:?} (use B, K, M, G, T)"))?,
        Unit::Percent if suffix.is_empty() || suffix == "%" => 1.0,
        Unit::Seconds => match suffix {
            "" | "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => bail!("unknown time unit {suffix:?} (use s, m, h, d)"),
        },
        Unit::Count if suffix.is_empty() => 1.0,
        _ => bail!("{text:?}: this metric takes no unit"),
    };
    let value = number * multiplier;
    if value.is_nan() || value.abs() > MAX_THRESHOLD {
        bail!("{text:?} is too large for perfdata (at most {MAX_THRESHOLD}, 64 TiB)");
    }
    Ok(value)
}

/// The largest magnitude of a threshold, in the metric's base unit: 2^46, 64 TiB for memory.
/// Perfdata prints thresholds with two decimals ([`format_plain`] rounds the value times 100),
/// which is exact only while that product is an integer a double holds exactly (below 2^53);
/// beyond, a threshold would show as a different number, or as `inf`.
pub const MAX_THRESHOLD: f64 = 70_368_744_177_664.0;

/// Binary multiples for sizes: `512k`, `300MiB`, `2G` and `2GB` all mean powers of 1024,
/// as memory is counted in pages, never in powers of ten.
fn byte_multiplier(suffix: &str) -> Option<f64> {
    let lower = suffix.to_ascii_lowercase();
    let prefix = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let power = match prefix {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => return None,
    };
    if lower == "ib" {
        return None;
    }
    Some(1024f64.powi(power))
}

/// A number without a trailing `.0`, at most two decimals: perfdata wants plain numbers.
pub fn format_plain(n: f64) -> String {
    let rounded = (n * 100.0).round() / 100.0;
    let mut text = format!("{rounded:.2}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    if text == "-0" {
        text = "0".to_string();
    }
    text
}

/// A number in the unit a person reads: `4.1 MiB`, `95`.
pub fn format_number(n: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => human_bytes(n),
        Unit::BytesPerHour => format!("{}/h", human_bytes(n)),
        Unit::Count | Unit::Percent => format_plain(n),
        Unit::Seconds => format!("{}s", format_plain(n)),
    }
}

/// Bytes in binary units with one decimal: `540.0 KiB`, `4.1 MiB`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", format_plain(value))
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Warning and critical ranges of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pair {
    pub warning: Option<Range>,
    pub critical: Option<Range>,
}

/// All thresholds the operator gave, by metric, with the defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    by_metric: BTreeMap<MetricName, Pair>,
}

/// The outcome of checking one value against its pair: the state, and the range that decided
/// it (for the status line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub state: ServiceState,
    pub range: Option<Range>,
}

impl Thresholds {
    /// Builds thresholds from the `-w` and `-c` arguments as typed. A bare range is for `cpu`;
    /// the same metric given twice for one level is an error, not a silent override.
    ///
    /// Unless `-c workers=...` is given, no workers at all is critical: a worker check that finds
    /// none means the service is down.
    pub fn from_args(warnings: &[String], criticals: &[String]) -> Result<Thresholds> {
        let mut by_metric: BTreeMap<MetricName, Pair> = BTreeMap::new();
        for (option, args, is_critical) in [("-w", warnings, false), ("-c", criticals, true)] {
            for arg in args {
                let (metric, range) =
                    parse_threshold(arg).with_context(|| format!("bad {option} {arg:?}"))?;
                let pair = by_metric.entry(metric).or_default();
                let slot = if is_critical {
                    &mut pair.critical
                } else {
                    &mut pair.warning
                };
                if slot.is_some() {
                    bail!("{option} given twice for {}", metric.label());
                }
                *slot = Some(range);
            }
        }
        let workers = by_metric.entry(MetricName::Workers).or_default();
        if workers.critical.is_none() {
            workers.critical = Some(Range {
                start: 1.0,
                end: f64::INFINITY,
                inverted: false,
            });
        }
        for (metric, pair) in &by_metric {
            if let (Some(w), Some(c)) = (pair.warning, pair.critical) {
                if w.alerts_only_where(&c) {
                    bail!(
                        "-w {}={} can never warn: -c {}={} is critical on every value it warns on",
                        metric.label(),
                        w.display(metric.unit()),
                        metric.label(),
                        c.display(metric.unit()),
                    );
                }
            }
        }
        Ok(Thresholds { by_metric })
    }

    /// The pair for one metric (empty when the operator set none).
    pub fn pair(&self, metric: MetricName) -> Pair {
        self.by_metric.get(&metric).copied().unwrap_or_default()
    }

    /// The metrics that carry at least one threshold.
    pub fn metrics(&self) -> impl Iterator<Item = MetricName> + '_ {
        self.by_metric.keys().copied()
    }

    /// Notes for the thresholds on metrics this run could not measure (CPU with no baseline,
    /// memory with no workers, PSS without permission): they stay OK, and the output says so
    /// rather than staying silent. In perfdata order.
    pub fn not_evaluated(&self, measured: &[MetricName]) -> Vec<Note> {
        self.metrics()
            .filter(|m| !measured.contains(m))
            .map(Note::NotEvaluated)
            .collect()
    }

    /// Critical is checked first, so a value in both alert regions reads CRITICAL.
    pub fn evaluate(&self, metric: MetricName, value: f64) -> Verdict {
        let pair = self.pair(metric);
        for (range, state) in [
            (pair.critical, ServiceState::Critical),
            (pair.warning, ServiceState::Warning),
        ] {
            if let Some(range) = range {
                if range.alerts(value) {
                    return Verdict {
                        state,
                        range: Some(range),
                    };
                }
            }
        }
        Verdict {
            state: ServiceState::Ok,
            range: None,
        }
    }
}

/// `[METRIC=]RANGE`; a bare range is for `cpu`, the figure operators mean by default.
fn parse_threshold(arg: &str) -> Result<(MetricName, Range)> {
    let (metric, range) = match arg.split_once('=') {
        Some((label, range)) => {
            let metric = MetricName::from_label(label).with_context(|| {
                let known: Vec<&str> = MetricName::all().map(|m| m.label()).collect();
                format!("unknown metric {label:?} (known: {})", known.join(", "))
            })?;
            (metric, range)
        }
        None => (MetricName::Cpu, arg),
    };
    let range = Range::parse(range, metric.unit())?;
    Ok((metric, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Range {
        Range::parse(text, Unit::Count).unwrap()
    }

    #[test]
    fn plain_number_is_zero_to_n() {
        let range = r("10");
        assert!(!range.alerts(10.0), "10 itself is OK");
        assert!(!range.alerts(0.0));
        assert!(range.alerts(10.0001));
        assert!(range.alerts(-0.0001), "below zero alerts");
    }

    #[test]
    fn open_end_alerts_below_start() {
        let range = r("10:");
        assert!(range.alerts(9.9999));
        assert!(!range.alerts(10.0));
        assert!(!range.alerts(1e300));
    }

    #[test]
    fn tilde_is_negative_infinity() {
        let range = r("~:10");
        assert!(!range.alerts(-1e300));
        assert!(!range.alerts(10.0));
        assert!(range.alerts(10.0001));
    }

    #[test]
    fn closed_range_alerts_outside() {
        let range = r("10:20");
        assert!(range.alerts(9.9999));
        assert!(!range.alerts(10.0));
        assert!(!range.alerts(20.0));
        assert!(range.alerts(20.0001));
    }

    #[test]
    fn at_sign_alerts_inside_inclusive() {
        let range = r("@10:20");
        assert!(!range.alerts(9.9999));
        assert!(range.alerts(10.0));
        assert!(range.alerts(15.0));
        assert!(range.alerts(20.0));
        assert!(!range.alerts(20.0001));
        let from_zero = r("@5");
        assert!(from_zero.alerts(0.0));
        assert!(from_zero.alerts(5.0));
        assert!(!from_zero.alerts(5.1));
    }

    #[test]
    fn negative_and_fractional_bounds() {
        let range = r("-10.5:-2");
        assert!(range.alerts(-10.6));
        assert!(!range.alerts(-10.5));
        assert!(!range.alerts(-2.0));
        assert!(range.alerts(-1.9));
    }

    #[test]
    fn missing_start_reads_as_zero_like_monitoring_plugins() {
        assert_eq!(r(":10"), r("0:10"));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "", "@", "abc", "10:5", "1:2:3", "~", "10:x", "nan", "inf", "1e999", "--1", "10%:",
            "@:", "5k",
        ] {
            assert!(Range::parse(bad, Unit::Count).is_err(), "{bad:?} must fail");
        }
    }

    // Regression (issue 9.7): `-w cpu=<300 digits>` printed `inf` in perfdata.
    #[test]
    fn numbers_perfdata_cannot_print_exactly_are_refused() {
        let huge = "9".repeat(300);
        for (text, unit) in [
            (huge.as_str(), Unit::Percent),
            (&format!("{huge}:"), Unit::Count),
            (&format!("~:{huge}"), Unit::Count),
            (&format!("-{huge}:0"), Unit::Count),
            (&"1".repeat(20), Unit::Count),
            ("70368744177665", Unit::Count),
            ("65T", Unit::Bytes),
            ("814453058d", Unit::Seconds),
        ] {
            let err = Range::parse(text, unit).unwrap_err().to_string();
            assert!(err.contains("is too large for perfdata"), "{text}: {err}");
        }
        let err = Thresholds::from_args(&[format!("cpu={huge}")], &[]).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "bad -w \"cpu={huge}\": \"{huge}\" is too large for perfdata \
                 (at most 70368744177664, 64 TiB)"
            )
        );
        // the edge itself is fine, and prints as typed
        let edge = Range::parse("64T", Unit::Bytes).unwrap();
        assert_eq!(edge.perfdata(), "70368744177664");
        assert_eq!(
            r("-70368744177664:70368744177664").perfdata(),
            "-70368744177664:70368744177664"
        );
        assert_eq!(r("70368744177663.99").perfdata(), "70368744177663.99");
    }

    #[test]
    fn byte_units_are_binary_multiples() {
        let parse = |t: &str| Range::parse(t, Unit::Bytes).unwrap().end;
        assert_eq!(parse("512k"), 512.0 * 1024.0);
        assert_eq!(parse("512K"), 512.0 * 1024.0);
        assert_eq!(parse("300MiB"), 300.0 * 1024.0 * 1024.0);
        assert_eq!(parse("300MB"), 300.0 * 1024.0 * 1024.0);
        assert_eq!(parse("2G"), 2.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(parse("1.5t"), 1.5 * 1024f64.powi(4));
        assert_eq!(parse("100B"), 100.0);
        assert_eq!(parse("100"), 100.0);
        let both = Range::parse("100M:2G", Unit::Bytes).unwrap();
        assert_eq!(both.start, 100.0 * 1024.0 * 1024.0);
        for bad in ["5x", "5iB", "5Mi", "5 M", "5KB5", "%"] {
            assert!(Range::parse(bad, Unit::Bytes).is_err(), "{bad:?} must fail");
        }
    }

    #[test]
    fn ages_take_time_units() {
        let parse = |t: &str| Range::parse(t, Unit::Seconds).unwrap();
        assert_eq!(parse("30").end, 30.0);
        assert_eq!(parse("30s").end, 30.0);
        assert_eq!(parse("5m:").start, 300.0);
        assert_eq!(parse("2h").end, 7200.0);
        assert_eq!(parse("1d").end, 86_400.0);
        assert!(Range::parse("5M", Unit::Seconds).is_err());
        let t = Thresholds::from_args(&["age_min=60:".into()], &[]).unwrap();
        assert_eq!(
            t.evaluate(MetricName::AgeMin, 59.0).state,
            ServiceState::Warning
        );
    }

    #[test]
    fn percent_sign_only_on_percent_metrics() {
        assert_eq!(Range::parse("80%", Unit::Percent).unwrap().end, 80.0);
        assert!(Range::parse("80%", Unit::Count).is_err());
        assert!(Range::parse("80M", Unit::Percent).is_err());
    }

    #[test]
    fn perfdata_form_is_canonical_in_base_units() {
        assert_eq!(r("10").perfdata(), "10");
        assert_eq!(r("10:").perfdata(), "10:");
        assert_eq!(r("~:10").perfdata(), "~:10");
        assert_eq!(r("10:20").perfdata(), "10:20");
        assert_eq!(r("@10:20").perfdata(), "@10:20");
        assert_eq!(r("@0:20").perfdata(), "@0:20");
        assert_eq!(
            Range::parse("300MiB", Unit::Bytes).unwrap().perfdata(),
            "314572800"
        );
    }

    #[test]
    fn bare_range_is_cpu_and_workers_default_critical() {
        let t = Thresholds::from_args(&["80".into()], &["95".into()]).unwrap();
        assert_eq!(t.pair(MetricName::Cpu).warning, Some(r("80")));
        assert_eq!(t.pair(MetricName::Cpu).critical, Some(r("95")));
        assert_eq!(t.pair(MetricName::Workers).critical, Some(r("1:")));
        assert_eq!(
            t.evaluate(MetricName::Workers, 0.0).state,
            ServiceState::Critical
        );
        assert_eq!(t.evaluate(MetricName::Workers, 1.0).state, ServiceState::Ok);
    }

    #[test]
    fn explicit_workers_critical_replaces_default() {
        let t = Thresholds::from_args(&[], &["workers=3:".into()]).unwrap();
        assert_eq!(t.pair(MetricName::Workers).critical, Some(r("3:")));
        let none = Thresholds::from_args(&[], &["workers=~:".into()]).unwrap();
        assert_eq!(
            none.evaluate(MetricName::Workers, 0.0).state,
            ServiceState::Ok
        );
    }

    #[test]
    fn critical_wins_over_warning() {
        let t = Thresholds::from_args(&["80".into()], &["95".into()]).unwrap();
        assert_eq!(t.evaluate(MetricName::Cpu, 80.0).state, ServiceState::Ok);
        assert_eq!(
            t.evaluate(MetricName::Cpu, 80.1).state,
            ServiceState::Warning
        );
        assert_eq!(
            t.evaluate(MetricName::Cpu, 95.0).state,
            ServiceState::Warning
        );
        assert_eq!(
            t.evaluate(MetricName::Cpu, 95.1).state,
            ServiceState::Critical
        );
    }

    #[test]
    fn memory_thresholds_take_units() {
        let t = Thresholds::from_args(&["rss=300MiB".into()], &[]).unwrap();
        let limit = 300.0 * 1024.0 * 1024.0;
        assert_eq!(t.evaluate(MetricName::Rss, limit).state, ServiceState::Ok);
        assert_eq!(
            t.evaluate(MetricName::Rss, limit + 1.0).state,
            ServiceState::Warning
        );
    }

    #[test]
    fn bad_arguments_name_the_option() {
        let err = |w: &[&str], c: &[&str]| {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            format!("{:#}", Thresholds::from_args(&w, &c).unwrap_err())
        };
        assert!(err(&["bogus=5"], &[]).contains("bad -w \"bogus=5\""));
        assert!(err(&["bogus=5"], &[]).contains("unknown metric"));
        assert!(err(&[], &["cpu=5:1"]).contains("bad -c \"cpu=5:1\""));
        assert!(err(&["80", "cpu=90"], &[]).contains("-w given twice for cpu"));
        assert!(err(&["95"], &["80"]).contains("can never warn"));
        assert!(err(&["80"], &["80"]).contains("can never warn"));
        assert!(err(&["workers=1:"], &["workers=2:"]).contains("can never warn"));
    }

    #[test]
    fn sensible_pairs_are_accepted() {
        let ok = |w: &str, c: &str| Thresholds::from_args(&[w.into()], &[c.into()]).is_ok();
        assert!(ok("80", "95"));
        assert!(ok("workers=2:", "workers=1:"));
        assert!(ok("workers=~:10", "workers=1:"), "opposite sides are fine");
        assert!(ok("@10:20", "@12:15"));
        assert!(!ok("@12:15", "@10:20"));
        assert!(
            ok("@0:5", "3"),
            "inverted warn outside critical alert region"
        );
        assert!(!ok("@96:99", "95"));
        assert!(Thresholds::from_args(&["workers=2:".into()], &[]).is_ok());
    }

    #[test]
    fn every_catalog_metric_takes_thresholds_in_its_unit() {
        for metric in MetricName::all() {
            let suffix = match metric.unit() {
                Unit::Count => "",
                Unit::Percent => "%",
                Unit::Bytes | Unit::BytesPerHour => "K",
                Unit::Seconds => "m",
            };
            let arg = format!("{}=5{suffix}", metric.label());
            let t = Thresholds::from_args(std::slice::from_ref(&arg), &[]).expect(&arg);
            assert!(t.pair(metric).warning.is_some(), "{arg}");
        }
        let err = Thresholds::from_args(&["bogus=1".into()], &[]).unwrap_err();
        let known: Vec<&str> = MetricName::all().map(MetricName::label).collect();
        assert!(
            format!("{err:#}").ends_with(&format!("(known: {})", known.join(", "))),
            "{err:#}"
        );
    }

    #[test]
    fn thresholds_on_unmeasured_metrics_are_noted_in_perfdata_order() {
        let t = Thresholds::from_args(&["pss=1M".into(), "cpu=80".into(), "rss=1M".into()], &[])
            .unwrap();
        assert_eq!(
            crate::output::note_lines(&t.not_evaluated(&[MetricName::Workers, MetricName::Rss]), 0),
            [
                "cpu: not measured in this run, thresholds not evaluated",
                "pss: not measured in this run, thresholds not evaluated",
            ]
        );
    }

    /// `rss_growth` may be negative (memory freed): its ranges take units on negative numbers.
    #[test]
    fn growth_ranges_take_units_and_negative_numbers() {
        let mib = 1024.0 * 1024.0;
        let unit = Unit::BytesPerHour;
        let r = Range::parse("~:100MiB", unit).unwrap();
        assert!(!r.alerts(-1e12) && !r.alerts(100.0 * mib) && r.alerts(100.0 * mib + 1.0));
        assert_eq!(r.display(unit), "~:100.0 MiB/h");
        let r = Range::parse("@-1MiB:0", unit).unwrap();
        assert!(r.alerts(-mib) && r.alerts(0.0));
        assert!(!r.alerts(1.0) && !r.alerts(-mib - 1.0));
        assert_eq!(r.perfdata(), "@-1048576:0");
        assert_eq!(Range::parse("-5M:", unit).unwrap().start, -5.0 * mib);
        // a bare N is 0..N, as the guidelines say: shrinking alerts too
        let r = Range::parse("100MiB", unit).unwrap();
        assert!(r.alerts(-1.0));
        assert_eq!(r.violation(200.0 * mib, unit), "> 100.0 MiB/h");
        assert!(Range::parse("5%", unit).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(540.0 * 1024.0), "540.0 KiB");
        assert_eq!(human_bytes(4.1 * 1024.0 * 1024.0), "4.1 MiB");
        assert_eq!(format_plain(12.345), "12.35");
        assert_eq!(format_plain(100.0), "100");
        assert_eq!(format_plain(-0.001), "0");
    }

    mod fuzz {
        //! Property tests: the parsers take anything without panicking, and what they accept
        //! means what the guidelines say.
        use super::super::*;
        use proptest::prelude::*;

        fn unit() -> impl Strategy<Value = Unit> {
            prop_oneof![
                Just(Unit::Count),
                Just(Unit::Percent),
                Just(Unit::Bytes),
                Just(Unit::BytesPerHour),
                Just(Unit::Seconds)
            ]
        }

        proptest! {
            #[test]
            fn range_parse_never_panics(text in "\\PC{0,24}", unit in unit()) {
                let _ = Range::parse(&text, unit);
            }

            #[test]
            fn range_like_text_never_panics(text in "@?~?[-+0-9.:~@kKmMgGtTiIbB%]{0,16}", unit in unit()) {
                if let Ok(range) = Range::parse(&text, unit) {
                    prop_assert!(range.start <= range.end);
                    prop_assert!(!range.start.is_nan() && !range.end.is_nan());
                }
            }

            #[test]
            fn thresholds_never_panic(w in proptest::collection::vec("\\PC{0,16}", 0..4),
                                      c in proptest::collection::vec("[a-z_]{0,10}=?[-0-9.:~@MG]{0,8}", 0..4)) {
                let _ = Thresholds::from_args(&w, &c);
            }

            #[test]
            fn perfdata_form_parses_back(a in -10_000i64..10_000, len in 0i64..10_000,
                                         inverted: bool, open_start: bool, open_end: bool) {
                let range = Range {
                    start: if open_start { f64::NEG_INFINITY } else { a as f64 / 4.0 },
                    end: if open_end { f64::INFINITY } else { (a + len) as f64 / 4.0 },
                    inverted,
                };
                let again = Range::parse(&range.perfdata(), Unit::Count).unwrap();
                prop_assert_eq!(again, range);
            }

            #[test]
            fn alerts_means_outside_or_inside(start in -100i32..100, len in 0i32..100,
                                              value in -300i32..300, inverted: bool) {
                let range = Range { start: f64::from(start), end: f64::from(start + len), inverted };
                let v = f64::from(value);
                let inside = start <= value && value <= start + len;
                prop_assert_eq!(range.alerts(v), inside == inverted);
            }

            #[test]
            fn accepted_numbers_print_back_exactly(digits in "[1-9][0-9]{0,30}", unit in unit()) {
                // an integer threshold is accepted only when perfdata shows it as typed
                let text = match unit {
                    Unit::Seconds => format!("{digits}s"),
                    _ => digits.clone(),
                };
                match Range::parse(&text, unit) {
                    Ok(range) => prop_assert_eq!(format_plain(range.end), digits),
                    Err(e) => prop_assert!(e.to_string().contains("too large"), "{}", e),
                }
            }

            #[test]
            fn byte_units_multiply(n in 0u32..100_000, unit in 0usize..5, style in 0usize..3) {
                let letter = ["", "k", "M", "G", "T"][unit];
                let suffix = match (unit, style) {
                    (0, 1) => "B".to_string(),
                    (0, _) => String::new(),
                    (_, 0) => letter.to_string(),
                    (_, 1) => format!("{letter}B"),
                    _ => format!("{}iB", letter.to_uppercase()),
                };
                let bytes = f64::from(n) * 1024f64.powi(unit as i32);
                match Range::parse(&format!("{n}{suffix}"), Unit::Bytes) {
                    Ok(parsed) => prop_assert_eq!(parsed.end, bytes),
                    Err(_) => prop_assert!(bytes > MAX_THRESHOLD),
                }
            }
        }
    }
}
