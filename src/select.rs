//! Selection step: which of the sampled processes are the service's workers.
//!
//! The scan in `sample` only asks the [`NameFilter`] about each process's comm, so that
//! processes that cannot match cost one small read; everything else here is a pure function
//! over the sampled processes.

use std::collections::HashSet;

use crate::sample::ProcSample;
use crate::text;

/// The kernel keeps at most this many bytes of a command name (TASK_COMM_LEN minus the NUL).
const COMM_LEN: usize = 15;

/// `-n NAME`: the command name as `ps -o comm` shows it. Names are bytes to the kernel, and
/// compared as bytes: a long UTF-8 name's comm is its first 15 bytes, cut inside a character
/// as readily as between two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    name: Vec<u8>,
    /// the name as the operator gave it (escaped where it is not UTF-8): labels, tick file
    shown: String,
}

/// What the comm alone says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommMatch {
    No,
    Yes,
    /// The comm is the kernel's truncation of a long name: only argv[0] or the executable
    /// can tell whether the process is really ours.
    NeedsFullName,
}

impl NameFilter {
    pub fn new(name: &str) -> NameFilter {
        NameFilter {
            name: name.as_bytes().to_vec(),
            shown: name.to_string(),
        }
    }

    /// A name given as raw bytes (an `OsString` argument that is not UTF-8).
    pub fn from_bytes(name: &[u8]) -> NameFilter {
        match std::str::from_utf8(name) {
            Ok(name) => NameFilter::new(name),
            Err(_) => NameFilter {
                name: name.to_vec(),
                shown: text::shown_bytes(name),
            },
        }
    }

    /// The name for people: as given, or with its invalid bytes escaped.
    pub fn name(&self) -> &str {
        &self.shown
    }

    /// The name as the bytes a comm is compared with.
    pub fn bytes(&self) -> &[u8] {
        &self.name
    }

    pub fn check_comm(&self, comm: &[u8]) -> CommMatch {
        let name = &self.name[..];
        if name.len() <= COMM_LEN {
            if comm == name {
                CommMatch::Yes
            } else {
                CommMatch::No
            }
        } else if comm == &name[..COMM_LEN] {
            CommMatch::NeedsFullName
        } else {
            CommMatch::No
        }
    }

    /// For long names: the basename of argv[0] or of the executable must equal the name.
    pub fn check_full_name(&self, argv0: Option<&[u8]>, exe: Option<&[u8]>) -> bool {
        [argv0, exe]
            .into_iter()
            .flatten()
            .any(|path| basename(path) == self.name)
    }
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Everything that decides which processes are workers. All given filters must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub name: Option<NameFilter>,
    /// `-u`: real uid of the workers
    pub uid: Option<u32>,
    /// `--include-master`: count the master as a worker too
    pub include_master: bool,
    /// `--ppid` or `--pidfile`: the workers are this process's children
    pub parent: Option<ParentSpec>,
    /// `-a`: regex on the command line
    pub cmdline: Option<CmdlineFilter>,
    /// `--exe`: the executable's path
    pub exe: Option<String>,
    /// `-s`: state letters the workers may be in (R, S, D, Z, T, ...)
    pub states: Option<String>,
    /// `--unit` or `--cgroup`
    pub cgroup: Option<CgroupFilter>,
}

impl Selector {
    /// True when a filter says which service the processes belong to (not only whose they
    /// are or what state they are in): only then can a master be told from its workers.
    pub fn names_the_service(&self) -> bool {
        self.name.is_some() || self.cmdline.is_some() || self.exe.is_some() || self.cgroup.is_some()
    }
}

/// Where the master comes from when the operator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentSpec {
    /// `--ppid PID`
    Pid(i32),
    /// `--pidfile FILE`: read at every run, as the master's pid changes on restart
    Pidfile(std::path::PathBuf),
}

/// `-a REGEX` on the full command line, NULs read as spaces (as `ps -o args` shows it).
#[derive(Debug, Clone)]
pub struct CmdlineFilter(regex_lite::Regex);

impl CmdlineFilter {
    pub fn new(pattern: &str) -> Result<CmdlineFilter, regex_lite::Error> {
        regex_lite::Regex::new(pattern).map(CmdlineFilter)
    }

    pub fn pattern(&self) -> &str {
        self.0.as_str()
    }

    /// `raw` is `/proc/PID/cmdline` as read.
    pub fn matches(&self, raw: &[u8]) -> bool {
        self.0.is_match(&command_line(raw))
    }
}

impl PartialEq for CmdlineFilter {
    fn eq(&self, other: &Self) -> bool {
        self.pattern() == other.pattern()
    }
}

impl Eq for CmdlineFilter {}

/// `/proc/PID/cmdline` with its NUL separators as spaces.
pub fn command_line(raw: &[u8]) -> String {
    // programs that rewrite their title (nginx, postgres) pad it with NULs
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let trimmed = &raw[..end];
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

/// `--exe PATH` against the `/proc/PID/exe` link, as bytes. After a package upgrade the link of
/// a running process reads `/usr/sbin/nginx (deleted)`; that is still the same program.
pub fn exe_matches(want: &str, link: &[u8]) -> bool {
    link.strip_suffix(b" (deleted)").unwrap_or(link) == want.as_bytes()
}

/// `--unit UNIT` or `--cgroup PATTERN` against `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupFilter {
    /// a systemd unit: some level of the cgroup path is named exactly this
    Unit(String),
    /// a glob (`*`, `?`) on the whole cgroup path
    Glob(String),
}

impl CgroupFilter {
    /// `content` is the whole `/proc/PID/cgroup`: v2 `0::/path` and v1 `N:controllers:/path`
    /// lines; any line may match.
    pub fn matches(&self, content: &str) -> bool {
        content
            .lines()
            .filter_map(cgroup_path)
            .any(|path| match self {
                CgroupFilter::Unit(unit) => path.split('/').any(|level| level == unit),
                CgroupFilter::Glob(pattern) => glob_match(pattern.as_bytes(), path.as_bytes()),
            })
    }
}

/// The path of one `/proc/PID/cgroup` line (after the second colon).
pub fn cgroup_path(line: &str) -> Option<&str> {
    let mut parts = line.splitn(3, ':');
    parts.next()?;
    parts.next()?;
    parts.next()
}

/// `*` matches any run of bytes (slashes too), `?` one byte; everything else itself.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// How the master is known for this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Master {
    /// no `--ppid`/`--pidfile`: found from the process tree
    Detect,
    /// named by the operator and running
    Given(Box<ProcSample>),
    /// named by the operator but not running (or not the process the pidfile meant)
    Missing,
}

/// The check's own process and its parent, which must never be counted: NRPE and Icinga often
/// wrap a check in `sh -c`, and `check_procs` counted that shell for years.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnProcesses {
    pub pid: Option<i32>,
    pub parent: Option<i32>,
}

impl OwnProcesses {
    fn contains(&self, p: &ProcSample) -> bool {
        let own = |pid: Option<i32>| pid == Some(p.pid);
        own(self.pid) || own(self.parent) || (self.pid.is_some() && self.pid == Some(p.ppid))
    }
}

/// The outcome of selection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// the processes whose figures the check reports
    pub workers: Vec<ProcSample>,
    /// masters found (named in the output; among the workers too with `--include-master`)
    pub masters: Vec<ProcSample>,
}

/// Picks the workers out of the processes whose name matched.
///
/// A master is a matched process whose parent is not matched but which has matched children:
/// nginx or apache run the master as root and the workers as www-data, and the master's
/// figures would distort the workers' averages. It is found before the user and state filters,
/// so that `-u www-data` can still name the root master. With `--ppid`/`--pidfile` the master
/// is the named process and the workers are its children.
///
/// Pid 1 is never a master: it reaps every orphan on the host, so its reaped-children time
/// (which the metrics add to the workers' CPU as recovered from exited workers) is the whole
/// host's, not the service's. With `--ppid 1` or a pidfile holding 1 its children are still
/// the workers, but pid 1 is neither named nor counted (not even with `--include-master`).
pub fn select(
    candidates: Vec<ProcSample>,
    selector: &Selector,
    own: OwnProcesses,
    master: &Master,
) -> Selection {
    let matched: Vec<ProcSample> = candidates
        .into_iter()
        .filter(|p| !p.kernel_thread && !own.contains(p))
        .collect();
    let worker_ok = |p: &ProcSample| {
        selector.uid.is_none_or(|uid| p.uid == uid)
            && selector.states.as_ref().is_none_or(|s| s.contains(p.state))
    };
    let mut selection = Selection::default();
    match master {
        Master::Missing => {}
        Master::Given(parent) => {
            if parent.pid != INIT {
                selection.masters.push((**parent).clone());
                if selector.include_master && worker_ok(parent) {
                    selection.workers.push((**parent).clone());
                }
            }
            selection.workers.extend(
                matched
                    .into_iter()
                    .filter(|p| p.ppid == parent.pid && p.pid != parent.pid && worker_ok(p)),
            );
        }
        Master::Detect => {
            let masters = detect_masters(&matched, selector);
            for p in matched {
                let master = masters.contains(&p.pid);
                if master {
                    selection.masters.push(p.clone());
                }
                if (!master || selector.include_master) && worker_ok(&p) {
                    selection.workers.push(p);
                }
            }
        }
    }
    selection
}

/// The pid of init, which reaps every orphan on the host.
const INIT: i32 = 1;

/// The masters among the matched processes: those whose parent is not matched but which
/// have matched children.
///
/// A master must belong to the same service as its workers, so it must have passed a filter
/// that says which service that is (name, command line, executable, cgroup); `-u` and `-s`
/// alone say nothing about the service (a root master's workers run as another user). With
/// only those, every process of the user is matched and pid 1, their common parent, would be
/// taken for the master of them all: so then there is no master.
fn detect_masters(matched: &[ProcSample], selector: &Selector) -> HashSet<i32> {
    if !selector.names_the_service() {
        return HashSet::new();
    }
    let pids: HashSet<i32> = matched.iter().map(|p| p.pid).collect();
    let parents: HashSet<i32> = matched
        .iter()
        .filter(|p| pids.contains(&p.ppid))
        .map(|p| p.ppid)
        .collect();
    matched
        .iter()
        .filter(|p| p.pid != INIT && !pids.contains(&p.ppid) && parents.contains(&p.pid))
        .map(|p| p.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, ppid: i32, uid: u32) -> ProcSample {
        ProcSample {
            pid,
            ppid,
            uid,
            comm: "nginx".into(),
            ..ProcSample::default()
        }
    }

    fn selector() -> Selector {
        Selector {
            name: Some(NameFilter::new("nginx")),
            ..Selector::default()
        }
    }

    fn pids(list: &[ProcSample]) -> Vec<i32> {
        list.iter().map(|p| p.pid).collect()
    }

    #[test]
    fn comm_matches_exactly() {
        let filter = NameFilter::new("nginx");
        assert_eq!(filter.check_comm(b"nginx"), CommMatch::Yes);
        assert_eq!(filter.check_comm(b"nginx2"), CommMatch::No);
        assert_eq!(filter.check_comm(b"ngin"), CommMatch::No);
        assert_eq!(filter.check_comm(b"NGINX"), CommMatch::No);
    }

    #[test]
    fn long_names_need_argv0_or_exe() {
        let filter = NameFilter::new("php-fpm8.2-long-name");
        assert_eq!(
            filter.check_comm(b"php-fpm8.2-long"),
            CommMatch::NeedsFullName
        );
        assert_eq!(filter.check_comm(b"php-fpm8.2-lon"), CommMatch::No);
        assert!(filter.check_full_name(Some(b"/usr/sbin/php-fpm8.2-long-name"), None));
        assert!(filter.check_full_name(None, Some(b"/usr/sbin/php-fpm8.2-long-name")));
        assert!(filter.check_full_name(Some(b"php-fpm8.2-long-name"), None));
        assert!(!filter.check_full_name(Some(b"/usr/sbin/php-fpm8.2-long-other"), None));
        assert!(!filter.check_full_name(None, None));
        // exactly 15 bytes is never truncated
        let fifteen = NameFilter::new("abcdefghijklmno");
        assert_eq!(fifteen.check_comm(b"abcdefghijklmno"), CommMatch::Yes);
    }

    #[test]
    fn names_are_bytes() {
        // the kernel cut this name inside its 4th é
        let filter = NameFilter::new("worker-aéééééé");
        let cut = &"worker-aéééééé".as_bytes()[..15];
        assert_eq!(filter.check_comm(cut), CommMatch::NeedsFullName);
        assert_eq!(
            filter.check_comm(b"worker-a\xc3\xa9\xc3\xa9\xc3\xa9"),
            CommMatch::No
        );
        assert!(filter.check_full_name(Some("/usr/bin/worker-aéééééé".as_bytes()), None));
        assert!(!filter.check_full_name(Some("/usr/bin/worker-aééééééx".as_bytes()), None));
        // a name that is not UTF-8 at all, from an OsString
        let raw = NameFilter::from_bytes(b"w\xff|k");
        assert_eq!(raw.check_comm(b"w\xff|k"), CommMatch::Yes);
        assert_eq!(raw.check_comm(b"w\xfe|k"), CommMatch::No);
        assert_eq!(raw.name(), "w\\xff\\x7ck");
        assert_eq!(NameFilter::from_bytes(b"nginx"), NameFilter::new("nginx"));
        let long = NameFilter::from_bytes(b"worker-\xff\xff\xff\xff\xff\xff\xff\xff\xff");
        assert_eq!(
            long.check_comm(b"worker-\xff\xff\xff\xff\xff\xff\xff\xff"),
            CommMatch::NeedsFullName
        );
        assert!(long.check_full_name(
            None,
            Some(b"/opt/worker-\xff\xff\xff\xff\xff\xff\xff\xff\xff")
        ));
    }

    #[test]
    fn master_is_named_not_counted() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33), proc(814, 812, 33)];
        let s = select(procs, &selector(), OwnProcesses::default(), &Master::Detect);
        assert_eq!(pids(&s.workers), [813, 814]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn include_master_counts_it() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33)];
        let s = select(
            procs,
            &Selector {
                include_master: true,
                ..selector()
            },
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert_eq!(pids(&s.workers), [812, 813]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn flat_processes_are_all_workers() {
        let procs = vec![proc(10, 1, 0), proc(11, 1, 0), proc(12, 5, 0)];
        let s = select(procs, &selector(), OwnProcesses::default(), &Master::Detect);
        assert_eq!(pids(&s.workers), [10, 11, 12]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn user_filter_keeps_master_known() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33), proc(900, 1, 33)];
        let s = select(
            procs,
            &Selector {
                uid: Some(33),
                ..selector()
            },
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert_eq!(pids(&s.workers), [813, 900]);
        assert_eq!(pids(&s.masters), [812]);
    }

    // Regression (issue 9.3): with -u alone, pid 1 was "master 1" and its reaped-children
    // time of every orphan on the host was added to the workers' CPU.
    #[test]
    fn user_alone_has_no_master() {
        let procs = vec![
            proc(1, 0, 0),
            proc(640, 1, 65534),
            proc(641, 640, 65534),
            proc(700, 1, 65534),
        ];
        let s = select(
            procs,
            &Selector {
                uid: Some(65534),
                ..Selector::default()
            },
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert_eq!(pids(&s.workers), [640, 641, 700]);
        assert!(s.masters.is_empty(), "{:?}", pids(&s.masters));
        // -s does not name the service either
        let s = select(
            vec![proc(1, 0, 0), proc(640, 1, 0)],
            &Selector {
                states: Some("S".into()),
                ..Selector::default()
            },
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert!(s.masters.is_empty());
    }

    #[test]
    fn service_filters_allow_a_master() {
        let procs = || vec![proc(812, 1, 0), proc(813, 812, 33)];
        let with = |selector: Selector| {
            let s = select(procs(), &selector, OwnProcesses::default(), &Master::Detect);
            pids(&s.masters)
        };
        let filters = [
            Selector {
                cmdline: Some(CmdlineFilter::new("nginx").unwrap()),
                ..Selector::default()
            },
            Selector {
                exe: Some("/usr/sbin/nginx".into()),
                ..Selector::default()
            },
            Selector {
                cgroup: Some(CgroupFilter::Unit("nginx.service".into())),
                ..Selector::default()
            },
            Selector {
                uid: Some(33),
                ..selector()
            },
        ];
        for filter in filters {
            assert_eq!(with(filter.clone()), [812], "{filter:?}");
        }
    }

    #[test]
    fn pid_1_is_never_a_master() {
        // `-n systemd`: init and the user managers it started are all just processes named so
        let procs = vec![proc(1, 0, 0), proc(900, 1, 1000), proc(901, 1, 1001)];
        let s = select(
            procs,
            &Selector {
                name: Some(NameFilter::new("systemd")),
                include_master: true,
                ..Selector::default()
            },
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert_eq!(pids(&s.workers), [1, 900, 901]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn given_pid_1_has_workers_but_is_no_master() {
        // --ppid 1 or a pidfile holding 1: the children are the workers, but init's
        // reaped-children time is the host's, so it must not be a master to recover from
        let procs = vec![proc(1, 0, 0), proc(640, 1, 33), proc(641, 1, 33)];
        let s = select(
            procs,
            &Selector {
                include_master: true,
                ..selector()
            },
            OwnProcesses::default(),
            &Master::Given(Box::new(proc(1, 0, 0))),
        );
        assert_eq!(pids(&s.workers), [640, 641]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn kernel_threads_never_match() {
        let mut kthread = proc(50, 2, 0);
        kthread.kernel_thread = true;
        let s = select(
            vec![kthread],
            &selector(),
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert!(s.workers.is_empty());
    }

    // Regression guard for check_procs' old bug: the wrapping `sh -c` was counted.
    #[test]
    fn never_counts_itself_its_parent_or_children() {
        let procs = vec![
            proc(100, 1, 0),   // the shell that runs the check
            proc(101, 100, 0), // the check itself
            proc(102, 101, 0), // a child of the check
            proc(200, 1, 0),   // a real worker
        ];
        let own = OwnProcesses {
            pid: Some(101),
            parent: Some(100),
        };
        let s = select(procs, &selector(), own, &Master::Detect);
        assert_eq!(pids(&s.workers), [200]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn given_master_takes_its_children_only() {
        let procs = vec![
            proc(812, 1, 0),
            proc(813, 812, 33),
            proc(900, 1, 33),
            proc(901, 900, 33),
        ];
        let parent = proc(812, 1, 0);
        let s = select(
            procs,
            &selector(),
            OwnProcesses::default(),
            &Master::Given(Box::new(parent)),
        );
        assert_eq!(pids(&s.workers), [813]);
        assert_eq!(pids(&s.masters), [812]);
        let gone = select(
            vec![proc(813, 812, 33)],
            &selector(),
            OwnProcesses::default(),
            &Master::Missing,
        );
        assert!(gone.workers.is_empty() && gone.masters.is_empty());
    }

    #[test]
    fn state_filter() {
        let mut zombie = proc(11, 1, 0);
        zombie.state = 'Z';
        let mut running = proc(12, 1, 0);
        running.state = 'R';
        let sel = Selector {
            states: Some("RS".into()),
            ..selector()
        };
        let s = select(
            vec![zombie, running],
            &sel,
            OwnProcesses::default(),
            &Master::Detect,
        );
        assert_eq!(pids(&s.workers), [12]);
    }

    #[test]
    fn cmdline_reads_nuls_as_spaces() {
        let f = CmdlineFilter::new("^nginx: worker process$").unwrap();
        assert!(f.matches(b"nginx: worker process\0"));
        assert!(!f.matches(b"nginx: master process /usr/sbin/nginx\0"));
        let args = CmdlineFilter::new("gunicorn .*app:main").unwrap();
        assert!(args.matches(b"/usr/bin/python3\0/usr/bin/gunicorn\0-w\0app:main\0"));
        assert_eq!(command_line(b"a\0b c\0d\0"), "a b c d");
        // bytes that are not UTF-8 stand for one replacement character each run
        let raw = CmdlineFilter::new("^worker --pool .+ --x$").unwrap();
        assert!(raw.matches(b"worker\0--pool\0\xff\xfew\0--x\0"));
        assert!(CmdlineFilter::new("^w.rk$").unwrap().matches(b"w\xffrk\0"));
    }

    #[test]
    fn exe_survives_package_upgrades() {
        assert!(exe_matches("/usr/sbin/nginx", b"/usr/sbin/nginx"));
        assert!(exe_matches("/usr/sbin/nginx", b"/usr/sbin/nginx (deleted)"));
        assert!(!exe_matches("/usr/sbin/nginx", b"/usr/local/sbin/nginx"));
        assert!(!exe_matches("/usr/sbin/nginx", b"/usr/sbin/nginx\xff"));
    }

    #[test]
    fn cgroups_v1_and_v2() {
        let v2 = "0::/system.slice/php8.2-fpm.service\n";
        let v1 = "12:pids:/system.slice/nginx.service\n4:memory:/system.slice/nginx.service\n1:name=systemd:/system.slice/nginx.service\n";
        let unit = |u: &str| CgroupFilter::Unit(u.into());
        assert!(unit("php8.2-fpm.service").matches(v2));
        assert!(!unit("php8.2-fpm").matches(v2));
        assert!(unit("nginx.service").matches(v1));
        assert!(unit("system.slice").matches(v1));
        let glob = |g: &str| CgroupFilter::Glob(g.into());
        assert!(glob("/system.slice/php*-fpm.service").matches(v2));
        assert!(glob("*nginx*").matches(v1));
        assert!(!glob("/user.slice/*").matches(v2));
        assert!(glob("/system.slice/php8.?-fpm.service").matches(v2));
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"", b""));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*", b"/a/b"));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
        assert!(!glob_match(b"a*b*c", b"axxbyy"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"**a", b"bba"));
    }
}
