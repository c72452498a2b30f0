//! Options step, before clap: what must be known from the raw command line before the options
//! are parsed, because something is printed or timed before then.

use std::ffi::OsString;
use std::time::Duration;

use super::DEFAULT_TIMEOUT_SECS;
use crate::output::Format;

/// `-t` as the command line gives it, found before anything else is read: the watchdog must
/// already run while `--extra-opts` reads its file, which can hang (a FIFO, a stuck NFS mount).
/// `-t N`, `-tN`, `--timeout N` and `--timeout=N` count; anything else (a value clap will
/// refuse, a timeout that only the ini file sets) gets the default until the options are read.
pub fn timeout_in_argv(args: &[OsString]) -> Duration {
    let mut found = None;
    let mut rest = args.iter().skip(1).map(|a| a.to_str());
    while let Some(arg) = rest.next() {
        let value = match arg {
            Some("--") => break,
            Some("-t" | "--timeout") => rest.next().flatten(),
            Some(a) if a.starts_with("--timeout=") => a.strip_prefix("--timeout="),
            Some(a) if a.starts_with("-t") => a.strip_prefix("-t"),
            _ => continue,
        };
        if let Some(secs) = value.and_then(|v| v.parse::<u64>().ok()).filter(|&s| s > 0) {
            found = Some(secs);
        }
    }
    Duration::from_secs(found.unwrap_or(DEFAULT_TIMEOUT_SECS))
}

/// `--format` as the raw command line gives it, for what is printed before the options are
/// parsed (a usage error, a timeout while reading `--extra-opts`): the last one that names a
/// format, else nagios.
pub fn format_in_argv(args: &[OsString]) -> Format {
    let mut found = Format::Nagios;
    let mut rest = args.iter().skip(1).map(|a| a.to_str());
    while let Some(arg) = rest.next() {
        let value = match arg {
            Some("--") => break,
            Some("--format") => rest.next().flatten(),
            Some(a) => a.strip_prefix("--format="),
            None => None,
        };
        match value {
            Some("json") => found = Format::Json,
            Some("nagios") => found = Format::Nagios,
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_found_in_argv_before_parsing() {
        let scan = |args: &[&str]| {
            let mut all = vec![OsString::from("check_workers")];
            all.extend(args.iter().map(OsString::from));
            timeout_in_argv(&all)
        };
        let secs = Duration::from_secs;
        assert_eq!(scan(&["-n", "x"]), secs(10));
        assert_eq!(scan(&["-t", "3"]), secs(3));
        assert_eq!(scan(&["-t3"]), secs(3));
        assert_eq!(scan(&["--timeout", "4"]), secs(4));
        assert_eq!(scan(&["--timeout=5", "--extra-opts=@/x.ini"]), secs(5));
        assert_eq!(scan(&["-t", "abc"]), secs(10));
        assert_eq!(scan(&["-t", "0"]), secs(10));
        assert_eq!(scan(&["-t"]), secs(10));
        assert_eq!(scan(&["--", "-t", "3"]), secs(10));
    }
}
