//! Compiles the protos without a system `protoc`: protox parses them in pure Rust and hands the descriptor set to
//! tonic-prost-build, which also writes it out for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/loket/v1/chat.proto", "proto/loket/v1/agent.proto"];
    // tonic-prost-build prints no rerun-if-changed lines (grpc-rust#2511): without these every change to any
    // file in the package would re-run this script.
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");

    let file_descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // With a ready descriptor set tonic-prost-build runs no protoc, and so writes no descriptor file for
    // reflection either: write it here.
    std::fs::write(out_dir.join("loket_descriptor.bin"), prost::Message::encode_to_vec(&file_descriptors))?;
    tonic_prost_build::configure().compile_fds(file_descriptors)?;
    Ok(())
}
