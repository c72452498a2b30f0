//! The workers' cgroup on this machine, as root (issue 21): cgroups made for the test under
//! the v1 memory and cpu trees and the v2 unified one (this project's build hosts are hybrid),
//! workers started inside them, and the figures the check gives compared with what the kernel
//! says. An OOM kill, a CPU quota, CPU pressure and the memory charge each have their test; a
//! pure v2 host is tried in a private mount namespace. The cgroups are removed when a test
//! ends, failed or not ([`Cgroups`]' drop). Without root or the controllers, each test says
//! why it is skipped.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::fixture::perfdata::of_line;
use crate::fixture::{
    binary, command, cpu_heavy, is_root, real_run, skip, state_dir, status_line, stdout_of,
};

/// A worker: takes `name` as its comm, then sleeps, spins, or allocates and touches MiB.
const WORKER: &str = r#"
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
mode = sys.argv[2]
held = b"x" * (int(mode[5:]) << 20) if mode.startswith("alloc") else b""
print("ready", flush=True)
while mode == "busy":
    pass
time.sleep(600)
"#;

/// A hierarchy of this host: v1 `memory`, v1 `cpu`, or `v2`.
#[derive(Clone, Copy)]
enum Tree {
    Memory,
    Cpu,
    V2,
}

/// Where `tree` is mounted, from our own mountinfo; None when it is not.
fn mount_point(tree: Tree) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let (fstype, options) = (right.next()?, right.nth(1)?);
        let ours = match tree {
            Tree::V2 => fstype == "cgroup2",
            Tree::Memory => fstype == "cgroup" && options.split(',').any(|o| o == "memory"),
            Tree::Cpu => fstype == "cgroup" && options.split(',').any(|o| o == "cpu"),
        };
        ours.then(|| PathBuf::from(point))
    })
}

/// Our own cgroup in `tree`, from `/proc/self/cgroup`.
fn own_cgroup(tree: Tree) -> Option<String> {
    let file = fs::read_to_string("/proc/self/cgroup").ok()?;
    file.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let ours = match tree {
            Tree::V2 => controllers.is_empty(),
            Tree::Memory => controllers.split(',').any(|c| c == "memory"),
            Tree::Cpu => controllers.split(',').any(|c| c == "cpu"),
        };
        ours.then(|| path.to_string())
    })
}

/// Cgroups made for one test and the workers started in them: on drop the workers are killed
/// and the cgroups removed, whatever the test did.
struct Cgroups {
    dirs: Vec<PathBuf>,
    workers: Vec<Child>,
    /// the workers' comm
    name: String,
}

impl Cgroups {
    /// A new cgroup in each of `trees`, below our own (so that the harness keeps accounting
    /// for what runs in it); None, after saying why, when not root or a tree is not mounted.
    fn new(test: &str, trees: &[Tree]) -> Option<Cgroups> {
        if !is_root() {
            skip(test, "needs root to make cgroups");
            return None;
        }
        let name = format!("cw{}{}", &test[..3], std::process::id() % 100_000);
        let mut made = Cgroups {
            dirs: Vec::new(),
            workers: Vec::new(),
            name,
        };
        for &tree in trees {
            let (Some(point), Some(own)) = (mount_point(tree), own_cgroup(tree)) else {
                skip(
                    test,
                    "needs the v1 memory and cpu controllers and the v2 tree (hybrid)",
                );
                return None;
            };
            let dir = point.join(own.trim_start_matches('/')).join(&made.name);
            if let Err(e) = fs::create_dir(&dir) {
                skip(test, &format!("cannot make {}: {e}", dir.display()));
                return None;
            }
            made.dirs.push(dir);
        }
        Some(made)
    }

    /// `file` of the cgroup made in the `i`th tree, written.
    fn set(&self, i: usize, file: &str, value: &str) {
        fs::write(self.dirs[i].join(file), value).unwrap();
    }

    fn read(&self, i: usize, file: &str) -> String {
        fs::read_to_string(self.dirs[i].join(file)).unwrap()
    }

    /// Starts a worker named `name` in every cgroup made (it moves itself in before it
    /// execs), pinned to CPU 0 when `pinned`, and waits until it is ready.
    fn start(&mut self, name: &str, mode: &str, pinned: bool) -> &mut Child {
        let procs: Vec<PathBuf> = self.dirs.iter().map(|d| d.join("cgroup.procs")).collect();
        let script = r#"for p in "$@"; do echo $$ > "$p" || exit 1; done
exec $CW_PIN python3 -c "$CW_WORKER" "$CW_NAME" "$CW_MODE""#;
        let mut child = StdCommand::new("sh")
            .args(["-c", script, "sh"])
            .args(&procs)
            .env("CW_PIN", if pinned { "taskset -c 0" } else { "" })
            .env("CW_WORKER", WORKER)
            .env("CW_NAME", name)
            .env("CW_MODE", mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        self.workers.push(child);
        self.workers.last_mut().unwrap()
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        for dir in self.dirs.iter().rev() {
            // a killed task leaves its cgroup a moment after it is reaped
            for _ in 0..100 {
                match fs::remove_dir(dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// One run of the check on the workers named `name`, with `extra`.
fn check(state: &Path, name: &str, extra: &[&str]) -> Output {
    real_run(state, &[&["-n", name, "--interval", "0"], extra].concat())
}

/// Long enough between two runs for the workers' ticks (see `metrics::min_interval`).
fn between_runs() {
    thread::sleep(Duration::from_millis(1500));
}

#[test]
fn an_oom_kill_is_counted_and_warns() {
    let test = "an_oom_kill_is_counted_and_warns";
    let Some(mut cgroups) = Cgroups::new(test, &[Tree::Memory]) else {
        return;
    };
    cgroups.set(0, "memory.limit_in_bytes", "67108864");
    let name = cgroups.name.clone();
    cgroups.start(&name, "sleep", false);
    cgroups.start(&name, "sleep", false);
    let state = state_dir();
    let first = check(state.path(), &name, &[]);
    let line = status_line(&first);
    assert!(
        line.contains(" cg_memory=") && line.contains(" cg_memory_pct="),
        "{}",
        stdout_of(&first)
    );
    // another process of the cgroup allocates past the 64 MiB limit: the OOM killer takes it
    let hog = cgroups.start("cwhog", "alloc200", false);
    let status = hog.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );
    between_runs();
    let second = check(state.path(), &name, &["-w", "oom_kills=0"]);
    let text = stdout_of(&second);
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(
        status_line(&second).starts_with("WORKERS WARNING - "),
        "{text}"
    );
    assert_eq!(
        of_line(&status_line(&second)).item("oom_kills"),
        Some("oom_kills=1;0;;0;"),
        "{text}"
    );
    assert!(cgroups
        .read(0, "memory.oom_control")
        .contains("\noom_kill 1\n"));
}

#[test]
fn a_cpu_quota_shows_as_throttling() {
    let test = "a_cpu_quota_shows_as_throttling";
    let _serial = cpu_heavy();
    let Some(mut cgroups) = Cgroups::new(test, &[Tree::Cpu]) else {
        return;
    };
    // 20 % of one CPU for the cgroup; two workers that would each take a whole one
    cgroups.set(0, "cpu.cfs_period_us", "100000");
    cgroups.set(0, "cpu.cfs_quota_us", "20000");
    let name = cgroups.name.clone();
    cgroups.start(&name, "busy", false);
    cgroups.start(&name, "busy", false);
    let state = state_dir();
    check(state.path(), &name, &[]);
    thread::sleep(Duration::from_secs(3));
    let second = check(state.path(), &name, &[]);
    let text = stdout_of(&second);
    let line = status_line(&second);
    let perfdata = of_line(&line);
    // both want the CPU in every period, and the quota runs out in every one
    assert!(perfdata.number("cpu_throttled") > 80.0, "{text}");
    assert!((perfdata.number("cpu") - 20.0).abs() < 8.0, "{text}");
}

#[test]
fn more_busy_workers_than_cpus_show_as_cpu_pressure() {
    let test = "more_busy_workers_than_cpus_show_as_cpu_pressure";
    let _serial = cpu_heavy();
    let Some(mut cgroups) = Cgroups::new(test, &[Tree::V2]) else {
        return;
    };
    if !cgroups.dirs[0].join("cpu.pressure").exists() {
        skip(test, "the kernel has no PSI (psi=0)");
        return;
    }
    let name = cgroups.name.clone();
    for _ in 0..3 {
        cgroups.start(&name, "busy", true);
    }
    let state = state_dir();
    check(state.path(), &name, &[]);
    thread::sleep(Duration::from_secs(3));
    let second = check(state.path(), &name, &["-w", "psi_cpu=10"]);
    let text = stdout_of(&second);
    let line = status_line(&second);
    let perfdata = of_line(&line);
    // three on one CPU: two of them wait all the time
    assert!(perfdata.number("psi_cpu") > 50.0, "{text}");
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(
        perfdata.value("psi_memory").is_some() && perfdata.value("psi_io").is_some(),
        "{text}"
    );
}

#[test]
fn cg_memory_is_the_cgroups_own_charge() {
    let test = "cg_memory_is_the_cgroups_own_charge";
    let Some(mut cgroups) = Cgroups::new(test, &[Tree::Memory]) else {
        return;
    };
    let name = cgroups.name.clone();
    cgroups.start(&name, "alloc48", false);
    let state = state_dir();
    let out = check(state.path(), &name, &["-vv"]);
    let charged: f64 = cgroups
        .read(0, "memory.usage_in_bytes")
        .trim()
        .parse()
        .unwrap();
    let text = stdout_of(&out);
    let reported = of_line(&status_line(&out)).number("cg_memory");
    assert!(reported >= (48 << 20) as f64, "{text}");
    assert!(
        (reported - charged).abs() < (8 << 20) as f64,
        "{charged}: {text}"
    );
    // the workers' own cgroup: rss_pct takes its charge
    assert!(
        text.contains("\nrss_pct: the memory charged to the workers' cgroup"),
        "{text}"
    );
}

/// A pure v2 host, as far as this one can be: a private mount namespace where the v1 trees are
/// gone and the v2 tree is mounted at `/sys/fs/cgroup`. The memory controller is still v1's,
/// so the v2 tree has no memory files: said from -v, never a 0.
#[test]
fn pure_v2_mount_in_a_private_namespace() {
    let test = "pure_v2_mount_in_a_private_namespace";
    let _serial = cpu_heavy();
    let Some(mut cgroups) = Cgroups::new(test, &[Tree::V2]) else {
        return;
    };
    let name = cgroups.name.clone();
    for _ in 0..3 {
        cgroups.start(&name, "busy", true);
    }
    let own = own_cgroup(Tree::V2).unwrap();
    let state = state_dir();
    let script = r#"umount -R -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 99
"$0" -n "$1" --interval 0 --state-dir "$2" >/dev/null; sleep 3
exec "$0" -n "$1" --interval 0 --state-dir "$2" -v"#;
    let out = command("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .arg(binary())
        .arg(&name)
        .arg(state.path())
        .output()
        .unwrap();
    if out.status.code() == Some(99) {
        skip(
            test,
            "cannot mount cgroup2 in a private mount namespace here; the fixtures cover v2",
        );
        return;
    }
    let text = stdout_of(&out);
    let line = status_line(&out);
    let perfdata = of_line(&line);
    assert!(perfdata.number("psi_cpu") > 50.0, "{text}");
    assert!(perfdata.value("cg_memory").is_none(), "{text}");
    let dir = Path::new("/sys/fs/cgroup")
        .join(own.trim_start_matches('/'))
        .join(&name);
    assert!(
        text.contains(&format!(
            "\ncg_memory, cg_memory_pct: {}/memory.current does not exist",
            dir.display()
        )),
        "{text}"
    );
}
