//! The workers a manual scale-up still owes: a scale-up the admission rule lets through
//! (see [`super::admission`]) starts what the GPUs have room for now, and the rest wait for
//! room the way demand-driven starts do. The pool keeps the count the type was scaled to
//! (its target) until that many workers live; [`owed`] is what it still has to start, and
//! [`split_down`] how a scale-down takes from those first.

/// Workers still owed to a manual scale-up to `target` live workers, with `live` alive now
/// (none once the target is reached, or without one).
pub(crate) fn owed(target: Option<usize>, live: usize) -> usize {
    target.map_or(0, |t| t.saturating_sub(live))
}

/// How a scale-down of `count` workers splits, with `owed` workers still to start: first
/// the owed ones are not started, then live workers are retired. Answers both counts.
pub(crate) fn split_down(count: usize, owed: usize) -> (usize, usize) {
    let unstarted = count.min(owed);
    (unstarted, count - unstarted)
}

/// The target a manual scale-up leaves: `live + asked` while some of them wait for room
/// (`started < asked`), none once all started.
pub(crate) fn target_after_up(live: usize, asked: usize, started: usize) -> Option<usize> {
    (started < asked).then_some(live + asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_up_owes_what_did_not_start_until_that_many_live() {
        // Three asked with one alive, one started: the type is owed two until four live.
        let target = target_after_up(1, 3, 1);
        assert_eq!(target, Some(4));
        assert_eq!(owed(target, 2), 2);
        assert_eq!(owed(target, 3), 1);
        assert_eq!(owed(target, 4), 0);
        assert_eq!(owed(target, 6), 0, "more alive than asked for owes nothing");
        assert_eq!(target_after_up(1, 3, 3), None, "all started: nothing owed");
        assert_eq!(owed(None, 0), 0);
    }

    #[test]
    fn a_scale_down_takes_the_owed_workers_first() {
        assert_eq!(split_down(1, 2), (1, 0));
        assert_eq!(split_down(3, 2), (2, 1));
        assert_eq!(split_down(2, 0), (0, 2));
    }
}
