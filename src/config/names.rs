//! What names of hosts, systems, jobs, packs and env variables may hold:
//! they appear in targets (`system.job@host`), file names and shell scripts.

use super::reader::{Errors, Spot};

/// Letters, digits, `-` and `_`: safe in a file name, a target and a shell word.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Host names may also hold dots (`db.eu`): `@` separates them in targets.
pub fn check_host_name(name: &str, spot: &Spot, errors: &mut Errors<'_>) {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        errors.at(
            spot,
            format!("bad host name \"{name}\": use letters, digits, '-', '_' and '.'"),
        );
    }
}

/// Job names hold no dot: it separates system and job in `after` and targets.
pub fn check_job_name(name: &str, spot: &Spot, errors: &mut Errors<'_>) -> bool {
    if is_plain_name(name) {
        return true;
    }
    let why = if name.contains('.') {
        "'.' separates system and job"
    } else {
        "use letters, digits, '-' and '_'"
    };
    errors.at(spot, format!("bad job name \"{name}\": {why}"));
    false
}

/// The name of an environment variable, which the job's shell exports.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        assert!(is_plain_name("web-1_a"));
        for bad in ["", "a.b", "a b", "a@b", "a/b", "é"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("RUST_LOG"));
        assert!(is_env_name("_x1"));
        for bad in ["", "1A", "A-B", "A B", "A=B", "$A"] {
            assert!(!is_env_name(bad), "{bad:?}");
        }
    }
}
