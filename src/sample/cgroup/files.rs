//! Acquisition from `/sys`, the bytes: one small parser per cgroup file, v2 and v1. Pure; a
//! file that does not say what its format says is `None`, and the caller names it.

/// A file holding one number (`memory.current`, `memory.usage_in_bytes`).
pub fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A v2 limit (`memory.max`, `memory.high`): bytes, `Ok(None)` for `max`.
pub fn v2_limit(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        other => other.parse().ok().map(Some),
    }
}

/// v1's "no limit" is the largest page count the kernel can hold, in bytes (2^63 rounded down
/// to a page): anything from 2^62 up is no limit any host has.
const V1_UNLIMITED: u64 = 1 << 62;

/// A v1 limit (`memory.limit_in_bytes`): bytes, `Ok(None)` for no limit.
pub fn v1_limit(text: &str) -> Option<Option<u64>> {
    number(text).map(|bytes| (bytes < V1_UNLIMITED).then_some(bytes))
}

/// The value of the `key value` line named `key` (`memory.events`, `memory.oom_control`,
/// `cpu.stat`): `Some(None)` when there is no such line (v2's `cpu.stat` has `nr_periods`
/// only where the cpu controller is on, v1's `memory.oom_control` `oom_kill` only from Linux
/// 4.13), None when the file is malformed (a repeated key, a value that is no number).
pub fn keyed(text: &str, key: &str) -> Option<Option<u64>> {
    let mut found = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            let value: u64 = words.next()?.parse().ok()?;
            if words.next().is_some() || found.replace(value).is_some() {
                return None;
            }
        }
    }
    Some(found)
}

/// The `total=` of the `some` line of a PSI file (`cpu.pressure`): microseconds in which some
/// task of the cgroup stalled, since it was created.
pub fn pressure_some(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let mut totals = line
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("total="));
    let total = totals.next()?.parse().ok()?;
    totals.next().is_none().then_some(total)
}

/// v2 `cpu.max` (`quota period`, `max period`): the quota in cores, `Some(None)` for none.
pub fn v2_cpu_max(text: &str) -> Option<Option<f64>> {
    let mut words = text.split_whitespace();
    let (quota, period) = (words.next()?, words.next()?.parse::<u64>().ok()?);
    if words.next().is_some() || period == 0 {
        return None;
    }
    match quota {
        "max" => Some(None),
        q => Some(Some(q.parse::<u64>().ok()? as f64 / period as f64)),
    }
}

/// v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`: the quota in cores, `Some(None)` for none
/// (a quota of -1).
pub fn v1_cpu_quota(quota: &str, period: &str) -> Option<Option<f64>> {
    let period: u64 = number(period).filter(|&p| p > 0)?;
    match quota.trim() {
        "-1" => Some(None),
        q => Some(Some(q.parse::<u64>().ok()? as f64 / period as f64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_limits() {
        assert_eq!(number("123\n"), Some(123));
        assert_eq!(number("-1\n"), None);
        assert_eq!(number(""), None);
        assert_eq!(v2_limit("max\n"), Some(None));
        assert_eq!(v2_limit("67108864\n"), Some(Some(64 << 20)));
        assert_eq!(v2_limit("lots\n"), None);
        assert_eq!(v1_limit("9223372036854771712\n"), Some(None));
        assert_eq!(v1_limit("67108864\n"), Some(Some(64 << 20)));
    }

    #[test]
    fn keyed_lines_of_events_oom_control_and_cpu_stat() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(Some(1)));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(v1, "oom_kill"), Some(Some(3)));
        // a kernel before 4.13 has no oom_kill line
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            Some(None)
        );
        let stat = "usage_usec 40909153\nnr_periods 100\nnr_throttled 20\nthrottled_usec 5\n";
        assert_eq!(keyed(stat, "nr_periods"), Some(Some(100)));
        assert_eq!(keyed(stat, "nr_throttled"), Some(Some(20)));
        for bad in [
            "oom_kill x\n",
            "oom_kill 1 2\n",
            "oom_kill 1\noom_kill 2\n",
            "oom_kill\n",
        ] {
            assert_eq!(keyed(bad, "oom_kill"), None, "{bad:?}");
        }
    }

    #[test]
    fn the_some_total_of_a_pressure_file() {
        let psi = "some avg10=0.74 avg60=1.48 avg300=0.84 total=4078569\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(pressure_some(psi), Some(4_078_569));
        assert_eq!(pressure_some("full avg10=0 total=5\n"), None);
        assert_eq!(pressure_some("some avg10=0.00 total=-3\n"), None);
        assert_eq!(pressure_some("some total=1 total=2\n"), None);
    }

    #[test]
    fn cpu_quotas() {
        assert_eq!(v2_cpu_max("max 100000\n"), Some(None));
        assert_eq!(v2_cpu_max("20000 100000\n"), Some(Some(0.2)));
        assert_eq!(v2_cpu_max("20000 0\n"), None);
        assert_eq!(v2_cpu_max("20000\n"), None);
        assert_eq!(v1_cpu_quota("-1\n", "100000\n"), Some(None));
        assert_eq!(v1_cpu_quota("150000\n", "100000\n"), Some(Some(1.5)));
        assert_eq!(v1_cpu_quota("150000\n", "0\n"), None);
    }
}
