//! Entry point: parse, run, print one result, exit with its code. Every way out (error,
//! timeout, even a bug that panics) prints one `WORKERS ...` line on stdout and exits 0-3.

use std::ffi::OsString;
use std::io::Write;
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use check_workers::deadline::Deadline;
use check_workers::output::{self, Outcome};
use check_workers::{check, cli};

/// Whoever holds this prints the one result: the run or the timeout watchdog, never both.
static OUTPUT: Mutex<()> = Mutex::new(());

/// The timeout the watchdog enforces, seconds since the start of the process.
static TIMEOUT_SECS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let started = Instant::now();
    std::panic::set_hook(Box::new(|info| {
        let why = info.to_string().replace('\n', " ");
        emit(&Outcome::unknown(&format!("internal error: {why}")));
    }));
    // the watchdog runs before the options are read: --extra-opts reads a file, which can hang
    let args: Vec<OsString> = std::env::args_os().collect();
    let watchdog = start_watchdog(started, cli::timeout_in_argv(&args));
    let config = match cli::parse(args, &cli::Environment::from_process()) {
        Ok(config) => config,
        Err(early) => emit(&early),
    };
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

/// Prints the one result, rendered in the one place that renders, and exits with its code.
fn emit(outcome: &Outcome) -> ! {
    let _guard = OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(output::render(outcome).as_bytes());
    let _ = stdout.flush();
    process::exit(outcome.exit_code())
}
