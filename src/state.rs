//! State step: the tick file one run leaves for the next, so CPU and I/O are measured over the
//! real interval between two checks instead of over each process's lifetime.
//!
//! The file is plain text an operator can read: a version line, the sample time and boot time,
//! then one line per process (the per-worker baseline), then the short history of earlier runs
//! (one line per run, see [`crate::history`]). Anything that does not parse is "no baseline",
//! never an error: a corrupt file must not fail every run after it.

mod cgroup;
mod dir;
mod format;

use std::fmt;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write as _};
use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

pub use cgroup::{bases as cgroup_bases, CgroupBase};
pub use dir::{OpenStateDir, Parent, StateDir, PACKAGED_DIR};
pub use format::{FORMAT_LINE, FORMAT_V1, FORMAT_V2};

use crate::counter::Counters;
use crate::history::{self, Cum, History, Sample};
use crate::sample::{ProcSample, Snapshot};

/// Refuse to read more than this: a real file holds ~60 bytes per worker and ~60 per sample of
/// history, so 10,000 workers and a full history stay under 1 MiB.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The ticks of one process at the previous sample. Pid and starttime together identify a
/// process: pids are reused, a start time never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTicks {
    pub pid: i32,
    /// clock ticks after boot
    pub starttime: u64,
    /// the counters of [`crate::counter`], where known: the CPU ticks always; the `io` ones a
    /// worker's own, a master's reaped children's (see [`ProcSample::reaped`])
    pub counters: Counters,
}

/// A worker's line.
impl From<&ProcSample> for ProcTicks {
    fn from(p: &ProcSample) -> ProcTicks {
        ProcTicks {
            pid: p.pid,
            starttime: p.starttime,
            counters: p.own(),
        }
    }
}

impl ProcTicks {
    /// A master's line: like a worker's, but with the I/O of its reaped children, which is
    /// what exited workers are recovered from (as their CPU is from `cutime`/`cstime`).
    pub fn of_master(p: &ProcSample) -> ProcTicks {
        let mut counters = p.counters;
        counters.take_io(&p.reaped);
        ProcTicks {
            pid: p.pid,
            starttime: p.starttime,
            counters,
        }
    }
}

/// The workers and the masters of a reading, as the state keeps them (the selection is the
/// caller's: the state needs no more of it than these).
pub type Processes<'a> = (&'a [ProcSample], &'a [ProcSample]);

/// What one run saves for the next: the per-worker baseline (the ticks of each process at one
/// reading, what CPU per worker and the next interval are measured against) and the history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TickState {
    /// system uptime when the per-worker baseline was read, seconds
    pub uptime: f64,
    /// boot time, seconds since the epoch
    pub btime: u64,
    /// clock ticks per second the ticks are counted in
    pub clock_ticks: u64,
    pub workers: Vec<ProcTicks>,
    pub masters: Vec<ProcTicks>,
    /// the workers' running CPU totals at the baseline (zero in a v1 file)
    pub base: Cum,
    /// one sample per earlier run (empty in a v1 file)
    pub history: History,
    /// the workers' cgroup at the baseline, one per hierarchy read (none in a file of a
    /// release before them)
    pub cgroup: Vec<CgroupBase>,
}

impl TickState {
    /// A baseline of this reading of `workers` and `masters`, with no history.
    pub fn new(snapshot: &Snapshot, (workers, masters): Processes) -> TickState {
        TickState {
            uptime: snapshot.uptime,
            btime: snapshot.btime,
            clock_ticks: snapshot.clock_ticks,
            workers: workers.iter().map(ProcTicks::from).collect(),
            masters: masters.iter().map(ProcTicks::of_master).collect(),
            base: Cum::default(),
            history: History::default(),
            cgroup: snapshot
                .cgroup
                .as_ref()
                .map(cgroup::bases)
                .unwrap_or_default(),
        }
    }

    /// What this run leaves for the next: `stored`'s history with this run's `sample`, and
    /// as baseline this reading, or `stored`'s own while it is too young to measure the
    /// workers' ticks against (`keep_baseline`): replacing it every run would let runs a
    /// fraction of a second apart each measure over a fraction of a second. `window` is
    /// `--average`, seconds, which the history must span.
    pub fn next(
        stored: Option<&TickState>,
        (snapshot, processes): (&Snapshot, Processes),
        sample: Sample,
        keep_baseline: bool,
        window: Option<u64>,
    ) -> TickState {
        let mut next = match stored {
            Some(stored) if keep_baseline => TickState {
                history: History::default(),
                workers: stored.workers.clone(),
                masters: stored.masters.clone(),
                cgroup: stored.cgroup.clone(),
                ..*stored
            },
            // the baseline's uptime is its sample's, to the hundredth the file keeps
            _ => TickState {
                uptime: history::centiseconds(sample.uptime),
                base: sample.cum,
                ..TickState::new(snapshot, processes)
            },
        };
        next.history = stored.map(|s| s.history.clone()).unwrap_or_default();
        next.history.record(sample, window);
        next
    }
}

/// Why a run has no previous sample to measure CPU against.
#[derive(Debug, Clone, PartialEq)]
pub enum NoBaseline {
    /// no tick file yet
    FirstRun,
    /// the file exists but could not be read or parsed
    Corrupt(String),
    /// another check with the same selection holds the tick file
    Busy,
    /// the state dir or the lock file cannot be used (the run says why)
    Unusable,
}

impl fmt::Display for NoBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBaseline::FirstRun => write!(f, "first run"),
            NoBaseline::Corrupt(why) => write!(f, "tick file discarded: {why}"),
            NoBaseline::Busy => write!(f, "another check of the same workers is running"),
            NoBaseline::Unusable => write!(f, "no usable state dir"),
        }
    }
}

/// Exclusive hold on one selection's tick file for the whole read-modify-write, so two checks
/// of the same workers (an Icinga retry, an operator by hand) never interleave their samples.
/// Released when dropped (or when the process exits).
#[derive(Debug)]
pub struct TickLock {
    _file: File,
}

/// The lock file beside a tick file: `nginx-<hash>.ticks` -> `nginx-<hash>.lock`.
fn lock_name(tick_name: &str) -> String {
    format!(
        "{}.lock",
        tick_name.strip_suffix(".ticks").unwrap_or(tick_name)
    )
}

/// Takes the lock beside the tick file `tick_name`, waiting at most `wait`. `Ok(None)` when
/// another check kept it that long: the caller goes on without the baseline rather than block.
pub fn lock(dir: &OpenStateDir, tick_name: &str, wait: Duration) -> Result<Option<TickLock>> {
    let name = lock_name(tick_name);
    let shown = || dir.path().join(&name).display().to_string();
    let file = dir
        .open_file(
            &name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK,
            0o600,
        )
        .and_then(regular_file)
        .with_context(|| format!("cannot open lock file {}", shown()))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(TickLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", shown()))
            }
        }
    }
}

/// Only regular files: a FIFO or device planted at one of our names would stall or feed us.
fn regular_file(file: File) -> std::io::Result<File> {
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}

/// Reads the previous tick file. Never fails: whatever goes wrong means no baseline. A symlink
/// or FIFO planted at the tick file's place is not followed or waited on (`O_NOFOLLOW`,
/// `O_NONBLOCK`) and counts as corrupt.
pub fn load(dir: &OpenStateDir, tick_name: &str) -> Result<TickState, NoBaseline> {
    let file = match dir.open_file(tick_name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(NoBaseline::FirstRun),
        Err(e) => return Err(NoBaseline::Corrupt(e.to_string())),
    };
    let file = regular_file(file).map_err(|e| NoBaseline::Corrupt(e.to_string()))?;
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        return Err(NoBaseline::Corrupt(e.to_string()));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(NoBaseline::Corrupt("larger than 64 MiB".into()));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| NoBaseline::Corrupt("not text".into()))?;
    TickState::parse(text).map_err(|e| NoBaseline::Corrupt(format!("{e:#}")))
}

/// Prefix of temp files; a killed run's leftovers are swept a day later.
const TEMP_PREFIX: &str = ".tmp-";

/// Writes the tick file atomically: a temp file in the same directory (`O_CREAT|O_EXCL`), flushed
/// to disk, then renamed over the old one and the directory synced, so a run killed at any
/// instant leaves the old or the new file.
pub fn save(dir: &OpenStateDir, tick_name: &str, state: &TickState) -> Result<()> {
    save_until(dir, tick_name, state, None)
}

/// The steps of [`save`], in order. A run killed between two steps leaves what the earlier one
/// made; the tests stop a save after each to prove every such instant is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // only tests stop a save early
enum SaveStep {
    /// the temp file exists under its fresh name, empty
    Created,
    /// the new ticks are in the temp file (perhaps only in the page cache)
    Written,
    /// the temp file is on disk (fsync)
    Synced,
    /// the temp file has replaced the tick file (renameat)
    Renamed,
    /// the rename is on disk (fsync of the directory)
    DirSynced,
}

/// [`save`], which stops right after `stop_after` when given, as a run killed there would:
/// nothing after it runs, not even the removal of the temp file. `None` runs every step.
fn save_until(
    dir: &OpenStateDir,
    tick_name: &str,
    state: &TickState,
    stop_after: Option<SaveStep>,
) -> Result<()> {
    let stops_after = |step| stop_after == Some(step);
    let shown = dir.path().display();
    let (temp, mut file) =
        create_temp(dir).with_context(|| format!("cannot write tick file in {shown}"))?;
    if stops_after(SaveStep::Created) {
        return Ok(());
    }
    // true: the rename is done; false: stopped before the end, as a killed run
    let mut steps = || -> Result<bool> {
        file.write_all(state.to_string().as_bytes())
            .with_context(|| format!("cannot write tick file in {shown}"))?;
        if stops_after(SaveStep::Written) {
            return Ok(false);
        }
        file.sync_all()
            .with_context(|| format!("cannot write tick file in {shown}"))?;
        if stops_after(SaveStep::Synced) {
            return Ok(false);
        }
        dir.rename(&temp, tick_name)
            .with_context(|| format!("cannot write tick file {shown}/{tick_name}"))?;
        Ok(!stops_after(SaveStep::Renamed))
    };
    match steps() {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(e) => {
            let _ = dir.remove(&temp);
            return Err(e);
        }
    }
    // make the rename itself durable; failing that only risks the old file after a crash
    let _ = dir.sync();
    Ok(())
}

/// A new 0600 temp file under a fresh name; `O_EXCL` makes a name someone else took an error,
/// never a file of theirs we write into.
fn create_temp(dir: &OpenStateDir) -> std::io::Result<(String, File)> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
    let mut attempt = 0;
    loop {
        let name = format!("{TEMP_PREFIX}{}-{nanos:08x}-{attempt}", std::process::id());
        match dir.open_file(&name, flags, 0o600) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            opened => return opened.map(|file| (name, file)),
        }
    }
}

/// Tick files nobody has updated for this long belong to selections nobody checks any more.
const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a state dir is swept for stale files.
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Marks the last sweep of a state dir by its mtime.
const SWEEP_MARKER: &str = ".last-sweep";

/// Removes tick files untouched for 7 days (with their lock files) and temp files a killed run
/// left behind. Cheap enough for every run: unless the marker is a day old, it costs one stat.
/// A tick file whose lock another run holds is left alone. Returns how many tick and temp files
/// went.
///
/// An explicit `--state-dir` may be shared with other programs, so only files this check wrote
/// go: regular files of our user, under our names, that start with our format line.
pub fn remove_stale(dir: &OpenStateDir, now: SystemTime) -> usize {
    if let Ok(marker) = dir.stat(SWEEP_MARKER) {
        if age(&marker, now) < SWEEP_EVERY {
            return 0;
        }
    }
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NONBLOCK;
    let touched = dir
        .open_file(SWEEP_MARKER, flags, 0o600)
        .and_then(regular_file)
        .and_then(|f| f.set_modified(now));
    if touched.is_err() {
        return 0;
    }
    let mut removed = 0;
    for name in dir.names() {
        if name.starts_with(TEMP_PREFIX) && written_by_us(dir, &name, now, SWEEP_EVERY, true) {
            removed += usize::from(dir.remove(&name).is_ok());
        } else if name.ends_with(".ticks") && written_by_us(dir, &name, now, STALE_AFTER, false) {
            // hold the selection's lock while removing, so a run in progress keeps its files
            if let Ok(Some(_lock)) = lock(dir, &name, Duration::ZERO) {
                removed += usize::from(dir.remove(&name).is_ok());
                let _ = dir.remove(&lock_name(&name));
            }
        }
    }
    removed
}

/// Whether `name` is a regular file of our user, at least `min_age` old, starting with our
/// format line (or, for a temp file a run was killed while writing, with part of it).
fn written_by_us(
    dir: &OpenStateDir,
    name: &str,
    now: SystemTime,
    min_age: Duration,
    partial: bool,
) -> bool {
    let Ok(file) = dir.open_file(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or_default();
    if !meta.is_file() || meta.uid() != dir.euid() || old < min_age {
        return false;
    }
    // a file of the release before counts too: it is swept like ours
    let expected = [FORMAT_LINE, FORMAT_V2, FORMAT_V1].map(|line| format!("{line}\n"));
    let mut head = Vec::new();
    if file
        .take(expected[0].len() as u64)
        .read_to_end(&mut head)
        .is_err()
    {
        return false;
    }
    expected
        .iter()
        .any(|e| head == e.as_bytes() || (partial && e.as_bytes().starts_with(&head)))
}

/// How long ago a file was modified (zero for one from the future).
fn age(stat: &FileStat, now: SystemTime) -> Duration {
    let secs = u64::try_from(stat.st_mtime).unwrap_or(0);
    let modified = SystemTime::UNIX_EPOCH + Duration::new(secs, stat.st_mtime_nsec as u32);
    now.duration_since(modified).unwrap_or_default()
}

/// One run's use of its tick file: the open state dir and the lock on the file, or why the run
/// has to do without. Whatever goes wrong with the state, the run still measures and reports.
#[derive(Debug)]
pub struct TickStore {
    name: String,
    held: Result<(OpenStateDir, Option<TickLock>), String>,
}

/// What became of the new ticks at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Written,
    /// a peer holds the lock and writes a fresh file itself
    LeftToPeer,
    /// the state dir or the file could not be used: why, one line
    Failed(String),
}

impl TickStore {
    /// Opens the state dir and takes the lock of the tick file `name`, waiting at most `wait`.
    pub fn open(dir: &StateDir, euid: u32, name: String, wait: Duration) -> TickStore {
        let held = dir
            .open(euid)
            .and_then(|open| {
                let lock = lock(&open, &name, wait)?;
                Ok((open, lock))
            })
            .map_err(|e| format!("{e:#}"));
        TickStore { name, held }
    }

    /// The previous ticks, or why there are none.
    pub fn load(&self) -> Result<TickState, NoBaseline> {
        match &self.held {
            Ok((dir, Some(_))) => load(dir, &self.name),
            Ok((_, None)) => Err(NoBaseline::Busy),
            Err(_) => Err(NoBaseline::Unusable),
        }
    }

    /// Saves the new ticks (when holding the lock), releases the lock, sweeps stale files.
    pub fn finish(self, state: &TickState, now: SystemTime) -> Saved {
        let (dir, lock) = match self.held {
            Ok(held) => held,
            Err(why) => return Saved::Failed(why),
        };
        let saved = match &lock {
            None => Saved::LeftToPeer,
            Some(_) => match save(&dir, &self.name, state) {
                Ok(()) => Saved::Written,
                Err(e) => Saved::Failed(format!("{e:#}")),
            },
        };
        drop(lock);
        remove_stale(&dir, now);
        saved
    }
}

/// One tick file per selection, so two services that watch different things never share
/// ticks: the name of the file for the selection whose stable key is `key` (the selector's
/// `state_key`). It starts with `label` (the process name or unit)
/// so an operator can tell files apart; the hash of the key keeps it unique and stable across
/// releases (FNV-1a, not std's unspecified hasher).
pub fn tick_file_name(key: &[u8], label: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = label
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{readable}-{hash:016x}.ticks")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::Counter;
    use crate::filter::{CgroupFilter, NameFilter, ParentSpec, Selector};

    /// The tick file name of `selector`, as the check names it.
    fn tick_file_name_of(selector: &Selector) -> String {
        tick_file_name(&selector.state_key(), &selector.state_label())
    }
    use crate::history::{Identity, MAX_SAMPLES};
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    fn sample_state() -> TickState {
        TickState {
            uptime: 1000.5,
            btime: 1_700_000_000,
            clock_ticks: 100,
            workers: vec![ProcTicks {
                pid: 813,
                starttime: 5000,
                counters: Counters::ticks([120, 30, 0, 0]).bytes(4096, 81_920),
            }],
            masters: vec![ProcTicks {
                pid: 812,
                starttime: 4000,
                counters: Counters::ticks([10, 5, 700, 90]),
            }],
            base: Cum {
                user: 5000,
                system: 700,
            },
            history: History::new(
                900,
                vec![
                    Sample {
                        uptime: 940.5,
                        cum: Cum {
                            user: 4000,
                            system: 600,
                        },
                        workers: 1,
                        rss_avg: 4 << 20,
                        master: Identity::new([(812, 4000)]),
                    },
                    Sample {
                        uptime: 1000.5,
                        cum: Cum {
                            user: 5000,
                            system: 700,
                        },
                        workers: 1,
                        rss_avg: 5 << 20,
                        master: Identity::new([(812, 4000)]),
                    },
                ],
            )
            .unwrap(),
            cgroup: Vec::new(),
        }
    }

    #[test]
    fn round_trips_through_text() {
        let state = sample_state();
        assert_eq!(TickState::parse(&state.to_string()).unwrap(), state);
    }

    #[test]
    fn file_is_readable_text() {
        let text = sample_state().to_string();
        assert!(text.starts_with("check_workers ticks v3\n"));
        assert!(text.contains("\nuptime 1000.50\nbtime 1700000000\nhz 100\n"));
        assert!(text.contains("\nbase 5000 700\n"));
        assert!(text.contains("\nkeep 900\n"));
        // a process's values name themselves, as proc(5) names them
        assert!(text.contains(
            "\nworker pid=813 start=5000 utime=120 stime=30 cutime=0 cstime=0 read_bytes=4096 \
             write_bytes=81920\n"
        ));
        assert!(
            text.contains("\nmaster pid=812 start=4000 utime=10 stime=5 cutime=700 cstime=90\n")
        );
        assert!(text.ends_with(
            "\nsample 940.50 4000 600 1 4194304 812:4000\n\
             sample 1000.50 5000 700 1 5242880 812:4000\n"
        ));
    }

    /// The workers' cgroup at the baseline: a line per hierarchy, its values named; a file
    /// without them (an older release's) still loads, with no cgroup baseline.
    #[test]
    fn cgroup_lines_round_trip_and_are_optional() {
        use crate::sample::{CgCounter, Hierarchy};
        let mut state = sample_state();
        state.cgroup = vec![
            CgroupBase {
                hierarchy: Hierarchy::Memory,
                ino: 3071,
                uptime: 1000.52,
                counters: vec![(CgCounter::OomKill, 2)],
            },
            CgroupBase {
                hierarchy: Hierarchy::Unified,
                ino: 99,
                uptime: 1000.52,
                counters: vec![(CgCounter::SomeCpu, 4078569), (CgCounter::SomeIo, 5)],
            },
        ];
        let text = state.to_string();
        assert!(text.contains(
            "\ncgroup hierarchy=memory ino=3071 uptime=1000.52 oom_kill=2\n\
             cgroup hierarchy=unified ino=99 uptime=1000.52 some_cpu_us=4078569 some_io_us=5\n"
        ));
        assert_eq!(TickState::parse(&text).unwrap(), state);
        assert!(!sample_state().to_string().contains("cgroup"));
        // a v2 file has no cgroup lines
        assert!(TickState::parse(&SAMPLE_V2.replace(
            "keep 900\n",
            "keep 900\ncgroup hierarchy=cpu ino=1 uptime=1\n"
        ))
        .is_err());
    }

    /// A file of the release before the history is still a baseline, with no history.
    #[test]
    fn v1_file_is_a_baseline_without_history() {
        let v1 = "check_workers ticks v1\n# written by check_workers; ticks are 1/hz seconds\n\
                  uptime 1000.50\nbtime 1700000000\nhz 100\n\
                  # kind pid starttime utime stime cutime cstime\n\
                  master 812 4000 10 5 700 90\nworker 813 5000 120 30 0 0\n";
        let state = TickState::parse(v1).unwrap();
        let mut expected = TickState {
            base: Cum::default(),
            history: History::default(),
            ..sample_state()
        };
        // v1 had no I/O columns: unknown
        expected.workers[0].counters = Counters::ticks([120, 30, 0, 0]);
        assert_eq!(state, expected);
        // v2's lines are not v1's
        for line in ["base 1 2\n", "keep 900\n", "sample 1000.50 0 0 1 0 -\n"] {
            assert!(TickState::parse(&format!("{v1}{line}")).is_err(), "{line}");
        }
    }

    #[test]
    fn next_keeps_a_young_baseline_and_records_the_sample() {
        let stored = sample_state();
        let snapshot = Snapshot {
            uptime: 1000.6,
            btime: stored.btime,
            clock_ticks: 100,
            ..Snapshot::default()
        };
        let selection: Processes = (&[], &[]);
        let sample = Sample {
            uptime: 1000.6,
            cum: Cum {
                user: 5003,
                system: 700,
            },
            ..Sample::default()
        };
        let kept = TickState::next(
            Some(&stored),
            (&snapshot, selection),
            sample.clone(),
            true,
            None,
        );
        assert_eq!((kept.uptime, kept.base), (stored.uptime, stored.base));
        assert_eq!(kept.workers, stored.workers);
        assert_eq!(kept.history.samples().len(), 3);
        assert_eq!(kept.history.newest(), Some(&sample));
        let replaced = TickState::next(
            Some(&stored),
            (&snapshot, selection),
            sample.clone(),
            false,
            Some(3600),
        );
        assert_eq!((replaced.uptime, replaced.base), (1000.6, sample.cum));
        assert!(replaced.workers.is_empty());
        assert_eq!(replaced.history.keep(), 3600);
        let first = TickState::next(None, (&snapshot, selection), sample, true, None);
        assert_eq!(first.history.samples().len(), 1);
        assert_eq!(first.base, first.history.samples()[0].cum);
        assert!(TickState::parse(&first.to_string()).is_ok());
        // an uptime finer than the file's hundredths is rounded alike in both places, so the
        // baseline is never written later than its own sample
        for odd in [1000.005, 1000.015, 1000.125, 1000.994999] {
            let at = |uptime| Snapshot {
                uptime,
                ..snapshot.clone()
            };
            let sample = Sample {
                uptime: odd,
                ..Sample::default()
            };
            let next = TickState::next(None, (&at(odd), selection), sample, false, None);
            assert_eq!(TickState::parse(&next.to_string()).unwrap(), next, "{odd}");
        }
    }

    /// `sample_state` as the release before wrote it (v2: a process's values in columns).
    const SAMPLE_V2: &str = "check_workers ticks v2
uptime 1000.50
btime 1700000000
hz 100
base 5000 700
keep 900
# kind pid starttime utime stime cutime cstime read_bytes write_bytes
master 812 4000 10 5 700 90 - -
worker 813 5000 120 30 0 0 4096 81920
sample 940.50 4000 600 1 4194304 812:4000
sample 1000.50 5000 700 1 5242880 812:4000
";

    /// A v2 file is still a baseline with its history; its next save is v3.
    #[test]
    fn v2_file_keeps_its_baseline_and_history() {
        let state = TickState::parse(SAMPLE_V2).unwrap();
        assert_eq!(state, sample_state());
        assert!(state.to_string().starts_with("check_workers ticks v3\n"));
    }

    /// Files written before the I/O columns keep their baseline: CPU as before, I/O unknown.
    #[test]
    fn lines_without_io_columns_still_parse() {
        let mut state = sample_state();
        let old = SAMPLE_V2
            .replace(" 4096 81920\n", "\n")
            .replace(" - -\n", "\n");
        assert!(old.contains("\nworker 813 5000 120 30 0 0\n"), "{old}");
        state.workers[0].counters = Counters::ticks([120, 30, 0, 0]);
        assert_eq!(TickState::parse(&old).unwrap(), state);
    }

    /// A key a later release adds to a process line is skipped, in any place.
    #[test]
    fn unknown_keys_of_a_later_release_are_skipped() {
        let good = sample_state().to_string();
        let later = good
            .replace("worker pid=813 ", "worker minflt=77 pid=813 ")
            .replace("cstime=90\n", "cstime=90 majflt=3\n");
        assert_ne!(later, good);
        assert_eq!(TickState::parse(&later).unwrap(), sample_state());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = sample_state().to_string();
        let cases = [
            String::new(),
            "hello".to_string(),
            "check_workers ticks v9\n".to_string(),
            good.replace("worker pid=813", "worker pid=-813"),
            good.replace("utime=120", "utime=99999999999999999999999"),
            good.replace("utime=120", "utime=-1"),
            good.replace("utime=120", "utime="),
            good.replace("utime=120", "utime"),
            good.replace("utime=120", "utime=120 utime=121"),
            good.replace("pid=813", "pid=9999999999"),
            good.replace(" cstime=0 ", " "),
            good.replace("start=5000 ", ""),
            good.replace("uptime 1000.50", "uptime NaN"),
            good.replace("uptime 1000.50", "uptime -1"),
            good.replace("hz 100\n", ""),
            format!("{good}worker pid=813 start=5000 utime=120 stime=30 cutime=0 cstime=0\n"),
            good.replace(" write_bytes=81920", ""),
            good.replace(" write_bytes=81920", " write_bytes=-"),
            good.replace(" write_bytes=81920", " write_bytes=-1"),
            // a v3 file's process lines name their values; columns are v2's
            good.replace(
                "worker pid=813 start=5000 utime=120 stime=30 cutime=0 cstime=0 \
                          read_bytes=4096 write_bytes=81920",
                "worker 813 5000 120 30 0 0 4096 81920",
            ),
            SAMPLE_V2.replace("120 30 0 0 4096 81920", "pid=813 start=5000 utime=120"),
            SAMPLE_V2.replace(" 4096 81920", " 4096"),
            SAMPLE_V2.replace(" 4096 81920", " 4096 -"),
            SAMPLE_V2.replace(" 4096 81920", " 4096 81920 7"),
            SAMPLE_V2.replace(" 4096 81920", " 4096 -1"),
            SAMPLE_V2.replace("worker 813 5000 120 30 0 0 4096 81920", "worker 813 5000"),
            format!("{good}uptime 5\n"),
            good.replace(' ', "  "),
            // the history: repeated or missing lines, out of order, bad fields
            good.replace("base 5000 700\n", ""),
            good.replace("keep 900\n", ""),
            format!("{good}base 1 2\n"),
            format!("{good}keep 60\n"),
            good.replace("keep 900", "keep 86401"),
            good.replace("keep 900", "keep -1"),
            format!("{good}sample 1000.50 1 1 1 1 -\n"),
            format!("{good}sample 999.00 1 1 1 1 -\n"),
            good.replace("sample 940.50", "sample NaN"),
            good.replace("sample 940.50", "sample inf"),
            good.replace("4194304 812:4000", "4194304"),
            good.replace("4194304 812:4000", "4194304 812"),
            good.replace("4194304 812:4000", "4194304 0:4000"),
            good.replace("4194304 812:4000", "4194304 812:4000 x"),
            good.replace("4194304 812:4000", "-4194304 812:4000"),
            // a baseline newer than the newest sample is not what a run writes
            good.replace("uptime 1000.50", "uptime 1000.51"),
        ];
        for case in cases {
            assert!(TickState::parse(&case).is_err(), "{case:?} must not parse");
        }
    }

    /// A fresh state dir of ours, opened.
    fn opened() -> (tempfile::TempDir, OpenStateDir) {
        let dir = tempfile::tempdir().unwrap();
        let euid = nix::unistd::geteuid().as_raw();
        let open = StateDir::resolve(Some(dir.path()), None, euid)
            .open(euid)
            .unwrap();
        (dir, open)
    }

    #[test]
    fn load_reports_why() {
        let (dir, open) = opened();
        let path = dir.path().join("x.ticks");
        assert_eq!(load(&open, "x.ticks"), Err(NoBaseline::FirstRun));
        fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(
            load(&open, "x.ticks"),
            Err(NoBaseline::Corrupt(_))
        ));
        save(&open, "x.ticks", &sample_state()).unwrap();
        assert_eq!(load(&open, "x.ticks"), Ok(sample_state()));
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    /// The same workers sampled a minute after [`sample_state`].
    fn later_state() -> TickState {
        a_minute_on(&sample_state())
    }

    /// `state` a minute on: the worker used 600 more ticks, the master reaped 50, and the
    /// history gained the sample (a v2 file's baseline is its newest sample).
    fn a_minute_on(state: &TickState) -> TickState {
        let mut state = state.clone();
        state.uptime += 60.0;
        let add = |counters: &mut Counters, counter, n| {
            counters.set(counter, counters.get(counter).unwrap() + n)
        };
        add(&mut state.workers[0].counters, Counter::Utime, 600);
        add(&mut state.masters[0].counters, Counter::Cutime, 50);
        state.base = state.base.plus(600, 0);
        let mut samples = state.history.samples().to_vec();
        samples.push(Sample {
            uptime: state.uptime,
            cum: state.base,
            workers: 1,
            rss_avg: 5 << 20,
            master: Identity::new([(812, 4000)]),
        });
        state.history = History::new(state.history.keep(), samples).unwrap();
        state
    }

    /// The temp files in `dir`, by path.
    fn temp_files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .map(|e| e.path())
            .collect()
    }

    /// The names in `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    const SAVE_STEPS: [SaveStep; 5] = [
        SaveStep::Created,
        SaveStep::Written,
        SaveStep::Synced,
        SaveStep::Renamed,
        SaveStep::DirSynced,
    ];

    /// Saves `new` over `old` (None: no tick file yet) and stops after `step`, as a run killed
    /// there; then asserts what the next runs find: the whole old file (or none) before the
    /// rename, the whole new one from it on, and a temp file that does not disturb the next
    /// save and that the sweep removes once it is a day old.
    fn crash_after(step: SaveStep, old: Option<&TickState>) {
        let (dir, open) = opened();
        let path = dir.path().join("x.ticks");
        if let Some(old) = old {
            save(&open, "x.ticks", old).unwrap();
        }
        let new = later_state();
        save_until(&open, "x.ticks", &new, Some(step)).unwrap();

        let renamed = matches!(step, SaveStep::Renamed | SaveStep::DirSynced);
        let found = if renamed { Some(&new) } else { old };
        match found {
            Some(state) => {
                assert_eq!(
                    fs::read_to_string(&path).unwrap(),
                    state.to_string(),
                    "{step:?}"
                );
                assert_eq!(load(&open, "x.ticks"), Ok(state.clone()), "{step:?}");
            }
            None => {
                assert!(!path.exists(), "{step:?}");
                assert_eq!(
                    load(&open, "x.ticks"),
                    Err(NoBaseline::FirstRun),
                    "{step:?}"
                );
            }
        }
        let temps = temp_files(dir.path());
        if renamed {
            assert_eq!(temps, Vec::<PathBuf>::new(), "{step:?}");
        } else {
            assert_eq!(temps.len(), 1, "{step:?}: {temps:?}");
            let content = fs::read_to_string(&temps[0]).unwrap();
            let written = if step == SaveStep::Created {
                String::new()
            } else {
                new.to_string()
            };
            assert_eq!(content, written, "{step:?}");
            let mode = fs::metadata(&temps[0]).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{step:?}");
        }

        // the next run saves as usual, the leftover beside it
        let next = a_minute_on(&new);
        save(&open, "x.ticks", &next).unwrap();
        assert_eq!(load(&open, "x.ticks"), Ok(next.clone()), "{step:?}");
        assert_eq!(temp_files(dir.path()), temps, "{step:?}");

        // the sweep leaves a young leftover alone and removes it a day later
        let now = SystemTime::now();
        assert_eq!(remove_stale(&open, now), 0, "{step:?}");
        assert_eq!(temp_files(dir.path()), temps, "{step:?}");
        let day_later = now + SWEEP_EVERY + Duration::from_secs(1);
        assert_eq!(remove_stale(&open, day_later), temps.len(), "{step:?}");
        assert_eq!(names_in(dir.path()), [SWEEP_MARKER, "x.ticks"], "{step:?}");
        assert_eq!(load(&open, "x.ticks"), Ok(next), "{step:?}");
    }

    /// Issue 10: crash safety proved at each step of `save`, not by killing runs at random
    /// instants and hoping one lands inside the write.
    #[test]
    fn crash_after_each_save_step_leaves_the_old_or_the_new_file() {
        for step in SAVE_STEPS {
            crash_after(step, Some(&sample_state()));
        }
    }

    #[test]
    fn crash_after_each_step_of_a_first_save_leaves_no_file_or_the_new_one() {
        for step in SAVE_STEPS {
            crash_after(step, None);
        }
    }

    #[test]
    fn file_name_differs_per_selection() {
        let base = Selector {
            name: Some(NameFilter::new("nginx")),
            ..Selector::default()
        };
        let name = tick_file_name_of(&base);
        assert!(name.starts_with("nginx-") && name.ends_with(".ticks"));
        let with_user = Selector {
            uid: Some(33),
            ..base.clone()
        };
        let with_master = Selector {
            include_master: true,
            ..base.clone()
        };
        assert_ne!(name, tick_file_name_of(&with_user));
        assert_ne!(name, tick_file_name_of(&with_master));
        let with_pidfile = Selector {
            parent: Some(ParentSpec::Pidfile("/run/nginx.pid".into())),
            ..base.clone()
        };
        assert_ne!(name, tick_file_name_of(&with_pidfile));
        let unit = Selector {
            cgroup: Some(CgroupFilter::Unit("php8.2-fpm.service".into())),
            ..Selector::default()
        };
        assert!(tick_file_name_of(&unit).starts_with("php8.2-fpm.service-"));
        assert_eq!(name, tick_file_name_of(&base), "stable");
        let odd = Selector {
            name: Some(NameFilter::new("a/../b c")),
            ..base
        };
        assert!(tick_file_name_of(&odd).starts_with("a_.._b_c-"));
    }

    // Upgrading must keep every baseline: these names were computed by the release before
    // the selection got one description (`Selector::parts`), and must never change.
    #[test]
    fn file_names_stay_as_released() {
        let name_of = |args: &[&str]| {
            let mut all = vec!["check_workers"];
            all.extend_from_slice(args);
            let config = crate::cli::parse(all, &crate::cli::Environment::default()).unwrap();
            tick_file_name_of(&config.selector)
        };
        let cases: [(&[&str], &str); 11] = [
            (&["-n", "nginx"], "nginx-99186b14f643583f.ticks"),
            (
                &["-n", "nginx", "-u", "33", "--include-master"],
                "nginx-8d1005ed0ce829bd.ticks",
            ),
            (
                &["--unit", "php8.2-fpm.service"],
                "php8.2-fpm.service-cc9c6af9d07cecd1.ticks",
            ),
            (
                &["--pidfile", "/run/nginx.pid"],
                "all-025fbd11167c7a4f.ticks",
            ),
            (&["-a", "gunicorn.*app"], "all-2b1e9187f46d58c6.ticks"),
            (
                &["--exe", "/usr/sbin/nginx", "-s", "RS"],
                "all-c647072f22c26941.ticks",
            ),
            (
                &["--cgroup", "/system.slice/php*"],
                "all-88ce2ba6ec9f4f71.ticks",
            ),
            (
                &["-n", "nginx", "--ppid", "812"],
                "nginx-b794b8ee596298d0.ticks",
            ),
            (&["-u", "0", "-s", "R,D"], "all-55715d6e2753b69b.ticks"),
            (
                &["-n", "php-fpm: pool www"],
                "php-fpm__pool_www-fee3a1a363807980.ticks",
            ),
            (
                &[
                    "-n",
                    "nginx",
                    "-u",
                    "0",
                    "--include-master",
                    "--pidfile",
                    "/run/nginx.pid",
                    "--cgroup",
                    "/system.slice/*",
                    "-a",
                    "worker",
                    "--exe",
                    "/usr/sbin/nginx",
                    "-s",
                    "S",
                ],
                "nginx-9376535067d545a4.ticks",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(name_of(args), want, "{args:?}");
        }
        // a name that is not UTF-8 is hashed as its bytes
        let raw = Selector {
            name: Some(NameFilter::from_bytes(b"w\xff|k")),
            ..Selector::default()
        };
        assert_eq!(tick_file_name_of(&raw), "w_xff_x7ck-18317da371b4150a.ticks");
    }

    mod fuzz {
        //! Property tests: a tick file of any content is at worst "no baseline".
        use super::super::*;
        use crate::history::Identity;
        use proptest::prelude::*;
        use std::collections::HashSet;

        fn ticks() -> impl Strategy<Value = ProcTicks> {
            (
                1i32..i32::MAX,
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                proptest::option::of((any::<u64>(), any::<u64>())),
            )
                .prop_map(|(pid, starttime, utime, stime, cutime, cstime, io)| {
                    let ticks = Counters::ticks([utime, stime, cutime, cstime]);
                    ProcTicks {
                        pid,
                        starttime,
                        counters: io.map_or(ticks, |(read, write)| ticks.bytes(read, write)),
                    }
                })
        }

        /// A history as runs make it: `keep`, and samples at increasing uptimes from `start`.
        fn history(start: u64) -> impl Strategy<Value = History> {
            let sample = (
                1u64..100_000,
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec((1i32..i32::MAX, any::<u64>()), 0..4),
            );
            (
                0..=crate::history::MAX_KEEP,
                proptest::collection::vec(sample, 0..12),
            )
                .prop_map(move |(keep, samples)| {
                    let mut centi = start;
                    let samples = samples
                        .into_iter()
                        .map(|(step, user, system, workers, rss_avg, masters)| {
                            centi += step;
                            Sample {
                                uptime: centi as f64 / 100.0,
                                cum: Cum { user, system },
                                workers,
                                rss_avg,
                                master: Identity::new(masters),
                            }
                        })
                        .collect();
                    History::new(keep, samples).unwrap()
                })
        }

        proptest! {
            #[test]
            fn parse_never_panics(text in "\\PC{0,200}") {
                let _ = TickState::parse(&text);
            }

            #[test]
            fn parse_of_line_soup_never_panics(lines in proptest::collection::vec(
                "(uptime|btime|hz|worker|master|base|keep|sample|#|check_workers ticks v[12])( -?[0-9.e+NaInf:,]{0,22}){0,9}", 0..20)) {
                let text = lines.join("\n");
                let _ = TickState::parse(&text);
                for header in [FORMAT_LINE, FORMAT_V2, FORMAT_V1] {
                    let _ = TickState::parse(&format!("{header}\n{text}"));
                }
            }

            #[test]
            fn edits_of_a_good_file_never_panic(at in 0usize..700, cut in 0usize..20, insert in "\\PC{0,5}") {
                let good = super::sample_state().to_string();
                let at = at.min(good.len());
                let mut bytes = good.into_bytes();
                let end = (at + cut).min(bytes.len());
                bytes.splice(at..end, insert.bytes());
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    let _ = TickState::parse(text);
                }
            }

            #[test]
            fn round_trip(centi in 0u64..10_000_000_000, btime: u64, hz in 1u64..10_000,
                          workers in proptest::collection::vec(ticks(), 0..20),
                          masters in proptest::collection::vec(ticks(), 0..3),
                          base: (u64, u64), history in history(10_000_000_000)) {
                let mut seen = HashSet::new();
                let workers: Vec<ProcTicks> = workers.into_iter().filter(|t| seen.insert(t.pid)).collect();
                let mut seen = HashSet::new();
                let masters: Vec<ProcTicks> = masters.into_iter().filter(|t| seen.insert(t.pid)).collect();
                let state = TickState {
                    uptime: centi as f64 / 100.0,
                    btime,
                    clock_ticks: hz,
                    workers,
                    masters,
                    base: Cum { user: base.0, system: base.1 },
                    history,
                    cgroup: Vec::new(),
                };
                prop_assert_eq!(TickState::parse(&state.to_string()).unwrap(), state);
            }
        }
    }

    #[test]
    fn a_million_lines_parse_or_fail_cleanly() {
        let mut text = sample_state().to_string().replace(
            "worker pid=813 start=5000 utime=120 stime=30 cutime=0 cstime=0 read_bytes=4096 \
                 write_bytes=81920\n",
            "",
        );
        for pid in 1..=1_000_000 {
            let _ = writeln!(
                text,
                "worker pid={pid} start=1 utime=2 stime=3 cutime=4 cstime=5"
            );
        }
        let state = TickState::parse(&text).unwrap();
        assert_eq!(state.workers.len(), 1_000_000);
        text.push_str("worker pid=5 start=1 utime=2 stime=3 cutime=4 cstime=5\n");
        let err = format!("{:#}", TickState::parse(&text).unwrap_err());
        assert!(err.contains("repeated pid 5"), "{err}");
    }

    /// The bound the README states: 10,000 workers and a full history in well under 1 MiB,
    /// and a history one sample longer than any run writes is refused at that sample.
    #[test]
    fn ten_thousand_workers_and_a_full_history_stay_under_two_mebibytes() {
        let mut state = sample_state();
        state.workers = (1..=10_000)
            .map(|pid| ProcTicks {
                pid: 4_000_000 + pid,
                starttime: 123_456_789,
                counters: Counters::ticks([12_345_678, 1_234_567, 0, 0])
                    .bytes(123_456_789_012, 98_765_432_109),
            })
            .collect();
        let mut history = History::default();
        for i in 0..3 * MAX_SAMPLES as u64 {
            let sample = Sample {
                uptime: 10_000_000.0 + i as f64 * 0.25,
                cum: Cum {
                    user: 1_000_000_000_000 + i * 1000,
                    system: 100_000_000_000 + i * 100,
                },
                workers: 10_000,
                rss_avg: 123_456_789,
                master: Identity::new([(4_000_000, 123_456_789)]),
            };
            history.record(sample, None);
        }
        state.uptime = history.newest().unwrap().uptime;
        state.history = history;
        let mut text = state.to_string();
        assert_eq!(state.history.samples().len(), MAX_SAMPLES);
        assert!(text.len() < 2 << 20, "{} bytes", text.len());
        assert_eq!(TickState::parse(&text).unwrap(), state);
        text.push_str("sample 99999999.00 1 1 1 1 -\n");
        let err = format!("{:#}", TickState::parse(&text).unwrap_err());
        assert!(err.contains("more than 1024 samples"), "{err}");
    }

    /// Writes `name` in `dir` with `text`, last modified `age` before `now`.
    fn aged(dir: &Path, name: &str, text: &str, now: SystemTime, age: Duration) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(now - age)
            .unwrap();
        path
    }

    #[test]
    fn stale_files_go_once_a_day() {
        let (dir, open) = opened();
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        let ours = sample_state().to_string();
        let file = |name: &str, age: Duration| aged(dir.path(), name, &ours, now, age);
        let old = file("old-0.ticks", 8 * day);
        let old_lock = file("old-0.lock", 8 * day);
        let fresh = file("fresh-0.ticks", 6 * day);
        let temp = aged(dir.path(), ".tmp-abc", "", now, 2 * day);
        let young_temp = aged(
            dir.path(),
            ".tmp-def",
            "check_work",
            now,
            Duration::from_secs(60),
        );
        let other = file("notes.txt", 30 * day);
        assert_eq!(remove_stale(&open, now), 2);
        assert!(!old.exists() && !old_lock.exists() && !temp.exists());
        assert!(fresh.exists() && young_temp.exists() && other.exists());
        // within a day of the last sweep nothing is looked at
        let later = file("later-0.ticks", 9 * day);
        assert_eq!(remove_stale(&open, now + Duration::from_secs(3600)), 0);
        assert!(later.exists());
        // a day on, the 6-day-old file is 7 days old and the young temp file a day old
        assert_eq!(remove_stale(&open, now + day), 3);
        assert!(!later.exists() && !fresh.exists() && !young_temp.exists());
    }

    /// An explicit --state-dir may be shared: only files this check wrote are swept.
    #[test]
    fn sweep_removes_only_what_the_check_wrote() {
        let (dir, open) = opened();
        let now = SystemTime::now();
        let old = Duration::from_secs(30 * 24 * 3600);
        let theirs = aged(dir.path(), "theirs.ticks", "my own notes\n", now, old);
        let their_temp = aged(dir.path(), ".tmp-theirs", "scratch\n", now, old);
        let outside = tempfile::tempdir().unwrap();
        let target = aged(
            outside.path(),
            "x.ticks",
            &sample_state().to_string(),
            now,
            old,
        );
        std::os::unix::fs::symlink(&target, dir.path().join("link.ticks")).unwrap();
        fs::create_dir(dir.path().join("sub.ticks")).unwrap();
        let fifo = dir.path().join("fifo.ticks");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let not_mine = aged(
            dir.path(),
            "nobody.ticks",
            &sample_state().to_string(),
            now,
            old,
        );
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&not_mine, Some(65534), None).unwrap();
        } else {
            fs::remove_file(&not_mine).unwrap();
        }
        assert_eq!(remove_stale(&open, now), 0);
        assert!(theirs.exists() && their_temp.exists() && target.exists());
        assert_eq!(not_mine.exists(), nix::unistd::geteuid().is_root());
        assert!(fs::symlink_metadata(dir.path().join("link.ticks")).is_ok());
        assert!(dir.path().join("sub.ticks").is_dir() && fifo.exists());
    }

    #[test]
    fn stale_file_in_use_is_kept() {
        let (dir, open) = opened();
        let path = dir.path().join("busy-0.ticks");
        fs::write(&path, sample_state().to_string()).unwrap();
        let now = SystemTime::now() + Duration::from_secs(30 * 24 * 3600);
        let _held = lock(&open, "busy-0.ticks", Duration::ZERO)
            .unwrap()
            .unwrap();
        assert_eq!(remove_stale(&open, now), 0);
        assert!(path.exists());
    }

    /// A FIFO at the sweep marker used to block the run until its timeout.
    #[test]
    fn fifo_at_the_sweep_marker_is_skipped() {
        let (dir, open) = opened();
        let marker = dir.path().join(SWEEP_MARKER);
        nix::unistd::mkfifo(&marker, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let later = SystemTime::now() + Duration::from_secs(30 * 24 * 3600);
        assert_eq!(remove_stale(&open, later), 0);
    }
}
