//! Options step, before clap: `--extra-opts=[section][@file]` reads options from an ini file,
//! as every monitoring-plugins check does, so long thresholds and paths can live in one
//! managed file instead of every service definition.
//!
//! Options from the file go before those on the command line, so the command line wins for
//! single-valued options (and adds to repeatable ones like `-w`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::small_file::{self, Unread};

/// Largest ini file read, bytes: option files are a few KiB; a bigger one is a mistake (or
/// `/dev/zero` behind a link), and reading it all would cost memory and time.
const MAX_INI_BYTES: u64 = 1 << 20;

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
    let text = read_ini(file)?;
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

/// The whole ini file, which must be a regular file of at most [`MAX_INI_BYTES`], read as
/// [`small_file`] reads files another user may have put in the way: a FIFO (which would wait
/// for a writer forever) or a device is refused by the fstat of the opened file, not read.
fn read_ini(file: &Path) -> Result<String> {
    let bytes = match small_file::read(file, MAX_INI_BYTES) {
        Ok(read) => read.bytes,
        Err(Unread::Io(e)) => {
            return Err(e).with_context(|| format!("--extra-opts: cannot read {}", file.display()))
        }
        Err(Unread::NotRegular(_)) => {
            bail!("--extra-opts: {} is not a regular file", file.display())
        }
        Err(Unread::TooLarge) => bail!(
            "--extra-opts: {} is larger than {} KiB",
            file.display(),
            MAX_INI_BYTES / 1024
        ),
    };
    String::from_utf8(bytes)
        .with_context(|| format!("--extra-opts: {} is not UTF-8", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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

    // Regression (issue 9.7): a FIFO hung the check before its timeout started, /dev/zero
    // grew its memory without limit, and a huge file was read whole.
    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.ini");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let expand_with = |file: &Path| {
            let spec = format!("--extra-opts=@{}", file.display());
            expand(os(&["c", &spec]), None).unwrap_err().to_string()
        };
        let err = expand_with(&fifo);
        assert_eq!(
            err,
            format!("--extra-opts: {} is not a regular file", fifo.display())
        );
        let err = expand_with(Path::new("/dev/zero"));
        assert_eq!(err, "--extra-opts: /dev/zero is not a regular file");
        let big = dir.path().join("big.ini");
        let mut text = String::from("[check_workers]\nname=nginx\n");
        text.push_str(&"# padding\n".repeat(110_000));
        fs::write(&big, text).unwrap();
        let err = expand_with(&big);
        assert_eq!(
            err,
            format!("--extra-opts: {} is larger than 1024 KiB", big.display())
        );
        // just under the limit is fine
        let mut text = String::from("[check_workers]\nname=nginx\n");
        text.push_str(&"#".repeat(MAX_INI_BYTES as usize - text.len()));
        fs::write(&big, text).unwrap();
        let spec = format!("--extra-opts=@{}", big.display());
        assert_eq!(
            expand(os(&["c", &spec]), None).unwrap(),
            os(&["c", "--name=nginx"])
        );
    }

    #[test]
    fn untouched_without_extra_opts() {
        let args = os(&["check_workers", "-n", "x", "--extra-optsx"]);
        assert_eq!(expand(args.clone(), None).unwrap(), args);
    }
}
