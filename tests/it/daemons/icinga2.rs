//! Icinga 2: `icinga2 daemon -C` on `contrib/icinga2/check_workers.conf` with a Service that
//! sets every variable and the uncommented examples, then the daemon itself running the check
//! every second: its PerfdataWriter file, the command lines it built, and (with `influxd`, see
//! [`super::influxdb`]) the points its InfluxdbWriter wrote.

use std::fs;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::Duration;

use super::influxdb::{assert_dashboard_shows_icinga_points, icinga_writer, start_influxd};
use super::{
    assert_every_label, assert_exit, contrib, missing_label, read, ready_as_nagios, sub_dir, text,
    wait_for, Daemon,
};
use crate::fixture::perfdata::Perfdata;
use crate::fixture::spawn::{install_binary, public_dir, unique, Spawned};
use crate::fixture::{binary, command, cpu_heavy};

pub(super) const ICINGA2: &str = "/usr/sbin/icinga2";

/// The `-D` constants that keep Icinga 2 in `dir` and running as nagios.
pub(super) fn icinga_defines(dir: &Path) -> Vec<String> {
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
        // --every and --count make a watch that never ends on its own: a terminal's, never a
        // scheduled check's
        let not_for_a_check = ["help", "version", "every", "count"];
        if long.is_empty() || not_for_a_check.contains(&long.as_str()) {
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
  vars.workers_listen = [ "127.0.0.1:80", "/run/php/php8.2-fpm.sock" ]
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
    let influx_writer = influx
        .as_ref()
        .map(|(_, port)| icinga_writer(*port))
        .unwrap_or_default();
    // --extra-opts: a critical threshold that only the ini file gives
    let ini = plugins.join("plugins.ini");
    fs::write(&ini, "[every]\ncritical = rss_total=1GiB\n").unwrap();
    let perf = dir.join("perf");
    let run = dir.join("icinga2.conf");
    let ppid = std::process::id();
    // a listening socket for --listen, so the runs carry the queue metrics (the sleepers hold
    // none); open until the end of the test
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen_port = listener.local_addr().unwrap().port();
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
  vars.workers_listen = "127.0.0.1:{listen_port}"
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
  vars.workers_listen = [ "127.0.0.1:{listen_port}", "*:{listen_port}" ]
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
        "--listen",
        &format!("127.0.0.1:{listen_port}"),
        "--listen",
        &format!("*:{listen_port}"),
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

    // --- InfluxDB: Icinga parsed our perfdata into points, and the dashboard's queries find them
    if let Some((_influxd, port)) = influx {
        assert_dashboard_shows_icinga_points(port, icinga);
    }
    drop(listener);
}

/// The indented code blocks of the README's "Icinga 2" section, in order.
fn readme_icinga2_snippets() -> String {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n### Icinga 2\n")
        .expect("an Icinga 2 section");
    let end = start
        + readme[start..]
            .find("\n### Nagios")
            .expect("a section after it");
    readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(|l| format!("{l}\n"))
        .collect()
}

// Regression (issue 22, item 3): the README's `apply Service` assigned where
// `"nginx" in host.vars.services` but never set that variable, so `icinga2 daemon -C` warned
// that it did not match anywhere. The README's own snippets, with the contrib CheckCommand,
// must validate and make the Service.
#[test]
fn readme_icinga2_snippets_validate_and_match() {
    const TEST: &str = "readme_icinga2_snippets_validate_and_match";
    let Some(nagios) = ready_as_nagios(TEST, &[ICINGA2]) else {
        return;
    };
    let work = public_dir(Some(nagios));
    let dir = work.path();
    for sub in ["data", "log", "cache", "spool", "run"] {
        sub_dir(dir, sub, Some(nagios));
    }
    let snippets = readme_icinga2_snippets();
    assert!(snippets.contains("object Host "), "{snippets}");
    fs::write(dir.join("readme.conf"), &snippets).unwrap();
    let validate = dir.join("validate.conf");
    fs::write(
        &validate,
        format!(
            "const PluginDir = \"/usr/lib/nagios/plugins\"\nconst NodeName = \"testnode\"\n\
             const ZoneName = \"master\"\ninclude <itl>\ninclude <plugins>\ninclude \"{}\"\n\
             include \"{}\"\n",
            contrib("icinga2/check_workers.conf").display(),
            dir.join("readme.conf").display()
        ),
    )
    .unwrap();
    let out = StdCommand::new(ICINGA2)
        .args(["daemon", "-C", "-c"])
        .arg(&validate)
        .args(icinga_defines(dir))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let said = text(&out);
    assert!(said.contains("Instantiated 1 Service."), "{said}");
    assert!(!said.contains("does not match anywhere"), "{said}");
}
