//! Workers that map a large shared region, as postgres backends map their shared buffers
//! (issue 17): `smaps_rollup` then costs tens of milliseconds per worker, and reading it for
//! every worker on every run made a check of 100 backends miss `-t`. A default run must not
//! read it at all; a run asked for `pss` must stop reading it before `-t` and answer in time.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::unique;
use crate::fixture::{cpu_heavy, real_check, skip, state_dir, status_line, stdout_of};

/// Workers named `name`, each mapping the same `gib` GiB of shared memory with every page
/// in its page tables.
const SCRIPT: &str = r#"
import ctypes, mmap, os, sys, time
name, count, gib = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3])
path = "/dev/shm/cw-large-%d" % os.getpid()
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.unlink(path)
size = gib << 30
os.ftruncate(fd, size)
mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
ready_r, ready_w = os.pipe()
for _ in range(count):
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)
        region = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        os.write(ready_w, b".")
        time.sleep(600)
        os._exit(0)
got = 0
while got < count:
    got += len(os.read(ready_r, 4096))
print("ready", flush=True)
time.sleep(600)
"#;

/// The python parent and its workers, in a process group of their own, killed when dropped
/// (the shared memory goes with the last of them: its file is unlinked at once).
struct LargeWorkers(Child);

impl LargeWorkers {
    fn start(name: &str, count: usize, gib: u64) -> Option<LargeWorkers> {
        let child = StdCommand::new("python3")
            .args(["-c", SCRIPT, name, &count.to_string(), &gib.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .ok()?;
        let mut workers = LargeWorkers(child);
        let mut line = String::new();
        let stdout = workers.0.stdout.take()?;
        BufReader::new(stdout).read_line(&mut line).ok()?;
        (line.trim() == "ready").then_some(workers)
    }
}

impl Drop for LargeWorkers {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test created; its leader is not reaped yet
        unsafe {
            nix::libc::kill(-(self.0.id() as i32), nix::libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn workers_sharing_gigabytes_cost_a_default_run_nothing_and_pss_stops_before_the_timeout() {
    let _serial = cpu_heavy();
    let name = unique("cwlarge");
    // 48 workers x 3 GiB: about 20-40 ms of smaps_rollup each, 1-2 s for all, over -t 1
    let Some(_workers) = LargeWorkers::start(&name, 48, 3) else {
        skip(
            "workers_sharing_gigabytes_cost_a_default_run_nothing_and_pss_stops_before_the_timeout",
            "needs python3 and 3 GiB of /dev/shm",
        );
        return;
    };
    let state = state_dir();
    let run = |extra: &[&str]| {
        let started = Instant::now();
        let out = real_check(state.path())
            .args(["-n", &name, "--interval", "0"])
            .args(extra)
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    // the default metrics: smaps_rollup is never read, so the size of the mapping costs nothing
    let (out, took) = run(&["-t", "1"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(took < Duration::from_millis(500), "{took:?}: {text}");
    let line = status_line(&out);
    assert_eq!(of_line(&line).number("workers"), 48.0, "{text}");
    assert!(!line.contains(" pss=") && !line.contains(" uss="), "{text}");
    // asked for pss: it reads what fits before -t, then answers with everything else
    let (out, took) = run(&["--metrics", "pss", "-t", "1"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{took:?}: {text}");
    assert!(took < Duration::from_secs(1), "{took:?}: {text}");
    let line = status_line(&out);
    assert!(!line.contains(" pss=") && line.contains(" rss="), "{text}");
    assert!(
        text.contains(" of 48 workers read before the time ran out (-t); left out\n"),
        "{text}"
    );
    // with time for every read: rss_pct counts the shared 3 GiB once, from the PSS sum (the
    // sum of RSS, 144 GiB, read 600 % of this host), and rss_total still sums RSS
    let (out, _) = run(&["--metrics", "pss", "-t", "20"]);
    let text = stdout_of(&out);
    let line = status_line(&out);
    let perfdata = of_line(&line);
    let held = perfdata.number("rss_pct") / 100.0 * mem_total() as f64 / (1u64 << 30) as f64;
    assert!((2.8..3.6).contains(&held), "{held} GiB: {text}");
    assert!(
        perfdata.number("rss_total") > (100u64 << 30) as f64,
        "{text}"
    );
}

/// MemTotal of this host, bytes.
fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}
