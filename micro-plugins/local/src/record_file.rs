//! Reading a record file without trusting what sits at its path: only a regular file is
//! read, never a FIFO, device or socket (opening a FIFO blocks until a writer comes), and
//! never more than [`MAX_RECORD_SIZE`] bytes.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest record file read or written: a node record with its endpoints' schemas is a
/// few KiB; anything near this is not one of ours.
pub(crate) const MAX_RECORD_SIZE: u64 = 1 << 20;

/// The bytes of the regular file at `path`, at most `MAX_RECORD_SIZE` of them. A FIFO,
/// device, socket, directory or symbolic link is an error of kind `InvalidInput`, a larger
/// file one of kind `FileTooLarge`, and neither blocks.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: a FIFO swapped in after any check still does not block the open; O_NOFOLLOW:
    // a link is not followed out of the registry directory.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => not_a_record(path, "a symbolic link"),
            _ => err,
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(not_a_record(path, "not a regular file"));
    }
    if meta.len() > MAX_RECORD_SIZE {
        return Err(too_large(path, meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the check: read one byte past the cap to notice.
    file.take(MAX_RECORD_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD_SIZE {
        return Err(too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

fn not_a_record(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}: a record is a regular file", path.display()),
    )
}

fn too_large(path: &Path, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "{} has {size} bytes or more, over the {MAX_RECORD_SIZE}-byte limit of a record",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_only_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("ok.json");
        std::fs::write(&plain, b"{}").unwrap();
        assert_eq!(read(&plain).unwrap(), b"{}");

        let fifo = dir.path().join("x.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        // No writer ever opens it: a blocking open would hang this test.
        let err = read(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");

        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        assert_eq!(read(&link).unwrap_err().kind(), io::ErrorKind::InvalidInput);

        let sub = dir.path().join("dir.json");
        std::fs::create_dir(&sub).unwrap();
        assert!(read(&sub).is_err());
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_RECORD_SIZE as usize + 1]).unwrap();
        let err = read(&big).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge, "{err}");
        let exact = dir.path().join("exact.json");
        std::fs::write(&exact, vec![b' '; MAX_RECORD_SIZE as usize]).unwrap();
        assert_eq!(read(&exact).unwrap().len(), MAX_RECORD_SIZE as usize);
    }
}
