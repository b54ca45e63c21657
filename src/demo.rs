//! The demo shipped with zap (`hosts.toml` and `jobs/` at the top of the
//! source tree), built into the binary so `zap run` shows something useful in
//! a folder with no config of its own.

use std::path::PathBuf;

use crate::config::SourceFile;

pub fn sources() -> Vec<SourceFile> {
    [
        ("hosts.toml", include_str!("../hosts.toml")),
        ("jobs/demo.toml", include_str!("../jobs/demo.toml")),
        ("jobs/broken.toml", include_str!("../jobs/broken.toml")),
    ]
    .into_iter()
    .map(|(path, text)| SourceFile {
        path: PathBuf::from(path),
        text: text.to_string(),
    })
    .collect()
}
