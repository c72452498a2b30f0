//! Writes the man page and shell completions from the clap definition, so they never drift
//! from the options the binary really takes:
//!
//!     cargo run --example assets -- target/assets
//!
//! The Debian and RPM packages (`cargo deb`, `cargo generate-rpm`, see README "Install") ship
//! what this writes.

use std::fs;
use std::path::PathBuf;

use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/assets".into()),
    );
    fs::create_dir_all(out.join("completions"))?;
    let mut command = check_workers::cli::command();
    let mut man = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut man)?;
    fs::write(out.join("check_workers.1"), man)?;
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
