//! Integration tests: a real loket server on an ephemeral loopback port, driven through real tonic clients.

mod access;
mod agents;
mod browser;
mod chat;
mod config;
mod console;
mod crash;
mod dialogue;
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
mod web;
mod webhooks;
