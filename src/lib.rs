//! check_workers: a Nagios/Icinga plugin that watches the worker processes of a service.
//!
//! One run is one pass down this pipeline, one module per step, data flowing one way:
//!
//! - `cli`: the command line (and `--extra-opts`) into a validated [`cli::Config`]
//! - `sample`: the only reader of `/proc`; processes into plain [`sample::ProcSample`] values
//! - `filter`: the operator's filters ([`filter::Selector`]) and how each matches a process
//! - `select`: which sampled processes are the workers, and which is their master
//! - `state`: the tick file one run leaves for the next: its name, lock, load and save
//! - `history`: the samples of earlier runs the tick file keeps, and what they tell; pure
//! - `metrics`: two samples into figures (CPU and I/O over the interval, memory, counts); pure
//! - `catalog`: each metric defined once (label, unit, perfdata max, meaning, computing part)
//! - `thresholds`: Nagios ranges per metric and their verdicts; pure
//! - `note`: what the steps found worth telling ([`note::Note`]), as values with a `-v` level
//! - `report`: what a run found ([`report::Report`]), built once, ready to render
//! - `output`: the one [`output::Outcome`] every way out builds, and [`output::render`], the one
//!   place it becomes the status line, perfdata and long output
//!
//! Beside it: `check` runs the steps in order ([`check::evaluate`] is the pure core,
//! [`check::run`] the I/O around it); `text` escapes outside bytes for output; `visibility`
//! refuses a `/proc` that hides other users' processes; `deadline` budgets the time left
//! within `-t`; `extra_opts` reads the monitoring-plugins ini file; `pidfile` reads the
//! master's pid from `--pidfile`; `listen` lists the kernel's listening sockets (sock_diag);
//! `small_file` reads a file another user may have planted; `watch` repeats the whole run for
//! `--every`.

pub mod catalog;
pub mod check;
pub mod cli;
pub mod counter;
pub mod deadline;
pub mod extra_opts;
pub mod filter;
pub mod history;
pub mod listen;
pub mod metrics;
pub mod note;
pub mod output;
pub mod pidfile;
pub mod report;
pub mod sample;
pub mod select;
pub mod small_file;
pub mod state;
pub mod text;
pub mod thresholds;
pub mod visibility;
pub mod watch;
