//! Acquisition from `/sys`, where: the cgroup hierarchies the check's own mount namespace has
//! mounted (`/proc/self/mountinfo`), and which cgroup of each holds the workers. Pure: bytes
//! and paths in, places out.

use std::path::{Path, PathBuf};

/// A cgroup hierarchy the figures are read from. On a v1 or hybrid host each controller has
/// its own tree, so the memory figures, the CPU throttling and the pressure may each come from
/// another directory, with another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hierarchy {
    /// the v1 tree of the `memory` controller
    Memory,
    /// the v1 tree of the `cpu` controller (often co-mounted with `cpuacct`)
    Cpu,
    /// the v2 tree: the whole of a pure v2 host, the `unified` mount of a hybrid one
    Unified,
}

impl Hierarchy {
    /// The name the tick file and the notes give it.
    pub fn key(self) -> &'static str {
        match self {
            Hierarchy::Memory => "memory",
            Hierarchy::Cpu => "cpu",
            Hierarchy::Unified => "unified",
        }
    }

    /// The hierarchy named `key`.
    pub fn from_key(key: &str) -> Option<Hierarchy> {
        [Hierarchy::Memory, Hierarchy::Cpu, Hierarchy::Unified]
            .into_iter()
            .find(|h| h.key() == key)
    }

    /// The v1 controller whose tree it is, None for the v2 tree.
    fn controller(self) -> Option<&'static str> {
        match self {
            Hierarchy::Memory => Some("memory"),
            Hierarchy::Cpu => Some("cpu"),
            Hierarchy::Unified => None,
        }
    }
}

/// One cgroup file system mounted in the check's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub hierarchy: Hierarchy,
    /// the cgroup the mount shows at its mount point (`/` unless a container bind-mounted a
    /// part of the tree): a worker's path is below it or not visible here
    pub root: String,
    /// where it is mounted, as mountinfo says (`/sys/fs/cgroup/memory`)
    pub point: String,
}

/// The hierarchies the check can read, from the text of `/proc/self/mountinfo`: the v2 tree,
/// and the v1 trees of the memory and cpu controllers. The first mount of each wins (later
/// ones are bind mounts of the same tree).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.lines() {
        // id parent major:minor root point options [optional fields] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), [fstype, _source, options, ..]) =
            (left.get(3), left.get(4), right.as_slice())
        else {
            continue;
        };
        let found = match *fstype {
            "cgroup2" => Some(Hierarchy::Unified),
            "cgroup" => [Hierarchy::Memory, Hierarchy::Cpu]
                .into_iter()
                .find(|h| options.split(',').any(|o| Some(o) == h.controller())),
            _ => None,
        };
        if let Some(hierarchy) = found.filter(|h| mounts.iter().all(|m| m.hierarchy != *h)) {
            mounts.push(Mount {
                hierarchy,
                root: unescape(root),
                point: unescape(point),
            });
        }
    }
    mounts
}

/// mountinfo writes a space, tab, newline and backslash in a path as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory a mount point stands for: one under `/sys` is read under `sys_root` (the
/// real `/sys`, or a fixture's stand-in for it); one elsewhere (`/cgroup` on old hosts) as it
/// is.
pub fn mount_dir(point: &str, sys_root: &Path) -> PathBuf {
    match point.strip_prefix("/sys") {
        Some("") => sys_root.to_path_buf(),
        Some(rest) if rest.starts_with('/') => sys_root.join(rest.trim_start_matches('/')),
        _ => PathBuf::from(point),
    }
}

/// A process's path in `hierarchy`, from the text of its `/proc/PID/cgroup`: the `0::` line
/// for the v2 tree, the line listing the controller for a v1 one.
pub fn path_in(cgroup_file: &str, hierarchy: Hierarchy) -> Option<&str> {
    cgroup_file.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let ours = match hierarchy.controller() {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        ours.then_some(path)
    })
}

/// Why the workers have no cgroup of their own in a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCommon {
    /// a worker's `/proc/PID/cgroup` has no line for the hierarchy (or none was read)
    Unknown,
    /// all in the root cgroup, or in cgroups with nothing in common below it
    Root,
}

/// The cgroup the figures of one hierarchy are read from, given each worker's path in it: the
/// level named `unit` (with `--unit`), else the deepest cgroup that holds every worker. Paths
/// are `/`-separated and start with `/`; a level `.` or `..` (which the kernel never writes)
/// makes the path unusable. The second value says whether every worker is in that very
/// cgroup (not in one below it).
pub fn common_cgroup(
    paths: &[Option<&str>],
    unit: Option<&str>,
) -> Result<(String, bool), NoCommon> {
    let mut common: Option<Vec<&str>> = None;
    let mut all_in = true;
    for path in paths {
        let levels = path.and_then(levels).ok_or(NoCommon::Unknown)?;
        let cut = unit
            .and_then(|u| levels.iter().position(|l| *l == u))
            .map_or(levels.len(), |i| i + 1);
        all_in &= cut == levels.len();
        let mine = &levels[..cut];
        common = Some(match common {
            None => mine.to_vec(),
            Some(so_far) => {
                let same = so_far.iter().zip(mine).take_while(|(a, b)| a == b).count();
                all_in &= same == so_far.len() && same == mine.len();
                so_far[..same].to_vec()
            }
        });
    }
    let common = common.ok_or(NoCommon::Unknown)?;
    if common.is_empty() {
        return Err(NoCommon::Root);
    }
    // with --unit, the unit's cgroup is the service's, whatever it has below
    let shared = all_in || unit.is_some_and(|u| common.last() == Some(&u));
    Ok((format!("/{}", common.join("/")), shared))
}

/// The levels of a cgroup path, None when it is not one.
fn levels(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let levels: Vec<&str> = rest.split('/').collect();
    levels
        .iter()
        .all(|l| !l.is_empty() && *l != "." && *l != "..")
        .then_some(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's build hosts: v1 controllers, a v2 `unified` tree.
    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_mounts_give_memory_cpu_and_unified() {
        let mounts = parse_mountinfo(HYBRID);
        let found: Vec<(Hierarchy, &str)> = mounts
            .iter()
            .map(|m| (m.hierarchy, m.point.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Hierarchy::Cpu, "/sys/fs/cgroup/cpu"),
                (Hierarchy::Memory, "/sys/fs/cgroup/memory"),
                (Hierarchy::Unified, "/sys/fs/cgroup/unified"),
            ]
        );
        // EL 7 co-mounts cpu with cpuacct; Debian 12 is v2 only; a bind mount comes second
        let el7 = "25 18 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n";
        assert_eq!(parse_mountinfo(el7)[0].hierarchy, Hierarchy::Cpu);
        assert_eq!(parse_mountinfo(el7)[0].point, "/sys/fs/cgroup/cpu,cpuacct");
        let v2 = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                  90 29 0:26 /x /mnt/x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(parse_mountinfo(v2).len(), 1);
    }

    #[test]
    fn hostile_mountinfo_lines_are_skipped_or_unescaped() {
        let text = "garbage\n1 2 3\n - \n\
                    7 1 0:1 /a\\040b /mnt/cg\\134x rw - cgroup2 none rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(
            (mounts[0].root.as_str(), mounts[0].point.as_str()),
            ("/a b", "/mnt/cg\\x")
        );
        assert_eq!(unescape("\\777\\0"), "\\777\\0");
    }

    #[test]
    fn mount_points_under_sys_are_read_under_the_sys_root() {
        let sys = Path::new("/tmp/fixture/sys");
        assert_eq!(mount_dir("/sys/fs/cgroup", sys), sys.join("fs/cgroup"));
        assert_eq!(mount_dir("/sys", sys), sys);
        assert_eq!(mount_dir("/sysfoo", sys), PathBuf::from("/sysfoo"));
        assert_eq!(
            mount_dir("/cgroup/memory", sys),
            PathBuf::from("/cgroup/memory")
        );
    }

    #[test]
    fn a_workers_path_per_hierarchy() {
        let file =
            "9:name=systemd:/system.slice/nginx.service\n4:memory:/system.slice/nginx.service\n\
                    1:cpu,cpuacct:/system.slice\n0::/system.slice/nginx.service\n";
        assert_eq!(
            path_in(file, Hierarchy::Memory),
            Some("/system.slice/nginx.service")
        );
        assert_eq!(path_in(file, Hierarchy::Cpu), Some("/system.slice"));
        assert_eq!(
            path_in(file, Hierarchy::Unified),
            Some("/system.slice/nginx.service")
        );
        assert_eq!(path_in("4:memory:/x\n", Hierarchy::Unified), None);
    }

    #[test]
    fn the_deepest_cgroup_holding_every_worker() {
        let unit = "/system.slice/nginx.service";
        let sub = "/system.slice/nginx.service/workers";
        let other = "/system.slice/php.service";
        let ok = |paths: &[&str], unit| {
            let paths: Vec<Option<&str>> = paths.iter().map(|p| Some(*p)).collect();
            common_cgroup(&paths, unit)
        };
        assert_eq!(ok(&[unit, unit], None), Ok((unit.into(), true)));
        assert_eq!(ok(&[unit, sub], None), Ok((unit.into(), false)));
        assert_eq!(ok(&[sub, unit], None), Ok((unit.into(), false)));
        assert_eq!(
            ok(&[unit, other], None),
            Ok(("/system.slice".into(), false))
        );
        assert_eq!(ok(&[sub], Some("nginx.service")), Ok((unit.into(), true)));
        assert_eq!(ok(&["/a", "/b"], None), Err(NoCommon::Root));
        assert_eq!(ok(&["/"], None), Err(NoCommon::Root));
        assert_eq!(ok(&["/a/../b"], None), Err(NoCommon::Unknown));
        assert_eq!(ok(&["relative"], None), Err(NoCommon::Unknown));
        assert_eq!(
            common_cgroup(&[Some(unit), None], None),
            Err(NoCommon::Unknown)
        );
        assert_eq!(common_cgroup(&[], None), Err(NoCommon::Unknown));
    }
}
