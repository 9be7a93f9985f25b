use super::*;

const P: usize = PAGE;

#[test]
fn blocks_pack_from_the_bottom_and_reuse_the_lowest_free_place() {
    let mut s = Spans::new(100 * P);
    // Fresh memory: nothing of it was handed out before.
    assert_eq!(s.take(4 * P), Some((0, 0)));
    assert_eq!(s.take(8 * P), Some((4 * P, 0)));
    assert_eq!(s.take(2 * P), Some((12 * P, 0)));
    s.give(0, 4 * P);
    s.give(12 * P, 2 * P);
    // The last block went back into the top: 12 pages are handed out.
    assert_eq!(s.top, 12 * P);
    // 3 pages fit the free place at 0 (used before, so not zero).
    assert_eq!(s.take(3 * P), Some((0, 3 * P)));
    // 2 pages: the page left at 3, too small, then the top, whose first
    // two pages were handed out before the 2-page block went back.
    assert_eq!(s.take(2 * P), Some((12 * P, 2 * P)));
    assert_eq!(s.take(P), Some((3 * P, P)));
    assert_eq!(s.num_free, 0);
}

#[test]
fn freed_places_merge_with_their_neighbours_and_the_top() {
    let mut s = Spans::new(100 * P);
    for _ in 0..4 {
        s.take(2 * P).unwrap();
    }
    s.give(0, 2 * P);
    s.give(4 * P, 2 * P);
    assert_eq!(&s.free[..s.num_free], &[(0, 2 * P), (4 * P, 2 * P)]);
    // The block between them joins both into one place.
    s.give(2 * P, 2 * P);
    assert_eq!(&s.free[..s.num_free], &[(0, 6 * P)]);
    // The last block joins that place and the top: nothing is handed out.
    s.give(6 * P, 2 * P);
    assert_eq!((s.top, s.num_free), (0, 0));
    assert_eq!(s.high_water, 8 * P);
}

#[test]
fn a_block_grows_in_place_into_the_top_or_a_free_place_after_it() {
    let mut s = Spans::new(20 * P);
    let a = s.take(2 * P).unwrap().0;
    // At the top: grows there.
    assert!(s.resize(a, 2 * P, 5 * P));
    assert_eq!(s.top, 5 * P);
    let b = s.take(4 * P).unwrap().0;
    let c = s.take(2 * P).unwrap().0;
    assert_eq!((b, c), (5 * P, 9 * P));
    // Followed by a used block: cannot.
    assert!(!s.resize(a, 5 * P, 6 * P));
    s.give(b, 4 * P);
    // Into the free place after it, leaving the rest of that place free.
    assert!(s.resize(a, 5 * P, 7 * P));
    assert_eq!(&s.free[..s.num_free], &[(7 * P, 2 * P)]);
    // Shrinking gives the tail back, merged with the free place after it.
    assert!(s.resize(a, 7 * P, 3 * P));
    assert_eq!(&s.free[..s.num_free], &[(3 * P, 6 * P)]);
    // Past the region's end: cannot.
    assert!(s.resize(c, 2 * P, 11 * P));
    assert!(!s.resize(c, 11 * P, 12 * P));
    assert_eq!(s.take(P), Some((3 * P, P)));
}

#[test]
fn a_full_region_hands_out_nothing() {
    let mut s = Spans::new(4 * P);
    assert_eq!(s.take(3 * P), Some((0, 0)));
    assert_eq!(s.take(2 * P), None);
    assert_eq!(s.take(P), Some((3 * P, 0)));
    assert_eq!(s.take(P), None);
}

/// Marks `pages` handed out at `step`; none of them may be already.
fn hand_out(pages: &mut [usize], step: usize) {
    for p in pages {
        assert_eq!(*p, usize::MAX, "step {step}: a page handed out twice");
        *p = step;
    }
}

#[test]
fn a_freed_block_keeps_its_pages_in_the_huge_part_and_gives_back_the_rest() {
    // Wholly in the huge part: nothing given back.
    assert_eq!(given_back(0, 16 * P), (16 * P, 0));
    assert_eq!(given_back(HUGE_PART - 4 * P, 4 * P), (4 * P, 0));
    // Across its end: the 3 pages past it go back.
    assert_eq!(given_back(HUGE_PART - 2 * P, 5 * P), (2 * P, 3 * P));
    // Wholly above it: all of it goes back.
    assert_eq!(given_back(HUGE_PART, 4 * P), (0, 4 * P));
    assert_eq!(given_back(HUGE_PART + 8 * P, P), (0, P));
}

/// Random takes, gives and resizes against a map of which pages are
/// handed out: no page is handed out twice, what is given back can be
/// handed out again, a block taken says which of its pages may hold an
/// earlier owner's bytes (freed pages are kept, so `alloc_zeroed` clears
/// those), and the free places stay sorted, apart and below the top.
#[test]
fn random_use_never_hands_out_a_page_twice() {
    const PAGES: usize = 256;
    let mut s = Spans::new(PAGES * P);
    let mut owner = [usize::MAX; PAGES];
    // Whether a page was ever handed out: such a page is not fresh zero.
    let mut ever = [false; PAGES];
    let mut live: Vec<(usize, usize)> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for step in 0..20_000 {
        match next(3) {
            0 => {
                let len = (1 + next(16)) * P;
                if let Some((at, used)) = s.take(len) {
                    hand_out(&mut owner[at / P..(at + len) / P], step);
                    // Past what it says was used before, every page is fresh.
                    let fresh = (at + used) / P..(at + len) / P;
                    assert!(!ever[fresh.clone()].contains(&true), "step {step}");
                    ever[at / P..(at + len) / P].fill(true);
                    live.push((at, len));
                }
            }
            1 if !live.is_empty() => {
                let (at, len) = live.swap_remove(next(live.len()));
                owner[at / P..(at + len) / P].fill(usize::MAX);
                s.give(at, len);
            }
            _ if !live.is_empty() => {
                let k = next(live.len());
                let (at, len) = live[k];
                let new = (1 + next(16)) * P;
                if s.resize(at, len, new) {
                    owner[(at + new.min(len)) / P..(at + len) / P].fill(usize::MAX);
                    if new > len {
                        hand_out(&mut owner[(at + len) / P..(at + new) / P], step);
                        ever[(at + len) / P..(at + new) / P].fill(true);
                    }
                    live[k] = (at, new);
                }
            }
            _ => {}
        }
        let free = &s.free[..s.num_free];
        assert!(free.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0));
        assert!(free.iter().all(|&(a, l)| l > 0 && a + l < s.top));
        let used: usize = live.iter().map(|&(_, l)| l).sum();
        assert_eq!(used + free.iter().map(|&(_, l)| l).sum::<usize>(), s.top);
    }
}
