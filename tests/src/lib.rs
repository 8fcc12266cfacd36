//! The end-to-end tests live in `tests/tests/`; the stack client and the
//! fault proxy they drive are the operator tools' (`tools/`), re-exported
//! here so the tests read `tests::Stack`, `tests::proxy::FaultProxy`.

pub use tools::*;
