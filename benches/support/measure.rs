//! Measuring a child process for the benches: wall time and its own peak RSS.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command to completion; returns wall time and peak RSS in KiB: the process's own
/// high-water mark (`VmHWM` in /proc/PID/status, sampled every 2 ms until it exits). wait4's
/// ru_maxrss is not used: it also counts the pages the child shared with this (large) bench
/// process between fork and exec.
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn timed(cmd: &mut Command) -> (Duration, u64, String) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak = peak.max(kb);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let mut out = child.stdout.unwrap();
    let mut err = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert_eq!(r, pid);
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let exit = std::process::ExitStatus::from_raw(status);
    assert!(exit.success(), "{cmd:?} failed: {stderr}");
    (wall, peak, stdout)
}
