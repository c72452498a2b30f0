//! Filters: what the operator said about the workers (`-n`, `-u`, `--ppid`/`--pidfile`,
//! `--unit`/`--cgroup`, `-a`, `--exe`, `-s`), gathered in a [`Selector`], and how each one is
//! matched against a process's bytes. `sample` asks them while it reads the proc tree, `select`
//! while it picks workers and master; [`Selector::parts`] is the one description of a selection
//! that the label, `-vv` and the tick file name are built from.

use std::borrow::Cow;
use std::path::Path;

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

    /// The unit `--unit` names, whose cgroup is the service's (see `sample::workers_cgroup`).
    pub fn unit(&self) -> Option<&str> {
        match &self.cgroup {
            Some(CgroupFilter::Unit(unit)) => Some(unit),
            _ => None,
        }
    }

    /// The selection as its parts, in the one order the tick file key hashes them: name, uid,
    /// master, parent, cgroup, command line, executable, states. The label, the `-vv`
    /// explanation and the tick file name are all built from this list, so a filter added to
    /// the selector and here reaches all three.
    pub fn parts(&self) -> Vec<SelectionPart<'_>> {
        // every field named: a new one does not compile until it has its place here
        let Selector {
            name,
            uid,
            include_master,
            parent,
            cmdline,
            exe,
            states,
            cgroup,
        } = self;
        let mut parts = Vec::new();
        parts.extend(name.as_ref().map(SelectionPart::Name));
        parts.extend(uid.map(SelectionPart::Uid));
        parts.push(SelectionPart::Master(*include_master));
        parts.extend(parent.as_ref().map(|parent| match parent {
            ParentSpec::Pid(pid) => SelectionPart::Ppid(*pid),
            ParentSpec::Pidfile(path) => SelectionPart::Pidfile(path),
        }));
        parts.extend(cgroup.as_ref().map(|cgroup| match cgroup {
            CgroupFilter::Unit(unit) => SelectionPart::Unit(unit),
            CgroupFilter::Glob(glob) => SelectionPart::Cgroup(glob),
        }));
        parts.extend(cmdline.as_ref().map(SelectionPart::Cmdline));
        parts.extend(exe.as_deref().map(SelectionPart::Exe));
        parts.extend(states.as_deref().map(SelectionPart::States));
        parts
    }

    /// The selection as one stable key, the bytes its tick file's name is hashed from (by
    /// `state::tick_file_name`): the name first, always, and as the bytes it matches
    /// (two names that print alike must not share a file), then every other part as
    /// `key=value`, each ended by a NUL. Existing tick files are named by it: changing it loses
    /// the baseline of every selection it changes for.
    pub fn state_key(&self) -> Vec<u8> {
        let name_bytes = self.name.as_ref().map(NameFilter::bytes);
        let mut key: Vec<u8> = [b"name=", name_bytes.unwrap_or_default(), b"\0"].concat();
        for part in self
            .parts()
            .iter()
            .filter(|p| !matches!(p, SelectionPart::Name(_)))
        {
            key.extend_from_slice(format!("{}={}\0", part.key(), part.value()).as_bytes());
        }
        key
    }

    /// How a tick file's name shows the selection: the name, else the unit, else "all".
    pub fn state_label(&self) -> String {
        self.parts()
            .iter()
            .find(|p| {
                matches!(p, SelectionPart::Name(_) | SelectionPart::Unit(_))
                    && !p.value().is_empty()
            })
            .map_or_else(|| "all".into(), |p| p.value().into_owned())
    }
}

/// One part of a selection: a filter the operator gave, or whether the master counts. Every
/// way the selection is described (the label, `-vv`, the tick file key) goes through here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionPart<'a> {
    /// `-n`
    Name(&'a NameFilter),
    /// `-u`, as a uid
    Uid(u32),
    /// `--include-master`, given or not
    Master(bool),
    /// `--ppid`
    Ppid(i32),
    /// `--pidfile`
    Pidfile(&'a Path),
    /// `--unit`
    Unit(&'a str),
    /// `--cgroup`
    Cgroup(&'a str),
    /// `-a`
    Cmdline(&'a CmdlineFilter),
    /// `--exe`
    Exe(&'a str),
    /// `-s`
    States(&'a str),
}

impl SelectionPart<'_> {
    /// The part's key in the tick file name's hash. Existing tick files are named by these:
    /// changing one loses the baseline of every selection that has the part.
    pub fn key(&self) -> &'static str {
        match self {
            SelectionPart::Name(_) => "name",
            SelectionPart::Uid(_) => "uid",
            SelectionPart::Master(_) => "master",
            SelectionPart::Ppid(_) => "ppid",
            SelectionPart::Pidfile(_) => "pidfile",
            SelectionPart::Unit(_) => "unit",
            SelectionPart::Cgroup(_) => "cgroup",
            SelectionPart::Cmdline(_) => "cmdline",
            SelectionPart::Exe(_) => "exe",
            SelectionPart::States(_) => "states",
        }
    }

    /// The value as the operator gave it (a name that is not UTF-8 escaped; a uid as a
    /// number; the master `true` or `false`).
    pub fn value(&self) -> Cow<'_, str> {
        match self {
            SelectionPart::Name(name) => Cow::Borrowed(name.name()),
            SelectionPart::Uid(uid) => Cow::Owned(uid.to_string()),
            SelectionPart::Master(counted) => Cow::Owned(counted.to_string()),
            SelectionPart::Ppid(pid) => Cow::Owned(pid.to_string()),
            SelectionPart::Pidfile(path) => Cow::Owned(path.display().to_string()),
            SelectionPart::Unit(text)
            | SelectionPart::Cgroup(text)
            | SelectionPart::Exe(text)
            | SelectionPart::States(text) => Cow::Borrowed(text),
            SelectionPart::Cmdline(re) => Cow::Borrowed(re.pattern()),
        }
    }

    /// How `-vv` lists the part: `name nginx`, `children of pidfile /run/nginx.pid`.
    pub fn phrase(&self) -> String {
        let value = self.value();
        match self {
            SelectionPart::Master(true) => "master counted".to_string(),
            SelectionPart::Master(false) => "master not counted".to_string(),
            SelectionPart::Ppid(_) => format!("children of {value}"),
            SelectionPart::Pidfile(_) => format!("children of pidfile {value}"),
            SelectionPart::Cmdline(_) => format!("cmdline /{value}/"),
            SelectionPart::States(_) => format!("state {value}"),
            SelectionPart::Name(_)
            | SelectionPart::Uid(_)
            | SelectionPart::Unit(_)
            | SelectionPart::Cgroup(_)
            | SelectionPart::Exe(_) => {
                format!("{} {value}", self.key())
            }
        }
    }

    /// How the status line names the service by this part alone; None for the parts that do
    /// not say which service it is.
    pub fn label(&self) -> Option<String> {
        match self {
            SelectionPart::Name(_) | SelectionPart::Unit(_) | SelectionPart::Exe(_) => {
                Some(self.value().into_owned())
            }
            SelectionPart::Pidfile(_) => Some(format!("pidfile {}", self.value())),
            SelectionPart::Ppid(_) | SelectionPart::Cgroup(_) | SelectionPart::Cmdline(_) => {
                Some(self.phrase())
            }
            SelectionPart::Uid(_) | SelectionPart::Master(_) | SelectionPart::States(_) => None,
        }
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

/// How much of a command line `-a` (and `-n`'s argv[0] fallback) looks at, bytes: any user can
/// start processes with megabytes of arguments, and reading and matching all of them for
/// every process on the host made a check miss its timeout. A command line longer than this
/// is matched on its first 64 KiB only: text past them never matches.
pub const CMDLINE_MATCHED: usize = 64 * 1024;

/// `-a REGEX` on the full command line, NULs read as spaces (as `ps -o args` shows it), or on
/// its first [`CMDLINE_MATCHED`] bytes when it is longer.
#[derive(Debug, Clone)]
pub struct CmdlineFilter(regex_lite::Regex);

impl CmdlineFilter {
    pub fn new(pattern: &str) -> Result<CmdlineFilter, regex_lite::Error> {
        regex_lite::Regex::new(pattern).map(CmdlineFilter)
    }

    pub fn pattern(&self) -> &str {
        self.0.as_str()
    }

    /// `raw` is `/proc/PID/cmdline` as read (at most its first [`CMDLINE_MATCHED`] bytes).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every filter the options allow, at once.
    fn everything() -> Selector {
        Selector {
            name: Some(NameFilter::new("nginx")),
            uid: Some(33),
            include_master: true,
            parent: Some(ParentSpec::Pidfile("/run/nginx.pid".into())),
            cmdline: Some(CmdlineFilter::new("worker|cache").unwrap()),
            exe: Some("/usr/sbin/nginx".into()),
            states: Some("RS".into()),
            cgroup: Some(CgroupFilter::Glob("/system.slice/*".into())),
        }
    }

    #[test]
    fn parts_list_every_filter_in_key_order() {
        let selector = everything();
        let parts = selector.parts();
        let keys: Vec<&str> = parts.iter().map(SelectionPart::key).collect();
        assert_eq!(
            keys,
            ["name", "uid", "master", "pidfile", "cgroup", "cmdline", "exe", "states"]
        );
        let values: Vec<String> = parts.iter().map(|p| p.value().into_owned()).collect();
        assert_eq!(
            values,
            [
                "nginx",
                "33",
                "true",
                "/run/nginx.pid",
                "/system.slice/*",
                "worker|cache",
                "/usr/sbin/nginx",
                "RS"
            ]
        );
        let phrases: Vec<String> = parts.iter().map(SelectionPart::phrase).collect();
        assert_eq!(
            phrases,
            [
                "name nginx",
                "uid 33",
                "master counted",
                "children of pidfile /run/nginx.pid",
                "cgroup /system.slice/*",
                "cmdline /worker|cache/",
                "exe /usr/sbin/nginx",
                "state RS"
            ]
        );
        // a selection with no filters still says whether the master counts
        assert_eq!(Selector::default().parts(), [SelectionPart::Master(false)]);
    }

    #[test]
    fn parts_that_name_the_service_label_it() {
        let labels = |selector: &Selector| -> Vec<Option<String>> {
            selector.parts().iter().map(SelectionPart::label).collect()
        };
        let name = |s: &str| Some(s.to_string());
        assert_eq!(
            labels(&everything()),
            [
                name("nginx"),
                None,
                None,
                name("pidfile /run/nginx.pid"),
                name("cgroup /system.slice/*"),
                name("cmdline /worker|cache/"),
                name("/usr/sbin/nginx"),
                None
            ]
        );
        let others = Selector {
            parent: Some(ParentSpec::Pid(812)),
            cgroup: Some(CgroupFilter::Unit("nginx.service".into())),
            ..Selector::default()
        };
        assert_eq!(
            labels(&others),
            [None, name("children of 812"), name("nginx.service")]
        );
        assert_eq!(others.parts()[2].phrase(), "unit nginx.service");
        assert_eq!(others.parts()[1].phrase(), "children of 812");
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
