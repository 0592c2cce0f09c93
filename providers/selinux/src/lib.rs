//! # groundwork-selinux
//!
//! - `selinux.fcontext[HOST:REGEX]`: a file-context rule. Present when the local customizations or the
//!   base policy already map exactly that regex to the type, so nothing is ever re-added ("already
//!   defined").
//! - `selinux.relabel[HOST:DIR]`: the files under DIR carry the labels the policy gives them (the seed's
//!   403 trap: files copied from /root keep `admin_home_t`). Its spec carries a generation — a digest of
//!   the served files under DIR — so that a change to those files also relabels them.
//! - `selinux.boolean[HOST:NAME]`, `selinux.port[HOST:PROTO/PORT]`: persistent booleans and port labels.
//!
//! One exec per host reads everything: the policy store's local customizations (file_contexts.local,
//! ports.local, booleans.local — what `semanage export` prints, without its start-up cost),
//! `semanage boolean -l`/`port -l` when needed,
//! the base policy's file_contexts lines, and `setfiles -n -v` dry runs.

use async_trait::async_trait;
use groundwork_sdk::joint::Owner;
use groundwork_sdk::model::{Environment, HostRole};
use groundwork_sdk::transport::Cmd;
use groundwork_sdk::{decode, Action, Address, Change, Context, Detail, Error, Provider, Resource, WriteOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const PROVIDER: &str = "selinux";
const MARKS: &str = "/var/lib/groundwork/relabel";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FcontextSpec {
    pub path: String,
    pub setype: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObservedFcontext {
    pub setype: String,
    /// Defined by the base policy rather than a local customization.
    pub base_policy: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RelabelSpec {
    pub path: String,
    /// Digest of what is served under `path`; set by the engine's cross-provider pass.
    #[serde(default)]
    pub generation: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObservedRelabel {
    /// `file: have → want` for every file whose label differs from the policy's.
    pub mismatches: Vec<String>,
    pub generation: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BooleanSpec {
    pub name: String,
    pub value: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PortSpec {
    pub proto: String,
    pub port: u16,
    pub setype: String,
}

/// The directory a file-context regex is rooted at: `/usr/share/nginx/html(/.*)?` → `/usr/share/nginx/html`.
pub fn regex_base(path: &str) -> String {
    let b = path.as_bytes();
    let cut = (0..b.len())
        .find(|&i| {
            matches!(b[i], b'(' | b'[' | b'*' | b'?' | b'+' | b'|' | b'^' | b'$' | b'\\')
                || (b[i] == b'.' && matches!(b.get(i + 1), Some(b'*' | b'+')))
        })
        .unwrap_or(b.len());
    let fixed = &path[..cut];
    // `dir(/.*)?` names dir itself; `dir/data[0-9]+` stops inside a component: use its parent.
    let whole = cut == b.len() || fixed.ends_with('/') || path[cut..].starts_with("(/");
    let base = if whole { fixed } else { fixed.rsplit_once('/').map(|(d, _)| d).unwrap_or("") };
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        "/".to_string()
    } else {
        base.to_string()
    }
}

fn lb_hosts(env: &Environment) -> Vec<String> {
    env.hosts_with_role(HostRole::Lb).map(|(n, _)| n.to_string()).collect()
}

fn names(v: &[groundwork_sdk::value::Label]) -> Vec<String> {
    v.iter().map(|h| h.to_string()).collect()
}

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let Some(se) = &env.selinux else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let http_hosts: Vec<String> = env.hosts_with_role(HostRole::Http).map(|(n, _)| n.to_string()).collect();
    for rule in &se.fcontexts {
        let hosts = if rule.hosts.is_empty() { http_hosts.clone() } else { names(&rule.hosts) };
        for host in hosts {
            let fc = Address::new(PROVIDER, "fcontext", Some(&host), rule.path.to_string());
            let spec = FcontextSpec { path: rule.path.to_string(), setype: rule.setype.to_string() };
            out.push(Resource::new(fc.clone(), spec)?);
            let base = regex_base(&rule.path);
            let relabel = Address::new(PROVIDER, "relabel", Some(&host), base.clone());
            out.push(Resource::new(relabel, RelabelSpec { path: base, generation: String::new() })?.depends_on(fc));
        }
    }
    let hosts = if se.hosts.is_empty() { lb_hosts(env) } else { names(&se.hosts) };
    for host in &hosts {
        for (name, value) in &se.booleans {
            let addr = Address::new(PROVIDER, "boolean", Some(host), name.to_string());
            out.push(Resource::new(addr, BooleanSpec { name: name.to_string(), value: *value })?);
        }
        for p in &se.ports {
            let (port, proto) = (p.port.port, p.port.proto.clone());
            let addr = Address::new(PROVIDER, "port", Some(host), format!("{proto}/{port}"));
            out.push(Resource::new(addr, PortSpec { proto, port, setype: p.setype.to_string() })?);
        }
    }
    Ok(out)
}

/// Cross-provider pass: each relabel depends on the served files under its directory and carries a
/// digest of them, so that changing a served file plans its relabel too.
pub fn link_relabels(resources: &mut [Resource]) {
    let relabels: Vec<usize> = (0..resources.len())
        .filter(|&i| resources[i].address.provider == PROVIDER && resources[i].address.kind == "relabel")
        .collect();
    for i in relabels {
        let r = &resources[i];
        let Some(base) = r.spec.get("path").and_then(Value::as_str) else { continue };
        let prefix = format!("{}/", base.trim_end_matches('/'));
        let mut h = Sha256::new();
        // A set beside the list: with a thousand files under one tree, `contains` on the list was
        // quadratic (a tenth of a 1000-node plan's CPU). The files are borrowed, not copied out.
        let linked: std::collections::HashSet<&Address> = r.depends_on.iter().collect();
        let mut links = Vec::new();
        for f in resources.iter().filter(|f| f.address.provider == "files" && f.address.host == r.address.host) {
            let (Some(path), Some(sha)) =
                (f.spec.get("path").and_then(Value::as_str), f.spec.get("sha256").and_then(Value::as_str))
            else {
                continue;
            };
            if path.starts_with(&prefix) {
                for part in [path, "\0", sha, "\n"] {
                    h.update(part.as_bytes());
                }
                if !linked.contains(&f.address) {
                    links.push(f.address.clone());
                }
            }
        }
        let r = &mut resources[i];
        r.depends_on.extend(links);
        r.spec["generation"] = Value::String(hex::encode(h.finalize()));
    }
}

/// Local customizations as `semanage export` prints them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Local {
    pub fcontexts: BTreeMap<String, String>,
    pub booleans: BTreeMap<String, bool>,
    pub ports: BTreeMap<(String, u16), String>,
}

fn unquote(s: &str) -> String {
    s.trim_matches('\'').to_string()
}

/// Split a line the way a shell would for simple single-quoted words.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub fn parse_export(text: &str) -> Local {
    let mut local = Local::default();
    for line in text.lines() {
        let w = words(line);
        let flag = |f: &str| w.iter().position(|x| x == f).and_then(|i| w.get(i + 1)).map(|s| unquote(s));
        match w.first().map(String::as_str) {
            Some("fcontext") if w.get(1).map(String::as_str) == Some("-a") => {
                if let (Some(t), Some(path)) = (flag("-t"), w.last()) {
                    local.fcontexts.insert(unquote(path), t);
                }
            }
            Some("boolean") if w.get(1).map(String::as_str) == Some("-m") => {
                if let (Some(v), Some(name)) = (w.get(2), w.get(3)) {
                    local.booleans.insert(name.clone(), v == "-1" || v == "--on");
                }
            }
            Some("port") if w.get(1).map(String::as_str) == Some("-a") => {
                if let (Some(t), Some(proto), Some(port)) =
                    (flag("-t"), flag("-p"), w.last().and_then(|p| p.parse().ok()))
                {
                    local.ports.insert((proto, port), t);
                }
            }
            _ => {}
        }
    }
    local
}

/// `semanage boolean -l`: name → current value.
pub fn parse_boolean_list(text: &str) -> BTreeMap<String, bool> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('(')?;
            let state = rest.split(',').next()?.trim();
            Some((name.trim().to_string(), state == "on"))
        })
        .collect()
}

/// `semanage port -l`: (proto, port) → type for the ports asked about. Only single-port entries count:
/// a port inside a range (unreserved_port_t 1024-32767) is not "defined", and `-a` adds it.
pub fn parse_port_list(text: &str, wanted: &[(String, u16)]) -> BTreeMap<(String, u16), String> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let mut it = line.split_whitespace();
        let (Some(t), Some(proto)) = (it.next(), it.next()) else { continue };
        let rest: String = it.collect::<Vec<_>>().join("");
        for item in rest.split(',') {
            let Ok(single) = item.parse::<u16>() else { continue };
            for (p, port) in wanted {
                if p == proto && single == *port {
                    out.entry((p.clone(), *port)).or_insert_with(|| t.to_string());
                }
            }
        }
    }
    out
}

/// `setfiles -n -v` lines: `Would relabel F from A to B` → `F: A → B` (types only).
pub fn parse_relabel(text: &str) -> Vec<String> {
    let ty = |ctx: &str| ctx.split(':').nth(2).unwrap_or(ctx).to_string();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Would relabel ")?;
            let (file, ctxs) = rest.rsplit_once(" from ")?;
            let (from, to) = ctxs.split_once(" to ")?;
            Some(format!("{file}: {} → {}", ty(from), ty(to)))
        })
        .collect()
}

/// The name of a tree's relabel mark under MARKS (and of the file whose time says since when it is
/// clean, `.clean-since` added).
fn mark_key(path: &str) -> String {
    hex::encode(Sha256::digest(path.as_bytes()))
}

/// One read per host. $1..: `fc` N paths…, `rl` N (dir, mark key)…, `b` N booleans…, `p` N proto/port….
/// Every plan and every drift tick runs it on each host with SELinux resources, so it starts as few
/// processes as it can: the mark key comes from the caller, files are read with the shell's `read`.
const READ_SCRIPT: &str = r#"set -u
. /etc/selinux/config 2>/dev/null
spec=/etc/selinux/${SELINUXTYPE:-targeted}/contexts/files/file_contexts
[ "$1" = fc ] && { n=$2; shift 2; } || n=0
fcs=""; i=0
while [ "$i" -lt "$n" ]; do fcs="$fcs$1
"; shift; i=$((i+1)); done
[ "$1" = rl ] && { n=$2; shift 2; } || n=0
i=0
while [ "$i" -lt "$n" ]; do
  d=$1 k=/var/lib/groundwork/relabel/$2; shift 2; i=$((i+1))
  printf '@@RELABEL %s\n' "$d"
  if [ -e "$d" ]; then
    # setfiles loads and compiles the whole file_contexts (~70 ms). A clean result is remembered as a
    # file, made before setfiles began: while no file of the tree or of the policy's file_contexts has
    # a ctime newer than it, the tree is still clean (a relabel, a write, a new or renamed file change a
    # ctime; a removal its directory's). One find that stops at the first such file, no digest. A
    # change within the timestamp tick of that file (a jiffy at most) but after setfiles read it cannot
    # be: setfiles reads nothing before it has compiled the policy. A find that cannot tell (busybox,
    # or a path it cannot read) fails: setfiles every time.
    if [ -f "$k.clean-since" ] && newer=$(find "$d" "$spec"* -cnewer "$k.clean-since" -print -quit 2>/dev/null) && [ -z "$newer" ]; then :
    else
      m=; { [ -d "${k%/*}" ] || mkdir -p "${k%/*}"; } 2>/dev/null && : > "$k.clean-since.$$" 2>/dev/null && m=$k.clean-since.$$
      o=$(setfiles -n -v -F "$spec" "$d" 2>&1)
      if [ -n "$o" ]; then printf '%s\n' "$o"; [ -z "$m" ] || rm -f "$m"
      elif [ -n "$m" ]; then mv -f "$m" "$k.clean-since" 2>/dev/null; fi
    fi
  fi
  printf '@@MARK\n'
  g=; [ -f "$k" ] && { read -r g < "$k" || :; }
  printf '%s\n' "$g"
done
# Local customizations straight from the policy store's files, in `semanage export` form: the same
# facts without semanage's second of Python start-up and policy loading on every plan. One awk reads
# the store's files and the policy's file_contexts (for the base label of each fcontext asked), and
# asks semanage (a second or more each) for the policy's own values only where a boolean or port asked
# is not set in the local store: after an apply, a plan needs neither. Values go through the
# environment, where awk does not read backslashes as escapes.
bs=""; [ "$1" = b ] && { n=$2; shift 2; } || n=0
i=0
while [ "$i" -lt "$n" ]; do bs="$bs$1
"; shift; i=$((i+1)); done
ps=""; [ "$1" = p ] && { n=$2; shift 2; } || n=0
i=0
while [ "$i" -lt "$n" ]; do ps="$ps$1
"; shift; i=$((i+1)); done
printf '@@EXPORT\n'
a=/var/lib/selinux/${SELINUXTYPE:-targeted}/active
set --
if [ -d "$a" ]; then
  for f in file_contexts.local ports.local booleans.local; do [ -f "$a/$f" ] && set -- "$@" "$a/$f"; done
else
  printf 'no SELinux policy store at %s\n@@ERR\n' "$a"
fi
# The base labels of the fcontexts asked come from the policy's file_contexts (thousands of lines: about
# 3 ms of awk a tick). They change only with it, so the answer is kept in $kb with the paths asked, and a
# mark $kb.since is made before file_contexts is read: the answer holds while file_contexts is strictly
# older than the mark (test -ot: one as new as the mark is read again). Answer and
# mark carry the id of the read that made them: a pair from two reads side by side is not believed.
kb=/var/lib/groundwork/selinux-base-${SELINUXTYPE:-targeted} base= mark=
if [ -n "$fcs" ] && [ -f "$spec" ] && [ -f "$kb" ] && [ "$spec" -ot "$kb.since" ] && read -r id < "$kb.since"; then
  part=id got= asked=
  while IFS= read -r l; do
    case $part in
      id) [ "$l" = "@@ID $id" ] && part=asked || break ;;
      asked) if [ "$l" = @@ANSWER ]; then part=answer; else asked="$asked$l
"; fi ;;
      answer) if [ "$l" = @@END ]; then part=end; else got="$got$l
"; fi ;;
    esac
  done < "$kb"
  [ "$part" = end ] && [ "$asked" = "$fcs" ] && base=$got
fi
if [ -z "$base" ] && [ -n "$fcs" ] && [ -f "$spec" ] && { [ -d "${kb%/*}" ] || mkdir -p "${kb%/*}"; } 2>/dev/null &&
  printf '%s\n' "$$" > "$kb.since.$$" 2>/dev/null; then mark=$kb.since.$$; fi
[ -n "$base" ] || { [ -f "$spec" ] && set -- "$@" "$spec"; }
[ $# -gt 0 ] || set -- /dev/null
GW_FCS=$fcs GW_BOOLS=$bs GW_PORTS=$ps GW_STORE=$a GW_SPEC=$spec GW_KEEP=${mark:+$kb.$$} GW_ID=$$ GW_BASE=${base:+1} awk '
  function asked(list, into, order,   n, i, w) {
    n = split(list, w, "\n"); for (i = 1; i <= n; i++) if (w[i] != "") { into[w[i]]; order[i] = w[i] }; return n }
  BEGIN { nf = asked(ENVIRON["GW_FCS"], fc, fcs); asked(ENVIRON["GW_BOOLS"], bools); asked(ENVIRON["GW_PORTS"], ports)
          st = ENVIRON["GW_STORE"] "/" }
  FILENAME == st "file_contexts.local" {
    if (!/^#/ && NF >= 2) { split($NF, c, ":"); if (c[3] != "") printf "fcontext -a -t %s '"'"'%s'"'"'\n", c[3], $1 }
    next }
  FILENAME == st "ports.local" {
    if ($1 == "portcon") { split($4, c, ":"); printf "port -a -t %s -p %s %s\n", c[3], $2, $3; set_ports[$2 "/" $3] }
    next }
  FILENAME == st "booleans.local" {
    if (!/^#/ && split($0, kv, "=") == 2) printf "boolean -m -%s %s\n", (kv[2] == 1 ? "1" : "0"), kv[1]
    split($0, kv, "="); set_bools[kv[1]]
    next }
  FILENAME == ENVIRON["GW_SPEC"] && ($1 in fc) { base[$1] = base[$1] $NF "\n" }
  END {
    if (!ENVIRON["GW_BASE"]) {
      for (i = 1; i <= nf; i++) if (i in fcs) { s = sprintf("@@BASEFC %s\n%s", fcs[i], base[fcs[i]]); printf "%s", s; answer = answer s }
      if ((keep = ENVIRON["GW_KEEP"]) != "") {
        printf "@@ID %s\n%s@@ANSWER\n%s@@END\n", ENVIRON["GW_ID"], ENVIRON["GW_FCS"], answer > keep; close(keep) } }
    for (b in bools) if (!(b in set_bools)) need_bools = 1
    if (need_bools) { print "@@BOOLEANS"; fflush(); system("semanage boolean -l 2>&1") }
    for (p in ports) if (!(p in set_ports)) need_ports = 1
    if (need_ports) { print "@@PORTS"; fflush(); system("semanage port -l 2>&1") } }' "$@" 2>/dev/null
printf '%s' "$base"
# The answer first, then its mark (a reader checks the mark first): a pair is whole or not believed.
[ -z "$mark" ] || { mv -f "$kb.$$" "$kb" && mv -f "$mark" "$kb.since"; } 2>/dev/null || rm -f "$kb.$$" "$mark"
exit 0
"#;

fn sections(out: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        if let Some(h) = line.strip_prefix("@@").filter(|h| !h.starts_with("ERR") && !h.starts_with("MARK")) {
            v.push((h.to_string(), String::new()));
        } else if let Some((_, body)) = v.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    v
}

pub struct SelinuxProvider;

/// The query that reads a host's local customizations only (what `groundwork import` carries over).
pub fn local_command() -> Cmd {
    // Nothing asked for: the script prints only the local store.
    read_command(&[]).unwrap_or_else(|_| Cmd::new("false"))
}

/// The local customizations from [`local_command`]'s output.
pub fn parse_local(text: &str) -> Result<Local, String> {
    if text.contains("@@ERR") {
        return Err(text.lines().take_while(|l| !l.starts_with("@@ERR")).last().unwrap_or("").to_string());
    }
    Ok(sections(text).into_iter().find(|(h, _)| h == "EXPORT").map(|(_, b)| parse_export(&b)).unwrap_or_default())
}

/// The one query that reads the local policy, base file contexts, labels, booleans and ports these
/// resources need (READ_SCRIPT).
fn read_command(resources: &[&Resource]) -> Result<Cmd, Error> {
    let of = |k: &'static str| resources.iter().filter(move |r| r.address.kind == k);
    let fcs: Vec<String> =
        of("fcontext").map(|r| r.spec::<FcontextSpec>().map(|s| s.path)).collect::<Result<_, _>>()?;
    let rls: Vec<String> = of("relabel")
        .map(|r| r.spec::<RelabelSpec>().map(|s| [mark_key(&s.path), s.path]))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flat_map(|[key, path]| [path, key])
        .collect();
    let bools: Vec<String> =
        of("boolean").map(|r| r.spec::<BooleanSpec>().map(|s| s.name)).collect::<Result<_, _>>()?;
    let ports: Vec<String> = of("port")
        .map(|r| r.spec::<PortSpec>().map(|s| format!("{}/{}", s.proto, s.port)))
        .collect::<Result<_, _>>()?;
    let mut cmd = Cmd::new("sh").arg("-c").arg(READ_SCRIPT).arg("groundwork-selinux");
    for (tag, values, per) in [("fc", fcs, 1), ("rl", rls, 2), ("b", bools, 1), ("p", ports, 1)] {
        cmd = cmd.arg(tag).arg((values.len() / per).to_string()).args(values);
    }
    Ok(cmd)
}

async fn semanage(cx: &Context, address: &Address, args: &[&str]) -> Result<groundwork_sdk::ExecOutput, Error> {
    cx.commands(address, "SELinux")?
        .exec(&Cmd::new("semanage").args(args.iter().copied()))
        .await
        .map_err(|e| e.at(address))
}

fn failed(address: &Address, what: &str, out: &groundwork_sdk::ExecOutput) -> Error {
    Error::failed(address, format!("{what}: {}", out.message()))
}

#[async_trait]
impl Provider for SelinuxProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// A relabel of a directory several clusters serve files from (shared infra hosts) follows every
    /// owner's files: its generation is a digest of theirs, the same whoever applies.
    fn merge(&self, address: &Address, own: Option<Owner<'_>>, others: &[Owner<'_>]) -> Result<Value, Error> {
        if address.kind != "relabel" {
            return groundwork_sdk::joint::merge(address, own, others);
        }
        let mut owners: Vec<(String, RelabelSpec)> = own
            .into_iter()
            .chain(others.iter().copied())
            .map(|o| decode::<RelabelSpec>(address, o.spec).map(|s| (o.environment.to_string(), s)))
            .collect::<Result<_, _>>()?;
        owners.sort_by(|a, b| a.0.cmp(&b.0));
        let Some((_, first)) = owners.first() else { return Err(Error::failed(address, "no owner left to merge")) };
        let mut h = Sha256::new();
        for (env, spec) in &owners {
            h.update(format!("{env}\0{}\n", spec.generation));
        }
        let merged = RelabelSpec { path: first.path.clone(), generation: hex::encode(h.finalize()) };
        serde_json::to_value(merged).map_err(|e| Error::failed(address, e.to_string()))
    }

    fn prefetch(&self, resources: &[&Resource]) -> groundwork_sdk::Prefetch {
        groundwork_sdk::Prefetch { execs: read_command(resources).ok().into_iter().collect(), ..Default::default() }
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let Some(first) = resources.first() else { return Ok(Vec::new()) };
        let of = |k: &'static str| resources.iter().filter(move |r| r.address.kind == k);
        let ports: Vec<(String, u16)> =
            of("port").map(|r| r.spec::<PortSpec>().map(|s| (s.proto, s.port))).collect::<Result<_, _>>()?;
        let cmd = read_command(resources)?;
        let out = cx.commands(&first.address, "SELinux")?.exec(&cmd).await.map_err(|e| e.at(&first.address))?;
        let text = out.stdout_str();
        if text.contains("@@ERR") || text.contains("SELinux policy is not managed") {
            return Err(Error::failed(
                &first.address,
                format!(
                    "cannot read the SELinux policy store: {}",
                    text.lines().take_while(|l| !l.starts_with("@@ERR")).last().unwrap_or("")
                ),
            ));
        }
        let mut local = Local::default();
        let mut base_fc: BTreeMap<String, String> = BTreeMap::new();
        let mut relabel: BTreeMap<String, ObservedRelabel> = BTreeMap::new();
        let mut booleans = BTreeMap::new();
        let mut port_types = BTreeMap::new();
        for (head, body) in sections(&text) {
            if head == "EXPORT" {
                local = parse_export(&body);
            } else if let Some(p) = head.strip_prefix("BASEFC ") {
                if let Some(ctx) = body.lines().next().filter(|l| !l.is_empty()) {
                    base_fc.insert(p.to_string(), ctx.split(':').nth(2).unwrap_or(ctx).to_string());
                }
            } else if let Some(d) = head.strip_prefix("RELABEL ") {
                let (dry, mark) = body.split_once("@@MARK\n").unwrap_or((&body, ""));
                relabel.insert(
                    d.to_string(),
                    ObservedRelabel { mismatches: parse_relabel(dry), generation: mark.trim().to_string() },
                );
            } else if head == "BOOLEANS" {
                booleans = parse_boolean_list(&body);
            } else if head == "PORTS" {
                port_types = parse_port_list(&body, &ports);
            }
        }
        let json = |v: &dyn ToValue| v.to_json().map_err(|e| Error::failed(&first.address, e.to_string()));
        resources
            .iter()
            .map(|r| match r.address.kind.as_str() {
                "fcontext" => {
                    let s: FcontextSpec = r.spec()?;
                    let found = match local.fcontexts.get(&s.path) {
                        Some(t) => Some(ObservedFcontext { setype: t.clone(), base_policy: false }),
                        None => base_fc.get(&s.path).map(|t| ObservedFcontext { setype: t.clone(), base_policy: true }),
                    };
                    found.map(|f| json(&f)).transpose()
                }
                "relabel" => {
                    let s: RelabelSpec = r.spec()?;
                    relabel.get(&s.path).map(|o| json(o)).transpose()
                }
                "boolean" => {
                    let s: BooleanSpec = r.spec()?;
                    let v = local.booleans.get(&s.name).or(booleans.get(&s.name));
                    v.map(|v| json(&BooleanSpec { name: s.name.clone(), value: *v })).transpose()
                }
                "port" => {
                    let s: PortSpec = r.spec()?;
                    let key = (s.proto.clone(), s.port);
                    let t = local.ports.get(&key).or(port_types.get(&key));
                    t.map(|t| json(&PortSpec { proto: s.proto.clone(), port: s.port, setype: t.clone() })).transpose()
                }
                other => Err(Error::failed(&r.address, format!("unknown selinux resource kind {other}"))),
            })
            .collect()
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        let mut c = match address.kind.as_str() {
            "fcontext" => {
                let d: Option<FcontextSpec> = desired.map(|v| decode(address, v)).transpose()?;
                let a: Option<ObservedFcontext> = actual.map(|v| decode(address, v)).transpose()?;
                let same = matches!((&d, &a), (Some(d), Some(a)) if d.setype == a.setype);
                let mut c = Change::compare(address.clone(), desired, actual, same);
                if let (Some(d), Some(a)) = (&d, &a) {
                    if !same {
                        c.details.push(Detail::modify(format!("{} → {}", a.setype, d.setype)));
                    }
                }
                c
            }
            "relabel" => {
                let d: Option<RelabelSpec> = desired.map(|v| decode(address, v)).transpose()?;
                let a: Option<ObservedRelabel> = actual.map(|v| decode(address, v)).transpose()?;
                let Some(d) = d else {
                    // Nothing to undo: labels stay as the policy gives them.
                    return Ok(Change::new(address.clone(), Action::NoOp, actual, None));
                };
                let mismatches = a.as_ref().map(|a| a.mismatches.clone()).unwrap_or_default();
                let fresh = a.as_ref().is_some_and(|a| a.generation == d.generation);
                let mut c = Change::compare(address.clone(), desired, actual, mismatches.is_empty() && fresh);
                if c.action == Action::Create {
                    c.action = Action::Update;
                }
                c.details = mismatches.into_iter().map(Detail::modify).collect();
                if !fresh && c.details.is_empty() {
                    c.details.push(Detail::modify("served files under it change: relabel after they are written"));
                }
                c
            }
            "boolean" => {
                let d: Option<BooleanSpec> = desired.map(|v| decode(address, v)).transpose()?;
                let a: Option<BooleanSpec> = actual.map(|v| decode(address, v)).transpose()?;
                let Some(d) = d else {
                    return Ok(Change::new(address.clone(), Action::NoOp, actual, None));
                };
                let same = a.as_ref().is_some_and(|a| a.value == d.value);
                let mut c = Change::compare(address.clone(), desired, actual, same);
                if !same {
                    let from = a.map(|a| if a.value { "on" } else { "off" }).unwrap_or("undefined");
                    c.details.push(Detail::modify(format!(
                        "{} {from} → {}",
                        d.name,
                        if d.value { "on" } else { "off" }
                    )));
                }
                c
            }
            "port" => {
                let d: Option<PortSpec> = desired.map(|v| decode(address, v)).transpose()?;
                let a: Option<PortSpec> = actual.map(|v| decode(address, v)).transpose()?;
                let same = matches!((&d, &a), (Some(d), Some(a)) if d.setype == a.setype);
                let mut c = Change::compare(address.clone(), desired, actual, same);
                if let (Some(d), Some(a), false) = (&d, &a, same) {
                    c.details.push(Detail::modify(format!("{} → {}", a.setype, d.setype)));
                }
                c
            }
            other => return Err(Error::failed(address, format!("unknown selinux resource kind {other}"))),
        };
        c.details.sort();
        Ok(c)
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        match (address.kind.as_str(), change.action) {
            ("fcontext", Action::Delete) => {
                let out = semanage(cx, address, &["fcontext", "-d", &address.name]).await?;
                if out.success() {
                    Ok(())
                } else {
                    Err(failed(address, "semanage fcontext -d", &out))
                }
            }
            ("fcontext", _) => {
                let s: FcontextSpec = decode(address, change.after.as_ref().unwrap_or(&Value::Null))?;
                let verb = if change.action == Action::Create { "-a" } else { "-m" };
                let out = semanage(cx, address, &["fcontext", verb, "-t", &s.setype, &s.path]).await?;
                if out.success() {
                    return Ok(());
                }
                // Defined by the base policy with another type: modify it instead of adding.
                if verb == "-a" && out.message().contains("already defined") {
                    let out = semanage(cx, address, &["fcontext", "-m", "-t", &s.setype, &s.path]).await?;
                    if out.success() {
                        return Ok(());
                    }
                    return Err(failed(address, "semanage fcontext -m", &out));
                }
                Err(failed(address, &format!("semanage fcontext {verb}"), &out))
            }
            ("relabel", _) => {
                let s: RelabelSpec = decode(address, change.after.as_ref().unwrap_or(&Value::Null))?;
                let t = cx.commands(address, "SELinux")?;
                let script = ". /etc/selinux/config 2>/dev/null; setfiles -F \"/etc/selinux/${SELINUXTYPE:-targeted}/contexts/files/file_contexts\" \"$1\"";
                let out = t
                    .exec(&Cmd::new("sh").arg("-c").arg(script).arg("groundwork-relabel").path(&s.path))
                    .await
                    .map_err(|e| e.at(address))?;
                if !out.success() {
                    return Err(failed(address, "setfiles", &out));
                }
                t.write_file(
                    &format!("{MARKS}/{}", mark_key(&s.path)),
                    s.generation.as_bytes(),
                    &WriteOptions::default(),
                )
                .await
                .map_err(|e| e.at(address))
            }
            ("boolean", _) => {
                let s: BooleanSpec = decode(address, change.after.as_ref().unwrap_or(&Value::Null))?;
                let out =
                    semanage(cx, address, &["boolean", "-m", if s.value { "--on" } else { "--off" }, &s.name]).await?;
                if out.success() {
                    Ok(())
                } else {
                    Err(failed(address, "semanage boolean -m", &out))
                }
            }
            ("port", Action::Delete) => {
                let s: PortSpec = decode(address, change.before.as_ref().unwrap_or(&Value::Null))?;
                let out = semanage(cx, address, &["port", "-d", "-p", &s.proto, &s.port.to_string()]).await?;
                if out.success() {
                    Ok(())
                } else {
                    Err(failed(address, "semanage port -d", &out))
                }
            }
            ("port", _) => {
                let s: PortSpec = decode(address, change.after.as_ref().unwrap_or(&Value::Null))?;
                let port = s.port.to_string();
                let verb = if change.action == Action::Create { "-a" } else { "-m" };
                let mut out = semanage(cx, address, &["port", verb, "-t", &s.setype, "-p", &s.proto, &port]).await?;
                if !out.success() && verb == "-a" && out.message().contains("already defined") {
                    out = semanage(cx, address, &["port", "-m", "-t", &s.setype, "-p", &s.proto, &port]).await?;
                }
                if out.success() {
                    Ok(())
                } else {
                    Err(failed(address, "semanage port", &out))
                }
            }
            (other, _) => Err(Error::failed(address, format!("unknown selinux resource kind {other}"))),
        }
    }
}

/// Serialize any observed type through one closure.
trait ToValue {
    fn to_json(&self) -> serde_json::Result<Value>;
}

impl<T: Serialize> ToValue for T {
    fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relabel follows the files served under its tree on its host: it depends on each once, and its
    /// generation is the digest of their paths and digests, in order (the same bytes as ever: a changed
    /// form would show every relabel as changed after an upgrade).
    #[test]
    fn a_relabel_follows_the_files_under_its_tree_on_its_host() {
        let file = |host: &str, path: &str, sha: &str| {
            Resource::new(
                Address::new("files", "file", Some(host), path),
                serde_json::json!({"path": path, "sha256": sha}),
            )
            .unwrap()
        };
        let mut relabel = Resource::new(
            Address::new(PROVIDER, "relabel", Some("bastion"), "/srv/www"),
            serde_json::json!({"path": "/srv/www/", "generation": ""}),
        )
        .unwrap();
        relabel.depends_on.push(Address::new("files", "file", Some("bastion"), "/srv/www/a"));
        let mut resources = vec![
            file("bastion", "/srv/www/a", "s1"),
            relabel,
            file("bastion", "/srv/wwwx/c", "s3"),
            file("ns1", "/srv/www/d", "s4"),
            file("bastion", "/srv/www/sub/b", "s2"),
        ];
        link_relabels(&mut resources);
        let r = &resources[1];
        let deps: Vec<String> = r.depends_on.iter().map(|a| a.to_string()).collect();
        assert_eq!(deps, ["files.file[bastion:/srv/www/a]", "files.file[bastion:/srv/www/sub/b]"]);
        let want = hex::encode(Sha256::digest("/srv/www/a\0s1\n/srv/www/sub/b\0s2\n"));
        assert_eq!(r.spec["generation"], want);
    }

    #[test]
    fn regex_bases() {
        assert_eq!(regex_base("/usr/share/nginx/html(/.*)?"), "/usr/share/nginx/html");
        assert_eq!(regex_base("/srv/www/data[0-9]+(/.*)?"), "/srv/www");
        assert_eq!(regex_base("/var/named"), "/var/named");
        assert_eq!(regex_base("/(.*)"), "/");
    }

    #[test]
    fn export_and_lists() {
        let e = "fcontext -D\nfcontext -a -f a -t public_content_t -r 's0' '/usr/share/nginx/html(/.*)?'\nboolean -m -1 haproxy_connect_any\nboolean -m -0 httpd_can_network_connect\nport -a -t http_port_t -r 's0' -p tcp 22623\n";
        let l = parse_export(e);
        assert_eq!(l.fcontexts["/usr/share/nginx/html(/.*)?"], "public_content_t");
        assert!(l.booleans["haproxy_connect_any"]);
        assert!(!l.booleans["httpd_can_network_connect"]);
        assert_eq!(l.ports[&("tcp".to_string(), 22623)], "http_port_t");
        let b = parse_boolean_list("SELinux boolean                State  Default Description\nhttpd_can_network_connect      (on   ,   on)  Allow httpd\nx (off  ,  off)  X\n");
        assert_eq!(b.get("httpd_can_network_connect"), Some(&true));
        assert_eq!(b.get("x"), Some(&false));
        let p = parse_port_list(
            "SELinux Port Type              Proto    Port Number\nhttp_port_t                    tcp      80, 81, 443, 8008-8010\nother_t   tcp   9100\nunreserved_port_t              tcp      1024-32767\n",
            &[("tcp".into(), 8009), ("tcp".into(), 22623), ("udp".into(), 80), ("tcp".into(), 9100), ("tcp".into(), 443)],
        );
        assert_eq!(p.get(&("tcp".to_string(), 443)).map(String::as_str), Some("http_port_t"));
        assert_eq!(p.get(&("tcp".to_string(), 9100)).map(String::as_str), Some("other_t"));
        assert_eq!(p.get(&("tcp".to_string(), 8009)), None, "inside a range is not a definition");
        assert_eq!(p.get(&("tcp".to_string(), 22623)), None);
        assert!(!p.contains_key(&("udp".to_string(), 80)));
        let r = parse_relabel("Would relabel /usr/share/nginx/html/new from (null) to system_u:object_r:httpd_sys_content_t:s0\nWould relabel /a b from u:r:admin_home_t:s0 to u:r:httpd_sys_content_t:s0\n");
        assert_eq!(
            r,
            vec!["/usr/share/nginx/html/new: (null) → httpd_sys_content_t", "/a b: admin_home_t → httpd_sys_content_t"]
        );
    }

    #[test]
    fn relabel_follows_the_generation() {
        let p = SelinuxProvider;
        let a = Address::new(PROVIDER, "relabel", Some("bastion"), "/srv");
        let d = serde_json::json!({"path": "/srv", "generation": "g2"});
        let clean = serde_json::json!({"mismatches": [], "generation": "g2"});
        assert_eq!(p.diff(&a, Some(&d), Some(&clean)).unwrap().action, Action::NoOp);
        let stale = serde_json::json!({"mismatches": [], "generation": "g1"});
        assert_eq!(p.diff(&a, Some(&d), Some(&stale)).unwrap().action, Action::Update);
        let wrong =
            serde_json::json!({"mismatches": ["/srv/x: admin_home_t → httpd_sys_content_t"], "generation": "g2"});
        let c = p.diff(&a, Some(&d), Some(&wrong)).unwrap();
        assert_eq!(c.details[0].text, "/srv/x: admin_home_t → httpd_sys_content_t");
    }
}
