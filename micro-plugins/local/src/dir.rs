//! Where the registry lives when no `dir` is configured, and creating it privately.

use crate::files::create_dir_private;
use micro_core::{Error, Result};
use std::path::{Path, PathBuf};

/// Error id of this plugin.
pub(crate) const ERROR_ID: &str = "go.micro.registry";

/// The registry directory for the `dir` option and the application's environment.
///
/// - `dir` when it is not empty;
/// - else `$XDG_RUNTIME_DIR/micro/registry` when `XDG_RUNTIME_DIR` is an absolute path;
/// - else `{tmp}/micro-{uid}/registry`, with `tmp` = `TMPDIR` from the application's
///   environment or [`std::env::temp_dir`]. The `micro-{uid}` directory must be a real
///   directory owned by the current user (another user could have created it first).
pub fn resolve_dir(
    dir: &str,
    xdg_runtime_dir: Option<&str>,
    tmpdir: Option<&str>,
) -> Result<PathBuf> {
    if !dir.is_empty() {
        return Ok(PathBuf::from(dir));
    }
    // The XDG spec says a relative path in these variables is invalid and must be ignored.
    if let Some(runtime) = xdg_runtime_dir.filter(|d| Path::new(d).is_absolute()) {
        return Ok(Path::new(runtime).join("micro").join("registry"));
    }
    let tmp = match tmpdir.filter(|d| !d.is_empty()) {
        Some(tmp) => PathBuf::from(tmp),
        None => std::env::temp_dir(),
    };
    private_tmp_dir(&tmp).map(|d| d.join("registry"))
}

#[cfg(unix)]
fn private_tmp_dir(tmp: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let failed = |what: &str, err: std::io::Error| {
        Error::internal(
            ERROR_ID,
            format!("local registry: {what} in {}: {err}", tmp.display()),
        )
    };
    // Our uid, without unsafe code: the owner of a file we just created (it is unlinked
    // already, nothing is left behind).
    let probe = tempfile::tempfile_in(tmp).map_err(|e| failed("cannot create a file", e))?;
    let uid = probe
        .metadata()
        .map_err(|e| failed("cannot read a file's owner", e))?
        .uid();
    let dir = tmp.join(format!("micro-{uid}"));
    create_dir_private(&dir).map_err(|e| failed(&format!("cannot create micro-{uid}"), e))?;
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| failed(&format!("cannot inspect micro-{uid}"), e))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::forbidden(
            ERROR_ID,
            format!(
                "local registry: {} is not a private directory of user {uid} (owner {}, mode {:o}); \
                 remove it or set registry.dir",
                dir.display(),
                meta.uid(),
                meta.permissions().mode() & 0o7777
            ),
        ));
    }
    Ok(dir)
}

#[cfg(not(unix))]
fn private_tmp_dir(tmp: &Path) -> Result<PathBuf> {
    Ok(tmp.join("micro"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_wins() {
        let dir = resolve_dir("/some/where", Some("/run/user/1"), None).unwrap();
        assert_eq!(dir, PathBuf::from("/some/where"));
    }

    #[test]
    fn xdg_runtime_dir_when_absolute() {
        let dir = resolve_dir("", Some("/run/user/1"), None).unwrap();
        assert_eq!(dir, PathBuf::from("/run/user/1/micro/registry"));
    }

    #[cfg(unix)]
    #[test]
    fn private_tmp_dir_otherwise() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let tmp_str = tmp.path().to_str().unwrap();
        let dir = resolve_dir("", Some("relative/ignored"), Some(tmp_str)).unwrap();
        let parent = dir.parent().unwrap();
        assert_eq!(dir.file_name().unwrap(), "registry");
        assert!(
            parent
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("micro-")
        );
        let mode = std::fs::metadata(parent).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Resolving again accepts the directory it created.
        assert_eq!(resolve_dir("", None, Some(tmp_str)).unwrap(), dir);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_shared_tmp_dir() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let tmp_str = tmp.path().to_str().unwrap();
        let dir = resolve_dir("", None, Some(tmp_str)).unwrap();
        let parent = dir.parent().unwrap();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = resolve_dir("", None, Some(tmp_str)).unwrap_err();
        assert_eq!(err.code, 403);
        assert!(
            err.detail.contains("not a private directory"),
            "{}",
            err.detail
        );
    }
}
