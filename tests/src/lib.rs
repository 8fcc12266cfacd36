//! The end-to-end tests live in `tests/tests/`; the stack client and the
//! fault proxy they drive are the operator tools' (`tools/`), re-exported
//! here so the tests read `tests::Stack`, `tests::proxy::FaultProxy`.

pub use tools::*;

/// First line of every end-to-end test: passes the test at once when no
/// emulator is running and `REQUIRE_EMULATOR` is not `1`
/// ([`tools::skip_without_emulator`]).
#[macro_export]
macro_rules! needs_emulator {
    () => {
        let markers = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        if $crate::skip_without_emulator(markers).await {
            return Ok(());
        }
    };
}
