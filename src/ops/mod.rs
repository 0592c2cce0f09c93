//! One module per command. Each is a thin use of the config and engine layers.

pub mod apply;
pub mod destroy;
pub mod drift;
pub mod events;
pub mod graph;
pub mod import;
pub mod manpages;
pub mod plan;
pub mod render;
pub mod show;
pub mod unlock;
pub mod validate;
pub mod verify;

use crate::config::{self, Loaded};
use crate::engine::refresh::{refresh, Reading};
use crate::engine::{gates, make_plan, make_plan_remembering, Plan, Registry};
use crate::error::Result;
use crate::transport::Hosts;
use groundwork_sdk::{Address, Phase, Resource, Secrets};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Exit codes shared by plan, apply and drift.
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;

/// Address patterns a run is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
}

/// A loaded, validated and expanded environment with its connections.
pub struct Workspace {
    pub loaded: Loaded,
    /// The resources `open` expanded (narrowed by `scope`); empty once an apply spent them
    /// ([`Workspace::spend_expansion`]).
    pub desired: Vec<Resource>,
    pub hosts: Hosts,
    pub registry: Registry,
    /// `--target` / `--exclude` (orphans found on hosts are filtered by it too).
    pub scope: crate::engine::scope::Matcher,
    /// Secret content of the environment, in memory only (plans carry its digests).
    pub secrets: Secrets,
    /// The moment the environment is expanded for (seconds since the epoch): now, or a saved plan's.
    pub now: u64,
    /// `destroy`: nothing is desired any more; every plan is of what the records hold.
    pub nothing_desired: bool,
    /// `desired` has served a plan already, or something was applied since it was expanded. Only a
    /// run's first plan uses it: an apply can make what expansion reads (the installer's outputs), and
    /// a drift loop must see a local source that changed between its ticks.
    expansion_spent: std::sync::atomic::AtomicBool,
    /// A drift loop's last expansion, kept while the local files it read are unchanged
    /// ([`Workspace::keep_expansions`]).
    kept: Option<std::sync::Mutex<Option<Arc<Kept>>>>,
    /// What the last plan of a kept expansion found (see [`Remembered`]).
    remembered: std::sync::Mutex<Option<(Arc<Kept>, Remembered)>>,
    /// Expansions made for plans after the run's first (what `kept` saves; tests count them).
    expansions: std::sync::atomic::AtomicUsize,
    /// Plans that were the one remembered (see [`Remembered`]; tests count them).
    plans_remembered: std::sync::atomic::AtomicUsize,
}

/// What the last plan of a kept expansion found: the resources in sync (diffed again only if observed
/// otherwise); and, when that plan was only looked at (no lock tokens) and read nothing but the hosts'
/// batches, those batches and the plan they made: the same batches make the same plan.
#[derive(Default)]
struct Remembered {
    in_sync: crate::engine::InSync,
    made: Option<(std::collections::BTreeMap<String, groundwork_sdk::Batch>, Plan)>,
}

/// What waits for the installer: its resource, and the addresses that wait.
type Pending = Option<(Address, Vec<Address>)>;

/// An expansion kept for the next plan: for `phase`, from the local files `reads` names.
struct Kept {
    phase: Phase,
    resources: Vec<Resource>,
    pending: Pending,
    reads: groundwork_sdk::expansion::ReadStamps,
}

/// What a plan is made from: the resources of its phase and what waits for the installer.
enum Expanded<'a> {
    Made(Cow<'a, [Resource]>, Pending),
    Kept(Arc<Kept>),
}

impl Expanded<'_> {
    fn parts(&self) -> (&[Resource], &Pending) {
        match self {
            Expanded::Made(resources, pending) => (resources, pending),
            Expanded::Kept(k) => (&k.resources, &k.pending),
        }
    }
}

impl Workspace {
    pub fn open(path: &Path) -> Result<Workspace> {
        Workspace::open_at(path, config::expand::now_unix())
    }

    /// Open as of `now`: a saved plan is checked against the environment expanded for its own moment
    /// (zone serials are dated, ignition ages counted).
    pub fn open_at(path: &Path, now: u64) -> Result<Workspace> {
        let loaded = config::load_valid(path)?;
        let secrets = Secrets::default();
        let desired = config::expand::resources_for(
            &loaded,
            &Phase::default(),
            &config::expand::expansion(&loaded, &secrets, now),
        )?;
        let hosts = Hosts::new(&loaded.env, &loaded.dir, secrets.clone());
        Ok(Workspace {
            loaded,
            desired,
            hosts,
            registry: Registry::builtin(),
            scope: Default::default(),
            secrets,
            now,
            nothing_desired: false,
            expansion_spent: Default::default(),
            kept: None,
            remembered: Default::default(),
            expansions: Default::default(),
            plans_remembered: Default::default(),
        })
    }

    /// What this environment is: its cluster and every input read so far, by digest.
    pub fn identity(&self) -> show::Identity {
        show::Identity::new(&self.loaded.name, self.loaded.inputs.digests())
    }

    /// The resources of the environment in `phase`.
    pub fn expand(&self, phase: &Phase) -> Result<Cow<'_, [Resource]>> {
        // What `open` expanded, borrowed for the run's first plan: the same phase, not narrowed, nothing
        // applied since (at 2000 nodes an expansion costs ~45 ms, and the resources are 6 MB).
        if *phase == Phase::default()
            && self.scope.is_everything()
            && !self.expansion_spent.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(Cow::Borrowed(&self.desired));
        }
        let x = config::expand::expansion(&self.loaded, &self.secrets, self.now);
        Ok(Cow::Owned(config::expand::resources_for(&self.loaded, phase, &x)?))
    }

    /// The expansion `open` made has served the run's first plan: let it go (at 2000 nodes it is 6 MB,
    /// otherwise held beside the one an apply's read-back makes). `desired` is empty after.
    pub fn spend_expansion(&mut self) {
        self.expansion_spent.store(true, std::sync::atomic::Ordering::SeqCst);
        self.desired = Vec::new();
    }

    /// Something is about to be applied: what `open` expanded no longer stands for the next plan.
    pub fn applying(&self) {
        self.expansion_spent.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(Ok(mut kept)) = self.kept.as_ref().map(|k| k.lock()) {
            *kept = None;
        }
    }

    /// Keep each plan's expansion for the next while the local files it read (templates, sources, the
    /// installer's outputs, the pull secret...) are unchanged, checked by a `stat` each: a drift loop
    /// plans every few seconds, and at 1000 nodes an expansion costs ~10 ms of each check.
    pub fn keep_expansions(&mut self) {
        self.kept = Some(Default::default());
    }

    /// How many expansions plans made after the run's first (not counting the ones kept).
    pub fn expansions(&self) -> usize {
        self.expansions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many plans were the one the last plan made (every host answered the same; see
    /// [`Workspace::plan_asking`]).
    pub fn plans_remembered(&self) -> usize {
        self.plans_remembered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The resources of `phase` and what waits for the installer, as [`Workspace::plan_asking`] plans
    /// them: the run's first expansion, the one kept, or a new one (kept if asked to).
    fn expanded(&self, phase: &Phase) -> Result<Expanded<'_>> {
        // Kept expansions are whole (a narrowed run narrows them as it does a new one).
        let slot = self.kept.as_ref();
        if let Some(k) = slot.and_then(|s| s.lock().ok()?.clone()).filter(|k| k.phase == *phase && k.reads.unchanged())
        {
            return Ok(Expanded::Kept(k));
        }
        // Expanded under the journal, which notes every local file read and its stamp.
        let (made, reads) = groundwork_sdk::expansion::journaled(|| {
            let x = config::expand::expansion(&self.loaded, &self.secrets, self.now);
            Ok::<_, crate::error::Error>((self.expand(phase)?, config::expand::pending_for(&self.loaded, phase, &x)?))
        });
        let (made, pending) = made?;
        let Cow::Owned(resources) = made else { return Ok(Expanded::Made(made, pending)) };
        self.expansions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Without reads (a file read had changed in the last moments, and may change again unseen within
        // its timestamp's tick) the expansion is not kept.
        let (Some(slot), Some(reads)) = (slot, reads) else {
            return Ok(Expanded::Made(Cow::Owned(resources), pending));
        };
        let kept = Arc::new(Kept { phase: phase.clone(), resources, pending, reads });
        if let Ok(mut k) = slot.lock() {
            *k = Some(kept.clone());
        }
        Ok(Expanded::Kept(kept))
    }

    /// Narrow to `--target`/`--exclude`; prints which dependencies were pulled in.
    pub fn scope(mut self, scope: &Scope) -> Result<Workspace> {
        let matcher = crate::engine::scope::Matcher::new(&scope.targets, &scope.excludes)?;
        let unmatched = crate::engine::scope::Matcher::unmatched(&scope.targets, &scope.excludes, &self.desired)?;
        if !unmatched.is_empty() {
            return Err(crate::error::Error::Usage(format!(
                "{} matches no resource of this environment (addresses look like \
                 haproxy.config[lb1:/etc/haproxy/haproxy.cfg]; `groundwork graph` lists them)",
                unmatched.join(" and ")
            )));
        }
        if !scope.targets.is_empty() || !scope.excludes.is_empty() {
            crate::errln!(
                "warning: the run is narrowed by --target/--exclude: what it shows may be incomplete, and \
                 changes outside it are neither planned nor applied"
            );
        }
        if !matcher.is_everything() {
            let (kept, notes) = matcher.select(&self.desired);
            for n in notes {
                crate::errln!("note: {n}");
            }
            self.desired = kept;
        }
        self.scope = matcher;
        Ok(self)
    }

    /// Every infra host of the environment: where its lock lives.
    pub fn host_names(&self) -> Vec<String> {
        self.loaded.env.hosts.keys().map(|h| h.to_string()).collect()
    }

    /// Take the environment's apply lock on every host.
    pub async fn lock(&self, operation: &str, wait: Option<std::time::Duration>) -> Result<crate::engine::lock::Held> {
        let (hosts, names, lock) = (&self.hosts, self.host_names(), self.lock_name());
        // The shared lock says which cluster's run holds it.
        let operation = match lock == self.loaded.name {
            true => operation.to_string(),
            false => format!("{operation} of {}", self.loaded.name),
        };
        let held = crate::engine::lock::acquire(hosts, &names, &lock, &operation, wait, crate::engine::lock::HEARTBEAT)
            .await?;
        events::emit("lock_taken", serde_json::json!({"id": held.info.id, "operation": operation, "hosts": names}));
        Ok(held)
    }

    /// The lock this environment's runs take: its own, or the one shared by every environment on shared
    /// infra hosts.
    pub fn lock_name(&self) -> String {
        crate::engine::lock::lock_name(&self.loaded.name, self.loaded.env.cluster.shared_infra)
    }

    /// Release the lock taken with `lock`.
    pub async fn unlock(&self, held: crate::engine::lock::Held) {
        let id = held.info.id.clone();
        held.release(&self.hosts).await;
        events::emit("lock_released", serde_json::json!({"id": id}));
    }

    /// Probe the install gates (none without an openshift section).
    pub async fn gates(&self) -> Result<Vec<groundwork_sdk::GateStatus>> {
        let client = self.hosts.cluster().await?;
        Ok(gates::probe_all(client.as_ref().map(|c| c as &dyn groundwork_cluster::gates::Reads), &self.loaded.env)
            .await)
    }

    /// Probe the gates, expand the inventory for the phase they put it in, refresh and diff; with -v,
    /// the time of each phase and the round trips per host.
    pub async fn plan(&self) -> Result<Plan> {
        self.plan_in(&self.scope).await
    }

    /// [`Workspace::plan`] of the resources `scope` selects (and what they depend on).
    pub async fn plan_in(&self, scope: &crate::engine::scope::Matcher) -> Result<Plan> {
        Ok(self.plan_asking(scope, &crate::engine::refresh::Asks::default()).await?.0)
    }

    /// [`Workspace::plan_in`], with `asks`: per host, read-only queries of the caller's own run in the
    /// plan's batch, and answered in what it returns besides the plan (a drift tick's service table and
    /// VIP holders, without another exec per host); and whether lock tokens are wanted.
    ///
    /// A plan of a kept expansion (a drift loop) that wants no lock tokens, in the workspace's own
    /// scope, is the plan the last such one made when every host's batch answered exactly as then and
    /// that plan read nothing else: no record parsed, no provider read, no diff.
    pub async fn plan_asking(
        &self,
        scope: &crate::engine::scope::Matcher,
        asks: &crate::engine::refresh::Asks,
    ) -> Result<(Plan, crate::engine::refresh::Answers)> {
        // Reading every host takes a moment over SSH: say so if it takes more than a second.
        let _spinner =
            crate::output::DelayedSpinner::new("reading the hosts and the cluster", std::time::Duration::from_secs(1));
        let started = std::time::Instant::now();
        if self.nothing_desired {
            let none = BTreeSet::new();
            let mut refreshed =
                refresh(&self.registry, &self.hosts, &self.loaded.name, &[], &none, scope, asks).await?;
            let mut plan = make_plan(&self.registry, &self.loaded.name, &[], &refreshed)?;
            plan.keep_records(&mut refreshed.records);
            return Ok((plan, refreshed.answers));
        }
        let before = self.hosts.round_trips().await;
        let mut statuses = self.gates().await?;
        gates::add_csr_verdicts(self.hosts.cluster().await?.as_ref(), &self.loaded.env, &mut statuses).await;
        let gate_time = started.elapsed();
        let phase = gates::phase_of(&statuses);
        let made_before = self.expansions();
        let expanded = self.expanded(&phase)?;
        let (resources, pending) = expanded.parts();
        let (active, blocked) = gates::partition(Cow::Borrowed(resources), &phase);
        let desired = scope.narrow(active);
        let pending = pending.as_ref().filter(|(blocker, _)| desired.iter().any(|r| &r.address == blocker)).map(
            |(waits_for, addresses)| crate::engine::plan::Pending {
                waits_for: waits_for.clone(),
                addresses: addresses.clone(),
            },
        );
        let mut waiting: BTreeSet<Address> = blocked.values().flatten().cloned().collect();
        waiting.extend(pending.iter().flat_map(|p| p.addresses.iter().cloned()));
        let expand_time = started.elapsed() - gate_time;
        let refreshing = std::time::Instant::now();
        let reading = Reading {
            registry: &self.registry,
            hosts: &self.hosts,
            environment: &self.loaded.name,
            desired: &desired,
            waiting: &waiting,
            in_scope: scope,
            asks,
        };
        let batches = reading.batches().await?;
        let kept = match &expanded {
            Expanded::Kept(kept) => Some(kept),
            Expanded::Made(..) => None,
        };
        let mut memo = kept.and_then(|kept| match self.remembered.lock().ok()?.take() {
            Some((of, memo)) if Arc::ptr_eq(&of, kept) => Some(memo),
            _ => None,
        });
        // A plan only looked at, in the workspace's own scope: the plan the last one made serves if
        // every host answered the same.
        let rememberable = kept.is_some() && asks.no_lock_tokens && std::ptr::eq(scope, &self.scope);
        let made = memo.as_ref().and_then(|m| m.made.as_ref()).filter(|_| rememberable);
        if let Some((_, plan)) = made.filter(|(seen, _)| batches.same_as(seen)) {
            self.plans_remembered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut plan = plan.clone();
            let answers = batches.answers(asks);
            if let (Some(kept), Ok(mut slot)) = (kept, self.remembered.lock()) {
                *slot = memo.take().map(|m| (kept.clone(), m));
            }
            plan.gates = gates::reports(statuses, blocked);
            tracing::info!(
                gates_ms = gate_time.as_millis() as u64,
                expand_ms = expand_time.as_millis() as u64,
                expansion = "kept",
                refresh_ms = refreshing.elapsed().as_millis() as u64,
                diff_ms = 0,
                resources = desired.len(),
                remembered = true,
                round_trips = %trips_since(&before, &self.hosts.round_trips().await),
                "plan"
            );
            return Ok((plan, answers));
        }
        let seen = rememberable.then(|| batches.copy());
        let mut refreshed = reading.refresh_from(batches).await?;
        let refresh_time = refreshing.elapsed();
        let diffing = std::time::Instant::now();
        let mut memo = kept.map(|_| memo.take().unwrap_or_default());
        let mut plan = match memo.as_mut() {
            Some(memo) => {
                make_plan_remembering(&self.registry, &self.loaded.name, &desired, &refreshed, &mut memo.in_sync)?
            }
            None => make_plan(&self.registry, &self.loaded.name, &desired, &refreshed)?,
        };
        plan.keep_records(&mut refreshed.records);
        plan.pending = pending.into_iter().collect();
        if let (Some(kept), Some(mut memo)) = (kept, memo) {
            memo.made = seen.filter(|_| refreshed.from_batches_only).map(|seen| (seen, plan.clone()));
            if let Ok(mut slot) = self.remembered.lock() {
                *slot = Some((kept.clone(), memo));
            }
        }
        plan.gates = gates::reports(statuses, blocked);
        let trips = trips_since(&before, &self.hosts.round_trips().await);
        tracing::info!(
            gates_ms = gate_time.as_millis() as u64,
            expand_ms = expand_time.as_millis() as u64,
            expansion = match matches!(expanded, Expanded::Kept(_)) && self.expansions() == made_before {
                true => "kept",
                false => "made",
            },
            refresh_ms = refresh_time.as_millis() as u64,
            diff_ms = diffing.elapsed().as_millis() as u64,
            resources = desired.len(),
            remembered = false,
            round_trips = %trips,
            "plan"
        );
        Ok((plan, refreshed.answers))
    }
}

/// The round trips (exec sessions) each host took between two counts of [`Hosts::round_trips`], as
/// `host=N` words for a log line.
pub(crate) fn trips_since(before: &[(String, usize)], after: &[(String, usize)]) -> String {
    let since = |h: &String, n: usize| n - before.iter().find(|(b, _)| b == h).map(|(_, m)| *m).unwrap_or(0);
    after.iter().map(|(h, n)| format!("{h}={}", since(h, *n))).collect::<Vec<_>>().join(" ")
}

/// Whether stdout is a terminal that wants colour.
pub fn stdout_color() -> bool {
    use std::io::IsTerminal;
    crate::render::use_color(std::io::stdout().is_terminal())
}

/// Write a report file whole or not at all: a reader (node_exporter, a CI step) never sees half of it.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let io = |e: std::io::Error| crate::error::Error::Io { path: path.display().to_string(), message: e.to_string() };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
