//! The accept queue of real services (issue 20): nginx with `backlog=64` on 127.0.0.1 and on
//! [::1], php-fpm on a unix socket with `listen.backlog = 16`, their workers stopped with
//! SIGSTOP while clients connect, so the connections wait in the queue; then continued, so it
//! empties. And a run as an unprivileged user, which sees the queue only with `--listen`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use super::nginx::{pids_named, ppid_of};
use super::{assert_exit, free_port, free_port_on, ready, text, wait_for, Daemon};
use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::{install_binary, public_dir};
use crate::fixture::{cpu_heavy, real_check, setpriv_available, skip, status_line, NOBODY};

const NGINX: &str = "/usr/sbin/nginx";
const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";

/// Workers stopped with SIGSTOP, continued when dropped (also when an assertion fails, before
/// the daemon's guard stops the group: a stopped process would not see its TERM).
struct Stopped(Vec<u32>);

impl Stopped {
    fn new(pids: Vec<u32>) -> Stopped {
        for pid in &pids {
            signal_group_member(*pid, "STOP");
        }
        Stopped(pids)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for pid in &self.0 {
            signal_group_member(*pid, "CONT");
        }
    }
}

fn signal_group_member(pid: u32, sig: &str) {
    let _ = StdCommand::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The children of `master` named `comm`, once there are `count` of them.
fn children(master: u32, comm: &str, count: usize) -> Option<Vec<u32>> {
    let mut found = Vec::new();
    let up = wait_for(Duration::from_secs(10), || {
        found = pids_named(comm)
            .into_iter()
            .filter(|&p| ppid_of(p) == Some(master))
            .collect();
        found.len() == count
    });
    up.then_some(found)
}

/// The check on the real /proc, measuring at once, keeping state in `state`.
fn check(state: &Path, args: &[&str]) -> Output {
    real_check(state)
        .args(args)
        .args(["--interval", "0"])
        .output()
        .unwrap()
}

/// `queue`, `queue_max`, `queue_pct` of a run's perfdata.
fn queue_of(out: &Output) -> [Option<f64>; 3] {
    let line = status_line(out);
    ["queue", "queue_max", "queue_pct"].map(|label| of_line(&line).value(label))
}

/// nginx, 2 workers, listening on `host` (`127.0.0.1` or `[::1]`) and a free port with a
/// backlog of 64.
fn start_nginx(dir: &Path, host: &str, port: u16) -> Daemon {
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\nuser www-data;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             server {{ listen {host}:{port} backlog=64; location / {{ return 200 \"ok\\n\"; }} }}\n\
             }}\n"
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(NGINX);
    cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
    cmd.arg("-e").arg(dir.join("error.log"));
    Daemon::start("nginx", cmd, &dir.join("nginx.out"))
}

/// The nginx test on `host`, whose port `bind` finds free.
fn nginx_queue(test: &str, host: &str, bind: &str) {
    if !ready(test, &[NGINX]) {
        return;
    }
    let _serial = cpu_heavy();
    let port = free_port_on(bind);
    let work = public_dir(None);
    let dir = work.path();
    let nginx = start_nginx(dir, host, port);
    let master = nginx.pid();
    let connect = || TcpStream::connect(format!("{host}:{port}"));
    let workers = children(master, "nginx", 2)
        .filter(|_| wait_for(Duration::from_secs(10), || connect().is_ok()));
    let Some(workers) = workers else {
        panic!(
            "nginx did not start 2 workers\n{}",
            nginx.log_and(&dir.join("error.log"))
        );
    };
    let state = dir.join("state");
    let ppid = master.to_string();
    let listen = format!("{host}:{port}");

    // idle: nothing waits
    let out = check(&state, &["--ppid", &ppid, "-v"]);
    assert_exit(&out, 0);
    assert_eq!(
        queue_of(&out),
        [Some(0.0), Some(64.0), Some(0.0)],
        "{}",
        text(&out)
    );
    let socket_line = format!("listen {listen} queue 0/64");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&socket_line),
        "{}",
        text(&out)
    );

    // workers stopped, 20 clients connected: they wait in the queue
    let stopped = Stopped::new(workers);
    let clients: Vec<TcpStream> = (0..20).map(|_| connect().unwrap()).collect();
    let out = check(&state, &["--ppid", &ppid, "-c", "queue=10", "-v"]);
    assert_exit(&out, 2);
    let line = status_line(&out);
    assert!(line.contains(", queue 20/64 > 10 |"), "{}", text(&out));
    assert_eq!(
        queue_of(&out),
        [Some(20.0), Some(64.0), Some(31.25)],
        "{}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("listen {listen} queue 20/64")));
    // the same by --listen, as the address and as any address on the port
    for named in [listen.clone(), format!("*:{port}")] {
        let out = check(&state, &["--ppid", &ppid, "--listen", &named]);
        assert_eq!(
            queue_of(&out),
            [Some(20.0), Some(64.0), Some(31.25)],
            "{named}: {}",
            text(&out)
        );
    }
    // JSON carries the socket at -v
    let out = check(&state, &["--ppid", &ppid, "--format", "json", "-v"]);
    let json = String::from_utf8_lossy(&out.stdout);
    let socket = format!(r#""sockets":[{{"limit":64,"listen":"{listen}","queue":20}}]"#);
    assert!(json.contains(&socket), "{json}");

    // continued: the workers accept them all
    drop(stopped);
    let mut last = None;
    let emptied = wait_for(Duration::from_secs(10), || {
        let out = check(&state, &["--ppid", &ppid, "-c", "queue=10"]);
        let done = out.status.code() == Some(0) && queue_of(&out)[0] == Some(0.0);
        last = Some(out);
        done
    });
    assert!(emptied, "{}", text(last.as_ref().unwrap()));
    drop(clients);

    // a --listen that names no listening socket: UNKNOWN, saying so and what is on the port
    let other = format!("{host}:{}", if port == 65535 { 1 } else { port + 1 });
    let out = check(&state, &["--ppid", &ppid, "--listen", &other]);
    assert_exit(&out, 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("WORKERS UNKNOWN - children of"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "queue: --listen {other} names no listening socket\n"
        )),
        "{stdout}"
    );
    assert_eq!(
        queue_of(&out),
        [None, None, None],
        "left out, not 0: {stdout}"
    );
    drop(nginx);
}

#[test]
fn nginx_accept_queue_on_ipv4() {
    nginx_queue("nginx_accept_queue_on_ipv4", "127.0.0.1", "127.0.0.1:0");
}

#[test]
fn nginx_accept_queue_on_ipv6() {
    const TEST: &str = "nginx_accept_queue_on_ipv6";
    if TcpListener::bind("[::1]:0").is_err() {
        skip(TEST, "no IPv6 loopback ([::1]) here");
        return;
    }
    nginx_queue(TEST, "[::1]", "[::1]:0");
}

/// php-fpm8.2 with a static pool of 2 children on a unix socket with a backlog of 16.
fn start_php_fpm(dir: &Path) -> Daemon {
    let d = dir.display();
    let conf = dir.join("php-fpm.conf");
    fs::write(
        &conf,
        format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\
             [www]\nuser = www-data\ngroup = www-data\nlisten = {d}/fpm.sock\n\
             listen.backlog = 16\nlisten.mode = 0666\npm = static\npm.max_children = 2\n"
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(PHP_FPM);
    cmd.args(["-n", "-F", "-y"]).arg(&conf);
    Daemon::start("php-fpm", cmd, &dir.join("fpm.out"))
}

#[test]
fn php_fpm_accept_queue_on_a_unix_socket() {
    const TEST: &str = "php_fpm_accept_queue_on_a_unix_socket";
    if !ready(TEST, &[PHP_FPM]) {
        return;
    }
    let _serial = cpu_heavy();
    let work = public_dir(None);
    let dir = work.path();
    let fpm = start_php_fpm(dir);
    let master = fpm.pid();
    let sock = dir.join("fpm.sock");
    let Some(children) = children(master, "php-fpm8.2", 2)
        .filter(|_| wait_for(Duration::from_secs(10), || sock.exists()))
    else {
        panic!(
            "php-fpm did not start 2 children\n{}",
            fpm.log_and(&dir.join("fpm.log"))
        );
    };
    let state = dir.join("state");
    let ppid = master.to_string();
    let out = check(&state, &["--ppid", &ppid]);
    assert_exit(&out, 0);
    assert_eq!(
        queue_of(&out),
        [Some(0.0), Some(16.0), Some(0.0)],
        "{}",
        text(&out)
    );

    let stopped = Stopped::new(children);
    let clients: Vec<UnixStream> = (0..10)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let out = check(&state, &["--ppid", &ppid, "-w", "queue_pct=50", "-v"]);
    assert_exit(&out, 1);
    assert_eq!(
        queue_of(&out),
        [Some(10.0), Some(16.0), Some(62.5)],
        "{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("listen {} queue 10/16\n", sock.display())),
        "{stdout}"
    );
    let path = sock.to_str().unwrap();
    let out = check(&state, &["--ppid", &ppid, "--listen", path]);
    assert_eq!(
        queue_of(&out),
        [Some(10.0), Some(16.0), Some(62.5)],
        "{}",
        text(&out)
    );
    drop(stopped);
    drop(clients);
    drop(fpm);
}

/// The check run as `nobody`, who may list the listening sockets but not read the fds of
/// nginx's root master and www-data workers. No mount is involved, so no namespace either.
fn as_nobody(exe: &Path, state: &Path, args: &[&str]) -> Output {
    StdCommand::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(exe)
        .arg("--state-dir")
        .arg(state)
        .args(["--interval", "0"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn unprivileged_the_queue_needs_listen() {
    const TEST: &str = "unprivileged_the_queue_needs_listen";
    if !ready(TEST, &[NGINX]) {
        return;
    }
    if !setpriv_available() {
        skip(TEST, "needs setpriv");
        return;
    }
    let _serial = cpu_heavy();
    let port = free_port();
    let work = public_dir(None);
    let dir = work.path();
    let nginx = start_nginx(dir, "127.0.0.1", port);
    let master = nginx.pid();
    let up = children(master, "nginx", 2).is_some_and(|_| {
        wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
    });
    assert!(
        up,
        "nginx did not start\n{}",
        nginx.log_and(&dir.join("error.log"))
    );
    let exe = install_binary(dir);
    let state = dir.join("nobody-state");
    fs::create_dir(&state).unwrap();
    chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let ppid = master.to_string();

    // without --listen: left out, one note line naming --listen (its detail at -v)
    let out = as_nobody(&exe, &state, &["--ppid", &ppid]);
    assert_exit(&out, 0);
    assert_eq!(queue_of(&out), [None, None, None], "{}", text(&out));
    let notes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("queue"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        notes,
        [
            "queue: left out, the service's fds are not readable as this user; name its sockets \
          with --listen ADDR:PORT or --listen PATH"
        ],
        "{}",
        text(&out)
    );
    let out = as_nobody(&exe, &state, &["--ppid", &ppid, "-v"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("queue: the fds of 3 of the service's processes"),
        "{stdout}"
    );

    // --listen none: a service that listens on nothing; nothing measured, nothing said
    let out = as_nobody(&exe, &state, &["--ppid", &ppid, "--listen", "none", "-vv"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("queue"), "{stdout}");

    // with --listen: the queue, for any user
    let listen = format!("127.0.0.1:{port}");
    let out = as_nobody(&exe, &state, &["--ppid", &ppid, "--listen", &listen]);
    assert_exit(&out, 0);
    assert_eq!(
        queue_of(&out),
        [Some(0.0), Some(64.0), Some(0.0)],
        "{}",
        text(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    drop(nginx);
}

/// A `--listen` that is no address, port or path is a usage error: UNKNOWN, one line.
#[test]
fn a_malformed_listen_is_a_usage_error() {
    let state = crate::fixture::state_dir();
    for bad in [
        "localhost:80",
        "127.0.0.1",
        "*:0",
        "php.sock",
        "[fe80::1%2]:80",
    ] {
        let out = check(state.path(), &["-n", "nginx", "--listen", bad]);
        assert_exit(&out, 3);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "WORKERS UNKNOWN - --listen {bad}: not ADDR:PORT, [ADDR6]:PORT, *:PORT, /PATH \
                 or @NAME\n"
            )
        );
    }
}
