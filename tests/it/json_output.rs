//! `--format json` (issue 19): every outcome of a fixture run is one JSON object of the schema
//! in docs/json.md, nothing else on stdout, with the plugin's exit code: OK, WARNING, CRITICAL,
//! UNKNOWN, a usage error and a timeout.

use std::fs;
use std::process::Output;

use serde_json::Value;

use crate::fixture::{binary, check, command, mkfifo, state_dir, FakeProc, ProcTree};

/// The one JSON object a run printed, after checking it against docs/json.md's schema.
fn object(out: &Output) -> Value {
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    schema(&value);
    assert_eq!(value["exit_code"], out.status.code().unwrap(), "{text}");
    value
}

/// docs/json.md: the keys, their types, and what the state and the exit code may be.
pub fn schema(v: &Value) {
    let time = v["time"].as_str().expect("time");
    // 2026-12-06T16:20:00+01:00
    assert_eq!(time.len(), 25, "{time}");
    assert!(v["label"].is_string() || v["label"].is_null(), "{v}");
    let state = v["state"].as_str().expect("state");
    let code = v["exit_code"].as_i64().expect("exit_code");
    let states = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];
    assert_eq!(
        states.iter().position(|s| *s == state),
        Some(code as usize),
        "{v}"
    );
    assert!(v["summary"].is_string(), "{v}");
    for (label, m) in v["metrics"].as_object().expect("metrics") {
        assert!(m["value"].is_number(), "{label}: {m}");
        assert!(m["uom"].is_string(), "{label}: {m}");
        for key in ["warn", "crit"] {
            assert!(m[key].is_string() || m[key].is_null(), "{label}: {m}");
        }
        for key in ["min", "max"] {
            assert!(m[key].is_number() || m[key].is_null(), "{label}: {m}");
        }
    }
    assert!(v["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .all(Value::is_string));
    if let Some(workers) = v.get("workers") {
        for w in workers.as_array().expect("workers") {
            assert!(
                w["pid"].is_i64()
                    && w["comm"].is_string()
                    && w["user"].is_string()
                    && w["rss"].is_u64(),
                "{w}"
            );
        }
        // with the workers, the listening sockets measured (none in a fixture tree)
        for s in v["sockets"].as_array().expect("sockets with -v") {
            assert!(
                s["listen"].is_string() && s["queue"].is_u64() && s["limit"].is_u64(),
                "{s}"
            );
        }
    }
}

/// nginx master 812 (root) and workers 813 and 814, 100 ticks each.
fn nginx(tree: &ProcTree, ticks: u64) {
    tree.put(&FakeProc::new(812, 1, "nginx", 0));
    for pid in [813, 814] {
        tree.put(&FakeProc::new(pid, 812, "nginx", 33).ticks(ticks, 0));
    }
}

#[test]
fn every_state_is_one_json_object() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, 0);
    let run = |args: &[&str]| {
        check(tree.path(), state.path())
            .args(["-n", "nginx", "--interval", "0", "--format", "json"])
            .args(args)
            .output()
            .unwrap()
    };
    let first = object(&run(&[]));
    assert_eq!(first["state"], "OK");
    assert_eq!(first["label"], "nginx");
    assert_eq!(
        first["notes"][0],
        "no baseline (first run) and --interval 0: cpu not measured in this run"
    );
    // 600 ticks each over 60 s: 20 % of a core
    tree.set_uptime(1060.0);
    nginx(&tree, 600);
    let warning = object(&run(&["-w", "15", "-v"]));
    assert_eq!(warning["state"], "WARNING");
    assert_eq!(
        warning["summary"],
        "nginx: 2 workers (master 812), cpu 20.0% > 15, rss 4.0 MiB avg, vms 100.0 MiB avg"
    );
    let cpu = &warning["metrics"]["cpu"];
    assert_eq!(
        (
            cpu["value"].as_f64(),
            cpu["uom"].as_str(),
            cpu["warn"].as_str()
        ),
        (Some(20.0), Some("%"), Some("15"))
    );
    assert_eq!(
        (cpu["min"].as_f64(), cpu["max"].as_f64()),
        (Some(0.0), Some(200.0))
    );
    assert_eq!(warning["metrics"]["rss"]["value"], 4_194_304.0);
    assert_eq!(warning["workers"].as_array().unwrap().len(), 2);
    assert_eq!(warning["workers"][0]["cpu"], 10.0);
    // gone: CRITICAL
    for pid in [812, 813, 814] {
        tree.remove(pid);
    }
    let critical = object(&run(&[]));
    assert_eq!(critical["state"], "CRITICAL");
    assert!(critical.get("workers").is_none(), "only with -v");
}

#[test]
fn failures_usage_errors_and_timeouts_are_json_too() {
    let state = state_dir();
    // an error of the run: UNKNOWN, no metrics
    let missing = check("/nonexistent".as_ref(), state.path())
        .args(["-n", "x", "--format", "json"])
        .output()
        .unwrap();
    let v = object(&missing);
    assert_eq!(
        (v["state"].as_str(), v["label"].as_str()),
        (Some("UNKNOWN"), None)
    );
    assert!(v["metrics"].as_object().unwrap().is_empty());
    // a usage error, before any option is understood but --format
    let usage = command(binary())
        .args(["--bogus", "--format=json"])
        .output()
        .unwrap();
    let v = object(&usage);
    assert_eq!(
        v["summary"],
        "unexpected argument '--bogus' found (see --help)"
    );
    // a hung /proc read: the watchdog's answer
    let tree = ProcTree::new(1000.0);
    nginx(&tree, 0);
    let status = tree.path().join("813/status");
    fs::remove_file(&status).unwrap();
    mkfifo(&status);
    let hung = check(tree.path(), state.path())
        .args([
            "-n",
            "nginx",
            "--interval",
            "0",
            "-t",
            "1",
            "--format",
            "json",
        ])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    let v = object(&hung);
    assert_eq!(v["summary"], "timed out after 1s");
    // --help, as the guidelines ask exit 3: its text in the summary
    let help = command(binary())
        .args(["--format", "json", "--help"])
        .output()
        .unwrap();
    let v = object(&help);
    assert!(v["summary"]
        .as_str()
        .unwrap()
        .contains("Usage: check_workers"));
}
