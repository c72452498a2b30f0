//! State, the tick file's text: how a [`TickState`] is written and read back, line by line. Kept
//! apart from the file handling around it (lock, load, save, sweep) as it is the format, the
//! one part later releases must go on reading.

use std::collections::HashSet;
use std::fmt;

use anyhow::{bail, ensure, Context, Result};

use crate::counter::{Counter, Counters, TICKS};
use crate::history::{Cum, History, Identity, Sample, MAX_SAMPLES};

use super::cgroup::{self, CgroupBase};
use super::{ProcTicks, TickState};

/// First line of every tick file this release writes; a file with another first line is not
/// ours or too new. v3's process lines name their values (`utime=4000`), so a new counter is a
/// new key, not a new format.
pub const FORMAT_LINE: &str = "check_workers ticks v3";

/// First line of the files of the release before: the same lines, but a process's values in
/// fixed columns. Still read, baseline and history.
pub const FORMAT_V2: &str = "check_workers ticks v2";

/// First line of the files of releases before the history: still read, as a baseline with no
/// history, so an upgrade loses no CPU figure.
pub const FORMAT_V1: &str = "check_workers ticks v1";

impl TickState {
    /// Parses a tick file; any deviation from the format is an error naming the line.
    pub fn parse(text: &str) -> Result<TickState> {
        let mut lines = text.lines().enumerate();
        let (v2, named) = match lines.next() {
            Some((_, FORMAT_LINE)) => (true, true),
            Some((_, FORMAT_V2)) => (true, false),
            Some((_, FORMAT_V1)) => (false, false),
            Some((_, other)) if other.starts_with("check_workers ticks ") => {
                bail!("unknown format {other:?}")
            }
            _ => bail!("not a tick file"),
        };
        let mut read = Lines {
            v2,
            named,
            ..Lines::default()
        };
        for (index, line) in lines {
            read.line(line)
                .with_context(|| format!("line {}", index + 1))?;
        }
        read.into_state()
    }
}

/// What the lines of a tick file after its format line have said so far.
#[derive(Default)]
struct Lines {
    /// a v2 (or later) file, with `base`, `keep` and `sample` lines
    v2: bool,
    /// a v3 file, whose process lines name their values
    named: bool,
    uptime: Option<f64>,
    btime: Option<u64>,
    clock_ticks: Option<u64>,
    workers: Vec<ProcTicks>,
    masters: Vec<ProcTicks>,
    /// (worker?, pid) of every process line, so that a pid is listed once
    seen: HashSet<(bool, i32)>,
    base: Option<Cum>,
    keep: Option<u64>,
    samples: Vec<Sample>,
    cgroup: Vec<CgroupBase>,
}

impl Lines {
    fn line(&mut self, line: &str) -> Result<()> {
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let mut fields = line.split(' ');
        let key = fields.next().unwrap_or_default();
        let values: Vec<&str> = fields.collect();
        match (key, values.as_slice()) {
            ("uptime", [v]) => set_once(&mut self.uptime, uptime(v)?)?,
            ("btime", [v]) => set_once(&mut self.btime, v.parse::<u64>()?)?,
            ("hz", [v]) => set_once(&mut self.clock_ticks, v.parse::<u64>()?)?,
            ("worker" | "master", _) => {
                let ticks = if self.named {
                    named_values(&values)?
                } else {
                    columns(&values)?
                };
                if ticks.pid <= 0 || !self.seen.insert((key == "worker", ticks.pid)) {
                    bail!("bad or repeated pid {}", ticks.pid);
                }
                if key == "worker" {
                    self.workers.push(ticks)
                } else {
                    self.masters.push(ticks)
                }
            }
            ("base" | "keep" | "sample", _) if self.v2 => self.history_line(key, &values)?,
            ("cgroup", _) if self.named => {
                let base = cgroup::parse_line(&values, &self.cgroup)?;
                self.cgroup.push(base);
            }
            _ => bail!("unexpected line"),
        }
        Ok(())
    }

    /// A line of v2's: the totals at the baseline, the retention, or one sample.
    fn history_line(&mut self, key: &str, values: &[&str]) -> Result<()> {
        match (key, values) {
            ("base", [user, system]) => set_once(
                &mut self.base,
                Cum {
                    user: user.parse()?,
                    system: system.parse()?,
                },
            )?,
            ("keep", [seconds]) => set_once(&mut self.keep, seconds.parse::<u64>()?)?,
            ("sample", [at, user, system, workers, rss_avg, master]) => {
                ensure!(
                    self.samples.len() < MAX_SAMPLES,
                    "more than {MAX_SAMPLES} samples"
                );
                self.samples.push(Sample {
                    uptime: uptime(at)?,
                    cum: Cum {
                        user: user.parse()?,
                        system: system.parse()?,
                    },
                    workers: workers.parse()?,
                    rss_avg: rss_avg.parse()?,
                    master: master.parse::<Identity>()?,
                });
            }
            _ => bail!("unexpected line"),
        }
        Ok(())
    }

    /// The state the lines describe, once all are read. The history belongs to the same boot
    /// as the baseline, which is no newer than its last sample.
    fn into_state(self) -> Result<TickState> {
        let uptime = self.uptime.context("no uptime line")?;
        let (base, history) = if self.v2 {
            let keep = self.keep.context("no keep line")?;
            (
                self.base.context("no base line")?,
                History::new(keep, self.samples)?,
            )
        } else {
            (Cum::default(), History::default())
        };
        if let Some(newest) = history.newest() {
            ensure!(
                newest.uptime >= uptime,
                "baseline newer than the last sample"
            );
        }
        Ok(TickState {
            uptime,
            btime: self.btime.context("no btime line")?,
            clock_ticks: self.clock_ticks.context("no hz line")?,
            workers: self.workers,
            masters: self.masters,
            base,
            history,
            cgroup: self.cgroup,
        })
    }
}

/// An uptime in a tick file: seconds, finite and not negative.
fn uptime(text: &str) -> Result<f64> {
    let v: f64 = text.parse()?;
    ensure!(v.is_finite() && v >= 0.0, "bad uptime");
    Ok(v)
}

/// A v1 or v2 process line's values, in fixed columns: `pid starttime utime stime cutime
/// cstime`, then the I/O columns.
fn columns(values: &[&str]) -> Result<ProcTicks> {
    let [pid, start, user, system, child_user, child_system, io @ ..] = values else {
        bail!("unexpected line");
    };
    let mut counters = Counters::default();
    for (counter, text) in TICKS
        .into_iter()
        .zip([user, system, child_user, child_system])
    {
        counters.set(counter, text.parse()?);
    }
    // `- -` for unknown, or none at all (a file from before they existed: unknown too)
    match io {
        [] | ["-", "-"] => {}
        [read, write] => {
            counters.set(Counter::ReadBytes, read.parse()?);
            counters.set(Counter::WriteBytes, write.parse()?);
        }
        _ => bail!("unexpected I/O columns"),
    }
    Ok(ProcTicks {
        pid: pid.parse()?,
        starttime: start.parse()?,
        counters,
    })
}

/// The counters every v3 file has written since v3 began, in groups that are all there or
/// all not: the CPU ticks on every line, the bytes where known. Fixed: a counter added later
/// may be missing from an older file, so it belongs to no group.
const V3_GROUPS: [(&[Counter], bool); 2] = [
    (&TICKS, true),
    (&[Counter::ReadBytes, Counter::WriteBytes], false),
];

/// A v3 process line's values, each named (`pid=813 start=1100 utime=4000 ...`), in any order.
/// `pid` and `start` must be there once, and the counters of [`V3_GROUPS`] as they say; a key
/// this release does not know is one a later release added, and is skipped.
fn named_values(values: &[&str]) -> Result<ProcTicks> {
    let (mut pid, mut start) = (None, None);
    let mut counters = Counters::default();
    for pair in values {
        let (key, value) = pair.split_once('=').context("not key=value")?;
        match key {
            "pid" => set_once(&mut pid, value.parse::<u64>()?)?,
            "start" => set_once(&mut start, value.parse::<u64>()?)?,
            _ => {
                if let Some(counter) = Counter::from_key(key) {
                    ensure!(counters.get(counter).is_none(), "repeated {key}");
                    counters.set(counter, value.parse()?);
                }
            }
        }
    }
    let pid = pid.context("no pid")?;
    let starttime = start.context("no start")?;
    for (group, needed) in V3_GROUPS {
        let (there, missing): (Vec<Counter>, Vec<Counter>) =
            group.iter().partition(|&&c| counters.get(c).is_some());
        match (missing.first(), there.first()) {
            (Some(missing), _) if needed => bail!("no {}", missing.key()),
            (Some(missing), Some(there)) => bail!("{} without {}", there.key(), missing.key()),
            _ => {}
        }
    }
    Ok(ProcTicks {
        pid: i32::try_from(pid).context("pid out of range")?,
        starttime,
        counters,
    })
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<()> {
    if slot.is_some() {
        bail!("repeated line");
    }
    *slot = Some(value);
    Ok(())
}

impl fmt::Display for TickState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{FORMAT_LINE}")?;
        writeln!(f, "# written by check_workers; ticks are 1/hz seconds")?;
        writeln!(f, "uptime {:.2}", self.uptime)?;
        writeln!(f, "btime {}", self.btime)?;
        writeln!(f, "hz {}", self.clock_ticks)?;
        writeln!(
            f,
            "# the workers' running user and system ticks at that uptime"
        )?;
        writeln!(f, "base {} {}", self.base.user, self.base.system)?;
        writeln!(f, "# seconds of history kept")?;
        writeln!(f, "keep {}", self.history.keep())?;
        writeln!(
            f,
            "# one line a process: its start time (ticks after boot), its ticks, and the bytes it"
        )?;
        writeln!(
            f,
            "# read and wrote (a master's: its reaped children's; left out when unknown)"
        )?;
        for (kind, list) in [("master", &self.masters), ("worker", &self.workers)] {
            for t in list {
                write!(f, "{kind} pid={} start={}", t.pid, t.starttime)?;
                for (counter, value) in t.counters.known() {
                    write!(f, " {}={value}", counter.key())?;
                }
                writeln!(f)?;
            }
        }
        if !self.cgroup.is_empty() {
            writeln!(
                f,
                "# the workers' cgroup, one line a hierarchy: its directory's inode, the uptime \
                 its counters were read at, and the counters"
            )?;
        }
        for base in &self.cgroup {
            writeln!(f, "{base}")?;
        }
        writeln!(
            f,
            "# history, oldest first: sample uptime cum_user cum_system workers rss_avg \
             master(s)"
        )?;
        for s in self.history.samples() {
            writeln!(
                f,
                "sample {:.2} {} {} {} {} {}",
                s.uptime, s.cum.user, s.cum.system, s.workers, s.rss_avg, s.master
            )?;
        }
        Ok(())
    }
}
