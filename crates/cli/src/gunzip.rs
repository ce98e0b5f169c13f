//! Whole-buffer gzip decompression with libdeflate, the fastest inflate available here:
//! the backtest is bound by decompression, so this is its hot loop.
//!
//! Handles concatenated members (valid gzip, written by some shippers) by walking the
//! input member by member; each member's size comes from its trailer when possible.

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex,
    libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE as INSUFFICIENT_SPACE,
    libdeflate_result_LIBDEFLATE_SUCCESS as SUCCESS,
};
use std::cell::RefCell;

/// One decompressor per thread, freed when the thread ends.
struct Decompressor(*mut libdeflate_decompressor);

impl Drop for Decompressor {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by libdeflate_alloc_decompressor, freed exactly once.
            unsafe { libdeflate_free_decompressor(self.0) }
        }
    }
}

thread_local! {
    // SAFETY: allocation has no preconditions; null is checked before use.
    static DECOMPRESSOR: RefCell<Decompressor> = RefCell::new(Decompressor(unsafe { libdeflate_alloc_decompressor() }));
}

/// Largest output accepted for one file; a gzip bomb stops here instead of eating memory.
const MAX_OUTPUT: usize = 4 << 30;

/// Decompresses every gzip member of `input`.
pub fn gunzip(input: &[u8]) -> Result<Vec<u8>, String> {
    DECOMPRESSOR.with(|d| {
        let d = d.borrow();
        if d.0.is_null() {
            return Err("gzip: out of memory".into());
        }
        // The trailer's ISIZE is the last member's size mod 2^32: right for every real file.
        let hint = input.len().checked_sub(4).map_or(0, |i| {
            u32::from_le_bytes([input[i], input[i + 1], input[i + 2], input[i + 3]]) as usize
        });
        let mut out: Vec<u8> = Vec::with_capacity(hint.max(input.len() * 4).min(MAX_OUTPUT) + 1);
        let mut pos = 0;
        while pos < input.len() {
            let (mut used_in, mut used_out) = (0usize, 0usize);
            let spare = out.capacity() - out.len();
            // SAFETY: the input slice and the spare capacity are valid for the lengths
            // given; libdeflate writes at most `spare` bytes and reports how many.
            let rc = unsafe {
                libdeflate_gzip_decompress_ex(
                    d.0,
                    input[pos..].as_ptr().cast(),
                    input.len() - pos,
                    out.as_mut_ptr().add(out.len()).cast(),
                    spare,
                    &mut used_in,
                    &mut used_out,
                )
            };
            match rc {
                SUCCESS => {
                    // SAFETY: libdeflate initialised `used_out` bytes past the old length.
                    unsafe { out.set_len(out.len() + used_out) };
                    pos += used_in;
                    if pos < input.len() && out.capacity() == out.len() {
                        out.reserve(input.len() * 4);
                    }
                }
                INSUFFICIENT_SPACE if out.capacity() < MAX_OUTPUT => {
                    out.reserve(out.capacity().max(1 << 20))
                }
                INSUFFICIENT_SPACE => {
                    return Err(format!("gzip: more than {MAX_OUTPUT} bytes uncompressed"))
                }
                _ => return Err(format!("gzip: corrupt data at byte {pos}")),
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::gunzip;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn single_and_concatenated_members_and_corruption() {
        let a = b"{\"Records\":[]}".repeat(1000);
        assert_eq!(gunzip(&gz(&a)).unwrap(), a);
        let mut two = gz(b"first ");
        two.extend(gz(&a));
        assert_eq!(gunzip(&two).unwrap(), [b"first ".as_slice(), &a].concat());
        let good = gz(&a);
        assert!(gunzip(&good[..good.len() / 2]).is_err());
        assert_eq!(gunzip(&gz(b"")).unwrap(), b"");
    }
}
