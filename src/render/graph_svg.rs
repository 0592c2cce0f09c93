//! The resource graph as an SVG picture, laid out here (no Graphviz, no layout crate): dependencies in
//! columns left to right, each resource a box coloured by its state. Large environments stay legible:
//! where one column holds more than [`GROUP_LIMIT`] resources of one kind, they share one box that
//! counts them and takes the worst state among them.

use super::html::escape;
use groundwork_sdk::Address;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What the picture says about a resource, worst last (a group takes the worst of its members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceState {
    InSync,
    #[default]
    Unknown,
    Waiting,
    Drifted,
    Failed,
}

impl ResourceState {
    pub const ALL: [ResourceState; 5] = [
        ResourceState::InSync,
        ResourceState::Drifted,
        ResourceState::Waiting,
        ResourceState::Failed,
        ResourceState::Unknown,
    ];

    /// The CSS class and the word a page's tests and readers see.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceState::InSync => "in-sync",
            ResourceState::Unknown => "unknown",
            ResourceState::Waiting => "waiting",
            ResourceState::Drifted => "drifted",
            ResourceState::Failed => "failed",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ResourceState::InSync => "in sync",
            ResourceState::Unknown => "not read",
            ResourceState::Waiting => "waiting on a gate",
            ResourceState::Drifted => "drifted",
            ResourceState::Failed => "failed",
        }
    }

    /// A mark beside the colour, so that the state does not rest on colour alone.
    pub fn mark(self) -> &'static str {
        match self {
            ResourceState::InSync => "✓",
            ResourceState::Unknown => "?",
            ResourceState::Waiting => "◷",
            ResourceState::Drifted => "~",
            ResourceState::Failed => "✗",
        }
    }

    /// (stroke, fill): presentation attributes, since the page's style policy admits no inline styles.
    fn colours(self) -> (&'static str, &'static str) {
        match self {
            ResourceState::InSync => ("#2e7d32", "#e8f5e9"),
            ResourceState::Unknown => ("#757575", "#f5f5f5"),
            ResourceState::Waiting => ("#1565c0", "#e3f2fd"),
            ResourceState::Drifted => ("#e65100", "#fff3e0"),
            ResourceState::Failed => ("#c62828", "#ffebee"),
        }
    }
}

/// More resources of one kind than this in one column share a box.
pub const GROUP_LIMIT: usize = 8;
const BOX_W: usize = 270;
const BOX_H: usize = 26;
const GAP_X: usize = 60;
const GAP_Y: usize = 10;
const MARGIN: usize = 10;
/// Characters of a label that fit a box in 12px monospace.
const LABEL_CHARS: usize = 33;

/// One box: a resource, or several of one kind in one column.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphBox {
    pub label: String,
    pub members: Vec<String>,
    column: usize,
    row: usize,
}

/// The positions of the boxes, computed once per environment; the states colour them on each check.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub boxes: Vec<GraphBox>,
    /// (from, to): the dependency's box, then the dependant's.
    pub edges: Vec<(usize, usize)>,
    columns: usize,
    rows: usize,
}

impl Layout {
    /// Lay out resources given as (address, what it depends on). Dependencies on addresses outside
    /// the set are left out of the picture; a cycle (refused at load anyway) cannot loop here.
    pub fn new<'a>(resources: impl IntoIterator<Item = (&'a Address, &'a [Address])>) -> Layout {
        let resources: BTreeMap<&Address, Vec<&Address>> =
            resources.into_iter().map(|(a, deps)| (a, deps.iter().collect())).collect();
        // Column: the length of the longest dependency chain below the resource.
        let mut column: BTreeMap<&Address, usize> = BTreeMap::new();
        for a in resources.keys() {
            column_of(a, &resources, &mut column, &mut BTreeSet::new());
        }
        // Group by (column, provider.kind); a group too big for separate boxes becomes one box.
        let mut groups: BTreeMap<(usize, String), Vec<&Address>> = BTreeMap::new();
        for (a, c) in &column {
            groups.entry((*c, format!("{}.{}", a.provider, a.kind))).or_default().push(a);
        }
        let mut boxes: Vec<GraphBox> = Vec::new();
        let mut box_of: BTreeMap<&Address, usize> = BTreeMap::new();
        for ((c, kind), members) in groups {
            if members.len() > GROUP_LIMIT {
                for m in &members {
                    box_of.insert(m, boxes.len());
                }
                boxes.push(GraphBox {
                    label: format!("{kind} ×{}", members.len()),
                    members: members.iter().map(|m| m.to_string()).collect(),
                    column: c,
                    row: 0,
                });
            } else {
                for m in members {
                    box_of.insert(m, boxes.len());
                    boxes.push(GraphBox { label: m.to_string(), members: vec![m.to_string()], column: c, row: 0 });
                }
            }
        }
        let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (a, deps) in &resources {
            for d in deps {
                if let (Some(&from), Some(&to)) = (box_of.get(d), box_of.get(a)) {
                    if from != to {
                        edges.insert((from, to));
                    }
                }
            }
        }
        let edges: Vec<(usize, usize)> = edges.into_iter().collect();
        let columns = boxes.iter().map(|b| b.column + 1).max().unwrap_or(0);
        // Rows: column by column, each box near the mean row of what it depends on (fewer crossings),
        // then by label.
        let mut rows = 0;
        for c in 0..columns {
            let mut in_column: Vec<(f64, String, usize)> = boxes
                .iter()
                .enumerate()
                .filter(|(_, b)| b.column == c)
                .map(|(i, b)| {
                    let ups: Vec<usize> =
                        edges.iter().filter(|(_, to)| *to == i).map(|(from, _)| boxes[*from].row).collect();
                    let key = if ups.is_empty() { 0.0 } else { ups.iter().sum::<usize>() as f64 / ups.len() as f64 };
                    (key, b.label.clone(), i)
                })
                .collect();
            in_column.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
            for (row, (_, _, i)) in in_column.iter().enumerate() {
                boxes[*i].row = row;
            }
            rows = rows.max(in_column.len());
        }
        Layout { boxes, edges, columns, rows }
    }

    pub fn width(&self) -> usize {
        2 * MARGIN + self.columns * BOX_W + self.columns.saturating_sub(1) * GAP_X
    }

    pub fn height(&self) -> usize {
        2 * MARGIN + self.rows * BOX_H + self.rows.saturating_sub(1) * GAP_Y
    }

    fn origin(&self, b: &GraphBox) -> (usize, usize) {
        (MARGIN + b.column * (BOX_W + GAP_X), MARGIN + b.row * (BOX_H + GAP_Y))
    }

    /// A box's state: the worst of its members' (a member the states do not name was not read).
    pub fn state_of(b: &GraphBox, states: &BTreeMap<String, ResourceState>) -> ResourceState {
        b.members.iter().map(|m| states.get(m).copied().unwrap_or(ResourceState::Unknown)).max().unwrap_or_default()
    }

    /// The SVG element, to be placed inline in a page. Every text in it is escaped.
    pub fn svg(&self, states: &BTreeMap<String, ResourceState>) -> String {
        let (w, h) = (self.width(), self.height());
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" id="graph" role="img" aria-labelledby="graph-title" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="12">"##
        );
        let _ = write!(
            s,
            r#"<title id="graph-title">Resource graph: {} boxes, dependencies on the left</title>"#,
            self.boxes.len()
        );
        s.push_str(r##"<g fill="none" stroke="#9e9e9e" stroke-width="1">"##);
        for (from, to) in &self.edges {
            let (fx, fy) = self.origin(&self.boxes[*from]);
            let (tx, ty) = self.origin(&self.boxes[*to]);
            let (x1, y1, x2, y2) = (fx + BOX_W, fy + BOX_H / 2, tx, ty + BOX_H / 2);
            let mid = (x1 + x2) / 2;
            let _ = write!(s, r#"<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>"#);
        }
        s.push_str("</g>");
        for b in &self.boxes {
            let state = Layout::state_of(b, states);
            let (stroke, fill) = state.colours();
            let (x, y) = self.origin(b);
            let title = if b.members.len() == 1 {
                format!("{}: {}", b.label, state.describe())
            } else {
                let mut counts: BTreeMap<ResourceState, usize> = BTreeMap::new();
                for m in &b.members {
                    *counts.entry(states.get(m).copied().unwrap_or_default()).or_default() += 1;
                }
                let parts: Vec<String> = counts.iter().rev().map(|(st, n)| format!("{n} {}", st.describe())).collect();
                format!("{}: {}", b.label, parts.join(", "))
            };
            let dash = if state == ResourceState::Waiting { r#" stroke-dasharray="4 3""# } else { "" };
            let _ = write!(
                s,
                r##"<g class="node {cls}" data-state="{cls}" data-label="{label}"><title>{title}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4" fill="{fill}" stroke="{stroke}"{dash}/><text x="{tx}" y="{ty}" fill="#212121">{mark} {text}</text></g>"##,
                cls = state.as_str(),
                label = escape(&b.label),
                title = escape(&title),
                tx = x + 6,
                ty = y + 17,
                mark = state.mark(),
                text = escape(&shorten(&b.label, LABEL_CHARS)),
            );
        }
        s.push_str("</svg>");
        s
    }
}

fn column_of<'a>(
    a: &'a Address,
    resources: &BTreeMap<&'a Address, Vec<&'a Address>>,
    memo: &mut BTreeMap<&'a Address, usize>,
    visiting: &mut BTreeSet<&'a Address>,
) -> usize {
    if let Some(c) = memo.get(a) {
        return *c;
    }
    if !visiting.insert(a) {
        return 0;
    }
    let mut c = 0;
    for d in resources.get(a).into_iter().flatten() {
        if let Some((key, _)) = resources.get_key_value(*d) {
            c = c.max(column_of(key, resources, memo, visiting) + 1);
        }
    }
    visiting.remove(a);
    memo.insert(a, c);
    c
}

/// The start and the end of a long label, an ellipsis between (the end names the resource).
fn shorten(label: &str, max: usize) -> String {
    let n = label.chars().count();
    if n <= max {
        return label.to_string();
    }
    let head: String = label.chars().take(max / 3).collect();
    let tail: String = label.chars().skip(n - (max - max / 3 - 1)).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(kind: &str, name: &str) -> Address {
        Address::new("p", kind, Some("h"), name)
    }

    #[test]
    fn dependencies_sit_in_earlier_columns_and_edges_join_boxes() {
        let (zone, conf, reload) = (a("zone", "z"), a("conf", "c"), a("reload", "r"));
        let conf_deps = [zone.clone()];
        let reload_deps = [conf.clone(), zone.clone()];
        let l = Layout::new([(&zone, &[][..]), (&conf, &conf_deps[..]), (&reload, &reload_deps[..])]);
        let col = |x: &Address| l.boxes.iter().find(|b| b.members == [x.to_string()]).unwrap().column;
        assert_eq!((col(&zone), col(&conf), col(&reload)), (0, 1, 2));
        assert_eq!(l.edges.len(), 3);
        assert_eq!(l.width(), 2 * MARGIN + 3 * BOX_W + 2 * GAP_X);
    }

    #[test]
    fn many_resources_of_one_kind_share_a_box_with_the_worst_state() {
        let files: Vec<Address> = (0..1000).map(|i| a("file", &format!("/srv/n{i:04}.ipxe"))).collect();
        let l = Layout::new(files.iter().map(|f| (f, &[][..])));
        assert_eq!(l.boxes.len(), 1);
        assert_eq!(l.boxes[0].label, "p.file ×1000");
        let mut states: BTreeMap<String, ResourceState> =
            files.iter().map(|f| (f.to_string(), ResourceState::InSync)).collect();
        states.insert(files[7].to_string(), ResourceState::Drifted);
        let svg = l.svg(&states);
        assert!(svg.contains(r#"data-state="drifted""#), "{svg}");
        assert!(svg.contains("p.file ×1000: 1 drifted, 999 in sync"), "{svg}");
        // Small groups keep one box per resource.
        let few: Vec<Address> = (0..GROUP_LIMIT).map(|i| a("file", &i.to_string())).collect();
        assert_eq!(Layout::new(few.iter().map(|f| (f, &[][..]))).boxes.len(), GROUP_LIMIT);
    }

    #[test]
    fn a_dependency_cycle_or_an_unknown_dependency_does_not_hang_or_panic() {
        let (x, y) = (a("k", "x"), a("k", "y"));
        let xd = [y.clone(), a("k", "missing")];
        let yd = [x.clone()];
        let l = Layout::new([(&x, &xd[..]), (&y, &yd[..])]);
        assert_eq!(l.boxes.len(), 2);
        assert!(l.svg(&BTreeMap::new()).contains(r#"data-state="unknown""#));
    }

    #[test]
    fn long_labels_keep_their_start_and_end() {
        let s = shorten("files.file[bastion:/usr/share/nginx/html/ignition/worker-0042.ign]", LABEL_CHARS);
        assert_eq!(s.chars().count(), LABEL_CHARS);
        assert!(s.starts_with("files.file[") && s.ends_with("worker-0042.ign]"), "{s}");
    }
}
