//! The contrib/ configs under the real monitoring daemons (Debian's packages, installed by
//! `.ci/setup-daemons`):
//!
//! - NRPE: `nrpe` on 127.0.0.1 and a free port with a generated config that includes a copy of
//!   `contrib/nrpe/check_workers.cfg`, called with `check_nrpe`;
//! - Icinga 2: `icinga2 daemon -C` on `contrib/icinga2/check_workers.conf` with a Service that
//!   sets every variable and the uncommented examples, then the daemon itself running the check
//!   every second, its PerfdataWriter file, and (with `influxd`) the points its InfluxdbWriter
//!   wrote, read back with the queries of `contrib/grafana/check_workers-influxdb.json`;
//! - Nagios 4: `nagios4 -v` on `contrib/nagios/commands.cfg` and its uncommented examples;
//! - nginx with 3 workers: the count, the master and the memory figures against /proc.
//!
//! The daemons need root (they switch to the nagios or www-data user) and their binaries;
//! without either a test prints `SKIPPED ...` and passes. Every daemon is started in its own
//! process group and the group is stopped by a guard, also when an assertion fails.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::perfdata::{of_line, Perfdata};
use crate::fixture::spawn::{install_binary, open_to_all, public_dir, unique, Spawned};
use crate::fixture::{binary, command, cpu_heavy, is_root, real_check, skip, status_line};

const NRPE: &str = "/usr/sbin/nrpe";
const CHECK_NRPE: &str = "/usr/lib/nagios/plugins/check_nrpe";
const ICINGA2: &str = "/usr/sbin/icinga2";
const NAGIOS4: &str = "/usr/sbin/nagios4";
const NGINX: &str = "/usr/sbin/nginx";
const INFLUXD: &str = "/usr/bin/influxd";

/// Where the contrib files put the binary.
const INSTALLED: &str = "/usr/lib/nagios/plugins/check_workers";

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

// ---------------------------------------------------------------------------------------------
// helpers

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
    TcpListener::bind("127.0.0.1:0")
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

/// `text` with `from` replaced, asserting it was there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found");
    text.replace(from, to)
}

// ---------------------------------------------------------------------------------------------
// 1. NRPE

fn check_nrpe(port: u16, command: Option<&str>) -> Output {
    let mut cmd = StdCommand::new(CHECK_NRPE);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string(), "-t", "20"]);
    if let Some(command) = command {
        cmd.args(["-c", command]);
    }
    cmd.output().unwrap()
}

/// The `command[NAME]=LINE` entries of an NRPE config.
fn nrpe_commands(cfg: &str) -> Vec<(String, String)> {
    cfg.lines()
        .filter_map(|l| l.strip_prefix("command["))
        .filter_map(|l| l.split_once("]="))
        .map(|(name, line)| (name.to_string(), line.to_string()))
        .collect()
}

/// The value after `-n` in a command line.
fn name_option(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "-n").expect("-n");
    words[at + 1].to_string()
}

#[test]
fn nrpe_round_trip_with_the_contrib_commands() {
    const TEST: &str = "nrpe_round_trip_with_the_contrib_commands";
    let Some(nagios) = ready_as_nagios(TEST, &[NRPE, CHECK_NRPE]) else {
        return;
    };
    let _serial = cpu_heavy();
    let work = public_dir(Some(nagios));
    let dir = work.path();
    let exe = install_binary(dir);
    let name = unique("cwn");
    let mut sleepers = Spawned::new();
    sleepers.sleepers(&name, 2);
    // NRPE clears the environment, so the state dir is given on the command line; the nagios
    // user owns the directory above it, the check creates it 0700
    let state = dir.join("state");

    // contrib/nrpe/check_workers.cfg as shipped, the binary path rewritten
    let shipped = read(&contrib("nrpe/check_workers.cfg"));
    let commands = nrpe_commands(&shipped);
    let names: Vec<&str> = commands.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "check_workers_apache2",
            "check_workers_nginx",
            "check_workers_php-fpm"
        ]
    );
    let copy: String = replaced(&shipped, INSTALLED, exe.to_str().unwrap())
        .lines()
        .map(|l| {
            if l.starts_with("command[") {
                format!("{l} --state-dir {}\n", state.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(dir.join("check_workers.cfg"), copy).unwrap();

    let port = free_port();
    let cfg = dir.join("nrpe.cfg");
    fs::write(
        &cfg,
        format!(
            "pid_file={dir}/nrpe.pid\n\
             log_file={dir}/nrpe.log\n\
             disable_syslog=1\n\
             debug=1\n\
             server_address=127.0.0.1\n\
             server_port={port}\n\
             nrpe_user=nagios\n\
             nrpe_group=nagios\n\
             allowed_hosts=127.0.0.1\n\
             dont_blame_nrpe=0\n\
             command_timeout=30\n\
             connection_timeout=60\n\
             command[check_workers_test]={exe} -n {name} -w workers=3: -c workers=1: \
             --interval 0.5 --state-dir {state}\n\
             include={dir}/check_workers.cfg\n",
            dir = dir.display(),
            exe = exe.display(),
            state = state.display(),
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(NRPE);
    cmd.arg("-c").arg(&cfg).arg("-f");
    let mut nrpe = Daemon::start("nrpe", cmd, &dir.join("nrpe.out"));
    assert!(
        wait_for(Duration::from_secs(10), || port_open(port)),
        "nrpe does not listen on {port}\n{}",
        nrpe.log_and(&dir.join("nrpe.log"))
    );

    // the handshake (TLS) and the version
    let out = check_nrpe(port, None);
    assert_exit(&out, 0);
    assert!(status_line(&out).starts_with("NRPE v4"), "{}", text(&out));

    // two workers where three are wanted: WARNING, through nrpe and back
    let out = check_nrpe(port, Some("check_workers_test"));
    let line = status_line(&out);
    assert_exit(&out, 1);
    assert!(
        line.starts_with(&format!("WORKERS WARNING - {name}: 2 workers < 3, cpu ")),
        "{}",
        text(&out)
    );
    assert!(line.contains(" | workers=2;3:;1:;0; "), "{line}");
    assert_every_label(of_line(&line), &text(&out));

    // every shipped command line runs and parses: a state, never a usage error (UNKNOWN)
    for (command, cmdline) in &commands {
        let out = check_nrpe(port, Some(command));
        let line = status_line(&out);
        let code = out.status.code();
        let state = match code {
            Some(0) => "OK",
            Some(1) => "WARNING",
            Some(2) => "CRITICAL",
            _ => panic!("{command}: {}", text(&out)),
        };
        let service = name_option(cmdline);
        assert!(
            line.starts_with(&format!("WORKERS {state} - {service}: ")),
            "{command}: {}",
            text(&out)
        );
        assert!(
            of_line(&line).labels().iter().any(|l| l == "workers"),
            "{line}"
        );
    }
    assert!(nrpe.running(), "nrpe died\n{}", nrpe.log());
}

// ---------------------------------------------------------------------------------------------
// 2. Icinga 2 (and the Grafana dashboard's queries against what it wrote to InfluxDB)

/// The `-D` constants that keep Icinga 2 in `dir` and running as nagios.
fn icinga_defines(dir: &Path) -> Vec<String> {
    let mut defines: Vec<String> = ["data", "log", "cache", "spool"]
        .iter()
        .map(|sub| {
            let key = format!("{}{}Dir", sub[..1].to_uppercase(), &sub[1..]);
            format!("-D{key}={}", dir.join(sub).display())
        })
        .collect();
    defines.push(format!("-DInitRunDir={}", dir.join("run").display()));
    defines.push(format!("-DConfigDir={}", dir.display()));
    defines.push("-DRunAsUser=nagios".into());
    defines.push("-DRunAsGroup=nagios".into());
    defines
}

/// The commented examples at the end of check_workers.conf, uncommented.
fn icinga_examples(conf: &str) -> String {
    let start = conf.find("/* Examples").expect("an examples block");
    let mut out = String::new();
    for line in conf[start..].lines().skip(1) {
        if line.trim() == "*/" {
            return out;
        }
        let code = line
            .strip_prefix(" * ")
            .or_else(|| line.strip_prefix(" *"))
            .unwrap_or(line);
        out.push_str(code);
        out.push('\n');
    }
    panic!("the examples block is not closed");
}

/// The argument keys of the CheckCommand (`"-n" = {`).
fn icinga_argument_keys(conf: &str) -> Vec<String> {
    conf.lines()
        .filter_map(|l| l.trim().strip_suffix("\" = {"))
        .filter_map(|l| l.strip_prefix('"'))
        .filter(|k| k.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// (short, long) of every option `check_workers --help` lists, less help and version.
fn binary_options() -> Vec<(Option<String>, String)> {
    let out = command(binary()).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut options = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        let (short, rest) = match line.strip_prefix('-') {
            Some(r) if !r.starts_with('-') && r.get(1..3) == Some(", ") => {
                (Some(format!("-{}", &r[..1])), &r[3..])
            }
            _ => (None, line),
        };
        let Some(long) = rest.strip_prefix("--") else {
            continue;
        };
        let long: String = long
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if long.is_empty() || long == "help" || long == "version" {
            continue;
        }
        options.push((short, format!("--{long}")));
    }
    options
}

/// Drift check: the CheckCommand has one argument for each option of the binary, and none
/// for an option it does not have. Needs no daemon.
#[test]
fn icinga2_check_command_covers_every_option() {
    let conf = read(&contrib("icinga2/check_workers.conf"));
    let keys = icinga_argument_keys(&conf);
    let options = binary_options();
    assert!(options.len() >= 10, "{options:?}");
    for (short, long) in &options {
        let covered = keys
            .iter()
            .any(|k| k == long || Some(k) == short.as_ref() || (k == "-vv" && long == "--verbose"));
        assert!(covered, "{long} has no argument in check_workers.conf");
    }
    for key in &keys {
        let known = options
            .iter()
            .any(|(s, l)| key == l || Some(key) == s.as_ref())
            || key == "-vv";
        assert!(
            known,
            "check_workers.conf passes {key}, which the binary does not know"
        );
    }
    // every value and condition comes from a custom variable prefixed workers_
    for line in conf.lines().map(str::trim) {
        if line.starts_with("value =") || line.starts_with("set_if =") {
            assert!(line.contains("$workers_"), "{line}");
        }
    }
}

/// The items of a JSON array; none when `value` is not an array (or absent: `Value::Null`).
fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// One series of an InfluxDB answer: its tags, and the non-null values of its last column.
type Series = (Vec<(String, String)>, Vec<Value>);

/// Every series of the answer to one InfluxDB query.
fn influx_series(port: u16, query: &str) -> Vec<Series> {
    let path = format!("/query?db=icinga2&epoch=s&q={}", url_encode(query));
    let (status, body) = http(port, "GET", &path);
    assert_eq!(status, 200, "{query}: {body}");
    let parsed: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{query}: {e}: {body}"));
    let result = &items(&parsed["results"])[0];
    assert!(result.get("error").is_none(), "{query}: {body}");
    items(&result["series"])
        .iter()
        .map(|s| {
            let tags = match &s["tags"] {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            let values = items(&s["values"])
                .iter()
                .filter_map(|row| items(row).last().cloned())
                .filter(|v| !v.is_null())
                .collect();
            (tags, values)
        })
        .collect()
}

/// The strings among `values`.
fn strings<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A bare HTTP/1.0 request to 127.0.0.1: (status, body).
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The dashboard's queries: (what, query), the template variables' first.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for var in items(&dashboard["templating"]["list"]) {
        if var["type"].as_str() == Some("query") {
            let name = var["name"].as_str().unwrap();
            let query = var["query"].as_str().unwrap();
            queries.push((format!("variable {name}"), query.to_string()));
        }
    }
    for panel in items(&dashboard["panels"]) {
        let title = panel["title"].as_str().unwrap();
        for target in items(&panel["targets"]) {
            let query = target["query"].as_str().unwrap();
            let refid = target["refId"].as_str().unwrap();
            queries.push((format!("panel {title:?} {refid}"), query.to_string()));
        }
    }
    queries
}

fn load_dashboard() -> Value {
    let path = contrib("grafana/check_workers-influxdb.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The dashboard is JSON Grafana can import (an InfluxDB input, raw InfluxQL targets) and its
/// panels together show every label. Needs no daemon.
#[test]
fn grafana_dashboard_parses_and_covers_every_label() {
    let dashboard = load_dashboard();
    let inputs = dashboard["__inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["pluginId"].as_str(), Some("influxdb"));
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 6, "{queries:?}");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["rawQuery"], Value::Bool(true));
            assert_eq!(target["datasource"]["uid"].as_str(), Some("${DS_INFLUXDB}"));
        }
    }
    let all: String = queries.iter().map(|(_, q)| q.as_str()).collect();
    for label in LABELS {
        // 'label' or a regex alternative naming it
        let named = all.contains(&format!("'{label}'"))
            || all.contains(&format!("|{label})"))
            || all.contains(&format!("({label}|"))
            || all.contains(&format!("|{label}|"))
            || (label.starts_with("cpu") && all.contains("/^cpu(_user|_system)?$/"));
        assert!(named, "no panel shows {label}");
    }
}

/// Fills in the dashboard's template variables as Grafana would for one host and service.
fn grafana_interpolate(query: &str, host: &str, service: &str) -> String {
    query
        .replace("$measurement", "workers")
        .replace("$hostname", host)
        .replace("$service", service)
        .replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval", "1s")
}

/// Starts influxd with its data in `dir` and an `icinga2` database; None when not installed.
fn start_influxd(test: &str, dir: &Path) -> Option<(Daemon, u16)> {
    if !Path::new(INFLUXD).exists() {
        skip(
            &format!("{test} (its InfluxDB and Grafana part)"),
            &format!("{INFLUXD} is missing (.ci/setup-daemons installs it)"),
        );
        return None;
    }
    let (http_port, rpc_port) = (free_port(), free_port());
    let conf = dir.join("influxdb.conf");
    fs::write(
        &conf,
        format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http_port}\"\n  log-enabled = false\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(INFLUXD);
    cmd.arg("-config").arg(&conf);
    let influxd = Daemon::start("influxd", cmd, &dir.join("influxd.log"));
    let up = wait_for(Duration::from_secs(15), || {
        port_open(http_port) && http(http_port, "GET", "/ping").0 == 204
    });
    assert!(up, "influxd does not answer\n{}", influxd.log());
    let (status, body) = http(
        http_port,
        "POST",
        &format!("/query?q={}", url_encode("CREATE DATABASE icinga2")),
    );
    assert_eq!(status, 200, "{body}");
    Some((influxd, http_port))
}

/// The tokens of the last "Running command '...' '...'" of Icinga's debug log that starts with
/// `exe` and contains `marker`.
fn icinga_command_line(log: &str, exe: &Path, marker: &str) -> Option<Vec<String>> {
    let start = format!("Running command '{}'", exe.display());
    log.lines()
        .rfind(|l| l.contains(&start) && l.contains(marker))
        .map(|l| {
            let quoted = &l[l.find("Running command ").unwrap() + 16..];
            let quoted = quoted.rsplit_once(": PID").map_or(quoted, |(q, _)| q);
            quoted
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
}

/// The last perfdata line Icinga wrote for `service`, from every file of its PerfdataWriter.
fn icinga_perfdata(dir: &Path, service: &str) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("service-perfdata"))
        {
            lines.extend(
                fs::read_to_string(&path)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    let tag = format!("\tSERVICEDESC::{service}\t");
    lines
        .into_iter()
        .filter(|l| l.contains(&tag))
        .max_by_key(|l| l.split('\t').nth(1).map(str::to_string))
}

/// The value of `KEY::value` in a perfdata-file line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split('\t')
        .find_map(|f| f.strip_prefix(&format!("{key}::")))
        .unwrap_or_default()
}

#[test]
fn icinga2_validates_and_runs_the_check_command() {
    const TEST: &str = "icinga2_validates_and_runs_the_check_command";
    let Some(nagios) = ready_as_nagios(TEST, &[ICINGA2]) else {
        return;
    };
    let _serial = cpu_heavy();
    let work = public_dir(Some(nagios));
    let dir = work.path();
    for sub in [
        "data",
        "log",
        "cache",
        "spool",
        "run",
        "perf",
        "zones.d/master",
    ] {
        sub_dir(dir, sub, Some(nagios));
    }
    sub_dir(dir, "zones.d", Some(nagios));
    let plugins = sub_dir(dir, "plugins", None);
    let exe = install_binary(&plugins);
    let contrib_conf = contrib("icinga2/check_workers.conf");
    let conf_text = read(&contrib_conf);
    let defines = icinga_defines(dir);

    // --- validation: a Service that sets every variable, plus the uncommented examples (in
    // the master's zone, as a Service with command_endpoint must be)
    fs::write(
        dir.join("zones.d/master/examples.conf"),
        icinga_examples(&conf_text),
    )
    .unwrap();
    let validate = dir.join("validate.conf");
    fs::write(
        &validate,
        format!(
            r#"const PluginDir = "{plugins}"
const NodeName = "testnode"
const ZoneName = "master"
include <itl>
include <plugins>
include "{contrib}"
object Endpoint NodeName {{ }}
object Zone ZoneName {{ endpoints = [ NodeName ] }}
object Endpoint "web1" {{ }}
object Zone "web1" {{ endpoints = [ "web1" ]; parent = ZoneName }}
include_zones "examples", "{dir}/zones.d"
object Host "every-argument" {{ check_command = "dummy" }}
object Service "every-argument" {{
  host_name = "every-argument"
  check_command = "workers"
  vars.workers_name = "nginx"
  vars.workers_user = "www-data"
  vars.workers_include_master = true
  vars.workers_pidfile = "/run/nginx.pid"
  vars.workers_ppid = 1
  vars.workers_unit = "nginx.service"
  vars.workers_cgroup = "/system.slice/nginx*"
  vars.workers_cmdline = "worker process"
  vars.workers_exe = "/usr/sbin/nginx"
  vars.workers_state = "RS"
  vars.workers_cpu_scale = "host"
  vars.workers_warning = [ "80", "rss=300MiB" ]
  vars.workers_critical = [ "95", "workers=2:" ]
  vars.workers_interval = 0.5
  vars.workers_state_dir = "/var/lib/nagios/check_workers"
  vars.workers_timeout = 5
  vars.workers_verbose = 2
  vars.workers_extra_opts = "nginx@/etc/monitoring-plugins/monitoring-plugins.ini"
}}
"#,
            plugins = plugins.display(),
            contrib = contrib_conf.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    let out = StdCommand::new(ICINGA2)
        .args(["daemon", "-C", "-c"])
        .arg(&validate)
        .args(&defines)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let said = text(&out);
    // every-argument, and the three examples: local, command_endpoint, nrpe
    assert!(said.contains("Instantiated 4 Services."), "{said}");

    // --- the daemon: a service that runs check_workers every second on real processes
    let name = unique("cwi");
    let mut sleepers = Spawned::new();
    let sleeper = sleepers.sleepers_as(&name, 2, nagios);
    let influx = start_influxd(TEST, dir);
    let influx_writer = match &influx {
        Some((_, port)) => format!(
            "object InfluxdbWriter \"influxdb\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  \
             database = \"icinga2\"\n  flush_interval = 1s\n  flush_threshold = 1\n  \
             enable_send_thresholds = true\n}}\n"
        ),
        None => String::new(),
    };
    // --extra-opts: a critical threshold that only the ini file gives
    let ini = plugins.join("plugins.ini");
    fs::write(&ini, "[every]\ncritical = rss_total=1GiB\n").unwrap();
    let perf = dir.join("perf");
    let run = dir.join("icinga2.conf");
    let ppid = std::process::id();
    fs::write(
        &run,
        format!(
            r#"const PluginDir = "{plugins}"
const NodeName = "testnode"
const ZoneName = "master"
include <itl>
include "{contrib}"
object CheckerComponent "checker" {{ }}
object PerfdataWriter "perfdata" {{
  service_perfdata_path = "{perf}/service-perfdata"
  service_temp_path = "{perf}/service-perfdata.tmp"
  host_perfdata_path = "{perf}/host-perfdata"
  host_temp_path = "{perf}/host-perfdata.tmp"
  rotation_interval = 1s
}}
{influx_writer}
object Host "testnode" {{
  check_command = "dummy"
  check_interval = 1s
}}
template Service "every-second" {{
  host_name = "testnode"
  check_command = "workers"
  check_interval = 1s
  retry_interval = 1s
  max_check_attempts = 1
}}
object Service "live" {{
  import "every-second"
  vars.workers_name = "{name}"
  vars.workers_warning = "workers=3:"
  vars.workers_interval = "0.2"
  vars.workers_state_dir = "{dir}/state-live"
}}
object Service "every" {{
  import "every-second"
  vars.workers_name = "{name}"
  vars.workers_user = "nagios"
  vars.workers_include_master = true
  vars.workers_ppid = "{ppid}"
  vars.workers_cmdline = "{name} 600"
  vars.workers_exe = "{sleeper}"
  vars.workers_state = "S"
  vars.workers_cpu_scale = "host"
  vars.workers_warning = [ "workers=3:", "rss=1GiB" ]
  vars.workers_critical = [ "190", "workers=1:" ]
  vars.workers_interval = "0.2"
  vars.workers_state_dir = "{dir}/state-every"
  vars.workers_timeout = 5
  vars.workers_verbose = 2
  vars.workers_extra_opts = "every@{ini}"
}}
"#,
            plugins = plugins.display(),
            contrib = contrib_conf.display(),
            ini = ini.display(),
            perf = perf.display(),
            dir = dir.display(),
            sleeper = sleeper.display(),
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(ICINGA2);
    cmd.args(["daemon", "-x", "debug", "-c"])
        .arg(&run)
        .args(&defines);
    let mut icinga = Daemon::start("icinga2", cmd, &dir.join("daemon.log"));

    let complete = |line: &Option<String>| {
        line.as_deref()
            .map(|l| Perfdata::new(field(l, "SERVICEPERFDATA")).labels())
            .is_some_and(|labels| missing_label(&labels).is_none())
    };
    let done = wait_for(Duration::from_secs(30), || {
        complete(&icinga_perfdata(&perf, "live")) && complete(&icinga_perfdata(&perf, "every"))
    });
    assert!(
        done,
        "no complete perfdata from Icinga within 30 s\n{}",
        icinga.log()
    );
    assert!(icinga.running(), "icinga2 died\n{}", icinga.log());

    for service in ["live", "every"] {
        let line = icinga_perfdata(&perf, service).unwrap();
        let perfdata = field(&line, "SERVICEPERFDATA");
        assert_every_label(Perfdata::new(perfdata), &line);
        assert_eq!(field(&line, "SERVICESTATE"), "WARNING", "{line}");
        assert_eq!(field(&line, "SERVICECHECKCOMMAND"), "workers", "{line}");
        assert!(perfdata.starts_with("workers=2;3:;1:;0; "), "{line}");
    }
    // the ini file's threshold reached the every service's check
    let every = icinga_perfdata(&perf, "every").unwrap();
    let rss_total = Perfdata::new(field(&every, "SERVICEPERFDATA"))
        .item("rss_total")
        .unwrap();
    assert!(rss_total.ends_with("B;;1073741824;0;"), "{every}");

    // the exact command line the CheckCommand built from the "every" service's variables
    let log = read(&icinga.log);
    let argv = icinga_command_line(&log, &exe, "state-every").expect("a run of the every service");
    let expected: Vec<String> = [
        exe.to_str().unwrap(),
        "--cpu-scale",
        "host",
        "--exe",
        sleeper.to_str().unwrap(),
        &format!("--extra-opts=every@{}", ini.display()),
        "--include-master",
        "--interval",
        "0.2",
        "--ppid",
        &ppid.to_string(),
        "--state-dir",
        &format!("{}/state-every", dir.display()),
        "-a",
        &format!("{name} 600"),
        "-c",
        "190",
        "-c",
        "workers=1:",
        "-n",
        &name,
        "-s",
        "S",
        "-t",
        "5",
        "-u",
        "nagios",
        "-vv",
        "-w",
        "workers=3:",
        "-w",
        "rss=1GiB",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(argv, expected);
    assert!(
        !log.contains("invalid perfdata"),
        "Icinga rejected perfdata\n{log}"
    );

    // --- InfluxDB: Icinga parsed our perfdata into points (units and all), and the dashboard's
    // queries find them
    let Some((_influxd, port)) = influx else {
        return;
    };
    let mut seen = Vec::new();
    let points_in = wait_for(Duration::from_secs(15), || {
        let series = influx_series(
            port,
            "SHOW TAG VALUES FROM \"workers\" WITH KEY = \"metric\"",
        );
        seen = strings(series.iter().flat_map(|(_, values)| values));
        missing_label(&seen).is_none()
    });
    assert!(points_in, "metrics in InfluxDB: {seen:?}\n{}", icinga.log());
    drop(icinga);

    // Icinga parsed the units: B became bytes, % percent; the count has none
    let units = influx_series(
        port,
        "SELECT last(\"unit\") FROM \"workers\" WHERE \"service\" = 'live' GROUP BY \"metric\"",
    );
    let unit_of = |metric: &str| {
        units
            .iter()
            .find(|(tags, _)| tags.contains(&("metric".to_string(), metric.to_string())))
            .and_then(|(_, values)| values.last().and_then(|v| v.as_str().map(str::to_string)))
    };
    for label in LABELS {
        let want = match label {
            "workers" => None,
            l if l.starts_with("cpu") => Some("percent".to_string()),
            _ => Some("bytes".to_string()),
        };
        assert_eq!(unit_of(label), want, "unit of {label}: {units:?}");
    }

    let dashboard = load_dashboard();
    let mut shown: Vec<String> = Vec::new();
    for (what, query) in dashboard_queries(&dashboard) {
        for service in ["live", "every"] {
            let q = grafana_interpolate(&query, "testnode", service);
            let series = influx_series(port, &q);
            if what.starts_with("variable") {
                // SHOW TAG VALUES: rows of [key, value]
                let values = strings(series.iter().flat_map(|(_, v)| v));
                let want = if what.ends_with("hostname") {
                    "testnode"
                } else {
                    service
                };
                assert!(values.iter().any(|v| v == want), "{what}: {q}: {values:?}");
                continue;
            }
            if q.contains("last(\"crit\")") && service == "live" {
                continue; // the live service has no cpu threshold
            }
            assert!(
                series.iter().any(|(_, values)| !values.is_empty()),
                "{what} for {service}: no data from {q}"
            );
            for (tags, values) in &series {
                if values.is_empty() {
                    continue;
                }
                assert!(
                    tags.contains(&("service".into(), service.into())),
                    "{what}: {tags:?}"
                );
                match tags.iter().find(|(k, _)| k == "metric") {
                    Some((_, metric)) => shown.push(metric.clone()),
                    None => {
                        if let Some(m) = q.split("\"metric\" = '").nth(1) {
                            shown.push(m.split('\'').next().unwrap().to_string());
                        }
                    }
                }
            }
        }
    }
    if let Some(label) = missing_label(&shown) {
        panic!("no panel showed {label}: {shown:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Nagios 4

const NAGIOS_OBJECTS: &str = "\
define timeperiod {
    timeperiod_name 24x7
    alias           always
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
    sunday          00:00-24:00
}
define command {
    command_name    notify-nobody
    command_line    /bin/true
}
define command {
    command_name    check-host-alive
    command_line    /bin/true
}
define contact {
    contact_name                    admin
    host_notifications_enabled      0
    service_notifications_enabled   0
    host_notification_period        24x7
    service_notification_period     24x7
    host_notification_options       n
    service_notification_options    n
    host_notification_commands      notify-nobody
    service_notification_commands   notify-nobody
}
define service {
    name                    generic-service
    register                0
    max_check_attempts      3
    check_interval          5
    retry_interval          1
    check_period            24x7
    notification_period     24x7
    notification_interval   0
    contacts                admin
}
define host {
    host_name               web1
    address                 127.0.0.1
    check_command           check-host-alive
    max_check_attempts      3
    check_period            24x7
    notification_period     24x7
    contacts                admin
}
";

/// commands.cfg with its example services uncommented.
fn nagios_with_examples(cfg: &str) -> String {
    let at = cfg.find("Example services").expect("an examples section");
    let (head, tail) = cfg.split_at(at);
    let tail: String = tail
        .lines()
        .map(|l| {
            let code = l.strip_prefix('#').filter(|rest| {
                rest.starts_with("define ") || rest.starts_with("    ") || rest.starts_with('}')
            });
            format!("{}\n", code.unwrap_or(l))
        })
        .collect();
    format!("{head}{tail}")
}

fn nagios_verify(dir: &Path, commands: &str) -> Output {
    fs::write(dir.join("commands.cfg"), commands).unwrap();
    fs::write(dir.join("objects.cfg"), NAGIOS_OBJECTS).unwrap();
    fs::write(
        dir.join("resource.cfg"),
        format!("$USER1$={}/plugins\n", dir.display()),
    )
    .unwrap();
    let d = dir.display();
    let main = dir.join("nagios.cfg");
    fs::write(
        &main,
        format!(
            "log_file={d}/nagios.log\n\
             cfg_file={d}/objects.cfg\n\
             cfg_file={d}/commands.cfg\n\
             resource_file={d}/resource.cfg\n\
             lock_file={d}/nagios.lock\n\
             temp_file={d}/nagios.tmp\n\
             temp_path={d}\n\
             status_file={d}/status.dat\n\
             object_cache_file={d}/objects.cache\n\
             check_result_path={d}\n\
             state_retention_file={d}/retention.dat\n\
             command_file={d}/nagios.cmd\n\
             nagios_user=nagios\n\
             nagios_group=nagios\n\
             illegal_macro_output_chars=`~$&|'\"<>\n"
        ),
    )
    .unwrap();
    StdCommand::new(NAGIOS4)
        .arg("-v")
        .arg(&main)
        .output()
        .unwrap()
}

#[test]
fn nagios4_verifies_the_contrib_commands() {
    const TEST: &str = "nagios4_verifies_the_contrib_commands";
    let Some(nagios) = ready_as_nagios(TEST, &[NAGIOS4]) else {
        return;
    };
    let work = public_dir(Some(nagios));
    let shipped = read(&contrib("nagios/commands.cfg"));
    let with_examples = nagios_with_examples(&shipped);
    assert!(with_examples.matches("\ndefine service {").count() >= 2);

    let out = nagios_verify(work.path(), &with_examples);
    assert_exit(&out, 0);
    let said = text(&out);
    assert!(said.contains("Total Errors:   0"), "{said}");
    assert!(said.contains("Total Warnings: 0"), "{said}");
    assert!(said.contains("Checked 2 services."), "{said}");
    // the test's two and the shipped two
    assert!(said.contains("Checked 4 commands."), "{said}");

    // and the verifier does look at the command names: a service naming one that does not
    // exist fails
    let broken = with_examples.replacen("check_workers!", "check_workerz!", 1);
    let out = nagios_verify(work.path(), &broken);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("check_workerz"), "{}", text(&out));
}

// ---------------------------------------------------------------------------------------------
// 4. nginx

/// Pids of processes named `comm`.
fn pids_named(comm: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim_end() == comm) {
            pids.push(pid);
        }
    }
    pids
}

fn ppid_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

/// A `Vm...` line of /proc/PID/status, in bytes.
fn vm_bytes(pid: u32, key: &str) -> u64 {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} for {pid}"));
    let kib: u64 = line.trim().trim_end_matches(" kB").trim().parse().unwrap();
    kib * 1024
}

fn assert_close(what: &str, got: f64, want: f64, line: &str) {
    assert!(
        (got - want).abs() <= want * 0.01,
        "{what}: check says {got}, /proc says {want} (more than 1 % apart)\n{line}"
    );
}

#[test]
fn nginx_workers_master_and_memory_match_proc() {
    const TEST: &str = "nginx_workers_master_and_memory_match_proc";
    if !ready(TEST, &[NGINX]) {
        return;
    }
    let _serial = cpu_heavy();
    let foreign = pids_named("nginx");
    if !foreign.is_empty() {
        skip(
            TEST,
            &format!("another nginx is running ({foreign:?}); its processes would be counted"),
        );
        return;
    }
    let work = public_dir(None);
    let dir = work.path();
    let d = dir.display();
    let port = free_port();
    let pidfile = dir.join("nginx.pid");
    let conf = dir.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon off;\n\
             master_process on;\n\
             worker_processes 3;\n\
             user www-data;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n\
             }}\n"
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(NGINX);
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"));
    let mut nginx = Daemon::start("nginx", cmd, &dir.join("nginx.out"));
    let master = nginx.pid();
    let mut workers = Vec::new();
    let up = wait_for(Duration::from_secs(10), || {
        workers = pids_named("nginx")
            .into_iter()
            .filter(|&p| ppid_of(p) == Some(master))
            .collect();
        workers.len() == 3 && port_open(port) && pidfile.exists()
    });
    assert!(
        up,
        "nginx did not start 3 workers: {workers:?}\n{}",
        nginx.log_and(&dir.join("error.log"))
    );
    let from_pidfile: u32 = read(&pidfile).trim().parse().unwrap();
    assert_eq!(from_pidfile, master, "daemon off: the master is our child");
    workers.sort_unstable();

    // every check measures at once and keeps its state here
    let state = dir.join("state");
    let check = |args: &[&str]| {
        real_check(&state)
            .args(args)
            .args(["--interval", "0"])
            .output()
            .unwrap()
    };
    let three_workers = format!("WORKERS OK - nginx: 3 workers (master {master}), ");
    let out = check(&["-n", "nginx", "-v"]);
    let line = status_line(&out);
    assert_exit(&out, 0);
    assert!(line.starts_with(&three_workers), "{}", text(&out));
    assert_eq!(of_line(&line).value("workers"), Some(3.0), "{line}");
    // -v lists exactly the worker pids
    let mut listed: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("pid "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, workers, "{}", text(&out));

    // memory against /proc/PID/status of the worker pids
    let rss: Vec<u64> = workers.iter().map(|&p| vm_bytes(p, "VmRSS")).collect();
    let vms: Vec<u64> = workers.iter().map(|&p| vm_bytes(p, "VmSize")).collect();
    let rss_total = rss.iter().sum::<u64>() as f64;
    let rss_max = *rss.iter().max().unwrap() as f64;
    assert_close(
        "rss_total",
        of_line(&line).number("rss_total"),
        rss_total,
        &line,
    );
    assert_close("rss", of_line(&line).number("rss"), rss_total / 3.0, &line);
    assert_close("rss_max", of_line(&line).number("rss_max"), rss_max, &line);
    let vms_mean = vms.iter().sum::<u64>() as f64 / 3.0;
    assert_close("vms", of_line(&line).number("vms"), vms_mean, &line);

    // -u with the workers' user still names the root master
    let out = check(&["-n", "nginx", "-u", "www-data"]);
    assert!(
        status_line(&out).starts_with(&three_workers),
        "{}",
        text(&out)
    );

    // --pidfile, when the binary has it: the master from nginx's own pid file
    let help = command(binary()).arg("--help").output().unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("--pidfile") {
        let out = check(&["--pidfile", pidfile.to_str().unwrap()]);
        let line = status_line(&out);
        assert_exit(&out, 0);
        assert_eq!(of_line(&line).value("workers"), Some(3.0), "{}", text(&out));
        let got = of_line(&line).number("rss_total");
        assert_close("rss_total (--pidfile)", got, rss_total, &line);
    } else {
        skip(
            &format!("{TEST} (its --pidfile part)"),
            "the binary has no --pidfile",
        );
    }
    assert!(nginx.running(), "nginx died\n{}", nginx.log());
}
