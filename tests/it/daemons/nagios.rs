//! Nagios 4: `nagios4 -v` on `contrib/nagios/commands.cfg` with its examples uncommented.

use std::fs;
use std::path::Path;
use std::process::{Command as StdCommand, Output};

use super::{assert_exit, contrib, read, ready_as_nagios, text};
use crate::fixture::spawn::public_dir;

const NAGIOS4: &str = "/usr/sbin/nagios4";

const NAGIOS_OBJECTS: &str = "\
define timeperiod {
    timeperiod_name 24x7
    alias           always
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
    sunday          00:00-24:00
}
define command {
    command_name    notify-nobody
    command_line    /bin/true
}
define command {
    command_name    check-host-alive
    command_line    /bin/true
}
define contact {
    contact_name                    admin
    host_notifications_enabled      0
    service_notifications_enabled   0
    host_notification_period        24x7
    service_notification_period     24x7
    host_notification_options       n
    service_notification_options    n
    host_notification_commands      notify-nobody
    service_notification_commands   notify-nobody
}
define service {
    name                    generic-service
    register                0
    max_check_attempts      3
    check_interval          5
    retry_interval          1
    check_period            24x7
    notification_period     24x7
    notification_interval   0
    contacts                admin
}
define host {
    host_name               web1
    address                 127.0.0.1
    check_command           check-host-alive
    max_check_attempts      3
    check_period            24x7
    notification_period     24x7
    contacts                admin
}
";

/// commands.cfg with its example services uncommented.
fn nagios_with_examples(cfg: &str) -> String {
    let at = cfg.find("Example services").expect("an examples section");
    let (head, tail) = cfg.split_at(at);
    let tail: String = tail
        .lines()
        .map(|l| {
            let code = l.strip_prefix('#').filter(|rest| {
                rest.starts_with("define ") || rest.starts_with("    ") || rest.starts_with('}')
            });
            format!("{}\n", code.unwrap_or(l))
        })
        .collect();
    format!("{head}{tail}")
}

fn nagios_verify(dir: &Path, commands: &str) -> Output {
    fs::write(dir.join("commands.cfg"), commands).unwrap();
    fs::write(dir.join("objects.cfg"), NAGIOS_OBJECTS).unwrap();
    fs::write(
        dir.join("resource.cfg"),
        format!("$USER1$={}/plugins\n", dir.display()),
    )
    .unwrap();
    let d = dir.display();
    let main = dir.join("nagios.cfg");
    fs::write(
        &main,
        format!(
            "log_file={d}/nagios.log\n\
             cfg_file={d}/objects.cfg\n\
             cfg_file={d}/commands.cfg\n\
             resource_file={d}/resource.cfg\n\
             lock_file={d}/nagios.lock\n\
             temp_file={d}/nagios.tmp\n\
             temp_path={d}\n\
             status_file={d}/status.dat\n\
             object_cache_file={d}/objects.cache\n\
             check_result_path={d}\n\
             state_retention_file={d}/retention.dat\n\
             command_file={d}/nagios.cmd\n\
             nagios_user=nagios\n\
             nagios_group=nagios\n\
             illegal_macro_output_chars=`~$&|'\"<>\n"
        ),
    )
    .unwrap();
    StdCommand::new(NAGIOS4)
        .arg("-v")
        .arg(&main)
        .output()
        .unwrap()
}

#[test]
fn nagios4_verifies_the_contrib_commands() {
    const TEST: &str = "nagios4_verifies_the_contrib_commands";
    let Some(nagios) = ready_as_nagios(TEST, &[NAGIOS4]) else {
        return;
    };
    let work = public_dir(Some(nagios));
    let shipped = read(&contrib("nagios/commands.cfg"));
    let with_examples = nagios_with_examples(&shipped);
    assert!(with_examples.matches("\ndefine service {").count() >= 2);

    let out = nagios_verify(work.path(), &with_examples);
    assert_exit(&out, 0);
    let said = text(&out);
    assert!(said.contains("Total Errors:   0"), "{said}");
    assert!(said.contains("Total Warnings: 0"), "{said}");
    assert!(said.contains("Checked 2 services."), "{said}");
    // the test's two and the shipped two
    assert!(said.contains("Checked 4 commands."), "{said}");

    // and the verifier does look at the command names: a service naming one that does not
    // exist fails
    let broken = with_examples.replacen("check_workers!", "check_workerz!", 1);
    let out = nagios_verify(work.path(), &broken);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("check_workerz"), "{}", text(&out));
}
