//! `session-demo`: see `session-demo --help`.

use session_demo::args::{Args, USAGE};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return;
        }
        Err(message) => {
            eprintln!("session-demo: {message}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(message) = session_demo::app::run(args).await {
        eprintln!("session-demo: {message}");
        std::process::exit(1);
    }
}
