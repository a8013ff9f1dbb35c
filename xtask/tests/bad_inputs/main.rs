//! The bad-input matrix (issue 16): every command and every data format, run as a careless user
//! would. Each case must exit with code 1 or 2, print no panic, name the bad value in its
//! message, and leave every file and folder that existed before byte-identical (see
//! [`harness::check`]). One test per group, so groups run in parallel.

mod datasets;
mod fixtures;
mod harness;
mod mask_task;
mod runs;
mod tools;

use harness::{run_group, Group};

fn groups() -> Vec<Group> {
    vec![
        mask_task::mask(),
        mask_task::task(),
        tools::bio2art(),
        tools::filters_perturb(),
        tools::misc(),
        datasets::mnist_data(),
        datasets::cifar_data(),
        runs::reproduce(),
        runs::rnn_run(),
        runs::merge_plot(),
    ]
}

/// The issue asks for at least 200 bad inputs; this keeps the matrix from shrinking unnoticed.
#[test]
fn the_matrix_has_at_least_200_cases() {
    let n: usize = groups().iter().map(|g| g.cases.len()).sum();
    assert!(n >= 200, "only {n} bad-input cases");
}

#[test]
fn mask() {
    run_group(&mask_task::mask());
}

#[test]
fn task() {
    run_group(&mask_task::task());
}

#[test]
fn bio2art() {
    run_group(&tools::bio2art());
}

#[test]
fn filters_perturb() {
    run_group(&tools::filters_perturb());
}

#[test]
fn misc() {
    run_group(&tools::misc());
}

#[test]
fn mnist_data() {
    run_group(&datasets::mnist_data());
}

#[test]
fn cifar_data() {
    run_group(&datasets::cifar_data());
}

#[test]
fn reproduce() {
    run_group(&runs::reproduce());
}

#[test]
fn rnn_run() {
    run_group(&runs::rnn_run());
}

#[test]
fn merge_plot() {
    run_group(&runs::merge_plot());
}
