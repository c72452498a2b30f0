//! Watch mode (`--every`): the check taken again and again, each sample printed as it comes, as
//! the tool this check replaces ran (`process_monitor.py apache 20`).
//!
//! Each sample is a whole one-shot run: it loads the tick file its predecessor saved, so its CPU
//! is measured over the real interval since then, and it saves its own, so a scheduled check
//! afterwards finds a recent baseline. A stop signal never cuts a sample short: SIGINT and
//! SIGTERM stay blocked while one runs and are taken only between samples, so the last sample
//! is printed and its tick file saved before the loop ends.

use std::time::Duration;

use nix::libc;
use nix::sys::signal::{SigSet, Signal};

use crate::cli::Every;

/// SIGINT and SIGTERM, blocked in the calling thread, to be taken when the loop asks.
pub struct StopSignals {
    set: SigSet,
}

impl StopSignals {
    /// The signals that end the loop.
    fn set() -> SigSet {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set
    }

    /// Blocks the stop signals in the calling thread. A thread that must never take them (the
    /// watchdog) calls this too; then they wait, pending, until [`StopSignals::wait`] takes them.
    pub fn block() -> StopSignals {
        let set = Self::set();
        // blocking two valid signals in our own thread cannot fail
        let _ = set.thread_block();
        StopSignals { set }
    }

    /// Waits up to `pause` for a stop signal; true when one came (or was already pending).
    pub fn wait(&self, pause: Duration) -> bool {
        let timeout = libc::timespec {
            tv_sec: pause.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: pause.subsec_nanos().into(),
        };
        loop {
            // SAFETY: a valid signal set and timespec we own; no info is asked for
            let got =
                unsafe { libc::sigtimedwait(self.set.as_ref(), std::ptr::null_mut(), &timeout) };
            if got > 0 {
                return true;
            }
            // EINTR: another signal (none is handled today) woke us early; waiting again from
            // the start only stretches one pause
            if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                return false;
            }
        }
    }
}

/// How a sample went, for the loop: whether its line could be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    Yes,
    /// stdout is gone (the reader of a pipe quit, as `| head -3` does): nothing more to say
    NoReader,
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `--count` samples were taken
    Counted,
    /// SIGINT or SIGTERM, after the sample that was running
    Signal,
    /// nobody reads the output any more
    NoReader,
}

/// Takes a sample (`sample(n)`, n counting from 0), then pauses `every.period`, until
/// `every.count` samples, a stop signal or a closed stdout. The pause runs from the end of one
/// sample to the start of the next, so consecutive readings are at least the period apart
/// however long a sample takes (the first may measure CPU within itself, over `--interval`).
pub fn repeat(every: Every, stop: &StopSignals, mut sample: impl FnMut(u64) -> Printed) -> Ended {
    let mut taken = 0;
    loop {
        if sample(taken) == Printed::NoReader {
            return Ended::NoReader;
        }
        taken += 1;
        if every.count.is_some_and(|count| taken >= count) {
            return Ended::Counted;
        }
        if stop.wait(every.period) {
            return Ended::Signal;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn every(millis: u64, count: Option<u64>) -> Every {
        Every {
            period: Duration::from_millis(millis),
            count,
        }
    }

    #[test]
    fn count_samples_then_stop_each_pause_after_a_sample() {
        let stop = StopSignals::block();
        let start = Instant::now();
        let mut at = Vec::new();
        let ended = repeat(every(20, Some(3)), &stop, |n| {
            at.push((n, start.elapsed()));
            Printed::Yes
        });
        assert_eq!(ended, Ended::Counted);
        let numbers: Vec<u64> = at.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [0, 1, 2]);
        for pair in at.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(20), "{at:?}");
        }
    }

    #[test]
    fn a_closed_stdout_ends_the_loop_at_once() {
        let stop = StopSignals::block();
        let mut samples = 0;
        let ended = repeat(every(10, None), &stop, |_| {
            samples += 1;
            if samples == 2 {
                Printed::NoReader
            } else {
                Printed::Yes
            }
        });
        assert_eq!((ended, samples), (Ended::NoReader, 2));
    }

    #[test]
    fn a_signal_during_a_sample_ends_the_loop_after_it() {
        let stop = StopSignals::block();
        let mut samples = 0;
        let ended = repeat(every(60_000, None), &stop, |_| {
            samples += 1;
            // the signal comes while the sample runs: it waits, blocked, for the pause
            // SAFETY: a signal to our own thread, which blocks it
            assert_eq!(
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) },
                0
            );
            Printed::Yes
        });
        assert_eq!((ended, samples), (Ended::Signal, 1));
    }
}
