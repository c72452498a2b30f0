//! Options step, before clap: `--extra-opts=[section][@file]` reads options from an ini file,
//! as every monitoring-plugins check does, so long thresholds and paths can live in one
//! managed file instead of every service definition.
//!
//! Options from the file go before those on the command line, so the command line wins for
//! single-valued options (and adds to repeatable ones like `-w`).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The section read when `--extra-opts` names none: the plugin's name.
const DEFAULT_SECTION: &str = "check_workers";

/// File names looked for in each directory of `$MP_CONFIG_PATH` / `$NAGIOS_CONFIG_PATH`.
const DEFAULT_FILE_NAMES: [&str; 3] = [
    "monitoring-plugins.ini",
    "plugins.ini",
    "nagios-plugins.ini",
];

/// Where monitoring-plugins looks when no file is named, in its order (the newer locations
/// first, then the deprecated ones it still reads).
const DEFAULT_PATHS: [&str; 11] = [
    "/usr/local/etc/monitoring-plugins/monitoring-plugins.ini",
    "/usr/local/etc/monitoring-plugins.ini",
    "/etc/monitoring-plugins/monitoring-plugins.ini",
    "/etc/monitoring-plugins.ini",
    "/etc/nagios/plugins.ini",
    "/usr/local/nagios/etc/plugins.ini",
    "/usr/local/etc/nagios/plugins.ini",
    "/etc/opt/nagios/plugins.ini",
    "/etc/nagios-plugins.ini",
    "/usr/local/etc/nagios-plugins.ini",
    "/etc/opt/nagios-plugins.ini",
];

/// Replaces every `--extra-opts[=SPEC]` in `args` by the options it names. `config_path` is
/// the colon-separated directory list of `$MP_CONFIG_PATH` (or `$NAGIOS_CONFIG_PATH`).
pub fn expand(args: Vec<OsString>, config_path: Option<&OsStr>) -> Result<Vec<OsString>> {
    let mut program_and_extra: Vec<OsString> = Vec::with_capacity(args.len());
    let mut rest = Vec::new();
    for (i, arg) in args.into_iter().enumerate() {
        let spec = match arg.to_str() {
            Some("--extra-opts") => Some(""),
            Some(a) => a.strip_prefix("--extra-opts="),
            None => None,
        };
        match spec {
            Some(spec) if i > 0 => {
                let (section, file) = match spec.split_once('@') {
                    Some((section, file)) => (section, Some(Path::new(file))),
                    None => (spec, None),
                };
                let section = if section.is_empty() {
                    DEFAULT_SECTION
                } else {
                    section
                };
                let file = match file {
                    Some(f) => f.to_path_buf(),
                    None => default_file(config_path)?,
                };
                program_and_extra.extend(read_section(&file, section)?);
            }
            _ if i == 0 => program_and_extra.push(arg),
            _ => rest.push(arg),
        }
    }
    program_and_extra.extend(rest);
    Ok(program_and_extra)
}

fn default_file(config_path: Option<&OsStr>) -> Result<PathBuf> {
    let from_env = config_path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .flat_map(|dir| DEFAULT_FILE_NAMES.map(|name| dir.join(name)));
    from_env
        .chain(DEFAULT_PATHS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .context("--extra-opts: no ini file found (name one with --extra-opts=SECTION@FILE)")
}

/// The options of one `[section]` as long options: `key=value` becomes `--key=value`, a bare
/// `key` becomes `--key`.
fn read_section(file: &Path, section: &str) -> Result<Vec<OsString>> {
    let text = fs::read_to_string(file)
        .with_context(|| format!("--extra-opts: cannot read {}", file.display()))?;
    let mut options = Vec::new();
    let mut in_section = false;
    let mut found = false;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                bail!(
                    "--extra-opts: {}:{}: unclosed [section",
                    file.display(),
                    number + 1
                );
            };
            in_section = name.trim() == section;
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let option = match line.split_once('=') {
            Some((key, value)) => {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                format!("--{}={value}", key.trim())
            }
            None => format!("--{line}"),
        };
        options.push(OsString::from(option));
    }
    if !found {
        bail!("--extra-opts: no [{section}] section in {}", file.display());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn ini(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugins.ini");
        fs::write(&path, text).unwrap();
        (dir, path)
    }

    const INI: &str = "# managed by puppet\n[check_workers]\nname = nginx\nwarning=80\n\
                       include-master\n\n[php]\nunit=\"php8.2-fpm.service\"\n; done\n";

    #[test]
    fn section_options_go_before_the_command_line() {
        let (_dir, path) = ini(INI);
        let spec = format!("--extra-opts=@{}", path.display());
        let out = expand(os(&["check_workers", &spec, "-c", "95"]), None).unwrap();
        assert_eq!(
            out,
            os(&[
                "check_workers",
                "--name=nginx",
                "--warning=80",
                "--include-master",
                "-c",
                "95"
            ])
        );
        let spec = format!("--extra-opts=php@{}", path.display());
        let out = expand(os(&["check_workers", "-v", &spec]), None).unwrap();
        assert_eq!(
            out,
            os(&["check_workers", "--unit=php8.2-fpm.service", "-v"])
        );
    }

    #[test]
    fn default_file_from_config_path() {
        let (dir, _path) = ini(INI);
        let out = expand(
            os(&["check_workers", "--extra-opts=php"]),
            Some(dir.path().as_os_str()),
        )
        .unwrap();
        assert_eq!(out, os(&["check_workers", "--unit=php8.2-fpm.service"]));
        let bare = expand(
            os(&["check_workers", "--extra-opts"]),
            Some(dir.path().as_os_str()),
        );
        assert_eq!(bare.unwrap()[1], "--name=nginx");
    }

    #[test]
    fn errors_name_the_problem() {
        let (_dir, path) = ini(INI);
        let missing = format!("--extra-opts=nope@{}", path.display());
        let err = expand(os(&["c", &missing]), None).unwrap_err().to_string();
        assert!(err.contains("no [nope] section"), "{err}");
        let err = expand(os(&["c", "--extra-opts=@/nonexistent.ini"]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read /nonexistent.ini"), "{err}");
        let (_d2, bad) = ini("[check_workers\nname=x\n");
        let spec = format!("--extra-opts=@{}", bad.display());
        assert!(expand(os(&["c", &spec]), None).is_err());
    }

    #[test]
    fn untouched_without_extra_opts() {
        let args = os(&["check_workers", "-n", "x", "--extra-optsx"]);
        assert_eq!(expand(args.clone(), None).unwrap(), args);
    }
}
