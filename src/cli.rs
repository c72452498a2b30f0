//! Options step: the command line as typed (clap) becomes a [`Config`] in which every
//! conversion that can fail (ranges, users, paths) has already happened.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::{ArgAction, Parser};

use crate::catalog::{self, MetricName, MetricSet};
use crate::extra_opts;
use crate::filter::{CgroupFilter, CmdlineFilter, NameFilter, ParentSpec, SelectionPart, Selector};
use crate::output::{Format, Outcome};
use crate::state::StateDir;
use crate::text;
use crate::thresholds::Thresholds;

mod argv;
mod timing;
pub use argv::{format_in_argv, timeout_in_argv};
use timing::{average, every, interval};

const EXAMPLES: &str = "\
Examples:
  check_workers -n apache2 -w 80 -c 95
      warn above 80 % CPU (all workers together, 100 = one core), critical above 95 %
  check_workers -n nginx -w workers=2: -c workers=1: -w rss=300MiB -c cpu=150
      warn below 2 workers, critical below 1; warn when the average RSS exceeds 300 MiB
  check_workers -n php-fpm8.2 -u www-data -v
      only www-data's processes, one line per worker

Ranges follow the Nagios plugin guidelines: N (alert outside 0..N), N: (below N),
~:N (above N), N:M (outside N..M), @N:M (inside N..M). Sizes take K, M, G, T (powers
of 1024), ages s, m, h, d. With no -c workers=..., no workers at all is CRITICAL.";

const EXIT_CODES: &str = "Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.";

/// The text after the options: examples, ranges, then every metric as the catalog defines it,
/// so a new metric is in `--help` and the man page without anyone editing this.
fn after_help() -> String {
    let mut text =
        format!("{EXAMPLES}\n\nMetrics (METRIC in -w/-c, in perfdata order; *: only with --metrics or -w/-c):\n");
    for e in catalog::CATALOG {
        let star = if e.metric.by_default() { ' ' } else { '*' };
        let _ = writeln!(
            text,
            " {star}{:<17}{:<7}{}",
            e.label,
            e.unit.shown(),
            e.meaning
        );
    }
    text.push('\n');
    text.push_str(EXIT_CODES);
    text
}

/// `-t` when none is given, seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// `--interval` when none is given (and the timeout leaves room for it).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The options as the operator typed them.
#[derive(Debug, Parser)]
#[command(
    name = "check_workers",
    version,
    about = "Nagios/Icinga check of a service's worker processes: count, CPU over the \
             interval since the last check, and memory.",
    after_help = after_help(),
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Args {
    /// Command name of the workers, as `ps -o comm` shows it (names longer than 15 bytes are
    /// matched against the executable or argv[0])
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    name: Option<OsString>,

    /// Only processes of this user (name or numeric uid; real uid)
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,

    /// Count the master process (the matched parent of the workers) as a worker too
    #[arg(long = "include-master")]
    include_master: bool,

    /// The master's pid is in FILE (e.g. /run/nginx.pid); the workers are its children
    #[arg(long = "pidfile", value_name = "FILE", conflicts_with = "ppid")]
    pidfile: Option<PathBuf>,

    /// The workers are the children of this process
    #[arg(long = "ppid", value_name = "PID")]
    ppid: Option<i32>,

    /// Only processes in this systemd unit's cgroup (e.g. php8.2-fpm.service)
    #[arg(long = "unit", value_name = "UNIT", conflicts_with = "cgroup")]
    unit: Option<String>,

    /// Only processes whose cgroup path matches this glob (* and ?), e.g. '/system.slice/php*'
    #[arg(long = "cgroup", value_name = "PATTERN")]
    cgroup: Option<String>,

    /// Only processes whose full command line (arguments joined by spaces) matches REGEX; only
    /// its first 64 KiB are matched
    #[arg(short = 'a', long = "cmdline", value_name = "REGEX")]
    cmdline: Option<String>,

    /// Only processes running this executable (/proc/PID/exe; needs root for other users)
    #[arg(long = "exe", value_name = "PATH")]
    exe: Option<String>,

    /// Only processes in these states (letters as ps shows them: R, S, D, Z, T, I, ...)
    #[arg(short = 's', long = "state", value_name = "STATES")]
    state: Option<String>,

    /// What 100 % CPU means: one core, or all the CPUs the workers may use (affinity and the
    /// cgroup's cpu.max quota)
    #[arg(long = "cpu-scale", value_name = "SCALE", default_value = "core")]
    cpu_scale: CpuScale,

    /// Warning threshold [METRIC=]RANGE (metrics below); a bare RANGE is for cpu; repeatable
    #[arg(short = 'w', long = "warning", value_name = "[METRIC=]RANGE", action = ArgAction::Append, allow_hyphen_values = true)]
    warning: Vec<String>,

    /// Critical threshold [METRIC=]RANGE (metrics below); a bare RANGE is for cpu; repeatable
    #[arg(short = 'c', long = "critical", value_name = "[METRIC=]RANGE", action = ArgAction::Append, allow_hyphen_values = true)]
    critical: Vec<String>,

    /// Also measure these metrics (comma-separated labels, or `all`): pss and uss read
    /// smaps_rollup, whose cost grows with the workers' memory, so only a threshold on them or
    /// this option measures them
    #[arg(long = "metrics", value_name = "LIST")]
    metrics: Option<String>,

    /// The service's listening sockets whose accept queues to measure (queue, queue_max,
    /// queue_pct): ADDR:PORT, [ADDR6]:PORT, *:PORT (any address), /PATH or @NAME (unix);
    /// repeatable. Without it, the sockets the master (else the workers) holds, which only
    /// root or the service's user may see; `none` for a service that listens on nothing
    #[arg(long = "listen", value_name = "ADDR:PORT|PATH", action = ArgAction::Append)]
    listen: Vec<OsString>,

    /// Output format: the Nagios plugin lines, or one JSON object (every outcome, usage
    /// errors and timeouts included)
    #[arg(long = "format", value_name = "FORMAT", default_value = "nagios")]
    format: Format,

    /// When there is no usable tick file, measure CPU over this many seconds within the run
    /// (fractions allowed); 0 leaves CPU out of such a run [default: 1, or a quarter of the
    /// timeout when that is shorter]
    #[arg(long = "interval", value_name = "SECONDS")]
    interval: Option<f64>,

    /// Also report cpu_avg, the workers' CPU averaged over this window (30s, 5m, 15m, 1h, or
    /// seconds; up to 24h), from the history of earlier runs; restarts and rss_growth are
    /// then over it too
    #[arg(long = "average", value_name = "DURATION")]
    average: Option<String>,

    /// Directory for tick files [default: $MP_STATE_PATH/<euid>/check_workers, else
    /// /var/lib/check-workers/<euid> where the package made that directory, else
    /// /var/tmp/check_workers/<euid>]
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Watch live: take a sample every SECONDS (fractions allowed, at least 0.01) and print each
    /// as one line starting with the local time, until Ctrl-C or SIGTERM (then exit 0)
    #[arg(long = "every", value_name = "SECONDS")]
    every: Option<f64>,

    /// With --every: stop after N samples (and exit 0)
    #[arg(long = "count", value_name = "N", requires = "every")]
    count: Option<u64>,

    /// Give up with UNKNOWN after this many whole seconds (with --every: for each sample)
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        default_value_t = DEFAULT_TIMEOUT_SECS,
        value_parser = whole_seconds
    )]
    timeout: u64,

    /// More output: -v one line per worker; -vv also how the figures were made (the CPU
    /// interval and its error bound, exited workers, the selection, the tick file); -vvv also
    /// every process looked at
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

    /// Read cgroup limits under this directory instead of /sys (for tests)
    #[arg(
        long = "sys-root",
        value_name = "DIR",
        hide = true,
        default_value = "/sys"
    )]
    sys_root: PathBuf,

    /// Read options from the [SECTION] (default: check_workers) of an ini FILE (default: the
    /// monitoring-plugins search path, or $MP_CONFIG_PATH); the command line comes after them
    #[arg(long = "extra-opts", value_name = "[SECTION][@FILE]", num_args = 0..=1, require_equals = true)]
    extra_opts: Option<String>,

    /// Print help
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,

    /// Print version
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
}

/// What 100 % CPU means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuScale {
    /// one full core, so 4 busy workers can read 400 (like top)
    Core,
    /// all the CPUs the workers may run on
    Host,
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
    /// `--average`: the window of `cpu_avg`, `restarts` and `rss_growth`, seconds
    pub average: Option<u64>,
    /// where the tick files go, as the options and the environment say it; which directory
    /// that is depends on the file system, so the run resolves it ([`StateDir::resolve`])
    pub state_dir: StateLocation,
    pub timeout: Duration,
    pub verbosity: u8,
    pub proc_root: PathBuf,
    /// where cgroup limits are read (`/sys`)
    pub sys_root: PathBuf,
    pub cpu_scale: CpuScale,
    /// how the result is printed
    pub format: Format,
    /// `--every`: run again and again, printing each sample; None for the one check
    pub every: Option<Every>,
    /// the metrics this run measures and reports: the defaults, `--metrics` and those with
    /// thresholds
    pub metrics: MetricSet,
    /// the metrics the operator named (`--metrics`, thresholds): what the run cannot read of
    /// them is said at every verbosity, of the other defaults only from `-v`
    pub asked: MetricSet,
    /// effective uid, which owns the state dir
    pub euid: u32,
    /// `--listen`: the listening sockets whose queues are measured; empty: those the service
    /// holds
    pub listen: Vec<crate::listen::Spec>,
}

/// `--every SECONDS [--count N]`: watch the workers live, as the tool this check replaces did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    /// the pause after each sample, before the next one starts
    pub period: Duration,
    /// stop after this many samples; None: until a signal
    pub count: Option<u64>,
}

/// Where the tick files go, as given: `--state-dir`, else `$MP_STATE_PATH` (empty: unset).
/// Plain data: parsing options looks at no file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateLocation {
    pub explicit: Option<PathBuf>,
    pub mp_state_path: Option<PathBuf>,
}

impl StateLocation {
    /// The state directory of the check's user (`euid`), as the file system has it now.
    pub fn resolve(&self, euid: u32) -> StateDir {
        StateDir::resolve(
            self.explicit.as_deref(),
            self.mp_state_path.as_deref(),
            euid,
        )
    }
}

/// The environment variables the options depend on.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `MP_STATE_PATH`: base of the default state dir
    pub mp_state_path: Option<OsString>,
    /// `MP_CONFIG_PATH` (or the older `NAGIOS_CONFIG_PATH`): where `--extra-opts` looks
    pub config_path: Option<OsString>,
}

impl Environment {
    pub fn from_process() -> Environment {
        Environment {
            mp_state_path: std::env::var_os("MP_STATE_PATH"),
            config_path: std::env::var_os("MP_CONFIG_PATH")
                .or_else(|| std::env::var_os("NAGIOS_CONFIG_PATH")),
        }
    }
}

/// Parses the command line (after `--extra-opts` expansion) and the environment. When the
/// command line does not lead to a check, the error is what to print and the exit code
/// (always 3, as the plugin guidelines ask even for --help and --version).
pub fn parse<I, T>(args: I, env: &Environment) -> Result<Config, Outcome>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let args = extra_opts::expand(args, env.config_path.as_deref())
        .map_err(|e| Outcome::unknown(&format!("{e:#}")))?;
    let mp_state_path = env.mp_state_path.clone();
    let args = Args::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Outcome::Verbatim(e.to_string()),
        _ => Outcome::unknown(&clap_summary(&e)),
    })?;
    build(args, mp_state_path).map_err(|e| Outcome::unknown(&format!("{e:#}")))
}

/// The clap definition, for the man page and shell completions (`examples/assets.rs`).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// clap's first error line without its "error: " prefix, with clap's suggestion of a similar
/// option where it has one (`--warn` → `--warning`), plus a pointer to --help: one line.
fn clap_summary(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("bad usage");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "the following required arguments were not provided:" lists them on indented lines
    let listed: Vec<&str> = match first.ends_with(':') {
        true => lines
            .take_while(|l| l.starts_with(' '))
            .map(str::trim)
            .collect(),
        false => Vec::new(),
    };
    let first = match listed.is_empty() {
        true => first.to_string(),
        false => format!("{} {}", first, listed.join(", ")),
    };
    let tip = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("tip: "))
        .map(|tip| format!("; {tip}"))
        .unwrap_or_default();
    format!("{first}{tip} (see --help)")
}

fn build(args: Args, mp_state_path: Option<OsString>) -> Result<Config> {
    let selector = selector(&args)?;
    if args.timeout == 0 {
        bail!("-t 0: the timeout must be at least 1 second");
    }
    let timeout = Duration::from_secs(args.timeout);
    let interval = interval(args.interval, timeout)?;
    let every = every(args.every, args.count)?;
    let thresholds = Thresholds::from_args(&args.warning, &args.critical)?;
    let average = average(args.average.as_deref(), &thresholds)?;
    let listed = metric_list(args.metrics.as_deref())?;
    let asked = thresholds.metrics().fold(listed, MetricSet::with);
    let metrics = asked.iter().fold(MetricSet::defaults(), MetricSet::with);
    if args.proc_root.to_str().is_none() {
        bail!("--proc-root must be a UTF-8 path");
    }
    let (listen, metrics) = crate::listen::options(&args.listen, metrics, thresholds.metrics())
        .map_err(anyhow::Error::msg)?;
    let euid = nix::unistd::geteuid().as_raw();
    let mp_state_path = mp_state_path.filter(|p| !p.is_empty()).map(PathBuf::from);
    let state_dir = StateLocation {
        explicit: args.state_dir,
        mp_state_path,
    };
    Ok(Config {
        label: label(&selector, args.user.as_deref()),
        selector,
        thresholds,
        interval,
        average,
        state_dir,
        timeout,
        verbosity: args.verbose,
        proc_root: args.proc_root,
        sys_root: args.sys_root,
        cpu_scale: args.cpu_scale,
        format: args.format,
        every,
        metrics,
        asked,
        euid,
        listen,
    })
}

/// `--metrics LIST`: the metrics listed (labels, comma-separated), or all.
fn metric_list(list: Option<&str>) -> Result<MetricSet> {
    let mut set = MetricSet::none();
    for label in list.unwrap_or_default().split(',').map(str::trim) {
        set = match (label, MetricName::from_label(label)) {
            ("", _) => set,
            ("all", _) => MetricSet::all(),
            (_, Some(metric)) => set.with(metric),
            (_, None) => bail!(
                "--metrics: unknown metric \"{}\" (see --help for the list, or all)",
                text::shown(label)
            ),
        };
    }
    Ok(set)
}

/// The selection options as one [`Selector`], each checked in the order they are listed.
fn selector(args: &Args) -> Result<Selector> {
    let name = name_filter(args.name.as_ref())?;
    let parent = match (&args.pidfile, args.ppid) {
        (Some(file), _) => Some(ParentSpec::Pidfile(file.clone())),
        (None, Some(pid)) if pid > 0 => Some(ParentSpec::Pid(pid)),
        (None, Some(pid)) => bail!("--ppid {pid}: not a process id"),
        (None, None) => None,
    };
    let cmdline = args
        .cmdline
        .as_deref()
        .map(|re| CmdlineFilter::new(re).with_context(|| format!("-a {re:?}: bad regex")))
        .transpose()?;
    let cgroup = match (&args.unit, &args.cgroup) {
        (Some(unit), _) if !unit.is_empty() && !unit.contains('/') => {
            Some(CgroupFilter::Unit(unit.clone()))
        }
        (Some(unit), _) => bail!("--unit {unit:?}: a unit name has no '/'"),
        (None, Some(pattern)) => Some(CgroupFilter::Glob(pattern.clone())),
        (None, None) => None,
    };
    let states = args.state.as_deref().map(parse_states).transpose()?;
    if name.is_none()
        && args.user.is_none()
        && parent.is_none()
        && cgroup.is_none()
        && cmdline.is_none()
        && args.exe.is_none()
    {
        bail!(
            "say which processes are the workers: -n NAME, -u USER, --pidfile, --ppid, \
             --unit, --cgroup, -a REGEX or --exe"
        );
    }
    Ok(Selector {
        name,
        uid: args.user.as_deref().map(resolve_user).transpose()?,
        include_master: args.include_master,
        parent,
        cmdline,
        exe: args.exe.clone(),
        states,
        cgroup,
    })
}

/// `-n NAME`, as bytes, as the kernel keeps it: one that is not UTF-8 is still a name.
fn name_filter(name: Option<&OsString>) -> Result<Option<NameFilter>> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let bytes = name.as_bytes();
    if bytes.contains(&b'/') || bytes.contains(&b'\n') {
        bail!(
            "-n {}: a command name has no '/' or newline",
            text::shown_bytes(bytes)
        );
    }
    Ok(Some(NameFilter::from_bytes(bytes)))
}

/// `-t`: whole seconds, as Nagios and the plugin guidelines give a timeout; say so rather than
/// "invalid digit" when a fraction is given.
fn whole_seconds(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("the timeout is whole seconds (10, 30), not {text:?}"))
}

/// `-s RSD` or `-s R,S,D`: the state letters `ps` shows.
fn parse_states(text: &str) -> Result<String> {
    let letters: String = text.chars().filter(|c| *c != ',').collect();
    if letters.is_empty() {
        bail!("-s {text:?}: no state letters");
    }
    if let Some(c) = letters.chars().find(|c| !"RSDZTtWXxKPI".contains(*c)) {
        bail!("-s {text:?}: {c:?} is not a process state (R S D Z T t W X x K P I)");
    }
    Ok(letters)
}

/// The parts that name the service in the status line, most specific first; with none of them,
/// the user as the operator typed it.
const LABEL_PREFERENCE: [&str; 7] = [
    "name", "unit", "pidfile", "ppid", "cgroup", "exe", "cmdline",
];

/// How the output names the service: the most specific thing the operator gave.
fn label(selector: &Selector, user: Option<&str>) -> String {
    let parts = selector.parts();
    LABEL_PREFERENCE
        .iter()
        .find_map(|key| parts.iter().find(|p| p.key() == *key))
        .and_then(SelectionPart::label)
        .unwrap_or_else(|| format!("user {}", user.unwrap_or("?")))
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
        parse(all, &Environment::default()).unwrap()
    }

    /// What a command line that leads to no check prints, and its exit code.
    struct Printed {
        text: String,
        code: i32,
    }

    fn parse_err(args: &[&str]) -> Printed {
        let mut all = vec!["check_workers"];
        all.extend_from_slice(args);
        let outcome = parse(all, &Environment::default()).unwrap_err();
        Printed {
            text: crate::output::render(&outcome),
            code: outcome.exit_code(),
        }
    }

    #[test]
    fn defaults() {
        let c = parse_ok(&["-n", "nginx"]);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.label, "nginx");
        // the packaged directory where it exists on this host, the shared one elsewhere
        let euid = nix::unistd::geteuid().as_raw();
        assert_eq!(c.state_dir, StateLocation::default());
        let dir = c.state_dir.resolve(euid);
        assert!(
            dir.path.starts_with("/var/tmp/check_workers")
                || dir.path.starts_with("/var/lib/check-workers"),
            "{dir:?}"
        );
        assert_eq!(c.every, None);
    }

    #[test]
    fn every_takes_fractions_and_count_needs_it() {
        let c = parse_ok(&["-n", "x", "--every", "0.5", "--count", "3"]);
        let period = Duration::from_millis(500);
        assert_eq!(
            c.every,
            Some(Every {
                period,
                count: Some(3)
            })
        );
        let c = parse_ok(&["-n", "x", "--every", "20"]);
        assert_eq!(c.every.map(|e| e.count), Some(None));
        for (args, said) in [
            (
                vec!["--every", "0"],
                "--every 0: give seconds, at least 0.01",
            ),
            (
                vec!["--every=-1"],
                "--every -1: give seconds, at least 0.01",
            ),
            (
                vec!["--every", "NaN"],
                "--every NaN: give seconds, at least 0.01",
            ),
            (
                vec!["--every", "1", "--count", "0"],
                "--count 0: give at least 1 sample",
            ),
        ] {
            let all = [&["-n", "x"][..], &args].concat();
            let e = parse_err(&all);
            assert_eq!(e.text, format!("WORKERS UNKNOWN - {said}\n"), "{args:?}");
            assert_eq!(e.code, 3);
        }
        let e = parse_err(&["-n", "x", "--count", "3"]);
        assert_eq!(
            e.text,
            "WORKERS UNKNOWN - the following required arguments were not provided: \
             --every <SECONDS> (see --help)\n"
        );
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
            vec!["-n", "x", "-a", "("],
            vec!["-n", "x", "-s", "Q"],
            vec!["--pidfile", "/run/x.pid", "--ppid", "1"],
            vec!["--unit", "a/b"],
            vec!["-n", "x", "--cpu-scale", "moon"],
            vec!["-s", "R"],
            vec!["-n", "x", "--average", "0"],
            vec!["-n", "x", "--average", "25h"],
            vec!["-n", "x", "--average", "5 min"],
            vec!["-n", "x", "-c", "cpu_avg=150"],
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

    // Regression (issue 9.5): a `|` or line break in an option or an OS error split the line.
    #[test]
    fn unknown_lines_escape_outside_text() {
        assert_eq!(
            crate::output::render(&Outcome::unknown(
                "cannot create state dir /tmp/a|b\nWORKERS OK: File exists"
            )),
            "WORKERS UNKNOWN - cannot create state dir /tmp/a\\x7cb\\x0aWORKERS OK: File exists\n"
        );
        let e = parse_err(&["-n", "x", "-w", "cpu=a|b"]);
        assert_eq!(
            e.text,
            "WORKERS UNKNOWN - bad -w \"cpu=a\\x7cb\": \"a\\x7cb\" is not a number\n"
        );
        let e = parse_err(&["-n", "x", "--bogus|x"]);
        assert!(!e.text.contains('|'), "{}", e.text);
    }

    // Regression (issue 9.7): `-t 1` alone was always UNKNOWN, its default --interval 1 not
    // being shorter than the timeout.
    #[test]
    fn default_interval_fits_any_timeout() {
        let c = parse_ok(&["-n", "x", "-t", "1"]);
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.interval, Duration::from_millis(250));
        assert_eq!(
            parse_ok(&["-n", "x", "-t", "3"]).interval,
            Duration::from_millis(750)
        );
        assert_eq!(
            parse_ok(&["-n", "x", "-t", "4"]).interval,
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_ok(&["-n", "x", "-t", "1", "--interval", "0.9"]).interval,
            Duration::from_millis(900)
        );
        // only an explicit interval that does not fit is the operator's mistake
        let e = parse_err(&["-n", "x", "-t", "1", "--interval", "1"]);
        assert_eq!(
            e.text,
            "WORKERS UNKNOWN - --interval 1 must be shorter than the timeout (-t 1)\n"
        );
        for bad in ["-1", "NaN", "inf", "1e300"] {
            let e = parse_err(&["-n", "x", &format!("--interval={bad}")]);
            assert!(
                e.text.contains("must be 0 or a positive number"),
                "{bad}: {}",
                e.text
            );
        }
    }

    #[test]
    fn average_takes_a_window_and_cpu_avg_needs_it() {
        assert_eq!(parse_ok(&["-n", "x"]).average, None);
        assert_eq!(parse_ok(&["-n", "x", "--average", "5m"]).average, Some(300));
        let c = parse_ok(&["-n", "x", "--average=90", "-c", "cpu_avg=150"]);
        assert_eq!(c.average, Some(90));
        assert_eq!(
            parse_err(&["-n", "x", "-w", "cpu_avg=100"]).text,
            "WORKERS UNKNOWN - cpu_avg needs --average DURATION (e.g. --average 5m)\n"
        );
        assert_eq!(
            parse_err(&["-n", "x", "--average", "0s"]).text,
            "WORKERS UNKNOWN - --average: \"0s\": a window from 1s to 24h\n"
        );
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

    // Issue 22.8: a mistyped option got no hint, and -t 0.5 said "invalid digit found".
    #[test]
    fn usage_errors_suggest_and_explain() {
        let warn = parse_err(&["-n", "x", "--warn", "5"]);
        assert_eq!(
            (warn.code, warn.text),
            (
                3,
                "WORKERS UNKNOWN - unexpected argument '--warn' found; a similar argument exists: \
                 '--warning' (see --help)\n"
                    .to_string()
            )
        );
        let fraction = parse_err(&["-n", "x", "-t", "0.5"]);
        assert_eq!(
            fraction.text,
            "WORKERS UNKNOWN - invalid value '0.5' for '--timeout <SECONDS>': the timeout is \
             whole seconds (10, 30), not \"0.5\" (see --help)\n"
        );
    }

    #[test]
    fn metrics_are_the_defaults_the_listed_and_the_thresholded() {
        use MetricName::{Pss, Uss};
        let set = |args: &[&str]| parse_ok(args).metrics;
        assert_eq!(set(&["-n", "x"]), MetricSet::defaults());
        assert!(!set(&["-n", "x"]).contains(Pss));
        assert_eq!(
            set(&["-n", "x", "--metrics", "pss"]),
            MetricSet::defaults().with(Pss)
        );
        assert_eq!(
            set(&["-n", "x", "--metrics", "uss, workers"]),
            MetricSet::defaults().with(Uss)
        );
        assert_eq!(set(&["-n", "x", "--metrics", "all"]), MetricSet::all());
        // a threshold on a metric asks for it
        assert_eq!(
            set(&["-n", "x", "-c", "pss=1G"]),
            MetricSet::defaults().with(Pss)
        );
        let bad = parse_err(&["-n", "x", "--metrics", "pss,bogus|x"]);
        assert_eq!(
            (bad.code, bad.text.as_str()),
            (
                3,
                "WORKERS UNKNOWN - --metrics: unknown metric \"bogus\\x7cx\" (see --help for \
                 the list, or all)\n"
            )
        );
    }

    #[test]
    fn help_lists_every_metric_with_unit_and_meaning() {
        let help = parse_err(&["--help"]).text;
        let listed: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Metrics "))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(listed.len(), catalog::CATALOG.len(), "{help}");
        for (line, e) in listed.iter().zip(catalog::CATALOG) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let label = words[0].trim_start_matches('*');
            assert_eq!([label, words[1]], [e.label, e.unit.shown()], "{line}");
            assert_eq!(words[0].starts_with('*'), !e.metric.by_default(), "{line}");
            assert!(line.ends_with(e.meaning), "{line}");
            assert!(line.len() <= 80, "{line}");
        }
        // the man page is rendered from the same definition
        let man = command().render_long_help().to_string();
        assert!(man.contains(&listed.join("\n")));
    }

    #[test]
    fn mp_state_path_is_used() {
        let env = Environment {
            mp_state_path: Some("/srv/state".into()),
            config_path: None,
        };
        let c = parse(["check_workers", "-n", "x"], &env).unwrap();
        let dir = c.state_dir.resolve(c.euid);
        assert!(dir.path.starts_with("/srv/state"));
        assert!(dir.path.ends_with("check_workers"));
    }

    #[test]
    fn numeric_user_and_root() {
        assert_eq!(parse_ok(&["-u", "0"]).selector.uid, Some(0));
        assert_eq!(parse_ok(&["-u", "root"]).selector.uid, Some(0));
    }

    // the label picks the most specific part, which is not the parts' (tick file) order
    #[test]
    fn label_prefers_the_most_specific_part() {
        for (args, label) in [
            (
                &["--ppid", "812", "--unit", "nginx.service"][..],
                "nginx.service",
            ),
            (
                &["--exe", "/usr/sbin/nginx", "-a", "worker"],
                "/usr/sbin/nginx",
            ),
            (
                &["--cgroup", "/x*", "--exe", "/usr/sbin/nginx"],
                "cgroup /x*",
            ),
            (
                &["--pidfile", "/run/x.pid", "--cgroup", "/x*"],
                "pidfile /run/x.pid",
            ),
            (&["-u", "33", "-a", "worker"], "cmdline /worker/"),
            (&["-u", "root", "-s", "S"], "user root"),
            (&["-u", "0"], "user 0"),
        ] {
            assert_eq!(parse_ok(args).label, label, "{args:?}");
        }
    }

    #[test]
    fn labels_name_the_selection() {
        assert_eq!(
            parse_ok(&["--unit", "php8.2-fpm.service"]).label,
            "php8.2-fpm.service"
        );
        assert_eq!(
            parse_ok(&["--pidfile", "/run/nginx.pid"]).label,
            "pidfile /run/nginx.pid"
        );
        assert_eq!(parse_ok(&["--ppid", "812"]).label, "children of 812");
        assert_eq!(
            parse_ok(&["-a", "gunicorn.*app"]).label,
            "cmdline /gunicorn.*app/"
        );
        assert_eq!(parse_ok(&["-n", "nginx", "--ppid", "812"]).label, "nginx");
        assert_eq!(
            parse_ok(&["-s", "R,D", "-u", "0"])
                .selector
                .states
                .as_deref(),
            Some("RD")
        );
    }
}
