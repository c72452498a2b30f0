//! InfluxDB and Grafana: the dashboard `contrib/grafana/check_workers-influxdb.json` parses
//! and names every label, and its InfluxQL queries, run against a real `influxd` that Icinga 2
//! fed (see [`super::icinga2`]), return the series of each label.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::Duration;

use serde_json::Value;

use super::{contrib, free_port, missing_label, port_open, read, wait_for, Daemon, LABELS};
use crate::fixture::skip;

const INFLUXD: &str = "/usr/bin/influxd";

/// The items of a JSON array; none when `value` is not an array (or absent: `Value::Null`).
fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// One series of an InfluxDB answer: its tags, and the non-null values of its last column.
type Series = (Vec<(String, String)>, Vec<Value>);

/// Every series of the answer to one InfluxDB query.
fn influx_series(port: u16, query: &str) -> Vec<Series> {
    let path = format!("/query?db=icinga2&epoch=s&q={}", url_encode(query));
    let (status, body) = http(port, "GET", &path);
    assert_eq!(status, 200, "{query}: {body}");
    let parsed: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{query}: {e}: {body}"));
    let result = &items(&parsed["results"])[0];
    assert!(result.get("error").is_none(), "{query}: {body}");
    items(&result["series"])
        .iter()
        .map(|s| {
            let tags = match &s["tags"] {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            let values = items(&s["values"])
                .iter()
                .filter_map(|row| items(row).last().cloned())
                .filter(|v| !v.is_null())
                .collect();
            (tags, values)
        })
        .collect()
}

/// The strings among `values`.
fn strings<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A bare HTTP/1.0 request to 127.0.0.1: (status, body).
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The dashboard's queries: (what, query), the template variables' first.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for var in items(&dashboard["templating"]["list"]) {
        if var["type"].as_str() == Some("query") {
            let name = var["name"].as_str().unwrap();
            let query = var["query"].as_str().unwrap();
            queries.push((format!("variable {name}"), query.to_string()));
        }
    }
    for panel in items(&dashboard["panels"]) {
        let title = panel["title"].as_str().unwrap();
        for target in items(&panel["targets"]) {
            let query = target["query"].as_str().unwrap();
            let refid = target["refId"].as_str().unwrap();
            queries.push((format!("panel {title:?} {refid}"), query.to_string()));
        }
    }
    queries
}

fn load_dashboard() -> Value {
    let path = contrib("grafana/check_workers-influxdb.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The dashboard is JSON Grafana can import (an InfluxDB input, raw InfluxQL targets) and its
/// panels together show every label. Needs no daemon.
#[test]
fn grafana_dashboard_parses_and_covers_every_label() {
    let dashboard = load_dashboard();
    let inputs = dashboard["__inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["pluginId"].as_str(), Some("influxdb"));
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 6, "{queries:?}");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["rawQuery"], Value::Bool(true));
            assert_eq!(target["datasource"]["uid"].as_str(), Some("${DS_INFLUXDB}"));
        }
    }
    let all: String = queries.iter().map(|(_, q)| q.as_str()).collect();
    for label in LABELS {
        // 'label' or a regex alternative naming it
        let named = all.contains(&format!("'{label}'"))
            || all.contains(&format!("|{label})"))
            || all.contains(&format!("({label}|"))
            || all.contains(&format!("|{label}|"))
            || (label.starts_with("cpu") && all.contains("/^cpu(_user|_system)?$/"));
        assert!(named, "no panel shows {label}");
    }
}

/// The figures of the workers' cgroup (issue 21), which not every run has.
const CGROUP_LABELS: [&str; 7] = [
    "cg_memory",
    "cg_memory_pct",
    "oom_kills",
    "cpu_throttled",
    "psi_cpu",
    "psi_memory",
    "psi_io",
];

/// The cgroup's figures have their panels: OOM kills, pressure and throttling, the charge.
#[test]
fn grafana_dashboard_shows_the_cgroup_figures() {
    let queries = dashboard_queries(&load_dashboard());
    for label in CGROUP_LABELS {
        let panel = queries.iter().find(|(_, q)| {
            q.contains(&format!("'{label}'"))
                || q.contains(&format!("({label}|"))
                || q.contains(&format!("|{label}|"))
                || q.contains(&format!("|{label})"))
        });
        assert!(panel.is_some(), "no panel shows {label}");
    }
    let oom = queries
        .iter()
        .find(|(_, q)| q.contains("'oom_kills'"))
        .unwrap();
    assert!(
        oom.0.contains("OOM kills") && oom.1.starts_with("SELECT sum("),
        "{oom:?}"
    );
}

/// Fills in the dashboard's template variables as Grafana would for one host and service.
fn grafana_interpolate(query: &str, host: &str, service: &str) -> String {
    query
        .replace("$measurement", "workers")
        .replace("$hostname", host)
        .replace("$service", service)
        .replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval", "1s")
}

/// Starts influxd with its data in `dir` and an `icinga2` database; None when not installed.
pub(super) fn start_influxd(test: &str, dir: &Path) -> Option<(Daemon, u16)> {
    if !Path::new(INFLUXD).exists() {
        skip(
            &format!("{test} (its InfluxDB and Grafana part)"),
            &format!("{INFLUXD} is missing (.ci/setup-daemons installs it)"),
        );
        return None;
    }
    let (http_port, rpc_port) = (free_port(), free_port());
    let conf = dir.join("influxdb.conf");
    fs::write(
        &conf,
        format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http_port}\"\n  log-enabled = false\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut cmd = StdCommand::new(INFLUXD);
    cmd.arg("-config").arg(&conf);
    let influxd = Daemon::start("influxd", cmd, &dir.join("influxd.log"));
    let up = wait_for(Duration::from_secs(15), || {
        port_open(http_port) && http(http_port, "GET", "/ping").0 == 204
    });
    assert!(up, "influxd does not answer\n{}", influxd.log());
    let (status, body) = http(
        http_port,
        "POST",
        &format!("/query?q={}", url_encode("CREATE DATABASE icinga2")),
    );
    assert_eq!(status, 200, "{body}");
    Some((influxd, http_port))
}

/// The InfluxdbWriter object that makes Icinga 2 send every check result to the influxd on
/// `port`, at once.
pub(super) fn icinga_writer(port: u16) -> String {
    format!(
        "object InfluxdbWriter \"influxdb\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  \
         database = \"icinga2\"\n  flush_interval = 1s\n  flush_threshold = 1\n  \
         enable_send_thresholds = true\n}}\n"
    )
}

/// Icinga's InfluxdbWriter (see [`icinga_writer`]) parsed the perfdata of the services `live`
/// and `every` of host `testnode` into points, units and all, and every query of the dashboard
/// finds them. `icinga` is stopped once the points are in.
pub(super) fn assert_dashboard_shows_icinga_points(port: u16, icinga: Daemon) {
    let mut seen = Vec::new();
    let points_in = wait_for(Duration::from_secs(15), || {
        let series = influx_series(
            port,
            "SHOW TAG VALUES FROM \"workers\" WITH KEY = \"metric\"",
        );
        seen = strings(series.iter().flat_map(|(_, values)| values));
        missing_label(&seen).is_none()
    });
    assert!(points_in, "metrics in InfluxDB: {seen:?}\n{}", icinga.log());
    drop(icinga);

    // Icinga parsed the units: B became bytes, % percent; the count has none
    let units = influx_series(
        port,
        "SELECT last(\"unit\") FROM \"workers\" WHERE \"service\" = 'live' GROUP BY \"metric\"",
    );
    let unit_of = |metric: &str| {
        units
            .iter()
            .find(|(tags, _)| tags.contains(&("metric".to_string(), metric.to_string())))
            .and_then(|(_, values)| values.last().and_then(|v| v.as_str().map(str::to_string)))
    };
    for label in LABELS {
        let want = match label {
            "workers" => None,
            l if l.starts_with("cpu") => Some("percent".to_string()),
            _ => Some("bytes".to_string()),
        };
        assert_eq!(unit_of(label), want, "unit of {label}: {units:?}");
    }

    let dashboard = load_dashboard();
    let mut shown: Vec<String> = Vec::new();
    for (what, query) in dashboard_queries(&dashboard) {
        for service in ["live", "every"] {
            let q = grafana_interpolate(&query, "testnode", service);
            let series = influx_series(port, &q);
            if what.starts_with("variable") {
                // SHOW TAG VALUES: rows of [key, value]
                let values = strings(series.iter().flat_map(|(_, v)| v));
                let want = if what.ends_with("hostname") {
                    "testnode"
                } else {
                    service
                };
                assert!(values.iter().any(|v| v == want), "{what}: {q}: {values:?}");
                continue;
            }
            if q.contains("last(\"crit\")") && service == "live" {
                continue; // the live service has no cpu threshold
            }
            if CGROUP_LABELS.iter().any(|label| q.contains(label)) {
                continue; // whether a host has them depends on its cgroups (docs/cgroup.md)
            }
            assert!(
                series.iter().any(|(_, values)| !values.is_empty()),
                "{what} for {service}: no data from {q}"
            );
            for (tags, values) in &series {
                if values.is_empty() {
                    continue;
                }
                assert!(
                    tags.contains(&("service".into(), service.into())),
                    "{what}: {tags:?}"
                );
                match tags.iter().find(|(k, _)| k == "metric") {
                    Some((_, metric)) => shown.push(metric.clone()),
                    None => {
                        if let Some(m) = q.split("\"metric\" = '").nth(1) {
                            shown.push(m.split('\'').next().unwrap().to_string());
                        }
                    }
                }
            }
        }
    }
    if let Some(label) = missing_label(&shown) {
        panic!("no panel showed {label}: {shown:?}");
    }
}
