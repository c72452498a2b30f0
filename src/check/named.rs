//! The run's master as the operator named it (`--ppid`, `--pidfile`): its pid, read once per
//! run, and whether the process running under it at a reading is the one meant.

use anyhow::Result;

use crate::cli::Config;
use crate::filter::ParentSpec;
use crate::pidfile::{self, Pidfile};
use crate::sample::Snapshot;
use crate::select::Master;

/// The master's pid from `--ppid` or `--pidfile`, with the time the pidfile was written. A
/// missing pidfile means the service is not running (daemons remove it when they stop): no
/// master, so no workers, CRITICAL by default. A pidfile that cannot be read or holds no pid
/// is a broken setup: UNKNOWN.
pub(super) type NamedParent = Option<(i32, Option<f64>)>;

pub(super) fn named_parent(config: &Config) -> Result<(NamedParent, Option<String>)> {
    match &config.selector.parent {
        None => Ok((None, None)),
        Some(ParentSpec::Pid(pid)) => Ok((Some((*pid, None)), None)),
        Some(ParentSpec::Pidfile(path)) => match pidfile::read(path)? {
            Pidfile::Pid { pid, written } => Ok((Some((pid, Some(written))), None)),
            Pidfile::Missing => Ok((None, Some(format!("pidfile {} is missing", path.display())))),
        },
    }
}

/// Whether the named master is running, and is the process the pidfile meant: a pid reused
/// by another program started after the pidfile was written.
pub(super) fn check_parent(
    spec: &ParentSpec,
    pid: i32,
    pidfile_written: Option<f64>,
    snapshot: &Snapshot,
) -> (Master, Option<String>) {
    let what = match spec {
        ParentSpec::Pid(_) => format!("process {pid}"),
        ParentSpec::Pidfile(path) => format!("pid {pid} from {}", path.display()),
    };
    let Some(parent) = &snapshot.parent else {
        return (Master::Missing, Some(format!("{what} is not running")));
    };
    if let Some(written) = pidfile_written {
        let started =
            snapshot.btime as f64 + parent.starttime as f64 / snapshot.clock_ticks.max(1) as f64;
        // a second of slack for the clock resolution of both
        if started > written + 1.0 {
            return (
                Master::Missing,
                Some(format!(
                    "{what} is another process ({}), started after the pidfile was written",
                    parent.comm
                )),
            );
        }
    }
    (Master::Given(Box::new(parent.clone())), None)
}
