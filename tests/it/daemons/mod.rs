//! The contrib/ configs under the real monitoring daemons (Debian's packages, installed by
//! `.ci/setup-daemons`):
//!
//! - NRPE: `nrpe` on 127.0.0.1 and a free port with a generated config that includes a copy of
//!   `contrib/nrpe/check_workers.cfg`, called with `check_nrpe`;
//! - Icinga 2: `icinga2 daemon -C` on `contrib/icinga2/check_workers.conf` with a Service that
//!   sets every variable and the uncommented examples, then the daemon itself running the check
//!   every second, its PerfdataWriter file, and (with `influxd`) the points its InfluxdbWriter
//!   wrote, read back with the queries of `contrib/grafana/check_workers-influxdb.json`;
//! - Icinga 2 on many hosts: a master and an agent with their own CA, the CheckCommand synced
//!   to the agent in a global zone, a `command_endpoint` Service, and the agent stopped;
//! - Nagios 4: `nagios4 -v` on `contrib/nagios/commands.cfg` and its uncommented examples;
//! - nginx with 3 workers: the count, the master and the memory figures against /proc;
//! - the accept queue of nginx (IPv4, IPv6) and php-fpm (a unix socket), workers stopped.
//!
//! The daemons need root (they switch to the nagios or www-data user) and their binaries;
//! without either a test prints `SKIPPED ...` and passes. Every daemon is started in its own
//! process group and the group is stopped by a guard, also when an assertion fails.
//!
//! One module per daemon; this one holds what they share: readiness, directories, ports,
//! the [`Daemon`] guard, and the perfdata labels every run must carry.

mod icinga2;
mod icinga2_agent;
mod influxdb;
mod nagios;
mod nginx;
mod nrpe;
mod queue;
mod stock;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::perfdata::Perfdata;
use crate::fixture::spawn::open_to_all;
use crate::fixture::{is_root, skip};

/// The perfdata labels every run with workers and a CPU figure carries.
const LABELS: [&str; 8] = [
    "workers",
    "cpu",
    "cpu_user",
    "cpu_system",
    "rss",
    "vms",
    "rss_max",
    "rss_total",
];

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Root and every binary present, or a SKIPPED line and false.
fn ready(test: &str, binaries: &[&str]) -> bool {
    if !is_root() {
        skip(test, "needs root (the daemons switch users)");
        return false;
    }
    for bin in binaries {
        if !Path::new(bin).exists() {
            skip(
                test,
                &format!("{bin} is missing (.ci/setup-daemons installs it)"),
            );
            return false;
        }
    }
    true
}

/// [`ready`], and the uid and gid of the `nagios` user that the Debian packages create; or a
/// SKIPPED line and None.
fn ready_as_nagios(test: &str, binaries: &[&str]) -> Option<(u32, u32)> {
    if !ready(test, binaries) {
        return None;
    }
    match nix::unistd::User::from_name("nagios") {
        Ok(Some(u)) => Some((u.uid.as_raw(), u.gid.as_raw())),
        _ => {
            skip(test, "no nagios user (.ci/setup-daemons creates it)");
            None
        }
    }
}

/// `dir/name`, created 0755 and owned by `owner` when given.
fn sub_dir(dir: &Path, name: &str, owner: Option<(u32, u32)>) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(&path).unwrap();
    open_to_all(&path, owner);
    path
}

/// A port that was free a moment ago, on 127.0.0.1.
fn free_port() -> u16 {
    free_port_on("127.0.0.1:0")
}

/// A port that was free a moment ago on the address of `bind` (`127.0.0.1:0`, `[::1]:0`).
fn free_port_on(bind: &str) -> u16 {
    TcpListener::bind(bind)
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Sends `sig` to the process group `pgid`; errors (no such group) are ignored.
fn signal_group(pgid: u32, sig: &str) {
    let _ = StdCommand::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A daemon in its own process group, stopped (TERM, then KILL after 5 s) with the whole group
/// when dropped, whatever happened in between. stdout and stderr go to `log`.
struct Daemon {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(what: &'static str, mut cmd: StdCommand, log: &Path) -> Daemon {
        let out = fs::File::create(log).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Daemon {
            what,
            child,
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far, for failure messages.
    fn log(&self) -> String {
        format!(
            "--- {} log ({}) ---\n{}",
            self.what,
            self.log.display(),
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// The log so far and the file `other` (the daemon's own log file).
    fn log_and(&self, other: &Path) -> String {
        format!(
            "{}\n{}",
            self.log(),
            fs::read_to_string(other).unwrap_or_default()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pgid = self.child.id();
        signal_group(pgid, "TERM");
        let stopped = wait_for(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        // children left in the group (a plugin, an nginx worker) go too
        signal_group(pgid, "KILL");
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A whole run for failure messages: exit code, stdout and stderr.
fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The first of [`LABELS`] that `have` lacks.
fn missing_label(have: &[String]) -> Option<&'static str> {
    LABELS
        .into_iter()
        .find(|label| !have.iter().any(|h| h == label))
}

fn assert_every_label(perfdata: Perfdata, context: &str) {
    if let Some(label) = missing_label(&perfdata.labels()) {
        panic!("no {label} in the perfdata {perfdata:?}\n{context}");
    }
}

/// Asserts the exit code of a run, showing the whole run when it differs.
#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
}
