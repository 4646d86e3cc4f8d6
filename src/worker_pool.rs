//! The one bounded worker pool: up to N scoped threads take numbered jobs in order, and the
//! calling thread receives each result as it completes and decides whether later jobs still
//! start. Layer parsing (digest), blob copies (seal) and tags (sync) all run on it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

/// What the caller wants after a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep starting jobs.
    Continue,
    /// Start no job numbered above this one (jobs already running finish).
    StopAfter(usize),
    /// Start no further job.
    Stop,
}

/// Runs `work(state, i)` for `i` in `0..count`, jobs started in index order on up to
/// `workers` threads (at least one, at most one per job). Each thread first makes its own
/// `state` with `init` (e.g. a signer that cannot be shared); a thread whose `init` fails
/// runs nothing, and the first such error is returned once every thread has ended.
/// `on_done` runs on the calling thread, in completion order.
pub(crate) fn run<S, R, E>(
    count: usize,
    workers: usize,
    init: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&mut S, usize) -> R + Sync,
    mut on_done: impl FnMut(usize, R) -> Flow,
) -> Result<(), E>
where
    R: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    // One past the last index that may still start.
    let end = AtomicUsize::new(count);
    let init_error: Mutex<Option<E>> = Mutex::new(None);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, R)>();
        for _ in 0..workers.clamp(1, count.max(1)) {
            let tx = tx.clone();
            let (next, end, init_error, init, work) = (&next, &end, &init_error, &init, &work);
            scope.spawn(move || {
                let mut state = match init() {
                    Ok(s) => s,
                    Err(e) => {
                        let mut first = init_error.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert(e);
                        return;
                    }
                };
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= end.load(Ordering::SeqCst) {
                        break;
                    }
                    if tx.send((index, work(&mut state, index))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (index, result) in rx {
            let stop_at = match on_done(index, result) {
                Flow::Continue => continue,
                Flow::StopAfter(i) => i.saturating_add(1),
                Flow::Stop => 0,
            };
            end.fetch_min(stop_at, Ordering::SeqCst);
        }
    });
    match init_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// [`run`] for jobs that need no per-thread state.
pub(crate) fn run_each<R: Send>(
    count: usize,
    workers: usize,
    work: impl Fn(usize) -> R + Sync,
    on_done: impl FnMut(usize, R) -> Flow,
) {
    let started = run(
        count,
        workers,
        || Ok::<_, std::convert::Infallible>(()),
        |(), i| work(i),
        on_done,
    );
    if let Err(never) = started {
        match never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_job_runs_once_and_results_reach_the_caller() {
        let mut seen = BTreeSet::new();
        run(
            50,
            3,
            || Ok::<_, ()>(()),
            |_, i| i * 2,
            |i, r| {
                assert_eq!(r, i * 2);
                assert!(seen.insert(i));
                Flow::Continue
            },
        )
        .unwrap();
        assert_eq!(seen, (0..50).collect());
    }

    #[test]
    fn a_failed_init_is_returned_and_others_still_work() {
        let calls = AtomicUsize::new(0);
        let inits = AtomicUsize::new(0);
        let mut done = 0;
        let r = run(
            10,
            2,
            || match inits.fetch_add(1, Ordering::SeqCst) {
                0 => Err("no key"),
                _ => Ok(()),
            },
            |_, _| {
                calls.fetch_add(1, Ordering::SeqCst);
            },
            |_, ()| {
                done += 1;
                Flow::Continue
            },
        );
        assert_eq!(r, Err("no key"));
        assert_eq!(done, 10, "the other worker ran every job");
    }
}
