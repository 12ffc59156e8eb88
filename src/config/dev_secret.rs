//! Development mode's generated HS256 secret: one file that `serve`, `token` and `doctor`
//! agree on wherever in a checkout they are started.
//!
//! Unless COURSEGRAPH_DEV_SECRET_FILE names it, the file is the first
//! `.coursegraph/dev-secret` found from the working directory upwards; when there is none, it
//! is created at the top of the checkout (the nearest directory upwards holding `.git`), or
//! in the working directory outside one. Whoever creates it says where.

use std::path::{Path, PathBuf};

use super::{ConfigError, Secret};

/// The file's place under a directory.
pub const RELATIVE: &str = ".coursegraph/dev-secret";

/// The dev secret and where it lives.
#[derive(Debug, Clone)]
pub struct DevSecret {
    pub secret: Secret,
    pub path: PathBuf,
    /// This process created the file (the caller says so to the user).
    pub created: bool,
}

/// The dev secret for `explicit` (COURSEGRAPH_DEV_SECRET_FILE) or, without it, for the
/// working directory: read, or created (0600, 32 random bytes) when missing.
pub fn load_or_create(explicit: Option<&Path>) -> Result<DevSecret, ConfigError> {
    let path = match explicit {
        Some(p) => absolute(p),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| ConfigError(format!("COURSEGRAPH_DEV_SECRET_FILE: no working directory: {e}")))?;
            locate(&cwd)
        }
    };
    let (secret, created) = read_or_create(&path)?;
    Ok(DevSecret { secret, path, created })
}

/// Where the dev secret for a process started in `dir` is: the first existing one from
/// `dir` upwards, else the one to create at the top of the checkout (or in `dir`).
pub fn locate(dir: &Path) -> PathBuf {
    if let Some(found) = dir.ancestors().map(|d| d.join(RELATIVE)).find(|p| p.is_file()) {
        return found;
    }
    let root = dir.ancestors().find(|d| d.join(".git").exists()).unwrap_or(dir);
    root.join(RELATIVE)
}

/// Every other dev secret file a token minted in this checkout may have been signed with:
/// those in the directories up from `dir`, and those below the checkout's top, a few levels
/// deep (`tests/.coursegraph/dev-secret`, made by an older `coursegraph token` run there).
pub fn candidates(dir: &Path, except: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = dir.ancestors().map(|d| d.join(RELATIVE)).filter(|p| p.is_file()).collect();
    let root = dir.ancestors().find(|d| d.join(".git").exists()).unwrap_or(dir);
    walk(root, 3, &mut out);
    out.retain(|p| p != except);
    out.sort();
    out.dedup();
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let file = dir.join(RELATIVE);
    if file.is_file() {
        out.push(file);
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let skip = matches!(name.to_str(), Some("target" | "node_modules" | ".git" | ".coursegraph") | None);
        if !skip && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth - 1, out);
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_owned() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or(p.to_owned()) }
}

/// Reads the secret at `path`, creating it first when it does not exist.
fn read_or_create(path: &Path) -> Result<(Secret, bool), ConfigError> {
    use base64::Engine as _;
    let fail = |what: &str, e: std::io::Error| {
        ConfigError(format!(
            "COURSEGRAPH_DEV_SECRET_FILE: cannot {what} {}: {e} (or set COURSEGRAPH_JWT_SECRET)",
            path.display()
        ))
    };
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok((Secret::new(s.trim()), false)),
        Ok(_) => {
            return Err(ConfigError(format!(
                "COURSEGRAPH_DEV_SECRET_FILE: {} holds fewer than 32 bytes; delete it to regenerate",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("read", e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
    }
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let created = write_private(path, &secret).map_err(|e| fail("write", e))?;
    // Another process may have won the race to create it: use whatever is there now.
    let stored = std::fs::read_to_string(path).map_err(|e| fail("read", e))?;
    Ok((Secret::new(stored.trim()), created))
}

/// Writes `contents` to a new file only readable by its owner; false when it already existed.
#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => f.write_all(contents.as_bytes()).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<bool> {
    std::fs::write(path, contents).map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_for_the_whole_checkout() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("repo");
        let deep = root.join("tests").join("it");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        // None yet: created at the top of the checkout, wherever one starts.
        assert_eq!(locate(&deep), root.join(RELATIVE));
        assert_eq!(locate(&root), root.join(RELATIVE));
        let (first, created) = read_or_create(&locate(&deep)).unwrap();
        assert!(created);
        let (again, created) = read_or_create(&locate(&root.join("tests"))).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        // A nearer one wins (someone keeps a separate secret for a sub-project).
        read_or_create(&root.join("tests").join(RELATIVE)).unwrap();
        assert_eq!(locate(&deep), root.join("tests").join(RELATIVE));
        assert_eq!(candidates(&root, &root.join(RELATIVE)), vec![root.join("tests").join(RELATIVE)]);
        // Outside a checkout: the working directory.
        let loose = top.path().join("loose");
        std::fs::create_dir_all(&loose).unwrap();
        assert_eq!(locate(&loose), loose.join(RELATIVE));
    }
}
