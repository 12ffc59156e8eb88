//! coursegraph: a multi-tenant GraphQL API server with field-level access control.

pub mod app;
pub mod auth;
pub mod authz;
pub mod bench_data;
pub mod cli;
pub mod config;
pub mod db;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod live;
pub mod metrics;
pub mod seed;
pub mod telemetry;
pub mod token;
