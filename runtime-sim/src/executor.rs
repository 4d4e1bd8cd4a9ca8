//! A single-threaded executor whose order of work is a function of what happened, never of
//! the machine: tasks run in the order they were woken (first in, first out), each at most
//! once per wake-up.
//!
//! Wakers are `std::task::Wake` on an `Arc`, so no `unsafe`. A waker only appends its task's
//! id to the ready queue; the futures stay in a map owned by this thread and are polled one
//! at a time, taken out of the map while they run, so a task may spawn, wake or abort other
//! tasks (or itself) from inside its poll.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

/// Identifies a task for its whole life; ids are never reused, so a late wake-up of a
/// finished task is recognised and ignored.
pub(crate) type TaskId = u64;

/// Tasks woken and not yet polled, in wake order, each once.
#[derive(Debug, Default)]
struct ReadyQueue {
    order: VecDeque<TaskId>,
    queued: HashSet<TaskId>,
}

impl ReadyQueue {
    fn push(&mut self, id: TaskId) {
        if self.queued.insert(id) {
            self.order.push_back(id);
        }
    }

    fn pop(&mut self) -> Option<TaskId> {
        let id = self.order.pop_front()?;
        self.queued.remove(&id);
        Some(id)
    }
}

/// The ready queue as wakers share it. A `Mutex` only because `Waker` must be `Send + Sync`;
/// it is only ever locked by this thread.
type SharedQueue = Arc<Mutex<ReadyQueue>>;

fn lock(queue: &SharedQueue) -> std::sync::MutexGuard<'_, ReadyQueue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a task's waker does: queue the task.
struct TaskWaker {
    id: TaskId,
    queue: SharedQueue,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.queue).push(self.id);
    }
}

/// A spawned future and its one waker (made once, so `Waker::will_wake` holds across polls).
struct Task {
    /// `None` while the task is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Waker,
}

/// The tasks of one simulated world.
pub(crate) struct Executor {
    tasks: RefCell<HashMap<TaskId, Task>>,
    queue: SharedQueue,
    next_id: Cell<TaskId>,
    polls: Cell<u64>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("tasks", &self.tasks.borrow().len())
            .field("polls", &self.polls.get())
            .finish_non_exhaustive()
    }
}

impl Executor {
    pub(crate) fn new() -> Self {
        Self {
            tasks: RefCell::new(HashMap::new()),
            queue: SharedQueue::default(),
            next_id: Cell::new(0),
            polls: Cell::new(0),
        }
    }

    /// Adds a task; it is polled after every task already woken.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + 'static) -> TaskId {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            queue: Arc::clone(&self.queue),
        }));
        let task = Task {
            future: Some(Box::pin(future)),
            waker,
        };
        self.tasks.borrow_mut().insert(id, task);
        lock(&self.queue).push(id);
        id
    }

    /// Polls the task woken first. Returns false when no task is ready.
    pub(crate) fn poll_next(&self) -> bool {
        let Some(id) = lock(&self.queue).pop() else {
            return false;
        };
        let taken = self
            .tasks
            .borrow_mut()
            .get_mut(&id)
            .and_then(|task| Some((task.future.take()?, task.waker.clone())));
        // A finished or aborted task's late wake-up.
        let Some((mut future, waker)) = taken else {
            return true;
        };
        self.polls.set(self.polls.get() + 1);
        let finished = future
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        let mut tasks = self.tasks.borrow_mut();
        let leftover = if finished {
            tasks.remove(&id);
            Some(future)
        } else {
            match tasks.get_mut(&id) {
                Some(task) => {
                    task.future = Some(future);
                    None
                }
                // The task aborted itself while it ran.
                None => Some(future),
            }
        };
        drop(tasks);
        // Dropped with no borrow held: a future's destructor may touch the executor.
        drop(leftover);
        true
    }

    /// Drops a task without running it further; false if it had already ended.
    pub(crate) fn abort(&self, id: TaskId) -> bool {
        let removed = self.tasks.borrow_mut().remove(&id);
        removed.is_some()
    }

    /// Tasks not yet finished.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Polls so far, all tasks together.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.get()
    }

    /// Drops every task, in the order they were spawned, so the destructors that run (and
    /// may close sockets or cancel timers) run in a reproducible order too.
    pub(crate) fn clear(&self) {
        loop {
            let mut tasks = self.tasks.borrow_mut();
            let Some(&id) = tasks.keys().min() else {
                break;
            };
            let task = tasks.remove(&id);
            drop(tasks);
            drop(task);
        }
        let mut queue = lock(&self.queue);
        queue.order.clear();
        queue.queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::task::Poll;

    /// A future that records its polls and wakes itself `n` times.
    fn yielding(log: Rc<RefCell<Vec<(u32, u32)>>>, name: u32, n: u32) -> impl Future<Output = ()> {
        let mut left = n;
        std::future::poll_fn(move |cx| {
            log.borrow_mut().push((name, left));
            if left == 0 {
                return Poll::Ready(());
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    #[test]
    fn tasks_run_in_wake_order() {
        let executor = Executor::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        executor.spawn(yielding(Rc::clone(&log), 1, 2));
        executor.spawn(yielding(Rc::clone(&log), 2, 1));
        while executor.poll_next() {}
        assert_eq!(
            *log.borrow(),
            [(1, 2), (2, 1), (1, 1), (2, 0), (1, 0)],
            "round robin in wake order"
        );
        assert_eq!(executor.task_count(), 0);
        assert_eq!(executor.polls(), 5);
    }

    #[test]
    fn a_task_is_queued_once_however_often_it_is_woken() {
        let executor = Executor::new();
        let polls = Rc::new(Cell::new(0));
        let counter = Rc::clone(&polls);
        let id = executor.spawn(std::future::poll_fn(move |cx| {
            counter.set(counter.get() + 1);
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        assert!(executor.poll_next());
        assert!(executor.poll_next());
        assert_eq!(polls.get(), 2);
        assert!(executor.abort(id));
        // The queued wake-up of the aborted task is skipped.
        assert!(executor.poll_next());
        assert_eq!(polls.get(), 2);
        assert!(!executor.poll_next());
        assert!(!executor.abort(id));
    }

    #[test]
    fn a_task_may_spawn_and_abort_from_inside_its_poll() {
        let executor = Rc::new(Executor::new());
        let inner = Rc::clone(&executor);
        let ran = Rc::new(Cell::new(false));
        let flag = Rc::clone(&ran);
        let victim = executor.spawn(std::future::pending::<()>());
        executor.spawn(async move {
            inner.abort(victim);
            inner.spawn(async move { flag.set(true) });
        });
        while executor.poll_next() {}
        assert!(ran.get());
        assert_eq!(executor.task_count(), 0);
    }

    #[test]
    fn clear_drops_every_task() {
        struct Dropped(Rc<Cell<u32>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let executor = Executor::new();
        let drops = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let guard = Dropped(Rc::clone(&drops));
            executor.spawn(async move {
                std::future::pending::<()>().await;
                drop(guard);
            });
        }
        while executor.poll_next() {}
        executor.clear();
        assert_eq!(drops.get(), 3);
        assert!(!executor.poll_next());
    }
}
