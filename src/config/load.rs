//! Loading an environment: every `*.yaml` of the directory (or one file), each top-level section
//! defined once, unknown keys rejected, errors located at file:line:column.

use super::error::{ConfigError, SyntaxError};
use super::locate::{locate, Position};
use groundwork_sdk::model::*;
use miette::{LabeledSpan, NamedSource, SourceSpan};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One environment file as read: its text and where each value stands.
pub struct SourceFile {
    pub path: String,
    pub text: String,
    pub positions: HashMap<String, Position>,
}

/// Where each top-level section came from, for locating findings.
#[derive(Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
    section_file: HashMap<String, usize>,
}

/// A located value: file index and position.
#[derive(Clone, Copy, Debug)]
pub struct Loc {
    pub file: usize,
    pub pos: Position,
}

impl Sources {
    /// Locate a value by path (`nodes[2].ip`); falls back to the nearest located parent.
    pub fn locate(&self, path: &str) -> Option<Loc> {
        let section = path.split(['.', '[', '#']).next().unwrap_or(path);
        let file = *self.section_file.get(section)?;
        let positions = &self.files[file].positions;
        let mut p = path.to_string();
        loop {
            if let Some(pos) = positions.get(&p) {
                return Some(Loc { file, pos: *pos });
            }
            let cut = p.rfind(['.', '[', '#'])?;
            p.truncate(cut);
        }
    }

    /// Drop the positions of the values (validation is what needs them); [`Sources::locate`] finds
    /// nothing after.
    pub fn forget_positions(&mut self) {
        for f in &mut self.files {
            f.positions = HashMap::new();
        }
    }

    /// `file:line:column` of a path.
    pub fn at(&self, path: &str) -> Option<String> {
        self.locate(path).map(|l| self.display(l))
    }

    pub fn display(&self, l: Loc) -> String {
        format!("{}:{}:{}", self.files[l.file].path, l.pos.line, l.pos.column)
    }

    pub fn named_source(&self, file: usize) -> NamedSource<String> {
        let f = &self.files[file];
        NamedSource::new(f.path.clone(), f.text.clone()).with_language("yaml")
    }

    pub fn label(&self, l: Loc, text: impl Into<String>) -> LabeledSpan {
        LabeledSpan::new_with_span(Some(text.into()), SourceSpan::new(l.pos.offset.into(), l.pos.len))
    }
}

/// The same sections as [`Environment`], all optional: one file may hold any of them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnvironmentFile {
    cluster: Option<Cluster>,
    networks: Option<Networks>,
    hosts: Option<BTreeMap<groundwork_sdk::value::Label, Host>>,
    ssh: Option<SshSettings>,
    nodes: Option<Vec<Node>>,
    dns: Option<DnsSettings>,
    dhcp: Option<DhcpSettings>,
    loadbalancer: Option<LoadBalancerSettings>,
    files: Option<FilesSettings>,
    tftp: Option<TftpSettings>,
    firewall: Option<FirewallSettings>,
    selinux: Option<SelinuxSettings>,
    openshift: Option<OpenShiftSettings>,
    services: Option<ServicesSettings>,
}

/// A loaded environment: the model, its sources, and the directory relative paths resolve from.
pub struct Loaded {
    pub env: Environment,
    pub sources: Sources,
    pub dir: PathBuf,
    /// Name of the environment (the cluster's name).
    pub name: String,
    /// The local files expansion may read (confined), and every input read so far by digest: the
    /// environment's own YAML files from the start.
    pub inputs: groundwork_sdk::Inputs,
}

/// What the command line says over the inventory for this run (`-F`, `--context`): set once by the binary.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// The OpenSSH client config to read (absolute, or `none`).
    pub ssh_config: Option<PathBuf>,
    /// The kubeconfig context.
    pub kube_context: Option<String>,
}

static OVERRIDES: std::sync::OnceLock<Overrides> = std::sync::OnceLock::new();

/// Set the run's overrides (the first call wins: one run, one command line).
pub fn set_overrides(o: Overrides) {
    let _ = OVERRIDES.set(o);
}

fn overrides() -> Overrides {
    OVERRIDES.get().cloned().unwrap_or_default()
}

impl Overrides {
    fn apply(&self, env: &mut Environment) {
        if let Some(p) = &self.ssh_config {
            env.ssh.config = Some(p.display().to_string());
        }
        if let (Some(c), Some(os)) = (&self.kube_context, env.openshift.as_mut()) {
            os.context = Some(c.clone());
        }
    }
}

/// `~/x` → $HOME/x; relative paths resolve from the environment directory.
pub fn local_path(env_dir: &Path, p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None => env_dir.join(p),
    }
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

/// The runner's credentials: never read as an input of the environment (never served, never
/// uploaded), whatever path the inventory gives.
fn credentials(env: &Environment, dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = vec![
        (home().join(".ssh/id_ed25519"), "SSH identity"),
        (home().join(".ssh/id_rsa"), "SSH identity"),
        (home().join(".ssh/id_ecdsa"), "SSH identity"),
        (home().join(".kube/config"), "kubeconfig"),
    ];
    if let Some(id) = &env.ssh.identity {
        out.push((local_path(dir, id), "SSH identity"));
    }
    // IdentityFile lines of the ssh config (a config that does not parse is reported when connecting).
    let ssh_config = crate::transport::ssh_config::configured_path(env, dir);
    if let Ok(c) = crate::transport::ssh_config::ClientConfig::load(ssh_config.as_deref(), &home()) {
        out.extend(c.identity_files().into_iter().map(|p| (p, "SSH identity")));
    }
    if let Some(k) = env.openshift.as_ref().and_then(|o| o.kubeconfig.as_ref()) {
        out.push((local_path(dir, k), "kubeconfig"));
    }
    if let Some(file) =
        env.openshift.as_ref().and_then(|o| o.install.as_ref()).and_then(|i| i.pull_secret.file.as_ref())
    {
        out.push((local_path(dir, file), "pull secret"));
    }
    if let Some(installer) = env.openshift.as_ref().and_then(|o| o.installer.as_ref()) {
        // What the installer writes beside the ignition: the cluster's admin credentials, its state
        // (every key it made) and groundwork's copy of install-config (the pull secret).
        for (rel, what) in [
            ("auth/kubeconfig", "kubeconfig"),
            ("auth/kubeadmin-password", "kubeadmin password"),
            (".openshift_install_state.json", "installer state"),
            ("metadata.json", "installer metadata"),
            (".groundwork/inputs/install-config.yaml", "install-config (pull secret)"),
        ] {
            out.push((dir.join(installer.under(rel)), what));
        }
    }
    if let Some(k) = std::env::var_os("KUBECONFIG") {
        out.extend(std::env::split_paths(&k).map(|p| (p, "kubeconfig")));
    }
    out
}

fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io = |e: std::io::Error| ConfigError::Io { path: path.display().to_string(), message: e.to_string() };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::Io { path: path.display().to_string(), message: "no *.yaml files here".into() });
    }
    Ok(files)
}

fn syntax_error(file: &str, text: &str, e: &groundwork_sdk::yaml::Located) -> ConfigError {
    let (mut line, mut column) = (e.line, e.column);
    let mut index = e.offset.unwrap_or_else(|| offset_of(text, line, column));
    let mut width = 1;
    let mut message = if e.path.is_empty() { e.message.clone() } else { format!("{}: {}", e.path, e.message) };
    // A typed value that failed its rule: the deserializer may place the error at the enclosing mapping;
    // point at the value itself (and name its full path) when it can be found below that path.
    if let Some((path, pos, rest)) = refine(text, &message) {
        (line, column, index, width) = (pos.line, pos.column, pos.offset, pos.len.max(1));
        message = format!("{path}: {rest}");
    }
    ConfigError::Syntax(Box::new(SyntaxError {
        file: file.to_string(),
        line,
        column,
        message,
        src: NamedSource::new(file, text.to_string()).with_language("yaml"),
        span: SourceSpan::new(index.min(text.len()).into(), width),
    }))
}

/// The byte offset of a 1-based line and column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let in_line =
        text[start.min(text.len())..].chars().take(column.saturating_sub(1)).map(char::len_utf8).sum::<usize>();
    start + in_line
}

/// For `PATH: "VALUE" is not ...`: the located value under PATH whose text is VALUE.
fn refine(text: &str, message: &str) -> Option<(String, Position, String)> {
    let (path, rest) = message.split_once(": ")?;
    // `"VALUE" is not ...`, or a bare number: `4294967297 is not a lease time`.
    let value = debug_quoted(rest)
        .or_else(|| rest.split_once(" is not ").map(|(v, _)| v.to_string()).filter(|v| !v.contains(' ')))?;
    let positions = locate(text);
    let raw = |p: &Position| {
        let s = text.get(p.offset..p.offset + p.len).unwrap_or_default();
        s.trim_matches(|c| c == '"' || c == '\'').to_string()
    };
    let under =
        |k: &str| path == "." || k == path || k.starts_with(&format!("{path}.")) || k.starts_with(&format!("{path}["));
    // Long values are shown cut short, ending in '…'.
    let matches = |p: &Position| match value.strip_suffix('…') {
        Some(prefix) => raw(p).starts_with(prefix),
        None => raw(p) == value,
    };
    let mut hits: Vec<(&String, &Position)> =
        positions.iter().filter(|(k, p)| under(k) && p.len > 0 && matches(p)).collect();
    hits.sort_by_key(|(_, p)| p.offset);
    let (key, pos) = hits.first()?;
    let shown = key.strip_suffix("#key").map(|k| format!("{k} (key)")).unwrap_or_else(|| key.to_string());
    Some((shown, **pos, rest.to_string()))
}

/// The string a message starts with, as `{:?}` wrote it.
fn debug_quoted(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// What `import` starts from: the infra hosts and SSH settings of an environment directory or file
/// whose other sections may be missing, the docroot if it says one, and the directory relative paths
/// resolve from.
pub struct HostsOnly {
    pub hosts: BTreeMap<groundwork_sdk::value::Label, Host>,
    pub ssh: SshSettings,
    pub docroot: Option<String>,
    /// The named.conf the environment names (its `dns` section), if it has one.
    pub named_conf: Option<String>,
    /// Sections import does not read from the hosts (how TFTP, firewalld, SELinux and the services
    /// are laid out there), as the environment gives them: carried over as they are.
    pub carried: Vec<(&'static str, serde_json::Value)>,
    pub dir: PathBuf,
}

pub fn load_hosts(path: &Path) -> Result<HostsOnly, ConfigError> {
    let (_, merged, _, dir) = read_parts(path)?;
    let hosts =
        merged.hosts.ok_or_else(|| ConfigError::MissingSection { dir: dir.display().to_string(), section: "hosts" })?;
    let docroot = merged.files.map(|f| f.docroot.to_string());
    let named_conf = merged.dns.and_then(|d| d.named_conf).map(|p| p.to_string());
    let mut carried = Vec::new();
    let mut carry = |name: &'static str, v: Option<serde_json::Result<serde_json::Value>>| {
        if let Some(Ok(v)) = v {
            carried.push((name, v));
        }
    };
    carry("tftp", merged.tftp.as_ref().map(serde_json::to_value));
    carry("firewall", merged.firewall.as_ref().map(serde_json::to_value));
    carry("selinux", merged.selinux.as_ref().map(serde_json::to_value));
    carry("services", merged.services.as_ref().map(serde_json::to_value));
    Ok(HostsOnly { hosts, ssh: merged.ssh.unwrap_or_default(), docroot, named_conf, carried, dir })
}

type Parts = (Sources, EnvironmentFile, Vec<(String, String)>, PathBuf);

/// Every YAML file of an environment, parsed and merged by section (a section defined twice is an
/// error naming both files).
fn read_parts(path: &Path) -> Result<Parts, ConfigError> {
    let mut sources = Sources::default();
    let mut merged = EnvironmentFile::default();
    let mut digests = Vec::new();
    for file in yaml_files(path)? {
        let shown = file.display().to_string();
        let text = read_yaml(&file)?;
        let key = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| shown.clone());
        digests.push((key, text.clone()));
        check_nesting(&shown, &text)?;
        let part: EnvironmentFile = if text.trim().is_empty() {
            EnvironmentFile::default()
        } else {
            groundwork_sdk::yaml::from_str_located(&text).map_err(|e| syntax_error(&shown, &text, &e))?
        };
        let idx = sources.files.len();
        sources.files.push(SourceFile { path: shown, positions: locate(&text), text });
        merge(&mut merged, part, idx, &mut sources)?;
    }
    let dir = if path.is_file() { path.parent().unwrap_or(Path::new(".")).to_path_buf() } else { path.to_path_buf() };
    Ok((sources, merged, digests, dir))
}

/// Load an environment directory (or single file).
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let (sources, merged, digests, dir) = read_parts(path)?;
    let dir_shown = dir.display().to_string();
    let missing = |section| ConfigError::MissingSection { dir: dir_shown.clone(), section };
    let env = Environment {
        cluster: merged.cluster.ok_or_else(|| missing("cluster"))?,
        networks: merged.networks.ok_or_else(|| missing("networks"))?,
        hosts: merged.hosts.unwrap_or_default(),
        ssh: merged.ssh.unwrap_or_default(),
        nodes: merged.nodes.unwrap_or_default(),
        dns: merged.dns.unwrap_or_default(),
        dhcp: merged.dhcp,
        loadbalancer: merged.loadbalancer.unwrap_or_default(),
        files: merged.files,
        tftp: merged.tftp.unwrap_or_default(),
        firewall: merged.firewall,
        selinux: merged.selinux,
        openshift: merged.openshift,
        services: merged.services.unwrap_or_default(),
        phase: Default::default(),
    };
    let mut env = env;
    overrides().apply(&mut env);
    // The cluster names the environment: its ownership records and plans are keyed by it.
    let name = env.cluster.name.to_string();
    let files = env.files.as_ref();
    let inputs = groundwork_sdk::Inputs::new(
        &dir,
        files.map(|f| f.source_dirs.as_slice()).unwrap_or_default(),
        &credentials(&env, &dir),
        files.and_then(|f| f.max_source_bytes).unwrap_or(groundwork_sdk::expansion::DEFAULT_MAX_SOURCE_BYTES),
    )
    .map_err(|e| ConfigError::Io { path: dir_shown.clone(), message: e.to_string() })?;
    for (key, text) in digests {
        inputs.note(&key, text.as_bytes());
    }
    Ok(Loaded { env, sources, dir, name, inputs })
}

/// Deepest nesting of flow collections (`[` `{`) accepted: an inventory needs a handful of levels, and
/// the YAML parsers take quadratic time on deep nesting (100k levels ran for more than 20 s).
pub const MAX_NESTING: usize = 64;

/// Refuse flow nesting deeper than [`MAX_NESTING`] before any parser sees the text (quoted strings and
/// comments are skipped).
fn check_nesting(file: &str, text: &str) -> Result<(), ConfigError> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = ' ';
    for (offset, c) in text.char_indices() {
        column += 1;
        match (quote, c) {
            (_, '\n') => {
                (line, column, comment) = (line + 1, 0, false);
                prev = c;
                continue;
            }
            _ if comment => {}
            (Some(q), c) if c == q && !(q == '"' && prev == '\\') => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if prev.is_whitespace() || column == 1 => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ConfigError::Syntax(Box::new(SyntaxError {
                        file: file.to_string(),
                        line,
                        column,
                        message: format!("collections nested deeper than {MAX_NESTING} levels"),
                        src: NamedSource::new(file, text.to_string()).with_language("yaml"),
                        span: SourceSpan::new(offset.into(), 1),
                    })));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

/// Environment files above this size are refused (an inventory of the largest clusters is far smaller).
const MAX_YAML_BYTES: u64 = 16 * 1024 * 1024;

/// Read one environment file: a regular file (never a FIFO or device), size-capped, UTF-8.
fn read_yaml(file: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let shown = file.display().to_string();
    let io = |m: String| ConfigError::Io { path: shown.clone(), message: m };
    let f = groundwork_sdk::expansion::open_regular(file).map_err(|e| io(e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(MAX_YAML_BYTES + 1).read_to_end(&mut bytes).map_err(|e| io(e.to_string()))?;
    if bytes.len() as u64 > MAX_YAML_BYTES {
        return Err(io(format!("larger than {} MiB", MAX_YAML_BYTES >> 20)));
    }
    String::from_utf8(bytes).map_err(|_| io("is not UTF-8".into()))
}

fn merge(
    into: &mut EnvironmentFile,
    part: EnvironmentFile,
    idx: usize,
    sources: &mut Sources,
) -> Result<(), ConfigError> {
    macro_rules! take {
        ($($field:ident),*) => {$(
            if let Some(v) = part.$field {
                let section = stringify!($field);
                if let Some(&other) = sources.section_file.get(section) {
                    let pos = sources.files[idx].positions.get(&format!("{section}#key")).copied();
                    let (line, column) = pos.map(|p| (p.line, p.column)).unwrap_or((1, 1));
                    let other_at = sources.files[other].positions.get(&format!("{section}#key")).copied();
                    let other = match other_at {
                        Some(p) => format!("{}:{}:{}", sources.files[other].path, p.line, p.column),
                        None => sources.files[other].path.clone(),
                    };
                    return Err(ConfigError::DuplicateSection {
                        file: sources.files[idx].path.clone(), line, column, section: section.into(), other,
                    });
                }
                sources.section_file.insert(section.to_string(), idx);
                into.$field = Some(v);
            }
        )*};
    }
    take!(
        cluster,
        networks,
        hosts,
        ssh,
        nodes,
        dns,
        dhcp,
        loadbalancer,
        files,
        tftp,
        firewall,
        selinux,
        openshift,
        services
    );
    Ok(())
}
