//! Temporary files that an interrupted writer left behind, and the rule for removing them.
//!
//! [`write_atomic`](crate::write_atomic) and [`write_all_atomic`](crate::write_all_atomic) write
//! `<dir>/<name>` through the sibling `<dir>/.<name>.tmp-<pid>-<domain>` and rename it into place
//! (`pid`: the writing process; `domain`: 16 hex digits naming the machine, boot and pid namespace
//! that pid belongs to, [`process_tag`]). A process killed between the two (SIGKILL, a power cut,
//! a SIGINT: the commands install no signal handler, so SIGINT ends them as abruptly) leaves the
//! temporary file; nobody can ever rename it, and without a rule it would stay forever.
//!
//! # The rule
//! A temporary file is **stale** when its `domain` is this process's and the process named by its
//! `pid` is not alive. Only stale files are removed, so a concurrent writer's temporary file is
//! never touched: ours (another thread of this process may be writing it), another live
//! process's, and any file of another domain, whose writer cannot be asked about (a shard on
//! another node writing a shared folder, a process in another container, a boot before the last
//! reboot; such files stay). Cleanup happens at two moments:
//!
//! * every atomic write, after its rename, removes the stale temporary files **of the same
//!   target**: a rerun that writes the file again cleans what the killed run left of it;
//! * a command that starts or resumes in a results folder **it owns** (a `reproduce` folder that
//!   passed the provenance checks, an `rnn-run` folder holding its configuration, a resumed
//!   `bionet` folder) removes every stale temporary file in it, subfolders included
//!   ([`remove_stale_temps`]), for the targets the resumed run does not write again.
//!
//! Liveness is asked of the operating system (`kill(pid, 0)` on Unix: "no such process" is the
//! only answer taken as dead). One limit, on the safe side: a dead writer whose pid now belongs
//! to an unrelated live process keeps its file until that process ends. Off Unix every pid
//! counts as alive, so nothing is removed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{io_err, Result};

/// The marker between the target name and the writer's tag in a temporary file's name.
const TEMP_MARKER: &str = ".tmp-";

/// `.<target>.tmp-<pid>-<domain>`: the temporary sibling of `target` that process `pid` of this
/// machine, boot and pid namespace writes.
pub fn temp_file_name(target: &str, pid: u32) -> String {
    format!(".{target}{TEMP_MARKER}{}", tag_of(pid))
}

/// `<pid>-<domain>`: the tag of process `pid` of this machine, boot and pid namespace.
pub fn tag_of(pid: u32) -> String {
    format!("{pid}-{}", domain())
}

/// The tag of this process ([`tag_of`]): what names its temporary files (and other per-process
/// leftovers, such as a merge's work folder) so that [`tag_is_dead`] can judge them later.
pub fn process_tag() -> String {
    tag_of(std::process::id())
}

/// Whether `tag` ([`process_tag`]) names a process of this machine, boot and pid namespace that
/// is no longer alive. A tag of another domain, or not a tag, is never dead: nobody here can
/// tell.
pub fn tag_is_dead(tag: &str) -> bool {
    let Some((pid, tag_domain)) = tag.split_once('-') else {
        return false;
    };
    let pid = match pid.parse::<u32>() {
        Ok(p) if p != 0 && pid.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return false,
    };
    tag_domain == domain() && !process_is_alive(pid)
}

/// 16 hex digits naming where this process's pids mean something: on Linux the boot
/// (`/proc/sys/kernel/random/boot_id`, different on every machine and after every reboot) and
/// the pid namespace (`/proc/self/ns/pid`: containers have their own); elsewhere the host name.
/// FNV-1a, so that every build computes the same digits.
fn domain() -> &'static str {
    static DOMAIN: OnceLock<String> = OnceLock::new();
    DOMAIN.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
        let namespace = std::fs::read_link("/proc/self/ns/pid").ok();
        let identity = match (boot, namespace) {
            (Some(b), Some(n)) => format!("{}/{}", b.trim(), n.display()),
            _ => host_name(),
        };
        let hash = identity.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    })
}

/// The host name (`"unknown"` when the system does not tell).
#[cfg(unix)]
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Off Unix nothing is ever judged dead, so the name only needs to be stable.
#[cfg(not(unix))]
fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".into())
}

/// The target name and the writer's tag of a temporary file name; `None` for any other name.
fn parse_temp_file_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix('.')?;
    let (target, tag) = rest.rsplit_once(TEMP_MARKER)?;
    (!target.is_empty() && !tag.is_empty()).then_some((target, tag))
}

/// Whether process `pid` exists (on this machine, in this pid namespace).
#[cfg(unix)]
fn process_is_alive(pid: u32) -> bool {
    // A pid beyond pid_t would be read by kill() as a process group: never ask about it.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 sends nothing; kill() only checks that the process exists and may be
    // signalled. It takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // EPERM: it exists but belongs to another user. Any other failure: keep the file.
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Off Unix there is no cheap, reliable liveness check: every writer counts as alive.
#[cfg(not(unix))]
fn process_is_alive(_pid: u32) -> bool {
    true
}

/// Whether `name` is a temporary file name whose writer is dead (`target`: only those of that
/// target name).
fn is_stale(name: &str, target: Option<&str>) -> bool {
    match parse_temp_file_name(name) {
        Some((t, tag)) => target.is_none_or(|want| want == t) && tag_is_dead(tag),
        None => false,
    }
}

/// Whether `path` is a file named as a temporary file whose writer is dead (see the
/// [module docs](self)).
pub fn is_stale_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| is_stale(n, None))
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// The stale temporary files (see the [module docs](self)) in `dir` and its subfolders, sorted.
/// Symbolic links are not followed; a missing `dir` holds none.
///
/// # Errors
/// A folder that cannot be listed, naming it.
pub fn find_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io_err(&folder))? {
            let entry = entry.map_err(io_err(&folder))?;
            let kind = entry.file_type().map_err(io_err(&entry.path()))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_str().is_some_and(|n| is_stale(n, None)) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Removes the stale temporary files of `dir` and its subfolders ([`find_stale_temps`]) and
/// returns them. Call it only on a folder the caller owns (a results folder it is about to
/// write), never on a folder given for reading.
///
/// # Errors
/// A folder that cannot be listed or a file that cannot be removed, naming it.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let stale = find_stale_temps(dir)?;
    for path in &stale {
        match std::fs::remove_file(path) {
            // Another process cleaning the same folder got there first: the file is gone.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(path)(e)),
            _ => {}
        }
    }
    Ok(stale)
}

/// Removes the stale temporary files of the one target `path` (its siblings
/// `.<name>.tmp-<pid>` of dead writers). Best effort: this is tidying after a successful write,
/// which must not fail because an unrelated file could not be listed or removed.
pub(crate) fn remove_stale_temps_of(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_str().is_some_and(|n| is_stale(n, Some(name)));
        if stale && entry.file_type().is_ok_and(|k| k.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_other_names_are_not_temps() {
        let tag = format!("42-{}", domain());
        assert_eq!(
            parse_temp_file_name(&temp_file_name("a.npy", 42)),
            Some(("a.npy", tag.as_str()))
        );
        assert_eq!(parse_temp_file_name(".x.tmp-1.tmp-7-ab"), Some(("x.tmp-1", "7-ab")));
        for other in ["a.npy", "x.tmp-12", ".x.tmp-", "..tmp-5"] {
            assert_eq!(parse_temp_file_name(other), None, "{other}");
        }
        assert_eq!(domain().len(), 16);
        assert!(process_tag().ends_with(domain()));
    }

    #[test]
    fn tags_that_are_not_of_a_dead_process_here_are_never_dead() {
        let here = domain();
        for tag in [
            "12a-".to_string() + here,
            "0-".to_string() + here,
            "+5-".to_string() + here,
            "5".to_string(),
            format!("{}-{here}", std::process::id()),
            "4000000-ffffffffffffffff".to_string(),
        ] {
            assert!(!tag_is_dead(&tag), "{tag}");
        }
    }
}
