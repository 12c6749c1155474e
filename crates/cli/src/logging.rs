//! Logs on stderr: `FERROSIM_LOG` filters (tracing's `EnvFilter` syntax,
//! e.g. `info` or `warn,ferrosim_server=debug`), `FERROSIM_LOG_FORMAT`
//! chooses `text` (the default; ANSI colours only when stderr is a
//! terminal) or `json` (one JSON object per line, for log collectors).

use std::io::IsTerminal;

use anyhow::bail;

/// The log formats `FERROSIM_LOG_FORMAT` accepts.
pub const FORMATS: [&str; 2] = ["text", "json"];

/// Installs the subscriber. `default_filter` applies when `FERROSIM_LOG` is
/// not set.
pub fn init(default_filter: &str) -> anyhow::Result<()> {
    let filter = std::env::var("FERROSIM_LOG").unwrap_or_else(|_| default_filter.to_owned());
    // cryptoki logs an ERROR for each token mechanism it has no name for
    // whenever a PKCS#11 key is opened; nothing is wrong, so unless the
    // filter asks for cryptoki's messages they are muted.
    let filter = if filter.contains("cryptoki") {
        filter
    } else {
        format!("{filter},cryptoki::mechanism=off")
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => bail!(
            "FERROSIM_LOG `{filter}` is not a log filter ({e}); e.g. info, warn or warn,ferrosim_server=debug"
        ),
    };
    let format = std::env::var("FERROSIM_LOG_FORMAT").unwrap_or_else(|_| "text".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.to_ascii_lowercase().as_str() {
        "text" => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        "json" => builder.json().with_ansi(false).init(),
        other => bail!(
            "FERROSIM_LOG_FORMAT must be one of {}, not `{other}`",
            FORMATS.join(", ")
        ),
    }
    Ok(())
}
