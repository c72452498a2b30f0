//! Entry point: parse, run, print one result, exit with its code. Every way out (error,
//! timeout, even a bug that panics) prints one `WORKERS ...` line on stdout and exits 0-3.

use std::io::Write;
use std::process;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use check_workers::{check, cli};

/// Whoever holds this prints the one result: the run or the timeout watchdog, never both.
static OUTPUT: Mutex<()> = Mutex::new(());

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let why = info.to_string().replace('\n', " ");
        emit(&cli::unknown(&format!("internal error: {why}")), 3);
    }));
    let config = match cli::parse(std::env::args_os(), &cli::Environment::from_process()) {
        Ok(config) => config,
        Err(early) => emit(&early.text, early.code),
    };
    start_watchdog(config.timeout);
    match check::run(&config) {
        Ok(outcome) => emit(&outcome.text, outcome.code),
        Err(e) => emit(&cli::unknown(&format!("{e:#}")), 3),
    }
}

/// Past the timeout the monitoring system would kill us and report its own error; answering
/// UNKNOWN first tells the operator which check hung. The tick file is written by rename, so
/// exiting here at any moment leaves the old or the new file.
fn start_watchdog(timeout: Duration) {
    thread::spawn(move || {
        thread::sleep(timeout);
        emit(
            &cli::unknown(&format!("timed out after {}s", timeout.as_secs())),
            3,
        );
    });
}

fn emit(text: &str, code: i32) -> ! {
    let _guard = OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    process::exit(code)
}
