//! The `tess` binary's allocator: mimalloc, behind a bump region that the short one-shot
//! commands (`plan`, `validate`, `graph`) allocate from and never give back.
//!
//! Why: `tess plan` on the 1,000-job workload allocates 10 MB in 57,000 blocks and then
//! exits. Every allocator measured (glibc, mimalloc with or without huge pages) spent a
//! third of that run in the kernel, faulting in and zeroing pages it had touched once
//! or purged and touched again (36 MiB resident for a 6.5 MB peak, perf + dhat,
//! benches/plan.sh). A bump pointer over one region touches only what is handed out (in
//! huge pages once the command is known to be one-shot: a few 2 MiB faults instead of
//! thousands of 4 KiB ones), and a free that does nothing costs nothing. Every other
//! command leaves the
//! region once its arguments are parsed ([`use_the_heap`]); what was bumped before that
//! (the runtime's and the parser's few blocks) stays where it is, freeing it is a no-op.
//! A process without this allocator (the tests) is unaffected by either call.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Address space reserved for the bump region (not memory: pages are faulted in only
/// as they are handed out). Past it, allocations go to the heap.
const REGION_SIZE: usize = 1 << 30;

/// The global allocator (`#[global_allocator]` in the binary); its state is this module's.
pub struct Allocator;

static HEAP: mimalloc::MiMalloc = mimalloc::MiMalloc;
static BASE: AtomicPtr<u8> = AtomicPtr::new(null_mut());
/// Offset of the first free byte in the region.
static TOP: AtomicUsize = AtomicUsize::new(0);
static BUMPING: AtomicBool = AtomicBool::new(true);
static ONE_SHOT: AtomicBool = AtomicBool::new(false);

/// From now on every allocation comes from the heap (the region's blocks stay valid).
pub fn use_the_heap() {
    BUMPING.store(false, Ordering::Release);
}

/// This process reads its pipelines, prints and exits: big trees need not be freed, and
/// the region's untouched part is backed by huge pages (a long-running process, which
/// touches only the region's first pages, is not made to keep a 2 MiB page resident).
pub fn one_shot() {
    ONE_SHOT.store(true, Ordering::Relaxed);
    let base = BASE.load(Ordering::Acquire);
    if !base.is_null() {
        // SAFETY: advice on the region this module mapped; failure only means small pages.
        unsafe { libc::madvise(base.cast(), REGION_SIZE, libc::MADV_HUGEPAGE) };
        // Blocks from here on start at a huge-page boundary: the partly touched page
        // before it would fault in small pages.
        let _ = TOP.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |top| {
            let next = (base as usize + top).next_multiple_of(HUGE_PAGE) - base as usize;
            (next <= REGION_SIZE).then_some(next)
        });
    }
}

/// The size of a transparent huge page on x86-64 and arm64 (with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

pub fn is_one_shot() -> bool {
    ONE_SHOT.load(Ordering::Relaxed)
}

impl Allocator {
    fn in_region(&self, ptr: *mut u8) -> bool {
        let base = BASE.load(Ordering::Acquire);
        !base.is_null() && (ptr as usize).wrapping_sub(base as usize) < REGION_SIZE
    }

    /// The region, mapped on first use; null when it cannot be (then the heap serves).
    fn region(&self) -> *mut u8 {
        let base = BASE.load(Ordering::Acquire);
        if !base.is_null() {
            return base;
        }
        // SAFETY: an anonymous private mapping with no fixed address; nothing aliases it.
        let mapped = unsafe {
            libc::mmap(
                null_mut(),
                REGION_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            use_the_heap();
            return null_mut();
        }
        let mapped = mapped.cast::<u8>();
        match BASE.compare_exchange(null_mut(), mapped, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => mapped,
            Err(theirs) => {
                // Another thread mapped it first.
                // SAFETY: our mapping was never published.
                unsafe { libc::munmap(mapped.cast(), REGION_SIZE) };
                theirs
            }
        }
    }

    /// A block from the region, or null when bumping is over or the region is full.
    fn bump(&self, layout: Layout) -> *mut u8 {
        if !BUMPING.load(Ordering::Acquire) {
            return null_mut();
        }
        let base = self.region();
        if base.is_null() {
            return null_mut();
        }
        let mut top = TOP.load(Ordering::Relaxed);
        loop {
            let start = (base as usize + top).next_multiple_of(layout.align()) - base as usize;
            let end = start + layout.size();
            if end > REGION_SIZE {
                return null_mut();
            }
            match TOP.compare_exchange_weak(top, end, Ordering::Relaxed, Ordering::Relaxed) {
                // SAFETY: start < REGION_SIZE, inside the mapping.
                Ok(_) => return unsafe { base.add(start) },
                Err(now) => top = now,
            }
        }
    }
}

// SAFETY: region blocks are disjoint (the top only moves forward, by CAS) and never
// reused; everything else is mimalloc's.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = self.bump(layout);
        if block.is_null() {
            // SAFETY: the caller's layout, passed on.
            unsafe { HEAP.alloc(layout) }
        } else {
            block
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = self.bump(layout);
        if block.is_null() {
            // SAFETY: as alloc.
            unsafe { HEAP.alloc_zeroed(layout) }
        } else {
            // Region bytes are handed out once, and fresh anonymous pages are zero.
            block
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.in_region(ptr) {
            // SAFETY: a heap block, as the caller promises.
            unsafe { HEAP.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.in_region(ptr) {
            // SAFETY: a heap block, as the caller promises.
            return unsafe { HEAP.realloc(ptr, layout, new_size) };
        }
        let base = BASE.load(Ordering::Acquire);
        let start = ptr as usize - base as usize;
        if new_size <= layout.size() {
            return ptr;
        }
        // The last block grows in place: a growing Vec or String stays put. (The top never
        // moves back: bytes past it must stay zero for alloc_zeroed.)
        if BUMPING.load(Ordering::Acquire) && start + new_size <= REGION_SIZE {
            let old_end = start + layout.size();
            if TOP
                .compare_exchange(
                    old_end,
                    start + new_size,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return ptr;
            }
        }
        // SAFETY: same alignment, a non-zero size (it is larger than the old one).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as alloc.
        let block = unsafe { self.alloc(new_layout) };
        if !block.is_null() {
            // SAFETY: both blocks are at least layout.size() long and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, block, layout.size()) };
        }
        block
    }
}
