//! Delta debugging (Zeller's ddmin) over call sites: the smallest set of
//! sites whose buffers, released at the end of their cycle, make a failure
//! (an out-of-memory, growth) disappear.

/// Returns a 1-minimal subset `S` of `candidates` with `gone(S)` true, or
/// `None` if even releasing every candidate does not remove the failure.
/// `gone` is called O(|S|² log |candidates|) times at worst; `budget` caps
/// the number of calls (the best set found so far is returned).
pub fn ddmin<T: Clone>(
    candidates: &[T],
    budget: usize,
    mut gone: impl FnMut(&[T]) -> bool,
) -> Option<Vec<T>> {
    let calls = std::cell::Cell::new(0usize);
    let mut test = |s: &[T]| {
        calls.set(calls.get() + 1);
        gone(s)
    };
    if candidates.is_empty() || !test(candidates) {
        return None;
    }
    let mut current: Vec<T> = candidates.to_vec();
    let mut n = 2usize;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut reduced = false;
        for c in &chunks {
            if calls_left(calls.get(), budget) && test(c) {
                current = c.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && n > 2 {
            for i in 0..chunks.len() {
                let complement: Vec<T> = chunks
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .flat_map(|(_, c)| c.iter().cloned())
                    .collect();
                if calls_left(calls.get(), budget) && test(&complement) {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() || !calls_left(calls.get(), budget) {
                break;
            }
            n = (2 * n).min(current.len());
        }
    }
    Some(current)
}

fn calls_left(calls: usize, budget: usize) -> bool {
    calls < budget
}

/// Splits into `n` nearly equal consecutive chunks.
fn split<T: Clone>(v: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.min(v.len()).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (v.len() - start) / (n - i);
        out.push(v[start..end].to_vec());
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_single_culprit() {
        let c: Vec<u32> = (0..16).collect();
        let mut calls = 0;
        let r = ddmin(&c, 1000, |s| {
            calls += 1;
            s.contains(&11)
        });
        assert_eq!(r, Some(vec![11]));
        assert!(
            calls < 16,
            "ddmin should need fewer tests than candidates, used {calls}"
        );
    }

    #[test]
    fn finds_a_pair_that_must_be_released_together() {
        let c: Vec<u32> = (0..10).collect();
        let r = ddmin(&c, 1000, |s| s.contains(&2) && s.contains(&7)).unwrap();
        assert_eq!(r, vec![2, 7]);
    }

    #[test]
    fn none_when_nothing_helps() {
        let c: Vec<u32> = (0..5).collect();
        assert_eq!(ddmin(&c, 1000, |_| false), None);
        assert_eq!(ddmin::<u32>(&[], 1000, |_| true), None);
    }

    #[test]
    fn split_covers_everything() {
        let v: Vec<u32> = (0..7).collect();
        let parts = split(&v, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), v);
    }
}
