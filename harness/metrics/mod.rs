//! Measurement: latency histograms, recorders (a few per thread) merged by addition (connection
//! statistics among them), and the one-second timeline. Nothing here knows how iterations are paced
//! or what a target is.

pub mod connections;
pub mod cpu;
pub mod histogram;
pub mod recorder;
pub mod split;
pub mod timeline;

pub use connections::{ConnectionStats, Opened};
pub use histogram::{Hist, LatencySummary};
pub use recorder::{ErrorCount, Recorder, Timing, Totals};
pub use split::Split;
pub use timeline::{Drift, Timeline, TimelineRow};
