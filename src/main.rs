//! Entry point: parse, run, print one result, exit with its code. Every way out (error,
//! timeout, even a bug that panics) prints one `WORKERS ...` line on stdout and exits 0-3.

use std::ffi::OsString;
use std::io::Write;
use std::process;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use check_workers::cli::{Config, Every};
use check_workers::deadline::Deadline;
use check_workers::output::{self, Format, Outcome};
use check_workers::watch::{self, Printed, StopSignals};
use check_workers::{check, cli};

/// Whoever holds this prints: the run or the timeout watchdog, never both at once.
static OUTPUT: Mutex<()> = Mutex::new(());

/// When the watchdog answers `timed out`, and the `-t` it enforces; None while no run is
/// under way (between the samples of `--every`).
static ARMED: Mutex<Option<(Instant, Duration)>> = Mutex::new(None);

/// `--format json`: whoever prints, prints JSON (set from the raw arguments first, so a usage
/// error and a timeout while reading `--extra-opts` are JSON too).
static JSON: AtomicBool = AtomicBool::new(false);

/// `--every`: whoever prints, prints a sample line, which starts with the time.
static WATCHING: AtomicBool = AtomicBool::new(false);

fn main() {
    let started = Instant::now();
    std::panic::set_hook(Box::new(|info| {
        let why = info.to_string().replace('\n', " ");
        emit(&Outcome::unknown(&format!("internal error: {why}")));
    }));
    // the watchdog runs before the options are read: --extra-opts reads a file, which can hang
    let args: Vec<OsString> = std::env::args_os().collect();
    set_format(cli::format_in_argv(&args));
    let watchdog = start_watchdog();
    arm(&watchdog, started, cli::timeout_in_argv(&args));
    let config = match cli::parse(args, &cli::Environment::from_process()) {
        Ok(config) => config,
        Err(early) => emit(&early),
    };
    set_format(config.format);
    arm(&watchdog, started, config.timeout);
    match config.every {
        None => emit(&run(&config, started)),
        Some(every) => watch(&config, every, started, &watchdog),
    }
}

/// One run of the check, within `-t` from `started`.
fn run(config: &Config, started: Instant) -> Outcome {
    match check::run(config, Deadline::new(started, config.timeout)) {
        Ok(report) => Outcome::report(report, config.verbosity),
        Err(e) => Outcome::unknown(&format!("{e:#}")),
    }
}

/// `--every`: one run per sample, each printed as it ends and each within its own `-t`, until
/// `--count`, a stop signal or a closed stdout; then exit 0, as each line carried its state.
fn watch(config: &Config, every: Every, started: Instant, watchdog: &thread::Thread) -> ! {
    let stop = StopSignals::block();
    WATCHING.store(true, Ordering::SeqCst);
    watch::repeat(every, &stop, |n| {
        // the first sample's -t counts from the start, as a one-shot run's does
        let started = if n == 0 { started } else { Instant::now() };
        arm(watchdog, started, config.timeout);
        let outcome = run(config, started);
        disarm(watchdog);
        print(&outcome)
    });
    process::exit(0)
}

/// Past the timeout the monitoring system would kill us and report its own error; answering
/// UNKNOWN first tells the operator which check hung. The tick file is written by rename, so
/// exiting here at any moment leaves the old or the new file. A run stuck past its `-t` cannot
/// be abandoned safely (it may hold the tick file's lock), so under `--every` this ends the
/// loop too.
fn start_watchdog() -> thread::Thread {
    let handle = thread::spawn(|| {
        // SIGINT and SIGTERM are the loop's to take between samples, never this thread's
        StopSignals::block();
        loop {
            let armed = *ARMED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some((at, timeout)) = armed else {
                thread::park();
                continue;
            };
            let now = Instant::now();
            if now >= at {
                let secs = timeout.as_secs();
                emit(&Outcome::unknown(&format!("timed out after {secs}s")));
            }
            // woken early by arm or disarm (or spuriously): the loop looks again
            thread::park_timeout(at - now);
        }
    });
    handle.thread().clone()
}

/// The run that started at `started` must end within `timeout` (the ini file of --extra-opts
/// may change it, and each sample of --every has its own).
fn arm(watchdog: &thread::Thread, started: Instant, timeout: Duration) {
    let at = started.checked_add(timeout);
    *ARMED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = at.map(|at| (at, timeout));
    watchdog.unpark();
}

/// No run under way: nothing to time out.
fn disarm(watchdog: &thread::Thread) {
    *ARMED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    watchdog.unpark();
}

fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::SeqCst);
}

/// Prints one sample of `--every`; whether anyone still reads.
fn print(outcome: &Outcome) -> Printed {
    let _guard = OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    print_locked(outcome)
}

/// Renders in the one place that renders, and writes at once (a `| tee` or a log sees each
/// sample as it comes). The caller holds [`OUTPUT`].
fn print_locked(outcome: &Outcome) -> Printed {
    let format = match JSON.load(Ordering::SeqCst) {
        true => Format::Json,
        false => Format::Nagios,
    };
    let time = local_time();
    let text = match WATCHING.load(Ordering::SeqCst) {
        true => output::render_sample(outcome, format, &time),
        false => output::render_as(outcome, format, &time),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Printed::Yes,
        Err(_) => Printed::NoReader,
    }
}

/// Prints the one result (or the last, under `--every`) and exits with its code.
fn emit(outcome: &Outcome) -> ! {
    // held to the exit, so no other thread prints after this line
    let _guard = OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let _ = print_locked(outcome);
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
