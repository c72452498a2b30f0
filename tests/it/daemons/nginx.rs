//! nginx with 3 workers: the count, the master and the memory figures against /proc.

use std::fs;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::Duration;

use super::{assert_exit, free_port, port_open, read, ready, text, wait_for, Daemon};
use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::public_dir;
use crate::fixture::{binary, command, cpu_heavy, real_check, skip, status_line};

const NGINX: &str = "/usr/sbin/nginx";

/// Pids of processes named `comm`.
pub(super) fn pids_named(comm: &str) -> Vec<u32> {
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

pub(super) fn ppid_of(pid: u32) -> Option<u32> {
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
    // taken before looking for another nginx: the accept-queue tests run theirs under it
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
