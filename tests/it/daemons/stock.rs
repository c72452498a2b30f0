//! Every contrib example is OK on the stock Debian service it names (issue 22, item 1: the NRPE
//! line for apache2 warned on a healthy server, as Debian's event MPM starts 2 children where
//! it asked for 3). apache2, nginx and php-fpm8.2 run with the configuration their packages
//! ship, changed only where a test must: they listen on 127.0.0.1 and a free port (php-fpm on a
//! socket in a temporary directory) and keep their pid and log files there. Then each example
//! of contrib/ that names one of them (the NRPE command lines, the Nagios services, the
//! Icinga 2 services) runs as the nagios user, twice: both runs exit 0, and the second, with a
//! baseline, prints its status line and at most the one short note on the accept queue, which
//! the nagios user cannot find without `--listen`.

use std::fs;
use std::path::Path;
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use super::{contrib, free_port, port_open, read, ready_as_nagios, wait_for, Daemon};
use crate::fixture::spawn::{install_binary, public_dir};
use crate::fixture::{command, cpu_heavy, skip, stdout_of};

const APACHE: &str = "/usr/sbin/apache2";
const NGINX: &str = "/usr/sbin/nginx";
const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";

/// One example: where it comes from, and the options it gives the check.
#[derive(Debug, Clone)]
struct Example {
    origin: String,
    args: Vec<String>,
}

/// `command[NAME]=/usr/lib/nagios/plugins/check_workers ARGS` of contrib/nrpe.
fn nrpe_examples() -> Vec<Example> {
    read(&contrib("nrpe/check_workers.cfg"))
        .lines()
        .filter_map(|l| l.strip_prefix("command["))
        .filter_map(|l| l.split_once("]="))
        .map(|(name, line)| Example {
            origin: format!("nrpe {name}"),
            args: line.split_whitespace().skip(1).map(String::from).collect(),
        })
        .collect()
}

/// The commented `check_command check_workers!...` services of contrib/nagios, through the
/// two command definitions there (`-n '$ARG1$' $ARG2$`, `-n '$ARG1$' -u '$ARG2$' $ARG3$`).
fn nagios_examples() -> Vec<Example> {
    read(&contrib("nagios/commands.cfg"))
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("check_command")
        })
        .map(|rest| {
            let parts: Vec<&str> = rest.trim().split('!').collect();
            let mut args = vec!["-n".to_string(), parts[1].to_string()];
            let rest = match parts[0] {
                "check_workers_user" => {
                    args.extend(["-u".to_string(), parts[2].to_string()]);
                    parts[3]
                }
                _ => parts[2],
            };
            args.extend(rest.split_whitespace().map(String::from));
            Example {
                origin: format!("nagios {}", parts[0]),
                args,
            }
        })
        .collect()
}

/// The commented `apply Service` examples of contrib/icinga2 that run the `workers`
/// CheckCommand, as its arguments turn their variables into options. One that selects by
/// `workers_unit` needs the unit systemd runs the service in, which a test's daemon is not.
fn icinga2_examples() -> Vec<Example> {
    let conf = read(&contrib("icinga2/check_workers.conf"));
    let mut examples = Vec::new();
    for block in conf.split("apply Service ").skip(1) {
        let block = block.split("\n * }").next().unwrap();
        let vars: Vec<(&str, &str)> = block
            .lines()
            .filter_map(|l| {
                l.trim_start_matches(" *")
                    .trim()
                    .strip_prefix("vars.workers_")
            })
            .filter_map(|l| l.split_once(" = "))
            .collect();
        if !block.contains("check_command = \"workers\"") || vars.iter().any(|(k, _)| *k == "unit")
        {
            continue;
        }
        let mut args = Vec::new();
        for (key, value) in vars {
            let values: Vec<String> = value
                .trim_matches(|c| c == '[' || c == ']' || c == ' ')
                .split(',')
                .map(|v| v.trim().trim_matches('"').to_string())
                .collect();
            let option = match key {
                "name" => "-n",
                "user" => "-u",
                "warning" => "-w",
                "critical" => "-c",
                "verbose" if values == ["1"] => {
                    args.push("-v".to_string());
                    continue;
                }
                other => panic!("an example's vars.workers_{other} is not mapped here"),
            };
            for v in values {
                args.extend([option.to_string(), v]);
            }
        }
        let name = block.split('"').nth(1).unwrap();
        examples.push(Example {
            origin: format!("icinga2 {name}"),
            args,
        });
    }
    examples
}

/// `dir` with a copy of the package's configuration in `etc` (links kept as links).
fn copy_config(from: &str, dir: &Path) {
    let status = StdCommand::new("cp")
        .args(["-a", from])
        .arg(dir.join("etc"))
        .status()
        .unwrap();
    assert!(status.success());
    fs::create_dir_all(dir.join("log")).unwrap();
}

/// Debian's nginx.conf as shipped (worker_processes auto, user www-data), its default site
/// replaced by one on 127.0.0.1.
fn stock_nginx(dir: &Path) -> Daemon {
    copy_config("/etc/nginx", dir);
    let d = dir.display();
    let conf = read(&dir.join("etc/nginx.conf"))
        .replace("/etc/nginx/", &format!("{d}/etc/"))
        .replace("/run/nginx.pid", &format!("{d}/nginx.pid"))
        .replace("/var/log/nginx/", &format!("{d}/log/"));
    fs::write(dir.join("etc/nginx.conf"), conf).unwrap();
    let sites = dir.join("etc/sites-enabled");
    fs::remove_dir_all(&sites).unwrap();
    fs::create_dir(&sites).unwrap();
    let port = free_port();
    fs::write(
        sites.join("test"),
        format!("server {{ listen 127.0.0.1:{port}; return 200 \"ok\\n\"; }}\n"),
    )
    .unwrap();
    let mut cmd = StdCommand::new(NGINX);
    cmd.arg("-c").arg(dir.join("etc/nginx.conf"));
    cmd.args(["-g", "daemon off;"]);
    let nginx = Daemon::start("nginx", cmd, &dir.join("nginx.out"));
    assert!(
        wait_for(Duration::from_secs(10), || port_open(port)),
        "nginx\n{}",
        nginx.log_and(&dir.join("log/error.log"))
    );
    nginx
}

/// Debian's apache2.conf as shipped (the event MPM, StartServers 2), listening on 127.0.0.1;
/// the paths envvars would give point into `dir`.
fn stock_apache(dir: &Path) -> Daemon {
    copy_config("/etc/apache2", dir);
    let port = free_port();
    fs::write(
        dir.join("etc/ports.conf"),
        format!("Listen 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let sites = dir.join("etc/sites-enabled");
    fs::remove_dir_all(&sites).unwrap();
    fs::create_dir(&sites).unwrap();
    for sub in ["run", "lock"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mut cmd = StdCommand::new(APACHE);
    cmd.arg("-d").arg(dir.join("etc")).arg("-DFOREGROUND");
    cmd.env("APACHE_RUN_USER", "www-data")
        .env("APACHE_RUN_GROUP", "www-data")
        .env("APACHE_PID_FILE", dir.join("apache2.pid"))
        .env("APACHE_RUN_DIR", dir.join("run"))
        .env("APACHE_LOCK_DIR", dir.join("lock"))
        .env("APACHE_LOG_DIR", dir.join("log"));
    let apache = Daemon::start("apache2", cmd, &dir.join("apache2.out"));
    assert!(
        wait_for(Duration::from_secs(10), || port_open(port)),
        "apache2\n{}",
        apache.log_and(&dir.join("log/error.log"))
    );
    apache
}

/// Debian's php-fpm.conf and www pool as shipped (pm dynamic, 2 children to start, as
/// www-data), its socket, pid and log in `dir`.
fn stock_php_fpm(dir: &Path) -> Daemon {
    copy_config("/etc/php/8.2/fpm", dir);
    let d = dir.display();
    let conf = read(&dir.join("etc/php-fpm.conf"))
        .replace("/run/php/php8.2-fpm.pid", &format!("{d}/php-fpm.pid"))
        .replace("/var/log/php8.2-fpm.log", &format!("{d}/log/php-fpm.log"))
        .replace("/etc/php/8.2/fpm/", &format!("{d}/etc/"));
    fs::write(dir.join("etc/php-fpm.conf"), conf).unwrap();
    let pool = dir.join("etc/pool.d/www.conf");
    let socket = dir.join("php-fpm.sock");
    let www = read(&pool).replace("/run/php/php8.2-fpm.sock", socket.to_str().unwrap());
    fs::write(&pool, www).unwrap();
    let mut cmd = StdCommand::new(PHP_FPM);
    cmd.arg("-F").arg("-y").arg(dir.join("etc/php-fpm.conf"));
    let fpm = Daemon::start("php-fpm8.2", cmd, &dir.join("php-fpm.out"));
    assert!(
        wait_for(Duration::from_secs(10), || socket.exists()),
        "php-fpm\n{}",
        fpm.log_and(&dir.join("log/php-fpm.log"))
    );
    fpm
}

/// Processes named `comm` on the host.
fn running(comm: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == comm)
        .count()
}

/// The check as the nagios user with `args` and its own state dir.
fn as_nagios(exe: &Path, (uid, gid): (u32, u32), args: &[String], state: &Path) -> Output {
    let mut cmd = command("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(exe)
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .current_dir("/");
    cmd.output().unwrap()
}

#[test]
fn every_contrib_example_is_ok_on_the_stock_debian_service() {
    const TEST: &str = "every_contrib_example_is_ok_on_the_stock_debian_service";
    let Some(nagios) = ready_as_nagios(TEST, &[APACHE, NGINX, PHP_FPM, "/usr/bin/setpriv"]) else {
        return;
    };
    let _serial = cpu_heavy();
    let foreign: Vec<&str> = ["apache2", "nginx", "php-fpm8.2"]
        .into_iter()
        .filter(|comm| running(comm) > 0)
        .collect();
    if !foreign.is_empty() {
        skip(
            TEST,
            &format!("{foreign:?} already running; its processes would be counted"),
        );
        return;
    }
    let work = public_dir(None);
    let dir = work.path();
    let exe = install_binary(dir);
    let daemons: Vec<Daemon> = [
        ("nginx", stock_nginx as fn(&Path) -> Daemon),
        ("apache2", stock_apache),
        ("php-fpm", stock_php_fpm),
    ]
    .into_iter()
    .map(|(name, start)| start(&super::sub_dir(dir, name, None)))
    .collect();
    // the stock servers start their children a moment after they listen
    std::thread::sleep(Duration::from_secs(1));
    let examples: Vec<Example> = [nrpe_examples(), nagios_examples(), icinga2_examples()].concat();
    assert!(examples.len() >= 7, "{examples:?}");
    let states: Vec<_> = (0..examples.len())
        .map(|i| super::sub_dir(dir, &format!("state{i}"), Some(nagios)))
        .collect();
    for (example, state) in examples.iter().zip(&states) {
        let first = as_nagios(&exe, nagios, &example.args, state);
        assert_eq!(
            first.status.code(),
            Some(0),
            "{example:?}: {}",
            stdout_of(&first)
        );
    }
    // a second's baseline for the workers' CPU, as a scheduled check has
    std::thread::sleep(Duration::from_millis(1100));
    for (example, state) in examples.iter().zip(&states) {
        let second = as_nagios(&exe, nagios, &example.args, state);
        let text = stdout_of(&second);
        assert_eq!(second.status.code(), Some(0), "{example:?}: {text}");
        if !example.args.iter().any(|a| a == "-v") {
            // what nagios cannot read by design is one short line at most: the accept queue,
            // which needs --listen to name the sockets of a service it may not look into
            let notes: Vec<&str> = text.lines().skip(1).collect();
            let queue = "queue: left out, the service's fds are not readable as this user";
            assert!(
                notes.is_empty() || (notes.len() == 1 && notes[0].starts_with(queue)),
                "{example:?}: notes a healthy run must not have: {text}"
            );
        }
        eprintln!("{}: {}", example.origin, text.lines().next().unwrap());
    }
    drop(daemons);
}
