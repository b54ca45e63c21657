//! `hosts.toml` → the hosts of the [`Plan`](super::Plan), with `[defaults]`
//! folded into every host and `jump` chains checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::names::check_host_name;
use super::plan::{Host, HostKeyCheck, HostKind, SshHost};
use super::reader::{Errors, Node, Spot, Table};
use crate::model::HostName;

/// The name of the host that is always there unless `hosts.toml` redefines it.
pub const LOCAL: &str = "local";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
pub const DEFAULT_STATS_EVERY: Duration = Duration::from_secs(2);

const DEFAULTS_KEYS: &[&str] = &[
    "user",
    "identity",
    "known_hosts",
    "host_key_check",
    "connect_timeout",
    "keepalive",
    "stats_every",
];

const HOST_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "identity",
    "known_hosts",
    "host_key_check",
    "connect_timeout",
    "keepalive",
    "jump",
    "local",
    "stats_every",
];

/// What paths in the config are relative to.
pub struct PathBase<'p> {
    /// The config folder, absolute.
    pub dir: &'p Path,
    /// `$HOME`, for `~`; `None` when it is not set.
    pub home: Option<&'p Path>,
}

impl PathBase<'_> {
    /// `~` and `~/x` from `$HOME`; relative paths from the config folder.
    pub fn expand(&self, raw: &str) -> Result<PathBuf, String> {
        let home_relative = if raw == "~" {
            Some("")
        } else {
            raw.strip_prefix("~/")
        };
        match (home_relative, self.home) {
            (Some(rest), Some(home)) => Ok(home.join(rest)),
            (Some(_), None) => Err("cannot expand \"~\": HOME is not set".to_string()),
            (None, _) => Ok(self.dir.join(raw)),
        }
    }
}

/// `[defaults]`, each entry `None` when absent or wrong. They apply to every
/// ssh host; `stats_every` to local hosts as well.
#[derive(Default)]
struct Defaults {
    user: Option<String>,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    host_key_check: Option<HostKeyCheck>,
    connect_timeout: Option<Duration>,
    keepalive: Option<Duration>,
    stats_every: Option<Duration>,
}

/// What `hosts.toml` holds.
pub struct Hosts {
    /// The hosts that are free of mistakes, and the built-in `local` one.
    pub hosts: BTreeMap<HostName, Host>,
    /// Every host the file names, mistaken or not: jobs that use a host with
    /// a mistake get no second error about it.
    pub declared: BTreeSet<HostName>,
}

impl Hosts {
    pub fn knows(&self, name: &str) -> bool {
        self.declared.iter().any(|host| host.0 == name)
    }
}

/// The hosts of `hosts.toml`, plus the built-in `local` host unless the file
/// defines one. `doc` is `None` when there is no hosts.toml.
pub fn read_hosts(
    doc: Option<Table<'_, '_>>,
    base: &PathBase<'_>,
    errors: &mut Errors<'_>,
) -> Hosts {
    let mut hosts = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let mut defaults = Defaults::default();
    if let Some(doc) = doc {
        doc.deny_unknown(&["defaults", "hosts"], errors);
        if let Some(table) = doc.get("defaults").and_then(|node| node.table(errors)) {
            defaults = read_defaults(&table, base, errors);
        }
        let table = doc.get("hosts").and_then(|node| node.table(errors));
        if let Some(table) = table {
            let mut jumps = BTreeMap::new();
            for (key, node) in table.entries() {
                let name = HostName(key.get_ref().to_string());
                let name_spot = Spot {
                    file: node.file,
                    span: key.span(),
                    key_path: node.path.clone(),
                };
                check_host_name(&name.0, &name_spot, errors);
                declared.insert(name.clone());
                let Some(host_table) = node.table(errors) else {
                    continue;
                };
                let host_table = Table {
                    key_span: key.span(),
                    ..host_table
                };
                if let Some((host, jump)) = read_host(&name, &host_table, &defaults, base, errors) {
                    if let Some(jump) = jump {
                        jumps.insert(name.clone(), jump);
                    }
                    hosts.insert(name, host);
                }
            }
            check_jumps(&hosts, &declared, &jumps, errors);
        }
    }
    if declared.insert(HostName(LOCAL.to_string())) {
        // `stats_every` is the one default that concerns local hosts too.
        let host = Host {
            name: HostName(LOCAL.to_string()),
            kind: HostKind::Local,
            stats_every: defaults.stats_every.unwrap_or(DEFAULT_STATS_EVERY),
        };
        hosts.insert(host.name.clone(), host);
    }
    Hosts { hosts, declared }
}

fn read_defaults(table: &Table<'_, '_>, base: &PathBase<'_>, errors: &mut Errors<'_>) -> Defaults {
    table.deny_unknown(DEFAULTS_KEYS, errors);
    let get = |key: &str| table.get(key);
    Defaults {
        user: get("user").and_then(|n| n.non_blank_str("user", errors).map(str::to_string)),
        identity: get("identity").and_then(|n| path(&n, base, errors)),
        known_hosts: get("known_hosts").and_then(|n| path(&n, base, errors)),
        host_key_check: get("host_key_check").and_then(|n| host_key_check(&n, errors)),
        connect_timeout: get("connect_timeout").and_then(|n| n.positive_duration(errors)),
        keepalive: get("keepalive").and_then(|n| n.positive_duration(errors)),
        stats_every: get("stats_every").and_then(|n| n.positive_duration(errors)),
    }
}

/// One `[hosts.NAME]`; `None` when it has mistakes (already reported). The
/// jump target comes back apart, with its spot, for [`check_jumps`].
fn read_host(
    name: &HostName,
    table: &Table<'_, '_>,
    defaults: &Defaults,
    base: &PathBase<'_>,
    errors: &mut Errors<'_>,
) -> Option<(Host, Option<(HostName, Spot)>)> {
    table.deny_unknown(HOST_KEYS, errors);
    let stats_every = table.read(
        "stats_every",
        defaults.stats_every.unwrap_or(DEFAULT_STATS_EVERY),
        |n| n.positive_duration(errors),
    );
    let local = table.read("local", false, |n| n.bool(errors));
    if local? {
        // A local host runs without ssh: connection keys would be ignored,
        // which hides mistakes.
        for (key, node) in table.entries() {
            let key = key.get_ref();
            let ssh_only = HOST_KEYS.contains(&key.as_ref())
                && !matches!(key.as_ref(), "local" | "stats_every");
            if ssh_only {
                errors.at(&node.spot(), format!("a local host takes no \"{key}\""));
            }
        }
        let host = Host {
            name: name.clone(),
            kind: HostKind::Local,
            stats_every: stats_every?,
        };
        return Some((host, None));
    }

    let address = table.require("address", errors, |n, errors| {
        let text = n.non_blank_str("address", errors)?;
        match split_address(text) {
            Ok(split) => Some(split),
            Err(reason) => {
                errors.at(&n.spot(), reason);
                None
            }
        }
    });
    let port = table.read("port", None, |n| n.integer_in(1..=65_535, errors).map(Some));
    // A port in the address stands for `port`; both, and they must agree.
    let (address, port) = match (address, port) {
        (Some((_, Some(in_address))), Some(Some(port))) if in_address != port => {
            errors.at(
                &table.spot(),
                format!("the address says port {in_address} and port says {port}: keep one"),
            );
            (None, None)
        }
        (Some((address, in_address)), Some(port)) => (Some(address), Some(port.or(in_address))),
        (address, port) => (address.map(|(address, _)| address), port),
    };
    let user = table.read("user", defaults.user.clone(), |n| {
        n.non_blank_str("user", errors)
            .map(|user| Some(user.to_string()))
    });
    let identity = table.read("identity", defaults.identity.clone(), |n| {
        path(&n, base, errors).map(Some)
    });
    let known_hosts = match (table.get("known_hosts"), &defaults.known_hosts) {
        (Some(node), _) => path(&node, base, errors),
        (None, Some(known_hosts)) => Some(known_hosts.clone()),
        (None, None) => match base.expand("~/.ssh/known_hosts") {
            Ok(path) => Some(path),
            Err(reason) => {
                errors.without_value(&table.spot(), format!("{reason}; set known_hosts"));
                None
            }
        },
    };
    let host_key_check = table.read(
        "host_key_check",
        defaults.host_key_check.unwrap_or(HostKeyCheck::Strict),
        |n| host_key_check(&n, errors),
    );
    let connect_timeout = table.read(
        "connect_timeout",
        defaults.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        |n| n.positive_duration(errors),
    );
    let keepalive = table.read(
        "keepalive",
        defaults.keepalive.unwrap_or(DEFAULT_KEEPALIVE),
        |n| n.positive_duration(errors),
    );
    let jump = table.read("jump", None, |n| {
        let target = n.non_blank_str("jump", errors)?;
        Some(Some((HostName(target.to_string()), n.spot())))
    });

    let jump = jump?;
    let host = Host {
        name: name.clone(),
        kind: HostKind::Ssh(SshHost {
            address: address?,
            port: port?,
            user: user?,
            identity: identity?,
            known_hosts: known_hosts?,
            host_key_check: host_key_check?,
            connect_timeout: connect_timeout?,
            keepalive: keepalive?,
            jump: jump.as_ref().map(|(target, _)| target.clone()),
        }),
        stats_every: stats_every?,
    };
    Some((host, jump))
}

fn path(node: &Node<'_, '_>, base: &PathBase<'_>, errors: &mut Errors<'_>) -> Option<PathBuf> {
    let raw = node.non_blank_str("a path", errors)?;
    match base.expand(raw) {
        Ok(path) => Some(path),
        Err(reason) => {
            errors.at(&node.spot(), reason);
            None
        }
    }
}

/// An address as ssh takes it: a name, an IPv4 or IPv6 literal, the latter
/// bracketed or not, and `[ADDRESS]:PORT` or `NAME:PORT` with its port.
pub fn split_address(text: &str) -> Result<(String, Option<u16>), String> {
    let text = text.trim();
    let port_of = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|&port| port > 0)
            .ok_or_else(|| format!("\"{port}\" is not a port (1 to 65535)"))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err("an address opened with [ needs its ]: [ADDRESS] or [ADDRESS]:PORT".into());
        };
        if inside.is_empty() {
            return Err("nothing between [ and ]".into());
        }
        return match after {
            "" => Ok((inside.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside.to_string(), Some(port_of(port)?))),
                None => Err(format!(
                    "\"{after}\" after ]: write [ADDRESS] or [ADDRESS]:PORT"
                )),
            },
        };
    }
    match text.matches(':').count() {
        // A bare IPv6 literal: all of it is the address.
        0 | 2.. => Ok((text.to_string(), None)),
        _ => {
            let (name, port) = text.split_once(':').unwrap_or((text, ""));
            Ok((name.to_string(), Some(port_of(port)?)))
        }
    }
}

fn host_key_check(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<HostKeyCheck> {
    node.choice(
        &[
            ("strict", HostKeyCheck::Strict),
            ("accept-new", HostKeyCheck::AcceptNew),
        ],
        errors,
    )
}

/// Every `jump` names an ssh host of this file, and following jumps never
/// comes back to where it started.
fn check_jumps(
    hosts: &BTreeMap<HostName, Host>,
    declared: &BTreeSet<HostName>,
    jumps: &BTreeMap<HostName, (HostName, Spot)>,
    errors: &mut Errors<'_>,
) {
    for (target, spot) in jumps.values() {
        match hosts.get(target).map(|host| &host.kind) {
            Some(HostKind::Ssh(_)) => {}
            Some(HostKind::Local) => {
                errors.at(
                    spot,
                    format!("cannot jump through \"{target}\": it is a local host"),
                );
            }
            None if target.0 == LOCAL => {
                errors.at(spot, "cannot jump through \"local\": it is a local host");
            }
            // Declared with mistakes of its own, already reported.
            None if declared.contains(target) => {}
            None => errors.at(spot, format!("unknown jump host \"{target}\"")),
        }
    }

    // Each host has at most one jump, so a cycle is found by walking from
    // every host; it is reported once, at its smallest member.
    for start in jumps.keys() {
        let mut chain = vec![start];
        let mut at = start;
        while let Some((next, _)) = jumps.get(at) {
            if next == start {
                if chain.iter().all(|member| start <= *member) {
                    let names: Vec<String> =
                        chain.iter().chain([&start]).map(|h| h.0.clone()).collect();
                    if let Some((_, spot)) = jumps.get(start) {
                        errors.at(spot, format!("jump cycle: {}", names.join(" → ")));
                    }
                }
                break;
            }
            if chain.contains(&next) {
                break; // a cycle that `start` only leads into
            }
            chain.push(next);
            at = next;
        }
    }
}
