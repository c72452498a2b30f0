//! Entry point: parse, run, print one result, exit with its code. Every way out (error,
//! timeout, even a bug that panics) prints one `WORKERS ...` line on stdout and exits 0-3.

use std::ffi::OsString;
use std::io::Write;
use std::process;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use check_workers::deadline::Deadline;
use check_workers::output::{self, Format, Outcome};
use check_workers::{check, cli};

/// Whoever holds this prints the one result: the run or the timeout watchdog, never both.
static OUTPUT: Mutex<()> = Mutex::new(());

/// The timeout the watchdog enforces, seconds since the start of the process.
static TIMEOUT_SECS: AtomicU64 = AtomicU64::new(0);

/// `--format json`: whoever prints, prints JSON (set from the raw arguments first, so a usage
/// error and a timeout while reading `--extra-opts` are JSON too).
static JSON: AtomicBool = AtomicBool::new(false);

fn main() {
    let started = Instant::now();
    std::panic::set_hook(Box::new(|info| {
        let why = info.to_string().replace('\n', " ");
        emit(&Outcome::unknown(&format!("internal error: {why}")));
    }));
    // the watchdog runs before the options are read: --extra-opts reads a file, which can hang
    let args: Vec<OsString> = std::env::args_os().collect();
    set_format(cli::format_in_argv(&args));
    let watchdog = start_watchdog(started, cli::timeout_in_argv(&args));
    let config = match cli::parse(args, &cli::Environment::from_process()) {
        Ok(config) => config,
        Err(early) => emit(&early),
    };
    set_format(config.format);
    set_timeout(&watchdog, config.timeout);
    let outcome = match check::run(&config, Deadline::new(started, config.timeout)) {
        Ok(report) => Outcome::report(report, config.verbosity),
        Err(e) => Outcome::unknown(&format!("{e:#}")),
    };
    emit(&outcome)
}

/// Past the timeout the monitoring system would kill us and report its own error; answering
/// UNKNOWN first tells the operator which check hung. The tick file is written by rename, so
/// exiting here at any moment leaves the old or the new file. The timeout counts from
/// `started` and can be changed with [`set_timeout`] once the options are read.
fn start_watchdog(started: Instant, timeout: Duration) -> thread::Thread {
    TIMEOUT_SECS.store(timeout.as_secs(), Ordering::SeqCst);
    let handle = thread::spawn(move || loop {
        let timeout = Duration::from_secs(TIMEOUT_SECS.load(Ordering::SeqCst));
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            emit(&Outcome::unknown(&format!(
                "timed out after {}s",
                timeout.as_secs()
            )));
        }
        // woken early by set_timeout (or spuriously): the loop looks again
        thread::park_timeout(timeout - elapsed);
    });
    handle.thread().clone()
}

/// The timeout the options settled on (the ini file of --extra-opts may set it).
fn set_timeout(watchdog: &thread::Thread, timeout: Duration) {
    TIMEOUT_SECS.store(timeout.as_secs(), Ordering::SeqCst);
    watchdog.unpark();
}

fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::SeqCst);
}

/// Prints the one result, rendered in the one place that renders, and exits with its code.
fn emit(outcome: &Outcome) -> ! {
    let _guard = OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let format = match JSON.load(Ordering::SeqCst) {
        true => Format::Json,
        false => Format::Nagios,
    };
    let text = output::render_as(outcome, format, &local_time());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    process::exit(outcome.exit_code())
}

/// Now as local time in ISO 8601 with its offset (`2026-12-06T16:20:00+01:00`), for JSON.
fn local_time() -> String {
    use nix::libc;
    // SAFETY: time(NULL) and localtime_r with a zeroed tm we own: plain C calls that write
    // only into it
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return String::new();
        }
        tm
    };
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    )
}
