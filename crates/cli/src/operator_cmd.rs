//! `ferrosim operator …`: the operators allowed to use ES2+ — add (or change
//! an existing one without touching its token), rotate a token, list, show,
//! remove.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory;
use ferrosim_smdp::store::{CatalogStore, Operator, ProfileStore};
use ferrosim_store::SqlStore;

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{Access, open_store};

/// `ferrosim operator …`
#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Create an operator and print its ES2+ API token; on an existing id,
    /// change only the settings given (never the token).
    Add {
        /// The operator's id (its ES2+ functionRequesterIdentifier).
        #[arg(long)]
        id: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// The operator's ES2+ base URL: callbacks go to
        /// `<URL>/gsma/rsp2/es2plus/handleDownloadProgressInfo`. A URL that
        /// already ends in `/handleDownloadProgressInfo` is used as given.
        #[arg(long, conflicts_with = "no_callback_url")]
        callback_url: Option<String>,
        /// Remove the callback URL (no callbacks are sent).
        #[arg(long)]
        no_callback_url: bool,
        /// Accept an `http://` callback URL (a lab without TLS; callbacks
        /// then travel in clear).
        #[arg(long)]
        allow_http_callback: bool,
    },
    /// Issue a new `default` ES2+ token; the previous default stops working
    /// at once (tokens added with `operator token add` are unchanged).
    RotateToken {
        /// The operator's id.
        #[arg(long)]
        id: String,
    },
    /// An operator's named ES2+ tokens: add, list, revoke (rotation
    /// without downtime: add, move the clients, revoke the old one).
    Token {
        #[command(subcommand)]
        command: crate::operator_token_cmd::TokenCommand,
    },
    /// List the operators.
    List,
    /// Show an operator: settings, profile types, profiles per state.
    Show {
        /// The operator's id.
        #[arg(long)]
        id: String,
    },
    /// Remove an operator that owns no profile types.
    Remove {
        /// The operator's id.
        #[arg(long)]
        id: String,
    },
}

/// Runs `ferrosim operator`.
pub fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    block_on(async move {
        let store = open_store(&cfg, Access::Existing).await?;
        let audited = audit_of(&args.command);
        let result = command(&store, args.command).await;
        if let (Ok(()), Some((action, subject))) = (&result, audited) {
            crate::audit_cmd::record(&store, action, &subject, serde_json::Value::Null).await;
        }
        store.close().await;
        result
    })
}

/// The audit action and subject of a command that changes something.
fn audit_of(command: &OperatorCommand) -> Option<(&'static str, String)> {
    match command {
        OperatorCommand::Add { id, .. } => Some(("operator.add", id.clone())),
        OperatorCommand::RotateToken { id } => Some(("operator.rotate-token", id.clone())),
        OperatorCommand::Remove { id } => Some(("operator.remove", id.clone())),
        OperatorCommand::Token { command } => crate::operator_token_cmd::audit_of(command),
        OperatorCommand::List | OperatorCommand::Show { .. } => None,
    }
}

async fn command(store: &SqlStore, command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Add {
            id,
            name,
            callback_url,
            no_callback_url,
            allow_http_callback,
        } => {
            let op = operator_id(&id)?;
            let callback_url = callback_url
                .map(|url| {
                    check_callback_url(&url, allow_http_callback)?;
                    Ok::<_, anyhow::Error>(callback_endpoint(&url))
                })
                .transpose()?;
            if let Some(name) = &name {
                check_name(name)?;
            }
            match store.operator(&op).await? {
                None => {
                    let token = inventory::add_operator(
                        store,
                        op,
                        name.unwrap_or_else(|| id.clone()),
                        callback_url,
                        &mut rand::rng(),
                    )
                    .await?;
                    println!("operator {id} created; its ES2+ token (shown once):\n{token}");
                }
                Some(old) => {
                    let mut new = old.clone();
                    if let Some(name) = name {
                        new.name = name;
                    }
                    if let Some(url) = callback_url {
                        new.callback_url = Some(url);
                    }
                    if no_callback_url {
                        new.callback_url = None;
                    }
                    let changes = describe_changes(&old, &new);
                    if changes.is_empty() {
                        println!("operator {id} exists; nothing changed");
                    } else {
                        store.put_operator(&new).await?;
                        println!("operator {id} updated:");
                        for change in changes {
                            println!("  {change}");
                        }
                    }
                    println!(
                        "its ES2+ token is unchanged (`ferrosim operator rotate-token --id {id}` issues a new one)"
                    );
                }
            }
        }
        OperatorCommand::RotateToken { id } => {
            let old = existing(store, &id).await?;
            let token = inventory::add_operator(
                store,
                old.id,
                old.name,
                old.callback_url,
                &mut rand::rng(),
            )
            .await?;
            println!(
                "operator {id}: new default ES2+ token (shown once; the previous default token no \
                 longer works, tokens added with `operator token add` still do):\n{token}"
            );
        }
        OperatorCommand::Token { command } => {
            crate::operator_token_cmd::run(store, command).await?;
        }
        OperatorCommand::List => {
            let operators = store.list_operators().await?;
            if operators.is_empty() {
                println!("no operators (add one with `ferrosim operator add --id ID`)");
            }
            for op in operators {
                println!(
                    "{:<20} {:<24} {}",
                    op.id,
                    op.name,
                    op.callback_url.as_deref().unwrap_or("(no callback URL)")
                );
            }
        }
        OperatorCommand::Show { id } => {
            let op = existing(store, &id).await?;
            let types = store.operator_profile_types(&op.id).await?;
            let counts = store.count_profiles(Some(&op.id)).await?;
            println!("id:            {}", op.id);
            println!("name:          {}", op.name);
            println!(
                "callback URL:  {}",
                op.callback_url.as_deref().unwrap_or("(none)")
            );
            let tokens = store.operator_tokens(&op.id).await?;
            let active: Vec<&str> = tokens
                .iter()
                .filter(|t| t.revoked_at.is_none())
                .map(|t| t.name.as_str())
                .collect();
            println!(
                "ES2+ tokens:   {} active ({}); only their SHA-256 is stored",
                active.len(),
                active.join(", ")
            );
            println!(
                "profile types: {}",
                if types.is_empty() {
                    "(none)".to_owned()
                } else {
                    types.join(", ")
                }
            );
            if counts.is_empty() {
                println!("profiles:      (none)");
            } else {
                println!("profiles:");
                for (state, n) in counts {
                    println!("  {state:<12} {n}");
                }
            }
        }
        OperatorCommand::Remove { id } => {
            let op = operator_id(&id)?;
            match store.remove_operator(&op).await {
                Ok(true) => println!("operator {id} removed"),
                Ok(false) => bail!("no operator {id}"),
                Err(ferrosim_smdp::store::StoreError::Conflict(why)) => {
                    bail!("operator {id} not removed: {why}")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

pub(crate) fn operator_id(id: &str) -> anyhow::Result<OperatorId> {
    OperatorId::new(id).with_context(|| format!("--id `{id}`"))
}

pub(crate) async fn existing(store: &SqlStore, id: &str) -> anyhow::Result<Operator> {
    let op = operator_id(id)?;
    store
        .operator(&op)
        .await?
        .with_context(|| format!("no operator {id} (see `ferrosim operator list`)"))
}

/// What differs between two versions of an operator, as lines for the user.
fn describe_changes(old: &Operator, new: &Operator) -> Vec<String> {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(format!("name: {} -> {}", old.name, new.name));
    }
    if old.callback_url != new.callback_url {
        let show = |u: &Option<String>| u.clone().unwrap_or_else(|| "(none)".into());
        out.push(format!(
            "callback URL: {} -> {}",
            show(&old.callback_url),
            show(&new.callback_url)
        ));
    }
    out
}

/// A callback URL must be an absolute `https://` URL with a host
/// (`http://` only with `allow_http`).
pub fn check_callback_url(url: &str, allow_http: bool) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("--callback-url `{url}` is not a URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => bail!(
            "--callback-url `{url}`: callbacks carry order data, so the URL must be https:// \
             (add --allow-http-callback for a lab without TLS)"
        ),
        other => bail!("--callback-url `{url}`: scheme `{other}` is not https"),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("--callback-url `{url}` has no host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        bail!("--callback-url `{url}`: credentials in the URL would be logged; leave them out");
    }
    Ok(())
}

/// The path of `handleDownloadProgressInfo` below an operator's ES2+ base.
pub const CALLBACK_PATH: &str = "/gsma/rsp2/es2plus/handleDownloadProgressInfo";

/// The URL callbacks are posted to: `url` itself when it already names the
/// function (the full-URL form), else `url` as the operator's ES2+ base with
/// [`CALLBACK_PATH`] appended (a query, if any, kept at the end).
pub fn callback_endpoint(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_owned();
    };
    let path = parsed.path().trim_end_matches('/').to_owned();
    if path.ends_with("/handleDownloadProgressInfo") {
        return url.to_owned();
    }
    parsed.set_path(&format!("{path}{CALLBACK_PATH}"));
    parsed.to_string()
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        bail!("--name must be 1..=128 characters without control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{callback_endpoint, check_callback_url};

    #[test]
    fn callback_base_and_full_urls() {
        let full = "https://backoffice.example/gsma/rsp2/es2plus/handleDownloadProgressInfo";
        for base in [
            "https://backoffice.example",
            "https://backoffice.example/",
            full,
        ] {
            assert_eq!(callback_endpoint(base), full, "{base}");
        }
        assert_eq!(
            callback_endpoint("https://h:8443/es2?x=1"),
            "https://h:8443/es2/gsma/rsp2/es2plus/handleDownloadProgressInfo?x=1"
        );
        assert_eq!(
            callback_endpoint("https://h/hooks/handleDownloadProgressInfo/"),
            "https://h/hooks/handleDownloadProgressInfo/"
        );
    }

    #[test]
    fn callback_urls() {
        assert!(check_callback_url("https://backoffice.example/esim", false).is_ok());
        assert!(check_callback_url("https://10.0.0.1:8443/x", false).is_ok());
        assert!(check_callback_url("http://backoffice.example/esim", false).is_err());
        assert!(check_callback_url("http://backoffice.example/esim", true).is_ok());
        for bad in [
            "",
            "backoffice.example",
            "ftp://x/y",
            "https://",
            "https://user:pw@host/x",
            "javascript:alert(1)",
            "\u{0}\u{1}",
        ] {
            assert!(check_callback_url(bad, true).is_err(), "{bad:?}");
        }
    }
}
