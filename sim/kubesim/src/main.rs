//! `groundwork-kubesim`: the Kubernetes/OpenShift API simulator the lab and the tests run (see
//! sim/kubesim and docs/simulator.md). Not part of what operators install.

use clap::Parser;
use groundwork_kubesim::{Hostile, Identity, Listen, SimConfig, SimNode};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Kubernetes/OpenShift API simulator that plays an install timeline (test support)")]
struct Args {
    /// Where to serve: IP:PORT, or NETNS/IP:PORT for a named network namespace. Repeatable.
    #[arg(long, required = true)]
    listen: Vec<String>,
    /// A machine that joins: ROLE:NAME:IP (ROLE master, worker or infra; NAME the node's FQDN). Repeatable.
    #[arg(long)]
    node: Vec<String>,
    /// Hostile CSRs to post: undeclared-node, serving-bad-ip, client-wrong-requestor. Repeatable.
    #[arg(long)]
    hostile: Vec<String>,
    /// The cluster domain (for names the simulator invents).
    #[arg(long)]
    domain: String,
    /// Bootstrap completes this long after the first authenticated request.
    #[arg(long, default_value = "2000")]
    bootstrap_delay_ms: u64,
    /// Pause between the steps of a node's join and before operators settle.
    #[arg(long, default_value = "300")]
    step_ms: u64,
    /// API URL written into the kubeconfig; by default the first listener's (with the port it was given,
    /// so `--listen 127.0.0.1:0` works).
    #[arg(long, default_value = "")]
    server: String,
    /// Names and IPs the serving certificate covers. Repeatable.
    #[arg(long)]
    san: Vec<String>,
    /// Where to write the kubeconfig (CA and bearer token); written once the listeners are bound.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Serve with this certificate chain (PEM) instead of a generated one: the installer's, as the
    /// bootstrap node has it from its ignition. Needs --tls-key and --client-ca.
    #[arg(long, requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Accept client certificates of this CA (the admin kubeconfig's) as authenticated.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Events kept per collection for watches; an older resourceVersion is 410 Expired.
    #[arg(long, default_value_t = groundwork_kubesim::store::DEFAULT_WINDOW)]
    watch_window: usize,
    /// An idle watch that asked for bookmarks gets one this often.
    #[arg(long, default_value = "10000")]
    bookmark_interval_ms: u64,
}

fn config(a: Args) -> anyhow::Result<SimConfig> {
    let nodes = a
        .node
        .iter()
        .map(|n| match n.split(':').collect::<Vec<_>>().as_slice() {
            [role @ ("master" | "worker" | "infra"), name, ip] => {
                Ok(SimNode { name: name.to_string(), role: role.to_string(), ip: ip.parse()? })
            }
            _ => anyhow::bail!("--node {n}: expected ROLE:NAME:IP"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SimConfig {
        listen: a.listen.iter().map(|l| Listen::parse(l)).collect::<Result<_, _>>()?,
        nodes,
        hostile: a.hostile.iter().map(|h| Hostile::parse(h)).collect::<Result<_, _>>()?,
        domain: a.domain,
        bootstrap_delay: Duration::from_millis(a.bootstrap_delay_ms),
        step: Duration::from_millis(a.step_ms),
        server: a.server,
        san: a.san,
        kubeconfig: a.kubeconfig,
        identity: match (a.tls_cert, a.tls_key, a.client_ca) {
            (Some(cert), Some(key), Some(client_ca)) => Some(Identity { cert, key, client_ca }),
            _ => None,
        },
        watch_window: a.watch_window,
        bookmark_interval: Duration::from_millis(a.bookmark_interval_ms),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cfg = config(Args::parse())?;
    groundwork_kubesim::run(cfg).await?;
    Ok(())
}
