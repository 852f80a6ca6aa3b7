//! Time as a dependency: the engine's clock (wall clock in production, a
//! test clock that tests move forward instead of sleeping), re-exported so
//! handlers and the scheduler read the same time.

pub use bos_engine::clock::{Clock, SystemClock, TestClock};
