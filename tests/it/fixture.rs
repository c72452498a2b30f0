//! What the integration tests stand on: fixture proc trees, and the one way each kind of run
//! of the check is built.
//!
//! A [`ProcTree`] is a directory shaped like `/proc` (`uptime`, `stat`, `PID/{comm,stat,status,
//! cmdline}`), written from plain [`FakeProc`] values so every test states the exact ticks and
//! sizes it asserts on. Ticks are 1/100 s: the binary uses the host's USER_HZ, which is 100 on
//! every Linux architecture we build for. [`check`] and [`run`] run the check on a tree,
//! [`real_check`] on the real `/proc`, both with the environment Nagios gives ([`command`]).
//! Real processes to check come from [`spawn`], perfdata is read with [`perfdata`].

pub mod perfdata;
pub mod spawn;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::sync::{Mutex, MutexGuard};

use assert_cmd::Command;
use tempfile::TempDir;

/// Boot time of the fixture host, seconds since the epoch.
pub const BTIME: u64 = 1_700_000_000;

/// One process in a fixture tree.
#[derive(Debug, Clone)]
pub struct FakeProc {
    pub pid: i32,
    pub ppid: i32,
    /// the kernel's name for it: bytes, not always UTF-8 (see [`FakeProc::raw_comm`])
    pub comm: Vec<u8>,
    pub uid: u32,
    pub state: char,
    /// stat flags (0x00200000 marks a kernel thread)
    pub flags: u32,
    /// clock ticks after boot
    pub starttime: u64,
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
    /// VmRSS, KiB
    pub rss_kib: u64,
    /// VmSize, KiB
    pub vms_kib: u64,
    /// NUL-separated command line
    pub cmdline: String,
    /// open file descriptors (entries of `fd/`); None: `fd/` unreadable (absent)
    pub fds: Option<u32>,
    /// soft RLIMIT_NOFILE in `limits`
    pub fd_limit: u64,
    /// Pss in `smaps_rollup`, KiB (None: no smaps_rollup, as for another user's process)
    pub pss_kib: Option<u64>,
    /// Private_Clean + Private_Dirty in `smaps_rollup`, KiB
    pub uss_kib: u64,
    /// the cgroup v2 path
    pub cgroup: String,
    pub threads: u64,
    /// target of the `exe` link (None: no link, as for another user's process)
    pub exe: Option<String>,
    /// thread id -> children, written as `task/TID/children` (empty: no task dir)
    pub children: Vec<i32>,
    /// `read_bytes`, `write_bytes` of `io`, and of that what reaped children did (the rest is
    /// the process's own, written as `task/PID/io`); None: no `io` at all, as on a kernel
    /// without I/O accounting
    pub io: Option<FakeIo>,
    /// `nonvoluntary_ctxt_switches` in `status`
    pub nvcsw: u64,
}

/// What `/proc/PID/io` says, see [`FakeProc::io`].
#[derive(Debug, Clone, Copy)]
pub enum FakeIo {
    Counters {
        read: u64,
        write: u64,
        reaped_read: u64,
        reaped_write: u64,
    },
    /// there but unreadable, as another user's is without root (a directory fails to read)
    Denied,
}

impl FakeProc {
    /// A sleeping process started at `starttime` ticks with the given CPU ticks.
    pub fn new(pid: i32, ppid: i32, comm: &str, uid: u32) -> FakeProc {
        FakeProc {
            pid,
            ppid,
            comm: comm.as_bytes().to_vec(),
            uid,
            state: 'S',
            flags: 0x0040_0140,
            starttime: 1000,
            utime: 0,
            stime: 0,
            cutime: 0,
            cstime: 0,
            rss_kib: 4096,
            vms_kib: 102_400,
            cmdline: format!("{comm}\0"),
            fds: Some(8),
            fd_limit: 1024,
            pss_kib: Some(2048),
            uss_kib: 1024,
            cgroup: format!("/system.slice/{comm}.service"),
            threads: 1,
            exe: None,
            children: Vec::new(),
            io: None,
            nvcsw: 1,
        }
    }

    /// With `nvcsw` involuntary context switches so far.
    pub fn switched(mut self, nvcsw: u64) -> FakeProc {
        self.nvcsw = nvcsw;
        self
    }

    /// `/proc/PID/io` with these bytes read and written, none of them by reaped children.
    pub fn io(self, read: u64, write: u64) -> FakeProc {
        self.io_with_reaped(read, write, 0, 0)
    }

    /// `/proc/PID/io` of a master: `read`, `write` in all, of which its reaped children did
    /// `reaped_read`, `reaped_write`.
    pub fn io_with_reaped(
        mut self,
        read: u64,
        write: u64,
        reaped_read: u64,
        reaped_write: u64,
    ) -> FakeProc {
        self.io = Some(FakeIo::Counters {
            read,
            write,
            reaped_read,
            reaped_write,
        });
        self
    }

    pub fn started(mut self, starttime: u64) -> FakeProc {
        self.starttime = starttime;
        self
    }

    pub fn ticks(mut self, utime: u64, stime: u64) -> FakeProc {
        self.utime = utime;
        self.stime = stime;
        self
    }

    /// Ticks of reaped children, as a master accumulates them.
    pub fn children_ticks(mut self, cutime: u64, cstime: u64) -> FakeProc {
        self.cutime = cutime;
        self.cstime = cstime;
        self
    }

    /// A comm the kernel may hold but no `&str` can: cut inside a character, or plain bytes.
    /// The command line and cgroup stay as [`FakeProc::new`] made them.
    pub fn raw_comm(mut self, comm: &[u8]) -> FakeProc {
        self.comm = comm.to_vec();
        self
    }

    pub fn memory_kib(mut self, rss: u64, vms: u64) -> FakeProc {
        self.rss_kib = rss;
        self.vms_kib = vms;
        self
    }

    fn stat_line(&self) -> Vec<u8> {
        // the comm goes in raw, as the kernel writes it
        let rest = format!(
            ") {state} {ppid} {pid} {pid} 0 -1 {flags} 100 0 0 0 {utime} {stime} \
             {cutime} {cstime} 20 0 1 0 {start} {vsize} {rss_pages} 18446744073709551615 1 1 0 0 \
             0 0 0 4096 16384 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            pid = self.pid,
            state = self.state,
            ppid = self.ppid,
            flags = self.flags,
            utime = self.utime,
            stime = self.stime,
            cutime = self.cutime,
            cstime = self.cstime,
            start = self.starttime,
            vsize = self.vms_kib * 1024,
            // deliberately not VmRSS/4: the check must take RSS from status, not from here
            rss_pages = self.rss_kib / 8,
        );
        [
            format!("{} (", self.pid).as_bytes(),
            &self.comm,
            rest.as_bytes(),
        ]
        .concat()
    }

    fn status(&self) -> Vec<u8> {
        let state = match self.state {
            'R' => "R (running)",
            'Z' => "Z (zombie)",
            'D' => "D (disk sleep)",
            _ => "S (sleeping)",
        };
        // Name is the raw comm too (the kernel escapes only spaces, `\` and line breaks)
        let rest = format!(
            "\nUmask:\t0022\nState:\t{state}\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\n\
             PPid:\t{ppid}\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
             Gid:\t{uid}\t{uid}\t{uid}\t{uid}\nFDSize:\t64\nGroups:\t\n\
             VmPeak:\t{vms} kB\nVmSize:\t{vms} kB\nVmLck:\t0 kB\nVmPin:\t0 kB\nVmHWM:\t{rss} kB\n\
             VmRSS:\t{rss} kB\nRssAnon:\t{rss} kB\nRssFile:\t0 kB\nRssShmem:\t0 kB\n\
             VmData:\t1000 kB\nVmStk:\t132 kB\nVmExe:\t100 kB\nVmLib:\t2000 kB\nVmPTE:\t60 kB\n\
             VmSwap:\t0 kB\nThreads:\t{threads}\nSigQ:\t0/63459\nSigPnd:\t0000000000000000\n\
             ShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\n\
             SigCgt:\t0000000188004a07\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
             CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n\
             NoNewPrivs:\t0\nSeccomp:\t0\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n\
             voluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t{nvcsw}\n",
            pid = self.pid,
            ppid = self.ppid,
            uid = self.uid,
            vms = self.vms_kib,
            rss = self.rss_kib,
            threads = self.threads,
            nvcsw = self.nvcsw,
        );
        [b"Name:\t", &self.comm[..], rest.as_bytes()].concat()
    }

    fn limits(&self) -> String {
        format!(
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max cpu time              unlimited            unlimited            seconds   \n\
             Max open files            {}                 524288               files     \n\
             Max processes             63459                63459                processes \n",
            self.fd_limit
        )
    }

    fn smaps_rollup(&self, pss: u64) -> String {
        format!(
            "55d0c0a0e000-7ffd7e1f7000 ---p 00000000 00:00 0                          [rollup]\n\
             Rss:                {rss} kB\nPss:                {pss} kB\n\
             Pss_Anon:           {pss} kB\nShared_Clean:       0 kB\nShared_Dirty:       0 kB\n\
             Private_Clean:      {clean} kB\nPrivate_Dirty:      {dirty} kB\n\
             Referenced:         {rss} kB\nAnonymous:          {rss} kB\nSwap:               0 kB\n",
            rss = self.rss_kib,
            clean = self.uss_kib / 2,
            dirty = self.uss_kib - self.uss_kib / 2,
        )
    }
}

/// `io` and the process's own `task/PID/io`, as `/proc` has them.
fn write_io(dir: &Path, pid: i32, io: Option<FakeIo>) {
    let file = |read: u64, write: u64| {
        format!(
            "rchar: {read}\nwchar: {write}\nsyscr: 1\nsyscw: 1\nread_bytes: {read}\n\
             write_bytes: {write}\ncancelled_write_bytes: 0\n"
        )
    };
    let (whole, own) = (
        dir.join("io"),
        dir.join("task").join(pid.to_string()).join("io"),
    );
    for path in [&whole, &own] {
        let _ = fs::remove_file(path).or_else(|_| fs::remove_dir(path));
    }
    match io {
        None => {}
        Some(FakeIo::Denied) => fs::create_dir(&whole).unwrap(),
        Some(FakeIo::Counters {
            read,
            write,
            reaped_read,
            reaped_write,
        }) => {
            fs::write(&whole, file(read, write)).unwrap();
            fs::create_dir_all(own.parent().unwrap()).unwrap();
            fs::write(&own, file(read - reaped_read, write - reaped_write)).unwrap();
        }
    }
}

/// A directory shaped like `/proc`.
pub struct ProcTree {
    dir: TempDir,
}

impl AsRef<Path> for ProcTree {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl ProcTree {
    /// A host with two CPUs, booted at [`BTIME`], `uptime` seconds ago.
    pub fn new(uptime: f64) -> ProcTree {
        let tree = ProcTree {
            dir: tempfile::tempdir().unwrap(),
        };
        tree.set_uptime(uptime);
        tree.set_btime(BTIME);
        fs::write(
            tree.path().join("meminfo"),
            "MemTotal:        4194304 kB\nMemFree:         2097152 kB\n",
        )
        .unwrap();
        tree
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn set_uptime(&self, uptime: f64) {
        fs::write(self.path().join("uptime"), format!("{uptime:.2} 123.45\n")).unwrap();
    }

    pub fn set_btime(&self, btime: u64) {
        let stat = format!(
            "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 50 0 50 500 0 0 0 0 0 0\n\
             cpu1 50 0 50 500 0 0 0 0 0 0\nintr 0\nctxt 100\nbtime {btime}\n\
             processes 500\nprocs_running 1\nprocs_blocked 0\n"
        );
        fs::write(self.path().join("stat"), stat).unwrap();
    }

    /// Adds or replaces a process.
    pub fn put(&self, p: &FakeProc) -> &ProcTree {
        let dir = self.path().join(p.pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("comm"), [&p.comm[..], b"\n"].concat()).unwrap();
        fs::write(dir.join("stat"), p.stat_line()).unwrap();
        fs::write(dir.join("status"), p.status()).unwrap();
        fs::write(dir.join("cmdline"), &p.cmdline).unwrap();
        fs::write(dir.join("limits"), p.limits()).unwrap();
        fs::write(dir.join("cgroup"), format!("0::{}\n", p.cgroup)).unwrap();
        let fd = dir.join("fd");
        let _ = fs::remove_dir_all(&fd);
        if let Some(n) = p.fds {
            fs::create_dir(&fd).unwrap();
            for i in 0..n {
                fs::write(fd.join(i.to_string()), "").unwrap();
            }
        }
        let exe = dir.join("exe");
        let _ = fs::remove_file(&exe);
        if let Some(target) = &p.exe {
            std::os::unix::fs::symlink(target, &exe).unwrap();
        }
        if !p.children.is_empty() {
            let task = dir.join("task").join(p.pid.to_string());
            fs::create_dir_all(&task).unwrap();
            let list: Vec<String> = p.children.iter().map(|c| c.to_string()).collect();
            fs::write(task.join("children"), format!("{} ", list.join(" "))).unwrap();
        }
        write_io(&dir, p.pid, p.io);
        let smaps = dir.join("smaps_rollup");
        match p.pss_kib {
            Some(pss) => fs::write(smaps, p.smaps_rollup(pss)).unwrap(),
            None => {
                let _ = fs::remove_file(smaps);
            }
        }
        self
    }

    pub fn remove(&self, pid: i32) {
        fs::remove_dir_all(self.path().join(pid.to_string())).unwrap();
    }

    /// The check's own mount table, `self/mountinfo`: which cgroup file systems are mounted
    /// where (see [`V2_MOUNTS`]). Their trees go under `sys/`, which the check reads as
    /// `/sys` (`--sys-root`).
    pub fn set_mountinfo(&self, text: &str) {
        let own = self.path().join("self");
        if !own.exists() {
            fs::create_dir(&own).unwrap();
        }
        fs::write(own.join("mountinfo"), text).unwrap();
    }

    /// Makes `pid` the check's own process, as `/proc/self` does.
    pub fn set_self(&self, pid: i32) {
        std::os::unix::fs::symlink(pid.to_string(), self.path().join("self")).unwrap();
    }
}

/// The mount table of a pure cgroup v2 host (Debian 12, EL 9): one tree at `/sys/fs/cgroup`.
pub const V2_MOUNTS: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
";

/// The mount table of a hybrid host (Debian 10, Ubuntu 20.04, this project's build hosts): v1
/// controllers each in its tree, and a v2 tree at `unified` that has the pressure files.
pub const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

/// The mount table of a pure v1 host (EL 7, EL 8): no v2 tree, so no pressure files.
pub const V1_MOUNTS: &str = "\
25 18 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,seclabel,cpuacct,cpu
28 18 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,seclabel,memory
31 18 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,seclabel,xattr,name=systemd
";

/// `program` with the environment Nagios gives a check: nothing but a PATH.
pub fn command(program: impl AsRef<OsStr>) -> StdCommand {
    let mut cmd = StdCommand::new(program);
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    cmd
}

/// The built check.
pub fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("check_workers")
}

/// The check reading the fixture tree `root` and keeping state in `state`, as a plain command
/// (to spawn, kill or wrap it); [`check`] is the same for assert_cmd's assertions.
pub fn check_command(root: &Path, state: &Path) -> StdCommand {
    let mut cmd = command(binary());
    cmd.arg("--proc-root")
        .arg(root)
        .arg("--state-dir")
        .arg(state)
        .arg("--sys-root")
        .arg(root.join("sys"));
    cmd
}

/// The check reading the fixture tree `root` and keeping state in `state`.
pub fn check(root: &Path, state: &Path) -> Command {
    Command::from_std(check_command(root, state))
}

/// One finished run of [`check`] with `args`, on a [`ProcTree`] or a tree's path. `state` may
/// be a fresh [`state_dir`], gone with the run.
pub fn run(root: impl AsRef<Path>, state: impl AsRef<Path>, args: &[&str]) -> Output {
    check(root.as_ref(), state.as_ref())
        .args(args)
        .output()
        .unwrap()
}

/// One run of `-n nginx --interval 0` with `extra` options on the tree moved to `uptime`: the
/// step of the tests that run a service's fixture several times on one state dir.
pub fn run_at(tree: &ProcTree, state: &Path, uptime: f64, extra: &[&str]) -> Output {
    tree.set_uptime(uptime);
    check(tree.path(), state)
        .args(["-n", "nginx", "--interval", "0"])
        .args(extra)
        .output()
        .unwrap()
}

/// The check reading the real `/proc` and keeping state in `state`.
pub fn real_check(state: &Path) -> Command {
    let mut cmd = Command::from_std(command(binary()));
    cmd.arg("--state-dir").arg(state);
    cmd
}

/// [`real_check`] with `args`, run to its end.
pub fn real_run(state: &Path, args: &[&str]) -> std::process::Output {
    real_check(state).args(args).output().unwrap()
}

/// A fresh state directory.
pub fn state_dir() -> TempDir {
    tempfile::tempdir().unwrap()
}

/// The only file in the state dir (the tick file).
pub fn tick_file(state: &Path) -> PathBuf {
    let files: Vec<PathBuf> = fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ticks"))
        .collect();
    assert_eq!(files.len(), 1, "one tick file expected: {files:?}");
    files.into_iter().next().unwrap()
}

/// Stdout of a finished run, asserting an empty stderr (Nagios reads stdout only).
pub fn stdout_of(output: &Output) -> String {
    assert!(
        output.stderr.is_empty(),
        "stderr must be empty: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The first line, the status line with perfdata.
pub fn status_line(output: &Output) -> String {
    stdout_of(output)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Tests that load the CPU (busy children, 50 concurrent checks) or measure CPU take this, so
/// the measuring ones do not see the loading ones.
pub fn cpu_heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Says on the terminal (past libtest's capture) that a test did not run, and why.
pub fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// True when running as root, which some tests need.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The unprivileged user the tests switch to.
pub const NOBODY: u32 = 65534;

/// True when `setpriv` (to run as another user) works.
pub fn setpriv_available() -> bool {
    StdCommand::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A FIFO at `path`: an open of it for reading blocks until a writer comes.
pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}
