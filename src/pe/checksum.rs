//! The PE image checksum (`OptionalHeader.CheckSum`): the file summed as little-endian
//! 16-bit words with end-around carry, the checksum field taken as zero, plus the file
//! length (the algorithm of `imagehlp!CheckSumMappedFile`, also what pefile and sbsign use).

/// Compute the checksum of `bytes`, treating the 4 bytes at `checksum_offset` as zero.
pub fn pe_checksum(bytes: &[u8], checksum_offset: usize) -> u32 {
    // Summing into a u64 and folding once at the end gives the same one's-complement
    // result as folding after every word (no overflow below 2^48 words).
    let mut sum: u64 = 0;
    let mut words = bytes.chunks_exact(2);
    for w in words.by_ref() {
        sum += u64::from(u16::from_le_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last);
    }
    // Remove the checksum field's two words.
    for off in [checksum_offset, checksum_offset + 2] {
        if let Some(w) = bytes.get(off..off + 2) {
            sum -= u64::from(u16::from_le_bytes([w[0], w[1]]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (sum as u32).wrapping_add(bytes.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: fold after every word, as the classic C implementations do.
    fn folding(bytes: &[u8], cks: usize) -> u32 {
        let mut sum: u32 = 0;
        for (i, w) in bytes.chunks(2).enumerate() {
            if i * 2 == cks || i * 2 == cks + 2 {
                continue;
            }
            let v = u32::from(w[0]) | w.get(1).map_or(0, |b| u32::from(*b) << 8);
            sum += v;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum.wrapping_add(bytes.len() as u32)
    }

    #[test]
    fn matches_per_word_folding() {
        let data: Vec<u8> = (0..100_001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(pe_checksum(&data, 0xd8), folding(&data, 0xd8));
        assert_eq!(
            pe_checksum(&data[..1001], 0x40),
            folding(&data[..1001], 0x40)
        );
    }
}
