//! Where an SSH host really is: `address` through `~/.ssh/config` (HostName,
//! User, Port, IdentityFile, ProxyJump), with the keys of `hosts.toml` winning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::super::TransportError;
use crate::config::SshHost;

/// How long `ssh -G` may take: a `Match exec` in the user's config runs a
/// command, which must not hang a connect forever.
const SSH_G_TIMEOUT: Duration = Duration::from_secs(5);

/// The key files OpenSSH tries when none is configured, in the order zap
/// tries them (the ones russh can use).
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Key files `ssh -G` lists although nobody configured them.
const OPENSSH_DEFAULT_KEYS: [&str; 7] = [
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
];

/// A host as zap dials it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The HostName after resolution: dialled, and looked up in known_hosts.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Key files to try after the agent, in order.
    pub identities: Vec<Identity>,
    /// The known_hosts files read after the host's own, never written: as
    /// ssh_config's GlobalKnownHostsFile says, else OpenSSH's default.
    pub global_known_hosts: Vec<PathBuf>,
}

/// A private key file to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub path: PathBuf,
    /// Written by the user (hosts.toml): a missing file is worth reporting.
    /// Defaults and ssh_config entries that do not exist are skipped quietly,
    /// as OpenSSH does.
    pub explicit: bool,
}

impl Target {
    /// `host:port`, as error messages name the place zap dials.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What `~/.ssh/config` says about one alias.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfigView {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Only the files the user configured, not OpenSSH's defaults.
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    pub proxy_command: Option<String>,
    /// GlobalKnownHostsFile; `None` when nothing said.
    pub global_known_hosts: Option<Vec<PathBuf>>,
}

/// OpenSSH's GlobalKnownHostsFile when ssh_config names none.
const GLOBAL_KNOWN_HOSTS: [&str; 2] = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// Resolves `spec` through the user's ssh_config. `has_jump` says hosts.toml
/// names a jump host, which overrides any ProxyJump.
pub async fn resolve(spec: &SshHost, has_jump: bool) -> Result<Target, TransportError> {
    let home = home_dir();
    let view = config_view(&spec.address, home.as_deref()).await;
    merge(spec, has_jump, view, home.as_deref())
}

/// What the ssh config says about `address`, asked once per address in the
/// life of the process: hosts.toml often names the same address several
/// times (ports, users, a jump host's tunnels), and each `ssh -G` is a
/// process that reads the config files.
async fn config_view(address: &str, home: Option<&Path>) -> SshConfigView {
    type Views = BTreeMap<(String, Option<PathBuf>), Arc<OnceCell<SshConfigView>>>;
    static VIEWS: Mutex<Views> = Mutex::new(BTreeMap::new());
    let cell = {
        // A poisoned lock only means a panic elsewhere while it was held;
        // the map itself stays consistent.
        let mut views = VIEWS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (address.to_string(), home.map(Path::to_path_buf));
        Arc::clone(views.entry(key).or_default())
    };
    cell.get_or_init(|| async {
        match ssh_dash_g(address, home).await {
            Some(view) => view,
            None => ssh2_config_view(address, home).unwrap_or_default(),
        }
    })
    .await
    .clone()
}

/// hosts.toml over ssh_config over defaults.
fn merge(
    spec: &SshHost,
    has_jump: bool,
    view: SshConfigView,
    home: Option<&Path>,
) -> Result<Target, TransportError> {
    if !has_jump && let Some(command) = &view.proxy_command {
        return Err(TransportError::Config(format!(
            "~/.ssh/config reaches {} through ProxyCommand `{command}`, which zap does not \
             run: describe the hop in hosts.toml and set jump = \"NAME\" for this host",
            spec.address
        )));
    }
    if !has_jump && let Some(jump) = &view.proxy_jump {
        return Err(TransportError::Config(format!(
            "~/.ssh/config gives {} the ProxyJump {jump}, which zap does not follow by itself yet: \
             describe {jump} in hosts.toml and set jump = \"NAME\" for this host",
            spec.address
        )));
    }
    let user = match spec.user.clone().or(view.user) {
        Some(user) => user,
        None => std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .map_err(|_| {
                TransportError::Config(format!(
                    "no user for {}: set user in hosts.toml",
                    spec.address
                ))
            })?,
    };
    let identities = match &spec.identity {
        Some(path) => vec![Identity {
            path: path.clone(),
            explicit: true,
        }],
        None => {
            let defaults = home
                .map(|home| {
                    DEFAULT_KEYS
                        .iter()
                        .map(|name| home.join(".ssh").join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let mut files: Vec<Identity> = Vec::new();
            for path in view.identity_files.into_iter().chain(defaults) {
                if !files.iter().any(|known| known.path == path) {
                    files.push(Identity {
                        path,
                        explicit: false,
                    });
                }
            }
            files
        }
    };
    let global_known_hosts = view
        .global_known_hosts
        .unwrap_or_else(|| GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from).collect());
    Ok(Target {
        host: view.hostname.unwrap_or_else(|| spec.address.clone()),
        port: spec.port.or(view.port).unwrap_or(22),
        user,
        identities,
        global_known_hosts,
    })
}

/// Asks OpenSSH itself (`ssh -G`), which knows Match, Include and tokens.
/// None when `ssh` is not installed or fails.
async fn ssh_dash_g(address: &str, home: Option<&Path>) -> Option<SshConfigView> {
    let output = Command::new("ssh")
        .arg("-G")
        .arg("--")
        .arg(address)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SSH_G_TIMEOUT, output)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(parse_ssh_dash_g(
        &String::from_utf8_lossy(&output.stdout),
        home,
    ))
}

/// Reads `ssh -G` output: one lowercase `key value` per line.
pub fn parse_ssh_dash_g(text: &str, home: Option<&Path>) -> SshConfigView {
    let mut view = SshConfigView::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim();
        match key {
            "hostname" => view.hostname = Some(value.to_string()),
            "user" => view.user = Some(value.to_string()),
            "port" => view.port = value.parse().ok(),
            "identityfile" if !is_openssh_default_key(value) => {
                view.identity_files.push(expand_tilde(value, home));
            }
            "proxyjump" if !value.eq_ignore_ascii_case("none") => {
                view.proxy_jump = Some(value.to_string());
            }
            "proxycommand" if !value.eq_ignore_ascii_case("none") => {
                view.proxy_command = Some(value.to_string());
            }
            "globalknownhostsfile" => {
                let files = value.split_whitespace();
                view.global_known_hosts =
                    Some(files.map(|file| expand_tilde(file, home)).collect());
            }
            _ => {}
        }
    }
    view
}

fn is_openssh_default_key(value: &str) -> bool {
    value
        .strip_prefix("~/.ssh/")
        .is_some_and(|name| OPENSSH_DEFAULT_KEYS.contains(&name))
}

/// Reads `~/.ssh/config` with the ssh2-config crate, for machines without an
/// `ssh` binary. It knows Host patterns and Include, not Match.
fn ssh2_config_view(address: &str, home: Option<&Path>) -> Option<SshConfigView> {
    use ssh2_config::{ParseRule, SshConfig};
    let home = home?;
    let file = std::fs::File::open(home.join(".ssh").join("config")).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let config = SshConfig::default()
        .home_dir(home)
        .parse(
            &mut reader,
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .ok()?;
    let params = config.query(address);
    Some(SshConfigView {
        hostname: params.host_name,
        user: params.user,
        port: params.port,
        identity_files: params.identity_file.unwrap_or_default(),
        proxy_jump: params
            .proxy_jump
            .and_then(|hops| hops.into_iter().next())
            .filter(|hop| !hop.eq_ignore_ascii_case("none")),
        proxy_command: params
            .unsupported_fields
            .get("proxycommand")
            .map(|words| words.join(" "))
            .filter(|command| !command.eq_ignore_ascii_case("none")),
        global_known_hosts: params
            .unsupported_fields
            .get("globalknownhostsfile")
            .or_else(|| params.ignored_fields.get("globalknownhostsfile"))
            .map(|files| {
                files
                    .iter()
                    .map(|file| expand_tilde(file, Some(home)))
                    .collect()
            }),
    })
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

fn expand_tilde(value: &str, home: Option<&Path>) -> PathBuf {
    match (value.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(value),
    }
}

/// A path as the user would write it: `~/…` under the home folder.
pub fn display_path(path: &Path) -> String {
    if let Some(home) = home_dir()
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostKeyCheck;

    fn spec(address: &str) -> SshHost {
        SshHost {
            address: address.to_string(),
            port: None,
            user: None,
            identity: None,
            known_hosts: PathBuf::from("/k"),
            host_key_check: HostKeyCheck::Strict,
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(5),
            jump: None,
        }
    }

    const DASH_G: &str = "user deploy\nhostname 10.0.0.5\nport 2222\n\
        identityfile ~/.ssh/id_rsa\nidentityfile ~/.ssh/work key\nidentityfile ~/.ssh/id_ed25519\n\
        proxyjump bastion\nconnecttimeout none\n";

    #[test]
    fn ssh_dash_g_output_is_read_without_openssh_defaults() {
        let view = parse_ssh_dash_g(DASH_G, Some(Path::new("/home/u")));
        assert_eq!(view.hostname.as_deref(), Some("10.0.0.5"));
        assert_eq!(view.user.as_deref(), Some("deploy"));
        assert_eq!(view.port, Some(2222));
        assert_eq!(
            view.identity_files,
            vec![PathBuf::from("/home/u/.ssh/work key")]
        );
        assert_eq!(view.proxy_jump.as_deref(), Some("bastion"));
        let none = parse_ssh_dash_g("proxyjump none\nproxycommand none\n", None);
        assert_eq!(none.proxy_jump, None);
        assert_eq!(none.proxy_command, None);
    }

    #[test]
    fn hosts_toml_wins_over_ssh_config() {
        let mut spec = spec("web");
        spec.port = Some(22);
        spec.user = Some("root".into());
        spec.identity = Some(PathBuf::from("/keys/k"));
        spec.jump = None;
        let mut view = parse_ssh_dash_g(DASH_G, Some(Path::new("/home/u")));
        view.proxy_jump = None;
        let target = merge(&spec, false, view, Some(Path::new("/home/u"))).expect("merges");
        assert_eq!(target.host, "10.0.0.5");
        assert_eq!(target.port, 22);
        assert_eq!(target.user, "root");
        assert_eq!(
            target.identities,
            vec![Identity {
                path: PathBuf::from("/keys/k"),
                explicit: true
            }]
        );
    }

    #[test]
    fn ssh_config_fills_what_hosts_toml_leaves_open() {
        let mut view = parse_ssh_dash_g(DASH_G, Some(Path::new("/home/u")));
        view.proxy_jump = None;
        let target = merge(&spec("web"), false, view, Some(Path::new("/home/u"))).expect("merges");
        assert_eq!(target.address(), "10.0.0.5:2222");
        assert_eq!(target.user, "deploy");
        let paths: Vec<_> = target.identities.iter().map(|i| i.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                PathBuf::from("/home/u/.ssh/work key"),
                PathBuf::from("/home/u/.ssh/id_ed25519"),
                PathBuf::from("/home/u/.ssh/id_ecdsa"),
                PathBuf::from("/home/u/.ssh/id_rsa"),
            ]
        );
        assert!(target.identities.iter().all(|i| !i.explicit));
    }

    #[test]
    fn a_proxy_jump_outside_hosts_toml_is_refused_clearly() {
        let view = parse_ssh_dash_g(DASH_G, None);
        let error = merge(&spec("web"), false, view.clone(), None).expect_err("refused");
        assert!(error.to_string().contains("ProxyJump bastion"), "{error}");
        // A jump from hosts.toml overrides it.
        assert!(merge(&spec("web"), true, view, None).is_ok());
        let view = parse_ssh_dash_g("proxycommand nc -X connect %h %p\n", None);
        let error = merge(&spec("web"), false, view, None).expect_err("refused");
        assert!(error.to_string().contains("ProxyCommand `nc -X"), "{error}");
    }

    #[test]
    fn the_address_is_used_as_is_without_ssh_config() {
        let mut spec = spec("n2");
        spec.user = Some("root".into());
        let target = merge(&spec, false, SshConfigView::default(), None).expect("merges");
        assert_eq!(target.host, "n2");
        assert_eq!(target.port, 22);
        assert!(target.identities.is_empty());
    }

    #[test]
    fn without_ssh_the_config_file_is_read_by_ssh2_config() {
        let home = tempfile::tempdir().expect("temp home");
        std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
        std::fs::write(
            home.path().join(".ssh/config"),
            "Host web\n  HostName 10.0.0.7\n  User deploy\n  Port 2222\n  \
             IdentityFile ~/.ssh/work\n\nHost old\n  ProxyCommand nc %h %p\n",
        )
        .expect("write config");
        let view = ssh2_config_view("web", Some(home.path())).expect("parsed");
        assert_eq!(view.hostname.as_deref(), Some("10.0.0.7"));
        assert_eq!(view.user.as_deref(), Some("deploy"));
        assert_eq!(view.port, Some(2222));
        assert_eq!(view.identity_files, vec![home.path().join(".ssh/work")]);
        assert_eq!(view.proxy_command, None);
        let old = ssh2_config_view("old", Some(home.path())).expect("parsed");
        assert_eq!(old.proxy_command.as_deref(), Some("nc %h %p"));
    }

    #[test]
    fn the_global_known_hosts_files_come_from_ssh_config_or_openssh_defaults() {
        let home = Path::new("/home/u");
        let view = parse_ssh_dash_g("globalknownhostsfile /etc/a ~/b\n", Some(home));
        assert_eq!(
            view.global_known_hosts,
            Some(vec![PathBuf::from("/etc/a"), PathBuf::from("/home/u/b")])
        );
        let mut spec = spec("n1");
        spec.user = Some("u".into());
        let target = merge(&spec, false, view, Some(home)).expect("merges");
        assert_eq!(
            target.global_known_hosts,
            [PathBuf::from("/etc/a"), PathBuf::from("/home/u/b")]
        );
        let plain = merge(&spec, false, SshConfigView::default(), Some(home)).expect("merges");
        assert_eq!(
            plain.global_known_hosts,
            [
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts2")
            ]
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let mut spec = spec("::1");
        spec.user = Some("u".into());
        spec.port = Some(2200);
        let target = merge(&spec, false, SshConfigView::default(), None).expect("merges");
        assert_eq!(target.address(), "[::1]:2200");
    }
}
