//! Integration tests: a real loket server on an ephemeral loopback port, driven through real tonic clients.

// A test fails loudly on the first surprise, reads the environment (LOKET_SCREENSHOTS, LOKET_* layers) and
// signals the server it started (libc::kill).
#![allow(clippy::unwrap_used, clippy::disallowed_methods, unsafe_code)]

mod access;
mod agents;
mod browser;
mod chat;
mod config;
mod console;
mod crash;
mod dashboard;
mod dialogue;
mod editor_page;
mod evaluation;
mod handoff;
mod harness;
mod hostile;
mod intent;
mod invalid;
mod knowledge;
mod kpi;
mod lifecycle;
mod logs;
mod metrics;
mod persistence;
mod postgres;
mod protocol;
mod replicas;
mod series;
mod structure;
mod web;
mod webhooks;
