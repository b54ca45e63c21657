//! The built-in packs' remedies, run for real through `/bin/sh`: from an
//! output line through the [`Matcher`] to the arguments a program receives.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::packs::tests::plan;
use super::{Matcher, Remedy, substitute};
use crate::config::{FixupRule, Plan};
use crate::model::{ExitInfo, Stream};

fn rule<'p>(plan: &'p Plan, name: &str) -> &'p FixupRule {
    let (pack, _) = name.split_once('/').unwrap_or((name, ""));
    match plan.fixup_packs[pack]
        .rules
        .iter()
        .find(|rule| rule.name == name)
    {
        Some(rule) => rule,
        None => panic!("no rule {name}"),
    }
}

fn sh(command: &str, env: &[(&str, &str)]) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_remove("ZAP_PID")
        .env_remove("ZAP_KEEP_PGIDS")
        .env_remove("ZAP_PORT")
        .env_remove("ZAP_SSH_REMEDY")
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run /bin/sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every built-in remedy parses as POSIX shell, with plain, empty and
/// hostile captures alike.
#[test]
fn every_built_in_remedy_is_valid_shell() {
    let plan = plan(&[]);
    for pack in plan.fixup_packs.values() {
        for rule in &pack.rules {
            for value in ["web1", "", "x'; rm -rf ~; '", "$(id) `id` \"q\"\nnext"] {
                let captures: BTreeMap<String, String> = rule
                    .when
                    .capture_names()
                    .flatten()
                    .map(|name| (name.to_string(), value.to_string()))
                    .collect();
                let command = substitute(&rule.run, &captures);
                for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
                    if !Path::new(shell).exists() {
                        continue;
                    }
                    let output = Command::new(shell)
                        .args(["-n", "-c", &command])
                        .output()
                        .expect("run the shell");
                    assert!(
                        output.status.success(),
                        "{} with {value:?} under {shell}: {}\n{command}",
                        rule.name,
                        text(&output.stderr)
                    );
                }
            }
        }
    }
}

/// podman's real message, a hostile container name, and a stand-in `podman`
/// that prints its arguments: the name arrives as one argument.
#[test]
fn a_hostile_container_name_reaches_podman_as_one_argument() {
    let plan = plan(&[(
        "jobs/web.toml",
        "[jobs.db]\nhost = \"local\"\nsteps = [\"podman run --name db x\"]\nfixups = [\"podman\"]\n",
    )]);
    let mut matcher = Matcher::for_job(&plan, &plan.jobs[0]);
    let name = "x'; touch /tmp/zap-pwned; '$(id)`id`";
    let line = format!(
        "Error: creating container storage: the container name \"{name}\" is already in use by 1a2a. You have to remove that container to be able to reuse that name: that name is already in use"
    );
    assert!(
        matcher.line(&line, Stream::Stderr).is_none(),
        "held for the exit code"
    );
    let Some(remedy) = matcher.exit(&ExitInfo::Code(125)) else {
        panic!("podman's exit 125 should fire the rule");
    };
    assert_eq!(remedy.rule, "podman/name-in-use");

    let bin = tempfile::tempdir().expect("a temp dir");
    let podman = bin.path().join("podman");
    std::fs::write(&podman, "#!/bin/sh\nprintf '[%s]\\n' \"$@\"\n").expect("write podman");
    Command::new("chmod")
        .arg("+x")
        .arg(&podman)
        .status()
        .expect("chmod");
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let output = sh(&remedy.command, &[("PATH", &path)]);
    assert_eq!(text(&output.stdout), format!("[rm]\n[-f]\n[{name}]\n"));
    assert!(!Path::new("/tmp/zap-pwned").exists());
}

fn port_remedy(plan: &Plan, port: u16) -> Remedy {
    let line =
        format!("nginx: [emerg] bind() to 0.0.0.0:{port} failed (98: Address already in use)");
    let refs = vec![rule(plan, "port/bind")];
    match super::first_match(&refs, &line, Stream::Stderr, None) {
        Some(remedy) => remedy,
        None => panic!("port/bind should match {line}"),
    }
}

/// The port pack's remedy runs `fuser` (psmisc): without it these tests
/// would prove nothing, so they fail, saying what to install.
fn need_fuser() {
    let found = Command::new("/bin/sh")
        .args(["-c", "command -v fuser"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "fuser is missing: install psmisc (scripts/test-all does)"
    );
}

/// A child that holds `listener`'s socket (and nothing else of ours), in its
/// own process group.
/// A listener on 127.0.0.1 and its port.
fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A `sleep 60` in its own process group that holds `socket` too.
fn holder(socket: &impl AsRawFd) -> std::process::Child {
    let fd = socket.as_raw_fd();
    let mut command = Command::new("sleep");
    command.arg("60").process_group(0);
    // SAFETY: between fork and exec only fcntl(2), which is
    // async-signal-safe, runs; it clears close-on-exec on the socket in the
    // child alone, so no other test's child inherits it.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("spawn sleep")
}

#[test]
fn the_port_remedy_stops_the_holder() {
    need_fuser();
    let plan = plan(&[]);
    let (listener, port) = listen();
    let mut child = holder(&listener);
    drop(listener);
    let remedy = port_remedy(&plan, port);
    let output = sh(&remedy.command, &[]);
    let status = child.wait().expect("wait for sleep");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("zap: port {port}: stopping {}\n", child.id())
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn the_port_remedy_spares_zap_and_its_jobs() {
    need_fuser();
    let plan = plan(&[]);
    // This test process stands for zap: it holds the port and is the
    // remedy's ancestor.
    let (listener, port) = listen();
    let remedy = port_remedy(&plan, port);
    let output = sh(&remedy.command, &[]);
    assert_exit(&output, 1);
    let own = std::process::id();
    assert_eq!(
        text(&output.stderr),
        format!(
            "zap: port {port}: sparing {own}, one of zap's own processes\nzap: port {port}: no process this user may stop holds it\n"
        )
    );

    // A job zap runs holds it: its process group is in ZAP_KEEP_PGIDS.
    let mut child = holder(&listener);
    drop(listener);
    let group = child.id().to_string();
    let output = sh(
        &remedy.command,
        &[("ZAP_KEEP_PGIDS", &format!("1 {group}"))],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!("sparing {group}, part of a job zap runs")),
        "{}",
        text(&output.stderr)
    );
    assert!(
        child.try_wait().expect("poll sleep").is_none(),
        "the job survived"
    );

    // The same process named as zap itself.
    let output = sh(&remedy.command, &[("ZAP_PID", &group)]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn the_port_remedy_spares_a_connection_that_only_shares_the_number() {
    need_fuser();
    let plan = plan(&[]);
    // zap listens on 127.0.0.1:PORT; a bystander's connection goes out from
    // 127.0.0.2:PORT to some server: the same local port number, but it
    // blocks no one's bind on 127.0.0.1 and must live on.
    let (_zap_listening, port) = listen();
    let server = TcpListener::bind("127.0.0.3:0").expect("bind a server");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(([127, 0, 0, 2], port).into())
        .expect("bind the same port number on another address");
    let connection = socket
        .connect(server.local_addr().expect("server address"))
        .await
        .expect("connect")
        .into_std()
        .expect("a std stream");
    let mut bystander = holder(&connection);
    drop(connection);
    let remedy = port_remedy(&plan, port);
    let output = sh(&remedy.command, &[]);
    assert_exit(&output, 1);
    assert!(
        bystander.try_wait().expect("poll sleep").is_none(),
        "the bystander survived"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn without_a_port_the_remedy_takes_zap_port() {
    let plan = plan(&[]);
    let refs = vec![rule(&plan, "port/no-port")];
    let Some(remedy) = super::first_match(
        &refs,
        "OSError: [Errno 98] Address already in use",
        Stream::Stderr,
        None,
    ) else {
        panic!("no-port should match");
    };
    let output = sh(&remedy.command, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "zap: the message names no port: set ZAP_PORT in the job's env\n"
    );
    need_fuser();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    let mut child = holder(&listener);
    drop(listener);
    let output = sh(&remedy.command, &[("ZAP_PORT", &port)]);
    let status = child.wait().expect("wait for sleep");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

/// Only a FUSE mount is ever unmounted: a path on none leaves with 3.
#[test]
fn the_sshfs_remedy_touches_only_fuse_mounts() {
    let plan = plan(&[]);
    let refs = vec![rule(&plan, "sshfs/stale"), rule(&plan, "sshfs/stale-any")];
    let line =
        "ls: cannot access '/nonexistent/zap test/$(id)': Transport endpoint is not connected";
    let Some(remedy) = super::first_match(&refs, line, Stream::Stderr, None) else {
        panic!("sshfs/stale should match");
    };
    assert_eq!(remedy.captures["mount"], "/nonexistent/zap test/$(id)");
    let output = sh(&remedy.command, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        "zap: no FUSE mount holds /nonexistent/zap test/$(id)\n"
    );
}

#[test]
fn the_ssh_remedy_runs_the_users_command_with_host_and_port() {
    let plan = plan(&[]);
    let refs = vec![rule(&plan, "ssh/unreachable")];
    let line = "ssh: connect to host nico;id port 22: No route to host";
    let Some(remedy) = super::first_match(&refs, line, Stream::Stderr, Some(255)) else {
        panic!("ssh/unreachable should match");
    };
    assert_eq!(remedy.on, crate::config::RemedyPlace::Local);
    let output = sh(&remedy.command, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "zap: ssh cannot reach nico;id: set ZAP_SSH_REMEDY in the job's env to the command that brings it up\n"
    );
    let output = sh(
        &remedy.command,
        &[(
            "ZAP_SSH_REMEDY",
            r#"printf 'virsh start %s (port %s)\n' "$ZAP_SSH_HOST" "$ZAP_SSH_PORT""#,
        )],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "virsh start nico;id (port 22)\n");
}
