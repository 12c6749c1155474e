//! `ferrosim init`: create an SM-DP+ instance without serving it — the data
//! directory (0700), the database (SQLite files 0600) with its SM-DP+
//! address, and a test PKI unless certificates are configured. Running it on
//! an existing instance changes nothing but a newly configured SM-DP+
//! address.

use std::net::SocketAddr;

use clap::Args;

use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{self, Access};

/// Arguments of `ferrosim init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Address `serve` will listen on; its port makes the default SM-DP+
    /// address `localhost:<port>`.
    #[arg(long, env = "FERROSIM_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
}

/// Runs the command.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, args.listen)?;
    crate::admin_cmd::block_on(async move {
        let existed = instance::connect_store(&cfg, Access::Existing).await;
        let existed = match existed {
            Ok(store) => {
                store.close().await;
                true
            }
            Err(_) => false,
        };
        let store = instance::open_store(&cfg, Access::Create).await?;
        let address = match instance::settle_address(&store, &cfg, cfg.listen.port()).await {
            Ok(a) => a,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        let inst = instance::assemble(&cfg, store, &address, Access::Create)?;
        if cfg.eim.enabled {
            crate::eim_cmd::open_eim(&cfg, &inst, Access::Create)?;
        }
        inst.store.close().await;
        println!(
            "{} ferrosim instance at {}",
            if existed { "existing" } else { "created" },
            instance::location(&cfg)
        );
        println!("SM-DP+ address: {address}");
        if !cfg.pki.explicit_files() {
            println!("PKI:            {}", cfg.pki_dir().display());
        }
        Ok(())
    })
}
