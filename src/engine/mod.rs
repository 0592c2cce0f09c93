//! The engine: graph → refresh → plan → apply. It never parses CLI flags; ops hand it options.

pub mod apply;
pub mod gates;
pub mod graph;
pub mod lock;
pub mod plan;
pub mod refresh;
pub mod registry;
pub mod scope;
pub mod state;

pub use apply::{apply, ApplyReport, Outcome};
pub use plan::{make_plan, make_plan_remembering, InSync, Plan, Planned};
pub use registry::Registry;
