//! A known_hosts file read as OpenSSH reads it (sshd(8), "SSH_KNOWN_HOSTS
//! FILE FORMAT"): `@revoked` lines, comma lists of patterns with `*` and
//! `?`, `!` negation, hashed names (`|1|salt|hash`), `[host]:port`, any run
//! of spaces or tabs between fields, comments. Pure: the caller reads the
//! file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey, parse_public_key_base64};
use sha1::Sha1;

/// What a known_hosts file says of a key a host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds the key.
    Known,
    /// A `@revoked` line for this host holds the key: never accepted.
    Revoked { line: usize },
    /// A line for this host holds another key of the same algorithm.
    Changed { line: usize },
    /// Nothing about this key for this host.
    Unknown,
}

/// One usable line: its number (1-based, every line counted), whether it
/// revokes its key, and the key.
struct Entry {
    line: usize,
    revoked: bool,
    key: PublicKey,
}

/// The lines of `text` that name `name` (`host`, or `[host]:port` for a
/// port other than 22). `@cert-authority` lines and lines that cannot be
/// read are left out, as ssh leaves out what it cannot use.
fn entries_for<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = Entry> + 't {
    text.lines().enumerate().filter_map(move |(index, line)| {
        let mut fields = line.split_ascii_whitespace().peekable();
        let first = *fields.peek()?;
        if first.starts_with('#') {
            return None;
        }
        let revoked = match first {
            "@revoked" => {
                fields.next();
                true
            }
            marker if marker.starts_with('@') => return None,
            _ => false,
        };
        let patterns = fields.next()?;
        let _algorithm = fields.next()?;
        let key = fields.next()?;
        if !names(patterns, name) {
            return None;
        }
        let key = parse_public_key_base64(key).ok()?;
        Some(Entry {
            line: index + 1,
            revoked,
            key,
        })
    })
}

/// Whether the comma list `patterns` names `name`: some pattern matches and
/// no negated one does.
pub fn names(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if matches_one(negated, name) {
                return false;
            }
        } else if matches_one(pattern, name) {
            matched = true;
        }
    }
    matched
}

fn matches_one(pattern: &str, name: &str) -> bool {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        return hashed_names(hashed, name);
    }
    wildcard(pattern.as_bytes(), name.as_bytes())
}

/// `salt|hash`, both base64: HMAC-SHA1 of the name keyed by the salt.
fn hashed_names(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` for any run of characters, `?` for one, the rest literally; hostnames
/// compare without regard to case, as ssh compares them.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            wildcard(rest, name) || (!name.is_empty() && wildcard(pattern, &name[1..]))
        }
        (Some((b'?', rest)), Some((_, tail))) => wildcard(rest, tail),
        (Some((want, rest)), Some((have, tail))) => {
            want.eq_ignore_ascii_case(have) && wildcard(rest, tail)
        }
        _ => false,
    }
}

/// What `text` says of `key` offered by `name`: a revocation wins over
/// everything, then a line holding the key, then one holding another key
/// of its algorithm (the first of them).
pub fn verdict(text: &str, name: &str, key: &PublicKey) -> Verdict {
    let mut known = false;
    let mut changed = None;
    for entry in entries_for(text, name) {
        let same = entry.key.key_data() == key.key_data();
        if entry.revoked {
            if same {
                return Verdict::Revoked { line: entry.line };
            }
        } else if same {
            known = true;
        } else if changed.is_none() && same_family(&entry.key.algorithm(), &key.algorithm()) {
            changed = Some(entry.line);
        }
    }
    match (known, changed) {
        (true, _) => Verdict::Known,
        (false, Some(line)) => Verdict::Changed { line },
        (false, None) => Verdict::Unknown,
    }
}

/// The keys `text` holds for `name`, revoked ones left out.
pub fn keys_for(text: &str, name: &str) -> Vec<PublicKey> {
    let entries: Vec<Entry> = entries_for(text, name).collect();
    entries
        .iter()
        .filter(|entry| !entry.revoked)
        .filter(|entry| {
            !entries
                .iter()
                .any(|other| other.revoked && other.key.key_data() == entry.key.key_data())
        })
        .map(|entry| entry.key.clone())
        .collect()
}

/// One algorithm for known_hosts' purposes: RSA with any signature hash.
pub fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(base64: &str) -> PublicKey {
        parse_public_key_base64(base64).expect("test key parses")
    }

    #[test]
    fn a_revoked_key_is_refused_even_beside_a_line_that_knows_it() {
        let text = format!(
            "[127.0.0.2]:22022 ssh-ed25519 {KEY_A}\n# comment\n@revoked [127.0.0.2]:22022 ssh-ed25519 {KEY_A}\n"
        );
        assert_eq!(
            verdict(&text, "[127.0.0.2]:22022", &key(KEY_A)),
            Verdict::Revoked { line: 3 }
        );
        assert!(keys_for(&text, "[127.0.0.2]:22022").is_empty());
        // Another host's revocation says nothing here.
        assert_eq!(
            verdict(&text, "[127.0.0.3]:22022", &key(KEY_A)),
            Verdict::Unknown
        );
    }

    #[test]
    fn patterns_wildcards_negation_and_case_are_read_as_ssh_reads_them() {
        assert!(names("[127.0.0.*]:22022", "[127.0.0.9]:22022"));
        assert!(!names("[127.0.0.*]:22022", "[127.0.0.9]:22"));
        assert!(names("n?", "n4") && !names("n?", "n42"));
        assert!(names("*.internal,!db.internal", "web.internal"));
        assert!(!names("*.internal,!db.internal", "db.internal"));
        assert!(
            !names("!db.internal", "web.internal"),
            "a negation alone names nothing"
        );
        assert!(names("Web.Example", "web.example"));
        assert!(names("a,b,c", "b"));
    }

    #[test]
    fn hashed_names_match_their_host_only() {
        // `ssh-keygen -H` of "n1": salt and HMAC-SHA1 of the name.
        let salt = [7u8; 20];
        let mac = Hmac::<Sha1>::new_from_slice(&salt)
            .expect("any key length")
            .chain_update(b"n1")
            .finalize()
            .into_bytes();
        let pattern = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac));
        assert!(names(&pattern, "n1"));
        assert!(!names(&pattern, "n2"));
        assert!(!names("|1|not base64|x", "n1"));
    }

    #[test]
    fn a_known_key_passes_another_of_its_kind_is_a_change_with_its_line() {
        let text = format!("n1\tssh-ed25519   {KEY_A} comment\n");
        assert_eq!(verdict(&text, "n1", &key(KEY_A)), Verdict::Known);
        assert_eq!(
            verdict(&text, "n1", &key(KEY_B)),
            Verdict::Changed { line: 1 }
        );
        assert_eq!(verdict(&text, "n2", &key(KEY_B)), Verdict::Unknown);
        assert_eq!(keys_for(&text, "n1").len(), 1);
    }

    #[test]
    fn cert_authorities_and_broken_lines_are_left_out() {
        let text = format!(
            "@cert-authority *.internal ssh-ed25519 {KEY_A}\nn1 ssh-ed25519 not-a-key\nn1\n\n"
        );
        assert_eq!(
            verdict(&text, "web.internal", &key(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(verdict(&text, "n1", &key(KEY_A)), Verdict::Unknown);
    }
}
