//! `ferrosim serve`: run the SM-DP+ over HTTPS until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ferrosim_server::{TlsIdentity, check_tls_certificate};
use std::time::SystemTime;
use tracing::{info, warn};

use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{self, Access};

/// Arguments of `ferrosim serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FERROSIM_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Serve even with an expired DPtls certificate or one that does not
    /// name the SM-DP+ address (same as `pki.allow_tls_mismatch = true`).
    #[arg(long, env = "FERROSIM_ALLOW_TLS_MISMATCH")]
    allow_tls_mismatch: bool,
    /// Activation telemetry (`/metrics`, `/dashboard`, events in the
    /// database): `on` or `off` (same as `telemetry.enabled`).
    #[arg(long, env = "FERROSIM_TELEMETRY", value_parser = ["on", "off"])]
    telemetry: Option<String>,
    /// Print the resolved configuration and exit.
    #[arg(long)]
    print_config: bool,
}

/// Runs the command.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = InstanceConfig::resolve(&args.instance, args.listen)?;
    cfg.pki.allow_tls_mismatch |= args.allow_tls_mismatch;
    if let Some(t) = &args.telemetry {
        cfg.telemetry.enabled = t == "on";
    }
    let rt = tokio::runtime::Runtime::new()?;
    if args.print_config {
        return rt.block_on(print_config(&cfg));
    }
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind(cfg.listen)
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let local = listener.local_addr()?;
        let store = instance::open_store(&cfg, Access::Create).await?;
        let address = instance::settle_address(&store, &cfg, local.port()).await?;
        if let Some(id) = store.kek_id() {
            info!(kek = %id, "profile secrets sealed at rest under data keys wrapped by the key-encryption key");
        } else {
            warn!("no key-encryption key ([secrets] kek_file): profile secrets are stored in clear");
        }
        let migration = crate::secrets_reseal::spawn_migration(&store).await?;
        let mut inst = instance::assemble(&cfg, store, &address, Access::Create)?;
        let mut telemetry_db = None;
        if let Some((telemetry, own)) = cfg
            .telemetry
            .build(
                &inst.store,
                &cfg.database_url(),
                &instance::telemetry_store_options(&cfg)?,
            )
            .await?
        {
            inst.server_options.telemetry = Some(telemetry);
            telemetry_db = own;
        }
        inst.server_options.audit = cfg.audit.start(&inst.store)?;
        inst.server_options.access = cfg.access.build()?;
        match inst.server_options.secrets_retention {
            Some(_) => info!(
                after_install = %cfg.secrets.purge_after_install,
                housekeeping_every_secs = cfg.orders.housekeeping_interval_secs,
                "K, OPc, PIN/PUK and ADM keys of installed profiles are purged"
            ),
            None => warn!(
                "[secrets] purge_after_install = \"off\": installed profiles keep their K, OPc, PIN/PUK and ADM keys in the database"
            ),
        }
        check_tls(
            &inst.server_options.tls,
            &address,
            cfg.pki.allow_tls_mismatch,
        )?;
        if let Some(refresh) = inst.crl_refresh.take() {
            refresh.spawn();
        }
        let mut eim = crate::eim_cmd::serve_routes(&cfg, &inst)?;
        let fleet = crate::fleet_serve::start(&cfg, &inst, eim.eim.take()).await?;
        let mut routes = eim.routes;
        if let Some(f) = &fleet {
            routes = routes.merge(f.routes.clone());
            if !cfg.eim.enabled {
                routes = routes.merge(ferrosim_server::api::openapi_route());
            }
        }
        let server =
            ferrosim_server::start_with(listener, inst.smdp, inst.server_options, routes).await?;
        let signal = shutdown_signal();
        // A line for scripts and tests to learn the bound port.
        println!("ferrosim SM-DP+ listening on https://{local} as {address}");
        if let Some(lab) = &eim.lab {
            println!(
                "ferrosim eIM ESipa on PLAIN HTTP (lab) at http://{}",
                lab.local_addr()
            );
        }
        if cfg.telemetry.enabled {
            info!("live dashboard at https://{local}/dashboard, Prometheus metrics at https://{local}/metrics");
        }
        signal.await;
        info!("shutting down");
        if let Some(m) = migration {
            // Each chunk is its own transaction: the next start resumes.
            m.abort();
        }
        server.shutdown(Duration::from_secs(10)).await;
        if let Some(f) = fleet {
            f.shutdown().await;
        }
        if let Some(lab) = eim.lab {
            lab.shutdown().await;
        }
        inst.store.close().await;
        if let Some(db) = telemetry_db {
            db.close().await;
        }
        Ok(())
    })
}

/// Refuses to serve with a DPtls certificate that devices would refuse
/// (expired, not yet valid, another host), unless allowed; then warns.
fn check_tls(tls: &TlsIdentity, address: &str, allow: bool) -> anyhow::Result<()> {
    let problems = check_tls_certificate(tls, address, SystemTime::now());
    if problems.is_empty() {
        return Ok(());
    }
    if !allow {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!(
            "refusing to serve: {} (fix the certificate or the SM-DP+ address; \
             to serve anyway set pki.allow_tls_mismatch = true or pass --allow-tls-mismatch)",
            list.join("; ")
        );
    }
    for problem in &problems {
        warn!(
            "DPTLS CERTIFICATE PROBLEM: {problem}; serving anyway because allow_tls_mismatch is set: \
             devices and operators checking the certificate will fail to connect"
        );
    }
    Ok(())
}

/// `--print-config`: the resolved configuration, with the SM-DP+ address the
/// instance has stored (or the one its first start will store). Creates
/// nothing.
async fn print_config(cfg: &InstanceConfig) -> anyhow::Result<()> {
    let mut shown = cfg.clone();
    let note = match instance::connect_store(cfg, Access::Existing).await {
        Ok(store) => {
            let stored = instance::stored_address(&store).await;
            store.close().await;
            let stored = stored?;
            match (&cfg.smdp_address, stored) {
                (Some(configured), Some(old)) if *configured != old => format!(
                    "# smdp_address: configured; the instance stores {old} until serve or init runs with it"
                ),
                (Some(_), _) => "# smdp_address: configured and stored in the instance".to_owned(),
                (None, Some(old)) => {
                    shown.smdp_address = Some(old);
                    "# smdp_address: stored in the instance".to_owned()
                }
                (None, None) => String::new(),
            }
        }
        Err(_) => {
            if shown.smdp_address.is_none() {
                shown.smdp_address = Some(format!("localhost:{}", cfg.listen.port()));
            }
            format!(
                "# no instance yet at {}: its first start stores this smdp_address",
                instance::location(cfg)
            )
        }
    };
    if !note.is_empty() {
        println!("{note}");
    }
    print!("{}", shown.to_toml()?);
    Ok(())
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
