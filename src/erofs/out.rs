//! Where the EROFS writer's bytes go: [`Counter`] only counts them (the layout pass),
//! [`Stream`] writes them to any [`Write`] through a buffer (the emission pass).

use std::io::{self, Write};

/// Where the bytes go: counted only, or streamed.
pub(super) trait Out {
    /// Only positions matter: content need not be computed (the layout pass).
    const COUNTS_ONLY: bool = false;
    fn pos(&self) -> u64;
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn zeros(&mut self, n: u64) -> io::Result<()>;
    fn align(&mut self, to: u64) -> io::Result<()> {
        match self.pos() % to {
            0 => Ok(()),
            r => self.zeros(to - r),
        }
    }
}

pub(super) struct Counter(pub u64);

impl Out for Counter {
    const COUNTS_ONLY: bool = true;
    fn pos(&self) -> u64 {
        self.0
    }
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.zeros(bytes.len() as u64)
    }
    fn zeros(&mut self, n: u64) -> io::Result<()> {
        self.0 = self
            .0
            .checked_add(n)
            .ok_or_else(|| super::too_big("the image"))?;
        Ok(())
    }
}

/// Streams into `sink` through a buffer of [`Stream::BUF`] bytes.
pub(super) struct Stream<W> {
    sink: W,
    buf: Vec<u8>,
    pos: u64,
}

impl<W: Write> Stream<W> {
    const BUF: usize = 256 << 10;

    pub fn new(sink: W) -> Self {
        Stream {
            sink,
            buf: Vec::with_capacity(Self::BUF),
            pos: 0,
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<u64> {
        self.spill()?;
        self.sink.flush()?;
        Ok(self.pos)
    }
}

impl<W: Write> Out for Stream<W> {
    fn pos(&self) -> u64 {
        self.pos
    }
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pos += bytes.len() as u64;
        if self.buf.len() + bytes.len() > Self::BUF {
            self.spill()?;
            if bytes.len() >= Self::BUF {
                return self.sink.write_all(bytes);
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        const Z: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(Z.len() as u64);
            self.put(&Z[..k as usize])?;
            n -= k;
        }
        Ok(())
    }
}
