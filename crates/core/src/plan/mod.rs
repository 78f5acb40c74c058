//! Planning: desired state, the identity directory and live Slack in; the ordered
//! changes out. Pure: no I/O, no clock, deterministic.

pub mod action;
pub mod desired;
pub mod diff;
pub mod estimate;
pub mod leaver;
pub mod names;
pub mod restore;
pub mod select;
