//! Ctrl-C: the first SIGINT cancels the run gracefully, the second kills at once.

use crate::exec::{Cancel, CancelLevel};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static TARGET: OnceLock<Arc<Cancel>> = OnceLock::new();
static COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only atomics here: async-signal-safe.
    let level = if COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
        CancelLevel::Graceful
    } else {
        CancelLevel::Kill
    };
    if let Some(cancel) = TARGET.get() {
        cancel.request(level);
    }
}

/// Routes SIGINT (and SIGTERM) to `cancel` for the rest of the process.
pub(super) fn install(cancel: Arc<Cancel>) {
    let _ = TARGET.set(cancel);
    // SAFETY: installs a handler that only performs atomic operations.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

pub(super) fn interrupted() -> bool {
    COUNT.load(Ordering::SeqCst) > 0
}
