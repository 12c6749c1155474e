//! `ferrosim operator token add|list|revoke`: an operator's named ES2+
//! bearer tokens (see `ferrosim_store::OperatorToken`). Each active token
//! authenticates the operator; rotating without downtime is adding a token,
//! moving the clients to it and revoking the old one.

use anyhow::bail;
use clap::Subcommand;
use ferrosim_smdp::es2::token_hash;
use ferrosim_smdp::inventory;
use ferrosim_smdp::store::StoreError;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::SqlStore;

use crate::operator_cmd::existing;

/// `ferrosim operator token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a new named token and print it (once); the operator's other
    /// tokens keep working.
    Add {
        /// The operator's id.
        #[arg(long)]
        id: String,
        /// The token's name (1..=64 of A-Z, a-z, 0-9, '.', '_', '-'),
        /// e.g. where it is used or when it was issued.
        #[arg(long)]
        name: String,
    },
    /// List the operator's tokens: name, issued, revoked.
    List {
        /// The operator's id.
        #[arg(long)]
        id: String,
    },
    /// Revoke a token: it is refused from now on. The last active token
    /// cannot be revoked (add another first).
    Revoke {
        /// The operator's id.
        #[arg(long)]
        id: String,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

/// The audit action and subject of a token command that changes something.
pub fn audit_of(command: &TokenCommand) -> Option<(&'static str, String)> {
    match command {
        TokenCommand::Add { id, name } => Some(("operator.token.add", format!("{id}/{name}"))),
        TokenCommand::Revoke { id, name } => {
            Some(("operator.token.revoke", format!("{id}/{name}")))
        }
        TokenCommand::List { .. } => None,
    }
}

/// Runs a token command.
pub async fn run(store: &SqlStore, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Add { id, name } => {
            check_name(&name)?;
            let op = existing(store, &id).await?;
            let token = inventory::new_operator_token(&mut rand::rng());
            match store
                .add_operator_token(&op.id, &name, &token_hash(&token), Timestamp::now())
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(why)) => bail!("token not added: {why}"),
                Err(e) => return Err(e.into()),
            }
            println!(
                "operator {id}: token {name} added (shown once; the other tokens keep working):\n{token}"
            );
        }
        TokenCommand::List { id } => {
            let op = existing(store, &id).await?;
            for t in store.operator_tokens(&op.id).await? {
                println!(
                    "{:<24} issued {}  {}",
                    t.name,
                    t.created_at.to_rfc3339(),
                    t.revoked_at.map_or("active".to_owned(), |r| format!(
                        "revoked {}",
                        r.to_rfc3339()
                    ))
                );
            }
        }
        TokenCommand::Revoke { id, name } => {
            check_name(&name)?;
            let op = existing(store, &id).await?;
            match store
                .revoke_operator_token(&op.id, &name, Timestamp::now())
                .await
            {
                Ok(true) => println!("operator {id}: token {name} revoked"),
                Ok(false) => bail!(
                    "operator {id} has no active token named {name} (see `ferrosim operator token list --id {id}`)"
                ),
                Err(StoreError::Conflict(why)) => bail!("token not revoked: {why}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("--name {name:?}: expected 1..=64 of A-Z, a-z, 0-9, '.', '_', '-'");
    }
    Ok(())
}
