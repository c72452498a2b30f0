//! NRPE: `nrpe` on 127.0.0.1 and a free port with a generated config that includes a copy of
//! `contrib/nrpe/check_workers.cfg`, called with `check_nrpe`.

use std::fs;
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use super::{
    assert_every_label, assert_exit, contrib, free_port, port_open, read, ready_as_nagios, text,
    wait_for, Daemon,
};
use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::{install_binary, public_dir, unique, Spawned};
use crate::fixture::{cpu_heavy, status_line};

const NRPE: &str = "/usr/sbin/nrpe";
const CHECK_NRPE: &str = "/usr/lib/nagios/plugins/check_nrpe";

/// Where the contrib files put the binary.
const INSTALLED: &str = "/usr/lib/nagios/plugins/check_workers";

/// `text` with `from` replaced, asserting it was there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found");
    text.replace(from, to)
}

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
