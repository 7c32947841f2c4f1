//! `session-demo`: see `session-demo --help`.

use session_demo::args::{Args, USAGE};

#[tokio::main]
async fn main() {
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
    session_demo::logging::init(&args.store);
    if let Err(message) = session_demo::app::run(args).await {
        eprintln!("session-demo: {message}");
        std::process::exit(1);
    }
}
