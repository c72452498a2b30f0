//! State, the workers' cgroup: what the tick file keeps of it so the next run can measure its
//! counters over the interval. One line per hierarchy read, its values named like a process
//! line's: `cgroup hierarchy=unified ino=4242 uptime=1000.52 some_cpu_us=123 ...`. The inode
//! says which cgroup the counters are of (a unit restarted has a new one), the uptime when
//! they were read.

use std::fmt;

use anyhow::{bail, ensure, Context, Result};

use crate::sample::{CgCounter, CgroupReading, Hierarchy};

/// One hierarchy's cgroup at a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupBase {
    pub hierarchy: Hierarchy,
    /// the inode of its directory
    pub ino: u64,
    /// uptime when its counters were read, seconds
    pub uptime: f64,
    /// the counters read there, in [`CgCounter::ALL`] order; one not read is not listed
    pub counters: Vec<(CgCounter, u64)>,
}

impl CgroupBase {
    /// The value of `counter` at this reading, where read.
    pub fn get(&self, counter: CgCounter) -> Option<u64> {
        self.counters
            .iter()
            .find(|(c, _)| *c == counter)
            .map(|&(_, v)| v)
    }
}

/// What a reading of the cgroup leaves as baseline: per hierarchy read, the counters read
/// from it.
pub fn bases(reading: &CgroupReading) -> Vec<CgroupBase> {
    reading
        .places
        .iter()
        .map(|place| CgroupBase {
            hierarchy: place.hierarchy,
            ino: place.ino,
            uptime: reading.uptime,
            counters: reading
                .counters
                .iter()
                .filter(|c| c.hierarchy == Some(place.hierarchy))
                .filter_map(|c| Some((c.counter, *c.value.as_ref().ok()?)))
                .collect(),
        })
        .filter(|b| b.uptime.is_finite() && b.uptime >= 0.0)
        .collect()
}

/// A `cgroup` line's values, named, in any order; a key this release does not know is a later
/// release's, and skipped. `seen` holds the hierarchies of the lines before: one line each.
pub fn parse_line(values: &[&str], seen: &[CgroupBase]) -> Result<CgroupBase> {
    let (mut hierarchy, mut ino, mut uptime) = (None, None, None);
    let mut counters: Vec<(CgCounter, u64)> = Vec::new();
    for pair in values {
        let (key, value) = pair.split_once('=').context("not key=value")?;
        let repeated = match key {
            "hierarchy" => hierarchy
                .replace(Hierarchy::from_key(value).context("unknown hierarchy")?)
                .is_some(),
            "ino" => ino.replace(value.parse::<u64>()?).is_some(),
            "uptime" => uptime.replace(value.parse::<f64>()?).is_some(),
            _ => match CgCounter::from_key(key) {
                Some(c) if counters.iter().any(|(have, _)| *have == c) => true,
                Some(c) => {
                    counters.push((c, value.parse()?));
                    false
                }
                None => false,
            },
        };
        ensure!(!repeated, "repeated {key}");
    }
    let hierarchy = hierarchy.context("no hierarchy")?;
    if seen.iter().any(|b| b.hierarchy == hierarchy) {
        bail!("repeated cgroup hierarchy {}", hierarchy.key());
    }
    let uptime = uptime.context("no uptime")?;
    ensure!(uptime.is_finite() && uptime >= 0.0, "bad uptime");
    counters.sort();
    Ok(CgroupBase {
        hierarchy,
        ino: ino.context("no ino")?,
        uptime,
        counters,
    })
}

impl fmt::Display for CgroupBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cgroup hierarchy={} ino={} uptime={:.2}",
            self.hierarchy.key(),
            self.ino,
            self.uptime
        )?;
        for (counter, value) in &self.counters {
            write!(f, " {}={value}", counter.key())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<CgroupBase> {
        let values: Vec<&str> = line.split(' ').collect();
        parse_line(&values, &[])
    }

    #[test]
    fn a_line_round_trips_and_names_its_values() {
        let base = CgroupBase {
            hierarchy: Hierarchy::Unified,
            ino: 4242,
            uptime: 1000.52,
            counters: vec![(CgCounter::SomeCpu, 123), (CgCounter::SomeIo, 0)],
        };
        let line = base.to_string();
        assert_eq!(
            line,
            "cgroup hierarchy=unified ino=4242 uptime=1000.52 some_cpu_us=123 some_io_us=0"
        );
        let values: Vec<&str> = line.split(' ').skip(1).collect();
        assert_eq!(parse_line(&values, &[]).unwrap(), base);
        assert!(
            parse_line(&values, std::slice::from_ref(&base)).is_err(),
            "one line a hierarchy"
        );
        // a later release's key is skipped; order does not matter
        let later = parse("ino=1 future=9 oom_kill=2 hierarchy=memory uptime=5").unwrap();
        assert_eq!(later.counters, [(CgCounter::OomKill, 2)]);
    }

    #[test]
    fn hostile_lines_are_refused() {
        for bad in [
            "hierarchy=memory uptime=5",
            "hierarchy=memory ino=1",
            "hierarchy=blkio ino=1 uptime=5",
            "hierarchy=memory ino=1 uptime=-5",
            "hierarchy=memory ino=1 uptime=inf",
            "hierarchy=memory ino=1 uptime=5 oom_kill=-1",
            "hierarchy=memory ino=1 uptime=5 oom_kill=1 oom_kill=2",
            "hierarchy=memory ino=1 ino=2 uptime=5",
            "hierarchy=memory ino=1 uptime=5 oom_kill",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
