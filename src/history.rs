//! History: the short record of earlier runs a tick file keeps, one [`Sample`] per run, so a
//! run can measure CPU over more than the interval since the last one (an older sample when the
//! last is too recent, an average over minutes), count master restarts and fit memory growth.
//!
//! Pure and a leaf: `state` reads and writes it, `metrics` asks it questions. Per sample it
//! keeps running totals, not per-worker ticks, so its size does not grow with the workers:
//! the CPU between any sample and now is the difference of two totals, and for workers that
//! lived through the span each worker's tick rounding telescopes away but for the two ends.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};

/// Most samples a history holds; beyond, the samples closest together are thinned out.
pub const MAX_SAMPLES: usize = 1024;

/// How long samples are kept without `--average`: `rss_growth`'s default window, seconds.
pub const DEFAULT_KEEP: u64 = 15 * 60;

/// The longest retention (and `--average`) accepted, seconds.
pub const MAX_KEEP: u64 = 24 * 3600;

/// Most masters one sample names: a restart of any of them changes the identity.
pub const MAX_MASTERS: usize = 8;

/// Fewest samples `rss_growth` is fitted over, and the least time they must span, seconds:
/// two points always lie on a line, and over a few seconds RSS noise is all there is.
const GROWTH_MIN_SAMPLES: usize = 3;
const GROWTH_MIN_SPAN: f64 = 120.0;

/// Uptimes are read in hundredths of a second; ages within this of a bound count as on it.
const EPSILON: f64 = 1e-6;

/// An uptime as the tick file keeps it, in hundredths of a second as `/proc/uptime` gives it,
/// so that what a run compares and what it writes are the same number.
pub fn centiseconds(uptime: f64) -> f64 {
    (uptime * 100.0).round() / 100.0
}

/// Whether a reading at uptime `then` is at least `min_age` seconds before `now`.
pub fn aged(now: f64, then: f64, min_age: f64) -> bool {
    now - then + EPSILON >= min_age
}

/// Running totals of the workers' CPU ticks since the history began. Only differences
/// between two totals mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cum {
    /// user-mode clock ticks
    pub user: u64,
    /// kernel-mode clock ticks
    pub system: u64,
}

impl Cum {
    /// These totals plus `user` and `system` more ticks (saturating: the file's numbers are
    /// not trusted to leave room).
    pub fn plus(self, user: u64, system: u64) -> Cum {
        Cum {
            user: self.user.saturating_add(user),
            system: self.system.saturating_add(system),
        }
    }

    /// Ticks from `earlier` to these totals, user and system. A total can go down (a worker
    /// counted whole as new, then gone with no master to recover it from): that is clamped at
    /// zero rather than read as a wrap.
    pub fn since(self, earlier: Cum) -> (u64, u64) {
        (
            self.user.saturating_sub(earlier.user),
            self.system.saturating_sub(earlier.system),
        )
    }
}

/// Who the masters were at a sample: `(pid, starttime)` of each, sorted, at most
/// [`MAX_MASTERS`]. Empty when the selection had no master (no workers, flat processes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity(Vec<(i32, u64)>);

impl Identity {
    /// The identity of these `(pid, starttime)` masters.
    pub fn new(masters: impl IntoIterator<Item = (i32, u64)>) -> Identity {
        let mut all: Vec<(i32, u64)> = masters.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        all.truncate(MAX_MASTERS);
        Identity(all)
    }

    /// Whether a master was seen.
    pub fn is_known(&self) -> bool {
        !self.0.is_empty()
    }
}

/// `812:1000`, `812:1000,900:2000`, or `-` for none.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, (pid, start)) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{pid}:{start}")?;
        }
        Ok(())
    }
}

impl FromStr for Identity {
    type Err = anyhow::Error;

    /// Exactly what [`Identity`]'s `Display` writes: sorted, no repeats, pids above 0.
    fn from_str(text: &str) -> Result<Identity> {
        if text == "-" {
            return Ok(Identity::default());
        }
        let mut masters = Vec::new();
        for part in text.split(',') {
            let (pid, start) = part
                .split_once(':')
                .context("master is not pid:starttime")?;
            masters.push((pid.parse::<i32>()?, start.parse::<u64>()?));
        }
        ensure!(
            masters.len() <= MAX_MASTERS
                && masters.iter().all(|&(pid, _)| pid > 0)
                && masters.windows(2).all(|w| w[0] < w[1]),
            "bad master list"
        );
        Ok(Identity(masters))
    }
}

/// What one run saw, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// system uptime of the reading, seconds
    pub uptime: f64,
    /// the workers' running CPU totals at the reading
    pub cum: Cum,
    /// how many workers there were
    pub workers: u64,
    /// average resident set size per worker, bytes (0 with no workers)
    pub rss_avg: u64,
    pub master: Identity,
}

/// Samples of earlier runs, oldest first, strictly increasing in uptime, at most
/// [`MAX_SAMPLES`]; and how long they are kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// retention, seconds: the longest window any run of this selection asked for
    keep: u64,
    samples: Vec<Sample>,
}

impl History {
    /// A history as a file gives it, refused unless it is one this module could have made.
    pub fn new(keep: u64, samples: Vec<Sample>) -> Result<History> {
        ensure!(keep <= MAX_KEEP, "keep {keep} s is over a day");
        ensure!(
            samples.len() <= MAX_SAMPLES,
            "more than {MAX_SAMPLES} samples"
        );
        for s in &samples {
            ensure!(s.uptime.is_finite() && s.uptime >= 0.0, "bad sample uptime");
        }
        ensure!(
            samples.windows(2).all(|w| w[0].uptime < w[1].uptime),
            "samples not in strictly increasing uptime"
        );
        Ok(History { keep, samples })
    }

    /// Retention, seconds.
    pub fn keep(&self) -> u64 {
        self.keep
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The sample of the last run.
    pub fn newest(&self) -> Option<&Sample> {
        self.samples.last()
    }

    /// Adds this run's sample and keeps the history bounded. A sample at the uptime of the
    /// newest replaces it (two runs within the clock's hundredth of a second, or a frozen
    /// fixture tree). The retention
    /// grows to `window` (`--average`) and never below [`DEFAULT_KEEP`]; it does not shrink, so
    /// a run by hand without `--average` cannot cut the history a scheduled one needs.
    pub fn record(&mut self, sample: Sample, window: Option<u64>) {
        self.keep = self
            .keep
            .max(DEFAULT_KEEP)
            .max(window.unwrap_or(0))
            .min(MAX_KEEP);
        let now = centiseconds(sample.uptime);
        while self.samples.last().is_some_and(|last| last.uptime >= now) {
            self.samples.pop();
        }
        self.samples.push(Sample {
            uptime: now,
            ..sample
        });
        self.forget_before(now);
        self.thin();
    }

    /// Drops samples older than the retention, except the newest of them, so that a window as
    /// long as the retention is still spanned whole.
    fn forget_before(&mut self, now: f64) {
        let keep = self.keep as f64;
        let spanning = self
            .samples
            .iter()
            .rposition(|s| now - s.uptime >= keep)
            .unwrap_or(0);
        self.samples.drain(..spanning);
    }

    /// Over [`MAX_SAMPLES`], removes the inner sample whose neighbours are closest in time,
    /// until there are no more: the span stays whole and the samples stay spread over it (runs
    /// more often than every second or so fill the ring within 15 minutes).
    fn thin(&mut self) {
        while self.samples.len() > MAX_SAMPLES {
            let crowded = (1..self.samples.len() - 1)
                .min_by(|&a, &b| {
                    let gap = |i: usize| self.samples[i + 1].uptime - self.samples[i - 1].uptime;
                    gap(a).total_cmp(&gap(b))
                })
                .expect("more than MAX_SAMPLES samples have inner ones");
            self.samples.remove(crowded);
        }
    }

    /// The newest sample at least `min_age` seconds older than `now`.
    pub fn newest_at_least(&self, now: f64, min_age: f64) -> Option<&Sample> {
        self.samples
            .iter()
            .rev()
            .find(|s| aged(now, s.uptime, min_age))
    }

    /// Where a window of `window` seconds back from `now` starts: the index of the sample
    /// whose age is closest to it (the older on a tie), among those at least `min_age` old.
    pub fn window_start(&self, now: f64, window: f64, min_age: f64) -> Option<usize> {
        self.samples
            .iter()
            .enumerate()
            .filter(|(_, s)| aged(now, s.uptime, min_age))
            .min_by(|(_, a), (_, b)| {
                let off = |s: &Sample| (now - s.uptime - window).abs();
                off(a).total_cmp(&off(b))
            })
            .map(|(i, _)| i)
    }

    /// Whether the history is younger than `window` at `now`: no sample is that old.
    pub fn shorter_than(&self, now: f64, window: f64) -> bool {
        self.samples
            .first()
            .is_none_or(|oldest| !aged(now, oldest.uptime, window))
    }

    /// How many times the master changed identity after the sample at `start`, up to `now`:
    /// changes between consecutive known identities, so a master missing for a while (the
    /// service down, no workers to find it by) and then back as itself is no restart, and one
    /// missing and back as another process is one. The reference is the identity at `start`,
    /// or the last one known before it; so each restart is counted once by the run that first
    /// sees the new master, and by every window that run's sample is in. None when no master is
    /// known from `start` on.
    pub fn restarts(&self, start: usize, now: &Identity) -> Option<u64> {
        let window = self.samples.get(start..).filter(|w| !w.is_empty())?;
        let in_window = window.iter().map(|s| &s.master).chain([now]);
        if !in_window.clone().any(Identity::is_known) {
            return None;
        }
        let mut last = self.samples[..=start]
            .iter()
            .rev()
            .map(|s| &s.master)
            .find(|m| m.is_known());
        let mut changes = 0;
        for identity in in_window.skip(1).filter(|m| m.is_known()) {
            changes += u64::from(last.is_some_and(|l| l != identity));
            last = Some(identity);
        }
        Some(changes)
    }

    /// How fast the average worker's RSS grows, bytes per hour: the least-squares slope over
    /// the samples from `start` and `now`, those with workers only, since the master last
    /// changed: a restart's new workers say nothing of how the old ones grew. None with fewer
    /// than 3 such samples or less than 2 minutes between the first and the last: a slope
    /// over seconds is the noise of a few requests' buffers, multiplied by hundreds.
    pub fn rss_growth(&self, start: usize, now: &Sample) -> Option<f64> {
        let points: Vec<(f64, f64)> = same_master(self.samples.get(start..)?, &now.master)
            .iter()
            .chain([now])
            .filter(|s| s.workers > 0)
            .map(|s| (s.uptime, s.rss_avg as f64))
            .collect();
        let span = points.last()?.0 - points.first()?.0;
        if points.len() < GROWTH_MIN_SAMPLES || span + EPSILON < GROWTH_MIN_SPAN {
            return None;
        }
        slope(&points).map(|per_second| per_second * 3600.0)
    }
}

/// The samples since the last one whose known master is not `now`'s; all of them when `now`
/// names no master (a selection without one), as nothing then tells a restart.
fn same_master<'a>(samples: &'a [Sample], now: &Identity) -> &'a [Sample] {
    if !now.is_known() {
        return samples;
    }
    let other = samples
        .iter()
        .rposition(|s| s.master.is_known() && s.master != *now);
    &samples[other.map_or(0, |i| i + 1)..]
}

/// The least-squares slope of `y` over `x`; None when all `x` are equal. Centred on the means,
/// so uptimes of months and sizes of gigabytes lose no precision to each other.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// `--average` as given: `30s`, `5m`, `15m`, `1h`, or plain seconds; from 1 s to a day.
pub fn parse_duration(text: &str) -> Result<u64> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let multiplier = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => bail!("{text:?}: not a duration (30s, 5m, 15m, 1h, or seconds)"),
    };
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .with_context(|| format!("{text:?}: not a duration (30s, 5m, 15m, 1h, or seconds)"))?;
    if !(1..=MAX_KEEP).contains(&seconds) {
        bail!("{text:?}: a window from 1s to 24h");
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uptime: f64, user: u64, rss_avg: u64, master: &str) -> Sample {
        Sample {
            uptime,
            cum: Cum { user, system: 0 },
            workers: 2,
            rss_avg,
            master: master.parse().unwrap(),
        }
    }

    fn history(samples: Vec<Sample>) -> History {
        History::new(DEFAULT_KEEP, samples).unwrap()
    }

    #[test]
    fn identity_text_round_trips() {
        for text in ["-", "812:1000", "812:1000,900:2000"] {
            assert_eq!(text.parse::<Identity>().unwrap().to_string(), text);
        }
        let many = Identity::new((1..=20).rev().map(|pid| (pid, 7)));
        assert_eq!(many, Identity::new((1..=8).map(|pid| (pid, 7))));
        for bad in [
            "",
            "812",
            "0:5",
            "900:1,812:1",
            "812:1,812:1",
            "x:1",
            "1:-1",
            "1:1,",
        ] {
            assert!(bad.parse::<Identity>().is_err(), "{bad:?}");
        }
        let nine = (1..=9)
            .map(|p| format!("{p}:1"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(nine.parse::<Identity>().is_err());
    }

    #[test]
    fn new_refuses_what_record_never_makes() {
        let s = |t| sample(t, 0, 0, "-");
        assert!(History::new(60, vec![s(1.0), s(2.0)]).is_ok());
        assert!(History::new(60, vec![s(2.0), s(2.0)]).is_err());
        assert!(History::new(60, vec![s(2.0), s(1.0)]).is_err());
        assert!(History::new(60, vec![s(f64::NAN)]).is_err());
        assert!(History::new(MAX_KEEP + 1, vec![]).is_err());
        let full: Vec<Sample> = (0..=MAX_SAMPLES).map(|i| s(i as f64)).collect();
        assert!(History::new(60, full).is_err());
    }

    #[test]
    fn record_keeps_the_retention_plus_one_older_sample() {
        let mut h = History::default();
        for t in (0..=1200).step_by(60) {
            h.record(sample(t as f64, 0, 0, "-"), None);
        }
        assert_eq!(h.keep(), 900);
        // 1200 - 900 = 300: the samples from 300 on, and none older (300 spans exactly)
        let times: Vec<f64> = h.samples().iter().map(|s| s.uptime).collect();
        assert_eq!(times.first(), Some(&300.0));
        assert_eq!(times.len(), 16);
        // a 20-minute window keeps more from then on, and the retention never shrinks
        h.record(sample(1230.0, 0, 0, "-"), Some(1200));
        h.record(sample(1290.0, 0, 0, "-"), None);
        assert_eq!(h.keep(), 1200);
        assert_eq!(h.samples()[0].uptime, 300.0);
        h.record(sample(1530.0, 0, 0, "-"), None);
        assert_eq!(
            h.samples()[0].uptime,
            300.0,
            "1530 - 1200 = 330: 300 spans it"
        );
        h.record(sample(1560.0, 0, 0, "-"), None);
        assert_eq!(h.samples()[0].uptime, 360.0);
        // a sample at the newest's uptime replaces it
        let len = h.samples().len();
        h.record(sample(1560.0, 5, 0, "-"), None);
        assert_eq!(h.samples().len(), len);
        assert_eq!(h.newest().unwrap().cum.user, 5);
        h.record(sample(1560.0, 0, 0, "-"), Some(MAX_KEEP * 2));
        assert_eq!(h.keep(), MAX_KEEP);
    }

    #[test]
    fn thinning_bounds_the_ring_and_keeps_its_span() {
        let mut h = History::default();
        // a run every 0.25 s for 10 minutes: 2400 samples within the 15-minute retention
        for i in 0..2400 {
            h.record(sample(1000.0 + i as f64 * 0.25, i, 0, "-"), None);
        }
        assert_eq!(h.samples().len(), MAX_SAMPLES);
        assert_eq!(h.samples()[0].uptime, 1000.0);
        assert_eq!(h.newest().unwrap().uptime, 1000.0 + 2399.0 * 0.25);
        // spread over the span: no gap more than a few times the even spacing
        let even = 2399.0 * 0.25 / (MAX_SAMPLES - 1) as f64;
        let widest = h
            .samples()
            .windows(2)
            .map(|w| w[1].uptime - w[0].uptime)
            .fold(0.0, f64::max);
        assert!(widest <= 4.0 * even, "widest gap {widest} s, even {even} s");
    }

    #[test]
    fn thinning_removes_the_crowded_sample() {
        let mut h = History {
            keep: DEFAULT_KEEP,
            samples: (0..MAX_SAMPLES)
                .map(|i| sample(i as f64 * 10.0, 0, 0, "-"))
                .collect(),
        };
        // one sample 1 s after the one at 5000: its neighbours are 11 s apart, the rest 20 s
        h.samples.insert(501, sample(5001.0, 0, 0, "-"));
        h.thin();
        assert_eq!(h.samples.len(), MAX_SAMPLES);
        let removed: Vec<f64> = [5000.0, 5001.0]
            .into_iter()
            .filter(|t| !h.samples.iter().any(|s| s.uptime == *t))
            .collect();
        // neighbours of 5000 are 4990 and 5001 (11 s), of 5001 are 5000 and 5010 (10 s)
        assert_eq!(removed, [5001.0]);
    }

    #[test]
    fn lookups_by_age() {
        let h = history(vec![
            sample(100.0, 0, 0, "-"),
            sample(160.0, 0, 0, "-"),
            sample(219.5, 0, 0, "-"),
            sample(220.0, 0, 0, "-"),
        ]);
        let now = 220.1;
        assert_eq!(h.newest_at_least(now, 1.0).unwrap().uptime, 160.0);
        assert_eq!(h.newest_at_least(now, 0.1).unwrap().uptime, 220.0);
        assert_eq!(h.newest_at_least(now, 200.0), None);
        // 60 s back: 160 is 60.1 s old
        assert_eq!(h.window_start(now, 60.0, 1.0), Some(1));
        // 300 s back: the oldest, and the history is short of it
        assert_eq!(h.window_start(now, 300.0, 1.0), Some(0));
        assert!(h.shorter_than(now, 300.0));
        assert!(!h.shorter_than(now, 120.0));
        // 0 s back: the newest
        assert_eq!(h.window_start(now, 0.0, 0.0), Some(3));
        // a tie goes to the older: 90 s back from 220 lies between 100 (120 s) and 160 (60 s)
        assert_eq!(h.window_start(220.0, 90.0, 0.0), Some(0));
        assert_eq!(History::default().window_start(now, 60.0, 0.0), None);
    }

    #[test]
    fn restarts_between_known_identities() {
        let h = history(vec![
            sample(0.0, 0, 0, "812:1000"),
            sample(60.0, 0, 0, "812:1000"),
            sample(120.0, 0, 0, "-"),
            sample(180.0, 0, 0, "900:2000"),
            sample(240.0, 0, 0, "900:2000"),
            sample(300.0, 0, 0, "-"),
        ]);
        let a: Identity = "812:1000".parse().unwrap();
        let b: Identity = "900:2000".parse().unwrap();
        let c: Identity = "950:3000".parse().unwrap();
        let none = Identity::default();
        // over everything: 812 -> (none) -> 900 -> (none) -> 950
        assert_eq!(h.restarts(0, &c), Some(2));
        assert_eq!(h.restarts(0, &b), Some(1));
        // since the last sample only: none then 950; the last known before was 900
        assert_eq!(h.restarts(5, &c), Some(1));
        assert_eq!(h.restarts(5, &b), Some(0));
        // a change before the window's first sample is not in the window; back as itself
        // after a gap is no restart
        assert_eq!(h.restarts(3, &b), Some(0));
        assert_eq!(h.restarts(2, &a), Some(2), "812 -> 900 -> 812");
        // nobody known from the start on: left out
        assert_eq!(h.restarts(5, &none), None);
        assert_eq!(h.restarts(4, &none), Some(0));
        assert_eq!(History::default().restarts(0, &a), None);
    }

    #[test]
    fn rss_growth_is_the_least_squares_slope() {
        let mib = 1u64 << 20;
        let h = history(vec![
            sample(1000.0, 0, 100 * mib, "-"),
            sample(1060.0, 0, 164 * mib, "-"),
        ]);
        // three points, 1 MiB/s with noise: x 0 60 120, y 100 164 220 MiB
        let now = sample(1120.0, 0, 220 * mib, "-");
        let per_hour = h.rss_growth(0, &now).unwrap();
        // slope = ((-60)(-61.33) + 0 + 60(58.67)) / 7200 = 1.0 MiB/s
        assert_eq!(per_hour, 3600.0 * mib as f64);
        // two samples: left out; under 2 minutes: left out
        assert_eq!(h.rss_growth(1, &now), None);
        assert_eq!(h.rss_growth(0, &sample(1119.0, 0, 0, "-")), None);
        // samples without workers are left out of the fit
        let mut empty = sample(1060.0, 0, 0, "-");
        empty.workers = 0;
        let h = history(vec![sample(1000.0, 0, 100 * mib, "-"), empty]);
        assert_eq!(h.rss_growth(0, &now), None);
        // shrinking is negative
        let h = history(vec![
            sample(0.0, 0, 30 * mib, "-"),
            sample(60.0, 0, 20 * mib, "-"),
        ]);
        let shrink = h.rss_growth(0, &sample(120.0, 0, 10 * mib, "-")).unwrap();
        assert_eq!(shrink, -600.0 * mib as f64);
    }

    // Regression (issue 22, item 6): after a restart the slope mixed the old workers' sizes
    // with the new ones'. A new master starts a new series.
    #[test]
    fn rss_growth_starts_again_after_a_restart() {
        let mib = 1u64 << 20;
        let h = history(vec![
            sample(1000.0, 0, 100 * mib, "812:1000"),
            sample(1060.0, 0, 100 * mib, "812:1000"),
            sample(1120.0, 0, 100 * mib, "812:1000"),
            // restarted: the new workers are small, and grow 10 MiB a minute
            sample(1180.0, 0, 10 * mib, "900:118000"),
            sample(1240.0, 0, 20 * mib, "900:118000"),
        ]);
        // the new series: 2 samples and now, over 120 s: 600 MiB/h, not the mix's fall
        let now = sample(1300.0, 0, 30 * mib, "900:118000");
        assert_eq!(h.rss_growth(0, &now), Some(600.0 * mib as f64));
        // one minute after the restart: too short a series
        let h_short = history(h.samples()[..4].to_vec());
        assert_eq!(
            h_short.rss_growth(0, &sample(1240.0, 0, 20 * mib, "900:118000")),
            None
        );
        // a selection with no master: nothing tells a restart, every sample counts
        let none = history(vec![
            sample(1000.0, 0, 100 * mib, "-"),
            sample(1060.0, 0, 100 * mib, "-"),
        ]);
        assert_eq!(
            none.rss_growth(0, &sample(1120.0, 0, 100 * mib, "-")),
            Some(0.0)
        );
    }

    #[test]
    fn slope_of_a_flat_or_vertical_set() {
        assert_eq!(slope(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]), Some(0.0));
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 6.0)]), None);
        // precision at months of uptime and gigabytes
        let big = [
            (1e7, 4e9),
            (1e7 + 10.0, 4e9 + 10.0),
            (1e7 + 20.0, 4e9 + 20.0),
        ];
        assert_eq!(slope(&big), Some(1.0));
    }

    #[test]
    fn cum_differences_clamp_at_zero() {
        let a = Cum {
            user: 10,
            system: 5,
        };
        assert_eq!(
            a.plus(3, 4),
            Cum {
                user: 13,
                system: 9
            }
        );
        assert_eq!(a.plus(3, 4).since(a), (3, 4));
        assert_eq!(a.since(a.plus(3, 4)), (0, 0));
        assert_eq!(
            Cum {
                user: u64::MAX,
                system: 0
            }
            .plus(1, 0)
            .user,
            u64::MAX
        );
    }

    #[test]
    fn durations() {
        for (text, seconds) in [
            ("30s", 30),
            ("5m", 300),
            ("15m", 900),
            ("1h", 3600),
            ("90", 90),
        ] {
            assert_eq!(parse_duration(text).unwrap(), seconds, "{text}");
        }
        assert_eq!(parse_duration("24h").unwrap(), MAX_KEEP);
        for bad in [
            "",
            "0",
            "0s",
            "25h",
            "-5m",
            "5 m",
            "1.5m",
            "5d",
            "m",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
