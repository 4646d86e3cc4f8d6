//! Transfer progress: a bar per running layer on a terminal (indicatif), one plain line per
//! finished layer otherwise (CI logs), nothing when quiet.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::sync::Arc;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Quiet,
}

impl Mode {
    /// Bars on a terminal stderr, lines otherwise; `quiet` wins.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// A progress reporter shared by the transfers of one command.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: Arc<MultiProgress>,
}

impl Progress {
    pub fn new(mode: Mode) -> Self {
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        Progress {
            mode,
            multi: Arc::new(multi),
        }
    }

    /// Wraps a transfer's reader so its bytes are shown under `label`.
    pub fn reader(
        &self,
        label: String,
        size: u64,
        inner: Box<dyn Read + Send>,
    ) -> Box<dyn Read + Send> {
        match self.mode {
            Mode::Quiet => inner,
            Mode::Lines => Box::new(Tracked {
                inner,
                bar: None,
                label,
                done: 0,
                printed: false,
            }),
            Mode::Bars => {
                let bar = self.multi.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:24} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
                    )
                    .expect("valid template"),
                );
                bar.set_message(label.clone());
                Box::new(Tracked {
                    inner,
                    bar: Some(bar),
                    label,
                    done: 0,
                    printed: false,
                })
            }
        }
    }
}

struct Tracked {
    inner: Box<dyn Read + Send>,
    bar: Option<ProgressBar>,
    label: String,
    done: u64,
    printed: bool,
}

impl Read for Tracked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        match (&self.bar, n) {
            (Some(bar), 0) => bar.finish_and_clear(),
            (Some(bar), _) => bar.set_position(self.done),
            (None, 0) if !self.printed => {
                eprintln!("{}: {} bytes done", self.label, self.done);
                self.printed = true;
            }
            _ => {}
        }
        Ok(n)
    }
}
