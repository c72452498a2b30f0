//! Criterion bench of the pure core at 10,000 workers: no /proc, no file system.
//!
//! `cargo bench --bench core`. The input is a master with 10,000 worker children held in
//! memory; the previous sample is 60 s older. Most workers are measured by delta, 1 % started
//! inside the interval and 1 % are reused pids (unknown basis), so every branch of the CPU
//! computation is taken.

use std::hint::black_box;

use check_workers::check::{self, evaluate, Annotations};
use check_workers::cli::{self, Config};
use check_workers::counter::{Counter, Counters};
use check_workers::metrics::Previous;
use check_workers::output::{render, Outcome};
use check_workers::sample::{OwnProcesses, ProcSample, Snapshot};
use check_workers::select::{self, Selection};
use check_workers::state::TickState;
use criterion::{criterion_group, criterion_main, Criterion};

const WORKERS: usize = 10_000;
const HZ: u64 = 100;
const MASTER_PID: i32 = 1000;
const PREVIOUS_UPTIME: f64 = 1000.0;
const NOW_UPTIME: f64 = 1060.0;

/// A small deterministic generator so figures (and the per-worker sort) are not uniform.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn proc(pid: i32, ppid: i32, uid: u32, starttime: u64, utime: u64, stime: u64) -> ProcSample {
    ProcSample {
        pid,
        ppid,
        comm: "w".into(),
        state: 'S',
        kernel_thread: false,
        uid,
        starttime,
        counters: Counters::default()
            .with(Counter::Utime, utime)
            .with(Counter::Stime, stime)
            .with(Counter::Cutime, 0)
            .with(Counter::Cstime, 0),
        rss: 0,
        vms: 0,
        ..ProcSample::default()
    }
}

struct Input {
    snapshot: Snapshot,
    selection: Selection,
    previous: TickState,
    config: Config,
}

fn input() -> Input {
    let mut rng = Lcg(42);
    let base = |procs: Vec<ProcSample>, uptime: f64| Snapshot {
        uptime,
        btime: 1_700_000_000,
        clock_ticks: HZ,
        cpus: 2,
        procs,
        ..Snapshot::default()
    };

    // previous sample: master + all workers, started 500 s after boot
    let mut before = vec![proc(MASTER_PID, 1, 0, 10_000, 500, 300)];
    let mut now = vec![proc(MASTER_PID, 1, 0, 10_000, 520, 310)];
    for i in 0..WORKERS {
        let pid = MASTER_PID + 1 + i as i32;
        let (utime, stime) = (rng.next(50_000), rng.next(20_000));
        before.push(proc(pid, MASTER_PID, 33, 50_000, utime, stime));
        let mut p = match i % 100 {
            // started inside the interval: all its ticks count
            0 => proc(pid, MASTER_PID, 33, 103_000, rng.next(300), rng.next(100)),
            // reused pid of a process older than the interval: unknown share
            1 => proc(pid, MASTER_PID, 33, 60_000, rng.next(300), rng.next(100)),
            _ => proc(
                pid,
                MASTER_PID,
                33,
                50_000,
                utime + rng.next(60),
                stime + rng.next(20),
            ),
        };
        p.rss = (2 + rng.next(200)) << 20;
        p.vms = p.rss + (100 << 20);
        now.push(p);
    }

    let config = cli::parse(
        [
            "check_workers",
            "-n",
            "w",
            "-w",
            "80",
            "-c",
            "95",
            "--state-dir",
            "/tmp/x",
        ],
        &cli::Environment::default(),
    )
    .expect("bench arguments parse");
    let own = OwnProcesses::default();
    let previous_selection = select::select(before, &config.selector, own, &select::Master::Detect);
    let processes = (
        &previous_selection.workers[..],
        &previous_selection.masters[..],
    );
    let previous = TickState::new(&base(Vec::new(), PREVIOUS_UPTIME), processes);
    let selection = select::select(now, &config.selector, own, &select::Master::Detect);
    assert_eq!(selection.workers.len(), WORKERS);
    assert_eq!(selection.masters.len(), 1);
    Input {
        snapshot: base(Vec::new(), NOW_UPTIME),
        selection,
        previous,
        config,
    }
}

fn core(c: &mut Criterion) {
    let input = input();
    let (evaluation, ticks) = evaluate(
        &input.snapshot,
        &input.selection,
        Previous::stored(&input.previous),
        &input.config,
    );
    assert_eq!(evaluation.figures.workers, WORKERS);
    assert!(evaluation.figures.cpu.is_some());
    let report = check::report(
        &input.config,
        &input.selection,
        evaluation,
        Annotations::default(),
    );
    let tick_text = ticks.to_string();

    let mut group = c.benchmark_group("10k_workers");
    // 50 samples of ~2 ms runs fit criterion's default 5 s measurement time
    group.sample_size(50);
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            evaluate(
                black_box(&input.snapshot),
                black_box(&input.selection),
                Previous::stored(black_box(&input.previous)),
                black_box(&input.config),
            )
        })
    });
    // the report is cloned as main hands its own over: the clone is part of what is timed
    group.bench_function("render_v1", |b| {
        b.iter(|| render(&Outcome::report(black_box(&report).clone(), 1)))
    });
    group.bench_function("evaluate_and_render_v1", |b| {
        b.iter(|| {
            let (evaluation, ticks) = evaluate(
                black_box(&input.snapshot),
                black_box(&input.selection),
                Previous::stored(black_box(&input.previous)),
                black_box(&input.config),
            );
            let report = check::report(
                &input.config,
                &input.selection,
                evaluation,
                Annotations::default(),
            );
            (render(&Outcome::report(report, 1)), ticks)
        })
    });
    // the tick file each run writes and the next run parses
    group.bench_function("tick_file_format", |b| {
        b.iter(|| black_box(&ticks).to_string())
    });
    group.bench_function("tick_file_parse", |b| {
        b.iter(|| TickState::parse(black_box(&tick_text)).expect("own output parses"))
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
