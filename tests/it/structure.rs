//! The shape of the source, held by `cargo test`: no module cycles between the pipeline's
//! steps, no function over 60 lines, no file over 600 lines before its tests. The same reading
//! of `src/` as the maintainers' structure-check script (kept outside the project), ported so
//! that the project holds its own rules: a file is read up to its first `#[cfg(test)]`, a
//! module depends on another when it names `crate::other`, and a function runs from its `fn`
//! line to the first line that closes it at its own indentation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use regex_lite::Regex;

/// The most lines a source file may hold before its tests.
const MAX_FILE_LINES: usize = 600;

/// The most lines a function may span.
const MAX_FN_LINES: usize = 60;

/// Files over [`MAX_FILE_LINES`] not yet split, each with the size it may not grow past. Issue
/// 18 splits them; remove an entry with the split that brings its file under the limit.
const NOT_YET_SPLIT: [(&str, usize); 0] = [];

/// Every `.rs` file under `src/`, by module path (`sample::parse`, `state`, `main`), with its
/// text up to its first `#[cfg(test)]`.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .map(|path: PathBuf| {
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let mut name = parts.join("::");
            if name == "mod" {
                name.clear();
            } else if let Some(parent) = name.strip_suffix("::mod") {
                name = parent.to_string();
            }
            let bytes = fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            (name, before_tests(&text).to_string())
        })
        .collect()
}

/// The text up to the first `#[cfg(test)]`: what the file holds that is not tests.
fn before_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Which top-level modules each top-level module names (`crate::x`, `use crate::{x, ...}`).
fn dependencies(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let tops: BTreeSet<&str> = modules
        .keys()
        .filter(|m| !matches!(m.as_str(), "main" | "lib"))
        .map(|m| top(m))
        .collect();
    let named = Regex::new(r"crate::(\w+)").unwrap();
    let group = Regex::new(r"use crate::\{([^}]*)\}").unwrap();
    let member = Regex::new(r"(?:^|,)\s*(\w+)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in modules {
        let from = top(module);
        let mut deps: BTreeSet<&str> = named
            .captures_iter(text)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        for g in group.captures_iter(text) {
            let inner = g.get(1).unwrap().as_str();
            deps.extend(
                member
                    .captures_iter(inner)
                    .map(|c| c.get(1).unwrap().as_str()),
            );
        }
        let entry = graph.entry(from.to_string()).or_default();
        entry.extend(
            deps.into_iter()
                .filter(|d| tops.contains(d) && *d != from)
                .map(str::to_string),
        );
    }
    graph
}

/// The modules each module reaches through its dependencies.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<&str> = vec![from];
    while let Some(m) = pending.pop() {
        for next in graph.get(m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                pending.push(next);
            }
        }
    }
    seen
}

#[test]
fn no_module_cycles_in_src() {
    let graph = dependencies(&modules());
    let mut cycles = BTreeSet::new();
    for module in graph.keys() {
        let from_here = reachable(&graph, module);
        if from_here.contains(module) {
            let cycle: BTreeSet<&String> = from_here
                .iter()
                .filter(|other| reachable(&graph, other).contains(module))
                .collect();
            cycles.insert(format!("{cycle:?}"));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that depend on each other: {cycles:?}"
    );
}

/// Every function in the source with its span in lines, longest first.
fn function_lengths(modules: &BTreeMap<String, String>) -> Vec<(usize, String)> {
    let item = Regex::new(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?fn\s+(\w+)").unwrap();
    let mut lengths = Vec::new();
    for (module, text) in modules {
        let lines: Vec<&str> = text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(found) = item.captures(line) else {
                continue;
            };
            let close = format!("{}}}", found.get(1).unwrap().as_str());
            if let Some(end) = (i + 1..lines.len()).find(|&j| lines[j] == close) {
                let name = found.get(6).unwrap().as_str();
                lengths.push((end - i + 1, format!("{module}::{name}")));
            }
        }
    }
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths
}

#[test]
fn no_function_in_src_over_60_lines() {
    let lengths = function_lengths(&modules());
    let over: Vec<_> = lengths.iter().filter(|(n, _)| *n > MAX_FN_LINES).collect();
    assert!(
        over.is_empty(),
        "functions over {MAX_FN_LINES} lines: {over:?}"
    );
    assert!(
        lengths.len() > 100,
        "the scan found functions: {}",
        lengths.len()
    );
}

#[test]
fn no_src_file_over_600_lines_before_its_tests() {
    let modules = modules();
    let mut over = Vec::new();
    for (module, text) in &modules {
        let lines = text.split('\n').count();
        let allowed = NOT_YET_SPLIT
            .iter()
            .find(|(name, _)| name == module)
            .map_or(MAX_FILE_LINES, |&(_, ceiling)| ceiling);
        if lines > allowed {
            over.push(format!("{module}: {lines} lines (at most {allowed})"));
        }
    }
    assert!(over.is_empty(), "split these files by concern: {over:?}");
    for (module, _) in NOT_YET_SPLIT {
        assert!(
            modules.contains_key(module),
            "{module} is gone: drop its entry"
        );
    }
}
