//! Acquisition, which pids to read: every pid of the tree, or when the selection allows it a
//! shortlist (a master's children, a unit's `cgroup.procs`) so that the cost does not grow with
//! the host's process count; and the check's own processes, never counted.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::filter::CgroupFilter;

use super::parse::parse_stat;
use super::values::ProcSample;

/// Calls `each` with every pid listed in the tree at `root`, stopping at its first error.
pub(super) fn each_pid(root: &Path, mut each: impl FnMut(i32) -> Result<()>) -> Result<()> {
    // nix's Dir hands out borrowed names: std's read_dir allocates one per process
    let listing = || format!("listing {}", root.display());
    let mut dir = nix::dir::Dir::open(
        root,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(listing)?;
    for entry in dir.iter() {
        let entry = entry.with_context(listing)?;
        if let Some(pid) = pid_of(entry.file_name().to_bytes()) {
            each(pid)?;
        }
    }
    Ok(())
}

/// A directory name that is a pid (all digits, in range).
fn pid_of(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = name
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    i32::try_from(value).ok().filter(|&pid| pid > 0)
}

/// The children of `pid` from every thread's `children` file (a child belongs to the thread
/// that forked it). None when the kernel has no such files (CONFIG_PROC_CHILDREN) or the
/// process is gone.
pub(super) fn children_of(root: &Path, pid: i32) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(root.join(pid.to_string()).join("task")).ok()?;
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let text = fs::read_to_string(task.path().join("children")).ok()?;
        children.extend(
            text.split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    Some(children)
}

/// The pids in a unit's (or a literal cgroup path's) cgroup and its sub-cgroups, from
/// cgroup v2's `cgroup.procs`. None when the cgroup cannot be found there (v1, a glob, a unit
/// in an unusual slice): the caller then scans.
pub(super) fn cgroup_procs(sys_root: &Path, filter: &CgroupFilter) -> Option<Vec<i32>> {
    // the unified (v2) hierarchy, or on hybrid hosts its `unified` mount and systemd's own
    // named v1 hierarchy, which both mirror the units
    let bases = ["fs/cgroup", "fs/cgroup/unified", "fs/cgroup/systemd"].map(|b| sys_root.join(b));
    let path = match filter {
        CgroupFilter::Unit(unit) => ["system.slice/", ""].map(|slice| format!("{slice}{unit}")),
        CgroupFilter::Glob(pattern) if !pattern.contains(['*', '?']) => {
            [pattern.trim_start_matches('/').to_string(), String::new()]
        }
        CgroupFilter::Glob(_) => return None,
    };
    let dir = bases
        .iter()
        .flat_map(|base| {
            path.iter()
                .filter(|p| !p.is_empty())
                .map(move |p| base.join(p))
        })
        .find(|dir| dir.join("cgroup.procs").is_file())?;
    let mut pids = Vec::new();
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        let text = fs::read_to_string(dir.join("cgroup.procs")).ok()?;
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
        if let Ok(entries) = fs::read_dir(&dir) {
            pending.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    Some(pids)
}

/// The check's own process and its parent, which must never be counted: NRPE and Icinga often
/// wrap a check in `sh -c`, and `check_procs` counted that shell for years.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnProcesses {
    pub pid: Option<i32>,
    pub parent: Option<i32>,
}

impl OwnProcesses {
    /// True for the check, its parent and its children.
    pub fn contains(&self, p: &ProcSample) -> bool {
        let own = |pid: Option<i32>| pid == Some(p.pid);
        own(self.pid) || own(self.parent) || (self.pid.is_some() && self.pid == Some(p.ppid))
    }
}

/// The check's own pid and its parent's, from the tree's `self` link: in a fixture tree that
/// has none, nothing is excluded.
pub fn own_processes(root: &Path) -> OwnProcesses {
    let pid = fs::read_link(root.join("self"))
        .ok()
        .and_then(|target| target.to_str().and_then(|s| s.parse::<i32>().ok()));
    let parent = pid
        .and_then(|pid| fs::read(root.join(pid.to_string()).join("stat")).ok())
        .and_then(|bytes| parse_stat(&bytes).ok())
        .map(|stat| stat.ppid);
    OwnProcesses { pid, parent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_names() {
        assert_eq!(pid_of(b"1"), Some(1));
        assert_eq!(pid_of(b"4194304"), Some(4_194_304));
        for not_a_pid in [
            &b""[..],
            b"self",
            b"0",
            b"12a",
            b"-1",
            b"99999999999",
            b"2147483648",
        ] {
            assert_eq!(pid_of(not_a_pid), None, "{not_a_pid:?}");
        }
    }
}
