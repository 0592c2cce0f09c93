//! The resource graph: nodes are resources, edges point from a dependency to its dependents.
//! Built in passes: nodes, explicit and derived edges, then the acyclic check.

use crate::error::{Error, Result};
use groundwork_sdk::Address;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

#[derive(Debug)]
pub struct Graph {
    pub graph: DiGraph<Address, ()>,
    pub index: HashMap<Address, NodeIndex>,
}

impl Graph {
    /// `items`: every address with the addresses it depends on. Dependencies outside `items` are
    /// an error unless `allow_external` (a plan's NoOp resources are already satisfied).
    pub fn build<'a>(
        items: impl IntoIterator<Item = (&'a Address, &'a [Address])>,
        allow_external: bool,
    ) -> Result<Graph> {
        let items: Vec<(&Address, &[Address])> = items.into_iter().collect();
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for (a, _) in &items {
            index.insert((*a).clone(), graph.add_node((*a).clone()));
        }
        for (a, deps) in &items {
            for d in deps.iter() {
                match index.get(d) {
                    Some(&from) => {
                        graph.add_edge(from, index[*a], ());
                    }
                    None if allow_external => {}
                    None => return Err(Error::MissingDependency { address: a.to_string(), missing: d.to_string() }),
                }
            }
        }
        let g = Graph { graph, index };
        g.check_acyclic()?;
        Ok(g)
    }

    fn check_acyclic(&self) -> Result<()> {
        if toposort(&self.graph, None).is_ok() {
            return Ok(());
        }
        let cycle = tarjan_scc(&self.graph)
            .into_iter()
            .find(|c| c.len() > 1 || c.iter().any(|n| self.graph.contains_edge(*n, *n)))
            .unwrap_or_default();
        let mut members: Vec<String> = cycle.iter().map(|n| self.graph[*n].to_string()).collect();
        members.sort();
        if let Some(first) = members.first().cloned() {
            members.push(first);
        }
        Err(Error::Cycle { members })
    }

    /// Addresses in dependency order.
    pub fn order(&self) -> Vec<Address> {
        toposort(&self.graph, None).map(|v| v.into_iter().map(|n| self.graph[n].clone()).collect()).unwrap_or_default()
    }

    /// DOT for `groundwork graph`.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph groundwork {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
        let mut nodes: Vec<&Address> = self.index.keys().collect();
        nodes.sort();
        for a in &nodes {
            s.push_str(&format!("  \"{}\";\n", a.to_string().replace('"', "\\\"")));
        }
        let mut edges: Vec<(String, String)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| (self.graph[a].to_string(), self.graph[b].to_string()))
            .collect();
        edges.sort();
        for (a, b) in edges {
            s.push_str(&format!("  \"{}\" -> \"{}\";\n", a.replace('"', "\\\""), b.replace('"', "\\\"")));
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: &str) -> Address {
        Address::new("t", "r", None, n)
    }

    #[test]
    fn orders_dependencies_first() {
        let (x, y, z) = (a("x"), a("y"), a("z"));
        let dx = [y.clone()];
        let dy = [z.clone()];
        let g = Graph::build([(&x, &dx[..]), (&y, &dy[..]), (&z, &[][..])], false).unwrap();
        assert_eq!(g.order(), vec![z, y, x]);
    }

    #[test]
    fn reports_cycle_members() {
        let (x, y, z) = (a("x"), a("y"), a("z"));
        let (dx, dy, dz): ([Address; 1], [Address; 1], [Address; 0]) = ([y.clone()], [x.clone()], []);
        let err = Graph::build([(&x, &dx[..]), (&y, &dy[..]), (&z, &dz[..])], false).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle between: t.r[x] → t.r[y] → t.r[x]");
    }

    #[test]
    fn missing_dependency_is_named() {
        let (x, y) = (a("x"), a("y"));
        let dx = [y.clone()];
        let err = Graph::build([(&x, &dx[..])], false).unwrap_err();
        assert!(err.to_string().contains("depends on t.r[y], which is not declared"));
        assert!(Graph::build([(&x, &dx[..])], true).is_ok());
    }
}
