//! `xiansuo token rotate|retire SOURCE`: a new generated push token without downtime.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use xiansuo_web::access::{previous_token_setting, token_setting};
use xiansuo_web::audit::Who;

use super::TokenCommand;

pub fn run(command: TokenCommand, config_file: Option<&Path>) -> Result<ExitCode, String> {
    super::runtime()?.block_on(async {
        let (config, store) = super::configured_store(config_file).await?;
        let name = match &command {
            TokenCommand::Rotate { source } | TokenCommand::Retire { source } => source.clone(),
        };
        let source = config.sources.get(&name).ok_or_else(|| {
            let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
            format!("no source named \"{name}\" is configured (known: {})", known.join(", "))
        })?;
        if source.token.is_some() {
            return Err(format!(
                "the token of source \"{name}\" is set in the configuration: put the new one in sources.{name}.token, move the old one to sources.{name}.previous_tokens, and restart"
            ));
        }
        let store_error = |e: xiansuo_store::StoreError| e.to_string();
        match command {
            TokenCommand::Rotate { .. } => {
                let current = store.setting(&token_setting(&name)).await.map_err(store_error)?;
                let new = xiansuo_web::startup::generate_token().map_err(|e| e.to_string())?;
                // The old token first becomes the previous one, so that it never stops working.
                if let Some(old) = &current {
                    store.set_setting(&previous_token_setting(&name), Some(old)).await.map_err(store_error)?;
                }
                store.set_setting(&token_setting(&name), Some(&new)).await.map_err(store_error)?;
                let target = Some(format!("source {name}"));
                xiansuo_web::audit::record(store.as_ref(), Who::command_line(), "token_rotated", target, json!({}), None)
                    .await;
                println!("new push token for source \"{name}\": {new}");
                println!("push URL: /push/{name}?token={new}");
                if current.is_some() {
                    println!(
                        "the previous token stays valid until `xiansuo token retire {name}`: run it once the vendor sends the new one"
                    );
                }
            }
            TokenCommand::Retire { .. } => {
                store.set_setting(&previous_token_setting(&name), None).await.map_err(store_error)?;
                let target = Some(format!("source {name}"));
                xiansuo_web::audit::record(store.as_ref(), Who::command_line(), "token_retired", target, json!({}), None)
                    .await;
                println!("source \"{name}\" accepts only its current token now (running services within 10 seconds)");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
