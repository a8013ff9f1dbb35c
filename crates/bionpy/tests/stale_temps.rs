//! The stale-temporary-file rule (`bionpy::stale`): files of dead writers of this machine are
//! removed, those of live writers (this process, a running child) and of other machines never.
#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command};

use bionpy::stale::temp_file_name;

/// A pid that belonged to a process which has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A child that stays alive until killed.
fn live_child() -> Child {
    Command::new("sleep").arg("30").spawn().unwrap()
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"half-written").unwrap();
}

#[test]
fn a_write_removes_the_dead_temps_of_its_target_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = live_child();
    let dead = dead_pid();
    let of = |name: &str, pid: u32| dir.path().join(temp_file_name(name, pid));
    let files = [
        (of("a.npy", dead), false),
        (of("a.npy", live.id()), true),
        (of("b.npy", dead), true),
        (dir.path().join("a.npy.tmp-1"), true),
        // A dead pid of another machine (a shard writing a shared folder) cannot be judged here.
        (dir.path().join(format!(".a.npy.tmp-{dead}-0123456789abcdef")), true),
    ];
    for (f, _) in &files {
        touch(f);
    }
    // (A temporary file of this process's pid is the write's own: it is renamed, not kept; the
    // folder sweep below checks that this pid counts as alive.)
    bionpy::write_atomic(&dir.path().join("a.npy"), b"done").unwrap();
    live.kill().unwrap();
    live.wait().unwrap();
    for (f, kept) in &files {
        assert_eq!(f.exists(), *kept, "{}", f.display());
    }
    assert_eq!(std::fs::read(dir.path().join("a.npy")).unwrap(), b"done");
}

#[test]
fn a_folder_sweep_finds_dead_temps_in_subfolders_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = live_child();
    let dead = dead_pid();
    let stale = [
        dir.path().join(temp_file_name("config.toml", dead)),
        dir.path()
            .join("0/checkpoints")
            .join(temp_file_name("resume_iter_0.npz", dead)),
    ];
    let kept = [
        dir.path().join("0/runs").join(temp_file_name("iter_0.csv", live.id())),
        dir.path()
            .join("0")
            .join(temp_file_name("history.csv", std::process::id())),
        dir.path().join(format!("0/.history.csv.tmp-{dead}-0123456789abcdef")),
        dir.path().join("0/runs/iter_0.csv"),
    ];
    for f in stale.iter().chain(&kept) {
        touch(f);
    }
    let mut want = stale.to_vec();
    want.sort();
    assert_eq!(bionpy::find_stale_temps(dir.path()).unwrap(), want);
    assert_eq!(bionpy::remove_stale_temps(dir.path()).unwrap(), want);
    live.kill().unwrap();
    live.wait().unwrap();
    assert!(stale.iter().all(|f| !f.exists()));
    assert!(kept.iter().all(|f| f.exists()));
    assert!(bionpy::find_stale_temps(&dir.path().join("missing"))
        .unwrap()
        .is_empty());
}
