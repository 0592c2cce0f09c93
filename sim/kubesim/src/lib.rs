//! # groundwork-kubesim
//!
//! Test support: a simulator of the Kubernetes/OpenShift API for the parts groundwork uses. There is no
//! real kube-apiserver or OpenShift on the machines groundwork is developed and tested on; cluster
//! behaviour is tested against this instead. It speaks the real REST/JSON over HTTPS (bearer token,
//! TLS with its own CA, written into a kubeconfig), keeps objects with resourceVersions and server-side
//! apply field ownership ([`store`]), and plays the install timeline ([`timeline`]).
//!
//! It can listen inside other network namespaces (`--listen NETNS/IP:PORT`), so in the lab the API
//! answers on the bootstrap and master stand-ins and is reached through the real haproxy.

pub mod api;
pub mod openapi;
pub mod store;
pub mod timeline;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_rustls::rustls;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("listener {0}: {1}")]
    Listen(String, String),
    #[error("certificates: {0}")]
    Tls(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("bad argument {0}")]
    Argument(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// A client CSR for a node nobody declared.
    UndeclaredNode,
    /// A second serving CSR of the first worker, with a SAN IP that is not the worker's.
    ServingBadIp,
    /// A client CSR for the last worker from a service account that is not the node-bootstrapper.
    ClientWrongRequestor,
    /// The first master finds no PTR record for its address and registers as `localhost`.
    MasterNamedLocalhost,
    /// The first worker asks twice for its client certificate (a second, well-formed client CSR right
    /// after the first), and once more after it has joined.
    DuplicateClient,
    /// A well-formed client CSR for the first master once it is Ready.
    ReadyMasterClient,
}

impl Hostile {
    pub fn parse(s: &str) -> Result<Hostile, SimError> {
        Ok(match s {
            "undeclared-node" => Hostile::UndeclaredNode,
            "serving-bad-ip" => Hostile::ServingBadIp,
            "client-wrong-requestor" => Hostile::ClientWrongRequestor,
            "master-named-localhost" => Hostile::MasterNamedLocalhost,
            "duplicate-client" => Hostile::DuplicateClient,
            "ready-master-client" => Hostile::ReadyMasterClient,
            other => return Err(SimError::Argument(format!("--hostile {other}"))),
        })
    }
}

/// A machine that boots into the cluster: `master`, `worker` or `infra` (a worker to the installer).
#[derive(Clone, Debug, PartialEq)]
pub struct SimNode {
    /// The Kubernetes node name (FQDN).
    pub name: String,
    pub role: String,
    pub ip: IpAddr,
}

/// Where to listen: an address in this process's network namespace or in a named one.
#[derive(Clone, Debug)]
pub struct Listen {
    pub netns: Option<String>,
    pub addr: SocketAddr,
}

impl Listen {
    pub fn parse(s: &str) -> Result<Listen, SimError> {
        let (netns, addr) = match s.rsplit_once('/') {
            Some((ns, a)) => (Some(ns.to_string()), a),
            None => (None, s),
        };
        let addr = addr.parse().map_err(|_| SimError::Argument(format!("--listen {s}")))?;
        Ok(Listen { netns, addr })
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub listen: Vec<Listen>,
    pub nodes: Vec<SimNode>,
    pub hostile: Vec<Hostile>,
    pub domain: String,
    pub bootstrap_delay: Duration,
    /// Time between the steps of a join and before operators settle.
    pub step: Duration,
    /// URL written into the kubeconfig (the load balancer's API address).
    pub server: String,
    /// Names and addresses the serving certificate covers.
    pub san: Vec<String>,
    pub kubeconfig: PathBuf,
    /// Serve with this identity (as a bootstrap node does, from its ignition) instead of a generated one.
    pub identity: Option<Identity>,
    /// Events kept per collection for watches (kube-apiserver's watch cache keeps 100 by default).
    pub watch_window: usize,
    /// An idle watch that asked for bookmarks gets one this often.
    pub bookmark_interval: Duration,
}

/// The API's identity as the installer made it: the serving certificate (PEM chain) and key, and the
/// CA whose client certificates are accepted (the admin kubeconfig's).
#[derive(Clone, Debug)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// The simulated cluster: store plus timeline state.
pub struct Sim {
    pub store: store::Store,
    pub config: Arc<SimConfig>,
    pub reachable_at: Option<Instant>,
    pub bootstrap_done: bool,
    pub joins: BTreeMap<String, timeline::Join>,
    pub operators_at: Option<Instant>,
    pub operators_done: bool,
    pub pod_ready_at: BTreeMap<String, Instant>,
    /// Requests served, by verb (`get`, `list`, `watch`, …): what `/sim/requests` reports.
    pub requests: BTreeMap<&'static str, u64>,
    /// The newest revision, for watches waiting on a change.
    revision: tokio::sync::watch::Sender<u64>,
    names: u64,
    ca: Issuer<'static, KeyPair>,
}

impl Sim {
    pub fn new(config: SimConfig, ca: Issuer<'static, KeyPair>) -> Sim {
        let mut store = store::Store::default();
        store.window = config.watch_window;
        let mut sim = Sim {
            store,
            config: Arc::new(config),
            reachable_at: None,
            bootstrap_done: false,
            joins: BTreeMap::new(),
            operators_at: None,
            operators_done: false,
            pod_ready_at: BTreeMap::new(),
            requests: BTreeMap::new(),
            revision: tokio::sync::watch::Sender::new(0),
            names: 0,
            ca,
        };
        sim.seed();
        sim
    }

    /// `prefix` + five characters, unique in this run (like the API server's generateName).
    pub fn generate_name(&mut self, prefix: &str) -> String {
        self.names += 1;
        let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self.names * 7919 + 12345;
        let mut s = String::from(prefix);
        for _ in 0..5 {
            s.push(alphabet[(n % alphabet.len() as u64) as usize] as char);
            n /= alphabet.len() as u64;
        }
        s
    }

    /// A write happened: advance the timeline at once so readers see its consequences promptly.
    pub fn changed(&mut self) {
        self.tick(Instant::now());
    }

    /// Tell waiting watches that the store moved on (a no-op when it did not).
    pub fn publish(&self) {
        let newest = self.store.revision();
        self.revision.send_if_modified(|r| std::mem::replace(r, newest) != newest);
    }
}

fn random_token() -> Result<String, SimError> {
    use std::io::Read;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| SimError::Io { path: "/dev/urandom".into(), message: e.to_string() })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

struct Tls {
    ca_pem: String,
    server: rustls::ServerConfig,
    issuer: Issuer<'static, KeyPair>,
}

fn tls(san: &[String], identity: Option<&Identity>) -> Result<Tls, SimError> {
    let e = |e: rcgen::Error| SimError::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "groundwork-kubesim-ca");
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(e)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    for s in san {
        params.subject_alt_names.push(match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.as_str().try_into().map_err(e)?),
        });
    }
    let cert = params.signed_by(&key, &issuer).map_err(e)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|m| SimError::Tls(m.to_string()))?;
    let server = match identity {
        None => {
            let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                .map_err(|m| SimError::Tls(m.to_string()))?;
            builder.with_no_client_auth().with_single_cert(vec![cert.der().clone()], key_der)
        }
        Some(id) => {
            use rustls_pki_types::pem::PemObject;
            use rustls_pki_types::{CertificateDer, PrivateKeyDer};
            let pem = |p: &PathBuf, m: String| SimError::Tls(format!("{}: {m}", p.display()));
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&id.cert)
                .map_err(|m| pem(&id.cert, m.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|m| pem(&id.cert, m.to_string()))?;
            let key = PrivateKeyDer::from_pem_file(&id.key).map_err(|m| pem(&id.key, m.to_string()))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&id.client_ca).map_err(|m| pem(&id.client_ca, m.to_string()))? {
                roots
                    .add(c.map_err(|m| pem(&id.client_ca, m.to_string()))?)
                    .map_err(|m| pem(&id.client_ca, m.to_string()))?;
            }
            // Client certificates of that CA authenticate; a bearer token still does too.
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|m| SimError::Tls(m.to_string()))?;
            builder.with_client_cert_verifier(verifier).with_single_cert(chain, key)
        }
    }
    .map_err(|m| SimError::Tls(m.to_string()))?;
    // With the installer's identity, clients trust its CA: the last certificate of the served chain.
    let ca_pem = match identity {
        None => ca_cert.pem(),
        Some(id) => {
            let chain =
                std::fs::read_to_string(&id.cert).map_err(|m| SimError::Tls(format!("{}: {m}", id.cert.display())))?;
            let start = chain.rfind("-----BEGIN CERTIFICATE-----").unwrap_or(0);
            chain[start..].to_string()
        }
    };
    Ok(Tls { ca_pem, server, issuer })
}

fn write_kubeconfig(cfg: &SimConfig, ca_pem: &str, token: &str) -> Result<(), SimError> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    // The installer's certificate names the API by name only: verify it for that name.
    let server_name = match &cfg.identity {
        Some(_) => format!("    tls-server-name: api.{}\n", cfg.domain),
        None => String::new(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\n{server_name}    certificate-authority-data: {b64}\n\
         users:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: admin\n  context:\n    cluster: sim\n    user: admin\n\
         current-context: admin\n",
        cfg.server
    );
    let io = |e: std::io::Error| SimError::Io { path: cfg.kubeconfig.display().to_string(), message: e.to_string() };
    let tmp = cfg.kubeconfig.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
    }
    // Written last and atomically: its presence means the simulator is serving.
    std::fs::rename(&tmp, &cfg.kubeconfig).map_err(io)
}

/// Bind in a named network namespace: a thread enters it, binds, and leaves the socket behind.
fn bind(l: &Listen) -> Result<std::net::TcpListener, SimError> {
    let what = format!("{}{}", l.netns.as_deref().map(|n| format!("{n}/")).unwrap_or_default(), l.addr);
    let err = |m: String| SimError::Listen(what.clone(), m);
    let Some(ns) = l.netns.clone() else {
        return std::net::TcpListener::bind(l.addr).map_err(|e| err(e.to_string()));
    };
    let addr = l.addr;
    std::thread::spawn(move || -> Result<std::net::TcpListener, String> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(format!("/run/netns/{ns}")).map_err(|e| format!("/run/netns/{ns}: {e}"))?;
        // SAFETY: setns on this thread only; the fd is valid for the call.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        std::net::TcpListener::bind(addr).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| err("binding thread panicked".into()))?
    .map_err(err)
}

/// A reply: one buffer, or a watch's frames as they come (chunked).
pub enum Body {
    Full(Full<Bytes>),
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(f) => std::pin::Pin::new(f).poll_frame(cx),
            Body::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(hyper::body::Frame::data(b)))),
        }
    }
}

/// Stream a watch: its opening frames, then each change as it lands, a bookmark when it has been idle for
/// `bookmark_interval` (if asked for), until its timeout, an ERROR, or the client going away.
async fn stream_watch(
    sim: Arc<Mutex<Sim>>,
    mut watch: api::Watch,
    opening: Vec<serde_json::Value>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let line = |v: &serde_json::Value| Bytes::from(format!("{v}\n"));
    for f in &opening {
        if tx.send(line(f)).await.is_err() {
            return;
        }
    }
    let (mut changes, every) = {
        let sim = sim.lock().await;
        (sim.revision.subscribe(), sim.config.bookmark_interval)
    };
    let deadline = watch.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_sent = tokio::time::Instant::now();
    loop {
        let (frames, newest) = {
            let sim = sim.lock().await;
            (api::watch_next(&sim, &mut watch), sim.store.revision())
        };
        let frames = match frames {
            Ok(f) => f,
            Err(error) => {
                let _ = tx.send(line(&error)).await;
                return;
            }
        };
        for f in &frames {
            if tx.send(line(f)).await.is_err() {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
        let bookmark_at = last_sent + every;
        let wake = deadline.map_or(bookmark_at, |d| d.min(bookmark_at));
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
            _ = tx.closed() => return,
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return;
        }
        if watch.bookmarks && now >= bookmark_at {
            if tx.send(line(&watch.bookmark(newest.max(watch.from)))).await.is_err() {
                return;
            }
            last_sent = now;
        }
    }
}

async fn serve_request(
    sim: Arc<Mutex<Sim>>,
    token: Arc<String>,
    listener: Arc<String>,
    client_cert: bool,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path().to_string();
    let reply = |code: u16, ctype: &str, bytes: Vec<u8>| {
        let mut r = hyper::Response::new(Body::Full(Full::new(Bytes::from(bytes))));
        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    match path.as_str() {
        "/readyz" | "/healthz" | "/livez" => return reply(200, "text/plain", b"ok".to_vec()),
        // Which listener answered: lets a test see where the load balancer sent a connection.
        "/sim/whoami" => return reply(200, "text/plain", format!("{listener}\n").into_bytes()),
        _ => {}
    }
    // A client certificate was verified against the client CA during the handshake.
    let authorized = client_cert
        || parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token.as_str());
    if !authorized {
        let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
        return reply(401, "application/json", body.to_string().into_bytes());
    }
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let request = api::Request {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        content_type,
        body: &body,
    };
    let mut guard = sim.lock().await;
    if path == "/sim/requests" {
        let counts = serde_json::to_vec(&guard.requests).unwrap_or_default();
        return reply(200, "application/json", counts);
    }
    *guard.requests.entry(api::verb(&request)).or_default() += 1;
    if guard.reachable_at.is_none() {
        guard.reachable_at = Some(Instant::now());
    }
    guard.tick(Instant::now());
    guard.publish();
    match api::watch_start(&guard, &request) {
        Some(Ok((watch, opening))) => {
            drop(guard);
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(stream_watch(sim.clone(), watch, opening, tx));
            let mut r = hyper::Response::new(Body::Stream(rx));
            r.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
            return Ok(r);
        }
        Some(Err(resp)) => return reply(resp.code, "application/json", resp.body.to_string().into_bytes()),
        None => {}
    }
    let resp = api::handle(&mut guard, &request);
    guard.publish();
    let mut r = reply(resp.code, "application/json", resp.body.to_string().into_bytes())?;
    for w in &resp.warnings {
        // RFC 7234's form, as kube-apiserver sends it: `299 - "text"`, the text's quotes escaped.
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = hyper::header::HeaderValue::from_str(&text) {
            r.headers_mut().append(hyper::header::WARNING, v);
        }
    }
    Ok(r)
}

/// Serve until the process is killed.
pub async fn run(mut config: SimConfig) -> Result<(), SimError> {
    let tls = tls(&config.san, config.identity.as_ref())?;
    let token = Arc::new(random_token()?);
    let mut listeners = Vec::new();
    for l in &config.listen {
        let std_listener = bind(l)?;
        std_listener.set_nonblocking(true).map_err(|e| SimError::Listen(l.addr.to_string(), e.to_string()))?;
        if config.server.is_empty() {
            let bound = std_listener.local_addr().map_err(|e| SimError::Listen(l.addr.to_string(), e.to_string()))?;
            config.server = format!("https://{bound}");
        }
        let name = l.netns.clone().unwrap_or_else(|| l.addr.to_string());
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| SimError::Listen(name.clone(), e.to_string()))?;
        listeners.push((name, listener));
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server));
    write_kubeconfig(&config, &tls.ca_pem, &token)?;
    let sim = Arc::new(Mutex::new(Sim::new(config, tls.issuer)));
    let ticker = sim.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            let mut sim = ticker.lock().await;
            sim.tick(Instant::now());
            sim.publish();
        }
    });
    let mut tasks = Vec::new();
    for (name, listener) in listeners {
        let (sim, token, acceptor, name) = (sim.clone(), token.clone(), acceptor.clone(), Arc::new(name));
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (sim, token, acceptor, name) = (sim.clone(), token.clone(), acceptor.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let client_cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                    let svc = service_fn(move |req| {
                        serve_request(sim.clone(), token.clone(), name.clone(), client_cert, req)
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
