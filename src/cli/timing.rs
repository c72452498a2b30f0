//! Options step: the options that are times (`--interval`, `--average`, `--every`), checked
//! and turned into durations before the first reading.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{Every, DEFAULT_INTERVAL};
use crate::catalog::MetricName;
use crate::history;
use crate::thresholds::Thresholds;

/// The in-run CPU interval. The default fits inside any timeout (a quarter of it when that is
/// shorter than a second), so `-t 1` alone works; only an `--interval` the operator gave that
/// does not fit the timeout is a usage error.
pub(super) fn interval(given: Option<f64>, timeout: Duration) -> Result<Duration> {
    let Some(seconds) = given else {
        return Ok(DEFAULT_INTERVAL.min(timeout / 4));
    };
    let interval = Duration::try_from_secs_f64(seconds).ok().with_context(|| {
        format!("--interval {seconds} must be 0 or a positive number of seconds")
    })?;
    if interval >= timeout {
        bail!(
            "--interval {seconds} must be shorter than the timeout (-t {})",
            timeout.as_secs()
        );
    }
    Ok(interval)
}

/// `--average`: a window from 1 s to a day. `cpu_avg` exists only with it, so a threshold on
/// `cpu_avg` without it is a mistake to say now, not a "not measured" note on every run.
pub(super) fn average(given: Option<&str>, thresholds: &Thresholds) -> Result<Option<u64>> {
    let window = given
        .map(|text| history::parse_duration(text).context("--average"))
        .transpose()?;
    if window.is_none() && thresholds.metrics().any(|m| m == MetricName::CpuAvg) {
        bail!("cpu_avg needs --average DURATION (e.g. --average 5m)");
    }
    Ok(window)
}

/// The shortest `--every`: the resolution of `/proc/uptime`, which times every sample.
const SHORTEST_EVERY: f64 = 0.01;

/// `--every` and `--count`, checked before the first sample.
pub(super) fn every(seconds: Option<f64>, count: Option<u64>) -> Result<Option<Every>> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    let period = Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|_| seconds >= SHORTEST_EVERY)
        .with_context(|| format!("--every {seconds}: give seconds, at least {SHORTEST_EVERY}"))?;
    if count == Some(0) {
        bail!("--count 0: give at least 1 sample");
    }
    Ok(Some(Every { period, count }))
}
