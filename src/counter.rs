//! Per-process counters: numbers a process's `/proc` files give that only grow, which one run
//! keeps in the tick file and the next measures over the interval. Each is defined once here,
//! with its tick-file key and the line of the file it is read from; the sample, the tick file
//! and the interval all go through [`Counters`], so a new counter is one line here, a metric
//! line in the catalog (`PerSecond(Counter)`), and its README row.
//!
//! A leaf module: the sample reads counters, the state writes them, the metrics take their
//! growth; none of those needs another for it.

/// Where a counter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// a field of `/proc/PID/stat`, by its number in proc(5) (`utime` is 14); a negative
    /// value (the children's fields are signed) reads as 0
    Stat(usize),
    /// a line of `/proc/PID/status`, by its name before the colon
    Status(&'static str),
    /// a line of `/proc/PID/io`, by its name before the colon; a master's tick-file line holds
    /// its reaped children's (see `ProcSample::reaped`)
    Io(&'static str),
}

/// Defines the counters from one table: the enum, its tick-file keys and its sources come out
/// of the same lines, so a counter cannot be written without being read back.
macro_rules! counters {
    ($($counter:ident = $key:literal, $line:expr, $meaning:literal;)+) => {
        /// A per-process counter (see the module's doc).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Counter {
            $(#[doc = $meaning] $counter,)+
        }

        impl Counter {
            /// Every counter, in the order the tick file writes them.
            pub const ALL: &'static [Counter] = &[$(Counter::$counter),+];

            /// Its key in the tick file (`nvcsw=1234`).
            pub fn key(self) -> &'static str {
                match self {
                    $(Counter::$counter => $key,)+
                }
            }

            /// The line of `/proc/PID/...` it is read from.
            pub fn line(self) -> Line {
                match self {
                    $(Counter::$counter => $line,)+
                }
            }
        }
    };
}

counters! {
    // variant  = key,          read from,                                   meaning
    Utime      = "utime",       Line::Stat(14),                              "user CPU time, clock ticks (stat)";
    Stime      = "stime",       Line::Stat(15),                              "system CPU time, clock ticks (stat)";
    Cutime     = "cutime",      Line::Stat(16),                              "user CPU time of reaped children, clock ticks (stat)";
    Cstime     = "cstime",      Line::Stat(17),                              "system CPU time of reaped children, clock ticks (stat)";
    ReadBytes  = "read_bytes",  Line::Io("read_bytes"),                      "bytes read at the storage layer (io)";
    WriteBytes = "write_bytes", Line::Io("write_bytes"),                     "bytes written at the storage layer (io)";
    Nvcsw      = "nvcsw",       Line::Status("nonvoluntary_ctxt_switches"), "times the process was switched out while it could run (status)";
}

/// The CPU ticks, own and reaped children's: what the tick file was first made for, so every
/// process line has them, and what CPU and its recovery from a master are measured in.
pub const TICKS: [Counter; 4] = [
    Counter::Utime,
    Counter::Stime,
    Counter::Cutime,
    Counter::Cstime,
];

/// How many counters there are.
const COUNT: usize = Counter::ALL.len();

impl Counter {
    /// The counter with tick-file key `key`, if this release knows it.
    pub fn from_key(key: &str) -> Option<Counter> {
        Counter::ALL.iter().copied().find(|c| c.key() == key)
    }

    /// The counter read from status line `name`, if any.
    pub fn of_status_line(name: &[u8]) -> Option<Counter> {
        Counter::ALL
            .iter()
            .copied()
            .find(|c| matches!(c.line(), Line::Status(n) if n.as_bytes() == name))
    }

    /// Whether it is read from `/proc/PID/io`.
    pub fn is_io(self) -> bool {
        matches!(self.line(), Line::Io(_))
    }

    /// The counters read from `/proc/PID/io`.
    pub fn io() -> impl Iterator<Item = Counter> {
        Counter::ALL.iter().copied().filter(|c| c.is_io())
    }
}

/// One process's counters, each where it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters([Option<u64>; COUNT]);

impl Counters {
    /// The value of `counter`, where it was read.
    pub fn get(&self, counter: Counter) -> Option<u64> {
        self.0[counter as usize]
    }

    /// Records `value` for `counter`.
    pub fn set(&mut self, counter: Counter, value: u64) {
        self.0[counter as usize] = Some(value);
    }

    /// Records `value` for `counter`, or forgets it (None).
    pub fn put(&mut self, counter: Counter, value: Option<u64>) {
        self.0[counter as usize] = value;
    }

    /// Takes the `io` counters of `other`, known or not: a master's line holds its reaped
    /// children's bytes where a worker's holds its own.
    pub fn take_io(&mut self, other: &Counters) {
        for counter in Counter::io() {
            self.put(counter, other.get(counter));
        }
    }

    /// These counters with `counter` at `value`.
    pub fn with(mut self, counter: Counter, value: u64) -> Counters {
        self.set(counter, value);
        self
    }

    /// CPU ticks alone (`utime stime cutime cstime`), as tests build a process.
    #[cfg(test)]
    pub fn ticks([utime, stime, cutime, cstime]: [u64; 4]) -> Counters {
        let mut c = Counters::default();
        for (counter, value) in TICKS.into_iter().zip([utime, stime, cutime, cstime]) {
            c.set(counter, value);
        }
        c
    }

    /// These counters with bytes read and written, as tests build a process.
    #[cfg(test)]
    pub fn bytes(self, read: u64, write: u64) -> Counters {
        self.with(Counter::ReadBytes, read)
            .with(Counter::WriteBytes, write)
    }

    /// The counters that were read, with their values, in [`Counter::ALL`]'s order.
    pub fn known(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().filter_map(|&c| Some((c, self.get(c)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lines_name_one_counter_each() {
        for (i, &c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c as usize, i);
            assert_eq!(Counter::from_key(c.key()), Some(c));
            let key = c.key();
            // a tick-file key must not be one of the process line's own keys
            let own = ["pid", "start"];
            assert!(!own.contains(&key) && !key.contains(['=', ' ']), "{key}");
            match c.line() {
                Line::Status(name) => assert_eq!(Counter::of_status_line(name.as_bytes()), Some(c)),
                Line::Io(name) => assert!(c.is_io() && !name.is_empty()),
                Line::Stat(field) => assert!((4..=52).contains(&field), "{key}"),
            }
        }
        assert_eq!(Counter::from_key("bogus"), None);
        assert_eq!(Counter::of_status_line(b"VmRSS"), None);
    }

    #[test]
    fn counters_are_known_or_not() {
        let c = Counters::default().with(Counter::Nvcsw, 7);
        assert_eq!(c.get(Counter::Nvcsw), Some(7));
        assert_eq!(c.known().collect::<Vec<_>>(), [(Counter::Nvcsw, 7)]);
        assert_eq!(Counters::default().get(Counter::Nvcsw), None);
    }
}
