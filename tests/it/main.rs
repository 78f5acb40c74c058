//! The integration tests of `slack-gitops`, one binary: each module was once a binary of
//! its own, and each linked every dependency (2.6 GB for a fresh build of 23). Modules
//! share `common`: the emulator in process, an Acme org in a temp git repository, a
//! controller process, PostgreSQL clusters and git servers.

mod common;

mod access_review;
mod apply;
mod apply_safety;
mod business_plus;
mod ci_flow;
mod cli;
mod controller;
mod controller_ha;
mod controller_plans;
mod deploy;
mod desired;
mod docs;
mod doctor;
mod emulator_control;
mod emulator_scim;
mod emulator_web;
mod identity;
mod identity_incremental;
mod idp_fakes;
mod import;
mod layout;
mod leaver_rule;
mod leaver_wave;
mod loader_properties;
mod mirror;
mod mirror_properties;
mod plan_acme;
mod plan_cases;
mod plan_cli;
mod reader;
mod readme;
mod recheck;
mod rego_policies;
mod schema_files;
mod slack_events;
mod socket_mode;
mod store;
mod validate_cases;
