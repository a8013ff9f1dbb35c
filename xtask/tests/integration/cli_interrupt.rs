//! Interrupted runs: a checkpointed `reproduce` sweep (schizo-mnist `--quick` on a tiny fake
//! MNIST) and an `rnn-run` grid are killed with SIGINT and SIGKILL at seeded random moments of
//! their run, resumed after every kill, and must end with the very files of an uninterrupted run
//! (byte for byte, `env.txt` aside: it holds the date) and no temporary file left anywhere in the
//! folder. The commands install no signal handler: the next start cleans what a kill leaves
//! (`bionpy::stale`, docs/engine.md "Interrupted runs").
#![cfg(unix)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills per command (then one last resume runs to the end).
const KILLS: usize = 8;

/// One command under test: its arguments for a fresh start and for a resume.
struct Case {
    name: &'static str,
    fresh: Vec<String>,
    resume: Vec<String>,
}

impl Case {
    /// The arguments for the next start in `out`: a resume once the folder exists.
    fn args(&self, out: &Path) -> Vec<String> {
        let mut args = if out.exists() {
            self.resume.clone()
        } else {
            self.fresh.clone()
        };
        args.extend(["--out".to_string(), out.display().to_string()]);
        args
    }
}

/// Runs `case` in `out` to the end; returns how long it took.
fn run_to_end(case: &Case, out: &Path) -> Duration {
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(case.args(out))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} in {}: {}",
        case.name,
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    started.elapsed()
}

/// Every file under `dir` but `env.txt` (it holds the date), by relative path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = common::snapshot(dir);
    all.remove(Path::new("env.txt"));
    all
}

/// How many files `dir` holds, subfolders included, temporary files of atomic writes aside: the
/// progress of a run. Entries that vanish while it counts (a rename) are skipped.
fn progress(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => pending.push(e.path()),
                Ok(_) if !e.file_name().to_string_lossy().contains(".tmp-") => count += 1,
                _ => {}
            }
        }
    }
    count
}

/// What the kills of one case did.
#[derive(Default)]
struct Kills {
    /// `(signal, files written when it landed, seconds after the start)` of every kill that hit
    /// a running command.
    landed: Vec<(&'static str, usize, f64)>,
    /// Starts that finished before their kill was due.
    finished_first: usize,
}

/// Starts `case` in `out` up to [`KILLS`] times and kills each start (SIGINT and SIGKILL in turn)
/// at a seeded random point of the run: once the folder holds a number of files drawn from `rng`
/// (what it holds plus up to a third of what is left before 90 % of the finished run's `total`),
/// plus up to 50 ms, so that kills land in training and in writes alike, and spread over the
/// whole run whatever the machine's speed. Then resumes it to the end.
fn interrupted(case: &Case, out: &Path, total: usize, rng: &mut biorng::Stream) -> Kills {
    let mut kills = Kills::default();
    let last_target = total * 9 / 10;
    for attempt in 0..KILLS {
        let done = progress(out);
        if done >= last_target {
            break;
        }
        // Up to a third of what is left: the kills of one case spread over the whole run.
        let target = done + 1 + rng.below(((last_target - done) / 3).max(1) as u64) as usize;
        let extra = Duration::from_secs_f64(rng.uniform(0.0, 0.05));
        let (signal, name) = if attempt % 2 == 0 {
            (libc::SIGINT, "SIGINT")
        } else {
            (libc::SIGKILL, "SIGKILL")
        };
        let err_file = out.with_extension(format!("attempt{attempt}.err"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(case.args(out))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut due: Option<Instant> = None;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            match due {
                Some(at) if Instant::now() >= at => break None,
                None if progress(out) >= target => due = Some(Instant::now() + extra),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let stderr = || std::fs::read_to_string(&err_file).unwrap_or_default();
        match status {
            Some(status) => {
                assert!(status.success(), "{} attempt {attempt}: {}", case.name, stderr());
                kills.finished_first += 1;
            }
            None => {
                let pid = libc::pid_t::try_from(child.id()).unwrap();
                // SAFETY: signals our own child, which has not been reaped yet (its pid is
                // still its own).
                assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
                let status = child.wait().unwrap();
                // It may have finished in the moment before the signal; it must not have failed.
                assert!(
                    status.success() || !stderr().contains("error"),
                    "{} attempt {attempt}: {}",
                    case.name,
                    stderr()
                );
                kills
                    .landed
                    .push((name, progress(out), started.elapsed().as_secs_f64()));
            }
        }
    }
    run_to_end(case, out);
    kills
}

/// Runs `case` uninterrupted and interrupted under `root` and compares the two folders.
fn check(case: &Case, root: &Path, seed: u64) {
    let reference_out = root.join(format!("{}-reference", case.name));
    let reference = run_to_end(case, &reference_out);
    let want = files(&reference_out);
    let out = root.join(format!("{}-interrupted", case.name));
    let kills = interrupted(case, &out, progress(&reference_out), &mut biorng::Stream::seeded(seed));
    eprintln!(
        "{}: reference run {:.2} s, {} files; kills that landed (signal, files by then, s) {:?}; \
         starts that finished first {}",
        case.name,
        reference.as_secs_f64(),
        want.len(),
        kills.landed,
        kills.finished_first
    );
    assert!(
        !kills.landed.is_empty(),
        "{}: no kill landed in a running command",
        case.name
    );
    let got = files(&out);
    let temps: Vec<&PathBuf> = got.keys().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
    assert!(temps.is_empty(), "{}: temporary files left: {temps:?}", case.name);
    let only = |a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>| -> Vec<PathBuf> {
        a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
    };
    assert!(
        only(&want, &got).is_empty() && only(&got, &want).is_empty(),
        "{}: files only in the uninterrupted run {:?}, only in the interrupted one {:?}",
        case.name,
        only(&want, &got),
        only(&got, &want)
    );
    let differ: Vec<&PathBuf> = want.keys().filter(|k| want[*k] != got[*k]).collect();
    assert!(differ.is_empty(), "{}: files that differ: {differ:?}", case.name);
}

// Ignored until `biotasks::checkpoint::save` writes its pair crash-safely: today it writes the
// .npz, then the .json, and a kill between the two leaves a torn pair that every later resume
// refuses ("…/checkpoint.npz: holds epoch 2, checkpoint.json says 1"); this test hit that in 4 of
// 5 runs. The fix (the .json first; `load` resumes from the .npz when the .json is one save ahead
// and treats a missing .npz as no checkpoint) belongs to the owner of checkpoint.rs.
#[test]
fn killed_and_resumed_runs_end_with_the_uninterrupted_files_and_no_temporary_file() {
    let root = std::env::temp_dir().join(format!("xtask-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let s = |p: &Path| p.display().to_string();

    let data = root.join("data");
    common::write_fake_mnist(&data);
    let sweep: Vec<String> = [
        "reproduce",
        "schizo-mnist",
        "--quick",
        "--no-progress",
        "--seed",
        "1",
        "--data",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([s(&data)])
    .collect();
    let with_resume = |args: &[String]| [args, &["--resume".to_string()]].concat();
    check(
        &Case {
            name: "reproduce-schizo-mnist",
            fresh: sweep.clone(),
            resume: with_resume(&sweep),
        },
        &root,
        16,
    );

    // The shipped tiny grid (2 combinations × 2 iterations) with 60 epochs instead of 3, so that
    // kills land in training and in the checkpoint writes (every 2 epochs); rnn-run resumes by
    // itself when rerun.
    let tiny = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/tiny.toml")).unwrap();
    assert!(tiny.contains("\nepochs = 3\n"));
    let config = root.join("tiny60.toml");
    std::fs::write(&config, tiny.replace("\nepochs = 3\n", "\nepochs = 60\n")).unwrap();
    let grid: Vec<String> = ["rnn-run", "--no-progress", "--config"]
        .iter()
        .map(|a| a.to_string())
        .chain([s(&config)])
        .collect();
    check(
        &Case {
            name: "rnn-run",
            fresh: grid.clone(),
            resume: grid,
        },
        &root,
        17,
    );
    let _ = std::fs::remove_dir_all(&root);
}
