//! Crash report: a panic anywhere in the server (a shard thread, the
//! rewrite thread) brings the whole process down at once.
//!
//! Without this, a panicking shard thread dies alone: the other shards keep
//! accepting, the dead shard's listener still takes its share of new
//! connections that nobody serves, and everything routed to it hangs. A
//! supervisor or the monitor sees a live node that does not work. So, as
//! Redis writes a crash report and dies, the hook logs the panic message,
//! the thread and a backtrace, then aborts the process (a non-zero exit by
//! SIGABRT). Nothing acknowledged is lost by that: a reply leaves only after
//! its record is written as the fsync policy promises, so an abort is the
//! same as a kill -9, which recovery handles.

use std::fmt::Write;

/// Install the hook (the server binary does this once, before any shard
/// starts; tests of the library keep the default hook).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => (*s).to_string(),
            None => info.payload().downcast_ref::<String>().cloned().unwrap_or_else(|| "(no message)".into()),
        };
        let thread = std::thread::current();
        let location = info.location().map(|l| l.to_string()).unwrap_or_else(|| "unknown location".into());
        let mut report = String::new();
        let _ = write!(
            report,
            "=== shardis {} CRASH REPORT ===\npanic in thread '{}' at {}: {}\nbacktrace:\n{}\n\
             === END OF CRASH REPORT: aborting the whole process (pid {}) ===",
            env!("CARGO_PKG_VERSION"),
            thread.name().unwrap_or("unnamed"),
            location,
            msg,
            std::backtrace::Backtrace::force_capture(),
            std::process::id()
        );
        crate::log(&report);
        std::process::abort();
    }));
}
