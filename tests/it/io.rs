//! Disk I/O of the workers (issue 12): `io_read` and `io_write` on fixture trees with exact
//! figures; on real processes writing to a disk, against what their own `/proc/PID/io` says;
//! run unprivileged, left out with a note; and the contrib lines that run the check as root
//! through sudo so that it may read other users' `/proc/PID/io`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::spawn::{install_binary, public_dir};
use crate::fixture::{
    check, cpu_heavy, is_root, skip, state_dir, status_line, stdout_of, tick_file, FakeIo,
    FakeProc, ProcTree,
};
use crate::fixture::{setpriv_available, NOBODY};

const WWW: u32 = 33;

/// Where the contrib files put the binary.
const INSTALLED: &str = "/usr/lib/nagios/plugins/check_workers";

// ---------------------------------------------------------------------------------------------
// fixture trees

/// nginx master 812 (root) and workers 813-816 (www-data) at uptime 5000 s. The master's
/// children had done 600 000 / 1 500 000 bytes of its 1 000 000 / 2 000 000.
fn io_t0(tree: &ProcTree) {
    tree.put(&FakeProc::new(1, 0, "systemd", 0))
        .put(
            &FakeProc::new(812, 1, "nginx", 0)
                .io_with_reaped(1_000_000, 2_000_000, 600_000, 1_500_000),
        )
        .put(&worker(813).io(60_000, 600_000))
        .put(&worker(814).io(0, 0))
        .put(&worker(815).io(6_000, 0))
        .put(&worker(816).io(0, 960_000));
}

fn worker(pid: i32) -> FakeProc {
    FakeProc::new(pid, 812, "nginx", WWW).started(1100)
}

/// The check with the fixture's options: one per interval, no in-run interval.
fn run(tree: &ProcTree, state: &Path, extra: &[&str]) -> Output {
    check(tree.path(), state)
        .args(["-n", "nginx", "--interval", "0"])
        .args(extra)
        .output()
        .unwrap()
}

/// `label=value...;` of the status line's perfdata, or None when the metric is left out.
fn perf<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    line.split_once(" | ")
        .expect("perfdata")
        .1
        .split(' ')
        .find(|item| item.starts_with(&format!("{label}=")))
}

/// The -v line of worker `pid`, after its pid, command name and user name (which depends on
/// the host).
fn worker_line(text: &str, pid: i32) -> &str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("pid {pid} (nginx) ")))
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("no line of pid {pid}: {text}"))
        .1
}

/// The first run has no baseline, and no I/O figure.
fn first_run(tree: &ProcTree, state: &Path) {
    let out = run(tree, state, &[]);
    let line = status_line(&out);
    assert_eq!(out.status.code(), Some(0), "{line}");
    assert_eq!(
        (perf(&line, "io_read"), perf(&line, "io_write")),
        (None, None)
    );
}

/// 60 s on, each worker's counters grew: 813 by 6 000 / 1 200 000 bytes, 814 by 0 / 60 000.
#[test]
fn io_is_bytes_per_second_over_the_interval() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    io_t0(&tree);
    tree.remove(815);
    tree.remove(816);
    first_run(&tree, state.path());
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert!(
        ticks.contains(
            "\nworker pid=813 start=1100 utime=0 stime=0 cutime=0 cstime=0 read_bytes=60000 \
         write_bytes=600000 nvcsw=1\n"
        ),
        "{ticks}"
    );
    // a master's line keeps what its reaped children did
    assert!(
        ticks.contains(
            "\nmaster pid=812 start=1000 utime=0 stime=0 cutime=0 cstime=0 read_bytes=600000 \
             write_bytes=1500000 nvcsw=1\n"
        ),
        "{ticks}"
    );

    tree.set_uptime(5060.0);
    tree.put(&worker(813).io(66_000, 1_800_000))
        .put(&worker(814).io(0, 60_000));
    let out = run(&tree, state.path(), &["-v"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text.lines().next().unwrap();
    // (6000 + 0) / 60 s and (1 200 000 + 60 000) / 60 s, max none
    assert_eq!(perf(line, "io_read"), Some("io_read=100B;;;0;"), "{line}");
    assert_eq!(
        perf(line, "io_write"),
        Some("io_write=21000B;;;0;"),
        "{line}"
    );
    // after fd_pct_max, in catalog order
    assert!(
        line.contains(" fd_pct_max=0.78%;;;0;100 io_read=100B;;;0; io_write=21000B;;;0; age_min="),
        "{line}"
    );
    assert_eq!(
        worker_line(&text, 813),
        "S cpu 0.0% rss 4.0 MiB vms 100.0 MiB age 1h24m io r 100 B/s w 19.5 KiB/s",
        "{text}"
    );
    assert_eq!(
        worker_line(&text, 814),
        "S cpu 0.0% rss 4.0 MiB vms 100.0 MiB age 1h24m io r 0 B/s w 1000 B/s",
        "{text}"
    );
}

/// A worker born within the interval counts all its bytes; a pid reused by a new worker is a
/// new process, whose predecessor's bytes are not subtracted from it.
#[test]
fn a_new_worker_counts_from_zero_and_a_reused_pid_is_a_new_worker() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    io_t0(&tree);
    tree.remove(815);
    first_run(&tree, state.path());

    tree.set_uptime(5060.0);
    // 816 (960 000 bytes written) exited and a new 816 started at 5030 s; 817 at 5020 s. The
    // master reaped the old 816: lifetime 966 000, 6 000 of them in the interval
    tree.put(&FakeProc::new(812, 1, "nginx", 0).io_with_reaped(
        1_000_000,
        2_000_000 + 966_000,
        600_000,
        1_500_000 + 966_000,
    ))
    .put(&worker(816).started(503_000).io(0, 6_000))
    .put(&worker(817).started(502_000).io(1_200, 240_000));
    let out = run(&tree, state.path(), &["-v"]);
    let text = stdout_of(&out);
    let line = text.lines().next().unwrap();
    // 813, 814: none; 816: 6000; 817: 1200 / 240 000; old 816: 6000
    assert_eq!(perf(line, "io_read"), Some("io_read=20B;;;0;"), "{line}");
    assert_eq!(
        perf(line, "io_write"),
        Some("io_write=4200B;;;0;"),
        "{line}"
    );
    assert!(
        text.contains("\ncpu, io_read, io_write: 2 workers started within the 60 s interval and count fully\n"),
        "{text}"
    );
    assert_eq!(
        worker_line(&text, 816),
        "S cpu 0.0% rss 4.0 MiB vms 100.0 MiB age 30s io r 0 B/s w 100 B/s",
        "{text}"
    );
}

/// Workers gone since the previous sample are recovered from the master's reaped-children
/// I/O, less what they had then; the master's own I/O is not the workers'.
#[test]
fn exited_workers_are_recovered_through_the_masters_reaped_io() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    io_t0(&tree);
    first_run(&tree, state.path());

    tree.set_uptime(5060.0);
    tree.remove(815);
    tree.remove(816);
    // reaped since: 815 (lifetime 12 000 / 30 000, of which 6 000 / 0 counted before), 816
    // (0 / 966 000, 960 000 counted before) and a worker born and gone in between (0 / 120 000).
    // The master itself wrote 1 000 000 more (its log, say)
    let reaped = (600_000 + 12_000, 1_500_000 + 30_000 + 966_000 + 120_000);
    tree.put(&FakeProc::new(812, 1, "nginx", 0).io_with_reaped(
        400_000 + reaped.0,
        1_500_000 + reaped.1,
        reaped.0,
        reaped.1,
    ))
    .put(&worker(813).io(60_000, 600_000 + 60_000));
    let out = run(&tree, state.path(), &["-vv"]);
    let text = stdout_of(&out);
    let line = text.lines().next().unwrap();
    // recovered 6 000 / 156 000, plus 813's 0 / 60 000
    assert_eq!(perf(line, "io_read"), Some("io_read=100B;;;0;"), "{line}");
    assert_eq!(
        perf(line, "io_write"),
        Some("io_write=3600B;;;0;"),
        "{line}"
    );
    assert!(
        text.contains("\nio_read, io_write: 6000 bytes read and 156000 written by workers that exited within the interval, recovered from the master's reaped-children I/O\n"),
        "{text}"
    );
}

/// Never a 0, never a sum over the readable workers: one worker whose io may not be read
/// leaves both metrics out, with a note; the others still show theirs with -v.
#[test]
fn a_worker_with_unreadable_io_leaves_both_metrics_out_with_a_note() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    io_t0(&tree);
    first_run(&tree, state.path());
    tree.set_uptime(5060.0);
    let mut denied = worker(815);
    denied.io = Some(FakeIo::Denied);
    tree.put(&denied);
    let out = run(&tree, state.path(), &["-v", "-w", "io_write=1"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text.lines().next().unwrap();
    assert_eq!(
        (perf(line, "io_read"), perf(line, "io_write")),
        (None, None),
        "{line}"
    );
    assert!(
        text.contains("\nio_read, io_write: /proc/PID/io of 1 of 4 workers not readable (needs root or the workers' user); left out\n"),
        "{text}"
    );
    assert!(text.contains("io_write"), "threshold not evaluated: {text}");
    assert!(
        text.contains("io r 0 B/s w 0 B/s\n"),
        "readable workers keep theirs: {text}"
    );
    assert!(!worker_line(&text, 815).contains(" io "), "{text}");
    // its line in the tick file says unknown
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert!(
        ticks.contains("\nworker pid=815 start=1100 utime=0 stime=0 cutime=0 cstime=0 nvcsw=1\n"),
        "{ticks}"
    );
}

/// Ranges take sizes, per second: `-w io_write=20KiB`.
#[test]
fn io_ranges_take_sizes_per_second() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    io_t0(&tree);
    first_run(&tree, state.path());
    tree.set_uptime(5060.0);
    tree.put(&worker(813).io(60_000, 600_000 + 1_228_800));
    let out = run(
        &tree,
        state.path(),
        &["-w", "io_write=10KiB", "-c", "io_write=40KiB"],
    );
    let line = status_line(&out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(line.contains(", io_write 20.0 KiB > 10.0 KiB |"), "{line}");
    assert_eq!(
        perf(&line, "io_write"),
        Some("io_write=20480B;10240;40960;0;"),
        "{line}"
    );
}

/// A tick file written before the I/O columns: CPU keeps its baseline, I/O is left out for
/// one interval with a note, and the next interval has it.
#[test]
fn a_tick_file_from_before_the_io_columns_leaves_io_out_once() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    io_t0(&tree);
    first_run(&tree, state.path());
    let path = tick_file(state.path());
    let old: String = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(
            |l| match l.strip_prefix("worker ").or(l.strip_prefix("master ")) {
                Some(_) => format!("{}\n", l.split(' ').take(7).collect::<Vec<_>>().join(" ")),
                None => format!("{l}\n"),
            },
        )
        .collect();
    assert!(
        old.contains("\nworker pid=813 start=1100 utime=0 stime=0 cutime=0 cstime=0\n"),
        "{old}"
    );
    fs::write(&path, old).unwrap();
    tree.set_uptime(5060.0);
    let out = run(&tree, state.path(), &[]);
    let text = stdout_of(&out);
    let line = text.lines().next().unwrap();
    assert!(perf(line, "cpu").is_some(), "{line}");
    assert_eq!(perf(line, "io_write"), None, "{line}");
    assert!(
        text.contains("\nio_read, io_write: 4 workers have no I/O counters in the previous sample (an older tick file, or not readable then); left out\n"),
        "{text}"
    );
    tree.set_uptime(5120.0);
    let line = status_line(&run(&tree, state.path(), &[]));
    assert_eq!(perf(&line, "io_write"), Some("io_write=0B;;;0;"), "{line}");
}

/// A tree with no io files (a kernel without I/O accounting, and every fixture from before)
/// prints what it always did: no io metric, no io note, no io on the -v lines.
#[test]
fn without_io_files_nothing_about_io_is_printed() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    tree.put(&FakeProc::new(812, 1, "nginx", 0))
        .put(&worker(813).ticks(100, 0));
    first_run(&tree, state.path());
    tree.set_uptime(5060.0);
    tree.put(&worker(813).ticks(700, 0));
    let out = run(&tree, state.path(), &["-vv"]);
    let text = stdout_of(&out);
    assert!(!text.contains("io_") && !text.contains(" io "), "{text}");
    assert!(
        text.starts_with("WORKERS OK - nginx: 1 worker (master 812), cpu 10.0%,"),
        "{text}"
    );
    assert_eq!(
        worker_line(&text, 813),
        "S cpu 10.0% rss 4.0 MiB vms 100.0 MiB age 1h24m",
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// the contrib lines that run the check as root

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

/// The commands the sudoers drop-in allows, unescaped (`\=` is `=` in a sudoers argument).
fn sudoers_commands() -> Vec<String> {
    let text = fs::read_to_string(contrib("sudoers/check_workers")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (who, command) = l.split_once(" NOPASSWD: ").expect("a NOPASSWD rule");
            assert_eq!(who, "nagios ALL=(root)", "{l}");
            command
                .replace("\\=", "=")
                .replace("\\:", ":")
                .replace("\\,", ",")
        })
        .collect()
}

/// The drop-in is valid sudoers syntax, as `visudo -cf` sees it.
#[test]
fn the_sudoers_drop_in_parses() {
    let visudo = ["/usr/sbin/visudo", "/sbin/visudo"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(visudo) = visudo else {
        skip(
            "the_sudoers_drop_in_parses",
            "needs visudo (package sudo; .ci/setup-daemons installs it)",
        );
        return;
    };
    let out = StdCommand::new(visudo)
        .arg("-cf")
        .arg(contrib("sudoers/check_workers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The NRPE example runs `sudo -n` on the installed binary with exactly a command line the
/// sudoers rules allow, and that command line runs: a state, never a usage error. So does the
/// one the Icinga 2 example builds; `icinga2 daemon -C` on the CheckCommand is the daemon
/// tests' part.
#[test]
fn the_contrib_sudo_lines_are_what_the_sudoers_rules_allow_and_they_run() {
    let allowed = sudoers_commands();
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    let nrpe = fs::read_to_string(contrib("nrpe/check_workers.cfg")).unwrap();
    let line = nrpe
        .lines()
        .find_map(|l| l.strip_prefix("#command[check_workers_nginx_io]="))
        .expect("a commented check_workers_nginx_io command");
    let command = line.strip_prefix("/usr/bin/sudo -n ").expect("sudo -n");
    assert!(
        allowed.iter().any(|a| a == command),
        "{command} not in {allowed:?}"
    );

    let icinga = fs::read_to_string(contrib("icinga2/check_workers.conf")).unwrap();
    assert!(
        icinga.contains("object CheckCommand \"workers-sudo\" {\n\timport \"workers\"\n\tcommand = [ \"/usr/bin/sudo\", \"-n\", PluginDir + \"/check_workers\" ]\n}"),
        "the workers-sudo CheckCommand"
    );
    let built = icinga
        .lines()
        .find_map(|l| {
            l.trim_start_matches([' ', '*'])
                .strip_prefix("/usr/bin/sudo -n ")
        })
        .expect("the command line Icinga 2 builds, in the comment");
    assert!(
        allowed.iter().any(|a| a == built),
        "{built} not in {allowed:?}"
    );

    let tree = ProcTree::new(5000.0);
    io_t0(&tree);
    for command in &allowed {
        let args = command
            .strip_prefix(&format!("{INSTALLED} "))
            .expect("the installed binary");
        let out = check(tree.path(), state_dir().path())
            .args(args.split(' '))
            .output()
            .unwrap();
        let line = status_line(&out);
        assert!(out.status.code().is_some_and(|c| c < 3), "{args}: {line}");
        assert!(
            line.starts_with("WORKERS OK - nginx: 4 workers (master 812)"),
            "{line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// real processes

/// A directory on the disk, where `write_bytes` counts (tmpfs counts nothing): the first of
/// a few candidates where this thread's own counter grows by a 64 KiB write and fsync.
fn disk_dir() -> Option<PathBuf> {
    let own = || {
        let text = fs::read_to_string("/proc/thread-self/io").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("write_bytes: "))?
            .parse::<u64>()
            .ok()
    };
    let candidates = [
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")),
        Some(PathBuf::from("/var/tmp")),
        Some(std::env::temp_dir()),
    ];
    candidates.into_iter().flatten().find(|dir| {
        let Ok(probe) = tempfile::NamedTempFile::new_in(dir) else {
            return false;
        };
        let before = own();
        let mut file = probe.as_file();
        let written = file
            .write_all(&[b'x'; 65_536])
            .and_then(|()| file.sync_all());
        written.is_ok() && before.zip(own()).is_some_and(|(b, a)| a >= b + 65_536)
    })
}

/// A python master in its own process group whose `children` workers each write 64 KiB with
/// fsync every 20 ms to a file in `dir`; with `lifetime` > 0 each exits after that many seconds
/// (first printing its own final counters) and the master forks a new one.
const MASTER: &str = r#"
import os, sys, time
target, children, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def counters():
    with open('/proc/self/io') as f:
        return {k: int(v) for k, v in (l.split(':') for l in f)}
def work():
    path = os.path.join(target, 'w%d' % os.getpid())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    buf = b'x' * 65536
    end = time.monotonic() + lifetime if lifetime > 0 else float('inf')
    while time.monotonic() < end:
        os.pwrite(fd, buf, 0)
        os.fsync(fd)
        time.sleep(0.02)
    os.close(fd)
    os.unlink(path)
    io = counters()
    os.write(1, b'final %d %d %d\n' % (os.getpid(), io['read_bytes'], io['write_bytes']))
def spawn():
    if os.fork() == 0:
        try:
            work()
        finally:
            os._exit(0)
for _ in range(children):
    spawn()
while True:
    os.wait()
    spawn()
"#;

/// A process group started by this test: stopped and continued as a whole, killed and reaped
/// when dropped.
struct Group {
    leader: Child,
    /// `pid read write` lines the exiting workers printed
    finals: Arc<Mutex<BTreeMap<i32, (u64, u64)>>>,
}

impl Group {
    fn start(mut cmd: StdCommand) -> Group {
        let mut leader = cmd.process_group(0).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = leader.stdout.take().unwrap();
        let finals = Arc::new(Mutex::new(BTreeMap::new()));
        let sink = Arc::clone(&finals);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let f: Vec<&str> = line.split(' ').collect();
                if let ["final", pid, read, write] = f[..] {
                    let parsed = (pid.parse(), read.parse(), write.parse());
                    if let (Ok(pid), Ok(read), Ok(write)) = parsed {
                        sink.lock().unwrap().insert(pid, (read, write));
                    }
                }
            }
        });
        Group { leader, finals }
    }

    fn pid(&self) -> i32 {
        self.leader.id() as i32
    }

    fn signal(&self, signal: &str) {
        let status = StdCommand::new("kill")
            .args([signal, "--", &format!("-{}", self.pid())])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// Stops the whole group and returns once the master and its children are stopped (a
    /// zombie child stays a zombie), so their counters hold still.
    fn stop(&self) {
        self.signal("-STOP");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let mut pids = children_of(self.pid());
            pids.push(self.pid());
            if pids
                .iter()
                .all(|&p| matches!(state_of(p), Some('T' | 'Z') | None))
            {
                // the pipe's last lines reach the reader thread
                thread::sleep(Duration::from_millis(100));
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("the group did not stop");
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = StdCommand::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid())])
            .status();
        let _ = self.leader.wait();
    }
}

fn children_of(pid: i32) -> Vec<i32> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

fn state_of(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// `read_bytes`, `write_bytes` of a process, where readable.
fn io_of(pid: i32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))?
            .parse::<u64>()
            .ok()
    };
    Some((field("read_bytes")?, field("write_bytes")?))
}

/// What the workers' own counters say at one stop of the group: the live (and zombie)
/// children's counters, and the pids whose final counters were printed so far.
struct Truth {
    live: BTreeMap<i32, (u64, u64)>,
    finals: BTreeMap<i32, (u64, u64)>,
}

impl Truth {
    fn take(group: &Group) -> Truth {
        let live = children_of(group.pid())
            .into_iter()
            .filter_map(|c| Some((c, io_of(c)?)))
            .collect();
        Truth {
            live,
            finals: group.finals.lock().unwrap().clone(),
        }
    }

    /// Bytes all workers read and wrote between `self` and `later`, from their own counters:
    /// what the live ones have now, plus the final counters of those that exited in between,
    /// less what the workers of `self` had then.
    fn growth_until(&self, later: &Truth) -> (u64, u64) {
        let mut sum = (0u64, 0u64);
        let mut add = |(r, w): (u64, u64)| {
            sum.0 += r;
            sum.1 += w;
        };
        later.live.values().copied().for_each(&mut add);
        for (pid, last) in &later.finals {
            let exited_since = !later.live.contains_key(pid)
                && (!self.finals.contains_key(pid) || self.live.contains_key(pid));
            if exited_since {
                add(*last);
            }
        }
        let before = self
            .live
            .values()
            .fold((0, 0), |s, (r, w)| (s.0 + r, s.1 + w));
        (sum.0 - before.0, sum.1 - before.1)
    }
}

/// The uptime a tick file was sampled at.
fn sampled_at(state: &Path) -> f64 {
    let text = fs::read_to_string(tick_file(state)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("uptime "))
        .unwrap()
        .parse()
        .unwrap()
}

fn perf_number(line: &str, label: &str) -> f64 {
    let item = perf(line, label).unwrap_or_else(|| panic!("no {label}: {line}"));
    let value = item.split_once('=').unwrap().1.split(';').next().unwrap();
    value.trim_end_matches(['B', '%', 's']).parse().unwrap()
}

/// Two checks of a python master's workers, 2.5 s apart, each taken with the whole group
/// stopped, against the workers' own counters at those stops. Returns the second run's text
/// and the expected (read, write) rates, or None when it cannot run here.
fn measure_real(test: &str, lifetime: &str) -> Option<(String, f64, f64)> {
    let Some(dir) = disk_dir() else {
        skip(
            test,
            "no directory here where write_bytes counts (all tmpfs?)",
        );
        return None;
    };
    if StdCommand::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_err()
    {
        skip(test, "needs python3");
        return None;
    }
    let _serial = cpu_heavy();
    let work = tempfile::tempdir_in(&dir).unwrap();
    let mut cmd = StdCommand::new("python3");
    cmd.arg("-c")
        .arg(MASTER)
        .arg(work.path())
        .args(["2", lifetime]);
    let group = Group::start(cmd);
    let started = Instant::now();
    while children_of(group.pid()).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "no workers");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(500));
    let state = state_dir();
    let ppid = group.pid().to_string();
    let run = |verbosity: &str| {
        crate::fixture::check(Path::new("/proc"), state.path())
            .args(["--ppid", &ppid, "--interval", "0", verbosity])
            .output()
            .unwrap()
    };
    group.stop();
    let first = Truth::take(&group);
    let out = run("-v");
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    let from = sampled_at(state.path());
    group.signal("-CONT");
    thread::sleep(Duration::from_millis(2500));
    group.stop();
    let second = Truth::take(&group);
    let out = run("-vv");
    let to = sampled_at(state.path());
    drop(group);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let (read, write) = first.growth_until(&second);
    assert!(
        write > 1 << 20,
        "the workers wrote only {write} bytes: {text}"
    );
    let seconds = to - from;
    Some((text, read as f64 / seconds, write as f64 / seconds))
}

/// Within 1 %: the groups were stopped at both samples, so the only slack is rounding.
fn assert_close(text: &str, label: &str, expected: f64) {
    let line = text.lines().next().unwrap();
    let got = perf_number(line, label);
    let slack = expected * 0.01 + 1.0;
    assert!(
        (got - expected).abs() <= slack,
        "{label} {got}, expected {expected:.2}\n{text}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{label}: check {got}, own counters {expected:.2}"
    );
}

/// Two workers writing to a disk-backed file: the check's rate is their own counters' growth.
#[test]
fn real_workers_io_is_what_their_own_counters_say() {
    const TEST: &str = "real_workers_io_is_what_their_own_counters_say";
    let Some((text, read, write)) = measure_real(TEST, "0") else {
        return;
    };
    assert_close(&text, "io_write", write);
    assert_close(&text, "io_read", read);
    assert_eq!(text.matches(" io r ").count(), 2, "{text}");
}

/// Workers that write and exit every 300 ms: most of the bytes come from workers no sample
/// sees again, recovered through the master.
#[test]
fn real_short_lived_workers_are_recovered_through_the_master() {
    const TEST: &str = "real_short_lived_workers_are_recovered_through_the_master";
    let Some((text, read, write)) = measure_real(TEST, "0.3") else {
        return;
    };
    assert_close(&text, "io_write", write);
    assert_close(&text, "io_read", read);
    let recovered = text
        .lines()
        .find_map(|l| l.strip_prefix("io_read, io_write: "))
        .and_then(|l| l.split(" bytes read and ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|w| w.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no recovery note: {text}"));
    assert!(
        recovered > 1_048_576.0,
        "{recovered} bytes recovered: {text}"
    );
}

/// Runs the check as nobody (`-v`, an in-run interval) on the children of a root `sh`
/// running `script`; None when that cannot be done here.
fn unprivileged_run(test: &str, script: &str) -> Option<String> {
    if !is_root() || !setpriv_available() {
        skip(test, "needs root and setpriv");
        return None;
    }
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let mut sh = StdCommand::new("sh");
    sh.args(["-c", script]);
    let group = Group::start(sh);
    let started = Instant::now();
    while children_of(group.pid()).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "no workers");
        thread::sleep(Duration::from_millis(20));
    }
    let place = tempfile::tempdir().unwrap();
    fs::set_permissions(place.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let state = place.path().join("state");
    fs::create_dir(&state).unwrap();
    chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let out = StdCommand::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--"])
        .arg(&exe)
        .arg("--state-dir")
        .arg(&state)
        .args(["--ppid", &group.pid().to_string()])
        .args(["--interval", "0.3", "-v"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .output()
        .unwrap();
    drop(group);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text.lines().next().unwrap();
    assert!(
        perf(line, "cpu").is_some(),
        "an interval was measured: {line}"
    );
    Some(text)
}

/// As an unprivileged user root's workers' io is not readable: both metrics are left out
/// with a note, not 0.
#[test]
fn unprivileged_check_leaves_io_out_with_a_note() {
    let test = "unprivileged_check_leaves_io_out_with_a_note";
    let Some(text) = unprivileged_run(test, "sleep 600 & sleep 600 & wait") else {
        return;
    };
    let line = text.lines().next().unwrap();
    assert_eq!(
        (perf(line, "io_read"), perf(line, "io_write")),
        (None, None),
        "{line}"
    );
    assert!(
        text.contains("\nio_read, io_write: /proc/PID/io of 2 of 2 workers not readable (needs root or the workers' user); left out\n"),
        "{text}"
    );
    assert!(!text.contains(" io r "), "{text}");
}

/// The check's own user's workers under root's master: the workers' figure is there, and a
/// note says that exited workers cannot be recovered from a master it may not read.
#[test]
fn workers_of_the_checks_user_under_roots_master_have_io_with_a_note() {
    let test = "workers_of_the_checks_user_under_roots_master_have_io_with_a_note";
    let as_nobody = format!("setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups sleep 600");
    let Some(text) = unprivileged_run(test, &format!("{as_nobody} & {as_nobody} & wait")) else {
        return;
    };
    let line = text.lines().next().unwrap();
    assert_eq!(
        (perf(line, "io_read"), perf(line, "io_write")),
        (Some("io_read=0B;;;0;"), Some("io_write=0B;;;0;")),
        "{line}"
    );
    assert!(
        text.contains("\nio_read, io_write: /proc/PID/io of the master not readable (needs root or its user), so workers that exited within the interval are not counted\n"),
        "{text}"
    );
    assert_eq!(text.matches(" io r 0 B/s w 0 B/s\n").count(), 2, "{text}");
}
