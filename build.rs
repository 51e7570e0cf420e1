//! Compiles the wire contract in `proto/` with a pure-Rust protobuf compiler (protox), so a
//! fresh machine needs no `protoc`. The encoded descriptor set is kept beside the generated
//! code: agents serve it through gRPC server reflection.
//!
//! The A2A protocol's gRPC binding (`proto/vendor/a2a/`, vendored verbatim) is compiled too, client
//! side only: the bridge calls A2A agents, it never serves A2A.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/agent/v1/agent.proto"];
    println!("cargo:rerun-if-changed=proto");

    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("agent_descriptor.bin"), fds.encode_to_vec())?;

    // Every call encodes and decodes through `LeanCodec` (src/lib.rs): smaller starting buffers.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::LeanCodec")
        .compile_fds(fds)?;

    // The `google.api` imports only carry options: their own messages are not generated.
    let mut a2a = protox::compile(["a2a.proto"], ["proto/vendor/a2a"])?;
    a2a.file.retain(|file| file.package() != "google.api");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .codec_path("crate::LeanCodec")
        .compile_fds(a2a)?;
    Ok(())
}
