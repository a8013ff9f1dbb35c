//! The bad-input contract, checked for every case of the matrix: exit code 1 or 2, no panic text,
//! the message names the bad value, and every file and folder that existed before the command
//! is byte-identical afterwards (nothing created, replaced or removed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One bad invocation: the arguments and the words its error message must contain.
#[derive(Debug, Clone)]
pub struct Case {
    pub args: Vec<String>,
    pub names: Vec<String>,
}

/// A case from string slices.
pub fn case(args: &[&str], names: &[&str]) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// A case whose arguments are `base` followed by `extra`.
pub fn with(base: &[&str], extra: &[&str], names: &[&str]) -> Case {
    let args: Vec<&str> = base.iter().chain(extra).copied().collect();
    case(&args, names)
}

/// The cases of one command (or one data format), with the files they need.
pub struct Group {
    pub name: &'static str,
    /// Writes the fixtures the cases read into the scratch folder.
    pub setup: fn(&Path),
    pub cases: Vec<Case>,
}

/// A fresh scratch folder for `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file (with its bytes) and folder under `dir`, sorted.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((p.clone(), None));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, Some(bytes)));
            }
        }
    }
    out.sort();
    out
}

/// Runs `xtask args` in `dir`; `Err` describes how the contract was broken.
pub fn check(dir: &Path, c: &Case) -> Result<(), String> {
    let before = snapshot(dir);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir)
        .args(&c.args)
        .output()
        .map_err(|e| format!("could not start xtask: {e}"))?;
    let err = String::from_utf8_lossy(&o.stderr);
    let mut problems = Vec::new();
    if !matches!(o.status.code(), Some(1 | 2)) {
        problems.push(format!("exit {:?}", o.status.code()));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        problems.push("panicked".into());
    }
    for n in &c.names {
        if !err.contains(n.as_str()) {
            problems.push(format!("message does not name {n:?}"));
        }
    }
    let after = snapshot(dir);
    if after != before {
        let mut changed: Vec<String> = Vec::new();
        for (p, b) in &after {
            match before.iter().find(|(q, _)| q == p) {
                None => changed.push(format!("new {}", p.display())),
                Some((_, old)) if old != b => changed.push(format!("rewritten {}", p.display())),
                _ => {}
            }
        }
        for (p, _) in &before {
            if !after.iter().any(|(q, _)| q == p) {
                changed.push(format!("removed {}", p.display()));
            }
        }
        problems.push(format!("files changed: {changed:?}"));
        // Put the folder back so that the next case starts from the same state.
        restore(dir, &before);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n      stderr: {}", problems.join("; "), err.trim()))
    }
}

/// Puts `dir` back to `snap`: removes what is new, rewrites what changed.
fn restore(dir: &Path, snap: &[(PathBuf, Option<Vec<u8>>)]) {
    for (p, _) in snapshot(dir).iter().rev() {
        if !snap.iter().any(|(q, _)| q == p) {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
    }
    for (p, b) in snap {
        match b {
            None => drop(std::fs::create_dir_all(p)),
            Some(bytes) => drop(std::fs::write(p, bytes)),
        }
    }
}

/// Sets up the group in a fresh folder, runs every case, and fails listing every broken case.
pub fn run_group(g: &Group) {
    let dir = scratch(g.name);
    (g.setup)(&dir);
    let failures: Vec<String> = g
        .cases
        .iter()
        .filter_map(|c| check(&dir, c).err().map(|e| format!("  {:?}\n      {e}", c.args)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} `{}` cases broke the bad-input contract:\n{}",
        failures.len(),
        g.cases.len(),
        g.name,
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
