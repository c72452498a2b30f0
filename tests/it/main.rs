//! The integration test crate: runs the built binary the way Nagios would.

mod cgroup;
mod cgroup_real;
mod counters;
mod daemons;
mod fixture;
mod fixture_runs;
mod hidden_proc;
mod history;
mod hostile_cmdline;
mod hostile_user;
mod io;
mod json_output;
mod large_memory;
mod pidfile;
mod privileges;
mod proc_reads;
mod real_processes;
mod selection;
mod state_safety;
mod structure;
mod watch;
