//! The time budget of one run: everything (reading `--extra-opts`, waiting for a peer's lock,
//! two scans with the in-run interval between them) must fit inside `-t`.
//!
//! The watchdog in `main` answers `timed out` at the timeout itself; a run that plans its waits
//! against a [`Deadline`] gives a real answer instead, with a note on what it had to leave out.

use std::time::{Duration, Instant};

/// At most this much of the timeout is kept back for saving the tick file and printing.
const MARGIN: Duration = Duration::from_millis(250);

/// When the run must have its result ready: start + timeout, less a margin for saving the
/// tick file and printing (a tenth of the timeout, at most [`MARGIN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// None when the timeout is too far away for the clock to hold (a huge `-t`)
    at: Option<Instant>,
    /// what is kept back before the timeout
    margin: Duration,
}

impl Deadline {
    /// The deadline of a run that started at `started` with `-t timeout`.
    pub fn new(started: Instant, timeout: Duration) -> Deadline {
        let margin = (timeout / 10).min(MARGIN);
        Deadline {
            at: started.checked_add(timeout - margin),
            margin,
        }
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(Instant::now())
    }

    fn remaining_at(&self, now: Instant) -> Duration {
        self.at
            .map_or(Duration::MAX, |at| at.saturating_duration_since(now))
    }

    /// True once work still under way must be given up: half the margin past the deadline,
    /// the other half left for saving the tick file and printing. Planned work ends at the
    /// deadline itself (a second scan after the in-run interval is timed to), so a scan that
    /// runs a little late is what the first half is for.
    pub fn overdue(&self) -> bool {
        self.overdue_at(Instant::now())
    }

    fn overdue_at(&self, now: Instant) -> bool {
        self.at
            .and_then(|at| at.checked_add(self.margin / 2))
            .is_some_and(|cutoff| now >= cutoff)
    }

    /// How long to sleep for the in-run CPU interval: `interval`, shortened so that a second
    /// scan (estimated to cost what the first one, `scan_cost`, did) still fits before the
    /// deadline. None when no time is left for a second scan at all.
    pub fn pause(&self, interval: Duration, scan_cost: Duration) -> Option<Duration> {
        pause_within(self.remaining(), interval, scan_cost)
    }
}

/// [`Deadline::pause`] with the time left given, so it can be tested without a clock.
fn pause_within(remaining: Duration, interval: Duration, scan_cost: Duration) -> Option<Duration> {
    let room = remaining.checked_sub(scan_cost)?;
    (!room.is_zero()).then(|| interval.min(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn margin_is_a_tenth_of_the_timeout_at_most_a_quarter_second() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        assert_eq!(Deadline::new(start, secs(1)).remaining_at(start), 900 * MS);
        assert_eq!(
            Deadline::new(start, secs(10)).remaining_at(start),
            9750 * MS
        );
        assert_eq!(
            Deadline::new(start, secs(1)).remaining_at(start + secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn huge_timeouts_never_come() {
        let d = Deadline::new(Instant::now(), Duration::from_secs(u64::MAX));
        assert_eq!(d.remaining(), Duration::MAX);
        assert!(!d.overdue());
    }

    #[test]
    fn work_under_way_is_overdue_half_the_margin_after_the_deadline() {
        let start = Instant::now();
        let d = Deadline::new(start, Duration::from_secs(1));
        assert!(!d.overdue_at(start + 900 * MS));
        assert!(!d.overdue_at(start + 949 * MS));
        assert!(d.overdue_at(start + 950 * MS));
        let d = Deadline::new(start, Duration::from_secs(10));
        assert!(!d.overdue_at(start + 9874 * MS));
        assert!(d.overdue_at(start + 9875 * MS));
        assert!(Deadline::new(start, Duration::ZERO).overdue());
    }

    #[test]
    fn the_pause_leaves_room_for_the_second_scan() {
        let second = Duration::from_secs(1);
        // plenty of time: the whole interval
        assert_eq!(pause_within(9 * second, second, 50 * MS), Some(second));
        // 600 ms left, a scan costs 400 ms: sleep 200 ms only
        assert_eq!(pause_within(600 * MS, second, 400 * MS), Some(200 * MS));
        // a second scan would not fit: no pause, no second scan
        assert_eq!(pause_within(300 * MS, second, 400 * MS), None);
        assert_eq!(pause_within(400 * MS, second, 400 * MS), None);
        assert_eq!(pause_within(Duration::ZERO, second, Duration::ZERO), None);
    }
}
