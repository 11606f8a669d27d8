//! Dependencies between heartbeats: a heartbeat may name parents (heartbeats of
//! its own project). While a parent is down, the child's alerts are withheld as
//! `suppressed` (`super::withhold`), so the dozen jobs that depend on one
//! database host do not page a dozen times; when the parent recovers, children
//! still down alert once. Only direct parents count: a child whose parent is
//! up again alerts even while a grandparent is down (docs/monitoring.md,
//! "Dependencies"). Parents must not form a cycle.

use std::collections::HashMap;

use uuid::Uuid;

/// Most parents one heartbeat may name.
pub const MAX_PARENTS: usize = 20;

/// Why a list of parents was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParentError {
    #[error("parents: at most {MAX_PARENTS}")]
    TooMany,
    #[error("parents: a heartbeat cannot be its own parent")]
    ItsOwn,
    #[error("parents: no heartbeat {0} in this project")]
    Unknown(Uuid),
    #[error("parents: they would make a cycle: {0}")]
    Cycle(String),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Checks `parents` for the heartbeat `child` (None when it is being created)
/// of `project_id`: each a heartbeat of the project, not the child itself, and
/// no path of parents leading back to the child. Returns them sorted, without
/// duplicates.
pub async fn check_parents(
    client: &tokio_postgres::Client,
    project_id: Uuid,
    child: Option<Uuid>,
    parents: &[Uuid],
) -> Result<Vec<Uuid>, ParentError> {
    let mut parents = parents.to_vec();
    parents.sort();
    parents.dedup();
    if parents.len() > MAX_PARENTS {
        return Err(ParentError::TooMany);
    }
    if parents.is_empty() {
        return Ok(parents);
    }
    if child.is_some_and(|c| parents.contains(&c)) {
        return Err(ParentError::ItsOwn);
    }
    let rows = client
        .query(
            "SELECT heartbeat_id, name, parents FROM heartbeat.heartbeat WHERE project_id = $1",
            &[&project_id],
        )
        .await?;
    let mut graph: HashMap<Uuid, (String, Vec<Uuid>)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    if let Some(missing) = parents.iter().find(|p| !graph.contains_key(p)) {
        return Err(ParentError::Unknown(*missing));
    }
    let Some(child) = child else {
        // A new heartbeat has no children yet: no cycle can go through it.
        return Ok(parents);
    };
    if let Some(entry) = graph.get_mut(&child) {
        entry.1 = parents.clone();
    }
    if let Some(path) = cycle_through(&graph, child) {
        let names: Vec<String> = path
            .iter()
            .map(|id| {
                format!(
                    "{} ({id})",
                    graph.get(id).map(|e| e.0.as_str()).unwrap_or("?")
                )
            })
            .collect();
        return Err(ParentError::Cycle(names.join(" -> ")));
    }
    Ok(parents)
}

/// A path of parents from `start` back to `start`, if there is one (depth
/// first; each heartbeat visited once).
fn cycle_through(graph: &HashMap<Uuid, (String, Vec<Uuid>)>, start: Uuid) -> Option<Vec<Uuid>> {
    let mut seen = std::collections::HashSet::new();
    // (node, index of the next parent to try); the stack is the current path.
    let mut stack: Vec<(Uuid, usize)> = vec![(start, 0)];
    while let Some((node, next)) = stack.last().copied() {
        let parents = graph.get(&node).map(|e| e.1.as_slice()).unwrap_or(&[]);
        if next == parents.len() {
            stack.pop();
            continue;
        }
        stack.last_mut().expect("not empty").1 += 1;
        let parent = parents[next];
        if parent == start {
            let mut path: Vec<Uuid> = stack.iter().map(|(n, _)| *n).collect();
            path.push(start);
            return Some(path);
        }
        if seen.insert(parent) {
            stack.push((parent, 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn graph(edges: &[(u128, &[u128])]) -> HashMap<Uuid, (String, Vec<Uuid>)> {
        edges
            .iter()
            .map(|(n, ps)| {
                (
                    id(*n),
                    (format!("hb{n}"), ps.iter().map(|p| id(*p)).collect()),
                )
            })
            .collect()
    }

    #[test]
    fn a_cycle_is_found_with_its_path_and_a_diamond_is_not_one() {
        let g = graph(&[(1, &[2]), (2, &[3]), (3, &[1])]);
        assert_eq!(
            cycle_through(&g, id(1)),
            Some(vec![id(1), id(2), id(3), id(1)])
        );
        let diamond = graph(&[(1, &[2, 3]), (2, &[4]), (3, &[4]), (4, &[])]);
        assert_eq!(cycle_through(&diamond, id(1)), None);
    }
}
