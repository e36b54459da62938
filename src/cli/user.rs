//! `xiansuo user add|reset|list`.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use xiansuo_domain::{Role, valid_user_name};
use xiansuo_store::UserChange;
use xiansuo_web::security::{generate_password, hash_password};

use super::UserCommand;

fn password(from_stdin: bool) -> Result<(String, bool), String> {
    if !from_stdin {
        return Ok((generate_password()?, true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.chars().count() < 8 {
        return Err("the password needs at least 8 characters".into());
    }
    Ok((password, false))
}

pub fn run(command: UserCommand, config_file: Option<&Path>) -> Result<ExitCode, String> {
    super::runtime()?.block_on(async {
        let (_, store) = super::configured_store(config_file).await?;
        match command {
            UserCommand::Add { name, role, password_stdin } => {
                let name = valid_user_name(&name)?.to_string();
                let role = Role::parse(&role).ok_or("--role is admin or agent")?;
                let (password, generated) = password(password_stdin)?;
                let hash = hash_password(&password)?;
                let user = store.create_user(&name, role, &hash).await.map_err(|e| e.to_string())?;
                println!("added {} ({}) with id {}", user.name, role.as_str(), user.id);
                if generated {
                    println!("password: {password}");
                }
            }
            UserCommand::Reset { name, password_stdin } => {
                let user = store
                    .user_by_name(&name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user named \"{name}\""))?;
                let (password, generated) = password(password_stdin)?;
                let hash = hash_password(&password)?;
                store.update_user(user.id, UserChange::Password(hash)).await.map_err(|e| e.to_string())?;
                println!("new password set for {name}; their sessions have ended");
                if generated {
                    println!("password: {password}");
                }
            }
            UserCommand::List => {
                for u in store.users().await.map_err(|e| e.to_string())? {
                    println!("{}\t{}\t{}{}", u.id, u.name, u.role.as_str(), if u.disabled { "\tdisabled" } else { "" });
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
