//! The PE image checksum (`OptionalHeader.CheckSum`): 16-bit one's-complement-style sum of
//! the file as little-endian words with the checksum field taken as zero, plus the file
//! length (the algorithm of `imagehlp!CheckSumMappedFile`, also what pefile and sbsign use).

/// Compute the checksum of `bytes`, treating the 4 bytes at `checksum_offset` as zero.
pub fn pe_checksum(bytes: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for (i, w) in chunks.by_ref().enumerate() {
        let off = i * 2;
        if off >= checksum_offset && off < checksum_offset + 4 {
            continue;
        }
        sum += u64::from(u16::from_le_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(bytes.len() as u32)
}
