//! The check on the real /proc with processes this test spawns under unique names: exact
//! counts, and CPU figures within a tolerance (the machine is shared, so bands, not numbers).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand};
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use tempfile::TempDir;

use crate::fixture::{copy_executable, cpu_heavy, state_dir, status_line, stdout_of, unique};

/// Children under a name no other process has; killed and reaped when dropped.
struct Spawned {
    dir: TempDir,
    children: Vec<Child>,
}

impl Spawned {
    fn new() -> Spawned {
        Spawned {
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        }
    }

    /// A copy of `program` named `name`: the kernel takes the comm from the file name.
    fn program(&self, program: &str, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if !path.exists() {
            copy_executable(Path::new(program), &path);
        }
        path
    }

    fn sleepers(&mut self, name: &str, count: usize) {
        let exe = self.program("/bin/sleep", name);
        for _ in 0..count {
            self.children
                .push(StdCommand::new(&exe).arg("600").spawn().unwrap());
        }
    }

    fn burners(&mut self, name: &str, count: usize) {
        let exe = self.program("/bin/sh", name);
        for _ in 0..count {
            let child = StdCommand::new(&exe)
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap();
            self.children.push(child);
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn real_check(state: &Path) -> Command {
    let mut cmd = Command::cargo_bin("check_workers").unwrap();
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("--state-dir")
        .arg(state);
    cmd
}

/// `cpu=12.34%;...` from the perfdata of a status line.
fn perf_value(line: &str, label: &str) -> f64 {
    let perf = line.split_once(" | ").expect("perfdata").1;
    let item = perf
        .split(' ')
        .find(|item| item.starts_with(&format!("{label}=")))
        .unwrap_or_else(|| panic!("no {label} in {line}"));
    let value = item[label.len() + 1..].split(';').next().unwrap();
    value
        .trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%')
        .parse()
        .unwrap()
}

#[test]
fn counts_spawned_sleepers_exactly() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cws");
    let other = unique("cwo");
    spawned.sleepers(&name, 3);
    spawned.sleepers(&other, 2);
    let state = state_dir();
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "0.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = status_line(&out);
    assert!(
        line.starts_with(&format!("WORKERS OK - {name}: 3 workers, cpu ")),
        "{line}"
    );
    assert_eq!(perf_value(&line, "workers"), 3.0);
    assert!(
        perf_value(&line, "cpu") < 5.0,
        "sleepers burn nothing: {line}"
    );
    // sleep's RSS is small but real, read from VmRSS
    let rss = perf_value(&line, "rss");
    assert!(
        (100.0 * 1024.0..50.0 * 1024.0 * 1024.0).contains(&rss),
        "{line}"
    );
}

#[test]
fn cpu_of_busy_workers_over_the_in_run_interval() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwb");
    spawned.burners(&name, 2);
    thread::sleep(Duration::from_millis(200));
    let state = state_dir();
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "1", "-v"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    let line = status_line(&out);
    assert_eq!(perf_value(&line, "workers"), 2.0, "{text}");
    // two busy loops on a two-core machine: 100 % = one core, so up to 200
    let cpu = perf_value(&line, "cpu");
    assert!(
        (90.0..=205.0).contains(&cpu),
        "cpu {cpu} out of band: {text}"
    );
    assert!(
        perf_value(&line, "cpu_user") > perf_value(&line, "cpu_system"),
        "{line}"
    );
    assert!(text.contains("cpu measured over 1."), "{text}");
}

#[test]
fn second_run_measures_cpu_since_the_first() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwr");
    spawned.burners(&name, 1);
    let state = state_dir();
    let run = || {
        real_check(state.path())
            .args(["-n", &name, "--interval", "0", "-w", "50", "-c", "150"])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", stdout_of(&first));
    thread::sleep(Duration::from_secs(2));
    let second = run();
    let text = stdout_of(&second);
    // one busy loop: about one core, so WARNING (> 50) but not CRITICAL (> 150)
    assert_eq!(second.status.code(), Some(1), "{text}");
    let cpu = perf_value(&status_line(&second), "cpu");
    assert!(
        (40.0..=102.0).contains(&cpu),
        "cpu {cpu} out of band: {text}"
    );
    assert!(!text.contains("no baseline"), "{text}");
}

#[test]
fn gone_service_is_critical() {
    let _serial = cpu_heavy();
    let state = state_dir();
    let name = unique("cwnone");
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(status_line(&out).starts_with(&format!("WORKERS CRITICAL - {name}: 0 workers < 1")));
}

/// A prefork master recycling workers much faster than the check interval: each worker lives
/// about 0.1 s of busy loop, so almost all CPU is burnt by workers no sample ever sees. The
/// figure must still match the true CPU, recovered from the master's reaped-children time.
#[test]
fn cpu_of_workers_recycled_within_the_interval() {
    let _serial = cpu_heavy();
    let spawned = Spawned::new();
    let name = unique("cwc");
    let exe = spawned.program("/bin/sh", &name);
    let stop = spawned.dir.path().join("stop");
    let script = r#"while [ ! -e "$2" ]; do "$1" -c 'i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done'; done"#;
    let started = std::time::Instant::now();
    let master = StdCommand::new(&exe)
        .args(["-c", script, "master"])
        .arg(&exe)
        .arg(&stop)
        .spawn()
        .unwrap();
    // reaped by wait4 below, or killed by the guard if the test fails before that
    let mut guard = Churn {
        pid: master.id() as i32,
        reaped: false,
    };
    std::mem::forget(master);
    let state = state_dir();
    let run = || {
        real_check(state.path())
            .args(["-n", &name, "--interval", "0", "-vv"])
            .output()
            .unwrap()
    };
    thread::sleep(Duration::from_millis(300));
    let first = run();
    assert!(
        first.status.code().is_some_and(|c| c <= 2),
        "{}",
        stdout_of(&first)
    );
    thread::sleep(Duration::from_secs(3));
    let second = run();
    fs::write(&stop, "").unwrap();
    let true_cpu = reap_with_cpu_percent(guard.pid, started);
    guard.reaped = true;

    let text = stdout_of(&second);
    let line = status_line(&second);
    let measured = perf_value(&line, "cpu");
    assert!(
        (measured - true_cpu).abs() <= 5.0,
        "measured {measured} vs true {true_cpu}: {text}"
    );
    // most of it came from workers that had already exited
    let recovered: f64 = text
        .split("exited within the interval; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recovery note: {text}"));
    let measured_ticks = measured * 3.0; // percent of 100 ticks/s over about 3 s
    assert!(
        recovered > measured_ticks * 0.5,
        "recovered {recovered} ticks of ~{measured_ticks}: {text}"
    );
}

/// Kills and reaps the churning master unless the test reaped it.
struct Churn {
    pid: i32,
    reaped: bool,
}

impl Drop for Churn {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: plain syscalls on our own unreaped child, so the pid is still ours
            unsafe {
                nix::libc::kill(self.pid, nix::libc::SIGKILL);
                nix::libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Waits for `pid` and returns the CPU it and its reaped children used, as percent of one
/// core over its lifetime since `started`: the truth the check's figure is compared with.
fn reap_with_cpu_percent(pid: i32, started: std::time::Instant) -> f64 {
    let mut status = 0;
    // SAFETY: rusage is plain data, zeroed is a valid value; wait4 fills it for our own child.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    let wall = started.elapsed().as_secs_f64();
    let seconds = |t: nix::libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // the master's own usage is included in wait4's figure, as in the check's
    (seconds(usage.ru_utime) + seconds(usage.ru_stime)) / wall * 100.0
}

/// A master shell with three sleeping children, in its own process group so that dropping it
/// kills the children too.
struct Family {
    master: Child,
    _dir: TempDir,
    child_name: String,
}

impl Family {
    fn start(prefix: &str) -> Family {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let master_exe = dir.path().join(unique(&format!("{prefix}m")));
        copy_executable(std::path::Path::new("/bin/sh"), &master_exe);
        let child_name = unique(&format!("{prefix}k"));
        let child_exe = dir.path().join(&child_name);
        copy_executable(std::path::Path::new("/bin/sleep"), &child_exe);
        let master = StdCommand::new(&master_exe)
            .args([
                "-c",
                r#"for i in 1 2 3; do "$1" 600 & done; wait"#,
                "master",
            ])
            .arg(&child_exe)
            .process_group(0)
            .spawn()
            .unwrap();
        // wait until the three children exist
        for _ in 0..100 {
            let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", master.id()))
                .unwrap_or_default();
            if children.split_whitespace().count() == 3 {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Family {
            master,
            _dir: dir,
            child_name,
        }
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test created
        unsafe {
            nix::libc::kill(-(self.master.id() as i32), nix::libc::SIGKILL);
        }
        let _ = self.master.wait();
    }
}

#[test]
fn ppid_and_pidfile_find_the_children_of_a_real_master() {
    let family = Family::start("cwf");
    let master = family.master.id().to_string();
    let state = state_dir();
    let out = real_check(state.path())
        .args(["--ppid", &master, "--interval", "0"])
        .output()
        .unwrap();
    let line = status_line(&out);
    assert!(
        line.starts_with(&format!(
            "WORKERS OK - children of {master}: 3 workers (master {master}), "
        )),
        "{line}"
    );
    let dir = state_dir();
    let pidfile = dir.path().join("master.pid");
    fs::write(&pidfile, format!("{master}\n")).unwrap();
    let out = real_check(state.path())
        .args(["-n", &family.child_name, "--pidfile"])
        .arg(&pidfile)
        .args(["--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = status_line(&out);
    assert!(
        line.starts_with(&format!(
            "WORKERS OK - {}: 3 workers (master {master}), ",
            family.child_name
        )),
        "{line}"
    );
    // the master gone: the pidfile is stale, and that is CRITICAL
    drop(family);
    let out = real_check(state.path())
        .arg("--pidfile")
        .arg(&pidfile)
        .args(["--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(status_line(&out).contains(&format!(
        "(pid {master} from {} is not running)",
        pidfile.display()
    )));
}

// Regression: the kernel cuts a long name's comm at 15 bytes, here inside an `é`; that comm is
// not UTF-8, the sleepers were "unreadable", and `-n` found 0 of them.
#[test]
fn long_non_ascii_name_cut_inside_a_character_is_found() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    // unique to this run, an even number of ASCII bytes, then é's: byte 15 is inside one
    let mut name = format!("cw{}-", std::process::id());
    if name.len() % 2 == 1 {
        name.push('a');
    }
    while name.len() < 20 {
        name.push('é');
    }
    assert!(!name.is_char_boundary(15), "{name}");
    spawned.sleepers(&name, 2);
    let state = state_dir();
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "0"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        status_line(&out).starts_with(&format!("WORKERS OK - {name}: 2 workers, cpu n/a, ")),
        "{text}"
    );
    assert_eq!(perf_value(&status_line(&out), "workers"), 2.0);
}
