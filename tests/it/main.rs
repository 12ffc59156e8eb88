//! The integration suite: one binary, a real server and a fresh database per test.
//! Runs on SQLite; set COURSEGRAPH_TEST_POSTGRES_URL to run the same tests on PostgreSQL.

mod api;
mod auth;
mod context_cache;
mod devmode;
mod doctor;
mod doctor_agrees;
mod fixtures;
mod foundation;
mod hardening;
mod helpers;
mod hostile;
mod identity;
mod isolation;
mod jwks_server;
mod keys;
mod lifecycle;
mod live;
mod matrix;
mod outage;
mod partial;
mod provisioning;
mod readme;
mod rls;
mod roles;
mod scaleout;
mod schema_rules;
mod snapshots;
mod write_cost;
mod ws;
