//! Icinga 2 on many hosts: a master and an agent, two real `icinga2 daemon`s on 127.0.0.1, set
//! up as an operator would. The master (endpoint `master1`, zone `master`) holds the CA and
//! the config; the agent (endpoint and zone `web1`, parent `master`) has its own certificate
//! signed by that CA and accepts config and commands. `contrib/icinga2/check_workers.conf`
//! goes, as it ships, into the master's `zones.d/global-templates/` and reaches the agent by
//! Icinga's config sync; a Service in `zones.d/master/` with `command_endpoint` = the agent
//! runs check_workers there, and the master's REST API shows the result. Then the agent stops
//! and the master says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::icinga2::{icinga_defines, ICINGA2};
use super::{
    assert_every_label, assert_exit, contrib, free_port, port_open, read, ready_as_nagios, sub_dir,
    wait_for, Daemon,
};
use crate::fixture::cpu_heavy;
use crate::fixture::perfdata::Perfdata;
use crate::fixture::skip;
use crate::fixture::spawn::{install_binary, open_to_all, public_dir, unique, Spawned};

const CURL: &str = "/usr/bin/curl";

/// The master's and the agent's endpoint names; the agent's zone and Host are named like its
/// endpoint, as in the examples of check_workers.conf.
const MASTER: &str = "master1";
const AGENT: &str = "web1";

/// The multi-threaded libfaketime that `.ci/setup-daemons` installs (package faketime), under
/// the machine's multiarch directory.
fn libfaketime() -> Option<PathBuf> {
    fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
}

/// One Icinga 2 instance: its ConfigDir, with its DataDir, LogDir, CacheDir, SpoolDir and
/// InitRunDir below it (all the nagios user's), and the port of its API listener.
struct Node {
    name: &'static str,
    dir: PathBuf,
    port: u16,
}

impl Node {
    fn new(work: &Path, name: &'static str, nagios: (u32, u32)) -> Node {
        let dir = sub_dir(work, name, Some(nagios));
        for sub in ["data", "data/certs", "log", "cache", "spool", "run"] {
            sub_dir(&dir, sub, Some(nagios));
        }
        Node {
            name,
            dir,
            port: free_port(),
        }
    }

    /// [`icinga_defines`], and the zones.d of this node: without `-DZonesDir` Icinga reads
    /// the packaged /etc/icinga2/zones.d whatever ConfigDir says.
    fn defines(&self) -> Vec<String> {
        let mut defines = icinga_defines(&self.dir);
        defines.push(format!("-DZonesDir={}", self.dir.join("zones.d").display()));
        defines
    }

    fn certs(&self) -> PathBuf {
        self.dir.join("data/certs")
    }

    /// `icinga2 daemon` on this node's icinga2.conf, with `env` set.
    fn start(&self, what: &'static str, env: &[(&str, &Path)]) -> Daemon {
        let mut cmd = StdCommand::new(ICINGA2);
        cmd.arg("daemon")
            .arg("-c")
            .arg(self.dir.join("icinga2.conf"))
            .args(self.defines())
            .envs(env.iter().map(|(k, v)| (k, v.as_os_str())));
        Daemon::start(what, cmd, &self.dir.join("daemon.log"))
    }
}

/// `icinga2 pki ARGS` with the master's constants, so the CA lives in the master's DataDir
/// (`DataDir/ca`) as `icinga2 node wizard` puts it there.
fn pki(master: &Node, args: &[&str]) {
    let out = StdCommand::new(ICINGA2)
        .arg("pki")
        .args(args)
        .args(master.defines())
        .output()
        .unwrap();
    assert_exit(&out, 0);
}

/// A CA in the master's DataDir, and for each node a key and a certificate signed by it in
/// that node's `DataDir/certs/` (NAME.key, NAME.crt, ca.crt), where the ApiListener of Icinga
/// 2.8 and later looks for them.
fn make_certificates(master: &Node, nodes: &[&Node]) {
    pki(master, &["new-ca"]);
    let ca = master.dir.join("data/ca/ca.crt");
    for node in nodes {
        let certs = node.certs();
        let file = |ext: &str| certs.join(format!("{}.{ext}", node.name));
        let (key, csr, crt) = (file("key"), file("csr"), file("crt"));
        pki(
            master,
            &[
                "new-cert",
                "--cn",
                node.name,
                "--key",
                key.to_str().unwrap(),
                "--csr",
                csr.to_str().unwrap(),
            ],
        );
        pki(
            master,
            &[
                "sign-csr",
                "--csr",
                csr.to_str().unwrap(),
                "--cert",
                crt.to_str().unwrap(),
            ],
        );
        fs::copy(&ca, certs.join("ca.crt")).unwrap();
    }
}

/// The zones and endpoints, the same on both nodes (a zones.conf), except that only the
/// master knows where the agent listens: the master connects.
fn zones(agent_at: &str) -> String {
    format!(
        r#"object Endpoint "{MASTER}" {{ }}
object Zone "master" {{ endpoints = [ "{MASTER}" ] }}
object Endpoint "{AGENT}" {{ {agent_at} }}
object Zone "{AGENT}" {{ endpoints = [ "{AGENT}" ]; parent = "master" }}
object Zone "global-templates" {{ global = true }}
"#
    )
}

/// The master's REST API, read with curl over TLS checked against the test's CA (curl asks
/// for `master1`, which `--resolve` sends to 127.0.0.1: the name must match the certificate).
struct Api {
    port: u16,
    ca: PathBuf,
    password: String,
}

/// What the master shows of one Service of the agent's Host.
#[derive(Debug)]
struct Seen {
    state: f64,
    reachable: bool,
    output: String,
    perfdata: String,
    check_source: String,
    command: Vec<String>,
}

impl Api {
    /// curl on `path` of the API with `args` before it; the body of a 2xx answer, or None.
    fn curl(&self, path: &str, args: &[&str]) -> Option<Value> {
        let out = StdCommand::new(CURL)
            .args(["--silent", "--fail", "--max-time", "5", "--cacert"])
            .arg(&self.ca)
            .arg("--resolve")
            .arg(format!("{MASTER}:{}:127.0.0.1", self.port))
            .arg("--user")
            .arg(format!("root:{}", self.password))
            .args(["--header", "Accept: application/json"])
            .args(args)
            .arg(format!("https://{MASTER}:{}{path}", self.port))
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The Service `web1!service` as the master sees it, or None while the API does not answer
    /// or the Service has no check result yet.
    fn service(&self, service: &str) -> Option<Seen> {
        let answer = self.curl(
            &format!(
                "/v1/objects/services?service={AGENT}!{service}\
                 &attrs=state&attrs=last_reachable&attrs=last_check_result"
            ),
            &[],
        )?;
        let attrs = &answer["results"][0]["attrs"];
        let result = &attrs["last_check_result"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Seen {
            state: attrs["state"].as_f64()?,
            reachable: attrs["last_reachable"].as_bool()?,
            output: result["output"].as_str()?.to_string(),
            perfdata: strings(&result["performance_data"]).join(" "),
            check_source: result["check_source"].as_str()?.to_string(),
            command: strings(&result["command"]),
        })
    }

    /// Icinga Web's "Check now": the master runs the Service's check at once.
    fn check_now(&self, service: &str) {
        let body = serde_json::json!({
            "type": "Service",
            "filter": format!("host.name == \"{AGENT}\" && service.name == \"{service}\""),
            "force": true,
        });
        let _ = self.curl(
            "/v1/actions/reschedule-check",
            &["--request", "POST", "--data", &body.to_string()],
        );
    }

    /// Waits up to `timeout` for the Service to show what `want` accepts, asking every 5 s
    /// for a check now when `check_now`; else the last sight (None: no answer).
    fn wait(
        &self,
        service: &str,
        timeout: Duration,
        check_now: bool,
        want: impl Fn(&Seen) -> bool,
    ) -> Result<Seen, Option<Seen>> {
        let start = Instant::now();
        let mut asked = start;
        loop {
            let seen = self.service(service);
            if seen.as_ref().is_some_and(&want) {
                return Ok(seen.unwrap());
            }
            if start.elapsed() > timeout {
                return Err(seen);
            }
            if check_now && asked.elapsed() > Duration::from_secs(5) {
                self.check_now(service);
                asked = Instant::now();
            }
            thread::sleep(Duration::from_millis(400));
        }
    }
}

#[test]
fn icinga2_master_runs_the_check_on_an_agent() {
    const TEST: &str = "icinga2_master_runs_the_check_on_an_agent";
    let Some(nagios) = ready_as_nagios(TEST, &[ICINGA2, CURL]) else {
        return;
    };
    let Some(faketime) = libfaketime() else {
        skip(
            TEST,
            "libfaketime is missing (.ci/setup-daemons installs the faketime package)",
        );
        return;
    };
    let _serial = cpu_heavy();
    let work = public_dir(Some(nagios));
    let dir = work.path();
    let master = Node::new(dir, MASTER, nagios);
    let agent = Node::new(dir, AGENT, nagios);
    make_certificates(&master, &[&master, &agent]);

    // the agent has the binary in its PluginDir; the master has none, it never runs the check
    let plugins = sub_dir(dir, "plugins", None);
    let exe = install_binary(&plugins);
    let no_plugins = sub_dir(dir, "master-plugins", None);
    let state = sub_dir(dir, "state", Some(nagios));
    let name = unique("cwa");
    let mut workers = Spawned::new();
    workers.sleepers_as(&name, 3, nagios);

    // --- the master: the zones, the API with the user `icinga2 api setup` makes (here with
    // a password of the moment), the checker; the config of its zones in zones.d
    let password = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    fs::write(
        master.dir.join("icinga2.conf"),
        format!(
            r#"const PluginDir = "{no_plugins}"
const NodeName = "{MASTER}"
const ZoneName = "master"
include <itl>
{zones}
object ApiListener "api" {{
  bind_host = "127.0.0.1"
  bind_port = {port}
}}
object ApiUser "root" {{
  password = "{password}"
  permissions = [ "*" ]
}}
object CheckerComponent "checker" {{ }}
"#,
            no_plugins = no_plugins.display(),
            zones = zones(&format!("host = \"127.0.0.1\"; port = \"{}\"", agent.port)),
            port = master.port,
        ),
    )
    .unwrap();
    let global = sub_dir(&master.dir, "zones.d/global-templates", Some(nagios));
    let contrib_conf = contrib("icinga2/check_workers.conf");
    fs::copy(&contrib_conf, global.join("check_workers.conf")).unwrap();
    let master_zone = sub_dir(&master.dir, "zones.d/master", Some(nagios));
    // The Host and its services, as the examples of check_workers.conf write them, checked
    // every second; and the agent's health as Icinga's documentation sets it up: the master
    // checks the agent's zone (ITL cluster-zone), and the agent's services depend on it.
    fs::write(
        master_zone.join("web1.conf"),
        format!(
            r#"object Host "{AGENT}" {{
  check_command = "dummy"
  vars.agent_endpoint = name
}}
template Service "every-second" {{
  check_interval = 1s
  retry_interval = 1s
  max_check_attempts = 1
}}
apply Service "workers" {{
  import "every-second"
  check_command = "workers"
  command_endpoint = host.vars.agent_endpoint
  vars.workers_name = "{name}"
  vars.workers_interval = "0.2"
  vars.workers_state_dir = "{state}"
  assign where host.vars.agent_endpoint
}}
apply Service "agent-health" {{
  import "every-second"
  check_command = "cluster-zone"
  vars.cluster_zone = host.vars.agent_endpoint
  assign where host.vars.agent_endpoint
}}
apply Dependency "agent-health-check" to Service {{
  parent_service_name = "agent-health"
  states = [ OK ]
  disable_notifications = true
  assign where host.vars.agent_endpoint
  ignore where service.name == "agent-health"
}}
"#,
            state = state.display(),
        ),
    )
    .unwrap();

    // --- the agent: the same zones, the API accepting the master's config and commands, no
    // CheckCommand of its own
    fs::write(
        agent.dir.join("icinga2.conf"),
        format!(
            r#"const PluginDir = "{plugins}"
const NodeName = "{AGENT}"
const ZoneName = "{AGENT}"
include <itl>
{zones}
object ApiListener "api" {{
  bind_host = "127.0.0.1"
  bind_port = {port}
  accept_config = true
  accept_commands = true
}}
"#,
            plugins = plugins.display(),
            zones = zones(""),
            port = agent.port,
        ),
    )
    .unwrap();

    // The master's clock is libfaketime's, at the real time until the test steps it (see
    // below); the file is read at most once a second.
    let clock = dir.join("master-clock");
    fs::write(&clock, "+0\n").unwrap();
    open_to_all(&clock, None);
    let mut agent_daemon = agent.start("icinga2 agent", &[]);
    // the master connects at once to a listening agent, else only 10 s later
    assert!(
        wait_for(Duration::from_secs(20), || port_open(agent.port)),
        "the agent does not listen\n{}",
        agent_daemon.log()
    );
    let mut master_daemon = master.start(
        "icinga2 master",
        &[
            ("LD_PRELOAD", &faketime),
            ("FAKETIME_TIMESTAMP_FILE", &clock),
            ("FAKETIME_CACHE_DURATION", Path::new("1")),
            ("FAKETIME_DONT_FAKE_MONOTONIC", Path::new("1")),
        ],
    );
    let api = Api {
        port: master.port,
        ca: master.certs().join("ca.crt"),
        password,
    };
    let logs = |master: &Daemon, agent: &Daemon| format!("{}\n{}", master.log(), agent.log());

    // --- the agent's result on the master. Until the config sync has reached the agent (and
    // the agent has reloaded), its answer is "Check command 'workers' does not exist."; until
    // the first agent-health check, the dependency makes the agent's services unreachable. A
    // check sent while the agent reloads gets no answer, and Icinga waits the command's
    // timeout + 30 s (90 s) before the next one: the test asks for a check now, as an
    // operator would.
    let ok_line = format!("WORKERS OK - {name}: 3 workers, cpu ");
    let seen = api
        .wait("workers", Duration::from_secs(60), true, |s| {
            s.state == 0.0 && s.output.starts_with(&ok_line) && s.reachable
        })
        .unwrap_or_else(|last| {
            panic!(
                "the master shows no OK from the agent within 60 s: {last:?}\n{}",
                logs(&master_daemon, &agent_daemon)
            )
        });
    assert!(master_daemon.running() && agent_daemon.running());
    // the agent ran it: its name as the check source, its PluginDir and the Service's state dir
    assert_eq!(seen.check_source, AGENT, "{seen:?}");
    assert_eq!(
        seen.command.first(),
        Some(&exe.display().to_string()),
        "{seen:?}"
    );
    let state_arg = state.display().to_string();
    assert!(seen.command.contains(&state_arg), "{seen:?}");
    assert!(seen.perfdata.starts_with("workers=3;;1:;0; "), "{seen:?}");
    assert_every_label(Perfdata::new(&seen.perfdata), &format!("{seen:?}"));
    // the CheckCommand came by Icinga's config sync, byte for byte as it ships
    let synced = agent
        .dir
        .join("data/api/zones/global-templates/_etc/check_workers.conf");
    assert_eq!(read(&synced), read(&contrib_conf));
    // the tick file is the agent's, in the Service's state dir
    assert!(
        fs::read_dir(&state).unwrap().next().is_some(),
        "nothing in {}",
        state.display()
    );
    let health = api
        .service("agent-health")
        .expect("the agent-health service");
    assert_eq!(health.state, 0.0, "{health:?}");
    assert!(
        health
            .output
            .starts_with(&format!("Zone '{AGENT}' is connected.")),
        "{health:?}"
    );

    // --- the agent stops (TERM to its process group, KILL after 5 s, as the guard does)
    drop(agent_daemon);
    assert!(
        wait_for(Duration::from_secs(5), || !port_open(agent.port)),
        "the agent still listens"
    );
    // The agent's health turns CRITICAL within seconds and the agent's services become
    // unreachable.
    let not_connected = format!("Zone '{AGENT}' is not connected.");
    api.wait("agent-health", Duration::from_secs(20), false, |s| {
        s.state == 2.0 && s.output.starts_with(&not_connected)
    })
    .unwrap_or_else(|last| panic!("agent-health: {last:?}\n{}", master_daemon.log()));
    let seen = api
        .wait("workers", Duration::from_secs(10), false, |s| !s.reachable)
        .unwrap_or_else(|last| panic!("still reachable: {last:?}\n{}", master_daemon.log()));
    // The workers service itself still shows the agent's last OK: in the first 5 minutes
    // after the master started, Icinga 2.13 does not turn a check whose command endpoint is
    // not connected UNKNOWN (its cold-start window, lib/icinga/checkable-check.cpp).
    assert_eq!(seen.state, 0.0, "{seen:?}");
    assert!(seen.output.starts_with(&ok_line), "{seen:?}");

    // After the window, it does. Rather than wait 5 minutes, the test steps the master's
    // clock 6 minutes forward (libfaketime, as NTP would step it); the agent is not involved.
    fs::write(&clock, "+360s\n").unwrap();
    let unknown = format!("Remote Icinga instance '{AGENT}' is not connected to '{MASTER}'");
    let seen = api
        .wait("workers", Duration::from_secs(20), false, |s| {
            s.state == 3.0 && s.output == unknown
        })
        .unwrap_or_else(|last| {
            panic!(
                "workers after the window: {last:?}\n{}",
                master_daemon.log()
            )
        });
    assert!(!seen.reachable, "{seen:?}");
    // the master's own verdict: no command ran, no perfdata
    assert!(
        seen.command.is_empty() && seen.perfdata.is_empty(),
        "{seen:?}"
    );
    assert!(master_daemon.running(), "{}", master_daemon.log());
}
