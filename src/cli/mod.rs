//! The subcommands of the `rcslab` binary that are more than a call into the library.

pub mod subscriber;
pub mod ue;
