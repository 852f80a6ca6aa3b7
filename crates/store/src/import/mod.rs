//! Importing contacts from a file. Two rooms: `bulk` writes the rows
//! themselves through the identity rules, a batch per transaction; `runs`
//! keeps the record of each import run started from the UI, the API or the
//! command line (status, progress, summary, rejected rows) so a page can
//! follow it. Both are re-exported here: `bos_store::import::…`.

pub mod bulk;
pub mod runs;

pub use bulk::*;
pub use runs::*;
