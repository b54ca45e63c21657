//! Logging in: the agent's keys, then key files, never a prompt. When all
//! fail, the error lists what was tried, so "permission denied" says why.

use std::path::Path;
use std::sync::Arc;

use russh::MethodKind;
use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{self, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::super::TransportError;
use super::resolve::{Identity, Target, display_path};
use super::verify::Verifier;

/// What one attempt came to.
enum Outcome {
    Success,
    /// The server refused this key; others may still work.
    Refused,
    /// Nothing more can work: publickey is not accepted, or the server hung up.
    Stop(String),
}

/// Authenticates `handle` as `target.user`: each ssh-agent identity (those
/// matching a configured key file first), then each key file.
pub async fn authenticate(
    handle: &mut Handle<Verifier>,
    target: &Target,
    address: &str,
) -> Result<(), TransportError> {
    let mut login = Login {
        handle,
        user: &target.user,
        rsa_hash: None,
        tried: Vec::new(),
        refused_keys: Vec::new(),
    };
    let result = login.run(&target.identities).await;
    match result {
        Ok(()) => Ok(()),
        Err(stop) => {
            let mut reason = if login.tried.is_empty() {
                "no ssh-agent key and no key file to offer".to_string()
            } else {
                format!("tried {}", login.tried.join("; "))
            };
            if let Some(stop) = stop {
                reason.push_str("; ");
                reason.push_str(&stop);
            }
            Err(TransportError::Auth {
                user: target.user.clone(),
                address: address.to_string(),
                reason,
            })
        }
    }
}

struct Login<'a> {
    handle: &'a mut Handle<Verifier>,
    user: &'a str,
    /// Asked of the server once, when the first RSA key is offered: it waits
    /// up to a second for the server's extension info.
    rsa_hash: Option<Option<HashAlg>>,
    tried: Vec<String>,
    /// Keys the agent offered and the server refused, not to offer again
    /// from a file.
    refused_keys: Vec<PublicKey>,
}

impl Login<'_> {
    /// `Err(Some(why))` when it had to stop early, `Err(None)` when every
    /// method was refused.
    async fn run(&mut self, identities: &[Identity]) -> Result<(), Option<String>> {
        match self.with_agent(identities).await {
            Outcome::Success => return Ok(()),
            Outcome::Stop(why) => return Err(Some(why)),
            Outcome::Refused => {}
        }
        for identity in identities {
            match self.with_file(identity).await {
                Outcome::Success => return Ok(()),
                Outcome::Stop(why) => return Err(Some(why)),
                Outcome::Refused => {}
            }
        }
        Err(None)
    }

    async fn with_agent(&mut self, files: &[Identity]) -> Outcome {
        if std::env::var_os("SSH_AUTH_SOCK").is_none() {
            self.tried
                .push("ssh-agent (SSH_AUTH_SOCK is not set)".into());
            return Outcome::Refused;
        }
        let mut agent = match AgentClient::connect_env().await {
            Ok(agent) => agent,
            Err(error) => {
                self.tried.push(format!("ssh-agent ({error})"));
                return Outcome::Refused;
            }
        };
        let mut identities = match agent.request_identities().await {
            Ok(identities) => identities,
            Err(error) => {
                self.tried.push(format!("ssh-agent ({error})"));
                return Outcome::Refused;
            }
        };
        if identities.is_empty() {
            self.tried.push("ssh-agent (it holds no keys)".into());
            return Outcome::Refused;
        }
        let wanted = wanted_public_keys(files);
        // Keys the user configured go first: sshd's MaxAuthTries (6) may end
        // the login before an agent with many keys gets to the right one.
        identities.sort_by_key(|identity| !wanted.contains(&identity.public_key()));
        let mut refused = 0;
        for identity in &identities {
            let public = identity.public_key().into_owned();
            let hash = self.rsa_hash_for(&public).await;
            let result = match identity {
                AgentIdentity::PublicKey { key, .. } => {
                    self.handle
                        .authenticate_publickey_with(self.user, key.clone(), hash, &mut agent)
                        .await
                }
                AgentIdentity::Certificate { certificate, .. } => {
                    self.handle
                        .authenticate_certificate_with(
                            self.user,
                            certificate.clone(),
                            hash,
                            &mut agent,
                        )
                        .await
                }
            };
            match self.judge(result.map_err(|error| error.to_string())) {
                Outcome::Refused => {
                    refused += 1;
                    self.refused_keys.push(public);
                }
                other => {
                    if refused > 0 {
                        self.tried.push(agent_summary(refused));
                    }
                    return other;
                }
            }
        }
        self.tried.push(agent_summary(refused));
        Outcome::Refused
    }

    async fn with_file(&mut self, identity: &Identity) -> Outcome {
        let shown = display_path(&identity.path);
        let key = match load_key(&identity.path).await {
            Ok(key) => key,
            Err(KeyProblem::Missing) if !identity.explicit => return Outcome::Refused,
            Err(problem) => {
                self.tried.push(problem.describe(&shown));
                return Outcome::Refused;
            }
        };
        if self.refused_keys.contains(key.public_key()) {
            // The agent already offered this very key.
            return Outcome::Refused;
        }
        let hash = self.rsa_hash_for(key.public_key()).await;
        let result = self
            .handle
            .authenticate_publickey(self.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await;
        let outcome = self.judge(result.map_err(|error| error.to_string()));
        if matches!(outcome, Outcome::Refused) {
            self.tried.push(format!("key {shown} (refused)"));
        }
        outcome
    }

    fn judge(&self, result: Result<AuthResult, String>) -> Outcome {
        match result {
            Ok(AuthResult::Success) => Outcome::Success,
            Ok(AuthResult::Failure {
                remaining_methods, ..
            }) => {
                if self.handle.is_closed() {
                    Outcome::Stop(closed_during_login())
                } else if !remaining_methods.is_empty()
                    && !remaining_methods.contains(&MethodKind::PublicKey)
                {
                    let names: Vec<&str> = remaining_methods.iter().map(<&str>::from).collect();
                    Outcome::Stop(format!(
                        "the server does not accept keys, only: {}",
                        names.join(", ")
                    ))
                } else {
                    Outcome::Refused
                }
            }
            Err(error) if self.handle.is_closed() => {
                Outcome::Stop(format!("{} ({error})", closed_during_login()))
            }
            Err(error) => Outcome::Stop(format!("authentication broke off: {error}")),
        }
    }

    async fn rsa_hash_for(&mut self, key: &PublicKey) -> Option<HashAlg> {
        if !key.algorithm().is_rsa() {
            return None;
        }
        if let Some(hash) = self.rsa_hash {
            return hash;
        }
        let hash = self
            .handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        self.rsa_hash = Some(hash);
        hash
    }
}

fn agent_summary(refused: usize) -> String {
    match refused {
        1 => "ssh-agent (its key was refused)".into(),
        n => format!("ssh-agent ({n} keys refused)"),
    }
}

fn closed_during_login() -> String {
    "the server closed the connection during login (too many keys offered? sshd allows \
     MaxAuthTries, 6 by default)"
        .into()
}

enum KeyProblem {
    Missing,
    Encrypted,
    Unreadable(String),
}

impl KeyProblem {
    fn describe(&self, shown: &str) -> String {
        match self {
            KeyProblem::Missing => format!("key {shown} (it does not exist)"),
            KeyProblem::Encrypted => format!(
                "key {shown} is encrypted: add it to ssh-agent (ssh-add) — zap does not ask \
                 for passphrases"
            ),
            KeyProblem::Unreadable(why) => format!("key {shown} (cannot read it: {why})"),
        }
    }
}

async fn load_key(path: &Path) -> Result<PrivateKey, KeyProblem> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyProblem::Missing);
        }
        Err(error) => return Err(KeyProblem::Unreadable(error.to_string())),
    };
    match keys::decode_secret_key(&text, None) {
        Ok(key) => Ok(key),
        Err(keys::Error::KeyIsEncrypted) => Err(KeyProblem::Encrypted),
        Err(error) => Err(KeyProblem::Unreadable(error.to_string())),
    }
}

/// The public halves of the configured key files (`KEY.pub`), to put the
/// agent's matching identities first. Files that cannot be read are skipped.
fn wanted_public_keys(identities: &[Identity]) -> Vec<PublicKey> {
    identities
        .iter()
        .filter_map(|identity| {
            let mut public = identity.path.clone().into_os_string();
            public.push(".pub");
            keys::load_public_key(public).ok()
        })
        .collect()
}
