//! `ferrosim fleet …`: fleet control over the REST API of a running
//! `ferrosim serve` (`/api/v1/fleet`): the configuration, devices, reports,
//! outages, rollouts and the decision log. Answers are printed as JSON; a
//! refusal prints the server's message and exits with an error.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_ids::{Eid, Iccid};
use serde_json::Value;

use crate::admin_cmd::block_on;
use crate::id_args;

/// `ferrosim fleet …`
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The server (`https://host:port`).
    #[arg(long, env = "FERROSIM_URL", value_name = "URL")]
    url: String,
    /// An API token (`ferrosim api-token create`).
    #[arg(
        long,
        env = "FERROSIM_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// CA certificate(s) to trust for the server (PEM; the instance's CI).
    #[arg(long, env = "FERROSIM_CA", value_name = "FILE")]
    ca: PathBuf,
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Add a failover rule (a JSON file, `-` for stdin).
    Add {
        /// The file.
        file: PathBuf,
    },
    #[command(flatten)]
    Item(ItemCommand),
}

/// Changes of one carrier, group or rule. A change of an existing item
/// needs the version `show` printed (`--if-match`): the server refuses it
/// when the item changed since.
#[derive(Debug, Subcommand)]
enum ItemCommand {
    /// One item with its version.
    Show {
        /// Its name.
        name: String,
    },
    /// Create or replace an item (a JSON file, `-` for stdin, as the
    /// TOML's table in JSON).
    Update {
        /// Its name.
        name: String,
        /// The file.
        file: PathBuf,
        /// The version read (required to replace an existing item).
        #[arg(long, value_name = "VERSION")]
        if_match: Option<String>,
    },
    /// Delete an item (refused while it is in use).
    Delete {
        /// Its name.
        name: String,
        /// The version read.
        #[arg(long, value_name = "VERSION")]
        if_match: String,
    },
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// The carriers of the fleet configuration; `carriers show|update|delete
    /// NAME` for one (changes need an `admin` token).
    Carriers {
        #[command(subcommand)]
        command: Option<ItemCommand>,
    },
    /// The device groups; `groups show|update|delete NAME` for one.
    Groups {
        #[command(subcommand)]
        command: Option<ItemCommand>,
    },
    /// The failover rules; `rules add FILE` adds one (the TOML's
    /// `[[rule]]` as JSON; devices get it through a rollout of kind `rule`),
    /// `rules show|update|delete NAME` for one.
    Rules {
        #[command(subcommand)]
        command: Option<RulesCommand>,
    },
    /// Devices: list, show, add, revoke a profile.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Send device reports (a JSON file `{"reports": [...]}`, `-` for stdin).
    Report {
        /// The file.
        file: PathBuf,
    },
    /// Declare a carrier outage, or its end.
    Outage {
        /// `declare` or `end`.
        #[arg(value_parser = ["declare", "end"])]
        action: String,
        /// The carrier.
        #[arg(long)]
        carrier: String,
        /// A region (default: everywhere).
        #[arg(long)]
        region: Option<String>,
    },
    /// Rollouts: list, show, create, approve, pause, resume, abort.
    #[command(subcommand)]
    Rollouts(RolloutsCommand),
    /// The decision log.
    Decisions {
        /// Only about this device (EID).
        #[arg(long, value_name = "EID", value_parser = id_args::eid)]
        device: Option<Eid>,
        /// Only about this rollout.
        #[arg(long)]
        rollout: Option<u32>,
        /// Only after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (1..=1000).
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// A page of devices.
    List {
        /// Start after this EID.
        #[arg(long, value_name = "EID", value_parser = id_args::eid)]
        after: Option<Eid>,
        /// At most this many (1..=1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One device.
    Show {
        /// EID.
        #[arg(value_parser = id_args::eid)]
        eid: Eid,
    },
    /// Register a device from a JSON file (`-` for stdin).
    Add {
        /// The file.
        file: PathBuf,
    },
    /// Revoke a profile the fleet ordered for a device: ES2+ revokeProfile
    /// at its carrier, then the fleet replaces it with a fresh one and
    /// deletes it from the device.
    Revoke {
        /// EID.
        #[arg(value_parser = id_args::eid)]
        eid: Eid,
        /// The profile's ICCID.
        #[arg(value_parser = id_args::iccid)]
        iccid: Iccid,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// `retire` or `quarantine` (default: the operator's policy at its SM-DP+).
        #[arg(long)]
        reuse_policy: Option<String>,
        /// Quarantine period in seconds (with `--reuse-policy quarantine`).
        #[arg(long)]
        quarantine_seconds: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutsCommand {
    /// Every rollout.
    List,
    /// One rollout.
    Show {
        /// Its id.
        id: u32,
    },
    /// Create a rollout from a JSON file (`-` for stdin).
    Create {
        /// The file.
        file: PathBuf,
    },
    /// Approve the next wave.
    Approve {
        /// Its id.
        id: u32,
    },
    /// Pause.
    Pause {
        /// Its id.
        id: u32,
    },
    /// Resume.
    Resume {
        /// Its id.
        id: u32,
    },
    /// Abort (the waves done are rolled back).
    Abort {
        /// Its id.
        id: u32,
    },
}

fn read_json(file: &PathBuf) -> anyhow::Result<Value> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|v| {
                let enc: String = v
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                format!("{k}={enc}")
            })
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The call of an item command on `kind` (`carriers`, `groups`,
/// `rules`); `version` takes its `If-Match`.
fn item_call(
    kind: &str,
    command: ItemCommand,
    version: &mut Option<String>,
) -> anyhow::Result<(&'static str, String, Option<Value>)> {
    let path = |name: &str| -> anyhow::Result<String> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            bail!("`{name}` is not a name (1 to 64 characters, no control characters)");
        }
        // One path segment: everything but unreserved characters escaped.
        let segment: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Ok(format!("/{kind}/{segment}"))
    };
    let check = |v: &str| -> anyhow::Result<String> {
        let v = v.trim().trim_matches('"');
        if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--if-match: `{v}` is not a version (as `show` prints it)");
        }
        Ok(v.to_owned())
    };
    Ok(match command {
        ItemCommand::Show { name } => ("GET", path(&name)?, None),
        ItemCommand::Update {
            name,
            file,
            if_match,
        } => {
            *version = if_match.as_deref().map(check).transpose()?;
            ("PUT", path(&name)?, Some(read_json(&file)?))
        }
        ItemCommand::Delete { name, if_match } => {
            *version = Some(check(&if_match)?);
            ("DELETE", path(&name)?, None)
        }
    })
}

/// Runs `ferrosim fleet`.
pub fn run(args: FleetArgs) -> anyhow::Result<()> {
    let url = args.url.trim_end_matches('/').to_owned();
    if !url.starts_with("https://") {
        bail!("--url must be https://host:port, not `{url}`");
    }
    let pem = std::fs::read(&args.ca).with_context(|| format!("--ca {}", args.ca.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--ca {}: not PEM certificates", args.ca.display()))?;
    if roots.is_empty() {
        bail!("--ca {}: no certificate in it", args.ca.display());
    }
    let http = reqwest::Client::builder().tls_certs_only(roots).build()?;
    let mut version = None;
    let (method, path, body) = match args.command {
        FleetCommand::Carriers { command: None } => ("GET", "/carriers".to_owned(), None),
        FleetCommand::Groups { command: None } => ("GET", "/groups".to_owned(), None),
        FleetCommand::Rules { command: None } => ("GET", "/rules".to_owned(), None),
        FleetCommand::Rules {
            command: Some(RulesCommand::Add { file }),
        } => ("POST", "/rules".to_owned(), Some(read_json(&file)?)),
        FleetCommand::Carriers { command: Some(c) } => item_call("carriers", c, &mut version)?,
        FleetCommand::Groups { command: Some(c) } => item_call("groups", c, &mut version)?,
        FleetCommand::Rules {
            command: Some(RulesCommand::Item(c)),
        } => item_call("rules", c, &mut version)?,
        FleetCommand::Devices(DevicesCommand::List { after, limit }) => (
            "GET",
            format!(
                "/devices{}",
                query(&[
                    ("after", after.map(|e| e.to_string())),
                    ("limit", limit.map(|l| l.to_string())),
                ])
            ),
            None,
        ),
        FleetCommand::Devices(DevicesCommand::Show { eid }) => {
            ("GET", format!("/devices/{eid}"), None)
        }
        FleetCommand::Devices(DevicesCommand::Revoke {
            eid,
            iccid,
            reason,
            reuse_policy,
            quarantine_seconds,
        }) => (
            "POST",
            format!("/devices/{eid}/profiles/{iccid}/revoke"),
            Some(serde_json::json!({
                "reason": reason, "reuse_policy": reuse_policy,
                "quarantine_seconds": quarantine_seconds
            })),
        ),
        FleetCommand::Devices(DevicesCommand::Add { file }) => {
            ("POST", "/devices".to_owned(), Some(read_json(&file)?))
        }
        FleetCommand::Report { file } => ("POST", "/reports".to_owned(), Some(read_json(&file)?)),
        FleetCommand::Outage {
            action,
            carrier,
            region,
        } => (
            "POST",
            "/outages".to_owned(),
            Some(serde_json::json!({
                "carrier": carrier, "region": region, "declared": action == "declare"
            })),
        ),
        FleetCommand::Rollouts(c) => match c {
            RolloutsCommand::List => ("GET", "/rollouts".to_owned(), None),
            RolloutsCommand::Show { id } => ("GET", format!("/rollouts/{id}"), None),
            RolloutsCommand::Create { file } => {
                ("POST", "/rollouts".to_owned(), Some(read_json(&file)?))
            }
            RolloutsCommand::Approve { id } => ("POST", format!("/rollouts/{id}/approve"), None),
            RolloutsCommand::Pause { id } => ("POST", format!("/rollouts/{id}/pause"), None),
            RolloutsCommand::Resume { id } => ("POST", format!("/rollouts/{id}/resume"), None),
            RolloutsCommand::Abort { id } => ("POST", format!("/rollouts/{id}/abort"), None),
        },
        FleetCommand::Decisions {
            device,
            rollout,
            after,
            limit,
        } => (
            "GET",
            format!(
                "/decisions{}",
                query(&[
                    ("device", device.map(|e| e.to_string())),
                    ("rollout", rollout.map(|r| r.to_string())),
                    ("after", after.map(|a| a.to_string())),
                    ("limit", limit.map(|l| l.to_string())),
                ])
            ),
            None,
        ),
    };
    let full = format!("{url}/api/v1/fleet{path}");
    block_on(async move {
        let mut request = match method {
            "GET" => http.get(&full),
            "PUT" => http.put(&full),
            "DELETE" => http.delete(&full),
            _ => http.post(&full),
        }
        .bearer_auth(&args.token);
        if let Some(v) = &version {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{v}\""));
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            bail!("{} refused ({}): {message}", full, status.as_u16());
        }
        if !text.is_empty() {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        fleet: FleetArgs,
    }

    const EID: &str = "89049032123451234512345678901235";

    fn parse(args: &[&str]) -> Result<FleetCommand, String> {
        let base = [
            "ferrosim",
            "--url",
            "https://h:1",
            "--token",
            "t",
            "--ca",
            "c",
        ];
        Cli::try_parse_from(base.iter().chain(args))
            .map(|c| c.fleet.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ids_are_parsed_by_the_argument_parser() {
        match parse(&["devices", "revoke", EID, "8944000000000000001"]).unwrap() {
            FleetCommand::Devices(DevicesCommand::Revoke { eid, iccid, .. }) => {
                assert_eq!(eid.to_string(), EID);
                assert_eq!(iccid.as_str(), "8944000000000000001");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["devices", "list", "--after", EID]).is_ok());
        assert!(parse(&["decisions", "--device", EID]).is_ok());
        for (args, want) in [
            (vec!["devices", "show", "nope"], "is not an EID"),
            (vec!["devices", "list", "--after", "12"], "is not an EID"),
            (vec!["decisions", "--device", &EID[1..]], "is not an EID"),
            (
                vec!["decisions", "--device", "89049032123451234512345678901234"],
                "is not an EID",
            ),
            (vec!["devices", "revoke", EID, "89/../x"], "is not an ICCID"),
            (
                vec!["devices", "revoke", EID, "8944000000000000002"],
                "is not an ICCID",
            ),
        ] {
            let e = parse(&args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }
}
