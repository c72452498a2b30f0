//! Writes the man page and shell completions from the clap definition, so they never drift
//! from the options the binary really takes:
//!
//!     cargo run --example assets -- target/assets
//!
//! The Debian and RPM packages (`cargo deb`, `cargo generate-rpm`, see README "Install") ship
//! what this writes.

use std::fs;
use std::path::PathBuf;

use clap::{ArgAction, Command};
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/assets".into()),
    );
    fs::create_dir_all(out.join("completions"))?;
    let mut command = check_workers::cli::command();
    fs::write(out.join("check_workers.1"), man_page(&command)?)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut command,
            "check_workers",
            out.join("completions"),
        )?;
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// clap_mangen's page with our own synopsis: its own lists the options without their values
/// (`[-n|--name]`), which tells a reader nothing of what `-w` or `--every` take.
fn man_page(command: &Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    page.extend_from_slice(synopsis(command).as_bytes());
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_extra_section(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// `check_workers [-n NAME|--name NAME] ... [-v|--verbose]...` in roff, every visible option
/// with the value it takes.
fn synopsis(command: &Command) -> String {
    let roff = |text: &str| text.replace('\\', "\\\\").replace('-', "\\-");
    let mut out = String::from(".SH SYNOPSIS\n\\fBcheck_workers\\fR");
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        let value = match (arg.get_action().takes_values(), arg.get_value_names()) {
            (true, Some(names)) => names
                .iter()
                .map(|n| format!(" \\fI{}\\fR", roff(n)))
                .collect::<String>(),
            _ => String::new(),
        };
        let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        let forms: Vec<String> = arg
            .get_short()
            .map(|s| format!("\\fB\\-{s}\\fR{value}"))
            .into_iter()
            .chain(arg.get_long().map(|l| match optional {
                true => format!("\\fB\\-\\-{}\\fR[={}]", roff(l), value.trim_start()),
                false => format!("\\fB\\-\\-{}\\fR{value}", roff(l)),
            }))
            .collect();
        let repeat = match arg.get_action() {
            ArgAction::Count | ArgAction::Append => "...",
            _ => "",
        };
        out.push_str(&format!(" [{}]{repeat}", forms.join("|")));
    }
    out.push('\n');
    out
}
