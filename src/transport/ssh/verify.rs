//! Is this server the one we know? The russh handler of every connection:
//! checks the host key against the host's known_hosts file (strict or
//! accept-new, never "accept anything"), and remembers why a connection ended.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::client::{self, DisconnectReason};
use russh::keys::known_hosts::learn_known_hosts_path;
use russh::keys::{self, Algorithm, HashAlg, PublicKey, PublicKeyOrCertificate};
use thiserror::Error;

use super::known_hosts::{self, Verdict, same_family};
use super::resolve::{Target, display_path};
use crate::config::HostKeyCheck;

/// Why a session failed, as the handler reports it to russh: russh's own
/// errors, or our refusal of the host key (kept apart so it surfaces as
/// `TransportError::HostKey`, not as a generic handshake failure).
#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("{0}")]
    HostKey(String),
}

/// Why a live connection ended, filled in by the handler and read by whoever
/// finds the connection closed. A std mutex: held for a clone, never across
/// an await.
pub type LostReason = Arc<Mutex<Option<String>>>;

/// The russh client handler.
pub struct Verifier {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    /// Read after `known_hosts`, never written.
    global_known_hosts: Vec<PathBuf>,
    check: HostKeyCheck,
    /// The jump host's name, to say where `ssh-keyscan` must run.
    via: Option<String>,
    lost: LostReason,
}

impl Verifier {
    pub fn new(
        target: &Target,
        known_hosts: PathBuf,
        check: HostKeyCheck,
        via: Option<String>,
        lost: LostReason,
    ) -> Self {
        Verifier {
            host: target.host.clone(),
            port: target.port,
            known_hosts,
            global_known_hosts: target.global_known_hosts.clone(),
            check,
            via,
            lost,
        }
    }
}

impl client::Handler for Verifier {
    type Error = SessionError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, SessionError> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            // zap does not advertise certificate algorithms, so a server
            // should never send one; there is no CA to check it against.
            return Err(SessionError::HostKey(format!(
                "{} presented a host certificate; zap checks plain host keys only",
                known_hosts_name(&self.host, self.port)
            )));
        };
        let (host, port, file, check, via, key) = (
            self.host.clone(),
            self.port,
            self.known_hosts.clone(),
            self.check,
            self.via.clone(),
            key.clone(),
        );
        let also = self.global_known_hosts.clone();
        // known_hosts is a file: read it off the runtime's threads.
        let verdict = tokio::task::spawn_blocking(move || {
            check_host_key_in(&host, port, &key, &file, &also, check, via.as_deref())
        })
        .await
        .map_err(|error| SessionError::HostKey(format!("host key check failed: {error}")))?;
        verdict.map(|()| true).map_err(SessionError::HostKey)
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<SessionError>,
    ) -> Result<(), SessionError> {
        let (text, result) = match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                let text = if info.message.is_empty() {
                    format!("the server disconnected ({:?})", info.reason_code)
                } else {
                    format!("the server disconnected: {}", info.message)
                };
                (text, Ok(()))
            }
            DisconnectReason::Error(error) => (error.to_string(), Err(error)),
        };
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert(text);
        }
        result
    }
}

/// Checks `key` against `file` alone for `host:port`, learning it under
/// accept-new. `Err` holds the message for the user.
#[cfg(test)]
pub fn check_host_key(
    host: &str,
    port: u16,
    key: &PublicKey,
    file: &Path,
    check: HostKeyCheck,
    via: Option<&str>,
) -> Result<(), String> {
    check_host_key_in(host, port, key, file, &[], check, via)
}

/// [`check_host_key`] with the known_hosts files read after `file` (the
/// global ones, `/etc/ssh/ssh_known_hosts`, as ssh_config names them): a
/// revocation in any of them wins, then a line that knows the key, then a
/// changed key. Only `file` is ever written.
pub fn check_host_key_in(
    host: &str,
    port: u16,
    key: &PublicKey,
    file: &Path,
    also: &[PathBuf],
    check: HostKeyCheck,
    via: Option<&str>,
) -> Result<(), String> {
    let name = known_hosts_name(host, port);
    let offered = describe_key(key);
    let rank = |verdict: &Verdict| match verdict {
        Verdict::Revoked { .. } => 3,
        Verdict::Known => 2,
        Verdict::Changed { .. } => 1,
        Verdict::Unknown => 0,
    };
    let mut found = (Verdict::Unknown, file);
    for path in std::iter::once(file).chain(also.iter().map(PathBuf::as_path)) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            // As ssh: a global file that cannot be read is passed over.
            Err(_) if path != file => continue,
            Err(error) => {
                return Err(format!(
                    "cannot read known_hosts {}: {error}",
                    display_path(path)
                ));
            }
        };
        let verdict = known_hosts::verdict(&text, &name, key);
        if rank(&verdict) > rank(&found.0) {
            found = (verdict, path);
        }
    }
    let (verdict, where_found) = found;
    let shown_file = display_path(where_found);
    match verdict {
        Verdict::Known => Ok(()),
        // Under every check, accept-new too: ssh never accepts it either.
        Verdict::Revoked { line } => Err(format!(
            "the host key of {name} is REVOKED (known_hosts {shown_file} line {line}): the server \
             offers {offered}, which must never be accepted; refusing to connect"
        )),
        Verdict::Unknown => match check {
            HostKeyCheck::AcceptNew => learn(host, port, key, file).map_err(|error| {
                format!("cannot add the host key for {name} to {shown_file}: {error}")
            }),
            HostKeyCheck::Strict => {
                let others = other_algorithms(host, port, file, key);
                let scan = keyscan_command(host, port, &shown_file);
                let place = match via {
                    Some(jump) => format!(" (run it on {jump}, which reaches {host})"),
                    None => String::new(),
                };
                let missing = if file.exists() {
                    ""
                } else {
                    ", which does not exist"
                };
                Err(format!(
                    "host key for {name} is not in known_hosts ({shown_file}{missing}){others}: \
                     the server offers {offered} — add it with `{scan}`{place} \
                     or set host_key_check = \"accept-new\""
                ))
            }
        },
        Verdict::Changed { line } => Err(format!(
            "HOST KEY CHANGED for {name} (known_hosts {shown_file} line {line}) — possible \
                 man-in-the-middle; the server now offers {offered}; remove the old entry if \
                 the change is expected (ssh-keygen -R '{name}' -f {shown_file})"
        )),
    }
}

/// Appends the key to known_hosts. russh starts an empty file with a blank
/// line; a new file gets its first line here instead.
fn learn(host: &str, port: u16, key: &PublicKey, file: &Path) -> Result<(), keys::Error> {
    let empty = std::fs::metadata(file).map_or(true, |meta| meta.len() == 0);
    if !empty {
        return learn_known_hosts_path(host, port, key, file);
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let line = format!("{} {}\n", known_hosts_name(host, port), key.to_openssh()?);
    std::fs::write(file, line)?;
    Ok(())
}

/// The host key algorithms to ask for, those known_hosts holds for this host
/// first, as OpenSSH orders them: russh counts a key of another algorithm as
/// unknown, so a host known by its ed25519 key must be asked for that one.
pub fn preferred_key_algorithms(known: &[PublicKey]) -> Vec<Algorithm> {
    let defaults = russh::Preferred::DEFAULT.key.to_vec();
    let is_known = |algorithm: &Algorithm| {
        known
            .iter()
            .any(|key| same_family(&key.algorithm(), algorithm))
    };
    let (mut first, rest): (Vec<_>, Vec<_>) = defaults.into_iter().partition(is_known);
    first.extend(rest);
    first
}

/// Keys known_hosts holds for `host:port`; none when it cannot be read (the
/// check during the handshake reports that).
pub fn known_keys(host: &str, port: u16, file: &Path) -> Vec<PublicKey> {
    known_keys_in(host, port, &[file.to_path_buf()])
}

/// [`known_keys`] over several files.
pub fn known_keys_in(host: &str, port: u16, files: &[PathBuf]) -> Vec<PublicKey> {
    let name = known_hosts_name(host, port);
    files
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .flat_map(|text| known_hosts::keys_for(&text, &name))
        .collect()
}

pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `ED25519 SHA256:…`, as OpenSSH shows a key.
pub fn describe_key(key: &PublicKey) -> String {
    format!(
        "{} {}",
        algorithm_label(&key.algorithm()),
        key.fingerprint(HashAlg::Sha256)
    )
}

fn algorithm_label(algorithm: &Algorithm) -> String {
    match algorithm {
        Algorithm::Ed25519 => "ED25519".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::Dsa => "DSA".into(),
        other => other.as_str().to_uppercase(),
    }
}

/// ` (known_hosts has only ECDSA, RSA keys for it)`, when it has others.
fn other_algorithms(host: &str, port: u16, file: &Path, offered: &PublicKey) -> String {
    let mut labels: Vec<String> = known_keys(host, port, file)
        .iter()
        .filter(|key| !same_family(&key.algorithm(), &offered.algorithm()))
        .map(|key| algorithm_label(&key.algorithm()))
        .collect();
    labels.dedup();
    if labels.is_empty() {
        String::new()
    } else {
        format!(" (known_hosts has only {} keys for it)", labels.join(", "))
    }
}

fn keyscan_command(host: &str, port: u16, file: &str) -> String {
    if port == 22 {
        format!("ssh-keyscan {host} >> {file}")
    } else {
        format!("ssh-keyscan -p {port} {host} >> {file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::parse_public_key_base64;
    use std::io::Write;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNlvq9ERZDd+t+Xd7fLZ4PcxngforcelgvuhU9wVEYjK1kGsD3eII6IQJ90224c3EZF5lUHrJikUb09AMd7Ysig=";

    fn key(base64: &str) -> PublicKey {
        parse_public_key_base64(base64).expect("test key parses")
    }

    fn file(lines: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(lines.as_bytes()).expect("write");
        file
    }

    #[test]
    fn a_known_key_passes() {
        let known = file(&format!("# fleet\n[127.0.0.1]:2201 ssh-ed25519 {KEY_A}\n"));
        let result = check_host_key(
            "127.0.0.1",
            2201,
            &key(KEY_A),
            known.path(),
            HostKeyCheck::Strict,
            None,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_changed_key_is_refused_with_the_real_line_number() {
        let known = file(&format!(
            "# one\n# two\nother ssh-ed25519 {KEY_B}\n[127.0.0.1]:2201 ssh-ed25519 {KEY_A}\n"
        ));
        for check in [HostKeyCheck::Strict, HostKeyCheck::AcceptNew] {
            let error = check_host_key("127.0.0.1", 2201, &key(KEY_B), known.path(), check, None)
                .expect_err("changed");
            assert!(
                error.starts_with("HOST KEY CHANGED for [127.0.0.1]:2201"),
                "{error}"
            );
            assert!(error.contains(" line 4)"), "{error}");
            assert!(error.contains("man-in-the-middle"), "{error}");
        }
    }

    #[test]
    fn a_revoked_key_is_refused_under_every_check_and_never_learned() {
        let text = format!(
            "[127.0.0.1]:2201 ssh-ed25519 {KEY_A}\n@revoked [127.0.0.1]:2201 ssh-ed25519 {KEY_A}\n"
        );
        let known = file(&text);
        for check in [HostKeyCheck::Strict, HostKeyCheck::AcceptNew] {
            let error = check_host_key("127.0.0.1", 2201, &key(KEY_A), known.path(), check, None)
                .expect_err("revoked");
            assert!(
                error.contains("REVOKED") && error.contains(" line 2)"),
                "{error}"
            );
        }
        assert_eq!(std::fs::read_to_string(known.path()).expect("read"), text);
        assert!(known_keys("127.0.0.1", 2201, known.path()).is_empty());
    }

    #[test]
    fn the_global_files_are_read_after_the_users_and_never_written() {
        let dir = tempfile::tempdir().expect("dir");
        let user = dir.path().join("known_hosts");
        let global = dir.path().join("ssh_known_hosts");
        std::fs::write(&global, format!("n1 ssh-ed25519 {KEY_A}\n")).expect("write");
        let also = [global.clone(), dir.path().join("missing")];
        let check = |key_text: &str, check| {
            check_host_key_in("n1", 22, &key(key_text), &user, &also, check, None)
        };
        check(KEY_A, HostKeyCheck::Strict).expect("known from the global file");
        let changed = check(KEY_B, HostKeyCheck::AcceptNew).expect_err("changed");
        assert!(changed.contains("ssh_known_hosts line 1"), "{changed}");
        assert!(!user.exists(), "nothing learned over a changed key");
        // A revocation in the global file wins over the user's own line.
        std::fs::write(&user, format!("n1 ssh-ed25519 {KEY_A}\n")).expect("write");
        std::fs::write(&global, format!("@revoked * ssh-ed25519 {KEY_A}\n")).expect("write");
        let revoked = check(KEY_A, HostKeyCheck::Strict).expect_err("revoked");
        assert!(revoked.contains("REVOKED"), "{revoked}");
        assert_eq!(
            std::fs::read_to_string(&global).expect("read"),
            format!("@revoked * ssh-ed25519 {KEY_A}\n")
        );
    }

    #[test]
    fn an_unknown_key_is_refused_under_strict_with_the_fix() {
        let known = file(&format!("[127.0.0.1]:2201 ecdsa-sha2-nistp256 {ECDSA}\n"));
        let error = check_host_key(
            "127.0.0.1",
            2201,
            &key(KEY_A),
            known.path(),
            HostKeyCheck::Strict,
            None,
        )
        .expect_err("unknown");
        assert!(
            error.starts_with("host key for [127.0.0.1]:2201 is not in known_hosts"),
            "{error}"
        );
        assert!(
            error.contains("the server offers ED25519 SHA256:"),
            "{error}"
        );
        assert!(
            error.contains("ssh-keyscan -p 2201 127.0.0.1 >> "),
            "{error}"
        );
        assert!(
            error.contains("known_hosts has only ECDSA keys for it"),
            "{error}"
        );
        assert!(error.contains("accept-new"), "{error}");
    }

    #[test]
    fn accept_new_learns_an_unknown_key_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("known_hosts");
        check_host_key("n2", 22, &key(KEY_A), &path, HostKeyCheck::AcceptNew, None)
            .expect("learned");
        let text = std::fs::read_to_string(&path).expect("written");
        assert_eq!(text, format!("n2 ssh-ed25519 {KEY_A}\n"));
        check_host_key("n2", 22, &key(KEY_A), &path, HostKeyCheck::Strict, None).expect("known");
        let error = check_host_key("n2", 22, &key(KEY_B), &path, HostKeyCheck::AcceptNew, None)
            .expect_err("changed");
        assert!(error.contains("HOST KEY CHANGED for n2 "), "{error}");
    }

    #[test]
    fn known_algorithms_are_asked_for_first() {
        let order = preferred_key_algorithms(&[key(ECDSA)]);
        assert_eq!(
            order.first(),
            Some(&Algorithm::Ecdsa {
                curve: keys::EcdsaCurve::NistP256
            })
        );
        assert_eq!(order.len(), russh::Preferred::DEFAULT.key.len());
        assert_eq!(
            preferred_key_algorithms(&[]),
            russh::Preferred::DEFAULT.key.to_vec()
        );
    }
}
