//! Acquisition from `/sys`: the cgroup the workers run in, as the kernel accounts it (memory
//! charged, OOM kills, CPU throttling, pressure stalls) and limits it (memory and CPU quota).
//! Read once the workers are known, with every reading of a run, so that a baseline taken
//! within the run has the counters too.
//!
//! Where: the hierarchies come from the check's own `/proc/self/mountinfo` (`mounts`), never
//! from a fixed path, so pure v2, hybrid (v1 `memory` and `cpu` trees beside a v2 `unified`
//! one) and pure v1 hosts are all read: the memory figures from the v1 memory tree where
//! there is one, else the v2 tree; throttling likewise from the v1 cpu tree, else v2; pressure
//! only from the v2 tree. A mount point under `/sys` is read under `--sys-root`, so a fixture
//! holds its tree at `<sys-root>/fs/cgroup/...` beside a mountinfo that names `/sys/fs/cgroup`.
//! Which cgroup: in each hierarchy, the level named `--unit`, else the deepest cgroup that
//! holds every worker (`mounts::common_cgroup`). Each cgroup's directory is opened once and
//! its files read through that descriptor, bounded (`files` parses them), and its inode is
//! its identity: a unit restarted gets a new cgroup, with a new inode, whose counters started
//! again from 0.

mod files;
mod mounts;

use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::note::CgroupGap;
use crate::small_file::{self, Unread};

pub use mounts::Hierarchy;
use mounts::{common_cgroup, mount_dir, parse_mountinfo, path_in, Mount, NoCommon};

/// The most of `mountinfo` read: ~150 bytes a mount, so a host with 20,000 mounts (a busy
/// Kubernetes node) still fits; a larger one is refused rather than read without bound.
const MOUNTINFO_LIMIT: u64 = 4 << 20;

/// The most of a cgroup file read; the files read are one line to a few dozen.
const FILE_LIMIT: u64 = 64 << 10;

/// A counter the kernel keeps per cgroup, which a run measures over the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CgCounter {
    /// processes the OOM killer took (`oom_kill` of `memory.events` or `memory.oom_control`)
    OomKill,
    /// CPU quota periods in which the cgroup ran (`nr_periods` of `cpu.stat`)
    NrPeriods,
    /// of those, periods in which it was throttled (`nr_throttled`)
    NrThrottled,
    /// microseconds in which some task waited for a CPU (`some total=` of `cpu.pressure`)
    SomeCpu,
    /// ... for memory (`memory.pressure`)
    SomeMemory,
    /// ... for I/O (`io.pressure`)
    SomeIo,
}

impl CgCounter {
    /// Every counter, in the order the tick file writes them.
    pub const ALL: [CgCounter; 6] = [
        CgCounter::OomKill,
        CgCounter::NrPeriods,
        CgCounter::NrThrottled,
        CgCounter::SomeCpu,
        CgCounter::SomeMemory,
        CgCounter::SomeIo,
    ];

    /// Its name in the tick file.
    pub fn key(self) -> &'static str {
        match self {
            CgCounter::OomKill => "oom_kill",
            CgCounter::NrPeriods => "nr_periods",
            CgCounter::NrThrottled => "nr_throttled",
            CgCounter::SomeCpu => "some_cpu_us",
            CgCounter::SomeMemory => "some_memory_us",
            CgCounter::SomeIo => "some_io_us",
        }
    }

    /// The counter named `key`.
    pub fn from_key(key: &str) -> Option<CgCounter> {
        CgCounter::ALL.into_iter().find(|c| c.key() == key)
    }

    /// What it is read for: memory, cpu or pressure.
    fn role(self) -> Role {
        match self {
            CgCounter::OomKill => Role::Memory,
            CgCounter::NrPeriods | CgCounter::NrThrottled => Role::Cpu,
            CgCounter::SomeCpu | CgCounter::SomeMemory | CgCounter::SomeIo => Role::Pressure,
        }
    }
}

/// A group of figures that come from one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Memory,
    Cpu,
    Pressure,
}

/// The cgroup a group of figures was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub hierarchy: Hierarchy,
    /// its path in the hierarchy (`/system.slice/nginx.service`)
    pub path: String,
    /// the inode of its directory: which cgroup this is, as a path is reused by a restart
    pub ino: u64,
}

/// One counter as read, with the hierarchy it was (or would have been) read from.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterReading {
    pub counter: CgCounter,
    pub hierarchy: Option<Hierarchy>,
    pub value: Result<u64, CgroupGap>,
}

/// The workers' cgroup as one reading found it.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupReading {
    /// the tree's uptime right after the files were read, seconds: what the counters are
    /// measured over, rather than the scan's, which may be long before
    pub uptime: f64,
    /// the cgroup of each hierarchy read
    pub places: Vec<Place>,
    /// bytes charged to the memory cgroup (`memory.current`, `memory.usage_in_bytes`)
    pub charge: Result<u64, CgroupGap>,
    /// the tightest memory limit along the path to the root, bytes: `memory.max`, else
    /// `memory.high`; v1's `memory.limit_in_bytes`
    pub limit: Option<u64>,
    /// the tightest CPU quota along the path, in cores
    pub cpu_cores: Option<f64>,
    /// every worker is in the memory cgroup itself, or the unit named it, and the check is
    /// not: its charge is the workers' memory (with what else the unit runs), which `rss_pct`
    /// may use
    pub shared: bool,
    pub counters: Vec<CounterReading>,
}

impl CgroupReading {
    /// The charge, where it is the workers' own memory (see [`CgroupReading::shared`]): the
    /// one reading `rss_pct` takes too, rather than a second read of the same file.
    pub fn own_charge(&self) -> Option<u64> {
        self.charge.as_ref().ok().copied().filter(|_| self.shared)
    }

    /// The place of `hierarchy`, where it was read.
    pub fn place(&self, hierarchy: Hierarchy) -> Option<&Place> {
        self.places.iter().find(|p| p.hierarchy == hierarchy)
    }
}

/// One hierarchy's cgroup, opened.
struct Opened {
    place: Place,
    dir: OwnedFd,
    /// its directory, for the notes, and its ancestors' for the limits
    shown: PathBuf,
    /// the mounted tree's top, where the walk to the root stops
    top: PathBuf,
    shared: bool,
}

/// Reads the workers' cgroup. `cgroup_files` holds each worker's `/proc/PID/cgroup` (None
/// where it could not be read), `unit` is `--unit`; `uptime` reads the tree's uptime, once
/// the counters are read.
pub fn read(
    proc_root: &Path,
    sys_root: &Path,
    cgroup_files: &[Option<&str>],
    unit: Option<&str>,
    uptime: impl FnOnce() -> f64,
) -> CgroupReading {
    let mounts = mount_table(proc_root);
    let open = |role: Role| -> Result<Opened, CgroupGap> {
        let mount = role_mount(mounts.as_ref().map_err(Clone::clone)?, role)?;
        let paths: Vec<Option<&str>> = cgroup_files
            .iter()
            .map(|f| f.and_then(|f| path_in(f, mount.hierarchy)))
            .collect();
        open_place(mount, &paths, unit, sys_root)
    };
    let mut opened = [Role::Memory, Role::Cpu, Role::Pressure].map(open);
    if let Ok(memory) = &mut opened[0] {
        memory.shared &= !holds_the_check(memory, proc_root);
    }
    let [memory, cpu, pressure] = &opened;
    let counters = CgCounter::ALL
        .into_iter()
        .map(|counter| {
            let from = match counter.role() {
                Role::Memory => memory,
                Role::Cpu => cpu,
                Role::Pressure => pressure,
            };
            CounterReading {
                counter,
                hierarchy: from.as_ref().ok().map(|o| o.place.hierarchy),
                value: from
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|o| read_counter(o, counter)),
            }
        })
        .collect();
    // one place a hierarchy, however many roles it serves (the tick file has a line each)
    let mut places: Vec<Place> = opened.iter().flatten().map(|o| o.place.clone()).collect();
    places.sort_by_key(|p| p.hierarchy);
    places.dedup_by_key(|p| p.hierarchy);
    let (limit, cpu_cores) = (
        memory.as_ref().ok().and_then(memory_limit),
        cpu.as_ref().ok().and_then(cpu_quota),
    );
    CgroupReading {
        charge: memory.as_ref().map_err(Clone::clone).and_then(read_charge),
        shared: memory.as_ref().is_ok_and(|o| o.shared),
        uptime: uptime(),
        places,
        limit,
        cpu_cores,
        counters,
    }
}

/// Whether the check itself runs in `o` or below it: then the cgroup holds more than the
/// service (a login session, a test harness), and its charge is not the workers' memory.
fn holds_the_check(o: &Opened, proc_root: &Path) -> bool {
    let Ok(own) = small_file::read(&proc_root.join("self/cgroup"), FILE_LIMIT) else {
        return false;
    };
    let own = String::from_utf8_lossy(&own.bytes);
    let top = o.place.path.trim_end_matches('/');
    path_in(&own, o.place.hierarchy)
        .is_some_and(|mine| mine == top || mine.starts_with(&format!("{top}/")))
}

/// The cgroup hierarchies mounted in the check's namespace, from `<proc_root>/self/mountinfo`.
fn mount_table(proc_root: &Path) -> Result<Vec<Mount>, CgroupGap> {
    match small_file::read(&proc_root.join("self/mountinfo"), MOUNTINFO_LIMIT) {
        Ok(file) => Ok(parse_mountinfo(&String::from_utf8_lossy(&file.bytes))),
        Err(Unread::Io(e)) if e.kind() == ErrorKind::NotFound => Err(CgroupGap::NoMounts),
        Err(e) => Err(CgroupGap::NoMountTable(unread_words(&e))),
    }
}

/// The hierarchy a role's figures come from: a v1 controller's own tree where it has one,
/// else the v2 tree; pressure only ever from the v2 tree.
fn role_mount(mounts: &[Mount], role: Role) -> Result<&Mount, CgroupGap> {
    let find = |h| mounts.iter().find(|m| m.hierarchy == h);
    let own = match role {
        Role::Memory => find(Hierarchy::Memory),
        Role::Cpu => find(Hierarchy::Cpu),
        Role::Pressure => None,
    };
    own.or_else(|| find(Hierarchy::Unified))
        .ok_or(CgroupGap::NotMounted(match role {
            Role::Memory => "memory",
            Role::Cpu => "cpu",
            Role::Pressure => "v2",
        }))
}

/// Opens the workers' cgroup in `mount`'s hierarchy, given their paths in it.
fn open_place(
    mount: &Mount,
    paths: &[Option<&str>],
    unit: Option<&str>,
    sys_root: &Path,
) -> Result<Opened, CgroupGap> {
    let name = mount.hierarchy.key();
    let (path, shared) = common_cgroup(paths, unit).map_err(|why| match why {
        NoCommon::Unknown => CgroupGap::Unknown(name),
        NoCommon::Root => CgroupGap::Root(name),
    })?;
    let top = mount_dir(&mount.point, sys_root);
    // a container's mount shows only its part of the tree: a path outside it is not here
    let root = mount.root.trim_end_matches('/');
    // (a container's own cgroup is its mount's top)
    let below = match path.strip_prefix(root) {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Err(CgroupGap::NotVisible(name, path)),
    };
    let shown = top.join(below);
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = rustix::fs::open(&shown, flags, Mode::empty())
        .map_err(|e| CgroupGap::NoDirectory(shown.clone(), std::io::Error::from(e).to_string()))?;
    let ino = rustix::fs::fstat(&dir)
        .map_err(|e| CgroupGap::NoDirectory(shown.clone(), std::io::Error::from(e).to_string()))?
        .st_ino;
    Ok(Opened {
        place: Place {
            hierarchy: mount.hierarchy,
            path,
            ino,
        },
        dir,
        shown,
        top,
        shared,
    })
}

/// A file of the cgroup, read through its directory: missing (a kernel without the feature,
/// PSI turned off), unreadable, or not text are gaps naming the file.
fn read_file(o: &Opened, name: &str) -> Result<String, CgroupGap> {
    let shown = || o.shown.join(name);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | small_file::open_flags();
    let file = match rustix::fs::openat(&o.dir, name, flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => return Err(gap_of(shown(), std::io::Error::from(e))),
    };
    let file = small_file::read_opened(file, FILE_LIMIT).map_err(|e| match e {
        Unread::Io(e) => gap_of(shown(), e),
        Unread::TooLarge => CgroupGap::Malformed(shown()),
        other => CgroupGap::Unreadable(shown(), unread_words(&other)),
    })?;
    String::from_utf8(file.bytes).map_err(|_| CgroupGap::Malformed(shown()))
}

/// A failed open or read: a file the kernel does not offer (missing, or PSI answering
/// EOPNOTSUPP when booted with `psi=0`) is missing by design; anything else is unreadable.
fn gap_of(path: PathBuf, e: std::io::Error) -> CgroupGap {
    let by_design = e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(95);
    match by_design {
        true => CgroupGap::Missing(path),
        false => CgroupGap::Unreadable(path, e.to_string()),
    }
}

/// The words for a small file that was not read.
fn unread_words(e: &Unread) -> String {
    match e {
        Unread::Io(e) => e.to_string(),
        Unread::NotRegular(kind) => format!("not a regular file but {kind}"),
        Unread::TooLarge => "too large".to_string(),
    }
}

/// Reads `name` and parses it with `parse`; what does not parse is malformed.
fn parsed<T>(o: &Opened, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, CgroupGap> {
    parse(&read_file(o, name)?).ok_or_else(|| CgroupGap::Malformed(o.shown.join(name)))
}

fn read_charge(o: &Opened) -> Result<u64, CgroupGap> {
    match o.place.hierarchy {
        Hierarchy::Unified => parsed(o, "memory.current", files::number),
        _ => parsed(o, "memory.usage_in_bytes", files::number),
    }
}

fn read_counter(o: &Opened, counter: CgCounter) -> Result<u64, CgroupGap> {
    let v2 = o.place.hierarchy == Hierarchy::Unified;
    let (name, key) = match counter {
        CgCounter::OomKill if v2 => ("memory.events", "oom_kill"),
        CgCounter::OomKill => ("memory.oom_control", "oom_kill"),
        CgCounter::NrPeriods => ("cpu.stat", "nr_periods"),
        CgCounter::NrThrottled => ("cpu.stat", "nr_throttled"),
        CgCounter::SomeCpu => return parsed(o, "cpu.pressure", files::pressure_some),
        CgCounter::SomeMemory => return parsed(o, "memory.pressure", files::pressure_some),
        CgCounter::SomeIo => return parsed(o, "io.pressure", files::pressure_some),
    };
    let shown = o.shown.join(name);
    parsed(o, name, |text| files::keyed(text, key))?.ok_or(CgroupGap::NoKey(shown, key))
}

/// The directories from the cgroup's up to its tree's top: the limits that bind it.
fn ancestors(o: &Opened) -> impl Iterator<Item = &Path> {
    o.shown
        .ancestors()
        .take_while(move |dir| dir.starts_with(&o.top))
}

/// The tightest `memory.max` along the path (else the tightest `memory.high`); v1's
/// `memory.limit_in_bytes`. Read by path: a limit is only ever a bound for a percentage.
fn memory_limit(o: &Opened) -> Option<u64> {
    let read = |dir: &Path, name: &str| small_file::read(&dir.join(name), FILE_LIMIT).ok();
    let tightest = |name: &str, parse: fn(&str) -> Option<Option<u64>>| {
        ancestors(o)
            .filter_map(|dir| read(dir, name))
            .filter_map(|f| parse(&String::from_utf8_lossy(&f.bytes)).flatten())
            .min()
    };
    match o.place.hierarchy {
        Hierarchy::Unified => tightest("memory.max", files::v2_limit)
            .or_else(|| tightest("memory.high", files::v2_limit)),
        _ => tightest("memory.limit_in_bytes", files::v1_limit),
    }
}

/// The tightest CPU quota along the path, in cores: `cpu.max`; v1's `cpu.cfs_quota_us` over
/// `cpu.cfs_period_us`.
fn cpu_quota(o: &Opened) -> Option<f64> {
    let text = |dir: &Path, name: &str| {
        let file = small_file::read(&dir.join(name), FILE_LIMIT).ok()?;
        Some(String::from_utf8_lossy(&file.bytes).into_owned())
    };
    ancestors(o)
        .filter_map(|dir| match o.place.hierarchy {
            Hierarchy::Unified => files::v2_cpu_max(&text(dir, "cpu.max")?)?,
            _ => files::v1_cpu_quota(
                &text(dir, "cpu.cfs_quota_us")?,
                &text(dir, "cpu.cfs_period_us")?,
            )?,
        })
        .filter(|cores| *cores > 0.0)
        .min_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A v2 host in a temp dir: `proc/self/mountinfo` and `sys/fs/cgroup/svc`, returned.
    fn v2_host() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("proc/self");
        fs::create_dir_all(&own).unwrap();
        fs::write(
            own.join("mountinfo"),
            "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        let dir = root.path().join("sys/fs/cgroup/svc");
        fs::create_dir_all(&dir).unwrap();
        (root, dir)
    }

    fn read_svc(root: &Path) -> CgroupReading {
        let files = [Some("0::/svc\n"), Some("0::/svc\n")];
        read(&root.join("proc"), &root.join("sys"), &files, None, || {
            100.0
        })
    }

    fn value(reading: &CgroupReading, counter: CgCounter) -> Result<u64, CgroupGap> {
        let found = reading.counters.iter().find(|c| c.counter == counter);
        found.unwrap().value.clone()
    }

    // Another user may own a delegated cgroup: a link, a FIFO or a huge file in place of a
    // cgroup file is not followed, waited on or read whole, and names the file.
    #[test]
    fn planted_files_are_gaps_naming_them() {
        let (root, dir) = v2_host();
        fs::write(dir.join("memory.current"), "4096\n").unwrap();
        std::os::unix::fs::symlink("/proc/self/status", dir.join("memory.events")).unwrap();
        nix::unistd::mkfifo(&dir.join("cpu.stat"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::write(dir.join("cpu.pressure"), "x".repeat(1 << 20)).unwrap();
        fs::write(dir.join("memory.pressure"), "some avg10=0 total=7\n").unwrap();
        let reading = read_svc(root.path());
        assert_eq!(reading.charge, Ok(4096));
        assert_eq!(reading.uptime, 100.0);
        assert!(reading.shared);
        let at = |name: &str| dir.join(name);
        assert!(
            matches!(value(&reading, CgCounter::OomKill), Err(CgroupGap::Unreadable(p, _)) if p == at("memory.events"))
        );
        assert!(
            matches!(value(&reading, CgCounter::NrPeriods), Err(CgroupGap::Unreadable(p, _)) if p == at("cpu.stat"))
        );
        assert_eq!(
            value(&reading, CgCounter::SomeCpu),
            Err(CgroupGap::Malformed(at("cpu.pressure")))
        );
        assert_eq!(value(&reading, CgCounter::SomeMemory), Ok(7));
        assert_eq!(
            value(&reading, CgCounter::SomeIo),
            Err(CgroupGap::Missing(at("io.pressure")))
        );
        let ino = fs::metadata(&dir).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        assert_eq!(reading.places[0].ino, ino.unwrap());
        assert_eq!(reading.places.len(), 1, "one v2 tree for every role");
    }

    #[test]
    fn a_cgroup_directory_that_is_a_link_is_not_followed() {
        let (root, dir) = v2_host();
        fs::remove_dir(&dir).unwrap();
        std::os::unix::fs::symlink("/", &dir).unwrap();
        let reading = read_svc(root.path());
        assert!(matches!(reading.charge, Err(CgroupGap::NoDirectory(p, _)) if p == dir));
        assert!(reading.places.is_empty());
        // and a mount table that is not there at all
        fs::remove_file(root.path().join("proc/self/mountinfo")).unwrap();
        assert_eq!(read_svc(root.path()).charge, Err(CgroupGap::NoMounts));
    }

    #[test]
    fn limits_are_the_tightest_on_the_path_and_high_stands_in_for_max() {
        let (root, dir) = v2_host();
        let top = dir.parent().unwrap();
        fs::write(top.join("memory.max"), "max\n").unwrap();
        fs::write(dir.join("memory.max"), "max\n").unwrap();
        fs::write(dir.join("memory.high"), "1048576\n").unwrap();
        fs::write(top.join("cpu.max"), "50000 100000\n").unwrap();
        fs::write(dir.join("cpu.max"), "150000 100000\n").unwrap();
        let reading = read_svc(root.path());
        assert_eq!(
            (reading.limit, reading.cpu_cores),
            (Some(1 << 20), Some(0.5))
        );
        fs::write(top.join("memory.max"), "2097152\n").unwrap();
        assert_eq!(read_svc(root.path()).limit, Some(2 << 20));
    }
}
