use thiserror::Error;

/// Errors of the provider contract; each names the resource or host it concerns.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{address}: invalid spec: {message}")]
    Spec { address: String, message: String },
    #[error("{address}: {source}")]
    Transport {
        address: String,
        #[source]
        source: TransportError,
    },
    #[error("{address}: the checker rejected the new file ({command}): {message}")]
    Rejected { address: String, command: String, message: String },
    #[error("{address}: activation failed ({command}): {message}; the previous file was restored")]
    ActivationFailed { address: String, command: String, message: String },
    /// One activation for files written together (one reload of their daemon) failed.
    #[error("{addresses}: activation failed ({command}) after they were written together: {message}; the previous files were restored")]
    ActivationFailedTogether { addresses: String, command: String, message: String },
    #[error("{address}: {message}")]
    Failed { address: String, message: String },
    /// A resource several environments own together (shared infra hosts) that they cannot agree on.
    #[error("{address}: shared by environments {environments}, which {message}")]
    Shared { address: String, environments: String, message: String },
    #[error("{address}: no provider named {provider}")]
    NoProvider { address: String, provider: String },
    /// A local file the environment names (template, source, manifest) cannot be used.
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    /// Secret content a change needs is not what the environment produces now.
    #[error("{address}: the secret content {digest} is not what the environment produces now (it changed since the plan was made); nothing was written")]
    SecretChanged { address: String, digest: String },
}

impl Error {
    pub fn failed(address: &impl ToString, message: impl Into<String>) -> Self {
        Error::Failed { address: address.to_string(), message: message.into() }
    }
}

/// What can go wrong talking to one host.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("host {host} is unreachable: {message}")]
    Unreachable { host: String, message: String },
    #[error("authentication to {host} failed: {message}")]
    Auth { host: String, message: String },
    #[error("host key of {host} is not known ({fingerprint}); add it to known_hosts or allow new keys")]
    UnknownHostKey { host: String, fingerprint: String },
    #[error("host key of {host} CHANGED (now {fingerprint}); refusing to connect")]
    HostKeyMismatch { host: String, fingerprint: String },
    #[error("on {host}: `{command}` exited with {code}: {stderr}")]
    Command { host: String, command: String, code: i32, stderr: String },
    #[error("on {host}: timed out after {secs}s: {what}")]
    Timeout { host: String, what: String, secs: u64 },
    #[error("on {host}: {path}: {message}")]
    Io { host: String, path: String, message: String },
    #[error("on {host}: {message}")]
    Protocol { host: String, message: String },
}

impl TransportError {
    pub fn at(self, address: &impl ToString) -> Error {
        Error::Transport { address: address.to_string(), source: self }
    }
}
