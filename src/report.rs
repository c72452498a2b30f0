//! Report step: what one run found, ready to render. `check` builds it once from what its
//! steps returned; `output` turns it into text and reads nothing else.

use std::collections::BTreeMap;

use nagiosplugin::ServiceState;

use crate::catalog::MetricName;
use crate::metrics::Figures;
use crate::note::Note;
use crate::thresholds::{Pair, Verdict};

/// One measured metric with its thresholds and verdict; perfdata and the status line are both
/// rendered from this one value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub name: MetricName,
    /// in the metric's unit (count, percent, bytes, seconds)
    pub value: f64,
    /// upper bound for perfdata, where one exists
    pub max: Option<f64>,
    pub pair: Pair,
    pub verdict: Verdict,
}

/// What the check found, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub state: ServiceState,
    pub label: String,
    pub figures: Figures,
    /// measured metrics, in perfdata order
    pub results: Vec<MetricResult>,
    pub masters: Vec<i32>,
    pub include_master: bool,
    /// why the named master is missing (stale pidfile, ...), shown in the status line
    pub problem: Option<String>,
    /// what the steps noted, in the order printed after the status line; `output` shows
    /// those of the `-v` level asked for
    pub notes: Vec<Note>,
    /// user names of the uids in the long output
    pub user_names: BTreeMap<u32, String>,
}

impl Report {
    /// The result of one metric, if this run measured it.
    pub fn result(&self, name: MetricName) -> Option<&MetricResult> {
        self.results.iter().find(|r| r.name == name)
    }
}
