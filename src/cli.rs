//! Options step: the command line as typed (clap) becomes a [`Config`] in which every
//! conversion that can fail (ranges, users, paths) has already happened.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::{ArgAction, Parser};

use crate::select::{NameFilter, Selector};
use crate::state::StateDir;
use crate::thresholds::Thresholds;

const EXAMPLES: &str = "\
Examples:
  check_workers -n apache2 -w 80 -c 95
      warn above 80 % CPU (all workers together, 100 = one core), critical above 95 %
  check_workers -n nginx -w workers=2: -c workers=1: -w rss=300MiB -c cpu=150
      warn below 2 workers, critical below 1; warn when the average RSS exceeds 300 MiB
  check_workers -n php-fpm8.2 -u www-data -v
      only www-data's processes, one line per worker

Ranges follow the Nagios plugin guidelines: N (alert outside 0..N), N: (below N),
~:N (above N), N:M (outside N..M), @N:M (inside N..M). Metrics: workers, cpu,
cpu_user, cpu_system (percent of one core), rss, vms (average per worker), rss_max,
rss_total (bytes; units K, M, G, T are powers of 1024). With no -c workers=..., no
workers at all is CRITICAL.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.";

/// The options as the operator typed them.
#[derive(Debug, Parser)]
#[command(
    name = "check_workers",
    version,
    about = "Nagios/Icinga check of a service's worker processes: count, CPU over the \
             interval since the last check, and memory.",
    after_help = EXAMPLES,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Args {
    /// Command name of the workers, as `ps -o comm` shows it (names longer than 15 bytes are
    /// matched against the executable or argv[0])
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    name: Option<String>,

    /// Only processes of this user (name or numeric uid; real uid)
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,

    /// Count the master process (the matched parent of the workers) as a worker too
    #[arg(long = "include-master")]
    include_master: bool,

    /// Warning threshold [METRIC=]RANGE; a bare RANGE is for cpu; repeatable
    #[arg(short = 'w', long = "warning", value_name = "[METRIC=]RANGE", action = ArgAction::Append, allow_hyphen_values = true)]
    warning: Vec<String>,

    /// Critical threshold [METRIC=]RANGE; a bare RANGE is for cpu; repeatable
    #[arg(short = 'c', long = "critical", value_name = "[METRIC=]RANGE", action = ArgAction::Append, allow_hyphen_values = true)]
    critical: Vec<String>,

    /// When there is no usable tick file, measure CPU over this many seconds within the run
    /// (fractions allowed); 0 leaves CPU out of such a run
    #[arg(long = "interval", value_name = "SECONDS", default_value = "1")]
    interval: f64,

    /// Directory for tick files [default: $MP_STATE_PATH/<euid>/check_workers, else
    /// /var/tmp/check_workers/<euid>]
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Give up with UNKNOWN after this many seconds
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        default_value = "10"
    )]
    timeout: u64,

    /// More output: -v one line per worker
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,

    /// Read this directory instead of /proc (for tests with fixture trees)
    #[arg(
        long = "proc-root",
        value_name = "DIR",
        hide = true,
        default_value = "/proc"
    )]
    proc_root: PathBuf,

    /// Print help
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,

    /// Print version
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
}

/// Everything a run needs, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub selector: Selector,
    /// how the output names the service (`nginx`, or `user www-data`)
    pub label: String,
    pub thresholds: Thresholds,
    /// in-run measurement when there is no baseline; zero disables it
    pub interval: Duration,
    pub state_dir: StateDir,
    pub timeout: Duration,
    pub verbosity: u8,
    pub proc_root: PathBuf,
    /// effective uid, which owns the state dir
    pub euid: u32,
}

/// What to do when the command line does not lead to a check: print `text` and exit with
/// `code` (always 3, as the plugin guidelines ask even for --help and --version).
#[derive(Debug)]
pub struct EarlyExit {
    pub text: String,
    pub code: i32,
}

/// Parses the command line and the environment (`MP_STATE_PATH`).
pub fn parse<I, T>(args: I, mp_state_path: Option<OsString>) -> Result<Config, EarlyExit>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = Args::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => EarlyExit {
            text: e.to_string(),
            code: 3,
        },
        _ => EarlyExit {
            text: unknown(&clap_summary(&e)),
            code: 3,
        },
    })?;
    build(args, mp_state_path).map_err(|e| EarlyExit {
        text: unknown(&format!("{e:#}")),
        code: 3,
    })
}

/// The UNKNOWN line every failure ends in; one line whatever the error says.
pub fn unknown(why: &str) -> String {
    format!("WORKERS UNKNOWN - {}\n", why.replace('\n', " "))
}

/// clap's first error line without its "error: " prefix, plus a pointer to --help.
fn clap_summary(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("bad usage");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see --help)")
}

fn build(args: Args, mp_state_path: Option<OsString>) -> Result<Config> {
    let name = args.name.filter(|n| !n.is_empty());
    if name.is_none() && args.user.is_none() {
        bail!("give -n NAME (and/or -u USER) to select the workers");
    }
    if let Some(n) = &name {
        if n.contains('/') || n.contains('\n') {
            bail!("-n {n:?}: a command name has no '/' or newline");
        }
    }
    let uid = args.user.as_deref().map(resolve_user).transpose()?;
    if !args.interval.is_finite() || args.interval < 0.0 {
        bail!(
            "--interval {} must be 0 or a positive number of seconds",
            args.interval
        );
    }
    if args.timeout == 0 {
        bail!("-t 0: the timeout must be at least 1 second");
    }
    if args.interval >= args.timeout as f64 {
        bail!(
            "--interval {} must be shorter than the timeout (-t {})",
            args.interval,
            args.timeout
        );
    }
    let thresholds = Thresholds::from_args(&args.warning, &args.critical)?;
    if args.proc_root.to_str().is_none() {
        bail!("--proc-root must be a UTF-8 path");
    }
    let euid = nix::unistd::geteuid().as_raw();
    let mp_state_path = mp_state_path.filter(|p| !p.is_empty()).map(PathBuf::from);
    let state_dir = StateDir::resolve(args.state_dir.as_deref(), mp_state_path.as_deref(), euid);
    let label = match (&name, &args.user) {
        (Some(n), _) => n.clone(),
        (None, Some(u)) => format!("user {u}"),
        (None, None) => unreachable!("checked above"),
    };
    Ok(Config {
        selector: Selector {
            name: name.as_deref().map(NameFilter::new),
            uid,
            include_master: args.include_master,
        },
        label,
        thresholds,
        interval: Duration::from_secs_f64(args.interval),
        state_dir,
        timeout: Duration::from_secs(args.timeout),
        verbosity: args.verbose,
        proc_root: args.proc_root,
        euid,
    })
}

/// A user name through NSS (so LDAP users work), or a numeric uid as is.
fn resolve_user(user: &str) -> Result<u32> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    let found = nix::unistd::User::from_name(user)
        .with_context(|| format!("-u {user}: cannot look up the user"))?;
    match found {
        Some(u) => Ok(u.uid.as_raw()),
        None => bail!("-u {user}: no such user"),
    }
}

/// The name of a uid for the long output, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Config {
        let mut all = vec!["check_workers"];
        all.extend_from_slice(args);
        parse(all, None).unwrap()
    }

    fn parse_err(args: &[&str]) -> EarlyExit {
        let mut all = vec!["check_workers"];
        all.extend_from_slice(args);
        parse(all, None).unwrap_err()
    }

    #[test]
    fn defaults() {
        let c = parse_ok(&["-n", "nginx"]);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.label, "nginx");
        assert!(c.state_dir.path.starts_with("/var/tmp/check_workers"));
    }

    #[test]
    fn usage_errors_exit_3_on_one_line() {
        for args in [
            vec!["-n", "x", "--bogus"],
            vec![],
            vec!["-n", "x", "-w", "cpu=abc"],
            vec!["-n", "x", "--interval", "-1"],
            vec!["-n", "x", "--interval", "10"],
            vec!["-n", "x", "-t", "abc"],
            vec!["-u", "no-such-user-here"],
        ] {
            let e = parse_err(&args);
            assert_eq!(e.code, 3, "{args:?}");
            assert!(
                e.text.starts_with("WORKERS UNKNOWN - "),
                "{args:?}: {}",
                e.text
            );
            assert_eq!(e.text.lines().count(), 1, "{args:?}: {}", e.text);
        }
    }

    #[test]
    fn help_and_version_exit_3() {
        let help = parse_err(&["--help"]);
        assert_eq!(help.code, 3);
        assert!(help.text.contains("Examples:"));
        let version = parse_err(&["-V"]);
        assert_eq!(version.code, 3);
        assert!(version.text.starts_with("check_workers "));
    }

    #[test]
    fn mp_state_path_is_used() {
        let c = parse(["check_workers", "-n", "x"], Some("/srv/state".into())).unwrap();
        assert!(c.state_dir.path.starts_with("/srv/state"));
        assert!(c.state_dir.path.ends_with("check_workers"));
    }

    #[test]
    fn numeric_user_and_root() {
        assert_eq!(parse_ok(&["-u", "0"]).selector.uid, Some(0));
        assert_eq!(parse_ok(&["-u", "root"]).selector.uid, Some(0));
    }
}
