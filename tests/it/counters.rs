//! The per-process counters of `src/counter.rs` (issue 18): one definition each, kept in the
//! tick file by name and measured per second over the CPU's interval by one computation. The
//! counter that proved the path is `nvcsw`, involuntary context switches; exact figures on
//! fixture trees.

use std::fs;

use crate::fixture::perfdata::of_line;
use crate::fixture::{run_at, state_dir, status_line, stdout_of, tick_file, FakeProc, ProcTree};

const WWW: u32 = 33;

/// nginx master 812 and workers `(pid, starttime, nvcsw)`.
fn nginx(tree: &ProcTree, workers: &[(i32, u64, u64)]) {
    tree.put(&FakeProc::new(812, 1, "nginx", 0).started(1000));
    for &(pid, start, nvcsw) in workers {
        tree.put(
            &FakeProc::new(pid, 812, "nginx", WWW)
                .started(start)
                .switched(nvcsw),
        );
    }
}

#[test]
fn involuntary_switches_per_second_over_the_interval() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, &[(813, 1100, 100), (814, 1100, 200)]);
    let first = run_at(&tree, state.path(), 1000.0, &[]);
    assert!(!status_line(&first).contains(" nvcsw="), "no interval yet");
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert!(ticks.contains(" cstime=0 nvcsw=100\n"), "{ticks}");
    // a minute later: 600 and 1200 more, and worker 815 born at 1030 s with 60, all its own
    nginx(
        &tree,
        &[(813, 1100, 700), (814, 1100, 1400), (815, 103_000, 60)],
    );
    let out = run_at(&tree, state.path(), 1060.0, &["-w", "nvcsw=25"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = status_line(&out);
    // (600 + 1200 + 60) / 60 s
    assert_eq!(
        of_line(&line).item("nvcsw"),
        Some("nvcsw=31;25;;0;"),
        "{text}"
    );
    assert!(line.contains("nvcsw 31 > 25"), "{text}");
}

#[test]
fn a_reused_pid_counts_from_zero() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, &[(813, 1100, 100), (814, 1100, 5000)]);
    run_at(&tree, state.path(), 1000.0, &[]);
    // 814 is another process now, born at 1030 s: its 120 are all inside the interval, and
    // the 5000 of its predecessor are not subtracted
    nginx(&tree, &[(813, 1100, 100), (814, 103_000, 120)]);
    let out = run_at(&tree, state.path(), 1060.0, &[]);
    assert_eq!(
        of_line(&status_line(&out)).item("nvcsw"),
        Some("nvcsw=2;;;0;"),
        "{}",
        stdout_of(&out)
    );
}

/// A tick file of a release without the counter (or its status without the line): the metric
/// is left out for one interval, said at -v, never a sum over some of the workers.
#[test]
fn a_baseline_without_the_counter_leaves_it_out_once() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, &[(813, 1100, 100), (814, 1100, 200)]);
    run_at(&tree, state.path(), 1000.0, &[]);
    let path = tick_file(state.path());
    let text = fs::read_to_string(&path).unwrap();
    let without = text.replace(" nvcsw=100", "").replace(" nvcsw=200", "");
    assert_ne!(without, text);
    fs::write(&path, without).unwrap();
    nginx(&tree, &[(813, 1100, 700), (814, 1100, 1400)]);
    let out = run_at(&tree, state.path(), 1060.0, &[]);
    let text = stdout_of(&out);
    assert!(!status_line(&out).contains(" nvcsw="), "{text}");
    assert!(!text.contains("nvcsw:"), "only at -v: {text}");
    nginx(&tree, &[(813, 1100, 1300), (814, 1100, 2600)]);
    let out = run_at(&tree, state.path(), 1120.0, &["-v"]);
    let text = stdout_of(&out);
    // the run before wrote the counter, so this interval has it: 1800 over 60 s
    assert_eq!(
        of_line(&status_line(&out)).item("nvcsw"),
        Some("nvcsw=30;;;0;"),
        "{text}"
    );
    // and with -v, the gap is named when there is one
    fs::write(
        &path,
        fs::read_to_string(&path)
            .unwrap()
            .replace(" nvcsw=1300", ""),
    )
    .unwrap();
    let out = run_at(&tree, state.path(), 1180.0, &["-v"]);
    let text = stdout_of(&out);
    assert!(
        text.contains(
            "\nnvcsw: 1 workers without their count at both samples (a tick file of an older \
             release, or not in their status); left out\n"
        ),
        "{text}"
    );
}
