//! The process's allocator: jemalloc (feature `jemalloc`, on by default), and its own figures
//! for `/metrics`.
//!
//! jemalloc rather than the system allocator: the bridge lives on many small long-lived
//! allocations (idle streams) that glibc's per-thread arenas fragment and keep; jemalloc's
//! background thread gives freed pages back (BENCHMARKS.md, Scale). Without the feature (for
//! heap profilers such as valgrind's massif, which see only malloc) there are no figures.

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes, as the allocator counts them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// In live allocations: what the program holds.
    pub allocated: u64,
    /// In pages that hold at least one live allocation: `allocated` plus fragmentation.
    pub active: u64,
    /// Physically resident in the allocator's mappings, its own metadata included: `active`
    /// plus freed pages not yet given back and metadata.
    pub resident: u64,
}

/// The allocator's current figures, or `None` on the system allocator.
pub(crate) fn figures() -> Option<Figures> {
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        // jemalloc caches its statistics until the epoch advances.
        epoch::advance().ok()?;
        let read = |value: tikv_jemalloc_ctl::Result<usize>| value.ok().map(|v| v as u64);
        Some(Figures {
            allocated: read(stats::allocated::read())?,
            active: read(stats::active::read())?,
            resident: read(stats::resident::read())?,
        })
    }
    #[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    #[test]
    fn figures_follow_a_live_allocation() {
        let before = figures().expect("jemalloc is the allocator").allocated;
        let held = vec![1u8; 64 << 20];
        let during = figures().expect("jemalloc is the allocator");
        // Other tests allocate and free meanwhile: margins, not exact sums.
        assert!(
            during.allocated >= before + (60 << 20),
            "{before} -> {during:?}"
        );
        assert!(during.resident >= during.active && during.active >= during.allocated);
        drop(held);
        assert!(figures().unwrap().allocated < during.allocated - (32 << 20));
    }
}
