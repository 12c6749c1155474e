//! `ferrosim api-token …`: the API tokens of the instance's REST APIs —
//! create (shown once), list, revoke. Tokens are stored hashed; each has a
//! scope: `read-only`, `operator` or `admin`.

use anyhow::bail;
use clap::{Args, Subcommand};
use ferrosim_eim::Timestamp;
use ferrosim_server::api::auth::{Scope, new_token, to_row};

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{Access, open_store};

/// `ferrosim api-token …`
#[derive(Debug, Args)]
pub struct ApiTokenArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: ApiTokenCommand,
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create a token and print it (it is not shown again).
    Create {
        /// What the token is for (a person, a system).
        #[arg(long)]
        name: String,
        /// `read-only`, `operator` or `admin`.
        #[arg(long)]
        scope: String,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (from `list`).
        #[arg(long)]
        id: String,
    },
}

/// Runs `ferrosim api-token`.
pub fn run(args: ApiTokenArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    block_on(async move {
        let store = open_store(&cfg, Access::Existing).await?;
        let result = async {
            match args.command {
                ApiTokenCommand::Create { name, scope } => {
                    let Some(scope) = Scope::parse(&scope) else {
                        bail!("--scope is read-only, operator or admin, not `{scope}`");
                    };
                    let name = name.trim();
                    if name.is_empty() || name.len() > 200 {
                        bail!("--name needs 1 to 200 characters");
                    }
                    let (text, token) = new_token(name, scope, &mut rand::rng(), Timestamp::now());
                    store.insert_api_token(&to_row(&token)).await?;
                    crate::audit_cmd::record(
                        &store,
                        "api-token.create",
                        &token.id,
                        serde_json::json!({ "name": token.name, "scope": scope.as_str() }),
                    )
                    .await;
                    println!(
                        "API token {} ({}, scope {scope}) created; it is shown once:\n{text}",
                        token.id, token.name
                    );
                }
                ApiTokenCommand::List => {
                    for t in store.api_tokens().await? {
                        let state = match t.revoked_at {
                            Some(at) => format!("revoked at {at}"),
                            None => "active".to_owned(),
                        };
                        println!("{}  {:<9}  {:<8}  {}", t.id, t.scope, state, t.name);
                    }
                }
                ApiTokenCommand::Revoke { id } => {
                    if !store.revoke_api_token(&id, Timestamp::now().0).await? {
                        bail!("no active API token with id `{id}`");
                    }
                    crate::audit_cmd::record(
                        &store,
                        "api-token.revoke",
                        &id,
                        serde_json::Value::Null,
                    )
                    .await;
                    println!("API token {id} revoked");
                }
            }
            Ok(())
        }
        .await;
        store.close().await;
        result
    })
}
