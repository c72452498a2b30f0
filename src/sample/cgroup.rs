//! Acquisition from `/sys`: what the workers' cgroup (v2) allows them, read once the workers
//! are known to share one. Apart from the proc reads as it reads another tree.

use std::fs;
use std::path::Path;

/// What a cgroup (v2) allows its processes, the tightest along the path to the root.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupLimits {
    /// memory.max, bytes
    pub memory_max: Option<u64>,
    /// cpu.max quota / period, in cores
    pub cpu_cores: Option<f64>,
    /// memory.current of the cgroup itself: the memory charged to it, each page once
    /// (its processes' pages and the page cache they brought in), bytes
    pub memory_charge: Option<u64>,
}

/// Reads memory.max and cpu.max of `cgroup` (a v2 path like `/system.slice/nginx.service`)
/// and of its ancestors under `<sys_root>/fs/cgroup`. None when nothing is limited.
pub fn cgroup_limits(sys_root: &Path, cgroup: &str) -> Option<CgroupLimits> {
    let base = sys_root.join("fs/cgroup");
    let mut limits = CgroupLimits::default();
    let mut path = cgroup.trim_end_matches('/');
    limits.memory_charge = fs::read_to_string(
        base.join(path.trim_start_matches('/'))
            .join("memory.current"),
    )
    .ok()
    .and_then(|text| text.trim().parse::<u64>().ok())
    .filter(|_| !path.is_empty());
    loop {
        let dir = base.join(path.trim_start_matches('/'));
        if let Ok(text) = fs::read_to_string(dir.join("memory.max")) {
            if let Ok(bytes) = text.trim().parse::<u64>() {
                limits.memory_max = Some(limits.memory_max.map_or(bytes, |m| m.min(bytes)));
            }
        }
        if let Ok(text) = fs::read_to_string(dir.join("cpu.max")) {
            let mut parts = text.split_whitespace();
            if let (Some(Ok(quota)), Some(Ok(period))) = (
                parts.next().map(str::parse::<f64>),
                parts.next().map(str::parse::<f64>),
            ) {
                if quota > 0.0 && period > 0.0 {
                    let cores = quota / period;
                    limits.cpu_cores = Some(limits.cpu_cores.map_or(cores, |c| c.min(cores)));
                }
            }
        }
        match path.rfind('/') {
            Some(cut) if !path.is_empty() => path = &path[..cut],
            _ => break,
        }
    }
    (limits != CgroupLimits::default()).then_some(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_along_the_path_and_the_cgroups_own_charge() {
        let sys = tempfile::tempdir().unwrap();
        let slice = sys.path().join("fs/cgroup/system.slice");
        let unit = slice.join("nginx.service");
        fs::create_dir_all(&unit).unwrap();
        fs::write(slice.join("memory.max"), "1073741824\n").unwrap();
        fs::write(slice.join("cpu.max"), "max 100000\n").unwrap();
        fs::write(unit.join("memory.max"), "max\n").unwrap();
        fs::write(unit.join("cpu.max"), "150000 100000\n").unwrap();
        fs::write(unit.join("memory.current"), "123\n").unwrap();
        let limits = cgroup_limits(sys.path(), "/system.slice/nginx.service/").unwrap();
        assert_eq!(
            limits,
            CgroupLimits {
                memory_max: Some(1 << 30),
                cpu_cores: Some(1.5),
                memory_charge: Some(123),
            }
        );
        // nothing limited, and the root's charge is not a cgroup's
        fs::write(sys.path().join("fs/cgroup/memory.current"), "9\n").unwrap();
        assert_eq!(cgroup_limits(sys.path(), "/"), None);
        assert_eq!(cgroup_limits(sys.path(), "/user.slice"), None);
    }
}
