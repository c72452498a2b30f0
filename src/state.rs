//! State step: the tick file one run leaves for the next, so CPU is measured over the real
//! interval between two checks instead of over each process's lifetime.
//!
//! The file is plain text an operator can read: a version line, the sample time and boot time,
//! then one line per process. Anything that does not parse is "no baseline", never an error:
//! a corrupt file must not fail every run after it.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::{ErrorKind, Read, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::sample::{ProcSample, Snapshot};
use crate::select::{CgroupFilter, ParentSpec, Selection, Selector};

/// First line of every tick file; a file with another first line is not ours or too new.
pub const FORMAT_LINE: &str = "check_workers ticks v1";

/// Refuse to read more than this: a real file holds ~40 bytes per worker.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The ticks of one process at the previous sample. Pid and starttime together identify a
/// process: pids are reused, a start time never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTicks {
    pub pid: i32,
    /// clock ticks after boot
    pub starttime: u64,
    /// clock ticks
    pub utime: u64,
    /// clock ticks
    pub stime: u64,
    /// clock ticks of reaped children (kept for masters)
    pub cutime: u64,
    /// clock ticks of reaped children (kept for masters)
    pub cstime: u64,
}

impl From<&ProcSample> for ProcTicks {
    fn from(p: &ProcSample) -> ProcTicks {
        ProcTicks {
            pid: p.pid,
            starttime: p.starttime,
            utime: p.utime,
            stime: p.stime,
            cutime: p.cutime,
            cstime: p.cstime,
        }
    }
}

/// What one run saves for the next.
#[derive(Debug, Clone, PartialEq)]
pub struct TickState {
    /// system uptime when the sample was taken, seconds
    pub uptime: f64,
    /// boot time, seconds since the epoch
    pub btime: u64,
    /// clock ticks per second the ticks are counted in
    pub clock_ticks: u64,
    pub workers: Vec<ProcTicks>,
    pub masters: Vec<ProcTicks>,
}

impl TickState {
    pub fn new(snapshot: &Snapshot, selection: &Selection) -> TickState {
        TickState {
            uptime: snapshot.uptime,
            btime: snapshot.btime,
            clock_ticks: snapshot.clock_ticks,
            workers: selection.workers.iter().map(ProcTicks::from).collect(),
            masters: selection.masters.iter().map(ProcTicks::from).collect(),
        }
    }

    /// Parses a tick file; any deviation from the format is an error naming the line.
    pub fn parse(text: &str) -> Result<TickState> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, FORMAT_LINE)) => {}
            Some((_, other)) if other.starts_with("check_workers ticks ") => {
                bail!("unknown format {other:?}")
            }
            _ => bail!("not a tick file"),
        }
        let mut uptime = None;
        let mut btime = None;
        let mut clock_ticks = None;
        let mut workers = Vec::new();
        let mut masters = Vec::new();
        let mut seen = HashSet::new();
        for (index, line) in lines {
            let parsed = (|| -> Result<()> {
                if line.is_empty() || line.starts_with('#') {
                    return Ok(());
                }
                let mut fields = line.split(' ');
                let key = fields.next().unwrap_or_default();
                let values: Vec<&str> = fields.collect();
                match (key, values.as_slice()) {
                    ("uptime", [v]) => {
                        let v: f64 = v.parse()?;
                        if !v.is_finite() || v < 0.0 {
                            bail!("bad uptime");
                        }
                        set_once(&mut uptime, v)?
                    }
                    ("btime", [v]) => set_once(&mut btime, v.parse::<u64>()?)?,
                    ("hz", [v]) => set_once(&mut clock_ticks, v.parse::<u64>()?)?,
                    ("worker" | "master", [pid, start, user, system, child_user, child_system]) => {
                        let ticks = ProcTicks {
                            pid: pid.parse()?,
                            starttime: start.parse()?,
                            utime: user.parse()?,
                            stime: system.parse()?,
                            cutime: child_user.parse()?,
                            cstime: child_system.parse()?,
                        };
                        if ticks.pid <= 0 || !seen.insert((key == "worker", ticks.pid)) {
                            bail!("bad or repeated pid {}", ticks.pid);
                        }
                        if key == "worker" {
                            workers.push(ticks)
                        } else {
                            masters.push(ticks)
                        }
                    }
                    _ => bail!("unexpected line"),
                }
                Ok(())
            })();
            parsed.with_context(|| format!("line {}", index + 1))?;
        }
        Ok(TickState {
            uptime: uptime.context("no uptime line")?,
            btime: btime.context("no btime line")?,
            clock_ticks: clock_ticks.context("no hz line")?,
            workers,
            masters,
        })
    }
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
        writeln!(f, "# kind pid starttime utime stime cutime cstime")?;
        for (kind, list) in [("master", &self.masters), ("worker", &self.workers)] {
            for t in list {
                writeln!(
                    f,
                    "{kind} {} {} {} {} {} {}",
                    t.pid, t.starttime, t.utime, t.stime, t.cutime, t.cstime
                )?;
            }
        }
        Ok(())
    }
}

/// Why a run has no previous sample to measure CPU against.
#[derive(Debug, Clone, PartialEq)]
pub enum NoBaseline {
    /// no tick file yet
    FirstRun,
    /// the file exists but could not be read or parsed
    Corrupt(String),
    /// the boot time changed: the ticks belong to another boot
    Rebooted,
    /// the uptime is not later than the saved one (clock or file from the future)
    TimeWentBackwards,
    /// less than two clock ticks passed: too short to divide by
    TooShort,
    /// another check with the same selection holds the tick file
    Busy,
}

impl fmt::Display for NoBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBaseline::FirstRun => write!(f, "first run"),
            NoBaseline::Corrupt(why) => write!(f, "tick file discarded: {why}"),
            NoBaseline::Rebooted => write!(f, "host rebooted since the last run"),
            NoBaseline::TimeWentBackwards => write!(f, "tick file is from the future"),
            NoBaseline::TooShort => write!(f, "last run less than 2 clock ticks ago"),
            NoBaseline::Busy => write!(f, "another check of the same workers is running"),
        }
    }
}

/// Exclusive hold on one selection's tick file for the whole read-modify-write, so two checks
/// of the same workers (an Icinga retry, an operator by hand) never interleave their samples.
/// Released when dropped (or when the process exits).
#[derive(Debug)]
pub struct TickLock {
    _file: fs::File,
}

/// Takes the lock beside `tick_path`, waiting at most `wait`. `Ok(None)` when another check
/// kept it that long: the caller goes on without the baseline rather than block.
pub fn lock(tick_path: &Path, wait: Duration) -> Result<Option<TickLock>> {
    let path = tick_path.with_extension("lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(TickLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Reads the previous tick file. Never fails: whatever goes wrong means no baseline. A symlink
/// planted at the tick file's place is not followed (O_NOFOLLOW) and counts as corrupt.
pub fn load(path: &Path) -> Result<TickState, NoBaseline> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(NoBaseline::FirstRun),
        Err(e) => return Err(NoBaseline::Corrupt(e.to_string())),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        _ => return Err(NoBaseline::Corrupt("not a regular file".into())),
    }
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

/// Writes the tick file atomically: a temp file in the same directory, flushed to disk, then
/// renamed over the old one, so a run killed at any instant leaves the old or the new file.
pub fn save(path: &Path, state: &TickState) -> Result<()> {
    let dir = path.parent().context("tick file has no directory")?;
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write tick file in {}", dir.display()))?;
    let written = (|| -> std::io::Result<()> {
        temp.write_all(state.to_string().as_bytes())?;
        temp.as_file().sync_all()
    })();
    written.with_context(|| format!("cannot write tick file in {}", dir.display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write tick file {}", path.display()))?;
    // make the rename itself durable; failing that only risks the old file after a crash
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Tick files nobody has updated for this long belong to selections nobody checks any more.
const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a state dir is swept for stale files.
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Marks the last sweep of a state dir by its mtime.
const SWEEP_MARKER: &str = ".last-sweep";

/// Removes tick files untouched for 7 days (with their lock files) and temp files a killed run
/// left behind. Cheap enough for every run: unless the marker is a day old, it costs one stat.
/// A tick file whose lock another run holds is left alone. Returns how many tick and temp files went.
pub fn remove_stale(dir: &Path, now: SystemTime) -> usize {
    let marker = dir.join(SWEEP_MARKER);
    let age = |meta: &fs::Metadata| {
        meta.modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default()
    };
    if let Ok(meta) = fs::symlink_metadata(&marker) {
        if age(&meta) < SWEEP_EVERY {
            return 0;
        }
    }
    let touched = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&marker)
        .and_then(|f| f.set_modified(now));
    if touched.is_err() {
        return 0;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !meta.is_file() {
            continue;
        }
        if name.starts_with(".tmp-") && age(&meta) >= SWEEP_EVERY {
            removed += usize::from(fs::remove_file(&path).is_ok());
        } else if name.ends_with(".ticks") && age(&meta) >= STALE_AFTER {
            // hold the selection's lock while removing, so a run in progress keeps its files
            if let Ok(Some(_lock)) = lock(&path, Duration::ZERO) {
                removed += usize::from(fs::remove_file(&path).is_ok());
                let _ = fs::remove_file(path.with_extension("lock"));
            }
        }
    }
    removed
}

/// Where the tick files of this user live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub path: PathBuf,
    /// a parent shared by all users (created sticky and world-writable, like /tmp)
    pub shared_parent: Option<PathBuf>,
}

impl StateDir {
    /// `--state-dir`, else `$MP_STATE_PATH/<euid>/check_workers` (the monitoring-plugins
    /// convention), else `/var/tmp/check_workers/<euid>`. Per-euid directories let root run a
    /// check by hand and the `nagios` user run it from the scheduler without fighting over files.
    pub fn resolve(explicit: Option<&Path>, mp_state_path: Option<&Path>, euid: u32) -> StateDir {
        match (explicit, mp_state_path) {
            (Some(dir), _) => StateDir {
                path: dir.to_path_buf(),
                shared_parent: None,
            },
            (None, Some(base)) => StateDir {
                path: base.join(euid.to_string()).join("check_workers"),
                shared_parent: Some(base.to_path_buf()),
            },
            (None, None) => {
                let base = Path::new("/var/tmp/check_workers");
                StateDir {
                    path: base.join(euid.to_string()),
                    shared_parent: Some(base.to_path_buf()),
                }
            }
        }
    }

    /// Creates the directory (0700) when missing, and refuses one that another user could
    /// tamper with.
    ///
    /// Below a shared parent (`/var/tmp/check_workers`, `$MP_STATE_PATH`) every level must be
    /// a real directory of ours, never a symlink someone planted, and the shared parent itself
    /// must be root's or ours and, if world-writable, sticky like /tmp. An operator's own
    /// `--state-dir` may be a symlink; the directory it leads to must still be ours and 0700-ish.
    pub fn ensure(&self, euid: u32) -> Result<()> {
        let Some(parent) = &self.shared_parent else {
            create_private(&self.path)?;
            let meta = fs::metadata(&self.path)
                .with_context(|| format!("cannot read state dir {}", self.path.display()))?;
            return check_private(&self.path, &meta, euid);
        };
        if fs::symlink_metadata(parent).is_err() {
            match fs::DirBuilder::new().recursive(true).create(parent) {
                Ok(()) => fs::set_permissions(parent, fs::Permissions::from_mode(0o1777))
                    .with_context(|| format!("cannot make {} sticky", parent.display()))?,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create state dir {}", parent.display()))
                }
            }
        }
        trust_shared_parent(parent, euid)?;
        let below = self.path.strip_prefix(parent).unwrap_or(&self.path);
        let mut level = parent.clone();
        for part in below.components() {
            level.push(part);
            create_private(&level)?;
            let meta = fs::symlink_metadata(&level)
                .with_context(|| format!("cannot read state dir {}", level.display()))?;
            check_private(&level, &meta, euid)?;
        }
        Ok(())
    }
}

/// A shared parent is safe when nobody but root and us can rename what is in it: it must be
/// root's or ours and, if world-writable, sticky. When an unprivileged user created it first
/// (the scheduler's `nagios` user before root ran the check by hand), root takes it over, so
/// "root first" and "nagios first" both keep working.
fn trust_shared_parent(parent: &Path, euid: u32) -> Result<()> {
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_DIRECTORY)
        .open(parent)
        .with_context(|| format!("state dir {} is not a directory", parent.display()))?;
    let meta = dir
        .metadata()
        .with_context(|| format!("cannot read state dir {}", parent.display()))?;
    let world_writable = meta.mode() & 0o002 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if world_writable && !sticky {
        bail!(
            "state dir {} is world-writable but not sticky (mode {:o}): refusing to use it",
            parent.display(),
            meta.mode() & 0o7777
        );
    }
    if meta.uid() == 0 || meta.uid() == euid {
        return Ok(());
    }
    if euid == 0 && sticky {
        // chown the inode we opened, then make sure the name still leads to it
        std::os::unix::fs::fchown(&dir, Some(0), Some(0))
            .with_context(|| format!("cannot take over state dir {}", parent.display()))?;
        let now = fs::symlink_metadata(parent)
            .with_context(|| format!("cannot read state dir {}", parent.display()))?;
        if now.ino() == meta.ino() && now.dev() == meta.dev() {
            return Ok(());
        }
    }
    bail!(
        "state dir {} belongs to uid {}: refusing to use it (chown it to root, or use --state-dir)",
        parent.display(),
        meta.uid()
    )
}

/// mkdir 0700 (with missing parents), accepting one that exists.
fn create_private(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create state dir {}", dir.display()))
}

/// A state dir must be a directory of `euid` that nobody else can write to.
fn check_private(dir: &Path, meta: &fs::Metadata, euid: u32) -> Result<()> {
    if !meta.is_dir() {
        bail!("state dir {} is not a directory", dir.display());
    }
    if meta.uid() != euid {
        bail!(
            "state dir {} belongs to uid {}, not to uid {euid}: refusing to use it",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "state dir {} is writable by group or others (mode {:o}): refusing to use it",
            dir.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// One tick file per selection, so two services that watch different things never share
/// ticks. The name starts with the process name so an operator can tell files apart; the hash
/// keeps it unique and stable across releases (FNV-1a, not std's unspecified hasher).
pub fn tick_file_name(selector: &Selector) -> String {
    let mut key = String::new();
    let name = selector.name.as_ref().map(|n| n.name()).unwrap_or("");
    let _ = write!(key, "name={name}\0");
    if let Some(uid) = selector.uid {
        let _ = write!(key, "uid={uid}\0");
    }
    let _ = write!(key, "master={}\0", selector.include_master);
    match &selector.parent {
        Some(ParentSpec::Pid(pid)) => {
            let _ = write!(key, "ppid={pid}\0");
        }
        Some(ParentSpec::Pidfile(path)) => {
            let _ = write!(key, "pidfile={}\0", path.display());
        }
        None => {}
    }
    match &selector.cgroup {
        Some(CgroupFilter::Unit(unit)) => {
            let _ = write!(key, "unit={unit}\0");
        }
        Some(CgroupFilter::Glob(glob)) => {
            let _ = write!(key, "cgroup={glob}\0");
        }
        None => {}
    }
    if let Some(re) = &selector.cmdline {
        let _ = write!(key, "cmdline={}\0", re.pattern());
    }
    if let Some(exe) = &selector.exe {
        let _ = write!(key, "exe={exe}\0");
    }
    if let Some(states) = &selector.states {
        let _ = write!(key, "states={states}\0");
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let unit = match &selector.cgroup {
        Some(CgroupFilter::Unit(unit)) => unit.as_str(),
        _ => "",
    };
    let readable: String = [name, unit, "all"]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or("all")
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
    use crate::select::NameFilter;

    fn sample_state() -> TickState {
        TickState {
            uptime: 1000.5,
            btime: 1_700_000_000,
            clock_ticks: 100,
            workers: vec![ProcTicks {
                pid: 813,
                starttime: 5000,
                utime: 120,
                stime: 30,
                cutime: 0,
                cstime: 0,
            }],
            masters: vec![ProcTicks {
                pid: 812,
                starttime: 4000,
                utime: 10,
                stime: 5,
                cutime: 700,
                cstime: 90,
            }],
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
        assert!(text.starts_with("check_workers ticks v1\n"));
        assert!(text.contains("\nworker 813 5000 120 30 0 0\n"));
        assert!(text.contains("\nmaster 812 4000 10 5 700 90\n"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = sample_state().to_string();
        let cases = [
            String::new(),
            "hello".to_string(),
            "check_workers ticks v9\n".to_string(),
            good.replace("worker 813", "worker -813"),
            good.replace("120 30", "99999999999999999999999 30"),
            good.replace("uptime 1000.50", "uptime NaN"),
            good.replace("uptime 1000.50", "uptime -1"),
            good.replace("hz 100\n", ""),
            format!("{good}worker 813 5000 120 30 0 0\n"),
            format!("{good}uptime 5\n"),
            good.replace("worker 813 5000 120 30 0 0", "worker 813 5000"),
            good.replace(' ', "  "),
        ];
        for case in cases {
            assert!(TickState::parse(&case).is_err(), "{case:?} must not parse");
        }
    }

    #[test]
    fn load_reports_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ticks");
        assert_eq!(load(&path), Err(NoBaseline::FirstRun));
        fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(load(&path), Err(NoBaseline::Corrupt(_))));
        save(&path, &sample_state()).unwrap();
        assert_eq!(load(&path), Ok(sample_state()));
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn file_name_differs_per_selection() {
        let base = Selector {
            name: Some(NameFilter::new("nginx")),
            ..Selector::default()
        };
        let name = tick_file_name(&base);
        assert!(name.starts_with("nginx-") && name.ends_with(".ticks"));
        let with_user = Selector {
            uid: Some(33),
            ..base.clone()
        };
        let with_master = Selector {
            include_master: true,
            ..base.clone()
        };
        assert_ne!(name, tick_file_name(&with_user));
        assert_ne!(name, tick_file_name(&with_master));
        let with_pidfile = Selector {
            parent: Some(ParentSpec::Pidfile("/run/nginx.pid".into())),
            ..base.clone()
        };
        assert_ne!(name, tick_file_name(&with_pidfile));
        let unit = Selector {
            cgroup: Some(CgroupFilter::Unit("php8.2-fpm.service".into())),
            ..Selector::default()
        };
        assert!(tick_file_name(&unit).starts_with("php8.2-fpm.service-"));
        assert_eq!(name, tick_file_name(&base), "stable");
        let odd = Selector {
            name: Some(NameFilter::new("a/../b c")),
            ..base
        };
        assert!(tick_file_name(&odd).starts_with("a_.._b_c-"));
    }

    #[test]
    fn default_locations_are_per_euid() {
        let d = StateDir::resolve(None, None, 110);
        assert_eq!(d.path, Path::new("/var/tmp/check_workers/110"));
        let d = StateDir::resolve(None, Some(Path::new("/var/lib/mp")), 0);
        assert_eq!(d.path, Path::new("/var/lib/mp/0/check_workers"));
        let d = StateDir::resolve(Some(Path::new("/x")), Some(Path::new("/y")), 0);
        assert_eq!(d.path, Path::new("/x"));
    }

    #[test]
    fn refuses_group_writable_dir() {
        let dir = tempfile::tempdir().unwrap();
        let euid = nix::unistd::geteuid().as_raw();
        let state = StateDir::resolve(Some(dir.path()), None, euid);
        state.ensure(euid).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = state.ensure(euid).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        let err = state.ensure(euid + 1).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
    }

    mod fuzz {
        //! Property tests: a tick file of any content is at worst "no baseline".
        use super::super::*;
        use proptest::prelude::*;

        fn ticks() -> impl Strategy<Value = ProcTicks> {
            (
                1i32..i32::MAX,
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
            )
                .prop_map(|(pid, starttime, utime, stime, cutime, cstime)| ProcTicks {
                    pid,
                    starttime,
                    utime,
                    stime,
                    cutime,
                    cstime,
                })
        }

        proptest! {
            #[test]
            fn parse_never_panics(text in "\\PC{0,200}") {
                let _ = TickState::parse(&text);
            }

            #[test]
            fn parse_of_line_soup_never_panics(lines in proptest::collection::vec(
                "(uptime|btime|hz|worker|master|#|check_workers ticks v1)( -?[0-9.e+NaInf]{0,22}){0,7}", 0..20)) {
                let text = lines.join("\n");
                let _ = TickState::parse(&text);
                let with_header = format!("{FORMAT_LINE}\n{text}");
                let _ = TickState::parse(&with_header);
            }

            #[test]
            fn edits_of_a_good_file_never_panic(at in 0usize..400, cut in 0usize..20, insert in "\\PC{0,5}") {
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
                          workers in proptest::collection::vec(ticks(), 0..20)) {
                let mut seen = HashSet::new();
                let workers: Vec<ProcTicks> = workers.into_iter().filter(|t| seen.insert(t.pid)).collect();
                let state = TickState {
                    uptime: centi as f64 / 100.0,
                    btime,
                    clock_ticks: hz,
                    workers,
                    masters: vec![],
                };
                prop_assert_eq!(TickState::parse(&state.to_string()).unwrap(), state);
            }
        }
    }

    #[test]
    fn a_million_lines_parse_or_fail_cleanly() {
        let mut text = sample_state()
            .to_string()
            .replace("worker 813 5000 120 30 0 0\n", "");
        for pid in 1..=1_000_000 {
            let _ = writeln!(text, "worker {pid} 1 2 3 4 5");
        }
        let state = TickState::parse(&text).unwrap();
        assert_eq!(state.workers.len(), 1_000_000);
        text.push_str("worker 5 1 2 3 4 5\n");
        let err = format!("{:#}", TickState::parse(&text).unwrap_err());
        assert!(err.contains("repeated pid 5"), "{err}");
    }

    #[test]
    fn stale_files_go_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        let file = |name: &str, age: Duration| {
            let path = dir.path().join(name);
            fs::write(&path, "x").unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(now - age)
                .unwrap();
            path
        };
        let old = file("old-0.ticks", 8 * day);
        let old_lock = file("old-0.lock", 8 * day);
        let fresh = file("fresh-0.ticks", 6 * day);
        let temp = file(".tmp-abc", 2 * day);
        let young_temp = file(".tmp-def", Duration::from_secs(60));
        let other = file("notes.txt", 30 * day);
        assert_eq!(remove_stale(dir.path(), now), 2);
        assert!(!old.exists() && !old_lock.exists() && !temp.exists());
        assert!(fresh.exists() && young_temp.exists() && other.exists());
        // within a day of the last sweep nothing is looked at
        let later = file("later-0.ticks", 9 * day);
        assert_eq!(remove_stale(dir.path(), now + Duration::from_secs(3600)), 0);
        assert!(later.exists());
        // a day on, the 6-day-old file is 7 days old and the young temp file a day old
        assert_eq!(remove_stale(dir.path(), now + day), 3);
        assert!(!later.exists() && !fresh.exists() && !young_temp.exists());
    }

    #[test]
    fn stale_file_in_use_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy-0.ticks");
        fs::write(&path, "x").unwrap();
        let now = SystemTime::now() + Duration::from_secs(30 * 24 * 3600);
        let _held = lock(&path, Duration::ZERO).unwrap().unwrap();
        assert_eq!(remove_stale(dir.path(), now), 0);
        assert!(path.exists());
    }

    #[test]
    fn shared_parent_is_created_sticky_and_checked_level_by_level() {
        let base = tempfile::tempdir().unwrap();
        let euid = nix::unistd::geteuid().as_raw();
        let mp = base.path().join("mp");
        let dir = StateDir::resolve(None, Some(&mp), euid);
        dir.ensure(euid).unwrap();
        assert_eq!(fs::metadata(&mp).unwrap().mode() & 0o7777, 0o1777);
        let mine = mp.join(euid.to_string());
        assert_eq!(fs::metadata(&mine).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&dir.path).unwrap().mode() & 0o777, 0o700);

        // a symlink planted where our per-euid dir should be is refused, not followed
        fs::remove_dir_all(&mine).unwrap();
        let elsewhere = base.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &mine).unwrap();
        let err = format!("{:#}", dir.ensure(euid).unwrap_err());
        assert!(err.contains("is not a directory"), "{err}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

        // a world-writable shared parent without the sticky bit is refused
        fs::remove_file(&mine).unwrap();
        fs::set_permissions(&mp, fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", dir.ensure(euid).unwrap_err());
        assert!(err.contains("world-writable but not sticky"), "{err}");
    }
}
