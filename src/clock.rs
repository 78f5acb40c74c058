//! The one clock of the shell: the core takes times as arguments, and everything that
//! needs "now" (apply's journal, the controller, the access review) asks here.

/// Now, in unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
