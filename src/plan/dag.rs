//! Graph helpers over adjacency lists (`edges[i]` = the nodes `i` needs).

/// A dependency cycle, as node indices in order, if there is one.
pub fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    for start in 0..edges.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge to visit); `path` mirrors the active stack.
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = edges[node].get(*next) {
                *next += 1;
                match mark.get(dep) {
                    Some(Mark::New) => {
                        mark[dep] = Mark::Active;
                        stack.push((dep, 0));
                    }
                    Some(Mark::Active) => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        // Report in "a needs b needs c" order, starting from the lowest index.
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// Nodes in an order where every node comes after the nodes it needs (`None` on a cycle).
pub fn topological_order(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = edges.len();
    let mut indegree: Vec<usize> = edges.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, deps) in edges.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &j in &dependents[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push_back(j);
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// Longest-path depth of each node (roots are level 0); `edges` must be acyclic.
pub fn levels(edges: &[Vec<usize>]) -> Vec<usize> {
    let mut level = vec![0; edges.len()];
    for i in topological_order(edges).unwrap_or_default() {
        level[i] = edges[i].iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    level
}
