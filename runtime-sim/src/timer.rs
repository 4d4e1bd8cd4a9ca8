//! The virtual clock: the time, the world's table of deadlines, and [`Sleep`], the resettable
//! timer future tasks wait on.
//!
//! Timers due at the same instant fire in the order they were created, so the wake-ups of one
//! instant are as reproducible as everything else.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use mediakit_core::Millis;

/// The world's virtual time and the timers waiting on it, shared by the world and every
/// [`Sleep`].
#[derive(Debug, Default)]
pub(crate) struct Clock {
    now: Cell<Millis>,
    pub(crate) timers: RefCell<Timers>,
}

impl Clock {
    /// The time now.
    pub(crate) fn now(&self) -> Millis {
        self.now.get()
    }

    /// Moves the time to `at` (never back); true if it moved.
    pub(crate) fn advance(&self, at: Millis) -> bool {
        let moved = at > self.now.get();
        if moved {
            self.now.set(at);
        }
        moved
    }
}

/// Identifies one timer; ids follow creation order, which breaks ties between deadlines.
type TimerId = u64;

/// Every timer a task is waiting on, by deadline.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Millis, TimerId)>,
    waiting: HashMap<TimerId, (Millis, Waker)>,
    next_id: TimerId,
}

impl Timers {
    fn new_id(&mut self) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Wakes `waker` at `deadline` (replacing what timer `id` waited for before).
    fn register(&mut self, id: TimerId, deadline: Millis, waker: &Waker) {
        match self.waiting.get_mut(&id) {
            Some((at, stored)) if *at == deadline => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
            }
            _ => {
                self.cancel(id);
                self.queue.insert((deadline, id));
                self.waiting.insert(id, (deadline, waker.clone()));
            }
        }
    }

    /// Forgets timer `id`; returns the waker it held, if it was waiting.
    fn cancel(&mut self, id: TimerId) -> Option<Waker> {
        let (deadline, waker) = self.waiting.remove(&id)?;
        self.queue.remove(&(deadline, id));
        Some(waker)
    }

    /// The earliest deadline anyone waits for.
    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.queue.first().map(|(deadline, _)| *deadline)
    }

    /// Removes the timers due at `now` and returns their wakers, earliest (then oldest)
    /// first.
    pub(crate) fn take_due(&mut self, now: Millis) -> Vec<Waker> {
        let mut due = Vec::new();
        while let Some(&(deadline, id)) = self.queue.first() {
            if deadline > now {
                break;
            }
            self.queue.pop_first();
            if let Some((_, waker)) = self.waiting.remove(&id) {
                due.push(waker);
            }
        }
        due
    }

    /// Timers waiting.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Forgets every timer (the world is ending).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.waiting.clear();
    }
}

/// A future that completes once the virtual clock reaches its deadline; it can be moved to a
/// new deadline with [`Sleep::reset`], also after it fired.
#[derive(Debug)]
pub struct Sleep {
    clock: Rc<Clock>,
    id: TimerId,
    deadline: Millis,
}

impl Sleep {
    pub(crate) fn new(clock: Rc<Clock>, deadline: Millis) -> Self {
        let id = clock.timers.borrow_mut().new_id();
        Self {
            clock,
            id,
            deadline,
        }
    }

    /// The deadline this timer fires at.
    pub fn deadline(&self) -> Millis {
        self.deadline
    }

    /// Moves the timer to `deadline`. A task already waiting on it keeps waiting, for the
    /// new deadline; one whose new deadline has passed is woken now.
    pub fn reset(&mut self, deadline: Millis) {
        self.deadline = deadline;
        let mut timers = self.clock.timers.borrow_mut();
        if let Some(waker) = timers.cancel(self.id) {
            if deadline <= self.clock.now() {
                waker.wake();
            } else {
                timers.register(self.id, deadline, &waker);
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut timers = self.clock.timers.borrow_mut();
        if self.clock.now() >= self.deadline {
            timers.cancel(self.id);
            return Poll::Ready(());
        }
        timers.register(self.id, self.deadline, cx.waker());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Ok(mut timers) = self.clock.timers.try_borrow_mut() {
            timers.cancel(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_waker::counting as waker;
    use proptest::prelude::*;

    #[test]
    fn due_timers_fire_in_deadline_then_creation_order() {
        let mut timers = Timers::default();
        let ids: Vec<_> = (0..3).map(|_| timers.new_id()).collect();
        let wakers: Vec<_> = (0..3).map(|_| waker()).collect();
        timers.register(ids[2], Millis(5), &wakers[2].1);
        timers.register(ids[1], Millis(10), &wakers[1].1);
        timers.register(ids[0], Millis(10), &wakers[0].1);
        assert_eq!(timers.next_deadline(), Some(Millis(5)));
        let due = timers.take_due(Millis(10));
        assert_eq!(due.len(), 3);
        assert!(due[0].will_wake(&wakers[2].1));
        assert!(due[1].will_wake(&wakers[0].1));
        assert!(due[2].will_wake(&wakers[1].1));
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn registering_again_moves_the_timer() {
        let mut timers = Timers::default();
        let id = timers.new_id();
        let (count, waker) = waker();
        timers.register(id, Millis(5), &waker);
        timers.register(id, Millis(50), &waker);
        assert_eq!(timers.next_deadline(), Some(Millis(50)));
        assert!(timers.take_due(Millis(49)).is_empty());
        timers
            .take_due(Millis(50))
            .into_iter()
            .for_each(Waker::wake);
        assert_eq!(count.get(), 1);
    }

    proptest! {
        /// Against a model: a map from timer to deadline; `take_due` returns exactly the
        /// timers at or before `now`, sorted by (deadline, id).
        #[test]
        fn timers_match_a_model(
            ops in proptest::collection::vec((0u64..8, 0u64..100, any::<bool>()), 1..60),
            now in 0u64..100,
        ) {
            let mut timers = Timers::default();
            let ids: Vec<_> = (0..8).map(|_| timers.new_id()).collect();
            let (_, waker) = waker();
            let mut model: std::collections::BTreeMap<u64, u64> = Default::default();
            for (timer, deadline, cancel) in ops {
                let id = ids[timer as usize];
                if cancel {
                    timers.cancel(id);
                    model.remove(&id);
                } else {
                    timers.register(id, Millis(deadline), &waker);
                    model.insert(id, deadline);
                }
            }
            prop_assert_eq!(timers.len(), model.len());
            prop_assert_eq!(timers.next_deadline(), model.values().min().map(|d| Millis(*d)));
            let due = timers.take_due(Millis(now)).len();
            prop_assert_eq!(due, model.values().filter(|d| **d <= now).count());
            prop_assert_eq!(timers.len(), model.values().filter(|d| **d > now).count());
        }
    }
}
