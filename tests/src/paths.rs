//! Where things are: the workspace, the shared steering folder, and the harness's download cache.

use std::path::PathBuf;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().map(PathBuf::from).unwrap_or(crate_dir)
}

/// The `shared/` folder beside the project (golden vectors and docs).
pub fn shared_dir() -> PathBuf {
    workspace_root().join("..").join("shared")
}

/// Cache for things the harness downloads or builds once (Nacos jars, Python venvs).
///
/// `CAUSEWAY_CACHE_DIR` overrides the default `~/.cache/causeway`; the folder survives between runs
/// so a second test run needs no network.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAUSEWAY_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("causeway")
}
