//! Fallback servers in Docker, through testcontainers (feature
//! `testcontainers`), for when no server URL is set.

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::env::ServerKind;

/// A running container; the server stops when this is dropped.
pub struct Container(#[allow(dead_code)] ContainerAsync<GenericImage>);

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Container")
    }
}

/// Whether a Docker engine looks reachable: `DOCKER_HOST` is set or the
/// default socket exists. A machine with only the Docker client has neither.
pub(crate) fn docker_reachable() -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists()
}

/// Starts a throw-away server of `kind` and returns its URL.
pub(crate) async fn start(kind: ServerKind) -> Result<(String, Container), String> {
    let (image, tag, port, ready) = match kind {
        ServerKind::Postgres => (
            "postgres",
            "16-alpine",
            5432,
            WaitFor::message_on_stderr("database system is ready to accept connections"),
        ),
        ServerKind::Redis => (
            "redis",
            "7-alpine",
            6379,
            WaitFor::message_on_stdout("Ready to accept connections"),
        ),
    };
    let container = GenericImage::new(image, tag)
        .with_exposed_port(port.tcp())
        .with_wait_for(ready)
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .start()
        .await
        .map_err(|e| format!("starting {image}:{tag} with testcontainers failed: {e}"))?;
    let host_port = container
        .get_host_port_ipv4(port)
        .await
        .map_err(|e| format!("no host port for {image}: {e}"))?;
    let url = match kind {
        ServerKind::Postgres => format!("postgres://postgres@127.0.0.1:{host_port}/postgres"),
        ServerKind::Redis => format!("redis://127.0.0.1:{host_port}"),
    };
    Ok((url, Container(container)))
}
