//! Allocator settings of the flense process.

/// The size from which [`return_large_frees`] maps allocations on their own.
pub const LARGE_ALLOCATION: usize = 256 << 10;

/// Makes glibc's malloc give large freed buffers back to the system: every allocation
/// of at least [`LARGE_ALLOCATION`] bytes is mapped on its own and unmapped when freed.
///
/// By default glibc raises that threshold to the size of the largest mapped buffer
/// freed so far (up to 32 MB), after which buffers of a large build context's
/// listings (tens of megabytes of vectors, sorted and dropped in turn) are carved out
/// of the heap and stay resident, fragmented, for the rest of the build: a one-file
/// rebuild of a 50,000-file context peaked at 72 MB resident instead of 55 MB.
/// Returns whether the setting took (false on other C libraries, where it is a no-op).
pub fn return_large_frees() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a parameter of the allocator (thread-safe, it
        // takes the arena lock); the value is a positive size below i32::MAX.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_ALLOCATION as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_threshold_is_accepted() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(super::return_large_frees());
        // Large buffers still work.
        let v = vec![1u8; 4 * super::LARGE_ALLOCATION];
        assert_eq!(v.iter().map(|&b| usize::from(b)).sum::<usize>(), v.len());
    }
}
