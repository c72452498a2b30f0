//! Acquisition after selection: what costs a read or more per process is read for the
//! selected workers and masters only (fds, limits, PSS and USS within the time left; the
//! masters' I/O split from their reaped children's), each through its directory opened again
//! and checked to be the same process.

use std::path::Path;
use std::time::Duration;

use crate::catalog::{MetricSet, Source};
use crate::deadline::Deadline;

use super::parse::{cgroup_text, open_files_limit, smaps_rollup};
use super::proc_dir::{ProcDir, ProcReader};
use super::values::{Details, IoStatus, ProcSample, SmapsCut};
use crate::counter::Counters;

/// Which per-worker details a run reads: those of the metrics it reports (see
/// [`crate::catalog::Source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailReads {
    /// `fd/`
    pub fds: bool,
    /// `limits`
    pub limits: bool,
    /// `smaps_rollup`, whose cost grows with the memory a worker maps
    pub smaps: bool,
    /// the kernel's listening sockets, and the socket links of `fd/` (see `sockets`)
    pub queues: bool,
}

impl DetailReads {
    /// The files the metrics of `set` are computed from.
    pub fn of(set: MetricSet) -> DetailReads {
        DetailReads {
            fds: set.reads(Source::Fds),
            limits: set.reads(Source::Limits),
            smaps: set.reads(Source::SmapsRollup),
            queues: set.reads(Source::Listen),
        }
    }
}

/// A first guess at what `smaps_rollup` costs per byte of a worker's RSS (the kernel walks
/// each mapped page's entry: about 7 ms per GiB measured), until the run has timed its own.
const SMAPS_NS_PER_BYTE: f64 = 7e6 / (1u64 << 30) as f64;

/// Reads the per-worker details of the selected workers that `reads` asks for: fd count and
/// limit, PSS and USS. Permission problems leave a detail at None; a worker that exits
/// meanwhile keeps None too, and so does one whose pid now belongs to another process (its
/// start time differs): the details of that process would be another program's.
///
/// `smaps_rollup` costs about 7 ms per GiB a worker maps, so 100 postgres backends mapping
/// 8 GiB of shared buffers cost seconds: before each such read the time it would take is
/// predicted from the worker's RSS and the slowest rate seen so far, and once it would not
/// fit before `deadline` no more are read. Some(cut) then says how far they got.
///
/// Each worker's directory is opened again here rather than kept open since the scan: a scan
/// can pass over thousands of candidates, and holding a descriptor for each would run into
/// RLIMIT_NOFILE.
pub fn enrich(
    root: &Path,
    workers: &mut [ProcSample],
    reads: DetailReads,
    deadline: Deadline,
) -> Option<SmapsCut> {
    let mut reader = ProcReader::new(root);
    let mut smaps = reads.smaps.then_some(SmapsBudget {
        deadline,
        ns_per_byte: SMAPS_NS_PER_BYTE,
        cut: None,
    });
    let of = workers.len();
    for (i, w) in workers.iter_mut().enumerate() {
        let Some(dir) = reader.reopen(w) else {
            w.details = Some(Details::default());
            continue;
        };
        let mut details = cheap_details(&mut reader, &dir, reads);
        if let Some(budget) = smaps.as_mut().filter(|b| b.cut.is_none()) {
            match budget.fits(w.rss) {
                true => {
                    (details.pss, details.uss) = budget.timed(|| pss_uss(&mut reader, &dir), w.rss)
                }
                false => budget.cut = Some(SmapsCut { read: i, of }),
            }
        }
        w.details = Some(details);
        if w.cgroup.is_none() {
            w.cgroup = reader
                .read_at(&dir, "cgroup")
                .ok()
                .and_then(|()| cgroup_text(reader.bytes()));
        }
    }
    smaps.and_then(|b| b.cut)
}

/// Reads the `/proc/PID/cgroup` of each worker neither the scan (which does for `--unit` and
/// `--cgroup` only) nor [`enrich`] read it for, through its directory opened again: the
/// cgroup figures are those of the cgroup that holds the workers. One that exited or whose pid was reused keeps
/// None, which leaves the cgroup figures out rather than read another process's cgroup.
pub fn cgroup_files(root: &Path, workers: &mut [ProcSample]) {
    let mut reader = ProcReader::new(root);
    for w in workers.iter_mut().filter(|w| w.cgroup.is_none()) {
        if let Some(dir) = reader.reopen(w) {
            w.cgroup = reader
                .read_at(&dir, "cgroup")
                .ok()
                .and_then(|()| cgroup_text(reader.bytes()));
        }
    }
}

/// The time left for `smaps_rollup` reads, and what they have been seen to cost.
struct SmapsBudget {
    deadline: Deadline,
    /// the slowest rate seen (or the first guess), nanoseconds per byte of RSS
    ns_per_byte: f64,
    cut: Option<SmapsCut>,
}

impl SmapsBudget {
    /// Whether a read for a worker of `rss` bytes is predicted to end before the deadline,
    /// with room to spare for a misjudged one.
    fn fits(&self, rss: u64) -> bool {
        let predicted = Duration::from_nanos((rss as f64 * self.ns_per_byte * 2.0) as u64);
        self.deadline.remaining() > predicted + Duration::from_millis(5)
    }

    /// Runs one read and learns its rate.
    fn timed<T>(&mut self, read: impl FnOnce() -> T, rss: u64) -> T {
        let started = std::time::Instant::now();
        let value = read();
        let rate = started.elapsed().as_nanos() as f64 / rss.max(1 << 20) as f64;
        self.ns_per_byte = self.ns_per_byte.max(rate);
        value
    }
}

/// The details whose cost does not grow with the worker's memory, as far as `reads` asks.
fn cheap_details(reader: &mut ProcReader, dir: &ProcDir, reads: DetailReads) -> Details {
    let fds = reads.fds.then(|| dir.count_entries("fd").ok()).flatten();
    let fd_limit = reads
        .limits
        .then(|| {
            reader
                .read_at(dir, "limits")
                .ok()
                .and_then(|()| open_files_limit(reader.bytes()))
        })
        .flatten();
    Details {
        fds,
        fd_limit,
        ..Details::default()
    }
}

/// PSS and USS from `smaps_rollup`, bytes; None where it may not be read.
fn pss_uss(reader: &mut ProcReader, dir: &ProcDir) -> (Option<u64>, Option<u64>) {
    match reader.read_at(dir, "smaps_rollup") {
        Ok(()) => smaps_rollup(reader.bytes()),
        Err(_) => (None, None),
    }
}

/// Reads the masters' I/O once more, now split: `/proc/PID/io` is the whole process, and each
/// `task/TID/io` one live thread's own, so what is left over is what the kernel added when the
/// master reaped its children (and when its own threads exited): the I/O of exited workers, as
/// `cutime`/`cstime` hold their CPU. The whole is read first, so I/O the master does between
/// the reads lowers the reaped part rather than raising it. A master that exited or whose pid
/// was reused keeps `reaped` empty; one whose files are not readable gets
/// `IoStatus::Unreadable`.
pub fn master_io(root: &Path, masters: &mut [ProcSample]) {
    let mut reader = ProcReader::new(root);
    for m in masters {
        m.reaped = Counters::default();
        let Some(dir) = reader.reopen(m) else {
            continue;
        };
        let (status, whole) = reader.io(&dir, "io");
        m.io = status;
        m.counters.take_io(&whole);
        if status != IoStatus::Read {
            continue;
        }
        if let Some(threads) = reader.threads_io(&dir) {
            for (counter, own) in threads.known() {
                let reaped = whole.get(counter).map(|n| n.saturating_sub(own));
                m.reaped.put(counter, reaped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::Counter::{ReadBytes, WriteBytes};
    use crate::sample::fake::{fake_process, io_file};
    use std::fs;

    // A worker's pid reused between the scan and `enrich` gave the new process's fds, limits,
    // PSS and cgroup to the worker's row.
    #[test]
    fn details_of_a_reused_pid_are_not_taken() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "other", 5000, 3);
        let mut workers = vec![ProcSample {
            pid: 812,
            starttime: 1000,
            ..ProcSample::default()
        }];
        let all = DetailReads::of(MetricSet::all());
        let forever = Deadline::new(std::time::Instant::now(), Duration::from_secs(3600));
        enrich(root.path(), &mut workers, all, forever);
        cgroup_files(root.path(), &mut workers);
        assert_eq!(workers[0].details, Some(Details::default()));
        assert_eq!(workers[0].cgroup, None);
        // the same process: its details are read
        workers[0].starttime = 5000;
        enrich(root.path(), &mut workers, all, forever);
        cgroup_files(root.path(), &mut workers);
        let expected = Details {
            fds: Some(3),
            fd_limit: Some(1024),
            pss: Some(2048 * 1024),
            uss: Some(512 * 1024),
        };
        assert_eq!(workers[0].details, Some(expected));
        assert_eq!(
            workers[0].cgroup.as_deref(),
            Some("0::/system.slice/other.service\n")
        );
    }

    // smaps_rollup may cost seconds for workers that map gigabytes (issue 17): once the
    // deadline leaves no time for the next read, no more are read and the cut says so.
    #[test]
    fn smaps_reads_stop_at_the_deadline_and_only_when_asked() {
        let root = tempfile::tempdir().unwrap();
        for pid in [812, 813] {
            fake_process(root.path(), &pid.to_string(), pid, "w", 5000, 3);
        }
        let workers = || {
            [812, 813].map(|pid| ProcSample {
                pid,
                starttime: 5000,
                rss: 1 << 30,
                ..ProcSample::default()
            })
        };
        let now = std::time::Instant::now();
        let forever = Deadline::new(now, Duration::from_secs(3600));
        let passed = Deadline::new(now - Duration::from_secs(5), Duration::from_secs(1));
        let pss = DetailReads::of(MetricSet::defaults().with(crate::catalog::MetricName::Pss));
        let mut all = workers();
        assert_eq!(enrich(root.path(), &mut all, pss, forever), None);
        assert!(all
            .iter()
            .all(|w| w.details.as_ref().unwrap().pss.is_some()));
        let mut late = workers();
        assert_eq!(
            enrich(root.path(), &mut late, pss, passed),
            Some(SmapsCut { read: 0, of: 2 })
        );
        assert!(late
            .iter()
            .all(|w| w.details.as_ref().unwrap().pss.is_none()));
        // the cheap details are still read
        assert_eq!(late[0].details.as_ref().unwrap().fds, Some(3));
        // by default smaps_rollup is not read at all
        let mut default = workers();
        let reads = DetailReads::of(MetricSet::defaults());
        assert_eq!(enrich(root.path(), &mut default, reads, passed), None);
        assert_eq!(default[0].details.as_ref().unwrap().pss, None);
    }

    // What the kernel added to a master's io when it reaped its children is its whole io less
    // its live threads' own (task/TID/io).
    #[test]
    fn a_masters_reaped_io_is_its_whole_less_its_threads() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "nginx", 1000, 0);
        let dir = root.path().join("812");
        fs::write(dir.join("io"), io_file(10_000, 50_000)).unwrap();
        for (tid, own) in [(812, 1000), (900, 2000)] {
            fs::create_dir_all(dir.join(format!("task/{tid}"))).unwrap();
            fs::write(dir.join(format!("task/{tid}/io")), io_file(own, own * 10)).unwrap();
        }
        let mut masters = vec![ProcSample {
            pid: 812,
            starttime: 1000,
            ..ProcSample::default()
        }];
        master_io(root.path(), &mut masters);
        let m = &masters[0];
        let bytes = |c: Counters| (c.get(ReadBytes), c.get(WriteBytes));
        assert_eq!(bytes(m.reaped), (Some(7000), Some(20_000)));
        assert_eq!(bytes(m.own()), (Some(3000), Some(30_000)));
        // a thread's io unreadable: the split is unknown
        fs::remove_file(dir.join("task/900/io")).unwrap();
        fs::create_dir(dir.join("task/900/io")).unwrap();
        master_io(root.path(), &mut masters);
        assert_eq!(masters[0].reaped, Counters::default());
        // a reused pid: nothing is taken from the new process
        masters[0].starttime = 5;
        master_io(root.path(), &mut masters);
        assert_eq!(masters[0].reaped, Counters::default());
    }
}
