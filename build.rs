//! Compiles the protos without a system `protoc`: protox parses them in pure Rust and hands the descriptor set to
//! tonic-prost-build. The service protos' descriptor set is also written out for server reflection; the
//! benchmark's echo proto is compiled on its own so reflection never lists a service loket does not serve.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build prints no rerun-if-changed lines (grpc-rust#2511): without these every change to any
    // file in the package would re-run this script.
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");
    // sqlx::migrate! embeds migrations/ at compile time but cannot tell cargo about a file added there: this
    // line makes a new migration rebuild the crate (sqlx's documented recipe).
    println!("cargo:rerun-if-changed=migrations");
    // Cargo tells a build script where to write through the environment.
    #[allow(clippy::disallowed_methods)]
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let service = protox::compile(
        [
            "proto/loket/v1/chat.proto",
            "proto/loket/v1/agent.proto",
            "proto/loket/v1/knowledge.proto",
            "proto/loket/v1/stats.proto",
            "proto/loket/v1/admin.proto",
        ],
        ["proto"],
    )?;
    // With a ready descriptor set tonic-prost-build runs no protoc, and so writes no descriptor file for
    // reflection either: write it here.
    write(&out_dir.join("loket_descriptor.bin"), &prost::Message::encode_to_vec(&service))?;
    // Our codec (src/server/codec.rs): prost's own answers a request that does not decode, such as invalid
    // UTF-8 in a string field, with INTERNAL, which blames the server for the caller's bytes.
    tonic_prost_build::configure().codec_path("crate::server::codec::LoketCodec").compile_fds(service)?;

    let bench = protox::compile(["proto/loket/bench/v1/echo.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(bench)?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
