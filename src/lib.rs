//! check_workers: a Nagios/Icinga plugin that watches the worker processes of a service.
//!
//! One run is one sample: `cli` turns options into a [`cli::Config`], `sample` reads the proc
//! tree, `select` picks the workers, `state` loads and saves the previous run's ticks, `metrics`
//! turns two samples into figures, `thresholds` judges them, `output` renders the result.
//! [`check::evaluate`] is the pure core; [`check::run`] wraps it in I/O.

pub mod check;
pub mod cli;
pub mod deadline;
pub mod extra_opts;
pub mod filter;
pub mod metrics;
pub mod output;
pub mod report;
pub mod sample;
pub mod select;
pub mod state;
pub mod text;
pub mod thresholds;
pub mod visibility;
