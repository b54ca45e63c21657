//! Where the control socket lives: `<config dir>/.zap/zap.sock`, unless that
//! path is too long for a Unix socket address (`sun_path` holds 108 bytes on
//! Linux, 104 on the BSDs and macOS, the final NUL included). Then the socket
//! goes to `$XDG_RUNTIME_DIR/zap/<hash>.sock`, or `/tmp/zap-<uid>/<hash>.sock`,
//! where the hash is of the config dir's canonical path, and the server writes
//! that path into `.zap/socket` so a client whose environment differs (no
//! `XDG_RUNTIME_DIR` under `sudo -u`, say) still finds it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::effective_uid;

/// The longest socket path `bind` and `connect` accept, in bytes.
pub const MAX_SOCKET_PATH: usize = if cfg!(target_os = "linux") { 107 } else { 103 };

/// Bytes a bind needs next to the socket for its private staging directory
/// (`/.b<pid>/s`, see `server.rs`), so a socket path that fits still binds.
pub(crate) const STAGING_ROOM: usize = "/.b4294967295/s".len();

/// The file in `.zap/` that names a socket living outside `.zap/`.
pub const POINTER_FILE: &str = "socket";

/// Where the instance for `config_dir` listens. Both the server and its
/// clients call this; clients also look at `.zap/socket` first (see
/// [`client_candidates`]).
pub fn socket_path(config_dir: &Path) -> PathBuf {
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    choose(
        &canonical(config_dir),
        runtime_dir.as_deref(),
        effective_uid(),
    )
}

/// `<config dir>/.zap`.
pub fn state_dir(config_dir: &Path) -> PathBuf {
    canonical(config_dir).join(".zap")
}

/// The config dir as an absolute path without symlinks, so `zap up` in the
/// folder and `zap status --config /that/folder` agree on the socket. A dir
/// that cannot be resolved (it does not exist) is only made absolute.
pub fn canonical(config_dir: &Path) -> PathBuf {
    std::fs::canonicalize(config_dir)
        .or_else(|_| std::path::absolute(config_dir))
        .unwrap_or_else(|_| config_dir.to_path_buf())
}

/// The sockets a client tries, in order: the one `.zap/socket` names (if
/// any), then [`socket_path`].
pub fn client_candidates(config_dir: &Path) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    let pointer = state_dir(config_dir).join(POINTER_FILE);
    if let Ok(text) = std::fs::read_to_string(pointer) {
        let named = PathBuf::from(text.trim_end_matches('\n'));
        if named.is_absolute() {
            candidates.push(named);
        }
    }
    let computed = socket_path(config_dir);
    if !candidates.contains(&computed) {
        candidates.push(computed);
    }
    candidates
}

/// Whether `path` (and its bind-time staging path) fit in a socket address.
pub fn fits(path: &Path) -> bool {
    let parent = path.parent().map_or(0, |parent| len(parent.as_os_str()));
    len(path.as_os_str()) <= MAX_SOCKET_PATH && parent + STAGING_ROOM <= MAX_SOCKET_PATH
}

fn len(text: &OsStr) -> usize {
    text.as_bytes().len()
}

/// The pure part of [`socket_path`]: `dir` is already canonical.
pub(crate) fn choose(dir: &Path, runtime_dir: Option<&Path>, uid: u32) -> PathBuf {
    let primary = dir.join(".zap").join("zap.sock");
    if fits(&primary) {
        return primary;
    }
    let name = format!("{:016x}.sock", fnv1a(dir.as_os_str().as_bytes()));
    if let Some(runtime_dir) = runtime_dir.filter(|dir| dir.is_absolute()) {
        let candidate = runtime_dir.join("zap").join(&name);
        if fits(&candidate) {
            return candidate;
        }
    }
    PathBuf::from(format!("/tmp/zap-{uid}")).join(name)
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions and
/// builds (std's `DefaultHasher` does not promise that), so an older client
/// finds a newer server's socket.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_config_dir_keeps_the_socket_in_dot_zap() {
        assert_eq!(
            choose(Path::new("/srv/app"), None, 1000),
            PathBuf::from("/srv/app/.zap/zap.sock")
        );
    }

    #[test]
    fn a_long_config_dir_falls_back_to_a_hashed_name() {
        let long = PathBuf::from(format!("/home/someone/{}", "deep/".repeat(30)));
        let in_runtime = choose(&long, Some(Path::new("/run/user/1000")), 1000);
        assert!(
            in_runtime.starts_with("/run/user/1000/zap/"),
            "{in_runtime:?}"
        );
        assert!(fits(&in_runtime));
        let in_tmp = choose(&long, None, 1000);
        assert!(in_tmp.starts_with("/tmp/zap-1000/"), "{in_tmp:?}");
        assert_eq!(in_runtime.file_name(), in_tmp.file_name());
        // Another dir, another name.
        let other = choose(&long.join("x"), None, 1000);
        assert_ne!(other, in_tmp);
        // A relative or over-long runtime dir is not used.
        assert!(choose(&long, Some(Path::new("run")), 7).starts_with("/tmp/zap-7/"));
        assert!(choose(&long, Some(&long), 7).starts_with("/tmp/zap-7/"));
    }

    #[test]
    fn the_limit_leaves_room_for_the_staging_path() {
        let just_fits = PathBuf::from(format!(
            "/{}",
            "a".repeat(MAX_SOCKET_PATH - STAGING_ROOM - 1)
        ));
        assert!(fits(&just_fits.join("zap.sock")));
        assert!(!fits(&just_fits.join("a").join("zap.sock")));
    }

    #[test]
    fn the_hash_is_stable() {
        // The FNV-1a test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
