//! Test fixtures for the parts of `sample`: fake process directories and trees, written the
//! way the kernel writes them, so each part's tests read what a scan would.

use std::fs;
use std::path::Path;

use crate::deadline::Deadline;

use super::Snapshot;

/// Writes `<root>/<dir>` as a process `pid` named `comm`, started at `starttime` ticks,
/// with `fds` open files and its own cgroup.
pub(super) fn fake_process(root: &Path, dir: &str, pid: i32, comm: &str, starttime: u64, fds: u32) {
    let dir = root.join(dir);
    fs::create_dir_all(dir.join("fd")).unwrap();
    fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
    fs::write(
        dir.join("stat"),
        format!(
            "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
             {starttime} 104857600 1024 18446744073709551615 1 1 0 0 0 0 0 4096 16384 0 0 0 \
             17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join("status"),
        format!(
            "Name:\t{comm}\nPid:\t{pid}\nUid:\t33\t33\t33\t33\nVmSize:\t102400 kB\n\
             VmRSS:\t4096 kB\nThreads:\t1\nCpus_allowed_list:\t0-1\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join("limits"),
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max open files            1024                 524288               files     \n",
    )
    .unwrap();
    fs::write(
        dir.join("smaps_rollup"),
        "Pss:    2048 kB\nPrivate_Dirty:  512 kB\n",
    )
    .unwrap();
    fs::write(
        dir.join("cgroup"),
        format!("0::/system.slice/{comm}.service\n"),
    )
    .unwrap();
    for fd in 0..fds {
        fs::write(dir.join("fd").join(fd.to_string()), "").unwrap();
    }
}

/// A fixture tree with `uptime`, `stat` and processes 812 to 814, all gunicorn workers.
pub(super) fn fake_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("uptime"), "1000.00 100.00\n").unwrap();
    fs::write(root.path().join("stat"), "cpu0 1 0 1 1\nbtime 1700000000\n").unwrap();
    for pid in 812..=814 {
        fake_process(root.path(), &pid.to_string(), pid, "gunicorn", 1000, 0);
        let cmdline = root.path().join(format!("{pid}/cmdline"));
        fs::write(cmdline, "gunicorn: worker [app]\0").unwrap();
    }
    root
}

pub(super) fn in_ten_seconds() -> Deadline {
    Deadline::new(
        std::time::Instant::now(),
        std::time::Duration::from_secs(10),
    )
}

/// [`fake_process`] as a child of `ppid`, run by `uid`, with this command line; `None`
/// makes its `cmdline` fail to read (a directory), so a test sees whether it was read.
pub(super) fn fake_child(root: &Path, pid: i32, ppid: i32, uid: u32, cmdline: Option<&str>) {
    fake_process(root, &pid.to_string(), pid, "gunicorn", 1000, 0);
    let dir = root.join(pid.to_string());
    let stat = fs::read_to_string(dir.join("stat")).unwrap();
    fs::write(
        dir.join("stat"),
        stat.replace(") S 1 ", &format!(") S {ppid} ")),
    )
    .unwrap();
    let status = fs::read_to_string(dir.join("status")).unwrap();
    let uids = format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}");
    fs::write(
        dir.join("status"),
        status.replace("Uid:\t33\t33\t33\t33", &uids),
    )
    .unwrap();
    match cmdline {
        Some(cmdline) => fs::write(dir.join("cmdline"), format!("{cmdline}\0")).unwrap(),
        None => fs::create_dir(dir.join("cmdline")).unwrap(),
    }
}

/// A root gunicorn master 800 with its worker 801 (www-data), and processes of other users
/// whose command lines must not be read: 900, 901 (900's child) and 902 (a child of the
/// master).
pub(super) fn tree_with_unread_command_lines() -> tempfile::TempDir {
    let root = fake_tree();
    for pid in 812..=814 {
        fs::remove_dir_all(root.path().join(pid.to_string())).unwrap();
    }
    fake_child(root.path(), 800, 1, 0, Some("gunicorn: master [app]"));
    fake_child(root.path(), 801, 800, 33, Some("gunicorn: worker [app]"));
    fake_child(root.path(), 900, 1, 65534, None);
    fake_child(root.path(), 901, 900, 65534, None);
    fake_child(root.path(), 902, 800, 65534, None);
    root
}

pub(super) fn pids(snapshot: &Snapshot) -> Vec<i32> {
    let mut pids: Vec<i32> = snapshot.procs.iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    pids
}

pub(super) fn io_file(read: u64, write: u64) -> String {
    format!(
        "rchar: 9999\nwchar: 8888\nsyscr: 7\nsyscw: 6\nread_bytes: {read}\n\
         write_bytes: {write}\ncancelled_write_bytes: 4096\n"
    )
}
