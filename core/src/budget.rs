//! How much one wake-up of a loop on a single-threaded worker may do before it yields.
//!
//! A loop that drains its socket until empty never yields while a peer floods it: a UDP
//! receive loop under a flood at the RTP port, or a connection whose peer sends faster than
//! the worker parses, and the worker's other tasks (its other connections, the sessions the
//! datagrams are for) starve. With a budget, the loop does a bounded amount per wake-up and
//! then yields; what remains in the socket is read on the next turn, or (for UDP) dropped by
//! the kernel once its buffer is full, which is where a flood's cost belongs.

/// Datagrams one wake-up of a UDP receive loop takes.
pub const UDP_RECEIVE_BUDGET: usize = 64;

/// Reads (of at most about 16 KiB each) one connection does in a row before it lets the
/// worker's other tasks run.
pub const TCP_READ_BUDGET: usize = 16;

/// A per-wake-up allowance: [`WakeBudget::start_wake`] when the loop wakes,
/// [`WakeBudget::take`] before each unit of work, and yield once it says no.
#[derive(Debug, Clone)]
pub struct WakeBudget {
    per_wake: usize,
    left: usize,
}

impl WakeBudget {
    /// A budget of `per_wake` units per wake-up (at least 1, so a loop always makes
    /// progress), full for the first wake-up.
    pub fn new(per_wake: usize) -> Self {
        let per_wake = per_wake.max(1);
        Self {
            per_wake,
            left: per_wake,
        }
    }

    /// The loop woke: the full allowance is available again.
    pub fn start_wake(&mut self) {
        self.left = self.per_wake;
    }

    /// Consumes one unit; false once this wake-up's allowance is spent (yield).
    pub fn take(&mut self) -> bool {
        match self.left.checked_sub(1) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }

    /// Whether this wake-up's allowance is spent.
    pub fn exhausted(&self) -> bool {
        self.left == 0
    }
}

impl Default for WakeBudget {
    fn default() -> Self {
        Self::new(UDP_RECEIVE_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn takes_up_to_the_budget_per_wake() {
        let mut budget = WakeBudget::new(2);
        assert!(!budget.exhausted());
        assert!(budget.take());
        assert!(budget.take());
        assert!(budget.exhausted());
        assert!(!budget.take());
        budget.start_wake();
        assert!(budget.take());
        assert!(!budget.exhausted());
    }

    #[test]
    fn a_zero_budget_still_makes_progress() {
        let mut budget = WakeBudget::new(0);
        assert!(budget.take());
        assert!(!budget.take());
        assert_eq!(WakeBudget::default().per_wake, UDP_RECEIVE_BUDGET);
    }

    proptest! {
        /// However the takes fall between wake-ups, each wake-up grants exactly
        /// min(attempts, budget) of them.
        #[test]
        fn each_wake_grants_at_most_the_budget(
            wakes in proptest::collection::vec(0usize..20, 0..30),
            per_wake in 1usize..8,
        ) {
            let mut budget = WakeBudget::new(per_wake);
            for attempts in wakes {
                budget.start_wake();
                let granted = (0..attempts).filter(|_| budget.take()).count();
                prop_assert_eq!(granted, attempts.min(per_wake));
                prop_assert_eq!(budget.exhausted(), attempts >= per_wake);
            }
        }
    }
}
