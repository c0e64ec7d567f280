//! A TURN listener that has run out of file descriptors must not spin: the
//! node runs under a low descriptor limit (prlimit), TCP clients fill it up
//! so that every accept fails with EMFILE, and the node's CPU time over
//! the next two seconds stays near zero (a loop retrying at once burned a
//! whole core).

mod common;

use std::time::Duration;

use common::process::{EXE, NodeProcess, free_port};
use tokio::process::Command;

/// The process's user + system CPU time, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let hz: f64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf")
            .stdout,
    )
    .expect("utf8")
    .trim()
    .parse()
    .expect("CLK_TCK");
    ticks as f64 / hz
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_listener_out_of_descriptors_idles() {
    const LIMIT: usize = 48;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin, turn) = (free_port().await, free_port().await, free_port().await);
    let turn_addr = format!("127.0.0.1:{turn}");
    let mut command = Command::new("prlimit");
    command.arg(format!("--nofile={LIMIT}:{LIMIT}")).arg(EXE);
    let node = NodeProcess::start_with(
        command,
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{admin}"),
        |c| {
            c.args(["--turn-listen", &turn_addr, "--data-dir"])
                .arg(dir.path().join("data"));
        },
        "info",
    )
    .await;
    let pid = node.child.id().expect("pid");
    assert!(open_descriptors(pid) < LIMIT - 10, "room left at the start");

    // More clients than descriptors: the listener fills the table, then
    // every further accept fails (the kernel holds the rest in the backlog).
    let clients: Vec<std::net::TcpStream> = (0..LIMIT + 20)
        .map(|_| std::net::TcpStream::connect(&turn_addr).expect("connect"))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        open_descriptors(pid) >= LIMIT - 1,
        "the descriptor table is full (the situation under test): {}",
        open_descriptors(pid)
    );
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(pid) - before;
    eprintln!("CPU over 2 s with accept failing: {used:.2} s");
    assert!(
        used < 0.5,
        "the node spins on a failing accept: {used:.2} s of CPU in 2 s"
    );
    drop(clients);
}
