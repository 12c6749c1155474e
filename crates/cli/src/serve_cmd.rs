//! `ferrosim serve`: run the SM-DP+ over HTTPS until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tracing::info;

use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance;

/// Arguments of `ferrosim serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FERROSIM_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Print the resolved configuration and exit.
    #[arg(long)]
    print_config: bool,
}

/// Runs the command.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, args.listen)?;
    if args.print_config {
        print!("{}", cfg.to_toml()?);
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind(cfg.listen)?;
        let local = listener.local_addr()?;
        let address = cfg.smdp_address(local.port());
        let inst = instance::open(&cfg, &address).await?;
        let server = ferrosim_server::start(listener, inst.smdp, inst.server_options).await?;
        let signal = shutdown_signal();
        // A line for scripts and tests to learn the bound port.
        println!("ferrosim SM-DP+ listening on https://{local} as {address}");
        signal.await;
        info!("shutting down");
        server.shutdown(Duration::from_secs(10)).await;
        inst.store.close().await;
        Ok(())
    })
}

/// Registers for SIGTERM and Ctrl-C now (so a signal sent right after the
/// listening line is handled) and returns a future that ends on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
