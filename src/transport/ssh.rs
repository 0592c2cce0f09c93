//! SSH transport (russh): one connection per host per run, reused for every command; host keys
//! verified against known_hosts; files read and written by small fixed POSIX sh scripts whose values
//! are passed as quoted positional arguments, never spliced into the script.

use async_trait::async_trait;
use groundwork_sdk::transport::{
    shell_quote, Arg, Batch, CheckRejection, Cmd, ExecOutput, FileMeta, Prefetch, Transport, WriteOptions,
};
use groundwork_sdk::TransportError;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelMsg;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::known_hosts;
use tokio::sync::Semaphore;

/// Bytes read and handed to the channel at a time when streaming stdin.
const UPLOAD_CHUNK: usize = 1024 * 1024;

/// Host certificate types asked for when a `@cert-authority` line names the host.
const CERTIFICATE_ALGORITHMS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 },
    russh::keys::Algorithm::Rsa { hash: Some(russh::keys::HashAlg::Sha512) },
];

/// How to reach one host.
#[derive(Clone)]
pub struct SshOptions {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private key files, tried in order (the ssh config's IdentityFile lines, then `ssh.identity`).
    pub identities: Vec<PathBuf>,
    /// Only `identities`: no ssh-agent, no default keys (IdentitiesOnly, or `ssh.identity` set).
    pub identities_only: bool,
    /// known_hosts files, the user's first (a new key is recorded in the first one), then the system's.
    pub known_hosts: Vec<PathBuf>,
    /// Trust and record an unknown host key (a changed or revoked key is always refused).
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Channels open at once on the connection (sshd's MaxSessions is 10).
    pub max_channels: usize,
    /// The jump host the connection is tunnelled through (ProxyJump): its connection is shared.
    pub via: Option<Arc<SshTransport>>,
}

impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("via", &self.via.as_ref().map(|v| v.host.clone()))
            .finish_non_exhaustive()
    }
}

/// Checks the server's key against known_hosts and remembers why it refused.
struct Verifier {
    host: String,
    opts: SshOptions,
    known: Arc<known_hosts::KnownHosts>,
    refusal: Arc<Mutex<Option<TransportError>>>,
}

impl Verifier {
    fn refuse(&self, e: TransportError) -> bool {
        if let Ok(mut r) = self.refusal.lock() {
            *r = Some(e);
        }
        false
    }

    fn files(&self) -> String {
        self.known.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        use known_hosts::Verdict;
        let (host, port) = (self.opts.address.as_str(), self.opts.port);
        let (verdict, plain) = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                (self.known.check_key(host, port, key), key.clone())
            }
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                (self.known.check_certificate(host, port, cert, now), PublicKey::from(cert.public_key().clone()))
            }
        };
        let fingerprint = plain.fingerprint(HashAlg::Sha256).to_string();
        match verdict {
            Verdict::Trusted { by } => {
                tracing::debug!(host = %self.host, %fingerprint, "host key trusted by {by}");
                Ok(true)
            }
            Verdict::Revoked { by } => Ok(self.refuse(TransportError::HostKeyMismatch {
                host: self.host.clone(),
                fingerprint: format!("{fingerprint}; REVOKED by {by}"),
            })),
            Verdict::Changed { recorded } => Ok(self.refuse(TransportError::HostKeyMismatch {
                host: self.host.clone(),
                fingerprint: format!("{fingerprint}; {recorded} has another key"),
            })),
            Verdict::Unknown { why } if self.opts.accept_new_host_keys && why.is_none() => {
                let Some(file) = self.opts.known_hosts.first() else {
                    return Ok(self.refuse(TransportError::UnknownHostKey { host: self.host.clone(), fingerprint }));
                };
                match russh::keys::known_hosts::learn_known_hosts_path(host, port, &plain, file) {
                    Ok(()) => {
                        tracing::warn!(host = %self.host, %fingerprint, "recorded a new host key in {}", file.display());
                        Ok(true)
                    }
                    Err(e) => Ok(self.refuse(TransportError::Protocol {
                        host: self.host.clone(),
                        message: format!("cannot record the host key in {}: {e}", file.display()),
                    })),
                }
            }
            Verdict::Unknown { why } => {
                let why = why.map(|w| format!("; {w}")).unwrap_or_default();
                let files = self.files();
                Ok(self.refuse(TransportError::UnknownHostKey {
                    host: self.host.clone(),
                    fingerprint: format!("{fingerprint}{why}; read {files}"),
                }))
            }
        }
    }
}

/// Per path, the stamp a file had when a batch listed it, and the contents read then.
type KeptReads = HashMap<String, (String, Arc<[u8]>)>;

/// A batch's digests by path (as [`Batch::metas`] holds them).
type DigestMap = HashMap<String, Option<FileMeta>>;

pub struct SshTransport {
    host: String,
    opts: SshOptions,
    /// The connection; replaced when it has closed (a restarted sshd, a dropped link): a long-lived
    /// process (`drift --every`) keeps one connection per host for as long as it holds.
    conn: tokio::sync::Mutex<Option<Arc<Handle<Verifier>>>>,
    /// Connections opened after the first (each a new handshake).
    reconnects: std::sync::atomic::AtomicUsize,
    channels: Semaphore,
    /// Exec sessions opened so far (for --verbose round-trip counts).
    sessions: std::sync::atomic::AtomicUsize,
    /// Whether the host's find and tar are GNU's, as a batch found out (`yes`, `no`, or empty for not
    /// known): later batches on this transport do not start them to ask again.
    host_tools: std::sync::Mutex<[&'static str; 2]>,
    /// Files batches read, with their stamp then (see BATCH_SCRIPT), once [`SshTransport::keep_reads`]
    /// was called: a long-lived process (`drift --every`) is sent only the files that changed.
    kept_reads: std::sync::Mutex<Option<KeptReads>>,
    /// The shell batches go to while reads are kept (see KEPT_SHELL); opened by the first such batch,
    /// dropped when it fails.
    kept_shell: tokio::sync::Mutex<Option<KeptShell>>,
}

/// A shell kept open on the host for a drift loop's batches (KEPT_SHELL), and what the transport
/// knows of the state its requests left.
struct KeptShell {
    channel: russh::Channel<russh::client::Msg>,
    /// The request before, when its reply was taken whole: the shell's scratch directory then holds
    /// what that request left, which the next may use.
    last: Option<KeptLast>,
}

struct KeptLast {
    token: KeptToken,
    /// The path list it was sent (see BATCH_SCRIPT).
    list: Vec<u8>,
    /// The digests it answered (and the shell remembers): what a `U` stands for next time; also what a
    /// probe that finds every file as it was then answers.
    metas: Arc<DigestMap>,
    /// The files as the last request that answered them in full did (with find's output then), for a
    /// probe to repeat.
    answered: Option<Answered>,
}

/// A full reply's file answers as a probe repeats them: while find prints every line the same, each
/// file is as it was then (a line holds size, mtime, inode, mode, owner and ctime: a write, a rename
/// over the file, a chmod or chown each change one).
struct Answered {
    found: Vec<u8>,
    contents: Vec<ReadEntry>,
    stamps: Vec<Stamp>,
}

impl Answered {
    /// What a full request would answer now: a file sent then is held by the transport at its stamp
    /// (`kept_reads`), so it is `U`.
    fn new(found: Vec<u8>, entries: &BatchEntries) -> Self {
        let (contents, stamps) = entries
            .contents
            .iter()
            .zip(&entries.stamps)
            .map(|(c, s)| match (c, s) {
                (Ok(Some(_)), Stamp::Read(_)) => (Ok(None), Stamp::Unchanged),
                (c, s) => (c.clone(), s.clone()),
            })
            .unzip();
        Answered { found, contents, stamps }
    }
}

/// A batched read as it is sent: its arguments and stdin, and what its reply is parsed for.
struct BatchRequest<'a> {
    args: Vec<&'a str>,
    list: &'a [u8],
    reads: &'a [String],
    metas: &'a [String],
    queries: usize,
}

/// A kept shell's exit status for a request naming path lists it does not hold.
const KEPT_LISTS_GONE: i32 = 98;

impl SshTransport {
    pub fn new(host: impl Into<String>, opts: SshOptions) -> Self {
        let permits = opts.max_channels.max(1);
        SshTransport {
            host: host.into(),
            opts,
            conn: tokio::sync::Mutex::new(None),
            reconnects: std::sync::atomic::AtomicUsize::new(0),
            channels: Semaphore::new(permits),
            sessions: std::sync::atomic::AtomicUsize::new(0),
            host_tools: std::sync::Mutex::new(["", ""]),
            kept_reads: std::sync::Mutex::new(None),
            kept_shell: tokio::sync::Mutex::new(None),
        }
    }

    /// Keep what batches read from now on, and ask the host for a file again only when its stamp
    /// changed. For a process that plans again and again; it holds the files in memory.
    pub fn keep_reads(&self) {
        self.kept_reads.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new);
    }

    /// A request's token (see [`KeptToken`]).
    fn token(&self) -> Result<KeptToken, TransportError> {
        KeptToken::random().map_err(|e| self.err_unreachable(format!("no random token: {e}")))
    }

    fn err_unreachable(&self, m: impl std::fmt::Display) -> TransportError {
        TransportError::Unreachable { host: self.host.clone(), message: m.to_string() }
    }

    async fn connect(&self) -> Result<Handle<Verifier>, TransportError> {
        let refusal = Arc::new(Mutex::new(None));
        let known = known_hosts::KnownHosts::read(&self.opts.known_hosts)
            .map_err(|m| TransportError::Protocol { host: self.host.clone(), message: m })?;
        for (place, why) in &known.skipped {
            tracing::warn!(host = %self.host, "known_hosts {place} skipped: {why}");
        }
        // Certificates are asked for only where an authority is listed for the host: otherwise a server
        // with a certificate would present it, and its plain key would have to be checked instead.
        let certificates: &'static [russh::keys::Algorithm] =
            if known.has_authority_for(&self.opts.address, self.opts.port) { CERTIFICATE_ALGORITHMS } else { &[] };
        let handler = Verifier {
            host: self.host.clone(),
            opts: self.opts.clone(),
            known: Arc::new(known),
            refusal: refusal.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            // Large windows keep uploads streaming at link speed.
            window_size: 16 * 1024 * 1024,
            maximum_packet_size: 65535,
            // AES-GCM is hardware-accelerated where AES-NI exists; chacha20 stays as a fallback.
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Borrowed(&[
                    russh::cipher::AES_128_GCM,
                    russh::cipher::AES_256_GCM,
                    russh::cipher::CHACHA20_POLY1305,
                    russh::cipher::AES_256_CTR,
                ]),
                host_key_certificates: std::borrow::Cow::Borrowed(certificates),
                ..Default::default()
            },
            ..Default::default()
        });
        let target = format!("{}:{}", self.opts.address, self.opts.port);
        let connecting = async {
            match &self.opts.via {
                None => {
                    let tcp = tokio::net::TcpStream::connect((self.opts.address.as_str(), self.opts.port))
                        .await
                        .map_err(|e| self.err_unreachable(format!("{target}: {e}")))?;
                    let stream = super::tcp::QuickAckStream::new(tcp).map_err(|e| self.err_unreachable(e))?;
                    Ok(client::connect_stream(config, stream, handler).await)
                }
                // ProxyJump: a direct-tcpip channel on the jump host's connection carries this one.
                Some(jump) => {
                    // Boxed: the jump host's connection may itself go through a jump host.
                    let through = Box::pin(jump.handle())
                        .await
                        .map_err(|e| self.err_unreachable(format!("through the jump host {}: {e}", jump.host)))?;
                    let ch = through
                        .channel_open_direct_tcpip(self.opts.address.clone(), u32::from(self.opts.port), "127.0.0.1", 0)
                        .await
                        .map_err(|e| {
                            self.err_unreachable(format!("{target} through the jump host {}: {e}", jump.host))
                        })?;
                    Ok(client::connect_stream(config, ch.into_stream(), handler).await)
                }
            }
        };
        let mut handle = match tokio::time::timeout(self.opts.connect_timeout, connecting).await {
            Err(_) => {
                return Err(TransportError::Timeout {
                    host: self.host.clone(),
                    what: format!("connecting to {target}"),
                    secs: self.opts.connect_timeout.as_secs(),
                })
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Err(e))) => {
                if let Some(r) = refusal.lock().ok().and_then(|mut r| r.take()) {
                    return Err(r);
                }
                return Err(self.err_unreachable(format!("{target}: {e}")));
            }
            Ok(Ok(Ok(h))) => h,
        };
        self.authenticate(&mut handle).await?;
        Ok(handle)
    }

    /// Tries the identity files, then (unless identities-only) the agent's keys and the default files.
    /// A key that cannot be used (a passphrase no agent answers for, a file that does not parse) is
    /// named in the error and in a warning, never skipped silently.
    async fn authenticate(&self, handle: &mut Handle<Verifier>) -> Result<(), TransportError> {
        let auth_err = |m: String| TransportError::Auth { host: self.host.clone(), message: m };
        let user = self.opts.user.clone();
        let rsa_hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
        let mut agent = russh::keys::agent::client::AgentClient::connect_env().await.ok();
        let agent_keys: Vec<PublicKey> = match agent.as_mut() {
            Some(a) => a
                .request_identities()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|id| id.public_key().into_owned())
                .collect(),
            None => Vec::new(),
        };
        let mut skipped: Vec<String> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let home = crate::config::load::home();
        let defaults: Vec<PathBuf> = if self.opts.identities_only || !self.opts.identities.is_empty() {
            Vec::new()
        } else {
            ["id_ed25519", "id_ecdsa", "id_rsa"].iter().map(|n| home.join(".ssh").join(n)).collect()
        };
        let explicit = self.opts.identities.len();
        for (i, path) in self.opts.identities.iter().chain(&defaults).enumerate() {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                // A default key that is not there is no key; a named one that is not there is said.
                Err(e) if i >= explicit && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    skipped.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match russh::keys::decode_secret_key(&text, None) {
                Ok(key) => {
                    let r = handle
                        .authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash))
                        .await
                        .map_err(|e| auth_err(e.to_string()))?;
                    if r.success() {
                        return Ok(());
                    }
                    refused.push(path.display().to_string());
                }
                Err(russh::keys::Error::KeyIsEncrypted) => {
                    // The agent may hold it: use the agent's copy of this very key.
                    let public = russh::keys::PrivateKey::from_openssh(&text).ok().map(|k| k.public_key().clone());
                    match (public.filter(|p| agent_keys.iter().any(|a| a.key_data() == p.key_data())), agent.as_mut()) {
                        (Some(p), Some(a)) => {
                            if let Ok(r) = handle.authenticate_publickey_with(user.clone(), p, rsa_hash, a).await {
                                if r.success() {
                                    return Ok(());
                                }
                            }
                            refused.push(format!("{} (through ssh-agent)", path.display()));
                        }
                        _ => skipped
                            .push(format!("{} is protected by a passphrase and no ssh-agent holds it", path.display())),
                    }
                }
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
        if !self.opts.identities_only {
            if let Some(a) = agent.as_mut() {
                for public in agent_keys {
                    if let Ok(r) = handle.authenticate_publickey_with(user.clone(), public, rsa_hash, a).await {
                        if r.success() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        for s in &skipped {
            tracing::warn!(host = %self.host, "key skipped: {s}");
        }
        let mut why = Vec::new();
        if !refused.is_empty() {
            why.push(format!("refused: {}", refused.join(", ")));
        }
        if !skipped.is_empty() {
            why.push(format!("skipped: {}", skipped.join("; ")));
        }
        let tried = if self.opts.identities_only { "identity files" } else { "identity files, ssh-agent, ~/.ssh" };
        Err(auth_err(format!(
            "no key was accepted for {}@{} ({tried}){}",
            self.opts.user,
            self.host,
            if why.is_empty() { String::new() } else { format!("; {}", why.join("; ")) }
        )))
    }

    /// The open connection, or a new one if there is none or it has closed.
    async fn handle(&self) -> Result<Arc<Handle<Verifier>>, TransportError> {
        let mut conn = self.conn.lock().await;
        if let Some(h) = conn.as_ref().filter(|h| !h.is_closed()) {
            return Ok(h.clone());
        }
        if conn.is_some() {
            self.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(host = %self.host, "the connection closed; connecting again");
        }
        let h = Arc::new(self.connect().await?);
        *conn = Some(h.clone());
        Ok(h)
    }

    /// A session channel. A connection found closed while opening it is replaced once: nothing ran on
    /// it, so trying again on a fresh one is safe.
    async fn session(&self) -> Result<russh::Channel<russh::client::Msg>, TransportError> {
        let handle = self.handle().await?;
        match handle.channel_open_session().await {
            Ok(ch) => Ok(ch),
            Err(_) if handle.is_closed() => {
                self.handle().await?.channel_open_session().await.map_err(|e| self.err_unreachable(e))
            }
            Err(e) => Err(self.err_unreachable(e)),
        }
    }

    /// How many times this transport connected again after its first connection.
    pub fn reconnects(&self) -> usize {
        self.reconnects.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Run a shell line, feeding `stdin` (streamed) to it.
    async fn run(
        &self,
        line: &str,
        stdin: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        shown: &str,
        bound: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let _permit = self.channels.acquire().await.map_err(|e| self.err_unreachable(e))?;
        self.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let work = async {
            let ch = self.session().await?;
            ch.exec(true, line).await.map_err(|e| self.err_unreachable(e))?;
            let (mut rd, wr) = ch.split();
            // Send stdin while reading what comes back: if the remote command stops reading (it failed,
            // e.g. on a full disk) and exits, we stop sending instead of waiting on a window forever.
            let send = async {
                if let Some(r) = stdin {
                    // Large chunks as owned buffers: russh splits them into packets without copying
                    // through an 8 KiB AsyncWrite path. Memory stays at one chunk.
                    loop {
                        let mut chunk = Vec::with_capacity(UPLOAD_CHUNK);
                        let n = (&mut *r)
                            .take(UPLOAD_CHUNK as u64)
                            .read_to_end(&mut chunk)
                            .await
                            .map_err(|e| e.to_string())?;
                        if n == 0 {
                            break;
                        }
                        wr.data_bytes(chunk).await.map_err(|e| e.to_string())?;
                        groundwork_sdk::transport::note_sent(n as u64);
                    }
                }
                wr.eof().await.map_err(|e| e.to_string())
            };
            tokio::pin!(send);
            let mut sending = true;
            let mut send_error = None;
            let mut out = ExecOutput { code: -1, ..Default::default() };
            loop {
                tokio::select! {
                    sent = &mut send, if sending => {
                        sending = false;
                        send_error = sent.err();
                    }
                    msg = rd.wait() => match msg {
                        None => break,
                        Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                        Some(ChannelMsg::ExtendedData { data, .. }) => out.stderr.extend_from_slice(&data),
                        Some(ChannelMsg::ExitStatus { exit_status }) => out.code = exit_status as i32,
                        Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                            out.code = 128;
                            out.stderr.extend_from_slice(format!("killed by signal {signal_name:?}").as_bytes());
                        }
                        Some(_) => {}
                    }
                }
            }
            if out.code == -1 {
                if let Some(e) = send_error {
                    return Err(self.err_unreachable(format!("sending data: {e}")));
                }
            }
            // Where a run's time goes, host by host (`RUST_LOG=groundwork=debug`).
            tracing::debug!(
                host = %self.host,
                what = %shown.chars().take(72).collect::<String>().replace('\n', " "),
                ms = started.elapsed().as_millis() as u64,
                code = out.code,
                stdout_bytes = out.stdout.len(),
                "exec"
            );
            Ok(out)
        };
        tokio::time::timeout(bound, work).await.map_err(|_| TransportError::Timeout {
            host: self.host.clone(),
            what: shown.to_string(),
            secs: bound.as_secs(),
        })?
    }

    /// A batch through the kept shell, opened first if there is none, parsed. What the request before
    /// left is used: its path lists when they are the same (sent again if the shell lacks them), its
    /// digests where the shell answers `U`. With the same lists, a probe goes first (find's lines only):
    /// while they are the last full reply's, that reply's answers serve; else the full request follows.
    /// Any failure drops the shell (the next batch opens another); the caller may run the batch as an
    /// exec of its own instead.
    async fn kept_batch(&self, batch: &BatchRequest<'_>, bound: Duration) -> Result<BatchEntries, TransportError> {
        let mut slot = self.kept_shell.lock().await;
        let work = async {
            let last = slot.as_ref().and_then(|k| k.last.as_ref());
            let mut same = last.is_some_and(|l| l.list == batch.list);
            // The host's find must be GNU's for the shell to print its lines (gw_find).
            let gnu_find = matches!(self.host_tools.lock().unwrap_or_else(|e| e.into_inner())[0], "yes" | "f0");
            let mut probe = same && gnu_find && last.is_some_and(|l| l.answered.is_some());
            loop {
                let stdin: &[u8] = match (probe, same) {
                    (true, _) => b"probe\n",
                    (false, true) => b"same\n",
                    (false, false) => batch.list,
                };
                let (token, out) = self.kept_exchange(&mut slot, &batch.args, stdin).await?;
                let shell = slot.as_mut().ok_or_else(|| self.err_unreachable("the kept shell ended"))?;
                if same && out.code == KEPT_LISTS_GONE {
                    // Cannot happen while the shell and the transport agree; start afresh.
                    shell.last = None;
                    (same, probe) = (false, false);
                    continue;
                }
                let mut entries = self.take_batch(out, batch, &token)?;
                if entries.probe != probe {
                    return Err(self.io("batched read", "the kept shell answered another kind of request"));
                }
                if probe {
                    let last = shell.last.as_mut().ok_or_else(|| self.err_unreachable("the kept shell ended"))?;
                    // The probe's reply was taken whole: the shell's state is the one it names.
                    last.token = token;
                    match (&last.answered, &entries.found) {
                        (Some(a), Some(found)) if a.found == *found => {
                            entries.contents = a.contents.clone();
                            entries.stamps = a.stamps.clone();
                            entries.digest_map = Some(last.metas.clone());
                            return Ok(entries);
                        }
                        // Something changed: asked again in full, on the same lists.
                        _ => {
                            probe = false;
                            continue;
                        }
                    }
                }
                let (held, answered) = match shell.last.take() {
                    Some(l) => (Some(l.list), l.metas),
                    None => (None, Arc::default()),
                };
                // The list the shell holds now: the one it held when it was told `same` (not copied again).
                let list = match held {
                    Some(l) if same => l,
                    _ => batch.list.to_vec(),
                };
                for (p, d) in batch.metas.iter().zip(entries.digests.iter_mut()) {
                    if *d == MetaAnswer::Unchanged {
                        *d = match answered.get(p) {
                            Some(Some(m)) => MetaAnswer::Found(Ok(Some(m.clone()))),
                            _ => MetaAnswer::Found(Err("not kept".into())),
                        };
                    }
                }
                let metas = Arc::new(self.digest_map(batch.metas, std::mem::take(&mut entries.digests)));
                entries.digest_map = Some(metas.clone());
                let answered = entries.found.take().map(|found| Answered::new(found, &entries));
                shell.last = Some(KeptLast { token, list, metas, answered });
                return Ok(entries);
            }
        };
        let result = match tokio::time::timeout(bound, work).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                host: self.host.clone(),
                what: "batched read (kept shell)".into(),
                secs: bound.as_secs(),
            }),
        };
        if result.is_err() {
            if let Some(shell) = slot.take() {
                let _ = shell.channel.close().await;
                self.channels.add_permits(1);
            }
        }
        result
    }

    /// One request to the kept shell (opened first if there is none), naming the request before whose
    /// reply was taken whole; its token and the reply.
    async fn kept_exchange(
        &self,
        slot: &mut Option<KeptShell>,
        args: &[&str],
        stdin: &[u8],
    ) -> Result<(KeptToken, ExecOutput), TransportError> {
        let shell = match slot {
            Some(shell) => shell,
            None => {
                // The shell holds its channel for as long as it lives: one fewer for other commands.
                self.channels.acquire().await.map_err(|e| self.err_unreachable(e))?.forget();
                let opened = async {
                    let ch = self.session().await?;
                    ch.exec(true, KEPT_SHELL).await.map_err(|e| self.err_unreachable(e))?;
                    ch.data_bytes(KEPT_PREAMBLE.as_bytes().to_vec()).await.map_err(|e| self.err_unreachable(e))?;
                    Ok::<_, TransportError>(ch)
                };
                match opened.await {
                    Ok(channel) => slot.insert(KeptShell { channel, last: None }),
                    Err(e) => {
                        self.channels.add_permits(1);
                        return Err(e);
                    }
                }
            }
        };
        let token = self.token()?;
        self.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let prior = shell.last.as_ref().map(|l| &l.token);
        let ch = &mut shell.channel;
        ch.data_bytes(kept_request(&token, prior, args, stdin)).await.map_err(|e| self.err_unreachable(e))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            match ch.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    stdout.extend_from_slice(&data);
                    if let Some((body, code)) = kept_reply(token.as_str(), &stdout) {
                        let stdout = body.to_vec();
                        tracing::debug!(host = %self.host, what = "batched read (kept shell)",
                            ms = started.elapsed().as_millis() as u64, code, stdout_bytes = stdout.len(), "exec");
                        return Ok((token, ExecOutput { code, stdout, stderr }));
                    }
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => stderr.extend_from_slice(&data),
                Some(ChannelMsg::Eof | ChannelMsg::Close | ChannelMsg::ExitStatus { .. }) | None => {
                    return Err(self.err_unreachable("the kept shell ended"));
                }
                Some(_) => {}
            }
        }
    }

    /// A batch's reply, checked and parsed; what it learned of the host's tools is kept.
    fn take_batch(
        &self,
        out: ExecOutput,
        batch: &BatchRequest<'_>,
        token: &KeptToken,
    ) -> Result<BatchEntries, TransportError> {
        if !out.success() {
            return Err(self.io("batched read", out.message()));
        }
        if let Some(tools) = parse_host_tools(&out.stdout) {
            *self.host_tools.lock().unwrap_or_else(|e| e.into_inner()) = tools;
        }
        let first = batch.reads.first().or(batch.metas.first()).map_or("batched read", String::as_str);
        parse_batch_output(batch.reads, batch.metas, batch.queries, token.as_str(), &out.stdout)
            .map_err(|m| self.io(first, format!("batched read: {m}")))
    }

    /// A batch's digests by path; entries the host could not give are left out (the provider's own read
    /// asks again).
    fn digest_map(&self, metas: &[String], digests: Vec<MetaAnswer>) -> DigestMap {
        let mut map = HashMap::with_capacity(metas.len());
        for (p, d) in metas.iter().zip(digests) {
            match d {
                MetaAnswer::Found(Ok(m)) => drop(map.insert(p.clone(), m)),
                MetaAnswer::Found(Err(why)) => {
                    tracing::debug!(host = %self.host, path = %p, "digest left out of the batch: {why}")
                }
                MetaAnswer::Unchanged => {
                    tracing::debug!(host = %self.host, path = %p, "digest left out of the batch: not kept")
                }
            }
        }
        map
    }

    /// `sh -c SCRIPT NAME ARGS...`, every value quoted.
    fn script_line(script: &str, name: &str, args: &[&str]) -> String {
        let mut s = format!("sh -c {} {}", shell_quote(script), shell_quote(name));
        for a in args {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        s
    }

    fn io(&self, path: &str, m: impl std::fmt::Display) -> TransportError {
        TransportError::Io { host: self.host.clone(), path: path.to_string(), message: m.to_string() }
    }

    /// Paths as the list scripts take them on stdin: one per line. A path holding a line break cannot
    /// be listed (no inventory value can produce one: see `RemotePath`), and is refused.
    fn path_list<'a>(&self, paths: impl IntoIterator<Item = &'a String>) -> Result<Vec<u8>, TransportError> {
        let mut list = Vec::new();
        for p in paths {
            if p.contains(['\n', '\r']) {
                return Err(self.io(p, "a path with a line break cannot be read"));
            }
            list.extend_from_slice(p.as_bytes());
            list.push(b'\n');
        }
        Ok(list)
    }

    /// Write `data` to `path` atomically through WRITE_SCRIPT: `size` bytes, then (with `sha256`) a
    /// line that must equal it for the file to be installed.
    pub async fn write_stream(
        &self,
        path: &str,
        data: &mut (dyn AsyncRead + Unpin + Send),
        opts: &WriteOptions,
        sha256: &str,
        size: Option<u64>,
        bound: Duration,
    ) -> Result<(), TransportError> {
        let out = self.run_write(path, data, opts, sha256, size, ("", &[]), bound).await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.io(path, out.message()))
        }
    }

    /// WRITE_SCRIPT's run: `checked` is the candidate's name and the check lines, for a checked write.
    #[allow(clippy::too_many_arguments)]
    async fn run_write(
        &self,
        path: &str,
        data: &mut (dyn AsyncRead + Unpin + Send),
        opts: &WriteOptions,
        sha256: &str,
        size: Option<u64>,
        (candidate, checks): (&str, &[String]),
        bound: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let mode = opts.mode.map(|m| format!("{m:o}")).unwrap_or_default();
        let owner = opts.owner.clone().unwrap_or_default();
        let group = opts.group.clone().unwrap_or_default();
        let size = size.map(|n| n.to_string()).unwrap_or_default();
        let within = opts.within.clone().unwrap_or_default();
        let mut args: Vec<&str> = vec![path, &mode, &owner, &group, sha256, &size, &within, candidate];
        args.extend(checks.iter().map(String::as_str));
        let line = Self::script_line(WRITE_SCRIPT, "groundwork-write", &args);
        self.run(&line, Some(data), &format!("write {path}"), bound).await
    }
}

/// The bytes of `inner`, then the line `trailer` makes of how many bytes came (nothing but the data
/// when it returns an empty line).
struct Trailer<R, F> {
    inner: R,
    seen: u64,
    trailer: Option<F>,
    pending: Vec<u8>,
}

impl<R, F: FnOnce(u64) -> Vec<u8>> Trailer<R, F> {
    fn new(inner: R, trailer: F) -> Self {
        Trailer { inner, seen: 0, trailer: Some(trailer), pending: Vec::new() }
    }
}

impl<R: AsyncRead + Unpin, F: FnOnce(u64) -> Vec<u8> + Unpin> AsyncRead for Trailer<R, F> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        // No room to read into: a 0-byte read here would look like the end of the source.
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.trailer.is_some() {
            let before = buf.filled().len();
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {
                    this.seen += (buf.filled().len() - before) as u64;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {
                    if let Some(make) = this.trailer.take() {
                        this.pending = make(this.seen);
                    }
                }
                other => return other,
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.drain(..n);
        Poll::Ready(Ok(()))
    }
}

/// A script that uses the list functions (`list_functions!`): the functions, then the script.
macro_rules! concat_lists {
    ($script:literal) => {
        concat!(list_functions!(), $script)
    };
}

/// Atomic write: temp file in the target's directory, size and digest checks, mode, owner and SELinux
/// label preserved (or mode/owner set), fsync, rename. $1 path, $2 octal mode, $3 owner, $4 group,
/// $5 expected sha256 (then a digest line follows the data), $6 size (both may be empty) and $7 the
/// directory the file must stay in (may be empty): if a symlink on the way leads out of it, nothing
/// is written. The digest is not computed again on the host: SSH's MAC already guarantees that what
/// arrives is what was sent, and hashing every byte again on the host cost about 40% of the upload
/// throughput.
const WRITE_SCRIPT: &str = r#"set -e
p=$1; mode=$2; owner=$3; group=$4; want=$5; size=$6; within=$7; candidate=$8
shift 8
d=$(dirname -- "$p")
# Inside `within` (both sides resolved): the deepest directory that exists on the way resolves below
# it; or `within` is not there yet and that directory is one on its own path.
inside() {
  r=$(realpath -m -- "$within"); a=$1
  while [ ! -e "$a" ]; do a=$(dirname -- "$a"); done
  ra=$(realpath -e -- "$a")
  case "$ra/" in "$r"/*) return 0;; esac
  case "$within/" in "$a"/*) case "$r/" in "$ra"/*) return 0;; esac;; esac
  return 1
}
if [ -n "$within" ] && ! inside "$d"; then
  echo "refusing to write $p: the way there leads out of $within (through a symlink)" >&2; exit 3
fi
mkdir -p -- "$d"
if [ -n "$within" ] && ! inside "$d"; then
  echo "refusing to write $p: $d resolves outside $within" >&2; exit 3
fi
# A file with checkers is written as its candidate (the name they are given), and renamed into place
# only once every check (the remaining arguments, one shell line each) accepts it.
if [ -n "$candidate" ]; then t=$candidate; rm -f -- "$t"; : > "$t"; else t=$(mktemp -- "$d/.groundwork-XXXXXX"); fi
trap 'rm -f -- "$t"' EXIT
if [ -n "$size" ]; then
  # Exactly $size bytes (dd leaves what follows on stdin), then, for an upload, the planned digest,
  # which the sender only sends if its source was not touched while it was read.
  dd of="$t" bs=1M count="$size" iflag=count_bytes,fullblock status=none
else
  cat > "$t"
fi
# What reached the disk, not only what went through the pipe.
have=$(stat -c %s -- "$t")
if [ -n "$size" ] && [ "$have" != "$size" ]; then echo "short write: $have of $size bytes on disk" >&2; exit 3; fi
if [ -n "$want" ]; then
  IFS= read -r sent || sent=
  if [ "$sent" != "$want" ]; then echo "the source changed during the upload: sent ${sent:-nothing}, planned $want" >&2; exit 3; fi
fi
if [ -z "$mode" ]; then
  if [ -e "$p" ]; then mode=$(stat -c %a -- "$p"); else mode=644; fi
fi
chmod "$mode" "$t"
if [ -e "$p" ] && [ -z "$owner$group" ]; then chown --reference="$p" "$t" 2>/dev/null || true; fi
# Keep the SELinux label of the file being replaced (a temp file gets the directory's default).
if [ -e "$p" ]; then chcon --reference="$p" "$t" 2>/dev/null || true; fi
if [ -n "$owner" ]; then chown "$owner" "$t"; fi
if [ -n "$group" ]; then chgrp "$group" "$t"; fi
sync -- "$t" 2>/dev/null || true
for check in "$@"; do
  out=$(sh -c "$check" 2>&1) || { printf 'groundwork-check-failed %s\n%s\n' "$check" "$out"; exit 4; }
done
mv -f -- "$t" "$p"
trap - EXIT
# The digest is known: recorded in the host's digest index (see list_functions), so the next plan need
# not read the file again. An append of one short line; a lost one only costs a re-read.
if [ -n "$want" ]; then
  c=/var/lib/groundwork/digest-index
  k=$(find "$p" -maxdepth 0 -printf '%s %T@ %i' 2>/dev/null) && [ -n "$k" ] &&
    mkdir -p "${c%/*}" 2>/dev/null && printf '%s %s|%s\n' "$want" "$k" "$p" >> "$c" 2>/dev/null || true
fi
"#;

/// Remove the temp files interrupted writes left (groundwork_sdk::transport::LEFTOVER_PATTERNS) in the
/// directories given; print `<bytes> <path>` for each. Regular files only, never through a symlink.
const SWEEP_SCRIPT: &str = r#"for d in "$@"; do
  [ -d "$d" ] || continue
  for f in "$d"/.groundwork-?????? "$d"/.groundwork-lock-?????? "$d"/.*.groundwork-candidate; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    n=$(stat -c %s -- "$f") && rm -f -- "$f" && printf '%s %s
' "$n" "$f"
  done
done
exit 0
"#;

/// Path lists travel on stdin, one path per line (a path holding a newline is refused before it
/// gets here), and live in a scratch directory on the host: never on the command line, which sshd
/// hands to the shell as one argument that Linux caps at 128 KiB (2000 nodes' files exceed it).
///
/// `gw_find LIST OUT [LIST0]`: one GNU find for every path of LIST; for each one that exists a line
/// `<type> <size> <mtime> <inode> <mode> <uid> <gid> r|- <ctime>|<path>` (symlinks followed: a
/// broken one has type `l`; `r` when readable). Paths that do not exist have no line. `gw_read` and
/// `gw_meta` use DIR/found when it is there (the batch states the paths of both at once: the files
/// provider both reads and digests its text files), else they state their own list.
///
/// `gw_read LIMIT LIST DIR`: per path of LIST a line, `M` (missing), `E <why>` or `F`; then `T`, one
/// tar stream (512-byte records; symlinks and hard links followed, so each member holds its file's
/// bytes) of the `F` files, in order; then `R <tar's exit status>`. With LIMIT (KiB), a larger file is
/// `E too large for a batch`. A fixed handful of processes whatever the number of paths (two per file
/// cost ~4.6 s for 1000 files here). Without GNU find and tar: `P`, then per path `F <size>` and the
/// bytes, `M`, or `E <why>`.
///
/// `gw_meta LIST DIR [SEEN [PRIOR]]`: per path `F <sha256> <size> <octal mode> <owner> <group>`, `M`
/// or `E <why>`. Digests come from the host's digest index (below) while it holds; the others are
/// computed by one OpenSSL (SHA instructions: ~1 GB/s here against ~270 MB/s for coreutils' sha256sum)
/// or sha256sum for all of them, and the index is rewritten. Without GNU find: a stat and a digest per
/// file, no index. With SEEN (a kept shell's): the `F` answers are remembered there with the line
/// find printed for the file (and for /etc/passwd and /etc/group, when DIR/found has them); with
/// PRIOR too, SEEN holds the answers of the request before, and a file whose line is the same as
/// then, the account files too, is answered `U`: the transport still holds that answer.
///
/// The digest index, /var/lib/groundwork/digest-index, is where the host keeps the digests it
/// computed: one line per file, `<sha256> <size> <mtime> <inode>|<path>` (size, mtime to the
/// nanosecond and inode as `find -printf '%s %T@ %i'` prints them). An entry is
/// believed while those three are unchanged, so a no-change plan does not re-read large images. Not
/// ctime: a relabel or chmod changes it without touching content, and would force a re-read of every
/// image after each apply. One file, read by one awk, instead of a file per path: naming a per-path
/// entry cost a `sha256sum` of the path, three processes per file.
macro_rules! list_functions {
    () => {
        r#"# `yes` for GNU find, `f0` for one that also takes -files0-from (findutils 4.9 and later), else `no`.
gnu_find() {
  [ -n "${gw_gnu:-}" ] || case $(find --version 2>/dev/null) in
    *"GNU findutils) "[0-3].*|*"GNU findutils) 4."[0-8].*) gw_gnu=yes ;; *"GNU findutils) "*) gw_gnu=f0 ;;
    *GNU*) gw_gnu=yes ;; *) gw_gnu=no ;; esac
  [ "$gw_gnu" != no ]
}
gnu_tar() {
  [ -n "${gw_gtar:-}" ] || case $(tar --version 2>/dev/null) in *"GNU tar"*) gw_gtar=yes ;; *) gw_gtar=no ;; esac
  [ "$gw_gtar" = yes ]
}
# Only called where find is GNU find. Owners and groups as numbers: a name costs find an open and read
# of /etc/passwd (or /etc/group) per file, 10 ms a tick for 1000 files here; gw_meta names them.
# With LIST0 (the same paths, NUL-terminated) and a find that reads its starting points from a file
# (findutils 4.9): find alone; else its xargs (the same findutils), which splits on newlines itself.
gw_find() {
  if [ "$gw_gnu" = f0 ] && [ -n "${3:-}" ]; then
    find -L -files0-from "$3" -maxdepth 0 \( -readable -printf "%y %s %T@ %i %m %U %G r %C@|%p\n" \) -o -printf "%y %s %T@ %i %m %U %G - %C@|%p\n" > "$2" 2>/dev/null
    return 0
  fi
  xargs -d '\n' -r sh -c 'exec find -L "$@" -maxdepth 0 \( -readable -printf "%y %s %T@ %i %m %U %G r %C@|%p\n" \) -o -printf "%y %s %T@ %i %m %U %G - %C@|%p\n"' gw-find < "$1" > "$2" 2>/dev/null
}
gw_read() {
  limit=$1 list=$2 dir=$3 known=${4:-/dev/null}
  [ -s "$list" ] || { printf 'P\n'; return 0; }
  if gnu_find && gnu_tar; then
    [ -f "$dir/found" ] || gw_find "$list" "$dir/found"
    awk -v limit="$limit" -v found="$dir/found" -v members="$dir/members" -v known="$known" '
      BEGIN { while ((getline l < found) > 0) { i = index(l, "|"); info[substr(l, i + 1)] = substr(l, 1, i - 1) }
              while ((getline l < known) > 0) { i = index(l, "|"); seen[substr(l, i + 1)] = substr(l, 1, i - 1) }
              printf "" > members }
      { if (!($0 in info)) { print "M"; next }
        split(info[$0], f, " ")
        stamp = f[2] " " f[3] " " f[4] " " f[9]
        if (f[1] == "l") print "M"
        else if (f[1] != "f") print "E not a regular file"
        else if (f[8] != "r") print "E permission denied"
        else if (limit != "" && f[2] + 0 > limit * 1024) print "E too large for a batch"
        else if (($0 in seen) && seen[$0] == stamp) print "U"
        else { print "F " stamp; print $0 > members } }' "$list"
    # Nothing to send (a drift loop's files unchanged): no tar to start.
    [ -s "$dir/members" ] || { printf 'N\n'; return; }
    printf 'T\n'
    tar -c -h --hard-dereference --no-unquote -b 1 -f - -T "$dir/members" 2>/dev/null
    printf 'R %s\n' "$?"
    return
  fi
  printf 'P\n'
  while IFS= read -r p; do
    if [ ! -e "$p" ]; then printf 'M\n'
    elif [ ! -f "$p" ]; then printf 'E not a regular file\n'
    elif [ ! -r "$p" ]; then printf 'E permission denied\n'
    else sz=$(stat -L -c %s -- "$p")
      if [ -n "$limit" ] && [ "$sz" -gt $((limit * 1024)) ]; then printf 'E too large for a batch\n'
      else printf 'F %s\n' "$sz"; cat -- "$p"; fi
    fi
  done < "$list"
}
gw_meta() {
  list=$1 dir=$2 seen=${3:-} prior=${4:-} c=/var/lib/groundwork/digest-index
  [ -s "$list" ] || return 0
  if command -v openssl >/dev/null 2>&1; then h='openssl dgst -sha256 -r'; else h=sha256sum; fi
  if ! gnu_find; then
    while IFS= read -r p; do
      s=
      if [ ! -e "$p" ]; then printf 'M\n'; continue; fi
      if [ ! -f "$p" ]; then printf 'E not a regular file\n'; continue; fi
      st=$(stat -L -c '%s %a %U %G' -- "$p") && s=$($h "$p" 2>&1) && printf 'F %s %s\n' "${s%% *}" "$st" ||
        printf 'E %s\n' "$(printf %s "$s" | tr '\n' ' ')"
    done < "$list"
    return
  fi
  [ -f "$dir/found" ] || gw_find "$list" "$dir/found"
  # The index is rewritten only where it can be (a user without root may have no /var/lib/groundwork).
  new=; if { [ -d "${c%/*}" ] || mkdir -p "${c%/*}" 2>/dev/null; } && [ -w "${c%/*}" ]; then new=$c.$$; fi
  GW_HASH="tr '\n' '\0' < '$dir/hash' | xargs -0 $h 2>/dev/null" awk -v found="$dir/found" -v index_file="$c" -v hash="$dir/hash" -v new="$new" -v seen="$seen" -v prior="$prior" '
    function names(ids, db, into, mine,   cmd, l, a, q, id) {
      # Local accounts from the files; any other id (a directory service) from one getent for all.
      while ((getline l < ("/etc/" db)) > 0) { split(l, a, ":"); if (!(a[3] in into)) { into[a[3]] = a[1]; mine[a[3]] } }
      close("/etc/" db); q = ""
      for (id in ids) if (!(id in into)) q = q " " id
      if (q != "") { cmd = "getent " db q " 2>/dev/null"; while ((cmd | getline l) > 0) { split(l, a, ":"); into[a[3]] = a[1] }; close(cmd) }
      for (id in ids) if (!(id in into)) into[id] = id }
    function line_of(p) { return (p in info) ? info[p] : "-" }
    BEGIN { while ((getline l < found) > 0) { i = index(l, "|"); info[substr(l, i + 1)] = substr(l, 1, i - 1) }
            # A kept shell remembers its answers (SEEN): those of the request before hold for a file
            # whose line from find is the same, while the account files are too. Only a whole SEEN
            # (it ends with @@end) is believed.
            ids = line_of("/etc/passwd") " " line_of("/etc/group")
            if (seen != "" && prior != "") {
              while ((getline l < seen) > 0) {
                if (l == "@@end") { whole = 1; break }
                if (!begun) { begun = 1; if (l != "@@ids " ids) break; continue }
                i = index(l, "|"); was[substr(l, i + 1)] = substr(l, 1, i - 1) }
              close(seen)
              if (!whole) split("", was) }
            split("", uids); split("", gids) }
    { n++; path[n] = $0
      if (!($0 in info)) { out[n] = "M"; gone[$0]; next }
      split(info[$0], f, " ")
      if (f[1] == "l") { out[n] = "M"; next }
      if (f[1] != "f") { out[n] = "E not a regular file"; next }
      if (($0 in was) && was[$0] == info[$0]) { out[n] = "U"; next }
      todo++ }
    END {
      # The index is read only for files not answered otherwise: a drift loop'"'"'s unchanged files
      # need none of it. (The entry of a file gone is dropped at the next read.)
      if (todo) {
        printf "" > hash
        while ((getline l < index_file) > 0) { lines++; i = index(l, "|"); p = substr(l, i + 1)
          if (!(p in cached)) entries++; cached[p] = substr(l, 1, i - 1) }
        close(index_file)
        for (p in gone) if (p in cached) { delete cached[p]; changed = 1 }
        for (i = 1; i <= n; i++) {
          if (i in out) continue
          p = path[i]; split(info[p], f, " "); key = f[2] " " f[3] " " f[4]
          if (p in cached) { split(cached[p], e, " "); if (e[2] " " e[3] " " e[4] == key) { sum[p] = e[1]; continue } }
          if (!(p in want)) { want[p] = key; print p > hash; wanted++ } }
        close(hash)
        if (wanted) { cmd = ENVIRON["GW_HASH"]
          # sha256sum: "<hex>  <path>" or "<hex> *<path>"; openssl -r: "<hex> *<path>".
          while ((cmd | getline l) > 0) { p = substr(l, 67); if (p in want) { sum[p] = substr(l, 1, 64); cached[p] = sum[p] " " want[p]; changed = 1 } }
          close(cmd) }
        for (i = 1; i <= n; i++) if (!(i in out)) { split(info[path[i]], f, " "); uids[f[6]]; gids[f[7]] }
        names(uids, "passwd", user, ulocal); names(gids, "group", group, glocal) }
      if (seen != "") print "@@ids " ids > seen
      for (i = 1; i <= n; i++) {
        p = path[i]
        if (i in out) { print out[i]; if (out[i] == "U" && seen != "") print info[p] "|" p > seen; continue }
        split(info[p], f, " ")
        if (!(p in sum)) { print "E could not be read"; continue }
        print "F", sum[p], f[2], f[5], user[f[6]], group[f[7]]
        # Names a directory service gave are asked again each time: its accounts are not in the files.
        if (seen != "" && (f[6] in ulocal) && (f[7] in glocal)) print info[p] "|" p > seen }
      if (seen != "") { print "@@end" > seen; close(seen) }
      if (new != "" && (changed || lines > 2 * entries + 64)) { for (p in cached) print cached[p] "|" p > new; close(new) } }' "$list"
  [ -n "$new" ] && [ -f "$new" ] && mv -f "$new" "$c"
  return 0
}
# Scratch files in memory where there is a tmpfs: a batch makes a few dozen, and creating files on a
# disk's file system cost about 4 ms of a batch here. Removed however the batch ends: also when the
# connection goes (its next write raises SIGPIPE) or sshd or a user signals it.
scratch() {
  t=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d 2>/dev/null) ||
    { echo "no temporary directory on the host (mktemp -d failed)" >&2; exit 97; }
  gw_cleanup 'rm -rf "$t"'
}
gw_cleanup() {
  trap "$1" EXIT
  trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
}
"#
    };
}

/// Batched read of every path on stdin (`gw_read`'s output).
const READ_SCRIPT: &str = concat_lists!(
    r#"scratch; cat > "$t/reads"
gw_read "" "$t/reads" "$t"
exit 0
"#
);

/// Batched digests of every path on stdin (`gw_meta`'s output).
const META_SCRIPT: &str = concat_lists!(
    r#"scratch; cat > "$t/metas"
gw_meta "$t/metas" "$t"
exit 0
"#
);

/// One file as the read script reported it: contents, missing, or the host's reason.
pub type ReadEntry = Result<Option<Vec<u8>>, String>;

/// What the host said of a file's stamp (size, mtime, inode, ctime) in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// Not said: per-file reads, a missing file, an error.
    Unknown,
    /// Read whole; this was its stamp when it was listed (before it was read).
    Read(String),
    /// Still at the stamp the transport sent: its contents were not sent again.
    Unchanged,
}

/// Parse READ_SCRIPT output.
pub fn parse_read_output(paths: &[String], out: &[u8]) -> Result<Vec<ReadEntry>, String> {
    parse_read_prefix(paths, out).map(|(entries, _, _)| entries)
}

/// The first line of `out`, and what follows it.
fn line_of<'a>(out: &'a [u8], what: &str) -> Result<(String, &'a [u8]), String> {
    let nl = out.iter().position(|b| *b == b'\n').ok_or_else(|| format!("{what}: truncated output"))?;
    let line = std::str::from_utf8(&out[..nl]).map_err(|_| format!("{what}: garbled header"))?.to_string();
    Ok((line, &out[nl + 1..]))
}

/// Parse `gw_read` entries for `paths` at the start of `out`; also return what follows them.
type ReadPrefix<'a> = (Vec<ReadEntry>, Vec<Stamp>, &'a [u8]);
fn parse_read_prefix<'a>(paths: &[String], out: &'a [u8]) -> Result<ReadPrefix<'a>, String> {
    if let Some(each) = out.strip_prefix(b"P\n") {
        let (entries, rest) = parse_read_each(paths, each)?;
        return Ok((entries, vec![Stamp::Unknown; paths.len()], rest));
    }
    let mut rest = out;
    let mut headers = Vec::with_capacity(paths.len());
    for p in paths {
        let (header, after) = line_of(rest, p)?;
        rest = after;
        headers.push(header);
    }
    let (t, after) = line_of(rest, "read")?;
    let (entries, complete, after) = match t.as_str() {
        // No file's contents follow: none asked for, or all unchanged.
        "N" => (Vec::new(), true, after),
        "T" => {
            let (entries, after) = parse_tar(after)?;
            let (status, after) = line_of(after, "read")?;
            (entries, status == "R 0", after)
        }
        t => return Err(format!("read: unexpected {t:?}")),
    };
    let mut entries = entries.into_iter().peekable();
    let mut result = Vec::with_capacity(paths.len());
    let mut stamps = Vec::with_capacity(paths.len());
    for (p, header) in paths.iter().zip(headers) {
        // A stamp is sent back to the host on a later batch: only digits, dots and spaces are kept.
        let stamp = header.strip_prefix("F ").filter(|s| s.bytes().all(|b| b.is_ascii_digit() || b".- ".contains(&b)));
        stamps.push(match (header.as_str(), stamp) {
            ("U", _) => Stamp::Unchanged,
            (_, Some(s)) => Stamp::Read(s.to_string()),
            _ => Stamp::Unknown,
        });
        result.push(match header.as_str() {
            "M" | "U" => Ok(None),
            h if h == "F" || h.starts_with("F ") => {
                // tar names members without the leading slash; a file gone or changed since it was
                // listed has no member.
                match entries.next_if(|(name, _)| name == p.trim_start_matches('/')) {
                    Some((_, data)) if complete => Ok(Some(data)),
                    Some(_) => Err("changed while being read".to_string()),
                    None => Err("changed while being read".to_string()),
                }
            }
            h => match h.strip_prefix("E ") {
                Some(m) => Err(m.to_string()),
                None => return Err(format!("{p}: unexpected {h:?}")),
            },
        });
    }
    Ok((result, stamps, after))
}

/// The per-file form: per path `F <size>` and the bytes, `M`, or `E <why>`.
fn parse_read_each<'a>(paths: &[String], out: &'a [u8]) -> Result<(Vec<ReadEntry>, &'a [u8]), String> {
    let mut rest = out;
    let mut result = Vec::with_capacity(paths.len());
    for p in paths {
        let (header, after) = line_of(rest, p)?;
        rest = after;
        if header == "M" {
            result.push(Ok(None));
        } else if let Some(m) = header.strip_prefix("E ") {
            result.push(Err(m.to_string()));
        } else if let Some(n) = header.strip_prefix("F ") {
            let n: usize = n.trim().parse().map_err(|_| format!("{p}: bad size {n:?}"))?;
            if rest.len() < n {
                return Err(format!("{p}: changed while being read"));
            }
            result.push(Ok(Some(rest[..n].to_vec())));
            rest = &rest[n..];
        } else {
            return Err(format!("{p}: unexpected {header:?}"));
        }
    }
    Ok((result, rest))
}

/// A regular file of a tar stream: its name and its bytes.
type TarMember = (String, Vec<u8>);

/// The regular files of a tar stream as GNU tar writes it with `-b 1` (GNU long names, ustar prefixes),
/// in order, and what follows its end (two zero blocks).
fn parse_tar(mut rest: &[u8]) -> Result<(Vec<TarMember>, &[u8]), String> {
    const BLOCK: usize = 512;
    let text = |b: &[u8]| String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned();
    let mut files = Vec::new();
    let mut long_name: Option<String> = None;
    loop {
        if rest.len() < BLOCK {
            return Err("read: truncated tar stream".into());
        }
        let (header, after) = rest.split_at(BLOCK);
        if header.iter().all(|b| *b == 0) {
            let end = after.get(..BLOCK).filter(|z| z.iter().all(|b| *b == 0));
            return match end {
                Some(_) => Ok((files, &after[BLOCK..])),
                None => Err("read: truncated tar stream".into()),
            };
        }
        let size_field = &header[124..136];
        let size = if size_field[0] & 0x80 != 0 {
            // Base-256, for sizes octal cannot hold.
            size_field[1..].iter().try_fold(0usize, |n, b| n.checked_mul(256).map(|n| n + usize::from(*b)))
        } else {
            usize::from_str_radix(text(size_field).trim(), 8).ok()
        }
        .ok_or("read: bad size in the tar stream")?;
        let padded = size.div_ceil(BLOCK).checked_mul(BLOCK).ok_or("read: bad size in the tar stream")?;
        if after.len() < padded {
            return Err("read: truncated tar stream".into());
        }
        let data = &after[..size];
        rest = &after[padded..];
        match header[156] {
            b'L' => long_name = Some(text(data)),
            b'0' | 0 => {
                let name = long_name.take().unwrap_or_else(|| {
                    let prefix = text(&header[345..500]);
                    let ustar = &header[257..263] == b"ustar\0";
                    if ustar && !prefix.is_empty() {
                        format!("{prefix}/{}", text(&header[..100]))
                    } else {
                        text(&header[..100])
                    }
                });
                files.push((name, data.to_vec()));
            }
            _ => long_name = None,
        }
    }
}

/// BATCH_SCRIPT without the list functions (a kept shell defined them once).
macro_rules! batch_body {
    () => {
        r#"nf=$1 nx=$(($1 + $2)) gw_gnu=$3 gw_gtar=$4; shift 4
scratch
j=0
while [ "$j" -lt "$nx" ]; do
  : > "$t/$j.c"
  if [ "$j" -lt "$nf" ]; then
    { (gw_q=$1; eval "$2"; eval "$gw_q") </dev/null >"$t/$j.o" 2>"$t/$j.e"; echo $? >"$t/$j.c"; }
  else
    # One fork: the query's subshell itself runs in the background; its status is waited for below.
    (gw_q=$1; eval "$2"; eval "$gw_q") </dev/null >"$t/$j.o" 2>"$t/$j.e" &
    eval "gw_pid_$j=\$!"
  fi
  j=$((j+1)); shift 2
done
read -r n k gw_cut
# Streams are cut by a line holding the request's token (see the tail): given on stdin's first line, or
# in a kept shell the request's own.
gw_cut=${gw_cut:-${gw_this:-}}
[ -n "$gw_cut" ] || { echo "no token to cut the streams by" >&2; exit 97; }
# In a kept shell (gw_this set): what the request before left in the scratch directory is used only when
# it is the request the transport names (gw_prev), whose reply it took whole.
gw_was=; [ -n "${gw_prev:-}" ] && [ -f "$t/tag" ] && read -r gw_was < "$t/tag" && [ "$gw_was" = "$gw_prev" ] || gw_was=
if [ "$n" = same ] || [ "$n" = probe ]; then
  # The path lists of the request before, unchanged: not sent again, not split again.
  [ -n "$gw_was" ] || { echo "the kept shell does not hold the path lists of request ${gw_prev:-none}" >&2; exit 98; }
else
  # A kept shell also states the account files: a digest it remembers names owners from them.
  awk -v n="$n" -v k="${k:-0}" -v kept="${gw_this:+1}" -v reads="$t/reads" -v metas="$t/metas" -v all="$t/all" -v all0="$t/all0" -v known="$t/known" '
    BEGIN { printf "" > reads; printf "" > metas; printf "" > known; printf "" > all; printf "" > all0 }
    NR <= k { print > known; next } { print > all; printf "%s%c", $0, 0 > all0 } NR <= k + n { print > reads; next } { print > metas }
    END { if (kept && NR > k + n) { print "/etc/passwd\n/etc/group" > all; printf "/etc/passwd%c/etc/group%c", 0, 0 > all0 } }'
fi
# A kept shell sends find's output back (see the tail): a probe's is compared with it.
gw_found=
if [ -s "$t/all" ] && gnu_find; then gw_find "$t/all" "$t/found" "$t/all0"; gw_found=${gw_this:+$t/found}; fi
if [ "$n" = probe ]; then
  # A drift tick's first question: only find's line for each file (sent back with the queries' output).
  # If every line is as the transport holds them, so are the files; if not, it asks again in full.
  printf '@@PROBE\n'
else
  gw_read 65536 "$t/reads" "$t" "$t/known"
  printf '@@META\n'
  gw_meta "$t/metas" "$t" "${gw_this:+$t/seen}" "$gw_was"
fi
[ -z "${gw_this:-}" ] || printf '%s\n' "$gw_this" > "$t/tag"
"#
    };
}

/// One round trip for a whole prefetch: the queries that must come first, one after another; then the
/// other read-only queries started in the background, then the contents (files over 64 MiB are left to
/// a read of their own; the ownership record of 1000 nodes alone is 1.2 MB), then the digests, then
/// each query's output. Arguments: the number of first queries, the number of the others, what the
/// host's find and tar were found to be on this connection (`yes`, `no`, or empty: ask them), then two
/// per query (see [`batch_query`]). Stdin: the number of paths to read, those paths, then the paths to
/// digest, a line each. The other queries run while the files are read and side by side.
///
/// Stdin's first line is `<reads> <known> <token>`: `<known>` lines `<stamp>|<path>` follow it, files
/// the transport holds as they were at that stamp (size, mtime, inode, ctime); such a file, unchanged,
/// is answered `U` instead of its contents (a drift loop's ownership record and zones, every tick).
/// The token cuts the queries' streams apart (a kept shell's request has its own and leaves it out).
///
/// Starting a process costs about 2 ms on a loaded host and every plan runs this on each host, so it
/// starts as few as it can: a query runs in a forked subshell (no `sh` of its own), and the outputs
/// are sent by one `cat`, cut by the token (no `wc` to count their bytes).
const BATCH_SCRIPT: &str = concat!(list_functions!(), batch_body!());

/// Follows the digests in the batch: per query `X <exit code>\n` or `E <why>\n`, and in a kept shell
/// `@@FOUND\n` (find's lines follow the streams); then the streams of the queries that ran, in order,
/// stdout and stderr, each followed by `\n@@<token>\n`; last, on a line of its own (after a newline: a
/// stream may not end with one), `@@CAPS <find> <tar>`: what the batch learned of the host's tools,
/// for the next batch on the connection.
macro_rules! batch_exec_tail {
    () => {
        r#"printf '@@EXEC\n'
j=$nf
while [ "$j" -lt "$nx" ]; do eval "wait \"\$gw_pid_$j\""; echo $? >"$t/$j.c"; j=$((j+1)); done
# Each stream is followed by the line "@@<token>" after a line break of its own: no stream can hold
# it (the token is random, and the host's processes do not see it), and no byte count is needed.
printf '\n@@%s\n' "$gw_cut" > "$t/cut"
j=0
set --
while [ "$j" -lt "$nx" ]; do
  [ -s "$t/$j.c" ] && set -- "$@" "$t/$j.o" "$t/cut" "$t/$j.e" "$t/cut"
  j=$((j+1))
done
j=0
while [ "$j" -lt "$nx" ]; do
  if [ -s "$t/$j.c" ]; then read -r code < "$t/$j.c"; printf 'X %s\n' "$code"; else printf 'E not run\n'; fi
  j=$((j+1))
done
# A kept shell's find output goes last, cut like a stream.
[ -z "$gw_found" ] || { set -- "$@" "$gw_found" "$t/cut"; printf '@@FOUND\n'; }
[ $# -gt 0 ] && cat -- "$@"
printf '\n@@CAPS %s %s\n' "${gw_gnu:--}" "${gw_gtar:--}"
"#
    };
}
const BATCH_EXEC_TAIL: &str = batch_exec_tail!();

/// A drift loop's batches go to a shell kept open on the host (`sh -s` on one channel, reading its
/// commands from it): each tick then starts no exec session, no login shell and no `sh`, and does not
/// parse the list functions again (about a third of the batch's own CPU on the hosts). The shell is
/// first given the list functions; then each batch is one request ([`kept_request`]).
const KEPT_SHELL: &str = "exec sh -s";
const KEPT_PREAMBLE: &str = concat!(
    list_functions!(),
    r#"
# The kept shell's scratch directory, made once and used by every request: a request writes each of its
# files afresh (it empties a query's status file before the query starts), so none needs a `mktemp` and
# an `rm` of its own. Removed when the shell ends at the end of its input (the connection went or was
# closed) or on a write to a closed channel. Not on HUP or TERM: a shell waiting for input with those
# trapped would not act on them until input came, and a kept shell must die when it is told to (it then
# leaves its few kilobytes in /dev/shm).
gw_kept=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d 2>/dev/null) || exit 97
trap 'rm -rf "$gw_kept"' EXIT
trap 'exit 141' PIPE
scratch() { t=$gw_kept; }
# The batch, parsed once; each request runs it in a subshell.
gw_batch() {
"#,
    batch_body!(),
    batch_exec_tail!(),
    "}\n"
);

/// One batch as a request to a kept shell: the batch (`gw_batch`) in a subshell (its variables, traps
/// and `exit` stay its own) with its arguments, quoted, and its stdin as a here-document; then a line
/// that ends the reply, `@@KEPT-END <token> <exit status>`. `token` is random for each request: neither
/// the here-document's end nor the reply's can appear in what is sent or read. `prior` is the token of
/// the request before whose reply the transport took whole: the batch may then use what that one left
/// (stdin `same`: its path lists; digests answered `U`: the same as then).
pub fn kept_request(token: &KeptToken, prior: Option<&KeptToken>, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let (token, prior) = (token.0.as_str(), prior.map_or("", |p| p.0.as_str()));
    let mut head = format!("(gw_prev={prior} gw_this={token}; gw_batch");
    for a in args {
        head.push(' ');
        head.push_str(&shell_quote(a));
    }
    head.push_str(&format!(") <<'GW_IN_{token}'\n"));
    let mut r = head.into_bytes();
    r.extend_from_slice(stdin);
    if !stdin.is_empty() && !stdin.ends_with(b"\n") {
        r.push(b'\n');
    }
    r.extend_from_slice(format!("GW_IN_{token}\nprintf '\\n@@KEPT-END %s %s\\n' {token} \"$?\"\n").as_bytes());
    r
}

/// A kept shell's reply to the request of `token`, once it has all come: what the batch printed, and
/// its exit status. Only the end of `buf` is looked at.
pub fn kept_reply<'a>(token: &str, buf: &'a [u8]) -> Option<(&'a [u8], i32)> {
    let body = buf.strip_suffix(b"\n")?;
    let line_start = body.iter().rposition(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&body[line_start + 1..]).ok()?;
    let code = line.strip_prefix("@@KEPT-END ")?.strip_prefix(token)?.strip_prefix(' ')?.parse().ok()?;
    Some((&buf[..line_start], code))
}

/// A request's token: it ends a kept shell's here-document and reply, and cuts a batch's streams apart.
/// Hex digits only, so it goes into the request's line as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptToken(String);

impl KeptToken {
    /// A token no one can guess: 128 bits from the kernel.
    fn random() -> Result<Self, std::io::Error> {
        use std::io::Read;
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(KeptToken(hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A query as the batch runs it: a script for the subshell's `eval`, and the `set --` line that gives
/// it its arguments. `sh -c SCRIPT NAME ARGS…` runs its script with its arguments (the subshell stands
/// in for the `sh`); any other command is one shell line with nothing to set.
pub fn batch_query(cmd: &Cmd) -> [String; 2] {
    if let (true, [Arg::Lit(c), Arg::Lit(script), _name, args @ ..]) = (cmd.program == "sh", cmd.args.as_slice()) {
        if c == "-c" {
            let mut set = String::from("set --");
            for a in args {
                let (Arg::Lit(v) | Arg::Path(v)) = a;
                set.push(' ');
                set.push_str(&shell_quote(v));
            }
            return [script.clone(), set];
        }
    }
    [cmd.key(), String::new()]
}

/// Parse BATCH_EXEC_TAIL output, its streams cut by `token`: one entry per query, `None` where it did
/// not run.
pub fn parse_exec_outputs(count: usize, token: &str, out: &[u8]) -> Result<Vec<Option<ExecOutput>>, String> {
    parse_exec_section(count, token, out).map(|(outputs, _)| outputs)
}

/// The queries' outputs, and a kept shell's find output.
type ExecSection<'a> = (Vec<Option<ExecOutput>>, Option<&'a [u8]>);

/// BATCH_EXEC_TAIL output: the queries' outputs, and a kept shell's find output (`@@FOUND`).
fn parse_exec_section<'a>(count: usize, token: &str, out: &'a [u8]) -> Result<ExecSection<'a>, String> {
    let mut rest = out;
    let mut codes = Vec::with_capacity(count);
    for i in 0..count {
        let (header, after) = line_of(rest, &format!("query {i}"))?;
        rest = after;
        if header.starts_with("E ") {
            codes.push(None);
            continue;
        }
        let code = header.strip_prefix("X ").ok_or_else(|| format!("query {i}: unexpected {header:?}"))?;
        codes.push(Some(code.parse::<i32>().map_err(|_| format!("query {i}: bad exit code {code:?}"))?));
    }
    let found = match rest.strip_prefix(b"@@FOUND\n") {
        Some(after) => {
            rest = after;
            true
        }
        None => false,
    };
    let cut = format!("\n@@{token}\n");
    let mut stream = |what: &str| -> Result<&'a [u8], String> {
        let at = memchr::memmem::find(rest, cut.as_bytes()).ok_or_else(|| format!("{what}: truncated output"))?;
        let (taken, after) = (&rest[..at], &rest[at + cut.len()..]);
        rest = after;
        Ok(taken)
    };
    let mut result = Vec::with_capacity(count);
    for (i, code) in codes.into_iter().enumerate() {
        let Some(code) = code else {
            result.push(None);
            continue;
        };
        let stdout = stream(&format!("query {i}"))?.to_vec();
        let stderr = stream(&format!("query {i}"))?.to_vec();
        result.push(Some(ExecOutput { code, stdout, stderr }));
    }
    let found = if found { Some(stream("found")?) } else { None };
    Ok((result, found))
}

/// What the batch's last line says of the host's find and tar (`@@CAPS <find> <tar>`), each `yes` or
/// `no` where it was found out (find may also be `f0`: GNU find that takes `-files0-from`).
pub fn parse_host_tools(out: &[u8]) -> Option<[&'static str; 2]> {
    let body = out.strip_suffix(b"\n")?;
    let last = &body[body.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1)..];
    let words = std::str::from_utf8(last.strip_prefix(b"@@CAPS ")?).ok()?;
    let known = |w: &str| match w {
        "yes" => "yes",
        "f0" => "f0",
        "no" => "no",
        _ => "",
    };
    let (find, tar) = words.split_once(' ')?;
    Some([known(find), known(tar)])
}

/// What one batched read found: per read path its contents and stamp, per digested path its metadata,
/// per query its output (each entry may be the host's reason instead, or absent for a query not run).
#[derive(Debug)]
pub struct BatchEntries {
    pub contents: Vec<ReadEntry>,
    pub stamps: Vec<Stamp>,
    pub digests: Vec<MetaAnswer>,
    pub outputs: Vec<Option<ExecOutput>>,
    /// A kept shell's reply: find's line for every path it stated (`gw_find`), as the host printed them.
    pub found: Option<Vec<u8>>,
    /// A probe's reply (stdin `probe`): no file was answered (`contents`, `stamps` and `digests` are
    /// empty); `found` says whether they are as in the reply `found` came with before.
    pub probe: bool,
    /// The digests as a map, where the kept shell's transport made it (`digests` is then empty): the
    /// same map for every probe that finds the files as they were.
    pub digest_map: Option<Arc<DigestMap>>,
}

/// A digest line of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaAnswer {
    /// What the host found: the file's metadata, `None` for a missing file, or the host's reason.
    Found(Result<Option<FileMeta>, String>),
    /// `U`: the same as the kept shell answered for the request before (see `gw_meta`).
    Unchanged,
}

/// Parse the output of BATCH_SCRIPT + BATCH_EXEC_TAIL.
pub fn parse_batch_output(
    reads: &[String],
    metas: &[String],
    queries: usize,
    token: &str,
    out: &[u8],
) -> Result<BatchEntries, String> {
    if let Some(exec_text) = out.strip_prefix(b"@@PROBE\n@@EXEC\n") {
        let (outputs, found) = parse_exec_section(queries, token, exec_text)?;
        let found = found.map(<[u8]>::to_vec);
        return Ok(BatchEntries {
            contents: vec![],
            stamps: vec![],
            digests: vec![],
            outputs,
            found,
            probe: true,
            digest_map: None,
        });
    }
    let (contents, stamps, rest) = parse_read_prefix(reads, out)?;
    let rest = rest.strip_prefix(b"@@META\n").ok_or("no digest section")?;
    let (digest_text, exec_text) = split_at_line(rest, b"@@EXEC\n").ok_or("no query section")?;
    let digests = parse_meta_answers(metas, &String::from_utf8_lossy(digest_text))?;
    let (outputs, found) = parse_exec_section(queries, token, exec_text)?;
    let found = found.map(<[u8]>::to_vec);
    Ok(BatchEntries { contents, stamps, digests, outputs, found, probe: false, digest_map: None })
}

/// Split `out` at the line `marker` (which it must hold): what comes before it and what follows.
fn split_at_line<'a>(out: &'a [u8], marker: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if let Some(after) = out.strip_prefix(marker) {
        return Some((&out[..0], after));
    }
    let pos = out.windows(marker.len() + 1).position(|w| w[0] == b'\n' && &w[1..] == marker)?;
    Some((&out[..pos + 1], &out[pos + 1 + marker.len()..]))
}

/// Parse META_SCRIPT output.
pub fn parse_meta_output(paths: &[String], out: &str) -> Result<Vec<Result<Option<FileMeta>, String>>, String> {
    let answers = parse_meta_answers(paths, out)?;
    Ok(answers
        .into_iter()
        .map(|a| match a {
            MetaAnswer::Found(found) => found,
            // Only a kept shell's batch answers so.
            MetaAnswer::Unchanged => Err("unexpected U".to_string()),
        })
        .collect())
}

/// Parse `gw_meta` output: a line per path.
fn parse_meta_answers(paths: &[String], out: &str) -> Result<Vec<MetaAnswer>, String> {
    let mut lines = out.lines();
    paths
        .iter()
        .map(|p| {
            let line = lines.next().ok_or_else(|| format!("{p}: truncated output"))?;
            match line {
                "U" => return Ok(MetaAnswer::Unchanged),
                "M" => return Ok(MetaAnswer::Found(Ok(None))),
                _ => {}
            }
            if let Some(m) = line.strip_prefix("E ") {
                return Ok(MetaAnswer::Found(Err(m.to_string())));
            }
            let f: Vec<&str> = line.strip_prefix("F ").unwrap_or_default().split_whitespace().collect();
            let (sha, size, mode, owner, group) = match f.as_slice() {
                [sha, size, mode, owner, group] => (sha, size, mode, *owner, *group),
                [sha, size, mode] => (sha, size, mode, "", ""),
                _ => return Err(format!("{p}: unexpected {line:?}")),
            };
            Ok(MetaAnswer::Found(Ok(Some(FileMeta {
                sha256: sha.to_string(),
                size: size.parse().map_err(|_| format!("{p}: bad size"))?,
                mode: u32::from_str_radix(mode, 8).map_err(|_| format!("{p}: bad mode"))?,
                owner: owner.to_string(),
                group: group.to_string(),
            }))))
        })
        .collect()
}

#[async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.host
    }

    fn round_trips(&self) -> usize {
        self.sessions.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn exec(&self, cmd: &Cmd) -> Result<ExecOutput, TransportError> {
        let line = cmd.to_shell(|p| p.to_string());
        match &cmd.stdin {
            Some(bytes) => self.run(&line, Some(&mut &bytes[..]), &line, self.opts.command_timeout).await,
            None => self.run(&line, None, &line, self.opts.command_timeout).await,
        }
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let mut v = self.read_files(&[path.to_string()]).await?;
        Ok(v.pop().flatten())
    }

    async fn read_files(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, TransportError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let list = self.path_list(paths)?;
        let line = Self::script_line(READ_SCRIPT, "groundwork-read", &[]);
        let out = self.run(&line, Some(&mut &list[..]), "read files", self.opts.command_timeout).await?;
        if !out.success() {
            return Err(self.io(&paths[0], format!("reading files: {}", out.message())));
        }
        let parsed = parse_read_output(paths, &out.stdout).map_err(|m| self.io(&paths[0], m))?;
        parsed.into_iter().zip(paths).map(|(r, p)| r.map_err(|m| self.io(p, m))).collect()
    }

    async fn read_batch(&self, prefetch: &Prefetch) -> Result<Batch, TransportError> {
        if prefetch.is_empty() {
            return Ok(Batch::default());
        }
        let Prefetch { reads, metas, .. } = prefetch;
        // A query asked twice (by two providers, or a provider and a rider) runs once: its answer is
        // filed under its key for both.
        let mut asked = std::collections::HashSet::new();
        let mut once = |c: &&Cmd| c.stdin.is_none() && asked.insert(c.key());
        let first: Vec<&Cmd> = prefetch.first.iter().filter(&mut once).collect();
        let others: Vec<&Cmd> = prefetch.execs.iter().filter(&mut once).collect();
        let (nf, nx) = (first.len().to_string(), others.len().to_string());
        let queries: Vec<&Cmd> = first.into_iter().chain(others).collect();
        let execs: Vec<String> = queries.iter().map(|c| c.key()).collect();
        let [find, tar] = *self.host_tools.lock().unwrap_or_else(|e| e.into_inner());
        let encoded: Vec<[String; 2]> = queries.iter().map(|c| batch_query(c)).collect();
        let mut args: Vec<&str> = vec![&nf, &nx, find, tar];
        args.extend(encoded.iter().flatten().map(String::as_str));
        let known: Vec<u8> = match &*self.kept_reads.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(kept) => reads
                .iter()
                .filter_map(|p| kept.get(p).map(|(stamp, _)| format!("{stamp}|{p}\n")))
                .collect::<String>()
                .into_bytes(),
            None => Vec::new(),
        };
        let known_lines = known.iter().filter(|b| **b == b'\n').count();
        let mut list = format!("{} {known_lines}\n", reads.len()).into_bytes();
        list.extend(known);
        list.extend(self.path_list(reads.iter().chain(metas))?);
        tracing::debug!(host = %self.host, reads = reads.len(), digests = metas.len(), queries = ?execs, "batched read");
        let batch = BatchRequest { args, list: &list, reads, metas, queries: execs.len() };
        let keeping = self.kept_reads.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let kept = match keeping {
            true => Some(self.kept_batch(&batch, self.opts.command_timeout).await),
            false => None,
        };
        let entries = match kept {
            Some(Ok(entries)) => entries,
            Some(Err(e @ TransportError::Timeout { .. })) => return Err(e),
            other => {
                if let Some(Err(e)) = other {
                    // Read-only: asked again as an exec of its own.
                    tracing::info!(host = %self.host, error = %e, "the kept shell failed; the batch runs on its own");
                }
                let script = format!("{BATCH_SCRIPT}{BATCH_EXEC_TAIL}");
                let line = Self::script_line(&script, "groundwork-batch", &batch.args);
                // The token that cuts the streams goes on stdin's first line, not on the command line
                // (which the host's other users can see).
                let token = self.token()?;
                let nl = list.iter().position(|b| *b == b'\n').unwrap_or(list.len());
                let stdin = [&list[..nl], b" ", token.as_str().as_bytes(), &list[nl..]].concat();
                let out = self.run(&line, Some(&mut &stdin[..]), "batched read", self.opts.command_timeout).await?;
                self.take_batch(out, &batch, &token)?
            }
        };
        let BatchEntries { contents, stamps, digests, outputs, digest_map, .. } = entries;
        let mut batch = Batch::default();
        let mut kept = self.kept_reads.lock().unwrap_or_else(|e| e.into_inner());
        // Entries the host could not give in the batch are left out: the provider's own read asks again.
        for ((p, e), stamp) in reads.iter().zip(contents).zip(stamps) {
            let e = match (stamp, kept.as_mut()) {
                (Stamp::Unchanged, Some(kept)) => {
                    kept.get(p).map(|(_, c)| Ok(Some(c.clone()))).unwrap_or_else(|| Err("not kept".into()))
                }
                (Stamp::Read(stamp), Some(kept)) => e.map(|c| {
                    c.map(|c| {
                        let c: Arc<[u8]> = c.into();
                        kept.insert(p.clone(), (stamp, c.clone()));
                        c
                    })
                }),
                (_, Some(kept)) => {
                    kept.remove(p);
                    e.map(|c| c.map(Into::into))
                }
                (_, None) => e.map(|c| c.map(Into::into)),
            };
            match e {
                Ok(c) => drop(batch.contents.insert(p.clone(), c)),
                Err(why) => tracing::debug!(host = %self.host, path = %p, "read left out of the batch: {why}"),
            }
        }
        drop(kept);
        batch.metas = match digest_map {
            Some(map) => map,
            None => Arc::new(self.digest_map(metas, digests)),
        };
        for (key, o) in execs.into_iter().zip(outputs) {
            if let Some(o) = o {
                batch.outputs.insert(key, o);
            }
        }
        Ok(batch)
    }

    async fn file_meta(&self, paths: &[String]) -> Result<Vec<Option<FileMeta>>, TransportError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let list = self.path_list(paths)?;
        let line = Self::script_line(META_SCRIPT, "groundwork-meta", &[]);
        let out = self.run(&line, Some(&mut &list[..]), "file digests", self.opts.command_timeout).await?;
        if !out.success() {
            return Err(self.io(&paths[0], format!("reading digests: {}", out.message())));
        }
        let parsed = parse_meta_output(paths, &out.stdout_str()).map_err(|m| self.io(&paths[0], m))?;
        parsed.into_iter().zip(paths).map(|(r, p)| r.map_err(|m| self.io(p, m))).collect()
    }

    async fn write_file(&self, path: &str, contents: &[u8], opts: &WriteOptions) -> Result<(), TransportError> {
        self.write_stream(path, &mut &contents[..], opts, "", Some(contents.len() as u64), self.opts.command_timeout)
            .await
    }

    /// One round trip: the candidate is written, checked and renamed into place by WRITE_SCRIPT.
    async fn write_checked(
        &self,
        path: &str,
        candidate: &str,
        contents: &[u8],
        opts: &WriteOptions,
        checks: &[Cmd],
    ) -> Result<Result<(), CheckRejection>, TransportError> {
        let lines: Vec<String> = checks.iter().map(|c| c.to_shell(|p| p.to_string())).collect();
        let size = Some(contents.len() as u64);
        let bound = self.opts.command_timeout;
        let out = self.run_write(path, &mut &contents[..], opts, "", size, (candidate, &lines), bound).await?;
        if out.success() {
            return Ok(Ok(()));
        }
        let stdout = out.stdout_str();
        match (out.code, stdout.strip_prefix("groundwork-check-failed ")) {
            (4, Some(rest)) => {
                let (command, message) = rest.split_once('\n').unwrap_or((rest, ""));
                Ok(Err(CheckRejection { command: command.to_string(), message: message.trim().to_string() }))
            }
            _ => Err(self.io(path, out.message())),
        }
    }

    async fn send_file(
        &self,
        local: &Path,
        remote: &str,
        sha256: &str,
        opts: &WriteOptions,
    ) -> Result<u64, TransportError> {
        let shown = local.display().to_string();
        let file = tokio::fs::File::open(local).await.map_err(|e| self.io(&shown, e))?;
        let meta = file.metadata().await.map_err(|e| self.io(&shown, e))?;
        let (bytes, stamp) = (meta.len(), groundwork_sdk::local::source_stamp(&meta));
        // Still the planned source? Answered from the local digest cache while the file is unchanged
        // (no second read of a big image), else by hashing it again.
        let path = local.to_path_buf();
        let now = tokio::task::spawn_blocking(move || groundwork_sdk::local::sha256_file_cached(&path))
            .await
            .map_err(|e| self.io(&shown, e))?
            .map_err(|e| self.io(&shown, e))?;
        if now.0 != sha256 {
            return Err(self
                .io(remote, format!("the source {shown} changed since the plan: sha256 {}, planned {sha256}", now.0)));
        }
        // Streamed in chunks: memory stays flat whatever the file size. The digest line follows only if
        // exactly the planned bytes went and the file was not touched meanwhile; else the host refuses.
        let unchanged = {
            let path = local.to_path_buf();
            move |seen: u64| {
                let same = std::fs::metadata(&path).is_ok_and(|m| groundwork_sdk::local::source_stamp(&m) == stamp);
                if seen == bytes && same {
                    format!("{sha256}\n").into_bytes()
                } else {
                    b"changed\n".to_vec()
                }
            }
        };
        let mut reader = Trailer::new(tokio::io::BufReader::with_capacity(256 * 1024, file).take(bytes), unchanged);
        // The time bound grows with the size (at least 1 MiB/s), not only the command timeout.
        let bound = self.opts.command_timeout + Duration::from_secs(bytes / (1024 * 1024));
        self.write_stream(remote, &mut reader, opts, sha256, Some(bytes), bound).await?;
        Ok(bytes)
    }

    async fn sweep(&self, dirs: &[String]) -> Result<Vec<(String, u64)>, TransportError> {
        if dirs.is_empty() {
            return Ok(Vec::new());
        }
        let out =
            self.exec(&Cmd::new("sh").arg("-c").arg(SWEEP_SCRIPT).arg("groundwork-sweep").args(dirs.to_vec())).await?;
        if !out.success() {
            return Err(self.io(&dirs.join(" "), out.message()));
        }
        Ok(out
            .stdout_str()
            .lines()
            .filter_map(|l| l.split_once(' ').and_then(|(n, p)| Some((p.to_string(), n.parse().ok()?))))
            .collect())
    }

    async fn remove_file(&self, path: &str) -> Result<(), TransportError> {
        let out = self.exec(&Cmd::new("rm").arg("-f").arg("--").path(path)).await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.io(path, out.message()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_output_is_binary_safe() {
        let paths: Vec<String> = ["/a", "/b", "/c", "/d"].iter().map(|s| s.to_string()).collect();
        let out = b"P\nF 5\nx\ny\nzM\nE permission denied\nF 0\n".to_vec();
        let r = parse_read_output(&paths, &out).unwrap();
        assert_eq!(r[0], Ok(Some(b"x\ny\nz".to_vec())));
        assert_eq!(r[1], Ok(None));
        assert_eq!(r[2], Err("permission denied".to_string()));
        assert_eq!(r[3], Ok(Some(vec![])));
        assert!(parse_read_output(&paths, b"P\nF 10\nabc").is_err());
        assert!(parse_read_output(&paths, b"F 10\nabc").is_err());
    }

    /// A script run for real by sh on this machine, the paths on stdin, with `path` first on PATH (for
    /// stand-ins) and the digest index moved to `index`.
    fn run_list_script(script: &str, paths: &[String], path: &str, index: &Path) -> Vec<u8> {
        use std::io::Write;
        let script = script.replace("/var/lib/groundwork/digest-index", index.to_str().unwrap());
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("gw")
            .env("PATH", format!("{path}:/usr/bin:/bin"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for p in paths {
            writeln!(stdin, "{p}").unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// A directory whose `find` is not GNU find (as on a BusyBox host): the scripts take their per-file
    /// forms.
    fn without_gnu_find() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let find = dir.path().join("find");
        std::fs::write(
            &find,
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'BusyBox v1.36'; exit 0; }\nexec /usr/bin/find \"$@\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&find, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        dir
    }

    /// gw_read run for real (sh, GNU find and tar on this machine, then a host without GNU find) over
    /// files of every kind, with and without a size limit: what the parser makes of it is what is on
    /// disk.
    #[test]
    fn gw_read_reads_every_kind_of_file_in_one_tar_stream() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let long = d.join(format!("{}/{}", "x".repeat(90), "y".repeat(90)));
        std::fs::create_dir_all(long.parent().unwrap()).unwrap();
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        std::fs::write(d.join("small"), b"line\n").unwrap();
        std::fs::write(d.join("empty"), b"").unwrap();
        std::fs::write(d.join("binary"), &binary).unwrap();
        std::fs::write(&long, b"deep").unwrap();
        std::fs::write(d.join("big"), vec![b'b'; 1_100_000]).unwrap();
        std::os::unix::fs::symlink(d.join("small"), d.join("link")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        std::fs::create_dir(d.join("dir")).unwrap();
        let names = ["small", "missing", "empty", "binary", "dir", "link", "big", "dangling", "a file"];
        std::fs::write(d.join("a file"), b"spaced").unwrap();
        let mut paths: Vec<String> = names.iter().map(|n| d.join(n).display().to_string()).collect();
        paths.push(long.display().to_string());
        let index = d.join("index");
        let limited = concat_lists!(
            r#"scratch; cat > "$t/r"; gw_read 1024 "$t/r" "$t"
"#
        );
        let fallback = without_gnu_find();
        let fallback = fallback.path().to_str().unwrap();
        for (path, form) in [("", b"F 5 "), (fallback, b"P\nF ")] {
            let out = run_list_script(READ_SCRIPT, &paths, path, &index);
            assert!(out.starts_with(form), "{path:?}: {:?}", &out[..8]);
            let r = parse_read_output(&paths, &out).unwrap();
            assert_eq!(r[0], Ok(Some(b"line\n".to_vec())));
            assert_eq!(r[1], Ok(None));
            assert_eq!(r[2], Ok(Some(vec![])));
            assert_eq!(r[3], Ok(Some(binary.clone())));
            assert_eq!(r[4], Err("not a regular file".to_string()));
            assert_eq!(r[5], Ok(Some(b"line\n".to_vec())), "a symlink is read through");
            assert_eq!(r[6], Ok(Some(vec![b'b'; 1_100_000])));
            assert_eq!(r[7], Ok(None), "a dangling symlink is missing");
            assert_eq!(r[8], Ok(Some(b"spaced".to_vec())));
            assert_eq!(r[9], Ok(Some(b"deep".to_vec())), "a path longer than tar's 100 characters");
            // With the batch's 1 MiB limit the big file is left out, and only it.
            let r = parse_read_output(&paths, &run_list_script(limited, &paths, path, &index)).unwrap();
            assert_eq!(r[6], Err("too large for a batch".to_string()));
            assert_eq!((&r[3], &r[9]), (&Ok(Some(binary.clone())), &Ok(Some(b"deep".to_vec()))));
        }
        // No paths at all: an empty answer in either form.
        for path in ["", fallback] {
            assert!(parse_read_output(&[], &run_list_script(READ_SCRIPT, &[], path, &index)).unwrap().is_empty());
        }
    }

    /// The digest scripts run for real (sh, coreutils, GNU find and OpenSSL on this machine; the index in
    /// a temp directory): digests, sizes, modes and owners as the files have them, names with spaces,
    /// symlinks followed; the index written by the write script and by a digest read, and used the next
    /// time; the per-file form without GNU find agrees.
    #[test]
    fn meta_script_reports_each_file_and_uses_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a file"), b"hello\n").unwrap();
        std::fs::write(d.join("b"), b"").unwrap();
        std::fs::create_dir(d.join("dir")).unwrap();
        std::os::unix::fs::symlink(d.join("a file"), d.join("link")).unwrap();
        let paths: Vec<String> =
            ["a file", "missing", "dir", "b", "link"].iter().map(|n| d.join(n).display().to_string()).collect();
        let index = d.join("index");
        let run = |path: &str| {
            let out = run_list_script(META_SCRIPT, &paths, path, &index);
            parse_meta_output(&paths, &String::from_utf8_lossy(&out)).unwrap()
        };
        let hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03".to_string();
        let meta = |sha: &str, size: u64| {
            Ok(Some(FileMeta { sha256: sha.into(), size, mode: 0o644, owner: "root".into(), group: "root".into() }))
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let want = [meta(&hello, 6), Ok(None), Err("not a regular file".into()), meta(empty, 0), meta(&hello, 6)];
        let fallback = without_gnu_find();
        assert_eq!(run(fallback.path().to_str().unwrap()), want, "per file");
        assert!(!index.exists(), "the per-file form keeps no index");
        assert_eq!(run(""), want, "a symlink is its target: digest, size and mode");
        let entries = std::fs::read_to_string(&index).unwrap();
        let entry = entries.lines().find(|l| l.ends_with(&format!("|{}", paths[0]))).unwrap().to_string();
        assert!(entry.starts_with(&format!("{hello} 6 ")), "{entries}");
        assert_eq!(entries.lines().count(), 3, "one entry per regular file: {entries}");
        // An entry is believed while size, mtime and inode hold: a fake one shows it was used.
        std::fs::write(&index, entries.replace(&entry, &entry.replacen(&hello, &"f".repeat(64), 1))).unwrap();
        assert_eq!(run("")[0], meta(&"f".repeat(64), 6));
        // A new file written by the write script is in the index at once, with the digest it was sent
        // with (here a fake one again: the host never hashes what it receives).
        let new = d.join("new").display().to_string();
        let script = WRITE_SCRIPT.replace("/var/lib/groundwork/digest-index", index.to_str().unwrap());
        let fake = "a".repeat(64);
        let wrote = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf 'hi\\n{fake}\\n' | sh -c \"$1\" gw \"$2\" 644 '' '' {fake} 3 '' ''"))
            .arg("gw")
            .arg(&script)
            .arg(&new)
            .output()
            .unwrap();
        assert!(wrote.status.success(), "{}", String::from_utf8_lossy(&wrote.stderr));
        let got = run_list_script(META_SCRIPT, std::slice::from_ref(&new), "", &index);
        assert_eq!(parse_meta_output(&[new], &String::from_utf8_lossy(&got)).unwrap()[0], meta(&fake, 3));
        // A file that is gone leaves the index.
        std::fs::remove_file(d.join("a file")).unwrap();
        assert_eq!(run("")[0], Ok(None));
        assert!(!std::fs::read_to_string(&index).unwrap().contains(&format!("|{}\n", paths[0])));
    }

    /// A checked write, run for real: the candidate is what the checks see; accepted, it is renamed
    /// into place in the same run; refused, the target is untouched, the candidate gone, and the output
    /// names the check and carries what it said.
    #[test]
    fn a_checked_write_installs_only_what_its_checks_accept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("named.conf");
        std::fs::write(&target, "old\n").unwrap();
        let candidate = dir.path().join(".named.conf.groundwork-candidate").display().to_string();
        let write = |content: &str, checks: &[String]| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", WRITE_SCRIPT, "gw"])
                .arg(&target)
                .args(["", "", "", "", &content.len().to_string(), "", &candidate])
                .args(checks)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(content.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        };
        let grep =
            |word: &str| Cmd::new("grep").arg("-q").arg(word).path(candidate.clone()).to_shell(|p| p.to_string());
        let ok = write("new zone\n", &[grep("new"), grep("zone")]);
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new zone\n");
        assert!(!std::path::Path::new(&candidate).exists());
        // The second check refuses it: it says which, and what it printed.
        let refused = write("other text\n", &[grep("other"), "sh -c 'echo bad line 3; exit 1'".to_string()]);
        assert_eq!(refused.status.code(), Some(4));
        let out = String::from_utf8_lossy(&refused.stdout);
        assert_eq!(out, "groundwork-check-failed sh -c 'echo bad line 3; exit 1'\nbad line 3\n");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new zone\n", "untouched");
        assert!(!std::path::Path::new(&candidate).exists(), "candidate removed");
    }

    /// The whole batch run for real: a query, files read and digested (one of them both, as the files
    /// provider asks), all stated by one find; what the parser makes of it is what is on disk.
    #[test]
    fn the_batch_reads_digests_and_queries_in_one_run() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("conf"), b"zone\n").unwrap();
        std::fs::write(d.join("image"), b"hello\n").unwrap();
        let (conf, image, gone, late) = (
            d.join("conf").display().to_string(),
            d.join("image").display().to_string(),
            d.join("gone").display().to_string(),
            d.join("late").display().to_string(),
        );
        let reads = vec![conf.clone(), gone.clone(), late.clone()];
        let metas = vec![conf.clone(), image.clone(), gone.clone()];
        let index = d.join("index");
        let script = format!("{BATCH_SCRIPT}{BATCH_EXEC_TAIL}")
            .replace("/var/lib/groundwork/digest-index", index.to_str().unwrap());
        // The first query as a shell line, the second as `sh -c` with arguments (one of them hostile).
        let first = batch_query(&Cmd::new("sh").arg("-c").arg("echo first > \"$1\"").arg("n").arg(late.clone()));
        let second = batch_query(&Cmd::new("printf").arg("%s;%s\\n").arg("queried").arg("$(reboot) 'x'"));
        let third = Cmd::new("sh").arg("-c").arg("echo oops >&2; exit 3");
        assert_eq!(batch_query(&third), [third.key(), String::new()], "sh -c without a name is a plain line");
        let me = |flag: &str| {
            let out = std::process::Command::new("id").arg(flag).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let (user, group) = (me("-un"), me("-gn"));
        // An owner with no name (as root, which CI is) is its number, as stat shows it.
        let root = me("-u") == "0";
        if root {
            std::os::unix::fs::chown(&image, Some(4242), Some(4243)).unwrap();
        }
        // Found out by the batch (here `f0`: findutils 4.9, find reads the list itself), and told `yes`,
        // as for an older find: xargs hands it the paths. Both say the same.
        for find in ["", "yes"] {
            std::fs::remove_file(&late).ok();
            let mut child = std::process::Command::new("sh")
                .args(["-c", &script, "gw", "1", "1", find, "", &first[0], &first[1], &second[0], &second[1]])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{} 0 c0ffee", reads.len()).unwrap();
            for p in reads.iter().chain(&metas) {
                writeln!(stdin, "{p}").unwrap();
            }
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            let BatchEntries { contents, stamps, digests, outputs, .. } =
                parse_batch_output(&reads, &metas, 2, "c0ffee", &out.stdout).unwrap();
            assert!(matches!(&stamps[0], Stamp::Read(s) if s.starts_with("5 ")), "{stamps:?}");
            assert_eq!(stamps[1], Stamp::Unknown, "a missing file has no stamp");
            // The first query ran before anything was read: the file it wrote is read.
            assert_eq!(contents, [Ok(Some(b"zone\n".to_vec())), Ok(None), Ok(Some(b"first\n".to_vec()))]);
            let hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
            assert_eq!(meta_of(&digests[1]).sha256, hello);
            let conf_meta = meta_of(&digests[0]);
            assert_eq!(conf_meta.size, 5);
            // Owners are named as `stat -c %U` names them, from the uid find printed.
            assert_eq!((&conf_meta.owner, &conf_meta.group), (&user, &group), "{find:?}");
            if root {
                let image_meta = meta_of(&digests[1]);
                assert_eq!((image_meta.owner.as_str(), image_meta.group.as_str()), ("4242", "4243"));
            }
            assert_eq!(digests[2], MetaAnswer::Found(Ok(None)));
            assert_eq!(
                outputs,
                [
                    Some(ExecOutput { code: 0, stdout: Vec::new(), stderr: Vec::new() }),
                    Some(ExecOutput { code: 0, stdout: b"queried;$(reboot) 'x'\n".to_vec(), stderr: Vec::new() })
                ]
            );
            // What it learned of find and tar is its last line.
            let told = parse_host_tools(&out.stdout).unwrap();
            assert!(matches!(told, ["yes" | "f0", "yes"]) && (find.is_empty() || told[0] == find), "{told:?}");
        }
    }

    fn meta_of(m: &MetaAnswer) -> &FileMeta {
        match m {
            MetaAnswer::Found(Ok(Some(m))) => m,
            other => panic!("no metadata: {other:?}"),
        }
    }

    impl KeptToken {
        fn fixed(hex: &str) -> Self {
            KeptToken(hex.to_string())
        }
    }

    /// A local `sh -s` given the kept shell's preamble, as the host's would be.
    struct LocalKeptShell {
        child: std::process::Child,
        to: std::process::ChildStdin,
        from: std::process::ChildStdout,
    }

    impl LocalKeptShell {
        fn start(preamble: &str) -> Self {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .arg("-s")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let (mut to, from) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
            to.write_all(preamble.as_bytes()).unwrap();
            LocalKeptShell { child, to, from }
        }

        /// One request; the reply's body and exit status.
        fn ask(&mut self, token: &str, prior: Option<&str>, args: &[&str], stdin: &str) -> (Vec<u8>, i32) {
            use std::io::{Read, Write};
            let prior = prior.map(KeptToken::fixed);
            self.to.write_all(&kept_request(&KeptToken::fixed(token), prior.as_ref(), args, stdin.as_bytes())).unwrap();
            let mut got = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = self.from.read(&mut chunk).unwrap();
                assert!(n > 0, "the kept shell ended in request {token}");
                got.extend_from_slice(&chunk[..n]);
                if let Some((body, code)) = kept_reply(token, &got) {
                    return (body.to_vec(), code);
                }
            }
        }
    }

    /// A kept shell (here a local `sh -s`, as the host's would be) answers each request as the batch
    /// run on its own does (and sends find's lines too); a request's variables, traps and `exit` stay
    /// its own, and a reply ends only at its own token.
    #[test]
    fn a_kept_shell_answers_each_request_as_an_exec_of_its_own() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("conf"), b"zone\n@@KEPT-END 0\n").unwrap();
        let (conf, gone) = (d.join("conf").display().to_string(), d.join("gone").display().to_string());
        let index = d.join("index").display().to_string();
        let with_index = |s: &str| s.replace("/var/lib/groundwork/digest-index", &index);
        let hostile = batch_query(&Cmd::new("printf").arg("%s\\n").arg("$(reboot) 'x' GW_IN_"));
        let failing = batch_query(
            &Cmd::new("sh").arg("-c").arg("gw_leak=1; trap 'echo trapped' EXIT; echo oops >&2; exit 3").arg("q"),
        );
        let args = ["0", "2", "", "", &hostile[0], &hostile[1], &failing[0], &failing[1]];
        let stdin = format!("1 0\n{conf}\n{conf}\n{gone}\n");
        let (reads, metas) = (std::slice::from_ref(&conf), &[conf.clone(), gone.clone()]);
        let alone = std::process::Command::new("sh")
            .arg("-c")
            .arg(with_index(&format!("{BATCH_SCRIPT}{BATCH_EXEC_TAIL}")))
            .arg("gw")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        alone.stdin.as_ref().unwrap().write_all(stdin.replacen(" 0\n", " 0 a1\n", 1).as_bytes()).unwrap();
        let alone = alone.wait_with_output().unwrap();
        assert!(alone.status.success());
        let alone = parse_batch_output(reads, metas, 2, "a1", &alone.stdout).unwrap();
        assert_eq!(alone.found, None, "only a kept shell sends find's lines");

        let mut kept = LocalKeptShell::start(&with_index(KEPT_PREAMBLE));
        // No request before named: each is answered in full, as the exec is.
        for (i, token) in ["0", "c0ffee"].into_iter().enumerate() {
            let (body, code) = kept.ask(token, None, &args, &stdin);
            assert_eq!(code, 0);
            let BatchEntries { contents, stamps, digests, outputs, found, probe, .. } =
                parse_batch_output(reads, metas, 2, token, &body).unwrap();
            assert_eq!(
                (&contents, &stamps, &digests, &outputs),
                (&alone.contents, &alone.stamps, &alone.digests, &alone.outputs),
                "request {i}"
            );
            assert!(found.is_some_and(|f| String::from_utf8_lossy(&f).contains(&format!("|{conf}\n"))) && !probe);
            assert_eq!(contents, [Ok(Some(b"zone\n@@KEPT-END 0\n".to_vec()))]);
            assert_eq!(outputs[0].as_ref().unwrap().stdout, b"$(reboot) 'x' GW_IN_\n");
            assert_eq!(outputs[1].as_ref().unwrap().code, 3);
        }
        // The shell is still there, and nothing of the requests is left in it.
        kept.to.write_all(b"echo \"${gw_leak:-clean} ${t:-none} ${gw_this:-none}\"; echo \"$gw_kept\"\n").unwrap();
        drop(kept.to);
        let mut rest = String::new();
        kept.from.read_to_string(&mut rest).unwrap();
        let (leaks, scratch) = rest.split_once('\n').unwrap();
        assert_eq!(leaks, "clean none none");
        assert!(kept.child.wait().unwrap().success());
        // Its one scratch directory served every request, and went with the shell.
        assert!(scratch.trim().starts_with("/dev/shm/") && !std::path::Path::new(scratch.trim()).exists(), "{rest}");
        assert!(kept_reply("c0ffee", b"x\n@@KEPT-END c0ffee 0\nmore\n").is_none(), "only at the end");
        assert!(kept_reply("c0ffee", b"x\n@@KEPT-END c0ffe 0\n").is_none(), "only its own token");
        assert_eq!(kept_reply("c0ffee", b"x\n@@KEPT-END c0ffee 7\n"), Some((&b"x"[..], 7)));
    }

    /// Naming the request before, a request may send `same` for its path lists, and a digest whose
    /// file find sees as then is answered `U`; a changed file is digested again, and a shell that did
    /// not answer the request named refuses `same` and answers nothing from memory.
    #[test]
    fn a_kept_shell_remembers_what_the_request_before_left() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = |n: &str| d.join(n).display().to_string();
        let (a, b, gone) = (path("a.ipxe"), path("b.ipxe"), path("gone"));
        std::fs::write(&a, b"#!ipxe\nchain a\n").unwrap();
        std::fs::write(&b, b"#!ipxe\nchain b\n").unwrap();
        let index = path("index");
        let preamble = KEPT_PREAMBLE.replace("/var/lib/groundwork/digest-index", &index);
        let metas = [a.clone(), b.clone(), gone.clone()];
        let list = format!("0 0\n{a}\n{b}\n{gone}\n");
        let args = ["0", "0", "", ""];
        let digests = |(body, token): (&[u8], &str)| parse_batch_output(&[], &metas, 0, token, body).unwrap().digests;
        let mut shell = LocalKeptShell::start(&preamble);

        let (first, code) = shell.ask("01", None, &args, &list);
        assert_eq!(code, 0);
        let full = digests((&first, "01"));
        let sha_a = |m: &MetaAnswer| meta_of(m).sha256.clone();
        assert_eq!(sha_a(&full[0]), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"#!ipxe\nchain a\n")));
        assert_eq!(full[2], MetaAnswer::Found(Ok(None)));

        // Unchanged: `U`, the lists not sent again. A missing file stays `M`.
        let (again, code) = shell.ask("02", Some("01"), &args, "same\n");
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&again));
        assert_eq!(
            digests((&again, "02")),
            [MetaAnswer::Unchanged, MetaAnswer::Unchanged, MetaAnswer::Found(Ok(None))]
        );

        // Rewritten in place (same size, new content), and one chmod: both digested again.
        std::fs::write(&a, b"#!ipxe\nchain c\n").unwrap();
        std::fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let (changed, code) = shell.ask("03", Some("02"), &args, "same\n");
        assert_eq!(code, 0);
        let changed = digests((&changed, "03"));
        assert_eq!(sha_a(&changed[0]), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"#!ipxe\nchain c\n")));
        assert!(matches!(&changed[1], MetaAnswer::Found(Ok(Some(m))) if m.mode == 0o600), "{changed:?}");

        // A request the shell did not answer last: no `same`, nothing from memory.
        let (refused, code) = shell.ask("04", Some("02"), &args, "same\n");
        assert_eq!(code, KEPT_LISTS_GONE, "{}", String::from_utf8_lossy(&refused));
        let (fresh, code) = shell.ask("05", Some("02"), &args, &list);
        assert_eq!(code, 0);
        assert!(digests((&fresh, "05")).iter().all(|m| *m != MetaAnswer::Unchanged), "{fresh:?}");
        // Without a request named, the same.
        let (fresh, code) = shell.ask("06", None, &args, &list);
        assert_eq!(code, 0);
        assert!(digests((&fresh, "06")).iter().all(|m| *m != MetaAnswer::Unchanged));
        // But after it, `U` again.
        let (again, _) = shell.ask("07", Some("06"), &args, "same\n");
        assert_eq!(digests((&again, "07"))[..2], [MetaAnswer::Unchanged, MetaAnswer::Unchanged]);
    }

    /// A probe answers no file, only find's line for each (as the full request before sent them), and the
    /// queries; the shell keeps what the request before left, so a full request after it still answers
    /// `U` for a file unchanged.
    #[test]
    fn a_probe_sends_finds_lines_and_the_queries_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (a, b) = (d.join("a").display().to_string(), d.join("b").display().to_string());
        std::fs::write(&a, b"one\n").unwrap();
        std::fs::write(&b, b"two\n").unwrap();
        let preamble =
            KEPT_PREAMBLE.replace("/var/lib/groundwork/digest-index", &d.join("index").display().to_string());
        let (reads, metas) = (vec![a.clone()], vec![b.clone()]);
        let list = format!("1 0\n{a}\n{b}\n");
        let args = ["0", "1", "", "", "echo asked", ""];
        let parse = |(body, token): (Vec<u8>, &str)| parse_batch_output(&reads, &metas, 1, token, &body).unwrap();
        let mut shell = LocalKeptShell::start(&preamble);
        let (first, code) = shell.ask("01", None, &args, &list);
        assert_eq!(code, 0);
        let first = parse((first, "01"));
        assert!(!first.probe);
        let found = first.found.clone().expect("a kept shell sends find's lines");
        let found_text = String::from_utf8(found.clone()).unwrap();
        let stated: Vec<&str> = found_text.lines().filter_map(|l| l.rsplit('|').next()).collect();
        assert_eq!(stated, [a.as_str(), b.as_str(), "/etc/passwd", "/etc/group"], "{found_text}");

        let (probed, code) = shell.ask("02", Some("01"), &args, "probe\n");
        assert_eq!(code, 0);
        assert!(probed.starts_with(b"@@PROBE\n"), "{}", String::from_utf8_lossy(&probed));
        let probed = parse((probed, "02"));
        assert!(probed.probe && probed.contents.is_empty() && probed.digests.is_empty());
        assert_eq!(probed.found.as_ref(), Some(&found));
        assert_eq!(probed.outputs[0].as_ref().map(ExecOutput::stdout_str).as_deref(), Some("asked\n"));

        // A write changes the line (size and ctime); the full request after the probe answers `U` for
        // the file that did not change.
        std::fs::write(&b, b"three\n").unwrap();
        let (probed, _) = shell.ask("03", Some("02"), &args, "probe\n");
        assert_ne!(parse((probed, "03")).found.as_ref(), Some(&found));
        let (full, code) = shell.ask("04", Some("03"), &args, "same\n");
        assert_eq!(code, 0);
        let full = parse((full, "04"));
        assert!(matches!(&full.digests[0], MetaAnswer::Found(Ok(Some(m))) if m.size == 6), "{:?}", full.digests);
        // A probe naming a request the shell did not answer last is refused like `same`.
        let (_, code) = shell.ask("05", Some("03"), &args, "probe\n");
        assert_eq!(code, KEPT_LISTS_GONE);
    }

    /// A batch run for real with `stdin` (no queries); its output parsed for `reads`.
    fn batch_of(reads: &[String], stdin: &str) -> BatchEntries {
        use std::io::Write;
        let script = format!("{BATCH_SCRIPT}{BATCH_EXEC_TAIL}");
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script, "gw", "0", "0", "", ""])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (first, rest) = stdin.split_once('\n').unwrap();
        child.stdin.take().unwrap().write_all(format!("{first} c0ffee\n{rest}").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        parse_batch_output(reads, &[], 0, "c0ffee", &out.stdout).unwrap()
    }

    /// A file the transport holds at the stamp the host finds is answered `U`, not sent again; one
    /// changed since, or rewritten to the same size (a new ctime), is sent with its new stamp.
    #[test]
    fn a_file_at_its_known_stamp_is_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a").display().to_string(), dir.path().join("b").display().to_string());
        std::fs::write(&a, b"one\n").unwrap();
        std::fs::write(&b, b"two\n").unwrap();
        let reads = vec![a.clone(), b.clone()];
        let first = batch_of(&reads, &format!("2 0\n{a}\n{b}\n"));
        let [Stamp::Read(sa), Stamp::Read(sb)] = &first.stamps[..] else { panic!("{:?}", first.stamps) };
        let again = batch_of(&reads, &format!("2 2\n{sa}|{a}\n{sb}|{b}\n{a}\n{b}\n"));
        assert_eq!(again.stamps, [Stamp::Unchanged, Stamp::Unchanged]);
        assert_eq!(again.contents, [Ok(None), Ok(None)]);
        // Same size, same mtime set back by hand: the ctime still tells.
        let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
        std::fs::write(&b, b"TWO\n").unwrap();
        std::fs::File::options().write(true).open(&b).unwrap().set_modified(mtime).unwrap();
        let changed = batch_of(&reads, &format!("2 2\n{sa}|{a}\n{sb}|{b}\n{a}\n{b}\n"));
        assert_eq!(changed.stamps[0], Stamp::Unchanged);
        assert!(matches!(&changed.stamps[1], Stamp::Read(s) if s != sb), "{:?}", changed.stamps);
        assert_eq!(changed.contents[1], Ok(Some(b"TWO\n".to_vec())));
    }

    #[test]
    fn meta_output() {
        let paths: Vec<String> = ["/a", "/b"].iter().map(|s| s.to_string()).collect();
        let r = parse_meta_output(&paths, "F abc 12 644 root nginx\nM\n").unwrap();
        assert_eq!(
            r[0],
            Ok(Some(FileMeta {
                sha256: "abc".into(),
                size: 12,
                mode: 0o644,
                owner: "root".into(),
                group: "nginx".into()
            }))
        );
        assert_eq!(r[1], Ok(None));
    }

    #[test]
    fn batch_query_outputs_are_cut_by_the_token() {
        // Output that looks like headers, or like the cut of another token, inside a query's stdout
        // must not break the framing.
        let out = b"X 0\nE not run\nX 3\nE x\nX 1 2\n@@c0ffe\n\n@@c0ffee\n\n@@c0ffee\n\n@@c0ffee\nboom\n@@c0ffee\n\n@@CAPS yes no\n";
        let r = parse_exec_outputs(3, "c0ffee", out).unwrap();
        assert_eq!(r[0], Some(ExecOutput { code: 0, stdout: b"E x\nX 1 2\n@@c0ffe\n".to_vec(), stderr: vec![] }));
        assert_eq!(r[1], None);
        assert_eq!(r[2], Some(ExecOutput { code: 3, stdout: vec![], stderr: b"boom".to_vec() }));
        assert!(parse_exec_outputs(1, "c0ffee", b"X 0\nshort\n@@c0ffee\n").is_err(), "no stderr");
        assert!(parse_exec_outputs(1, "c0ffee", b"Y\n").is_err());
        assert!(parse_exec_outputs(2, "c0ffee", b"X 0\n").is_err());
        assert!(parse_exec_outputs(1, "c0ffee", b"X 99999999999\n\n@@c0ffee\n\n@@c0ffee\n").is_err());
        assert_eq!(parse_host_tools(out), Some(["yes", "no"]));
        assert_eq!(parse_host_tools(b"@@CAPS - ../x\n"), Some(["", ""]));
        assert_eq!(parse_host_tools(b"X 0 0 0\n"), None);
    }

    #[test]
    fn batch_sections_split_at_whole_lines_only() {
        assert_eq!(split_at_line(b"@@EXEC\nrest", b"@@EXEC\n"), Some((&b""[..], &b"rest"[..])));
        assert_eq!(
            split_at_line(b"F a 1 644\nE x @@EXEC\n@@EXEC\nX", b"@@EXEC\n"),
            Some((&b"F a 1 644\nE x @@EXEC\n"[..], &b"X"[..]))
        );
        assert_eq!(split_at_line(b"M\n", b"@@EXEC\n"), None);
    }

    #[tokio::test]
    async fn a_stream_ends_with_the_line_its_trailer_makes_of_the_byte_count() {
        let data = b"kernel image".to_vec();
        let mut sent = Vec::new();
        let line = |seen: u64| format!("{seen} bytes\n").into_bytes();
        Trailer::new(&data[..], line).read_to_end(&mut sent).await.unwrap();
        assert_eq!(sent, b"kernel image12 bytes\n".to_vec());
        let mut bare = Vec::new();
        Trailer::new(&data[..], |_| Vec::new()).read_to_end(&mut bare).await.unwrap();
        assert_eq!(bare, data);
    }

    #[test]
    fn script_values_are_quoted_arguments() {
        let line = SshTransport::script_line("echo \"$1\"", "n", &["/etc/a b; reboot"]);
        assert_eq!(line, "sh -c 'echo \"$1\"' n '/etc/a b; reboot'");
    }
}
